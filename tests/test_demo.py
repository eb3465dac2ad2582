"""`nextbest demo` end to end on a small shop: models trained, report written, summary shown,
the model to serve saved last (the server serves the newest version), then the shop served."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextbest.cli.demo import DEMO_MODELS, PIPELINE
from nextbest.cli.main import app
from nextbest.models.gru4rec import GRU4Rec
from nextbest.models.store import META_FILE, latest_version, list_versions
from nextbest.serving import demo as serving_demo
from nextbest.serving.auth import read_keys_file
from nextbest.twostage.model import PipelineModel


def served_model(home: Path) -> str:
    newest = latest_version(home)
    assert newest is not None
    return str(json.loads((newest / META_FILE).read_text())["model"])


def never_serve(home: Path, port: int, host: str = "127.0.0.1") -> None:
    raise AssertionError("the demo served")


@pytest.mark.slow
def test_demo_trains_evaluates_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))
    monkeypatch.setattr(serving_demo, "serve_demo", never_serve)
    args = ["demo", "--events", "60000", "--no-serve"]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "demo-report" / "results.json").read_text())
    # the two-stage pipeline beside every single model, in the report
    assert [r["model"] for r in records] == [name for name, _ in DEMO_MODELS] + [PIPELINE]
    assert (tmp_path / "demo-report" / "report.png").stat().st_size > 10_000
    assert "Recall@20" in (tmp_path / "demo-report" / "report.md").read_text()
    assert len(list_versions(tmp_path)) == len(DEMO_MODELS) + 1
    # the default --serve-model is the pipeline, the newest version, the one served
    assert served_model(tmp_path) == PIPELINE
    pipeline = PipelineModel.load(latest_version(tmp_path))  # type: ignore[arg-type]
    assert pipeline.ranker is not None and pipeline.labels == (
        "covisit",
        "vstan",
        "stan",
        "vsknn",
        "spop",
    )
    # the GRU4Rec version embeds the catalog's category, brand and price band
    gru = next(v for v in list_versions(tmp_path) if v.name.endswith("-gru4rec"))
    served = GRU4Rec.load(gru)
    assert served.config.attributes == ("category", "brand", "price")
    assert served.attribute_values is not None and len(served.attribute_values) > 10
    by_name = {r["model"]: r for r in records}
    # the demo shop plants sequential structure: every session model beats popularity
    for name, record in by_name.items():
        if name != "pop":
            assert record["mrr@20"] > 2 * by_name["pop"]["mrr@20"], name
    assert "best model by MRR@20" in result.output
    assert not (tmp_path / "demo-keys.json").exists()
    # the served version orders the keyword card with a ranker learned on the shop's cards,
    # and knows its scenarios, the curated ones included
    from nextbest.keywords.card_ranker import KeywordRanker
    from nextbest.keywords.graph import load_version_graph

    keywords = KeywordRanker.load(latest_version(tmp_path))  # type: ignore[arg-type]
    assert keywords is not None and keywords.kind == "ftrl"
    assert "keyword ranker: ftrl on" in result.output
    graph = load_version_graph(latest_version(tmp_path))  # type: ignore[arg-type]
    assert graph is not None and "home-office" in {s.name for s in graph.scenarios}


@pytest.mark.slow
def test_demo_saves_the_served_model_last_then_serves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))
    calls: list[tuple[Path, int, str]] = []
    monkeypatch.setattr(serving_demo, "serve_demo", lambda *args: calls.append(args))
    with socket.socket() as probe:  # a port free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # covisit trains in well under a second, so it is usually saved in the second of gru4rec (saved
    # before it), and its name sorts before "gru4rec": the demo must still make it the newest
    args = ["demo", "--events", "20000", "--serve-model", "covisit", "--port", str(port)]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "demo-report" / "results.json").read_text())
    others = [name for name, _ in DEMO_MODELS if name != "covisit"] + [PIPELINE]
    assert [r["model"] for r in records] == [*others, "covisit"]
    versions = list_versions(tmp_path)
    assert len(versions) == len(DEMO_MODELS) + 1 and served_model(tmp_path) == "covisit"
    assert calls == [(tmp_path, port, "127.0.0.1")]
    keys = read_keys_file(tmp_path / "demo-keys.json")  # written before serving, to be shown
    assert keys.read and keys.write and keys.admin
    output = " ".join(result.output.split())
    assert f"http://127.0.0.1:{port}/demo/" in output
    assert str(tmp_path / "demo-keys.json") in output and versions[-1].name in output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--serve-model", "nope"], "--serve-model must be one of pop, spop"),
        (["--port", "0"], "--port must be between 1 and 65535"),
    ],
)
def test_bad_demo_options_fail_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], message: str
) -> None:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["demo", *extra], terminal_width=200)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "demo-shop").exists()


def test_a_port_in_use_is_named_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["demo", "--port", str(port)], terminal_width=200)
    assert result.exit_code == 2 and f"cannot serve on 127.0.0.1:{port}" in result.output
    assert "--no-serve" in result.output and not (tmp_path / "demo-shop").exists()


def test_a_graph_or_attention_model_is_trained_and_served_when_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """srgnn and sasrec are not in the default demo (minutes each); named by --serve-model,
    the demo trains, evaluates and reports it, and it is the version served."""
    from nextbest.cli.demo import DEMO_EXTRA_MODELS

    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))
    monkeypatch.setattr(serving_demo, "serve_demo", never_serve)
    monkeypatch.setattr("nextbest.cli.demo.DEMO_MODELS", (("pop", {}),))  # keeps it short
    monkeypatch.setattr(
        "nextbest.cli.demo.DEMO_EXTRA_MODELS",
        tuple((n, {**p, "n_epochs": "1", "hidden": "16"}) for n, p in DEMO_EXTRA_MODELS),
    )
    args = ["demo", "--events", "20000", "--serve-model", "sasrec", "--no-serve"]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "demo-report" / "results.json").read_text())
    models = [r["model"] for r in records]
    assert models[-1] == "sasrec" and "srgnn" not in models
    assert served_model(tmp_path) == "sasrec"
