"""The event log's interface: an append-only, idempotent store of behaviour events.

    result = log.append(events)          # returns after the commit; result.inserted[i] is
                                         # False where events[i].event_id was already logged
    log.session_events(["s1"], last=200) # {"s1": [LoggedEvent, ...]} oldest first
    log.link("s1", "u1")                 # the session belongs to u1 (login); returns its owner
    log.user_sessions(["u1"], last=20)   # {"u1": ["s0", "s1"]} oldest first
    log.record_served([ServedList(...)]) # the lists answered; events point back at them
    log.outcomes("9c0e...", last=100)    # the events that carried that recommendation id
    log.served_lists("keywords", since)  # a placement's kept lists in time order, in batches
    log.events_of_type("keyword-click")  # one type's events in log order, in batches
    log.read_after(seq, limit)           # follow the log in `seq` order
    log.export()                         # every event as a table (LOG_EVENT_SCHEMA)

Every implementation runs the shared suite in `tests/events/test_log.py`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

import polars as pl

from nextbest.events.schema import LOG_EVENT_SCHEMA, Event


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One logged event: the event's fields plus its place in the log and arrival time."""

    seq: int
    event_id: str
    type: str
    session_id: str
    item_id: str | None
    user_id: str | None
    timestamp: float
    query: str | None
    value: float | None
    placement: str | None
    device: str | None
    recommendation_id: str | None
    context: str | None  # a JSON object, as text
    received_at: float


@dataclass(frozen=True, slots=True)
class ServedList:
    """One recommendation list as it was answered: what a later event's `recommendation_id`
    points at. `items`: (item_id, source, score), best first."""

    recommendation_id: str
    served_at: float
    session_id: str | None
    user_id: str | None
    placement: str | None
    item_id: str | None  # the item on screen, if any
    model_version: str | None
    items: tuple[tuple[str, str, float], ...]
    experiment: str | None = None  # the experiment that chose how this list was made, if any
    variant: str | None = None  # and its variant
    unit: str | None = None  # the id the shopper was assigned by ("user:..." or "session:...")


@dataclass(frozen=True)
class AppendResult:
    """Per appended event, its `seq` in the log if it was new, or 0 for a duplicate; and
    which of the sessions the caller asked about (`probe`) this append started.

    `new_sessions`: probed sessions that had no logged event and no owner before this
    append, and have an event now. Whoever serves them needs not read the log to learn their
    past: it is exactly the events just appended. An implementation may leave out sessions
    it cannot tell about (never one that had a past): callers then read the log, as always.
    """

    seqs: tuple[int, ...]
    new_sessions: frozenset[str] = frozenset()

    @property
    def inserted(self) -> tuple[bool, ...]:
        """Per appended event, whether it was new (True) or a duplicate of a logged event_id."""
        return tuple(seq > 0 for seq in self.seqs)

    @property
    def n_inserted(self) -> int:
        return sum(seq > 0 for seq in self.seqs)

    @property
    def n_duplicates(self) -> int:
        return len(self.inserted) - self.n_inserted


PLAIN_COLUMNS = tuple(name for name in Event.model_fields if name not in ("type", "context"))


def event_row(event: Event, received_at: float) -> dict[str, object]:
    """The column values of one event as the log stores it (read attribute by attribute:
    a validated event holds plain values, and `model_dump` costs several times more)."""
    row: dict[str, object] = {name: getattr(event, name) for name in PLAIN_COLUMNS}
    row["type"] = event.type.value
    row["context"] = json.dumps(event.context, separators=(",", ":")) if event.context else None
    row["received_at"] = received_at
    return row


@dataclass(frozen=True)
class Erased:
    """What `erase_user` deleted: the person's sessions (erased whole), the sessions of other
    users where events named the person (those events erased), and how many rows of each."""

    sessions: tuple[str, ...]
    others: tuple[str, ...]
    events: int
    links: int
    served: int


