"""The features of every (case, candidate): one code path for offline training and serving.

    stats = ItemStats.build(train_sessions, catalog)      # per item, from the generators' data
    cases = CaseInputs.of(cases)                          # per case: the session so far
    data = ranking_data(merged, cases, stats, label=...)  # RankingData, one row per candidate

Everything is vectorised over the rows; a served request is one case with its candidates.
The feature groups (`GROUPS`) are what the ablation leaves out one at a time:

    generators  each generator's rank, score and gap to its best score; how many proposed it
    item        popularity overall and recent, live popularity (the item's share of the last
                events before the case, of every session: what the server's trends see),
                age since first seen, price, discount
    session     events so far, time since the previous event, the last event's type
    repeat      whether the candidate is in the session, how often, how many steps ago
    match       category of the last item, the session's share of the candidate's
                category, brand and price band
    context     hour of day, placement

and, only in a pipeline that names `store_features` (so not among the ablation's GROUPS):

    store       the feature store's item statistics, as of the case's day: offline from
                the training events, online from Redis (twostage/store/)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from nextbest.data.sessions import Sessions
from nextbest.events.schema import Item
from nextbest.twostage.data import ACTION_CODES, CART, OTHER, PAD, VIEW, History, RankingData
from nextbest.twostage.generate import Cases, Merged

HISTORY = 20  # actions kept per case
RECENT_SHARE = 1 / 7  # "recent" popularity: the last seventh of the training period
# live popularity: the item's events among the last events before the case (of all sessions),
# in windows of these shares of the training events
LIVE_WINDOWS = {"item.live_short": 0.002, "item.live_long": 0.02}
CHUNK_ROWS = 1 << 20
GROUPS = ("generators", "item", "session", "repeat", "match", "context")
PLACEMENTS = {"next": 0, "home": 1, "product": 2, "cart": 3, "email": 4, "search": 5}


@dataclass(frozen=True)
class ItemStats:
    """Per item of the vocabulary: counts from the generators' training data, and the
    catalog's fields (NaN / -1 where unknown)."""

    pop: np.ndarray  # [n_items] float32 events in training
    pop_recent: np.ndarray  # [n_items] float32 events in the recent part of training
    first_seen: np.ndarray  # [n_items] float64 time of the first training event (NaN: none)
    price: np.ndarray  # [n_items] float32
    discount: np.ndarray  # [n_items] float32
    category: np.ndarray  # [n_items] int64 code of the leaf category (-1: unknown)
    brand: np.ndarray  # [n_items] int64 (-1: unknown)
    price_band: np.ndarray  # [n_items] int64 (-1: unknown)
    # the event stream live popularity counts in: keys item * (n + 1) + position, sorted, and
    # the stream's times in order (positions index them); windows in events
    stream_keys: np.ndarray | None = None
    stream_times: np.ndarray | None = None
    live_windows: tuple[int, ...] = ()

    @staticmethod
    def windows_of(train_events: int) -> tuple[int, ...]:
        """The live windows, in events, of a generator trained on `train_events` events."""
        return tuple(max(1, round(train_events * share)) for share in LIVE_WINDOWS.values())

    def with_stream(self, parts: Sequence[Sessions], train_events: int) -> ItemStats:
        """These statistics with a live event stream: every event of `parts`, in time order
        (a case counts only the events before its moment)."""
        items = np.concatenate([p.items for p in parts])
        times = np.concatenate([p.times for p in parts])
        order = np.argsort(times, kind="stable")
        items, times = items[order], times[order]
        n = len(items)
        keys = np.sort(items.astype(np.int64) * (n + 1) + np.arange(n, dtype=np.int64))
        windows = self.windows_of(train_events)
        return replace(self, stream_keys=keys, stream_times=times, live_windows=windows)

    def live_counts(self, item: np.ndarray, moment: np.ndarray) -> list[np.ndarray]:
        """Per window: the events of `item` among the last window's events up to `moment`,
        inclusive: the case's own last event is live already, as it is in a server. (A target
        stamped at the very moment of the event before it would be counted too; none of the
        public test splits nor the demo shop's has one.)"""
        if self.stream_keys is None or self.stream_times is None:
            return [np.full(len(item), np.nan, np.float32) for _ in LIVE_WINDOWS]
        n = len(self.stream_times)
        end = np.searchsorted(self.stream_times, moment, side="right")
        base = item.astype(np.int64) * (n + 1)
        upto = np.searchsorted(self.stream_keys, base + end)
        out = []
        for window in self.live_windows:
            start = np.maximum(end - window, 0)
            out.append((upto - np.searchsorted(self.stream_keys, base + start)).astype(np.float32))
        return out

    @classmethod
    def build(cls, train: Sessions, catalog: Mapping[str, Item] | None = None) -> ItemStats:
        n = train.n_items
        pop = np.bincount(train.items, minlength=n).astype(np.float32)
        times = train.times
        start, end = (float(times.min()), float(times.max())) if len(times) else (0.0, 0.0)
        recent = times >= end - (end - start) * RECENT_SHARE
        pop_recent = np.bincount(train.items[recent], minlength=n).astype(np.float32)
        first_seen = np.full(n, np.inf)
        np.minimum.at(first_seen, train.items, times)
        first_seen[np.isinf(first_seen)] = np.nan
        price = np.full(n, np.nan, np.float32)
        discount = np.full(n, np.nan, np.float32)
        category = np.full(n, -1, np.int64)
        brand = np.full(n, -1, np.int64)
        price_band = np.full(n, -1, np.int64)
        if catalog:
            from nextbest.recommend.affinity import PRICE_BANDS, price_bands

            bands = price_bands(list(catalog.values()))
            codes: dict[object, int] = {}
            for j, item_id in enumerate(train.item_ids):
                item = catalog.get(str(item_id))
                if item is None:
                    continue
                price[j] = np.nan if item.price is None else item.price
                discount[j] = np.nan if item.discount is None else item.discount
                if item.category_path:
                    category[j] = codes.setdefault(("c", item.category_path), len(codes))
                if item.brand:
                    brand[j] = codes.setdefault(("b", item.brand), len(codes))
                band = bands.get(item.item_id)
                if band is not None:
                    price_band[j] = PRICE_BANDS.index(band)
        return cls(pop, pop_recent, first_seen, price, discount, category, brand, price_band)


