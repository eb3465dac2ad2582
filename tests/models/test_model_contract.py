"""The contract every registered session model keeps, checked on each of them.

* save/load is exact: a loaded model scores every state exactly as the fitted one;
* a batch steps as its sessions would alone (no row leaks into another);
* the server's byte rows of a state (split, then joined in another grouping) score the same;
* where a model also runs whole prefixes in one padded pass as its training does
  (`score_sequences`: SR-GNN, SASRec), stepping click by click gives the same scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from session_builders import make_sessions

from nextbest.events.schema import Item
from nextbest.models.base import SessionModel
from nextbest.models.registry import MODELS, build_model
from nextbest.serving.state.codec import codec_for

N_ITEMS = 12
# the smallest settings that still train every part of each model, so the contract runs fast
FAST: dict[str, dict[str, str]] = {
    "gru4rec": {"layers": "8", "n_epochs": "1", "batch_size": "4", "n_sample": "4"},
    "hgru4rec": {
        "layers": "8",
        "user_layer": "8",
        "n_epochs": "1",
        "batch_size": "4",
        "n_sample": "4",
    },
    "srgnn": {"hidden": "8", "n_epochs": "1", "batch_size": "8", "threads": "1"},
    "sasrec": {
        "hidden": "8",
        "n_epochs": "1",
        "batch_size": "16",
        "max_length": "3",
        "heads": "2",
        "scale": "8",  # the normalised scores (the plain ones: srgnn)
        "threads": "1",
    },
}


def _train() -> Any:
    rng = np.random.default_rng(3)
    sessions = [list(rng.integers(0, N_ITEMS, int(rng.integers(2, 7)))) for _ in range(60)]
    users = [f"u{k % 9}" for k in range(len(sessions))]
    return make_sessions(sessions, N_ITEMS, users=users)


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request: pytest.FixtureRequest) -> SessionModel[Any, Any]:
    model = build_model(request.param, FAST.get(request.param, {}))
    model.use_catalog(
        {str(j): Item(item_id=str(j), category_path=(f"c{j % 3}",)) for j in range(N_ITEMS)}
    )
    return model.fit(_train())


def _walk(model: SessionModel[Any, Any], sequences: np.ndarray) -> Any:
    state = model.initial_state(len(sequences))
    for column in sequences.T:
        state = model.step(state, column, np.zeros(len(sequences)))
    return state


SEQUENCES = np.array([[1, 4, 4, 2, 7, 1, 0], [3, 3, 3, 3, 3, 3, 3], [11, 0, 5, 6, 1, 2, 9]])


def test_save_and_load_score_exactly_alike(fitted: SessionModel[Any, Any], tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    loaded = type(fitted).load(tmp_path / "m")
    assert np.array_equal(loaded.item_ids, fitted.item_ids)  # type: ignore[arg-type]
    assert np.array_equal(
        loaded.score(_walk(loaded, SEQUENCES)), fitted.score(_walk(fitted, SEQUENCES))
    )


def test_a_batch_steps_as_its_sessions_alone(fitted: SessionModel[Any, Any]) -> None:
    together = fitted.score(_walk(fitted, SEQUENCES))
    for row, sequence in enumerate(SEQUENCES):
        alone = fitted.score(_walk(fitted, sequence[None, :]))
        np.testing.assert_allclose(alone[0], together[row], rtol=1e-5, atol=1e-5)


def test_stored_rows_score_as_the_state(fitted: SessionModel[Any, Any]) -> None:
    codec = codec_for(fitted)
    state = _walk(fitted, SEQUENCES)
    rows = codec.split(state)
    reordered = codec.join([rows[2], rows[0]])
    np.testing.assert_allclose(
        fitted.score(reordered), fitted.score(state)[[2, 0]], rtol=1e-5, atol=1e-5
    )


ONE_PASS = sorted(name for name, cls in MODELS.items() if hasattr(cls, "score_sequences"))


@pytest.mark.parametrize("name", ONE_PASS)
def test_stepping_equals_scoring_the_whole_prefix(name: str) -> None:
    """Sessions of mixed lengths, padded into one batch as training pads them, score as the
    same sessions stepped one click at a time (sasrec: also past its window of 3 clicks)."""
    assert {"srgnn", "sasrec"} <= set(ONE_PASS)
    model = build_model(name, FAST[name]).fit(_train())
    lengths = np.array([7, 1, 4])
    padded = np.where(np.arange(7) < lengths[:, None], SEQUENCES, 0)
    whole = model.score_sequences(padded, lengths)  # type: ignore[attr-defined]
    for row, length in enumerate(lengths):
        stepped = model.score(_walk(model, SEQUENCES[row : row + 1, :length]))
        np.testing.assert_allclose(stepped[0], whole[row], rtol=1e-4, atol=1e-5)


def test_the_serving_scorer_agrees_with_the_model(fitted: SessionModel[Any, Any]) -> None:
    """Serving's scorer (for the neural models: the shared item matrix and the int8
    prescreen) gives the model's scores, and the exact top-n of them without the banned."""
    scorer = fitted.scorer(None)
    state = _walk(fitted, SEQUENCES)
    expected = fitted.score(state)
    np.testing.assert_allclose(scorer(state).numpy(), expected, rtol=1e-5, atol=1e-5)
    banned = np.array([1, 4])
    for row in range(len(SEQUENCES)):
        one = fitted.select(state, np.array([row]))
        columns, values = scorer.top(one, 5, banned)
        ranked = np.array(expected[row], dtype=np.float64)
        ranked[banned] = -np.inf
        assert not set(columns.tolist()) & {1, 4}
        np.testing.assert_allclose(values, np.sort(ranked)[::-1][:5], rtol=1e-5, atol=1e-5)
