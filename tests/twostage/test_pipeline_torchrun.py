"""`nextbest train --pipeline` under torchrun: two processes on localhost train one version
(the attention-GRU ranker and a GRU4Rec generator across both), which the server loads and
answers with; a pipeline whose ranker trains in one process is refused with the reason."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.models.store import list_versions
from nextbest.serving.app import create_app
from nextbest.serving.settings import ServingSettings
from nextbest.twostage.model import PipelineModel
from process_groups import torchrun_nextbest

with warnings.catch_warnings():  # Starlette would rather see another HTTP client installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

N_ITEMS = 30
WRITE, READ = "test-write-key-0001", "test-read-key-00001"

PIPELINE = """[pipeline]
ranker = "attention_gru"
ranker_share = 0.3
ranker_params = { epochs = 3, batch_size = 16, embedding_size = 8, hidden_size = 8, \
attention_size = 8, mlp_size = 16, negatives = 4 }
generators = [
  { model = "covisit", k = 10 },
  { model = "gru4rec", k = 10, params = { layers = "8", n_epochs = "1", batch_size = "16" } },
  { model = "pop", k = 5 },
]
"""


def item(j: int) -> str:
    return f"i{j % N_ITEMS:02d}"


def write_walks(path: Path, n_sessions: int = 300) -> None:
    """Sessions that walk the items in a circle: after item j comes item j + 1."""
    rng = np.random.default_rng(0)
    lines, time = ["SessionId\tItemId\tTime"], 0
    for session in range(n_sessions):
        start, length = int(rng.integers(0, N_ITEMS)), int(rng.integers(3, 8))
        for step in range(length):
            time += 1
            lines.append(f"{session}\t{item(start + step)}\t{time}")
    path.write_text("\n".join(lines) + "\n")


def test_two_processes_train_one_pipeline_version_that_serves(tmp_path: Path) -> None:
    write_walks(tmp_path / "train.tsv")
    (tmp_path / "p.toml").write_text(PIPELINE)
    home = tmp_path / "home"
    args = ["train", "--pipeline", "p.toml", "--train", "train.tsv"]
    done = torchrun_nextbest(args, {"NEXTBEST_HOME": str(home)}, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # rank 0 alone reports and saves; rank 1 ended after the fit
    assert done.stdout.count("trained by 2 processes (torchrun)") == 1, done.stdout
    assert done.stdout.count("trained the pipeline (attention_gru over") == 1, done.stdout
    versions = list_versions(home)
    assert len(versions) == 1
    model = PipelineModel.load(versions[0])
    assert model.labels == ("covisit", "gru4rec", "pop")
    assert model.ranker is not None and model.ranker_error is None
    meta = json.loads((versions[0] / "meta.json").read_text())
    assert "ranker fit" in meta["seconds"]

    settings = ServingSettings(
        home=home, write_keys=(WRITE,), read_keys=(READ,), model_poll_seconds=60.0
    )
    with TestClient(create_app(settings)) as client:
        views = [
            {"event_id": f"e{k}", "type": "view", "session_id": "s1", "item_id": item(j)}
            for k, j in enumerate((3, 4))
        ]
        sent = client.post(
            "/v1/events", json={"events": views}, headers={"Authorization": f"Bearer {WRITE}"}
        )
        assert sent.status_code == 200, sent.text
        reply = client.get(
            "/v1/recommendations",
            params={"session_id": "s1", "placement": "next", "n": 5},
            headers={"Authorization": f"Bearer {READ}"},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["items"][0]["item_id"] == item(5)  # the walk goes on
        assert 'nextbest_ranked_lists_total{outcome="learned"}' in client.get("/metrics").text


def launched_by_torchrun(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """What torchrun sets in each process it starts (two of them)."""
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NEXTBEST_HOME", str(home))


def error_of(output: str) -> str:
    assert output.startswith("error: ") and "Traceback" not in output, output
    return " ".join(output.split())


@pytest.mark.parametrize("ranker", ["gbdt", "ftrl", "popularity"])
def test_a_ranker_that_trains_in_one_process_is_refused_under_torchrun(
    ranker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any data is read or any group joined (the training file does not exist)."""
    launched_by_torchrun(monkeypatch, tmp_path / "home")
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(f'[pipeline]\nranker = "{ranker}"\ngenerators = [{{ model = "pop" }}]\n')
    args = ["train", "--pipeline", str(pipeline), "--train", str(tmp_path / "absent.tsv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert error_of(result.output) == (
        f"error: the {ranker} ranker of {pipeline} trains in one process; torchrun can share "
        "the training of pipelines with the attention_gru ranker only (train this one without "
        "torchrun)"
    )
    assert not (tmp_path / "home").exists()


def test_evaluate_pipeline_and_from_log_stay_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched_by_torchrun(monkeypatch, tmp_path / "home")
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(PIPELINE)
    files = ["--train", str(tmp_path / "absent.tsv"), "--test", str(tmp_path / "absent.tsv")]
    evaluate = CliRunner().invoke(app, ["evaluate", "--pipeline", str(pipeline), *files])
    assert evaluate.exit_code == 2
    assert "evaluate --pipeline runs in one process" in error_of(evaluate.output)
    from_log = CliRunner().invoke(app, ["train", "--from-log", "--pipeline", str(pipeline)])
    assert from_log.exit_code == 2
    assert "--from-log trains in one process" in error_of(from_log.output)