@dataclass(frozen=True)
class CaseInputs:
    """Per case: what the session shows so far."""

    moment: np.ndarray  # [n_cases] float64 the case's time (its last event's)
    length: np.ndarray  # [n_cases] float32 events so far
    gap: np.ndarray  # [n_cases] float32 seconds between the last two events (NaN: one event)
    history: History  # the last HISTORY actions
    placement: int = 0

    @classmethod
    def of(cls, cases: Cases, width: int = HISTORY) -> CaseInputs:
        sessions = cases.sessions
        target = cases.target
        start = sessions.offsets[cases.session]
        index = target[:, None] - width + np.arange(width)[None, :]  # oldest first
        valid = index >= start[:, None]
        index = np.where(valid, index, 0)
        items = np.where(valid, sessions.items[index], -1)
        if sessions.event_types is not None:
            codes = np.array(
                [ACTION_CODES.get(str(t), OTHER) for t in sessions.event_types], dtype=np.int8
            )
            types = np.where(valid, codes[index], PAD).astype(np.int8)
        else:
            types = np.where(valid, VIEW, PAD).astype(np.int8)
        moment = sessions.times[target - 1]
        age = np.where(valid, moment[:, None] - sessions.times[index], 0).astype(np.float32)
        length = (target - start).astype(np.float32)
        previous = np.where(target - 2 >= start, target - 2, target - 1)
        gap = np.where(target - 2 >= start, moment - sessions.times[previous], np.nan).astype(
            np.float32
        )
        return cls(moment, length, gap, History(items, types, age))

    @classmethod
    def of_session(
        cls,
        recent: Sequence[tuple[str, str, float]],
        n_events: int,
        index: Mapping[str, int],
        placement: int = 0,
        width: int = HISTORY,
    ) -> CaseInputs:
        """One served case: a session's latest item events (item id, event type, time),
        oldest first, as the server's session record keeps them, and its events so far.
        Items outside the vocabulary `index` stay in the history as unknown (-1 is padding,
        so they are coded -2: they match no candidate)."""
        last = list(recent)[-width:]
        items = np.full((1, width), -1, np.int64)
        types = np.full((1, width), PAD, np.int8)
        age = np.zeros((1, width), np.float32)
        moment = last[-1][2] if last else 0.0
        for position, (item_id, kind, time) in enumerate(last, start=width - len(last)):
            items[0, position] = index.get(item_id, -2)
            types[0, position] = ACTION_CODES.get(kind, OTHER)
            age[0, position] = moment - time
        gap = last[-1][2] - last[-2][2] if len(last) >= 2 else np.nan
        return cls(
            np.array([moment], np.float64),
            np.array([max(n_events, len(last))], np.float32),
            np.array([gap], np.float32),
            History(items, types, age),
            placement,
        )


