"""SR-GNN and the self-attentive model: the session graph, the training cases, learning a
pattern, bounded live state, and parameters that are refused by name."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from session_builders import make_sessions

from nextbest.models.normalised import ItemTable
from nextbest.models.registry import build_model
from nextbest.models.sasrec import SASRec, SASRecConfig
from nextbest.models.sasrec.model import _packed_batches
from nextbest.models.srgnn import SRGNN, SRGNNConfig
from nextbest.models.srgnn.graph import build_graphs
from nextbest.models.srgnn.model import prefix_cases


def test_the_graph_of_a_session_with_repeats_matches_one_made_by_hand() -> None:
    # clicks 5 7 5 9 9: edges 5->7, 7->5, 5->9 and the self-loop 9->9; a second session of
    # two clicks of item 3 is padded to the same width
    graphs = build_graphs(torch.tensor([[5, 7, 5, 9, 9], [3, 3, 0, 0, 0]]), torch.tensor([5, 2]))
    assert graphs.nodes.tolist() == [[5, 7, 9], [3, 0, 0]]
    assert graphs.alias.tolist() == [[0, 1, 0, 2, 2], [0, 0, 0, 0, 0]]
    assert graphs.mask.tolist() == [[True] * 5, [True, True, False, False, False]]
    # outgoing row u: 1/outdeg(u) on each successor; incoming row v: 1/indeg(v) on each predecessor
    outgoing = [[0, 0.5, 0.5], [1, 0, 0], [0, 0, 1]]
    incoming = [[0, 1, 0], [1, 0, 0], [0.5, 0, 0.5]]
    assert graphs.outgoing[0].tolist() == outgoing
    assert graphs.incoming[0].tolist() == incoming
    # the padded session: only its self-loop 3->3; padding nodes have no edges
    assert graphs.outgoing[1].tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert graphs.incoming[1].tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_one_session_graph_takes_the_numpy_path_and_equals_the_batch_path() -> None:
    # serving builds one session's graph at a time through a NumPy shortcut; a batch of the
    # same session twice goes through the batched sort-and-scatter: every field must agree
    rng = np.random.default_rng(3)
    for length in (1, 2, 7, 30):
        clicks = torch.from_numpy(rng.integers(0, 6, length))  # few items: many repeats
        one = build_graphs(clicks[None], torch.tensor([length]))
        two = build_graphs(torch.stack([clicks, clicks]), torch.tensor([length, length]))
        for field in ("nodes", "alias", "incoming", "outgoing", "mask", "lengths"):
            assert torch.equal(getattr(one, field)[0], getattr(two, field)[0]), (length, field)
            assert getattr(one, field).dtype == getattr(two, field).dtype, field


def test_every_prefix_is_a_training_case_cut_to_the_recent_clicks() -> None:
    train = make_sessions([[0, 1, 2, 3], [4], [5, 6]], 7)
    starts, lengths, targets = prefix_cases(train, max_length=2)
    cases = [
        (train.items[s : s + n].tolist(), int(t))
        for s, n, t in zip(starts, lengths, targets, strict=True)
    ]
    assert cases == [([0], 1), ([0, 1], 2), ([1, 2], 3), ([5], 6)]


def test_packed_batches_hold_every_session_once() -> None:
    lengths = np.random.default_rng(0).integers(2, 30, 500)
    batches = _packed_batches(lengths, 64, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    # a batch is closed once it reaches the budget, so it overshoots by less than one session
    assert max(int((lengths[b] - 1).sum()) for b in batches) < 64 + 29


def _cycle(n_items: int = 20, n_sessions: int = 300) -> object:
    rng = np.random.default_rng(0)
    walks = []
    for _ in range(n_sessions):
        start, length = int(rng.integers(n_items)), int(rng.integers(3, 8))
        walks.append([(start + k) % n_items for k in range(length)])
    return make_sessions(walks, n_items)


@pytest.mark.parametrize(
    "model",
    [
        SRGNN(SRGNNConfig(hidden=16, n_epochs=6, batch_size=32, learning_rate=0.01, threads=1)),
        SASRec(SASRecConfig(hidden=16, n_epochs=15, batch_size=64, learning_rate=0.01, threads=1)),
        SASRec(
            SASRecConfig(
                hidden=16,
                n_epochs=15,
                batch_size=64,
                learning_rate=0.01,
                threads=1,
                loss="sampled",
                n_sample=8,
            )
        ),
        SRGNN(
            SRGNNConfig(
                hidden=16, n_epochs=6, batch_size=32, learning_rate=0.01, threads=1, scale=16.0
            )
        ),
    ],
    ids=["srgnn", "sasrec-full", "sasrec-sampled", "srgnn-scaled-cosine"],
)
def test_a_model_learns_what_comes_next(model: SRGNN | SASRec) -> None:
    """After item j comes j + 1: the next item must rank first for nearly every session."""
    model.fit(_cycle())  # type: ignore[arg-type]
    assert model.history[-1].loss < model.history[0].loss
    starts = np.arange(20)
    state = model.initial_state(20)
    for k in range(3):
        state = model.step(state, (starts + k) % 20, np.zeros(20))
    top, _ = model.recommend(state, 1)
    assert np.mean(top[:, 0] == (starts + 3) % 20) >= 0.9


def test_the_live_state_of_a_long_session_stays_within_the_window() -> None:
    model = SASRec(SASRecConfig(hidden=8, n_epochs=1, max_length=4, threads=1)).fit(_cycle())  # type: ignore[arg-type]
    state = model.initial_state(2)
    for k in range(10):
        state = model.step(state, np.array([k % 20, 3]), np.zeros(2))
    assert state.cache.shape == (2, 2, 2, 3, 8)  # blocks, keys+values, max_length - 1 clicks
    assert state.count.tolist() == [10, 10]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("srgnn", {"hidden": "0"}, "hidden"),
        ("srgnn", {"lr_decay": "2"}, "lr_decay"),
        ("srgnn", {"max_length": "1"}, "max_length"),
        ("sasrec", {"heads": "3"}, "heads"),
        ("sasrec", {"loss": "bpr"}, "loss"),
        ("sasrec", {"dropout": "1.5"}, "dropout"),
        ("sasrec", {"lr_decay": "0"}, "lr_decay"),
        ("sasrec", {"lr_decay_epochs": "0"}, "lr_decay_epochs"),
    ],
)
def test_bad_parameters_are_refused_by_name(
    name: str, params: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(name, params)


def test_a_decayed_learning_rate_stops_moving_the_weights() -> None:
    """With the rate cut a million-fold after the first epoch, two more epochs leave the
    weights where one epoch put them; at a constant rate they move on."""

    def items_after(**params: Any) -> torch.Tensor:
        config = SASRecConfig(hidden=8, batch_size=64, learning_rate=0.01, threads=1, **params)
        model = SASRec(config).fit(_cycle())  # type: ignore[arg-type]
        return model._fitted().state_dict()["items.embedding.weight"]

    first = items_after(n_epochs=1)
    decayed = items_after(n_epochs=3, lr_decay=1e-6, lr_decay_epochs=1)
    constant = items_after(n_epochs=3)
    assert float((decayed - first).abs().max()) < 1e-4 < float((constant - first).abs().max())


def test_a_model_without_a_training_pair_says_so() -> None:
    for model in (SRGNN(SRGNNConfig(hidden=4)), SASRec(SASRecConfig(hidden=4))):
        with pytest.raises(ValueError, match="two or more events"):
            model.fit(make_sessions([[1], [2]], 3))


def test_scaled_cosine_scores_follow_the_weights_after_training_again() -> None:
    table = ItemTable(5, 3, scale=4.0)
    table.eval()
    vector = torch.tensor([[1.0, 2.0, 2.0]])
    expected = 4.0 * F.normalize(vector, dim=1) @ F.normalize(table.weight, dim=1).T
    torch.testing.assert_close(table.scores(vector), expected)
    table.train()
    with torch.no_grad():
        table.weight.mul_(-1.0)  # what an optimiser step could do
    table.eval()
    torch.testing.assert_close(table.scores(vector), -expected)  # not the stale frozen table
    torch.testing.assert_close(table.scores_of(vector, torch.tensor([4, 1])), -expected[:, [4, 1]])
