"""Keyword recall by meta-paths over the query graph.

A shopper's recent items, each weighted by its action (a purchase says more than a view) and
decayed by age (`half_life_seconds`), form a vector over the graph's items. Walking the graph
from it gives each query a score per path:

    i2q:   user -> item -> query                         u @ i2q
    c2q:   user -> item -> category -> query             u @ item_categories (rows normalised) @ c2q
    scene: user -> item -> category -> scenario -> query u @ item_categories (...) @ c2s @ s2q

Each path's scores are divided by their sum (so paths with more mass do not drown the others)
and the combined score is their sum. A keyword keeps the score of every path that found it:
the ranker's features, and the card's "why".

`recall_matrix` does this for many shoppers at once (rows of a sparse matrix), which is how
the recall is measured; `recall_keywords` is one shopper, which is how it is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from nextbest.keywords.graph import DEFAULT_WEIGHTS, QueryGraph, walk

PATHS = ("i2q", "c2q", "scene")


@dataclass(frozen=True)
class RecallConfig:
    half_life_seconds: float = 7 * 86_400.0  # an item seen a week ago counts half
    weights: tuple[tuple[str, float], ...] = tuple(DEFAULT_WEIGHTS.items())
    # each path's share of the combined score (the scene path's equal share was chosen on
    # validation days: docs/keywords.md)
    path_weights: tuple[tuple[str, float], ...] = tuple((path, 1.0) for path in PATHS)

    def __post_init__(self) -> None:
        if not self.half_life_seconds > 0:
            raise ValueError(
                f"half_life_seconds must be a number > 0, not {self.half_life_seconds!r}"
            )
        for path, weight in self.path_weights:
            if path not in PATHS or weight < 0:
                raise ValueError(
                    f"path weight {path}={weight!r}: the paths are {', '.join(PATHS)}, "
                    "each weighted >= 0"
                )

    def combined(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        """The paths' scores summed, each by its weight."""
        weight_of = dict(self.path_weights)
        return sum((weight_of.get(p, 0.0) * s for p, s in scores.items()), np.zeros(1))


@dataclass(frozen=True)
class Keyword:
    query: str
    score: float  # the paths' normalised scores summed (by RecallConfig.path_weights)
    paths: dict[str, float]  # each path that found it: its normalised score


def history_matrix(
    graph: QueryGraph,
    histories: Sequence[Sequence[tuple[str, str, float]]],
    now: Sequence[float],
    config: RecallConfig,
) -> sp.csr_matrix:
    """[shoppers, I]: each history's (item_id, action, timestamp) events, weighted by action and
    decayed to `now`; items and actions the graph does not know count nothing."""
    index = graph.item_index()
    weight_of = dict(config.weights)
    rows, columns, values = [], [], []
    for row, (events, at) in enumerate(zip(histories, now, strict=True)):
        for item_id, action, timestamp in events:
            column, weight = index.get(item_id), weight_of.get(action, 0.0)
            if column is None or weight <= 0:
                continue
            age = max(0.0, at - timestamp)
            rows.append(row)
            columns.append(column)
            values.append(weight * 0.5 ** (age / config.half_life_seconds))
    return sp.csr_matrix(
        (values, (rows, columns)), shape=(len(histories), len(graph.item_ids)), dtype=np.float64
    )


def path_scores(graph: QueryGraph, history: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Each path's query scores [shoppers, Q], every row summing to 1 (or 0 when the path
    finds nothing)."""
    categories = history @ graph.category_spread()
    walks = {
        "i2q": history @ graph.i2q,
        "c2q": categories @ graph.c2q,
        "scene": categories @ graph.scenario_walk(),
    }
    scores = {}
    for name, walked in walks.items():
        dense = np.asarray(sp.csr_matrix(walked).todense(), dtype=np.float64)
        sums = dense.sum(axis=1, keepdims=True)
        scores[name] = np.divide(dense, sums, out=np.zeros_like(dense), where=sums > 0)
    return scores


def recall_matrix(
    graph: QueryGraph, history: sp.csr_matrix, n: int, config: RecallConfig | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The combined top-`n` query indices per shopper [shoppers, n] (-1 where fewer were
    found), and each path's own top `n` the same way."""
    scores = path_scores(graph, history)
    combined = (config or RecallConfig()).combined(scores)
    return _top(combined, n), {name: _top(value, n) for name, value in scores.items()}