def ranking_data(
    merged: Merged,
    cases: CaseInputs,
    stats: ItemStats,
    label_items: np.ndarray | None = None,
    session: np.ndarray | None = None,
    live: Sequence[np.ndarray] | None = None,
    store: Mapping[str, np.ndarray] | None = None,
) -> RankingData:
    """The features of every merged candidate; `label_items` [n_cases]: each case's next item
    (the label is 1 where the candidate is it). `live`: per `LIVE_WINDOWS` window, each row's
    count of events among the latest ones (a server's own counts); default: from `stats`'s
    event stream. `store`: the feature store's values of each row, by feature name (the
    `store` group, each column named `store.` + the name; the pipeline's `store_features`)."""
    names: list[str] = []
    groups: dict[str, tuple[str, ...]] = {}
    columns: list[np.ndarray] = []

    def add(group: str, parts: dict[str, np.ndarray]) -> None:
        for name, values in parts.items():
            names.append(name)
            columns.append(values.astype(np.float32, copy=False))
        groups[group] = groups.get(group, ()) + tuple(parts)

    case, item = merged.case, merged.item
    add("generators", _generator_features(merged))
    add("item", _item_features(case, item, cases, stats, live))
    add("session", _session_features(case, cases))
    repeat, match = _history_features(case, item, cases, stats)
    add("repeat", repeat)
    add("match", match)
    add("context", _context_features(case, cases))
    if store:  # "store." first: the store's item.age_days is not the item group's
        add("store", {f"store.{name}": values for name, values in store.items()})
    label = None
    if label_items is not None:
        label = (item == label_items[case]).astype(np.float32)
    return RankingData(
        case=case,
        item=item,
        features=np.column_stack(columns) if columns else np.zeros((len(case), 0), np.float32),
        names=tuple(names),
        groups=groups,
        label=label,
        session=session,
        history=cases.history,
        n_items=len(stats.pop),
    )


def _generator_features(merged: Merged) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    n_cases = int(merged.case[-1]) + 1 if len(merged.case) else 0
    for g, name in enumerate(merged.names):
        score = merged.score[:, g]
        best = np.full(n_cases, -np.inf, np.float32)
        np.fmax.at(best, merged.case, score)
        out[f"{name}.rank"] = merged.rank[:, g]
        out[f"{name}.score"] = score
        out[f"{name}.gap"] = best[merged.case] - score
        # the score as a share of the case's best: the kNN family's scores grow with the
        # training data, so the share carries over from the ranker's cut to the full data
        top = best[merged.case]
        out[f"{name}.share"] = np.where(top > 0, score / np.where(top > 0, top, 1), np.nan)
    proposed = ~np.isnan(merged.rank)
    out["generators.count"] = proposed.sum(axis=1).astype(np.float32)
    # reciprocal-rank fusion of all generators (Cormack et al.'s offset of 60)
    out["generators.fusion"] = np.where(proposed, 1.0 / (60.0 + merged.rank), 0.0).sum(axis=1)
    out["generators.best_rank"] = np.where(proposed, merged.rank, np.inf).min(axis=1)
    return out


