"""Does personalising the search put the result the shopper clicked higher? MRR of the click.

A case is a search followed by a click on one of its results (an item event carrying the same
query, the first after the search in its session). The catalog's full-text index answers the
query (BM25, its top `n`), and those matches go through the server's own `search` placement as
its candidates: the `personal` ranker fuses their BM25 order with the session model's order of
them (reciprocal rank fusion, the model's side weighted by `ranker_weights.personal`), after
the placement's exclusions. The session's record is moved by every item event before the
search, as the server moves it. The clicked item's rank gives the reciprocal rank (0 when the
search did not find it or the placement excluded it, the same for every weight).

Weight 0 is BM25 alone through the same pipeline; the others are the personalised search.
Compare `weights` in one pass, choose one on a validation period, report it on the test.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import polars as pl

from nextbest.evaluation.placement import StaticCounts, user_histories
from nextbest.keywords.graph import normalise_query
from nextbest.keywords.search import ProductSearch
from nextbest.recommend.context import Context, Query
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import DEFAULT_FILE, Placement, parse_placements
from nextbest.serving.live import Applied, advance, fresh_record
from nextbest.serving.registry import LoadedModel
from nextbest.serving.state.records import SessionRecord, UserRecord

SEARCH = "search"


@dataclass(frozen=True)
class SearchResult:
    cases: int
    found: int  # cases whose clicked item was among the full-text matches
    mrr: dict[float, float]  # the personal weight -> mean reciprocal rank over all cases

    def label(self, weight: float) -> str:
        return "bm25" if weight == 0 else f"personal w={weight:g}"


def search_placements(weights: Sequence[float]) -> dict[float, Placement]:
    """The shipped `search` placement once per personal weight (0: BM25's order alone)."""
    shipped = tomllib.loads(DEFAULT_FILE.read_text())
    spec = shipped["placements"][SEARCH]
    variants = {}
    for weight in weights:
        if weight < 0:
            raise ValueError(f"a personal weight must be >= 0, not {weight}")
        raw = {
            "filters": shipped.get("filters", {}),
            "placements": {SEARCH: {**spec, "ranker_weights": {"personal": weight}}},
        }
        variants[weight] = parse_placements(raw, f"{DEFAULT_FILE} (personal={weight:g})")[SEARCH]
    return variants


def evaluate_search(
    index: ProductSearch,
    model: LoadedModel,
    items: ItemTable,
    train: pl.DataFrame,
    test: pl.DataFrame,
    weights: Sequence[float] = (0.0, 2.0),
    n: int = 100,
    progress: Callable[[int], None] | None = None,
) -> SearchResult:
    """MRR of the clicked result for each personal weight over the test log's search cases
    (`test`: the full log of the period, searches included)."""
    placements = search_placements(weights)
    live, users = StaticCounts(train), user_histories(train)
    reciprocal = dict.fromkeys(placements, 0.0)
    cases = found = 0
    for case in _cases(index, model, users, test, n, progress):
        cases += 1
        if case.clicked not in case.matches:
            continue
        found += 1
        query = Query(
            n=len(case.matches), placement=SEARCH, session_id=case.session_id,
            user_id=case.user_id, candidates=tuple(case.matches), now=case.when,
        )  # fmt: skip
        for weight, placement in placements.items():
            ctx = Context(
                query, model, items, case.record, live, case.when, case.user,
                model.purchase_rules,
            )  # fmt: skip
            shown = [str(items.ids[row]) for row in placement.pipeline.recommend(ctx).rows]
            if case.clicked in shown:
                reciprocal[weight] += 1.0 / (1 + shown.index(case.clicked))
    return SearchResult(cases, found, {w: r / max(cases, 1) for w, r in reciprocal.items()})


@dataclass(frozen=True)
class _Case:
    session_id: str
    user_id: str | None
    user: UserRecord | None
    record: SessionRecord  # the session moved by its item events before the search
    when: float
    matches: list[str]  # the full-text matches, best first
    clicked: str


def _cases(
    index: ProductSearch,
    model: LoadedModel,
    users: dict[str, UserRecord],
    test: pl.DataFrame,
    n: int,
    progress: Callable[[int], None] | None,
) -> Iterator[_Case]:
    ordered = (
        test.with_row_index("order")
        .sort("session_id", "timestamp", "order")
        .with_columns(normalise_query(pl.col("query")).alias("query"))
    )
    for session in ordered.partition_by("session_id", maintain_order=True):
        session_id = str(session["session_id"][0])
        rows = session.select("type", "item_id", "query", "timestamp", "user_id").rows()
        user_id = next((u for *_, u in rows if u), None)
        user = users.get(user_id) if user_id else None
        record: SessionRecord = fresh_record(model)
        pending: str | None = None  # the query of the latest search without a click yet
        steps = 0
        for kind, item, query, when, _ in rows:
            if kind == SEARCH:
                pending = query or None
                continue
            if item is None:
                continue
            if pending is not None and query == pending:
                matches = [found for found, _ in index.search(pending, n)]
                yield _Case(session_id, user_id, user, record, when, matches, item)
                pending = None
            steps += 1
            record = advance(model, [record], [[Applied(steps, kind, item, when, user_id)]])[0]
        if progress is not None:
            progress(1)


def best_weight(result: SearchResult) -> float:
    """The weight of the highest MRR (the smallest of ties: the least personal change)."""
    return min(result.mrr, key=lambda w: (-result.mrr[w], w))


def mrr_rows(valid: SearchResult, test: SearchResult | None) -> list[list[str]]:
    rows = []
    for weight in sorted(valid.mrr):
        shown = "" if test is None or weight not in test.mrr else f"{test.mrr[weight]:.4f}"
        rows.append([valid.label(weight), f"{valid.mrr[weight]:.4f}", shown])
    return rows
