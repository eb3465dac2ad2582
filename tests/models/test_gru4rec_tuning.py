"""GRU4Rec tuning: trials stay in the authors' space, fixed parameters stay fixed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import polars as pl
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.data.sessions import Sessions
from nextbest.models.gru4rec.config import GRU4RecConfig
from nextbest.models.tuning import best_config, suggest_config, tune


def _planted_sessions(n_sessions: int, seed: int) -> pl.DataFrame:
    """Sessions walking a ring of 12 items: the next item is always the current one + 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start = int(rng.integers(0, 12))
        rows += [(f"s{seed}-{s}", f"i{(start + t) % 12}", float(s * 10 + t)) for t in range(5)]
    return pl.DataFrame(rows, schema=["session_id", "item_id", "timestamp"], orient="row")


def test_suggestions_stay_in_the_authors_space_and_respect_fixed_values() -> None:
    base = GRU4RecConfig(loss="bpr-max", layers=(100,), batch_size=64)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        config = suggest_config(study.ask(), base, fixed={"batch_size"})
        assert 64 <= config.layers[0] <= 512
        assert config.batch_size == 64  # fixed, never searched
        assert 0.01 <= config.learning_rate <= 0.25
        assert 0.0 <= config.dropout_p_hidden <= 0.7
        assert 0.0 <= config.bpreg <= 2.0
        assert config.loss == "bpr-max"


def test_cross_entropy_search_leaves_bpr_knobs_alone() -> None:
    base = GRU4RecConfig(loss="cross-entropy", bpreg=1.23)
    config = suggest_config(optuna.create_study().ask(), base, fixed=set())
    assert config.bpreg == 1.23


def test_tune_finds_a_config_that_learns_the_planted_ring() -> None:
    train = Sessions.from_events(_planted_sessions(80, seed=0))
    valid = Sessions.from_events(
        _planted_sessions(20, seed=1), item_ids=train.item_ids, min_session_length=2
    )
    fixed = {"layers", "n_epochs", "n_sample", "batch_size"}
    base = GRU4RecConfig(loss="cross-entropy", n_epochs=3, n_sample=8, layers=(16,), batch_size=8)
    study = tune(train, valid, base, fixed, n_trials=3, seed=0)
    assert len(study.trials) == 3
    assert study.best_value > 0.5  # a ring of 12 items is easy once learned
    best = best_config(study, base, fixed)
    assert best.layers == (16,)
    assert best.learning_rate == study.best_params["learning_rate"]


def test_tune_command_writes_trials(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    _planted_sessions(60, seed=2).rename(
        {"session_id": "SessionId", "item_id": "ItemId", "timestamp": "Time"}
    ).write_csv(path, separator="\t")
    out = tmp_path / "tune.json"
    args = ["tune", "--train", str(path), "--trials", "2", "--json", str(out)]
    fixed = ["-p", "n_epochs=1", "-p", "layers=16", "-p", "n_sample=8", "-p", "batch_size=8"]
    result = CliRunner().invoke(app, [*args, *fixed], terminal_width=200)
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert len(record["trials"]) == 2
    assert record["best_config"]["layers"] == [16]
    assert "layers" not in record["best_params"]


def test_tune_refuses_other_models(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tune", "--train", "x.tsv", "--model", "vsknn"])
    assert result.exit_code == 2
    assert "'vsknn' cannot be tuned" in result.output and "srgnn" in result.output


def test_tune_searches_srgnn_and_sasrec_keeping_fixed_values(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    _planted_sessions(60, seed=2).rename(
        {"session_id": "SessionId", "item_id": "ItemId", "timestamp": "Time"}
    ).write_csv(path, separator="\t")
    for model, fixed in (
        ("srgnn", ["n_epochs=1", "hidden=8", "threads=1"]),
        ("sasrec", ["n_epochs=1", "hidden=8", "threads=1", "loss=sampled", "n_sample=4"]),
    ):
        out = tmp_path / f"{model}.json"
        args = ["tune", "--model", model, "--train", str(path), "--trials", "2"]
        options = [opt for p in fixed for opt in ("-p", p)]
        result = CliRunner().invoke(app, [*args, *options, "--json", str(out)], terminal_width=200)
        assert result.exit_code == 0, result.output
        record = json.loads(out.read_text())
        assert len(record["trials"]) == 2 and record["best_config"]["hidden"] == 8
        assert "hidden" not in record["best_params"] and "learning_rate" in record["best_params"]
