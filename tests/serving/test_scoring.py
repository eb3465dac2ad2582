"""Serving's scorer: the int8 prescreen gives exactly the float top-n, and its bounds hold;
at the serving benchmark's shape too, against GRU4Rec's own scores, and through the
fallback to the float path."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import pytest
import torch

from nextbest.models.gru4rec import GRU4Rec, GRU4RecConfig
from nextbest.models.gru4rec.network import GRU4RecNet
from nextbest.serving.scoring import MAX_RESCORED, GRU4RecScorer, Int8Prescreen, Scorer


def with_items(model: GRU4Rec, weights: torch.Tensor, bias: torch.Tensor) -> GRU4Rec:
    """A copy of the trained model whose item matrix is replaced (the GRU stays)."""
    changed = copy.deepcopy(model)
    assert changed.net is not None
    changed.net.item_weights.data = weights.clone()
    changed.net.item_bias.data = bias.clone()
    return changed


def near_ties(hidden: int, n_items: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Items in groups of near-copies: their scores differ far less than the int8 error, so an
    answer taken from the int8 ranking alone would be wrong."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(n_items // 50, hidden, generator=generator)
    weights = base.repeat_interleave(50, dim=0)
    weights += 1e-4 * torch.randn(weights.shape, generator=generator)
    weights[7] *= 40.0  # one item of far larger scale: coarse int8 steps on its row
    weights[8] = 0.0  # and one row of zeros
    bias = 0.01 * torch.randn(n_items, generator=generator)
    return weights, bias


def random_states(hidden: int, count: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    states = [torch.tanh(2 * torch.randn(1, hidden, generator=generator)) for _ in range(count)]
    states.append(torch.zeros(1, hidden))  # a state of zeros: scores are the biases
    states.append(torch.full((1, hidden), 0.5))  # all positive: the range starts at 0
    return states


def float_top(scorer: GRU4RecScorer, state: torch.Tensor, n: int, banned: np.ndarray) -> Any:
    scores = scorer(state)[0].clone()
    scores[torch.from_numpy(banned)] = float("-inf")
    values, columns = torch.topk(scores, n)
    return columns.numpy(), values.numpy()


@pytest.fixture
def tied_model(trained_gru: GRU4Rec) -> GRU4Rec:
    assert trained_gru.net is not None
    hidden = trained_gru.net.item_weights.shape[1]
    return with_items(trained_gru, *near_ties(hidden, 1000, seed=3))


def test_the_int8_bounds_hold_for_every_item(tied_model: GRU4Rec) -> None:
    scorer = GRU4RecScorer(tied_model)
    assert scorer.prescreen is not None
    hidden = scorer.hidden
    for state in random_states(hidden, 30, seed=1):
        approx, bounds = (rows[0] for rows in scorer.prescreen(state))
        exact = scorer(state)[0].numpy()
        assert np.all(np.abs(approx - exact) <= bounds)
        # and they are bounds, not a blanket: far below the spread of the scores
        assert float(np.median(bounds)) < 0.25 * float(exact.std() + 1e-3)


@pytest.mark.parametrize("n", [1, 10, 60])
def test_the_prescreened_top_n_is_the_float_top_n(tied_model: GRU4Rec, n: int) -> None:
    scorer = GRU4RecScorer(tied_model)
    assert scorer.prescreen is not None
    int8_alone_wrong = 0
    rng = np.random.default_rng(n)
    for state in random_states(scorer.hidden, 30, seed=n):
        banned = rng.choice(1000, 20, replace=False)
        columns, values = scorer.top(state, n, banned)
        expected_columns, expected_values = float_top(scorer, state, n, banned)
        np.testing.assert_allclose(values, expected_values, rtol=1e-6, atol=1e-5)
        assert not set(columns) & set(banned.tolist())
        assert len(set(columns)) == n
        approx = scorer.prescreen(state)[0][0]
        approx[banned] = -np.inf
        int8_alone_wrong += set(np.argsort(-approx)[:n]) != set(expected_columns)
    assert int8_alone_wrong > 0  # the near-ties do fool the int8 ranking: the rescoring counts


def test_several_queries_at_once_give_each_its_own_exact_top_n(tied_model: GRU4Rec) -> None:
    """`top_many` shares one pass over the weights; each row keeps its own quantization range
    (a query of small values next to one of large values), so each answer is exact."""
    scorer = GRU4RecScorer(tied_model)
    states = random_states(scorer.hidden, 4, seed=9)  # and the two edge states
    states[1] = states[1] * 0.01  # a much smaller range than its neighbours
    rng = np.random.default_rng(4)
    banned = [rng.choice(1000, 10, replace=False) for _ in states]
    ns = [10, 60, 1, 10, 200, 5]
    for state, n, ban, (columns, values) in zip(
        states, ns, banned, scorer.top_many(states, ns, banned), strict=True
    ):
        expected_columns, expected_values = float_top(scorer, state, n, ban)
        np.testing.assert_allclose(values, expected_values, rtol=1e-6, atol=1e-5)
        assert list(columns) == list(expected_columns) or set(columns) == set(expected_columns)
        assert not set(columns) & set(ban.tolist())


def test_fewer_eligible_items_than_n(trained_gru: GRU4Rec) -> None:
    scorer = GRU4RecScorer(trained_gru)
    n_items = scorer.weights.shape[0]
    banned = np.arange(3, n_items)
    state = torch.tanh(torch.randn(1, scorer.hidden, generator=torch.Generator().manual_seed(0)))
    columns, _ = scorer.top(state, 10, banned)
    assert sorted(columns.tolist()) == [0, 1, 2]


def test_without_int8_kernels_the_float_path_answers(
    tied_model: GRU4Rec, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*args: object) -> None:
        raise RuntimeError("no quantized engine")

    monkeypatch.setattr(Int8Prescreen, "__init__", unavailable)
    scorer = GRU4RecScorer(tied_model)
    assert scorer.prescreen is None
    state = random_states(scorer.hidden, 1, seed=5)[0]
    banned = np.array([1, 2, 3])
    columns, values = scorer.top(state, 10, banned)
    expected_columns, expected_values = float_top(scorer, state, 10, banned)
    np.testing.assert_allclose(values, expected_values, atol=1e-6)
    assert set(columns) == set(expected_columns.tolist())
    assert columns.tolist() == Scorer.top(scorer, state, 10, banned)[0].tolist()


def test_a_partly_exact_top_n_is_exact_where_asked_and_int8_ordered_behind(
    tied_model: GRU4Rec,
) -> None:
    scorer = GRU4RecScorer(tied_model)
    rng = np.random.default_rng(7)
    for state in random_states(scorer.hidden, 10, seed=11):
        banned = rng.choice(1000, 15, replace=False)
        (columns, values), (only_int8, _) = scorer.top_many(
            [state, state], [60, 30], [banned, banned], [10, 0]
        )
        expected_columns, expected_values = float_top(scorer, state, 10, banned)
        np.testing.assert_allclose(values[:10], expected_values, rtol=1e-6, atol=1e-5)
        assert set(columns[:10]) == set(expected_columns)
        assert len(columns) == 60 and len(set(columns)) == 60
        assert not set(columns) & set(banned.tolist())
        approx = scorer.prescreen(state)[0][0]
        approx[banned] = -np.inf
        approx[columns[:10]] = -np.inf
        assert list(columns[10:]) == list(np.argsort(-approx, kind="stable")[:50])
        approx_all = scorer.prescreen(state)[0][0]
        approx_all[banned] = -np.inf
        assert set(only_int8) == set(np.argsort(-approx_all)[:30])


# -- at the serving benchmark's shape ---------------------------------------------------------
BENCH_ITEMS, BENCH_HIDDEN = 43_097, 100  # benchmarks/bench_serving.py: Diginetica, 100 units


@pytest.fixture(scope="module")
def bench_gru() -> GRU4Rec:
    """A GRU4Rec of the benchmark's shape with random weights instead of training: the
    network's own (Glorot) initialisation, item vectors of unequal lengths (training grows
    the popular items') and a random bias."""
    config = GRU4RecConfig(layers=(BENCH_HIDDEN,), seed=11)
    model = GRU4Rec(config)
    model.item_ids = np.array([f"i{k}" for k in range(BENCH_ITEMS)], dtype=object)
    net = GRU4RecNet(BENCH_ITEMS, config)
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        lengths = torch.exp(0.5 * torch.randn(BENCH_ITEMS, 1, generator=generator))
        net.item_weights.mul_(20.0 * lengths)
        net.item_bias.copy_(0.3 * torch.randn(BENCH_ITEMS, generator=generator))
    net.eval()
    model.net = net
    return model


