"""A whole placement through the next-event protocol: the pipeline the server runs, rules
included, so a rule's cost in accuracy and a diversity knob's gain are measured.

For every test session and position t >= 1, the session's record holds events 0..t-1 (moved
by the same `advance` the server uses), the placement answers its `n` items (the product
placement with event t-1 as the item on screen), and the true item at t is looked up in that
list: Recall@K and MRR@K for K <= n (an item past the list counts as a miss, like a rank past
K). Live counts come from the end of the training data; a registered user starts with the
purchases of their training sessions. Reports add intra-list diversity (the share of pairs
in a list from different leaf categories) and category coverage (the share of the catalog's
leaf categories that appear in any list).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context, Query
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import Placement
from nextbest.serving.live import Applied, advance, fresh_record
from nextbest.serving.registry import LoadedModel
from nextbest.serving.state.records import SessionRecord, UserRecord, add_purchase

PURCHASE = "purchase"


class StaticCounts:
    """Popularity and co-visitation counted over the last `window` events of a table (the
    offline stand-in for the server's live `Trends`)."""

    def __init__(self, events: pl.DataFrame, window: int = 200_000) -> None:
        recent = events.sort(["timestamp"]).tail(window)
        items = recent["item_id"].to_list()
        sessions = recent["session_id"].to_list()
        self._counts: Counter[str] = Counter(i for i in items if i is not None)
        self._ranking = [item for item, _ in self._counts.most_common()]
        self._followers: dict[str, Counter[str]] = {}
        self._row_counts: tuple[ItemTable, np.ndarray] | None = None
        self._unknown: tuple[LoadedModel, list[str]] | None = None
        last: dict[str, str] = {}
        for session, item in zip(sessions, items, strict=True):
            if item is None:
                continue
            previous = last.get(session)
            last[session] = item
            if previous is not None and previous != item:
                self._followers.setdefault(previous, Counter())[item] += 1

    def popular(
        self,
        k: int,
        skip: Callable[[str], bool],
        min_count: int = 1,
        unknown_to: LoadedModel | None = None,
    ) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        ranking = self._ranking
        if unknown_to is not None:  # the ranking cut to items the model does not know, once
            cached = self._unknown
            if cached is None or cached[0] is not unknown_to:
                cached = self._unknown = (
                    unknown_to,
                    [item for item in ranking if item not in unknown_to.index],
                )
            ranking = cached[1]
        for item in ranking:
            count = self._counts[item]
            if count < min_count:
                break
            if not skip(item):
                found.append((item, float(count)))
                if len(found) == k:
                    break
        return found

    def followers(
        self, item_id: str, k: int, skip: Callable[[str], bool]
    ) -> list[tuple[str, float]]:
        counter = self._followers.get(item_id)
        ranked = counter.most_common() if counter else []
        return [(item, float(c)) for item, c in ranked if not skip(item)][:k]

    def count_rows(self, items: ItemTable) -> np.ndarray:
        cached = self._row_counts
        if cached is not None and cached[0] is items:
            return cached[1]
        array = np.array([self._counts.get(item, 0) for item in items.ids], dtype=np.float64)
        self._row_counts = (items, array)
        return array


@dataclass(frozen=True)
class Case:
    """One list answered before a known next event."""

    ctx: Context
    shown: Candidates
    target_row: int  # the next event's item
    target_type: str
    session_id: str
    position: int  # 1: the list after the session's first event


@dataclass
class PlacementResult:
    placement: str
    n: int
    cases: int
    metrics: dict[str, float]
    eval_seconds: float
    extra: dict[str, float] = field(default_factory=dict)


def user_histories(train: pl.DataFrame) -> dict[str, UserRecord]:
    """Each registered user's purchases in the training events (bought and when)."""
    bought = train.filter((pl.col("type") == PURCHASE) & pl.col("user_id").is_not_null())
    records: dict[str, UserRecord] = {}
    for user, item, when in (
        bought.sort("timestamp").select("user_id", "item_id", "timestamp").iter_rows()
    ):
        records[user] = add_purchase(records.get(user, UserRecord()), item, when)
    return records


def walk(
    placement: Placement,
    model: LoadedModel | None,
    items: ItemTable,
    live: StaticCounts,
    test: pl.DataFrame,
    users: dict[str, UserRecord],
    n: int,
    max_sessions: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Case]:
    """Every case of the test events (EVENT_SCHEMA; item events only, in time order per
    session), with the placement's list for it."""
    needs_item = "item_id" in placement.needs
    frame = test.filter(pl.col("item_id").is_not_null()).sort(["session_id", "timestamp"])
    groups = frame.partition_by("session_id", maintain_order=True, as_dict=False)
    rules = model.purchase_rules if model is not None else None
    for count, session in enumerate(groups):
        if max_sessions is not None and count >= max_sessions:
            break
        rows = session.select("item_id", "type", "timestamp", "user_id").rows()
        session_id = str(session["session_id"][0])
        record: SessionRecord = fresh_record(model)
        user_id = next((u for *_, u in rows if u), None)
        user = users.get(user_id) if user_id else None
        for t, (item, kind, when, _) in enumerate(rows):
            if t > 0 and item in items.row_of:
                query = Query(
                    n=n,
                    placement=placement.name,
                    session_id=session_id,
                    user_id=user_id,
                    item_id=record.last_item if needs_item else None,
                    now=when,
                )
                ctx = Context(query, model, items, record, live, when, user, rules)
                shown = placement.pipeline.recommend(ctx)
                yield Case(ctx, shown, items.row_of[item], kind, session_id, t)
            step = Applied(t + 1, kind, item, when, user_id)
            record = advance(model, [record], [[step]])[0]
        if progress is not None:
            progress(1)


def evaluate_placement(
    placement: Placement,
    model: LoadedModel | None,
    items: ItemTable,
    train: pl.DataFrame,
    test: pl.DataFrame,
    cutoffs: tuple[int, ...] = (5, 10, 20),
    max_sessions: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> PlacementResult:
    """Recall@K, MRR@K, intra-list diversity and category coverage of the placement's lists."""
    n = max(cutoffs)
    started = time.perf_counter()
    live = StaticCounts(train)
    users = user_histories(train)
    ranks: list[float] = []
    diverse: list[float] = []
    categories_seen: set[int] = set()
    for case in walk(placement, model, items, live, test, users, n, max_sessions, progress):
        hit = np.flatnonzero(case.shown.rows == case.target_row)
        ranks.append(float(hit[0] + 1) if len(hit) else np.inf)
        codes = items.category_code[case.shown.rows]
        diverse.append(intra_list_diversity(codes))
        categories_seen.update(int(c) for c in codes if c >= 0)
    rank = np.array(ranks)
    metrics: dict[str, float] = {}
    for k in cutoffs:
        metrics[f"recall@{k}"] = float((rank <= k).mean()) if len(rank) else 0.0
        metrics[f"mrr@{k}"] = (
            float(np.where(rank <= k, 1.0 / rank, 0.0).mean()) if len(rank) else 0.0
        )
    metrics["intra_list_diversity"] = float(np.mean(diverse)) if diverse else 0.0
    n_categories = len(items.categories)
    metrics["category_coverage"] = len(categories_seen) / n_categories if n_categories else 0.0
    return PlacementResult(placement.name, n, len(rank), metrics, time.perf_counter() - started)


def intra_list_diversity(codes: np.ndarray) -> float:
    """The share of item pairs of one list whose leaf categories differ (unknown: differ)."""
    size = len(codes)
    if size < 2:
        return 0.0
    known = codes[codes >= 0]
    same = sum(c * (c - 1) for c in Counter(known.tolist()).values())
    return 1.0 - same / (size * (size - 1))