def _item_features(
    case: np.ndarray,
    item: np.ndarray,
    cases: CaseInputs,
    stats: ItemStats,
    live: Sequence[np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    age_days = (cases.moment[case] - stats.first_seen[item]) / 86400.0
    if live is None:
        live = stats.live_counts(item, cases.moment[case])
    return {
        "item.pop": np.log1p(stats.pop[item]),
        "item.pop_recent": np.log1p(stats.pop_recent[item]),
        **{name: np.log1p(count) for name, count in zip(LIVE_WINDOWS, live, strict=True)},
        "item.age_days": age_days.astype(np.float32),
        "item.price": stats.price[item],
        "item.discount": stats.discount[item],
    }


def _session_features(case: np.ndarray, cases: CaseInputs) -> dict[str, np.ndarray]:
    last_type = cases.history.types[:, -1].astype(np.float32)
    return {
        "session.length": cases.length[case],
        "session.gap": np.log1p(np.maximum(cases.gap, 0))[case],
        "session.last_type": last_type[case],
    }


def _history_features(
    case: np.ndarray, item: np.ndarray, cases: CaseInputs, stats: ItemStats
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Candidate against the case's history, in chunks of rows ([rows, HISTORY] masks)."""
    history = cases.history
    width = history.width
    n = len(case)
    count = np.zeros(n, np.float32)
    since = np.full(n, np.nan, np.float32)
    age = np.full(n, np.nan, np.float32)
    carted = np.zeros(n, np.float32)
    same_last = np.full(n, np.nan, np.float32)
    shares = {name: np.full(n, np.nan, np.float32) for name in ("category", "brand", "price_band")}
    facets = {"category": stats.category, "brand": stats.brand, "price_band": stats.price_band}
    last_item = history.items[:, -1]
    for first in range(0, n, CHUNK_ROWS):
        rows = slice(first, min(n, first + CHUNK_ROWS))
        c, i = case[rows], item[rows]
        seen = history.items[c]  # [r, W]
        valid = seen >= 0
        hit = (seen == i[:, None]) & valid
        count[rows] = hit.sum(axis=1)
        any_hit = hit.any(axis=1)
        latest = width - 1 - np.argmax(hit[:, ::-1], axis=1)  # position of the latest hit
        steps = (width - 1 - latest).astype(np.float32)
        since[rows] = np.where(any_hit, steps, np.nan)
        hit_age = history.age[c, latest]
        age[rows] = np.where(any_hit, np.log1p(np.maximum(hit_age, 0)), np.nan)
        carted[rows] = (hit & (history.types[c] == CART)).any(axis=1)
        n_valid = np.maximum(valid.sum(axis=1), 1)
        safe_seen = np.where(valid, seen, 0)
        for name, codes in facets.items():
            if not (codes >= 0).any():
                continue
            mine = codes[i]
            theirs = np.where(valid, codes[safe_seen], -2)
            known = mine >= 0
            share = ((theirs == mine[:, None]) & valid).sum(axis=1) / n_valid
            shares[name][rows] = np.where(known, share, np.nan)
            if name == "category":
                last = last_item[c]
                last_code = np.where(last >= 0, codes[np.maximum(last, 0)], -2)
                same_last[rows] = np.where(known & (last_code >= 0), mine == last_code, np.nan)
    repeat = {
        "repeat.count": count,
        "repeat.steps_ago": since,
        "repeat.age": age,
        "repeat.carted": carted,
        "repeat.is_last": (item == last_item[case]).astype(np.float32),
    }
    match = {
        "match.category_last": same_last,
        "match.category_share": shares["category"],
        "match.brand_share": shares["brand"],
        "match.price_band_share": shares["price_band"],
    }
    return repeat, match


def _context_features(case: np.ndarray, cases: CaseInputs) -> dict[str, np.ndarray]:
    hour = ((cases.moment % 86400.0) / 3600.0).astype(np.float32)
    return {
        "context.hour": hour[case],
        "context.placement": np.full(len(case), float(cases.placement), np.float32),
    }
