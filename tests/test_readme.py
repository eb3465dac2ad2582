"""The README's Python examples run as written (from the repository root)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.shared_data
def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks()
    assert blocks, "the README should show the Python API"
    monkeypatch.chdir(ROOT)
    for number, block in enumerate(blocks):
        # write model folders into tmp_path instead of the checkout
        code = block.replace('Path("vsknn-model")', f'Path("{tmp_path}/vsknn-model")')
        script = tmp_path / f"readme_{number}.py"
        script.write_text(code)
        runpy.run_path(str(script), run_name="__main__")
