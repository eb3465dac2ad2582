"""Every TOML example in the README and docs/ is a file nextbest accepts: a placements file,
a pipeline, an experiments file, curated scenarios or triggers, read by the loader the engine
uses. A key renamed in the code, or mistyped in the docs, fails here with the file and line of
the example."""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path

import pytest

from nextbest.experiments.spec import ExperimentsFile
from nextbest.keywords.scenarios import read_scenarios
from nextbest.recommend.placements import DEFAULT_FILE, parse_placements
from nextbest.triggers.config import load_triggers
from nextbest.twostage.protocol import load_spec

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```toml\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


def toml_examples() -> list[tuple[str, str]]:
    """(`file:line`, the example's text) for every ```toml block, indented ones included."""
    examples = []
    for path in DOCUMENTS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            where = f"{path.relative_to(ROOT)}:{line}"
            examples.append((where, textwrap.dedent(match.group("body"))))
    return examples


def check_example(text: str, where: str, folder: Path) -> str:
    """Read `text` with the loader of its kind; returns the kind, raises on a bad example."""
    raw = tomllib.loads(text)
    file = folder / "example.toml"
    file.write_text(text)
    if "pipeline" in raw:
        load_spec(file)
        return "pipeline"
    if "experiments" in raw:
        ExperimentsFile.model_validate(raw)
        return "experiments"
    if "triggers" in raw:
        assert load_triggers(file).triggers, f"{where}: no trigger read"
        return "triggers"
    if "scenarios" in raw:
        assert read_scenarios(file), f"{where}: no scenario read"
        return "scenarios"
    if raw.keys() & {"placements", "filters", "campaigns", "keywords"}:
        # an example may show a few tables of a placements file: they replace the shipped
        # file's tables of the same name, and the whole must still load
        shipped = tomllib.loads(DEFAULT_FILE.read_text())
        parse_placements(shipped | raw, where)
        return "placements"
    raise AssertionError(f"{where}: a TOML example of no known kind (tables {sorted(raw)})")


@pytest.mark.parametrize(("where", "text"), toml_examples(), ids=lambda v: str(v)[:40])
def test_toml_example_is_accepted(where: str, text: str, tmp_path: Path) -> None:
    check_example(text, where, tmp_path)


def test_examples_of_every_kind_are_found(tmp_path: Path) -> None:
    kinds = {check_example(text, where, tmp_path) for where, text in toml_examples()}
    assert kinds == {"pipeline", "experiments", "scenarios", "placements", "triggers"}


def test_a_misspelt_key_is_caught(tmp_path: Path) -> None:
    bad = '[placements.home]\ngenerators = [{ source = "session", k = 10 }]\ndiversty = 0.2\n'
    with pytest.raises(ValueError, match="diversty"):
        check_example(bad, "doc.md:1", tmp_path)
