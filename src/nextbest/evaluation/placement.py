"""A whole placement through the next-event protocol: the pipeline the server runs, rules
included, so a rule's cost in accuracy and a diversity knob's gain are measured.

For every test session and position t >= 1, the session's record holds events 0..t-1 (moved
by the same `advance` the server uses), the placement answers its `n` items (the product
placement with event t-1 as the item on screen), and the true item at t is looked up in that
list: Recall@K and MRR@K for K <= n (an item past the list counts as a miss, like a rank past
K). Live counts come from the end of the training data; a registered user starts with the
purchases of their training sessions. Affinity profiles are what the live state would hold at
that point: the session's from its events 0..t-1, the user's from every item event of theirs
before the case (training's and the test's, in any session) and this session's 0..t-1, never
a later one (`UserProfiles`). Reports add intra-list diversity (the share of pairs
in a list from different leaf categories) and category coverage (the share of the catalog's
leaf categories that appear in any list).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import polars as pl

from nextbest.events.schema import CATEGORY_SEPARATOR, Item
from nextbest.recommend.affinity import USER_HALF_LIFE, Affinity, ItemFacets
from nextbest.recommend.affinity import decode as decode_affinity
from nextbest.recommend.affinity import encode as encode_affinity
from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context, Query
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import Placement
from nextbest.serving.live import Applied, advance, fresh_record
from nextbest.serving.registry import LoadedModel
from nextbest.serving.state.records import SessionRecord, UserRecord, add_purchase
from nextbest.twostage.store.definitions import of_entities_of
from nextbest.twostage.store.offline import EventsAsOf, ReaderAt

PURCHASE = "purchase"


class StaticCounts:
    """Popularity and co-visitation counted over the last `window` events of a table (the
    offline stand-in for the server's live `Trends`)."""

    def __init__(self, events: pl.DataFrame, window: int = 200_000) -> None:
        recent = events.sort(["timestamp"]).tail(window)
        items = recent["item_id"].to_list()
        sessions = recent["session_id"].to_list()
        self._counts: Counter[str] = Counter(i for i in items if i is not None)
        self._latest = [i for i in items if i is not None]  # item events, oldest first
        self._windows: dict[int, Counter[str]] = {}
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

    def recent_counts(self, item_ids: list[str], window: int) -> np.ndarray:
        """Each item's events among the latest `window` item events (as `Trends`)."""
        counts = self._windows.get(window)
        if counts is None:
            counts = self._windows[window] = Counter(self._latest[-window:])
        return np.array([counts.get(item, 0) for item in item_ids], dtype=np.float32)

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


class UserProfiles:
    """Each user's affinity profile at any point of a walk through the test sessions, from
    `events` (training's and the test's): `start` a session, then `at` each case's time adds
    the user's events of other sessions before it, and `add` this session's own as they are
    applied, as the live state adds every committed event of the user."""

    def __init__(self, events: pl.DataFrame, facets: ItemFacets) -> None:
        frame = events.filter(
            pl.col("user_id").is_not_null() & pl.col("item_id").is_not_null()
        ).sort(["user_id", "timestamp"], maintain_order=True)
        self.facets = facets
        self._frame = frame.select("timestamp", "session_id", "type", "item_id")
        users = frame["user_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]).tolist() if len(users) else []
        ends = [*starts[1:], len(users)] if starts else []  # no user events: no spans
        self._span = {str(users[a]): (int(a), int(b)) for a, b in zip(starts, ends, strict=True)}
        self._user: str | None = None
        self._session: str | None = None
        self._rows: list[tuple[float, str, str, str]] = []  # the user's events, by time
        self._next = 0
        self.profile = Affinity()

    def start(self, user: str | None, session_id: str) -> None:
        self._user, self._session, self._next = user, session_id, 0
        start, end = self._span.get(user, (0, 0)) if user else (0, 0)
        self._rows = self._frame.slice(start, end - start).rows() if end > start else []
        self.profile = Affinity()

    def at(self, when: float) -> Affinity | None:
        """The user's profile before `when` (None: no user, or nothing known of them)."""
        if self._user is None:
            return None
        rows, facets, profile = self._rows, self.facets, self.profile
        while self._next < len(rows) and rows[self._next][0] < when:
            time, session, kind, item = rows[self._next]
            self._next += 1
            item_facets = facets.get(item)
            if session != self._session and item_facets is not None:
                profile.add(item_facets, kind, time, USER_HALF_LIFE)
        return None if profile.empty else decode_affinity(encode_affinity(profile))  # a copy

    def add(self, item: str, kind: str, when: float) -> None:
        item_facets = self.facets.get(item)
        if self._user is not None and item_facets is not None:
            self.profile.add(item_facets, kind, when, USER_HALF_LIFE)


def facets_of_table(items: ItemTable) -> ItemFacets:
    """The affinity facets of the table's items (what the server takes from its catalog)."""
    listed = []
    for row, item_id in enumerate(items.ids):
        path = items.category[row]
        price, discount = float(items.price[row]), float(items.discount[row])
        listed.append(
            Item(
                item_id=str(item_id),
                category_path=tuple(str(path).split(CATEGORY_SEPARATOR)) if path else (),
                brand=items.brand[row],
                price=None if np.isnan(price) else price,
                discount=None if np.isnan(discount) else discount,
            )
        )
    return ItemFacets.build(listed)


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
    profiles: UserProfiles | None = None,
    at_start: bool = False,
    store: EventsAsOf | None = None,
) -> Iterator[Case]:
    """Every case of the test events (EVENT_SCHEMA; item events only, in time order per
    session), with the placement's list for it; with `profiles`, the session's and the
    user's affinity profiles as they stand before each case. `at_start`: instead, one case
    per session, the list before its first event (what a returning user's first page shows;
    not for a placement that needs an item on screen). `store`: the feature store's values
    computed from the events, read as of each case (a ranker with store features)."""
    needs_item = "item_id" in placement.needs
    if at_start and needs_item:
        raise ValueError(f"placement {placement.name!r} needs an item on screen: no first page")
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
        facets = profiles.facets if profiles is not None else None
        if profiles is not None:
            profiles.start(user_id, session_id)
        for t, (item, kind, when, _) in enumerate(rows):
            if at_start and t > 0:
                break
            if (t > 0 or at_start) and item in items.row_of:
                query = Query(
                    n=n,
                    placement=placement.name,
                    session_id=session_id,
                    user_id=user_id,
                    item_id=record.last_item if needs_item else None,
                    now=when,
                )
                user_affinity = partial(profiles.at, when) if profiles is not None else None
                ctx = Context(
                    query, model, items, record, live, when, user, rules, facets, user_affinity
                )
                if store is not None:
                    ctx.feature_store = ReaderAt(store, when)
                shown = placement.pipeline.recommend(ctx)
                yield Case(ctx, shown, items.row_of[item], kind, session_id, t)
            step = Applied(t + 1, kind, item, when, user_id)
            record = advance(model, [record], [[step]], facets)[0]
            if profiles is not None:
                profiles.add(item, kind, when)
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
    profiles = UserProfiles(pl.concat([train, test]), facets_of_table(items))
    ranks: list[float] = []
    diverse: list[float] = []
    categories_seen: set[int] = set()
    store = None
    if store_features_of(model):  # as a server that materializes daily would read them
        columns = ["item_id", "type", "timestamp", "user_id", "session_id"]
        events = pl.concat([train.select(columns), test.select(columns)])
        store = EventsAsOf(events, of_entities_of(store_features_of(model)))
    cases = walk(
        placement, model, items, live, test, users, n, max_sessions, progress, profiles,
        store=store,
    )  # fmt: skip
    for case in cases:
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


def store_features_of(model: LoadedModel | None) -> tuple[str, ...]:
    """The store features a loaded version's ranker reads (none for a single model)."""
    spec = getattr(model.model, "spec", None) if model is not None else None
    return tuple(getattr(spec, "store_features", ()))