@dataclass(frozen=True)
class ShopperWeights:
    items: dict[int, float]  # graph item -> weight (by action, decayed)
    categories: dict[int, float]  # graph category -> weight (the items' spread over levels)


def shopper_weights(
    graph: QueryGraph, events: Sequence[tuple[str, str, float]], now: float, config: RecallConfig
) -> ShopperWeights:
    """A shopper's (item_id, action, timestamp) events as weights of the graph's items (by
    action, decayed to `now`) and of its categories (the items' spread over their levels)."""
    item_of, weight_of = graph.item_index(), dict(config.weights)
    items: dict[int, float] = {}
    for item_id, action, timestamp in events:
        column, weight = item_of.get(item_id), weight_of.get(action, 0.0)
        if column is None or weight <= 0:
            continue
        age = max(0.0, now - timestamp)
        items[column] = items.get(column, 0.0) + weight * 0.5 ** (age / config.half_life_seconds)
    categories = walk(graph.lookups.spread, items, len(graph.categories))
    on = np.flatnonzero(categories)
    return ShopperWeights(items, dict(zip(on.tolist(), categories[on].tolist(), strict=True)))


def weighted_path_scores(graph: QueryGraph, weights: ShopperWeights) -> dict[str, np.ndarray]:
    """`path_scores` of one shopper [Q] per path, by dense walks over the graph's rows (a
    request's cost is its history, not the catalog)."""
    n_queries = len(graph.queries)
    walked = {
        "i2q": walk(graph.i2q, weights.items, n_queries),
        "c2q": walk(graph.c2q, weights.categories, n_queries),
        "scene": walk(graph.scenario_walk(), weights.categories, n_queries),
    }
    scores = {}
    for name, values in walked.items():
        total = values.sum()
        scores[name] = values / total if total > 0 else values
    return scores


def shopper_path_scores(
    graph: QueryGraph, events: Sequence[tuple[str, str, float]], now: float, config: RecallConfig
) -> dict[str, np.ndarray]:
    """`weighted_path_scores` of a shopper's events."""
    return weighted_path_scores(graph, shopper_weights(graph, events, now, config))


def recall_keywords(
    graph: QueryGraph,
    events: Sequence[tuple[str, str, float]],
    now: float,
    n: int = 50,
    config: RecallConfig | None = None,
    exclude: frozenset[str] = frozenset(),
) -> list[Keyword]:
    """One shopper's `n` best keywords from their (item_id, action, timestamp) events, leaving
    out `exclude` (what they searched already). The same scores as `recall_matrix`'s row, by
    dense walks over the graph's rows (a request's cost is its history, not the catalog)."""
    config = config or RecallConfig()
    scores = shopper_path_scores(graph, events, now, config)
    return keywords_of(graph, scores, n, config, exclude)


def keywords_of(
    graph: QueryGraph,
    scores: dict[str, np.ndarray],
    n: int,
    config: RecallConfig,
    exclude: frozenset[str] = frozenset(),
) -> list[Keyword]:
    """The `n` best keywords of one shopper's path `scores`, leaving out `exclude`."""
    combined = config.combined(scores)
    found: list[Keyword] = []
    positive = np.flatnonzero(combined > 0)  # best first, ties by index, as `_top`
    for column in positive[np.lexsort((positive, -combined[positive]))][: n + len(exclude)]:
        query = graph.queries[column]
        if query in exclude:
            continue
        paths = {name: float(s[column]) for name, s in scores.items() if s[column] > 0}
        found.append(Keyword(query, float(combined[column]), paths))
        if len(found) == n:
            break
    return found


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Column indices of each row's `n` highest positive scores, best first, ties by index;
    -1 pads rows with fewer."""
    rows, width = scores.shape
    n_kept = min(n, width)
    result = np.full((rows, n), -1, dtype=np.int64)
    if n_kept == 0:
        return result
    order = np.lexsort((np.broadcast_to(np.arange(width), scores.shape), -scores), axis=1)
    best = order[:, :n_kept]
    positive = np.take_along_axis(scores, best, axis=1) > 0
    result[:, :n_kept] = np.where(positive, best, -1)
    return result
