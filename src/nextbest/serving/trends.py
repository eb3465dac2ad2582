"""What the shop does right now, read from the event log: popularity and co-visitation.

The trained model knows the items of its training data only. Items added since (and new
sessions, which have no state yet) are served from two live counts over a sliding window of
the most recent events of the log:

* popularity: events per item;
* co-visitation: how often item b came right after item a in a session.

Every worker follows the same log (`refresh`, every few seconds), so all workers converge on
the same counts whichever of them received the events. The window is a count of events, so
memory stays bounded however long the server runs.

On PostgreSQL, a `seq` can become visible after a higher one (concurrent transactions commit
out of order). So each refresh reads again from `LOOKBACK` positions behind the last one read
and takes only the events it has not seen: an event that commits late is counted, unless more
than `LOOKBACK` events committed meanwhile (commits take milliseconds; that is a large margin).
SQLite has one writer at a time, so there it reads only what is new.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable

import numpy as np

from nextbest.events.log import EventLog
from nextbest.recommend.items import ItemTable
from nextbest.serving.registry import LoadedModel

Skip = Callable[[str], bool]
ROW_COUNT_TABLES = 4  # item tables whose row counts are kept (one per model served)
LOOKBACK = 1_000  # log positions read again at each refresh, for late commits


class Trends:
    def __init__(
        self,
        log: EventLog,
        window_events: int = 200_000,
        max_sessions: int = 100_000,
        lookback: int | None = None,
    ) -> None:
        if window_events < 1 or max_sessions < 1:
            raise ValueError(
                f"window_events and max_sessions must be >= 1, not {window_events}, {max_sessions}"
            )
        self.log = log
        self.window_events = window_events
        self.max_sessions = max_sessions
        self.lookback = (
            lookback if lookback is not None else (0 if log.commits_in_seq_order else LOOKBACK)
        )
        self.seq = 0  # the highest log position read
        self._recent: deque[int] = deque()  # positions read within LOOKBACK of `seq`, in order
        self._recent_set: set[int] = set()
        self._views: deque[str] = deque()
        self._counts: Counter[str] = Counter()
        self._pairs: deque[tuple[str, str]] = deque()
        self._followers: dict[str, Counter[str]] = {}
        self._last_item: OrderedDict[str, str] = OrderedDict()  # session -> latest item
        self._ranking: list[str] = []  # items by count, most first
        self._generation = 0  # grows with every new ranking
        self._unknown: tuple[bytes, int, list[str]] | None = None
        # id(table) -> (table, generation, counts)
        self._row_counts: dict[int, tuple[ItemTable, int, np.ndarray]] = {}
        # counts over the latest `w` item events, for each window a ranker asked for
        self._windows: dict[int, tuple[deque[str], Counter[str]]] = {}
        self._lock = threading.Lock()

    def start_at_recent(self) -> None:
        """Read from the last `window_events` events of the log on (at startup)."""
        self.seq = max(0, self.log.last_seq() - self.window_events)

    def refresh(self, page: int = 20_000) -> int:
        """Read the events logged since the last refresh; returns how many were new."""
        total = 0
        cursor = max(0, self.seq - self.lookback)
        while True:
            events = self.log.read_items_after(cursor, page)
            if not events:
                break
            with self._lock:
                for seq, session, item in events:
                    if seq in self._recent_set or seq <= self.seq - self.lookback:
                        continue  # read before (or too late to matter)
                    if item is not None:
                        self._add(session, item)
                    self._remember(seq)
                    total += 1
            cursor = events[-1][0]
            if len(events) < page:
                break
        if total:
            with self._lock:
                self._ranking = [item for item, _ in self._counts.most_common()]
                self._generation += 1
        return total

    def _remember(self, seq: int) -> None:
        self.seq = max(self.seq, seq)
        self._recent.append(seq)
        self._recent_set.add(seq)
        while self._recent and self._recent[0] <= self.seq - self.lookback:
            self._recent_set.discard(self._recent.popleft())

    def forget_sessions(self, sessions: Iterable[str]) -> None:
        """Drop what is kept per session (its latest item), for an erased person; the counts
        hold items only."""
        with self._lock:
            for session in sessions:
                self._last_item.pop(session, None)

    def _add(self, session: str, item: str) -> None:
        self._views.append(item)
        self._counts[item] += 1
        if len(self._views) > self.window_events:
            self._forget(self._counts, self._views.popleft())
        for window, (latest, counts) in self._windows.items():
            latest.append(item)
            counts[item] += 1
            if len(latest) > window:
                self._forget(counts, latest.popleft())
        previous = self._last_item.pop(session, None)
        self._last_item[session] = item
        if len(self._last_item) > self.max_sessions:
            self._last_item.popitem(last=False)
        if previous is None or previous == item:
            return
        self._pairs.append((previous, item))
        self._followers.setdefault(previous, Counter())[item] += 1
        if len(self._pairs) > self.window_events:
            before, after = self._pairs.popleft()
            followers = self._followers[before]
            self._forget(followers, after)
            if not followers:
                del self._followers[before]

    @staticmethod
    def _forget(counter: Counter[str], key: str) -> None:
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]

    def popular(
        self, k: int, skip: Skip, min_count: int = 1, unknown_to: LoadedModel | None = None
    ) -> list[tuple[str, float]]:
        """The `k` most frequent recent items that `skip` lets through, with their counts.

        With `unknown_to`, only items that model does not know (new since its training).
        """
        found: list[tuple[str, float]] = []
        with self._lock:
            ranking, counts = self._ranking, self._counts
            if unknown_to is not None:
                ranking = self._unknown_ranking(unknown_to)
            for item in ranking:
                count = counts.get(item, 0)
                if count < min_count:
                    break
                if not skip(item):
                    found.append((item, float(count)))
                    if len(found) == k:
                        break
        return found

    def _unknown_ranking(self, model: LoadedModel) -> list[str]:
        """The ranking cut to items the model does not know (cached until the next read)."""
        cached = self._unknown
        if cached is not None and cached[:2] == (model.tag, self._generation):
            return cached[2]
        ranking = [item for item in self._ranking if item not in model.index]
        self._unknown = (model.tag, self._generation, ranking)
        return ranking

    def count_rows(self, items: ItemTable) -> np.ndarray:
        """Every row's events in the window, [len(items)] float64, as of the last
        `update_row_counts` for this table (the refresher's job: a request never waits for a
        recount, it may see counts one refresh old)."""
        cached = self._row_counts.get(id(items))
        if cached is not None and cached[0] is items:
            return cached[2]
        return self.update_row_counts(items)

    def update_row_counts(self, items: ItemTable) -> np.ndarray:
        cached = self._row_counts.get(id(items))
        if cached is not None and cached[0] is items and cached[1] == self._generation:
            return cached[2]
        with self._lock:
            generation, counts = self._generation, self._counts
            array = np.array([counts.get(item, 0) for item in items.ids], dtype=np.float64)
        # one table per model served (experiments serve several); the oldest go first
        kept = list(self._row_counts.items())[-(ROW_COUNT_TABLES - 1) :]
        self._row_counts = {**dict(kept), id(items): (items, generation, array)}
        return array

    def recent_counts(self, item_ids: list[str], window: int) -> np.ndarray:
        """Each item's events among the latest `window` item events read from the log,
        [len(item_ids)] float32: the live popularity a learned ranker's features count
        (`nextbest.twostage.features.LIVE_WINDOWS`). A window asked for the first time is
        counted from the events kept (at most `window_events`), then kept up to date."""
        with self._lock:
            tracked = self._windows.get(window)
            if tracked is None:
                kept = list(self._views)[-window:] if window < len(self._views) else self._views
                latest = deque(kept)
                tracked = self._windows[window] = (latest, Counter(latest))
            counts = tracked[1]
            return np.array([counts.get(item, 0) for item in item_ids], dtype=np.float32)

    def followers(self, item_id: str, k: int, skip: Skip) -> list[tuple[str, float]]:
        """The items that most often came right after `item_id` recently, with their counts."""
        with self._lock:
            counter = self._followers.get(item_id)
            ranked = counter.most_common() if counter else []
        return [(item, float(count)) for item, count in ranked if not skip(item)][:k]
