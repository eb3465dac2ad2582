"""The user protocol: warm-up on each user's past, cases counted by the size of that past."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
import polars as pl
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.data.sessions import Sessions
from nextbest.data.splits import split_users_last_session
from nextbest.data.tsv import write_gru4rec_tsv
from nextbest.evaluation.next_event import evaluate_next_event
from nextbest.evaluation.user_protocol import (
    evaluate_user_last_session,
    history_bucket,
    user_histories,
)
from nextbest.events.io import read_events
from nextbest.models.base import SessionModel
from nextbest.models.popularity import MostPopular

N_ITEMS = 12


class CountingModel(SessionModel[np.ndarray, None]):
    """Its state is how many past sessions it was warmed on; it ranks item `count` first."""

    name = "counting"
    config_class = type(None)

    def fit(self, train: Sessions) -> Self:
        self.item_ids = train.item_ids
        return self

    def initial_state(self, n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.int64)

    def step(self, state: np.ndarray, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        return state

    def select(self, state: np.ndarray, rows: np.ndarray) -> np.ndarray:
        kept: np.ndarray = state[rows]
        return kept

    def score(self, state: np.ndarray) -> np.ndarray:
        scores = np.zeros((len(state), N_ITEMS), dtype=np.float32)
        scores[np.arange(len(state)), np.minimum(state, N_ITEMS - 1)] = 1.0
        return scores


class WarmCountingModel(CountingModel):
    def warm_up(self, history: Sessions, owned: Sequence[np.ndarray]) -> np.ndarray:
        return np.array([len(o) for o in owned], dtype=np.int64)


def coded(rows: list[tuple[str, str | None, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema=["session_id", "user_id", "item_id", "timestamp"], orient="row"
    ).with_columns(pl.col("item_id").cast(pl.String))


def user_data() -> tuple[Sessions, Sessions]:
    """User k (k = 0..4) has k training sessions, then the test session [11, k, k, k] (user 0
    is new: unknown to training). An anonymous training session plays no part."""
    train_rows: list[tuple[str, str | None, int, float]] = []
    test_rows: list[tuple[str, str | None, int, float]] = []
    t = 0.0
    for k in range(5):
        for s in range(k):
            train_rows += [(f"u{k}s{s}", f"u{k}", i, (t := t + 1.0)) for i in (k, 11)]
    train_rows += [("anon", None, 3, (t := t + 1.0)), ("anon", None, 11, (t := t + 1.0))]
    for k in range(5):
        test_rows += [(f"u{k}last", f"u{k}", i, (t := t + 1.0)) for i in (11, k, k, k)]
    vocabulary = np.array([str(i) for i in range(N_ITEMS)], dtype=object)
    train = Sessions.from_events(coded(train_rows), item_ids=vocabulary)
    test = Sessions.from_events(coded(test_rows), item_ids=vocabulary, min_session_length=2)
    return train, test


def test_histories_are_each_users_earlier_training_sessions_in_time_order() -> None:
    train, test = user_data()
    histories = user_histories(train, test)
    assert test.user_ids is not None and train.user_ids is not None
    for s, history in enumerate(histories):
        user = test.user_ids[s]
        k = int(user[1:])
        assert len(history) == k  # user k has k earlier sessions; the anonymous one is not theirs
        assert all(train.user_ids[h] == user for h in history)
        assert list(history) == sorted(history)
    assert [history_bucket(n) for n in (0, 1, 2, 3, 4, 5, 9, 10, 60)] == [
        "0", "1", "2", "3-4", "3-4", "5-9", "5-9", "10+", "10+",
    ]  # fmt: skip


def test_warm_states_reach_the_right_test_sessions() -> None:
    train, test = user_data()
    model = WarmCountingModel().fit(train)
    result = evaluate_user_last_session(model, train, test)
    # Every target of user k is item k, which the model ranks first only from k's own history.
    assert result.warmed and np.all(result.result.ranks == 1.0)
    by_history = result.by_history()
    assert {k: v["cases"] for k, v in by_history.items()} == {
        "0": 3, "1": 3, "2": 3, "3-4": 6,
    }  # fmt: skip
    assert by_history["0"]["sessions"] == 1
    assert result.focus()["cases"] == 6 and result.focus()["sessions"] == 2
    assert sum(v["cases"] for v in by_history.values()) == result.result.cases


def test_models_without_user_state_see_the_test_session_alone() -> None:
    train, test = user_data()
    cold = evaluate_user_last_session(CountingModel().fit(train), train, test)
    assert not cold.warmed
    assert cold.by_history()["0"]["mrr@20"] == 1.0  # user 0's target is item 0
    assert cold.focus()["mrr@20"] < 1.0
    popular = MostPopular().fit(train)
    plain = evaluate_next_event(popular, test)
    assert np.array_equal(
        evaluate_user_last_session(popular, train, test).result.ranks, plain.ranks
    )


def test_cli_evaluates_hgru4rec_on_users_last_sessions(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["SessionId\tItemId\tTime\tUserId"]
    t = 0
    for user in range(12):
        for session in range(4):
            for _ in range(4):
                t += 1
                lines.append(f"{user}-{session}\t{rng.integers(0, 15)}\t{t}\tu{user}")
    events = tmp_path / "all.tsv"
    events.write_text("\n".join(lines) + "\n")
    split = split_users_last_session(read_events(events))
    write_gru4rec_tsv(split.train, tmp_path / "train.tsv")
    write_gru4rec_tsv(split.test, tmp_path / "test.tsv")
    out = tmp_path / "out.json"
    args = ["evaluate", "--model", "hgru4rec", "--protocol", "user-last-session"]
    args += ["--train", str(tmp_path / "train.tsv"), "--test", str(tmp_path / "test.tsv")]
    args += ["-p", "layers=8", "-p", "user_layer=4", "-p", "n_epochs=1", "-p", "n_sample=4"]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["protocol"] == "user-last-session" and record["warmed_up"]
    assert record["by_history"]["3-4"]["sessions"] == 12
    assert record["history_3plus"]["cases"] == record["cases"] == 12 * 3


def test_cli_refuses_files_without_users(tmp_path: Path) -> None:
    rows = "SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t2\n2\ta\t3\n2\tb\t4\n"
    (tmp_path / "train.tsv").write_text(rows)
    (tmp_path / "test.tsv").write_text(rows)
    args = ["evaluate", "--model", "gru4rec", "--protocol", "user-last-session"]
    args += ["--train", str(tmp_path / "train.tsv"), "--test", str(tmp_path / "test.tsv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "UserId" in result.output
