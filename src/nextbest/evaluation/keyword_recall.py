"""Would the keyword card have offered what the shopper searched next? Recall of the meta-paths.

Until the card's own impressions and clicks exist, the next search stands for the keyword a
shopper wanted: each test-period search of a query not searched earlier in its session is a
case (a repeated search is no new intent). What was known just before it: the shopper's
latest `max_history` item events (a signed-in user's across sessions and from training, an
anonymous visitor's within the session), each weighted by action and decayed by age. A case
is found by a path when its query is in that path's top `n`. `popular` (the `n` most searched
queries in training, the same for everyone) is the baseline a path must beat.

Cases whose query the graph never saw cannot be found by any path; they stay in the
denominator (the graph's coverage is part of the recall), and the result says how many.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

import numpy as np
import polars as pl

from nextbest.keywords.graph import QueryGraph, normalise_query, normalise_text
from nextbest.keywords.ranking import conform_cards, recent_item_events
from nextbest.keywords.recall import PATHS, RecallConfig, history_matrix, recall_matrix

CHUNK = 2_000  # cases scored at once ([CHUNK, Q] dense scores)


@dataclass(frozen=True)
class KeywordRecallResult:
    cases: int
    known_queries: int  # cases whose query is in the graph
    with_history: int  # cases with at least one item event before them
    n: int
    found: dict[str, int]  # path (and "combined") -> cases found in its top n

    def recall(self) -> dict[str, float]:
        return {path: hits / max(self.cases, 1) for path, hits in self.found.items()}


def evaluate_keyword_recall(
    graph: QueryGraph,
    train: pl.DataFrame,
    test: pl.DataFrame,
    n: int = 50,
    config: RecallConfig | None = None,
    max_history: int = 50,
) -> KeywordRecallResult:
    cases, histories, times = _cases(train, test, max_history)
    return recall_of_cases(graph, cases, histories, times, n, config)


def evaluate_card_recall(
    graph: QueryGraph,
    events: pl.DataFrame,
    cards: pl.DataFrame,
    n: int = 50,
    config: RecallConfig | None = None,
    max_history: int = 50,
) -> KeywordRecallResult:
    """The same recall, of the keywords clicked on `cards` (CARD_SCHEMA): each click is a
    case, its history the shopper's latest `max_history` item events up to the card."""
    clicked = conform_cards(cards).filter(pl.col("clicked")).sort("timestamp", "card_id")
    if clicked.height == 0:
        return recall_of_cases(graph, [], [], [], n, config)
    histories = recent_item_events(clicked, events, max_history)
    queries = [normalise_text(q) for q in clicked["query"]]
    return recall_of_cases(graph, queries, histories, clicked["timestamp"].to_list(), n, config)


def recall_of_cases(
    graph: QueryGraph,
    cases: list[str],
    histories: list[list[tuple[str, str, float]]],
    times: list[float],
    n: int = 50,
    config: RecallConfig | None = None,
) -> KeywordRecallResult:
    """Which paths find each case's query (`cases`) in their top `n` from its history."""
    if n < 1:
        raise ValueError(f"n must be >= 1, not {n}")
    config = config or RecallConfig()
    query_of = graph.query_index()
    targets = np.array([query_of.get(q, -1) for q in cases], dtype=np.int64)
    found = dict.fromkeys((*PATHS, "combined", "popular"), 0)
    popular = set(np.argsort(-graph.searches, kind="stable")[:n].tolist())
    found["popular"] = sum(1 for t in targets.tolist() if t in popular)
    for first in range(0, len(cases), CHUNK):
        rows = slice(first, first + CHUNK)
        history = history_matrix(graph, histories[rows], times[rows], config)
        combined, per_path = recall_matrix(graph, history, n, config)
        wanted = targets[rows, None]
        hit = (wanted >= 0) & (combined == wanted)
        found["combined"] += int(hit.any(axis=1).sum())
        for path, top in per_path.items():
            found[path] += int(((wanted >= 0) & (top == wanted)).any(axis=1).sum())
    return KeywordRecallResult(
        cases=len(cases),
        known_queries=int((targets >= 0).sum()),
        with_history=sum(1 for h in histories if h),
        n=n,
        found=found,
    )


def _cases(
    train: pl.DataFrame, test: pl.DataFrame, max_history: int
) -> tuple[list[str], list[list[tuple[str, str, float]]], list[float]]:
    """(query, history before it, time) of every first search of a query in a test session."""
    columns = ["session_id", "user_id", "type", "item_id", "timestamp", "query"]
    both = pl.concat(
        [
            train.select(columns).with_columns(pl.lit(False).alias("is_test")),
            test.select(columns).with_columns(pl.lit(True).alias("is_test")),
        ]
    )
    ordered = (
        both.with_row_index("order")
        .sort("timestamp", "order")
        .with_columns(normalise_query(pl.col("query")).alias("query"))
    )
    recent: dict[str, deque[tuple[str, str, float]]] = defaultdict(
        lambda: deque(maxlen=max_history)
    )
    searched: dict[str, set[str]] = defaultdict(set)
    queries: list[str] = []
    histories: list[list[tuple[str, str, float]]] = []
    times: list[float] = []
    for session, user, kind, item, timestamp, query, is_test in ordered.select(
        *columns, "is_test"
    ).iter_rows():
        key = f"u:{user}" if user is not None else f"s:{session}"
        if kind == "search":
            if query and query not in searched[session]:
                searched[session].add(query)
                if is_test:
                    queries.append(query)
                    histories.append(list(recent[key]))
                    times.append(timestamp)
        elif item is not None:
            recent[key].append((item, kind, timestamp))
    return queries, histories, times