def session_states(model: GRU4Rec, seed: int) -> list[tuple[torch.Tensor, np.ndarray]]:
    """States the model reaches after random sessions (1, 3 and 8 events), and each
    session's items; plus two made-up states of large and small values."""
    rng = np.random.default_rng(seed)
    found = []
    for length, count in ((1, 40), (3, 40), (8, 40)):
        items = rng.integers(0, model.n_items, (count, length))
        state = model.initial_state(count)
        for step in range(length):
            state = model.step(state, items[:, step], np.zeros(count))
        found += [(state[b : b + 1].clone(), items[b]) for b in range(count)]
    generator = torch.Generator().manual_seed(seed)
    found.append((torch.tanh(3 * torch.randn(1, BENCH_HIDDEN, generator=generator)), items[0]))
    found.append((0.01 * torch.randn(1, BENCH_HIDDEN, generator=generator), items[1]))
    return found


def exact_top(model: GRU4Rec, state: torch.Tensor, n: int, banned: np.ndarray) -> np.ndarray:
    """The float top-n values from `GRU4Rec.score` itself, best first."""
    scores = model.score(state)[0].astype(np.float64)
    scores[banned] = -np.inf
    return np.sort(scores)[::-1][:n]


def assert_exact(
    model: GRU4Rec, state: torch.Tensor, banned: np.ndarray, answer: Any, n: int = 10
) -> None:
    """`answer` (columns, values) is an exact top-n (ties aside): its items' own float
    scores are the n best scores, best first, and none is banned or repeated."""
    columns, values = answer
    own = model.score(state, columns)[0]
    expected = exact_top(model, state, n, banned)
    np.testing.assert_allclose(own, expected, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(values, own, rtol=1e-6, atol=1e-5)
    assert len(set(columns.tolist())) == n and not set(columns.tolist()) & set(banned.tolist())


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls of the float path (`Scorer.top`): the int8 path's fallback."""
    calls: list[int] = []
    float_top_n = Scorer.top

    def counted(self: Scorer, state: Any, n: int, banned: np.ndarray | None = None) -> Any:
        calls.append(n)
        return float_top_n(self, state, n, banned)

    monkeypatch.setattr(Scorer, "top", counted)
    return calls


def test_at_the_benchmarks_shape_the_int8_top_10_is_gru4recs_exact_top_10(
    bench_gru: GRU4Rec, fallbacks: list[int]
) -> None:
    scorer = GRU4RecScorer(bench_gru)
    assert scorer.prescreen is not None
    rng = np.random.default_rng(3)
    states = session_states(bench_gru, seed=3)
    queries = []
    int8_alone_wrong = 0
    for state, seen in states:
        banned = np.unique(np.concatenate([seen, rng.choice(BENCH_ITEMS, 30, replace=False)]))
        queries.append((state, banned))
        assert_exact(bench_gru, state, banned, scorer.top(state, 10, banned))
        approx = scorer.prescreen(state)[0][0]
        scores = bench_gru.score(state)[0].copy()
        approx[banned] = scores[banned] = -np.inf
        int8_alone_wrong += set(np.argsort(-approx)[:10]) != set(np.argsort(-scores)[:10])
    assert int8_alone_wrong > 0  # the int8 order alone would be wrong: the rescoring counts
    for first, second in zip(queries[::2], queries[1::2], strict=False):  # two at once
        answers = scorer.top_many(
            [first[0], second[0]], [10, 10], [first[1].copy(), second[1].copy()]
        )
        for (state, banned), answer in zip((first, second), answers, strict=True):
            assert_exact(bench_gru, state, banned, answer)
    assert fallbacks == []  # every answer came from the int8 prescreen and its rescoring


def test_when_the_bounds_cannot_settle_the_head_the_fallback_is_exact(
    bench_gru: GRU4Rec, fallbacks: list[int]
) -> None:
    """5,000 items nearly alike (far closer than the int8 error) and best for the state:
    more than MAX_RESCORED items may be in the top 10, so the int8 path hands the query to
    the float path, whose answer is still GRU4Rec's exact top 10."""
    assert bench_gru.net is not None
    weights = bench_gru.net.item_weights.detach().clone()
    bias = bench_gru.net.item_bias.detach().clone()
    generator = torch.Generator().manual_seed(8)
    state = torch.tanh(2 * torch.randn(1, BENCH_HIDDEN, generator=generator))
    alike = torch.arange(1000, 6000)
    direction = state[0] / state[0].norm()
    weights[alike] = 2.0 * direction + 1e-4 * torch.randn(len(alike), BENCH_HIDDEN,
                                                         generator=generator)  # fmt: skip
    bias[alike] = 0.0
    tied = with_items(bench_gru, weights, bias)
    scorer = GRU4RecScorer(tied)
    assert scorer.prescreen is not None
    approx, bounds = (row[0] for row in scorer.prescreen(state))
    head = np.argsort(-approx)[:10]
    threshold = (approx[head] - bounds[head]).min()
    assert np.count_nonzero(approx + bounds >= threshold) > MAX_RESCORED  # the fallback's case
    banned = np.array([1000, 1001, 4321, 7])
    assert_exact(tied, state, banned, scorer.top(state, 10, banned))
    assert fallbacks == [10]  # the float path answered, once
    other = session_states(tied, seed=4)[0][0]
    both = scorer.top_many([state, other], [10, 10], [banned.copy(), banned.copy()])
    assert_exact(tied, state, banned, both[0])
    assert_exact(tied, other, banned, both[1])
    assert fallbacks == [10, 10]  # only the query of the alike items fell back


@pytest.mark.parametrize("slower", ["int8", "float32"])
def test_serving_keeps_whichever_path_this_machine_runs_faster(
    trained_gru: GRU4Rec, monkeypatch: pytest.MonkeyPatch, slower: str
) -> None:
    """Both paths give the same exact top-n; the scorer keeps the int8 prescreen only where it
    is the faster (here one path is made slower by a pause in its own first step)."""
    scorer = GRU4RecScorer(trained_gru)
    prescreen = scorer.prescreen
    assert prescreen is not None
    states = random_states(trained_gru.config.layers[-1], 4, seed=5)
    expected = [scorer.top(state, 10)[0] for state in states]
    if slower == "int8":
        fast_scores = prescreen.scores
        monkeypatch.setattr(
            prescreen, "scores", lambda last: (time.sleep(0.002), fast_scores(last))[1]
        )
    else:
        float_scores = GRU4RecScorer.__call__
        monkeypatch.setattr(
            GRU4RecScorer,
            "__call__",
            lambda self, state: (time.sleep(0.002), float_scores(self, state))[1],
        )
    timings = scorer.keep_the_faster_path(states, rounds=2)
    assert timings[slower] > 2.0 > timings["int8" if slower == "float32" else "float32"]
    assert (scorer.prescreen is None) == (slower == "int8")
    monkeypatch.undo()
    assert all(
        np.array_equal(scorer.top(s, 10)[0], e) for s, e in zip(states, expected, strict=True)
    )
