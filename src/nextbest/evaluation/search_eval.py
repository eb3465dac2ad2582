"""Does personalising the search put the result the shopper clicked higher? MRR of the click.

A case is a search followed by a click on one of its results (an item event carrying the same
query, the first after the search in its session). The search runs over the catalog index;
the clicked item's rank in its results gives the reciprocal rank (0 when the search did not
find it, the same for every method: a re-rank cannot add a result). Methods:

    bm25            the full-text order alone
    model w=W       BM25 rank + W x the session model's rank, the model stepped through the
                    session's item events before the search (`search.personalised`)

`weights` are compared in one pass; choose one on a validation period, report it on the test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from nextbest.keywords.graph import normalise_query
from nextbest.keywords.search import ProductSearch, personalised
from nextbest.models.base import SessionModel


@dataclass(frozen=True)
class SearchCase:
    query: str
    clicked: str
    history: list[str]  # the session's item ids before the search, oldest first


@dataclass(frozen=True)
class SearchResult:
    cases: int
    found: int  # cases whose clicked item was among the results
    mrr: dict[str, float]  # method -> mean reciprocal rank over all cases


def search_cases(events: pl.DataFrame) -> list[SearchCase]:
    """Every search of `events` followed in its session by a click on its results."""
    ordered = (
        events.with_row_index("order")
        .sort("session_id", "timestamp", "order")
        .with_columns(normalise_query(pl.col("query")).alias("query"))
    )
    cases: list[SearchCase] = []
    for _, session in ordered.group_by("session_id", maintain_order=True):
        history: list[str] = []
        pending: tuple[str, list[str]] | None = None  # the latest search, its history
        for kind, item, query in session.select("type", "item_id", "query").iter_rows():
            if kind == "search":
                pending = (query, list(history)) if query else None
            elif item is not None:
                if pending is not None and query == pending[0]:
                    cases.append(SearchCase(pending[0], item, pending[1]))
                    pending = None
                history.append(item)
    return cases


def evaluate_search(
    index: ProductSearch,
    cases: Sequence[SearchCase],
    model: SessionModel[Any, Any] | None = None,
    weights: Sequence[float] = (),
    n: int = 100,
) -> SearchResult:
    if model is None and weights:
        raise ValueError("weights need a model to re-rank with")
    vocabulary = [] if model is None or model.item_ids is None else model.item_ids.tolist()
    column_of = {str(item): k for k, item in enumerate(vocabulary)}
    methods = ["bm25", *(f"model w={w:g}" for w in weights)]
    reciprocal = {method: 0.0 for method in methods}
    found = 0
    for case in cases:
        matches = index.search(case.query, n)
        if case.clicked not in {item for item, _ in matches}:
            continue
        found += 1
        reciprocal["bm25"] += 1.0 / _rank(matches, case.clicked)
        if model is None or not weights:
            continue
        scores = _model_scores(model, column_of, case.history, [item for item, _ in matches])
        for weight, method in zip(weights, methods[1:], strict=True):
            reciprocal[method] += 1.0 / _rank(personalised(matches, scores, weight), case.clicked)
    total = max(len(cases), 1)
    return SearchResult(len(cases), found, {m: r / total for m, r in reciprocal.items()})


def _rank(ranked: list[tuple[str, float]], item: str) -> int:
    return 1 + [i for i, _ in ranked].index(item)


def _model_scores(
    model: SessionModel[Any, Any], column_of: dict[str, int], history: list[str], items: list[str]
) -> dict[str, float]:
    """The model's scores of `items` after stepping through `history` (unknown items skipped;
    nothing known: no scores, so the re-rank keeps the BM25 order)."""
    known = [column_of[i] for i in history if i in column_of]
    if not known:
        return {}
    state = model.initial_state(1)
    for column in known:
        state = model.step(state, np.array([column]), np.zeros(1))
    scores = model.score(state)[0]
    return {item: float(scores[column_of[item]]) for item in items if item in column_of}