class EventLog(ABC):
    """An append-only event log; appends are idempotent on `event_id`."""

    # True where an event never becomes visible after one with a higher `seq` (one writer at
    # a time, as SQLite); followers of the log then need not look back for late commits.
    commits_in_seq_order: bool = False

    @abstractmethod
    def append(
        self,
        events: Sequence[Event],
        received_at: float | None = None,
        probe: Collection[str] = (),
    ) -> AppendResult:
        """Store the events not logged yet, in order, and commit before returning.

        `received_at` (server clock; default now) is stored with each event. An `event_id`
        already in the log, or earlier in `events`, is not stored again: its entry in the
        result is 0 instead of the new event's `seq`. Of the sessions in `probe`, the result
        names those this append started (`AppendResult.new_sessions`); asking costs a query
        in the same transaction, so a caller asks only about sessions it knows nothing of.
        """

    @abstractmethod
    def session_events(self, session_ids: Sequence[str], last: int) -> dict[str, list[LoggedEvent]]:
        """The last `last` events of each session (oldest first); absent sessions are left out."""

    def user_purchases(self, user_ids: Sequence[str], last: int) -> dict[str, list[str]]:
        """The item ids of each user's last `last` purchases (oldest first), counting every
        purchase in the sessions that belong to the user (see `link`)."""
        found = self.user_purchase_times(user_ids, last)
        return {user: [item for item, _ in bought] for user, bought in found.items()}

    @abstractmethod
    def user_purchase_times(
        self, user_ids: Sequence[str], last: int
    ) -> dict[str, list[tuple[str, float]]]:
        """As `user_purchases`, each item with the time of its purchase event."""

    @abstractmethod
    def link(self, session_id: str, user_id: str, at: float | None = None) -> str:
        """Make `user_id` the owner of the session unless it has one; return its owner.

        Committed before returning. `append` links a session to the `user_id` of its first
        event that has one, in the same transaction as the events. A session has one owner
        for good: the first link wins, and every event of the session counts for that user,
        those logged before the link too, each exactly once.
        """

    @abstractmethod
    def session_owners(self, session_ids: Sequence[str]) -> dict[str, str]:
        """The user each of these sessions belongs to; anonymous sessions are left out."""

    @abstractmethod
    def user_sessions(self, user_ids: Sequence[str], last: int) -> dict[str, list[str]]:
        """Each user's last `last` sessions, oldest first (in the order they were linked)."""

    @abstractmethod
    def record_served(self, lists: Sequence[ServedList]) -> None:
        """Keep these answered lists (committed before returning; an id kept before is
        left as it was)."""

    @abstractmethod
    def served(self, recommendation_id: str) -> ServedList | None:
        """The list answered under this id, or None."""

    @abstractmethod
    def served_lists(
        self,
        placement: str,
        since: float | None = None,
        until: float | None = None,
        batch: int = 5_000,
        experiment: str | None = None,
    ) -> Iterator[ServedList]:
        """The kept lists of `placement` served at or after `since` and before `until` (epoch
        seconds, server clock; None: no bound), ordered by (served_at, recommendation_id);
        with `experiment`, only the lists answered under that experiment.

        Read `batch` lists per query (keyset pagination on that order), so a month of lists
        never sits in one query result; lists kept while the iterator runs may or may not
        be seen."""

    def events_of_type(
        self,
        event_type: str,
        since: float | None = None,
        until: float | None = None,
        batch: int = 10_000,
    ) -> Iterator[LoggedEvent]:
        """The logged events of `event_type` received at or after `since` and before `until`
        (`received_at`, epoch seconds, server clock; None: no bound), in log order, read
        `batch` at a time.

        This default follows the whole log (`iter_events`) and filters it; a store that can
        filter as it reads (SQL) does so."""
        check_batch(batch)
        return (
            event
            for event in self.iter_events(batch)
            if event.type == event_type and _within(event.received_at, since, until)
        )

    @abstractmethod
    def erase_user(self, user_id: str) -> Erased:
        """Delete everything of a person, in one transaction: the events of every session
        linked to `user_id` (those before the login too) and every event naming them (in a
        session another user owns, only those), the links, and the lists answered for them
        or their sessions."""

    @abstractmethod
    def forget_events(self, before: float, limit: int) -> int:
        """Delete up to `limit` of the oldest events received before `before` (epoch
        seconds), and links made before it, in one transaction; return how many events
        went (retention)."""

    @abstractmethod
    def forget_served(self, before: float, limit: int) -> int:
        """Delete up to `limit` kept lists served before `before` (epoch seconds), oldest
        first, in one transaction; return how many went."""

    @abstractmethod
    def outcomes(self, recommendation_id: str, last: int) -> list[LoggedEvent]:
        """The first `last` logged events that carry this `recommendation_id`, in log order."""

    @abstractmethod
    def read_after(self, seq: int, limit: int) -> list[LoggedEvent]:
        """Up to `limit` events with `seq` greater than `seq`, in log order."""

    def read_items_after(self, seq: int, limit: int) -> list[tuple[int, str, str | None]]:
        """As `read_after`, only each event's (seq, session_id, item_id): what the live
        counts follow, without building an event object per row."""
        return [(e.seq, e.session_id, e.item_id) for e in self.read_after(seq, limit)]

    @abstractmethod
    def count(self) -> int:
        """The number of logged events."""

    @abstractmethod
    def last_seq(self) -> int:
        """The highest `seq` in the log (0 when empty)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise if the store cannot be reached (for health checks)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def iter_events(self, batch_size: int = 10_000) -> Iterator[LoggedEvent]:
        """Every logged event, in log order, read `batch_size` at a time."""
        seq = 0
        while True:
            batch = self.read_after(seq, batch_size)
            if not batch:
                return
            yield from batch
            seq = batch[-1].seq

    def export(self, batch_size: int = 10_000) -> pl.DataFrame:
        """Every logged event as a table with the LOG_EVENT_SCHEMA columns, in log order.

        `conform_events` on the result gives the training table (EVENT_SCHEMA).
        """
        frames = []
        batch: list[LoggedEvent] = []
        for logged in self.iter_events(batch_size):
            batch.append(logged)
            if len(batch) == batch_size:
                frames.append(_frame(batch))
                batch = []
        frames.append(_frame(batch))
        return pl.concat(frames)


def check_batch(batch: int) -> None:
    if batch < 1:
        raise ValueError(f"batch must be >= 1, not {batch}")


def _within(at: float, since: float | None, until: float | None) -> bool:
    return (since is None or at >= since) and (until is None or at < until)


def _frame(batch: list[LoggedEvent]) -> pl.DataFrame:
    columns = {name: [getattr(e, name) for e in batch] for name in LOG_EVENT_SCHEMA}
    return pl.DataFrame(columns, schema=LOG_EVENT_SCHEMA)
