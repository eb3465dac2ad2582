"""The CLI: the evaluate contract (JSON shape), train's model folder, errors for people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.models.popularity import SessionPopular
from nextbest.models.store import latest_version

runner = CliRunner()

TRAIN = "SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t2\n2\ta\t3\n2\tc\t4\n3\tb\t5\n3\ta\t6\n"
TEST = "SessionId\tItemId\tTime\n9\ta\t10\n9\tb\t11\n9\ta\t12\n8\tc\t20\n8\tunseen\t21\n"


@pytest.fixture
def split(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "train.tsv").write_text(TRAIN)
    (tmp_path / "test.tsv").write_text(TEST)
    return tmp_path / "train.tsv", tmp_path / "test.tsv"


def test_evaluate_writes_the_documented_json(split: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = split
    out = tmp_path / "out.json"
    args = ["evaluate", "--model", "spop", "--train", str(train), "--test", str(test)]
    result = runner.invoke(app, [*args, "--cutoff", "1", "--cutoff", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["model"] == "spop"
    assert record["cases"] == 2  # session 8 shrinks to one known event and is dropped
    # case 1: after [a], spop ranks a (seen in the session) first, then b (2 training events)
    # before c (1): the target b ranks 2nd. case 2: after [a, b], both were seen once; global
    # popularity breaks the tie (a: 3 events, b: 2), so the target a ranks 1st.
    assert record["recall@1"] == pytest.approx(0.5)
    assert record["mrr@2"] == pytest.approx((0.5 + 1.0) / 2)
    for key in ("params", "ndcg@1", "ndcg@2", "fit_seconds", "eval_seconds"):
        assert key in record


def test_train_writes_a_loadable_model_version(
    split: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["train", "--model", "spop", "--train", str(split[0])])
    assert result.exit_code == 0, result.output
    folder = latest_version(tmp_path / "home")
    assert folder is not None
    model = SessionPopular.load(folder)
    assert sorted(model.item_ids.tolist()) == ["a", "b", "c"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "nope"], "unknown model"),
        (["--model", "pop", "--param", "k=3"], "unknown parameter"),
        (["--model", "pop", "--param", "oops"], "KEY=VALUE"),
        (["--model", "pop", "--ties", "lucky"], "--ties"),
    ],
)
def test_bad_options_give_one_clear_line(
    split: tuple[Path, Path], extra: list[str], message: str
) -> None:
    args = ["evaluate", "--train", str(split[0]), "--test", str(split[1]), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tsv"
    args = ["evaluate", "--model", "pop", "--train", str(missing), "--test", str(missing)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "nope.tsv" in result.output


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("srgnn", ["hidden=4", "n_epochs=1", "threads=1"]),
        ("sasrec", ["hidden=4", "n_epochs=1", "threads=1", "loss=sampled", "n_sample=2"]),
    ],
)
def test_the_graph_and_attention_models_evaluate_train_and_load_by_name(
    split: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    params: list[str],
) -> None:
    from nextbest.models.registry import MODELS

    options = [opt for p in params for opt in ("--param", p)]
    out = tmp_path / "out.json"
    args = ["evaluate", "--model", model, "--train", str(split[0]), "--test", str(split[1])]
    result = runner.invoke(app, [*args, *options, "--json", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["model"] == model and record["cases"] == 2
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["train", "--model", model, "--train", str(split[0]), *options])
    assert result.exit_code == 0, result.output
    folder = latest_version(tmp_path / "home")
    assert folder is not None
    loaded = MODELS[model].load(folder)
    assert sorted(loaded.item_ids.tolist()) == ["a", "b", "c"]  # type: ignore[union-attr]
