"""The batched next-event walk: every case once, the right prefix, the right figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import polars as pl
import pytest

from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import (
    EvalConfig,
    evaluate_next_event,
    prefix_target_sessions,
)
from nextbest.models.base import SessionModel
from nextbest.models.popularity import MostPopular, SessionPopular


@dataclass(frozen=True)
class _NoConfig:
    pass


class LastItemOracle(SessionModel[list[list[int]], _NoConfig]):
    """Scores item (last + 1) mod n highest; records every prefix it was asked to score."""

    name = "oracle"
    config_class = _NoConfig

    def __init__(self) -> None:
        super().__init__()
        self.scored_prefixes: list[tuple[int, ...]] = []

    def fit(self, train: Sessions) -> Self:
        self.item_ids = train.item_ids
        return self

    def initial_state(self, n: int) -> list[list[int]]:
        return [[] for _ in range(n)]

    def step(self, state: list[list[int]], items: np.ndarray, times: np.ndarray) -> list[list[int]]:
        return [[*seen, int(item)] for seen, item in zip(state, items, strict=True)]

    def select(self, state: list[list[int]], rows: np.ndarray) -> list[list[int]]:
        return [state[int(r)] for r in rows]

    def score(self, state: list[list[int]]) -> np.ndarray:
        scores = np.zeros((len(state), self.n_items), dtype=np.float32)
        for row, seen in enumerate(state):
            self.scored_prefixes.append(tuple(seen))
            scores[row, (seen[-1] + 1) % self.n_items] = 1.0
        return scores


def _events(rows: list[tuple[str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["session_id", "item_id", "timestamp"], orient="row")


TRAIN = _events([("t1", "a", 1), ("t1", "b", 2), ("t2", "c", 3), ("t2", "d", 4), ("t3", "a", 5)])
# items a,b,c,d -> 0,1,2,3. s1 follows the oracle's rule twice then breaks it; s2 has an
# unseen item that is dropped; s3 becomes a single event and is dropped.
TEST = _events(
    [
        ("s1", "a", 10), ("s1", "b", 11), ("s1", "c", 12), ("s1", "a", 13),
        ("s2", "c", 20), ("s2", "zz", 21), ("s2", "d", 22),
        ("s3", "b", 30), ("s3", "zz", 31),
    ]
)  # fmt: skip


def test_every_case_scored_once_with_exactly_its_prefix() -> None:
    train = Sessions.from_events(TRAIN)
    test = Sessions.from_events(TEST, item_ids=train.item_ids, min_session_length=2)
    model = LastItemOracle().fit(train)
    result = evaluate_next_event(model, test, EvalConfig(batch_size=1))
    assert sorted(model.scored_prefixes) == sorted([(0,), (0, 1), (0, 1, 2), (2,)])
    # s1: b after a (rank 1), c after b (1), a after c (the oracle says d: conservative rank 4
    # among a/b/c scoring 0 -> 1 + 0 higher + 2 equal others = 4); s2: d after c (1).
    assert sorted(result.ranks.tolist()) == [1.0, 1.0, 1.0, 4.0]
    assert result.cases == 4
    metrics = result.metrics()
    assert metrics["recall@5"] == pytest.approx(1.0)
    assert metrics["mrr@5"] == pytest.approx((3 + 0.25) / 4)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 64])
def test_batch_size_does_not_change_results(batch_size: int) -> None:
    rng = np.random.default_rng(0)
    rows = [(f"s{s}", f"i{rng.integers(0, 12)}", float(t)) for s in range(40) for t in
            range(int(rng.integers(1, 9)))]  # fmt: skip
    events = _events(rows)
    train = Sessions.from_events(events)
    test = Sessions.from_events(events, item_ids=train.item_ids, min_session_length=2)
    model = SessionPopular().fit(train)
    reference = evaluate_next_event(model, test, EvalConfig(batch_size=1000))
    result = evaluate_next_event(model, test, EvalConfig(batch_size=batch_size))
    assert result.cases == int((test.lengths - 1).sum())
    assert result.metrics() == pytest.approx(reference.metrics())


def test_popularity_coverage_and_bias() -> None:
    train = Sessions.from_events(TRAIN)
    test = Sessions.from_events(TEST, item_ids=train.item_ids, min_session_length=2)
    model = MostPopular().fit(train)
    result = evaluate_next_event(
        model, test, EvalConfig(cutoffs=(1, 4)), train_support=train.item_support()
    )
    # item a has support 2, the rest 1: the top-1 list is always [a] -> coverage 1/4.
    assert result.coverage[1] == pytest.approx(0.25)
    assert result.popularity[1] == pytest.approx(1.0)
    assert result.coverage[4] == pytest.approx(1.0)
    assert result.popularity[4] == pytest.approx((1 + 0.5 * 3) / 4)


def test_prefix_target_counts_only_the_target() -> None:
    train = Sessions.from_events(TRAIN)
    sessions, count = prefix_target_sessions(
        [["a", "b"], ["zz"], ["c", "zz"]], ["c", "a", "d"], train.item_ids
    )
    assert count.sum() == 2  # the second case has no known prefix item and is skipped
    model = LastItemOracle().fit(train)
    result = evaluate_next_event(model, sessions, count=count)
    assert sorted(model.scored_prefixes) == [(0, 1), (2,)]
    assert result.ranks.tolist() == [1.0, 1.0]


def test_test_coded_with_another_vocabulary_is_refused() -> None:
    train = Sessions.from_events(TRAIN)
    model = MostPopular().fit(train)
    other = Sessions.from_events(TEST)
    with pytest.raises(ValueError, match="vocabulary"):
        evaluate_next_event(model, other)


def test_bad_eval_config_names_the_problem() -> None:
    with pytest.raises(ValueError, match="cutoffs"):
        EvalConfig(cutoffs=(0,))
    with pytest.raises(ValueError, match="ties"):
        EvalConfig(ties="lucky")  # type: ignore[arg-type]
