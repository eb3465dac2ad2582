"""Group commit: appends from concurrent requests share one transaction and one disk sync.

A durable commit costs a disk sync (milliseconds on a busy disk), whatever it holds. With
one transaction per request, a server that logs single events tops out at a few hundred a
second. `GroupCommitLog` wraps any `EventLog`: one writer thread takes every append waiting
in the queue, writes them as one `append`, and answers each caller with its own part of the
result. A caller still returns only after the commit that holds its events.

    log = GroupCommitLog(open_event_log(url))
    result = log.append(events)      # from many threads at once
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import polars as pl

from nextbest.events.log.base import AppendResult, Erased, EventLog, LoggedEvent, ServedList
from nextbest.events.schema import Event

logger = logging.getLogger(__name__)

# A group stops growing at this many events (one transaction stays short).
MAX_GROUP_EVENTS = 5_000


@dataclass(frozen=True)
class Pending:
    """One caller's append, waiting for the writer thread."""

    events: list[Event]
    received_at: float | None
    probe: frozenset[str]
    done: Future[AppendResult]


class GroupCommitLog(EventLog):
    def __init__(self, log: EventLog, max_group_events: int = MAX_GROUP_EVENTS) -> None:
        if max_group_events < 1:
            raise ValueError(f"max_group_events must be >= 1, not {max_group_events}")
        self.log = log
        self.commits_in_seq_order = log.commits_in_seq_order
        self.max_group_events = max_group_events
        self._queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._writer = threading.Thread(target=self._run, name="event-log-writer", daemon=True)
        self._writer.start()

    def append(
        self,
        events: Sequence[Event],
        received_at: float | None = None,
        probe: Collection[str] = (),
    ) -> AppendResult:
        return self.submit(events, received_at, probe).result()

    def submit(
        self,
        events: Sequence[Event],
        received_at: float | None = None,
        probe: Collection[str] = (),
    ) -> Future[AppendResult]:
        """Queue an append; the future resolves after the commit that holds these events.

        An asyncio caller awaits it with `asyncio.wrap_future`, without blocking its loop.
        """
        if self._closed.is_set():
            raise RuntimeError("the event log is closed")
        done: Future[AppendResult] = Future()
        if not events:
            done.set_result(AppendResult(()))
            return done
        self._queue.put(Pending(list(events), received_at, frozenset(probe), done))
        return done

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if not first.events and self._closed.is_set():
                return
            group = [first]
            size = len(first.events)
            while size < self.max_group_events:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not waiting.events:  # the close marker: finish this group, then stop
                    self._queue.put(waiting)
                    break
                group.append(waiting)
                size += len(waiting.events)
            self._commit(group)

    def _commit(self, group: list[Pending]) -> None:
        events = [event for pending in group for event in pending.events]
        probe = frozenset().union(*(pending.probe for pending in group))
        try:
            result = self.log.append(events, group[0].received_at, probe)
        except Exception as exc:  # every caller of the group learns that nothing was committed
            logger.exception("event log append failed for %d event(s)", len(events))
            for pending in group:
                pending.done.set_exception(exc)
            return
        # A session new to the log is new for a caller only if no other caller of the group
        # sent events of it: each caller steps its own events, and would miss the others'.
        owned = [{event.session_id for event in pending.events} for pending in group]
        callers = Counter(session for sessions in owned for session in sessions)
        start = 0
        for pending, sessions in zip(group, owned, strict=True):
            asked = result.new_sessions & pending.probe & sessions
            new = frozenset(s for s in asked if callers[s] == 1)
            seqs = result.seqs[start : start + len(pending.events)]
            pending.done.set_result(AppendResult(seqs, new))
            start += len(pending.events)

    def session_events(self, session_ids: Sequence[str], last: int) -> dict[str, list[LoggedEvent]]:
        return self.log.session_events(session_ids, last)

    def user_purchase_times(
        self, user_ids: Sequence[str], last: int
    ) -> dict[str, list[tuple[str, float]]]:
        return self.log.user_purchase_times(user_ids, last)

    def link(self, session_id: str, user_id: str, at: float | None = None) -> str:
        return self.log.link(session_id, user_id, at)

    def session_owners(self, session_ids: Sequence[str]) -> dict[str, str]:
        return self.log.session_owners(session_ids)

    def user_sessions(self, user_ids: Sequence[str], last: int) -> dict[str, list[str]]:
        return self.log.user_sessions(user_ids, last)

    def record_served(self, lists: Sequence[ServedList]) -> None:
        self.log.record_served(lists)

    def erase_user(self, user_id: str) -> Erased:
        return self.log.erase_user(user_id)

    def forget_events(self, before: float, limit: int) -> int:
        return self.log.forget_events(before, limit)

    def served(self, recommendation_id: str) -> ServedList | None:
        return self.log.served(recommendation_id)

    def served_lists(
        self,
        placement: str,
        since: float | None = None,
        until: float | None = None,
        batch: int = 5_000,
        experiment: str | None = None,
    ) -> Iterator[ServedList]:
        return self.log.served_lists(placement, since, until, batch, experiment)

    def events_of_type(
        self,
        event_type: str,
        since: float | None = None,
        until: float | None = None,
        batch: int = 10_000,
    ) -> Iterator[LoggedEvent]:
        return self.log.events_of_type(event_type, since, until, batch)

    def forget_served(self, before: float, limit: int) -> int:
        return self.log.forget_served(before, limit)

    def outcomes(self, recommendation_id: str, last: int) -> list[LoggedEvent]:
        return self.log.outcomes(recommendation_id, last)

    def read_after(self, seq: int, limit: int) -> list[LoggedEvent]:
        return self.log.read_after(seq, limit)

    def read_items_after(self, seq: int, limit: int) -> list[tuple[int, str, str | None]]:
        return self.log.read_items_after(seq, limit)

    def export(self, batch_size: int = 10_000) -> pl.DataFrame:
        return self.log.export(batch_size)

    def count(self) -> int:
        return self.log.count()

    def last_seq(self) -> int:
        return self.log.last_seq()

    def ping(self) -> None:
        self.log.ping()

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._queue.put(Pending([], None, frozenset(), Future()))
            self._writer.join(timeout=10)
        self.log.close()
