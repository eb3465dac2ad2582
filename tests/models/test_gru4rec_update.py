"""GRU4Rec's warm start (`update`): it goes on from where training stopped (Adagrad's
accumulators are saved with the model), new items get rows from the items they follow and are
recommendable at once, and a model without its optimizer's state is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nextbest.data.sessions import Sessions
from nextbest.models.gru4rec import GRU4Rec, GRU4RecConfig
from nextbest.models.gru4rec.model import warm_start_vocabulary

CONFIG = GRU4RecConfig(
    layers=(32,), n_epochs=4, batch_size=16, n_sample=0, learning_rate=0.1, batch_loss="sum"
)


def circle(items: list[str], n_sessions: int, seed: int, vocabulary: np.ndarray) -> Sessions:
    """Sessions that walk `items` in a circle (after items[j] comes items[j + 1])."""
    rng = np.random.default_rng(seed)
    index = {item: k for k, item in enumerate(vocabulary)}
    walks = [
        [index[items[(start + step) % len(items)]] for step in range(int(length))]
        for start, length in zip(
            rng.integers(0, len(items), n_sessions), rng.integers(3, 8, n_sessions), strict=True
        )
    ]
    flat = np.concatenate(walks)
    return Sessions(
        item_ids=vocabulary,
        session_ids=np.array([f"s{seed}-{k}" for k in range(n_sessions)], dtype=object),
        offsets=np.concatenate([[0], np.cumsum([len(w) for w in walks])]),
        items=flat.astype(np.int64),
        times=np.arange(len(flat), dtype=np.float64),
    )


def next_of(model: GRU4Rec, walk: list[str], n: int = 3) -> list[str]:
    index = {item: k for k, item in enumerate(model.item_ids)}
    state = model.initial_state(1)
    for item in walk:
        state = model.step(state, np.array([index[item]]), np.zeros(1))
    top, _ = model.recommend(state, n)
    return [str(model.item_ids[k]) for k in top[0]]


def test_an_update_learns_new_items_and_keeps_the_old(tmp_path: Path) -> None:
    old = [f"i{k:02d}" for k in range(20)]
    model = GRU4Rec(CONFIG).fit(circle(old, 300, 0, np.array(old, dtype=object)))
    model.save(tmp_path / "v1")
    served = GRU4Rec.load(tmp_path / "v1")
    assert served.optimizer_state is not None  # saved with the version
    assert next_of(served, ["i05", "i06"])[0] == "i07"

    launched = [*old[:10], "n1", "n2", *old[10:]]  # two items between i09 and i10
    vocabulary = warm_start_vocabulary(np.asarray(served.item_ids), ["n1", "n2"])
    assert list(vocabulary[:20]) == old and list(vocabulary[20:]) == ["n1", "n2"]
    served.update(circle(launched, 150, 1, vocabulary), n_epochs=1)
    assert served.n_items == 22
    assert next_of(served, ["i07", "i08", "i09"])[0] == "n1"  # recommendable at once
    assert next_of(served, ["i03", "i04"])[0] == "i05"  # the old walk is still known
    served.save(tmp_path / "v2")
    assert GRU4Rec.load(tmp_path / "v2").optimizer_state is not None  # updatable again


def test_an_update_needs_the_saved_optimizer_state(tmp_path: Path) -> None:
    items = np.array([f"i{k:02d}" for k in range(10)], dtype=object)
    model = GRU4Rec(CONFIG).fit(circle(list(items), 100, 0, items))
    model.optimizer_state = None  # a version saved before updates existed
    with pytest.raises(ValueError, match="retrain it in full once"):
        model.update(circle(list(items), 10, 1, items))
    reordered = np.array(list(items)[::-1], dtype=object)
    fitted = GRU4Rec(CONFIG).fit(circle(list(items), 100, 0, items))
    with pytest.raises(ValueError, match="coded over the model's items first"):
        fitted.update(circle(list(items), 10, 1, reordered))
