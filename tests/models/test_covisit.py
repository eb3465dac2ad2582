"""Co-visitation (sequential rules), checked against rules counted by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nextbest.data.sessions import Sessions
from nextbest.models.covisit import CoVisitation, CoVisitConfig, LastItem

A, B, C = 0, 1, 2


def make_sessions(sessions: list[list[int]], n_items: int = 3) -> Sessions:
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions])
    return Sessions(
        item_ids=np.array(["a", "b", "c", "d"][:n_items], dtype=object),
        session_ids=np.array([f"s{s}" for s in range(len(sessions))], dtype=object),
        offsets=np.concatenate([[0], np.cumsum([len(s) for s in sessions])]).astype(np.int64),
        items=items,
        times=np.arange(len(items), dtype=np.float64),
    )


# [a, b, c, a] and [b, c], steps = 10, div:
#   b after a (d=1): a->b 1;   c: b->c 1, a->c 1/2;   a again: c->a 1, b->a 1/2, a->a 1/3
#   second session: b->c 1  =>  a: [1/3, 1, 1/2]   b: [1/2, 0, 2]   c: [1, 0, 0]
TRAIN = [[A, B, C, A], [B, C]]


def scores_after(model: CoVisitation, items: list[int]) -> np.ndarray:
    state = model.initial_state(1)
    for t, item in enumerate(items):
        state = model.step(state, np.array([item]), np.array([float(t)]))
    scores: np.ndarray = model.score(state)[0]
    return scores


def test_rules_by_hand() -> None:
    model = CoVisitation().fit(make_sessions(TRAIN))
    np.testing.assert_allclose(scores_after(model, [A]), [1 / 3, 1.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(scores_after(model, [B]), [0.5, 0.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(scores_after(model, [C]), [1.0, 0.0, 0.0], rtol=1e-6)


def test_steps_and_weighting_change_the_rules() -> None:
    adjacent = CoVisitation(CoVisitConfig(steps=1)).fit(make_sessions(TRAIN))
    np.testing.assert_allclose(scores_after(adjacent, [A]), [0.0, 1.0, 0.0])
    np.testing.assert_allclose(scores_after(adjacent, [B]), [0.0, 0.0, 2.0])
    flat = CoVisitation(CoVisitConfig(weighting="same")).fit(make_sessions(TRAIN))
    np.testing.assert_allclose(scores_after(flat, [A]), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(scores_after(flat, [B]), [1.0, 0.0, 2.0])


def test_only_the_latest_item_matters() -> None:
    model = CoVisitation().fit(make_sessions(TRAIN))
    np.testing.assert_array_equal(scores_after(model, [C, A, B]), scores_after(model, [B]))
    assert int(np.argmax(scores_after(model, [A, B]))) == C


def test_batch_state_and_select() -> None:
    model = CoVisitation().fit(make_sessions(TRAIN))
    state = model.step(model.initial_state(3), np.array([A, B, C]), np.zeros(3))
    assert not model.score(model.initial_state(2)).any()  # nothing seen yet
    picked = model.select(state, np.array([2, 0]))
    assert isinstance(picked, LastItem)
    np.testing.assert_array_equal(picked.items, [C, A])
    np.testing.assert_allclose(model.score(picked), [[1.0, 0.0, 0.0], [1 / 3, 1.0, 0.5]])


def test_save_load_round_trips(tmp_path: Path) -> None:
    model = CoVisitation(CoVisitConfig(steps=3)).fit(make_sessions(TRAIN))
    model.save(tmp_path)
    loaded = CoVisitation.load(tmp_path)
    assert loaded.config == CoVisitConfig(steps=3)
    state = model.step(model.initial_state(3), np.array([A, B, C]), np.zeros(3))
    np.testing.assert_array_equal(loaded.score(state), model.score(state))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be an integer >= 1, not 0"),
        ({"steps": 2.5}, "steps must be an integer >= 1, not 2.5"),
        ({"weighting": "log"}, "weighting must be one of div, same, not 'log'"),
    ],
)
def test_bad_config_values_raise(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CoVisitConfig(**kwargs)  # type: ignore[arg-type]
