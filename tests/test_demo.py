"""`nextbest demo` end to end on a small shop: models trained, report written, summary shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextbest.cli.demo import DEMO_MODELS
from nextbest.cli.main import app
from nextbest.models.store import list_versions


@pytest.mark.slow
def test_demo_trains_evaluates_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["demo", "--events", "60000"], terminal_width=200)
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "demo-report" / "results.json").read_text())
    assert [r["model"] for r in records] == [name for name, _ in DEMO_MODELS]
    assert (tmp_path / "demo-report" / "report.png").stat().st_size > 10_000
    assert "Recall@20" in (tmp_path / "demo-report" / "report.md").read_text()
    assert len(list_versions(tmp_path)) == len(DEMO_MODELS)
    by_name = {r["model"]: r for r in records}
    # the demo shop plants sequential structure: every session model beats popularity
    for name, record in by_name.items():
        if name != "pop":
            assert record["mrr@20"] > 2 * by_name["pop"]["mrr@20"], name
    assert "best model by MRR@20" in result.output
