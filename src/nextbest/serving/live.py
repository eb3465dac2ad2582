"""Live state: every logged event moves its session's state one model step.

`apply` takes events just committed to the log and advances the state of each of their
sessions by one `model.step` per event (sessions of one batch step together, one round per
event depth), never replaying a session. A session whose record is missing (a restart of
the in-process store, an expiry) or was made by another model version is rebuilt once from
its last events in the log, then stepped live again. Each record remembers the log position
of its last event, so no event is applied twice, even when a rebuild and an event race.

    live.apply(model, events, seqs)              # after log.append(events) committed them
    record = live.session(model, "s-1")          # current record, rebuilt if needed
    state = live.state_of(model, record)         # the model's batch state of that session
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from nextbest.events.log import EventLog, LoggedEvent
from nextbest.events.schema import Event, EventType
from nextbest.serving.registry import NO_MODEL_TAG, LoadedModel
from nextbest.serving.state import StateStore
from nextbest.serving.state.records import (
    MAX_BOUGHT,
    SessionRecord,
    UserRecord,
    add_bought,
    decode_session,
    decode_user,
    encode_session,
    encode_user,
    session_tag,
)

logger = logging.getLogger(__name__)

SESSION_KEY, USER_KEY = "s:", "u:"
PURCHASE = EventType.PURCHASE.value


@dataclass(frozen=True, slots=True)
class Applied:
    """What a state needs of one logged event."""

    seq: int
    type: str
    item_id: str | None
    timestamp: float

    @classmethod
    def of(cls, event: Event | LoggedEvent, seq: int) -> Applied:
        return cls(seq, str(event.type), event.item_id, event.timestamp)


def fresh_record(model: LoadedModel | None) -> SessionRecord:
    if model is None:
        return SessionRecord(NO_MODEL_TAG, b"")
    return SessionRecord(model.tag, model.initial_row)


def advance(
    model: LoadedModel | None,
    records: Sequence[SessionRecord],
    pending: Sequence[Sequence[Applied]],
) -> list[SessionRecord]:
    """Each record moved past its pending events (those after its `last_seq`), in order."""
    out: list[SessionRecord] = []
    steps: list[list[tuple[int, float]]] = []  # per record: (item column, time) to step
    for record, events in zip(records, pending, strict=True):
        todo: list[tuple[int, float]] = []
        bought, last_item, last_seq = record.bought, record.last_item, record.last_seq
        n_events, last_time = record.n_events, record.last_time
        for event in events:
            if event.seq <= last_seq:
                continue  # already in this record
            last_seq, n_events, last_time = event.seq, n_events + 1, event.timestamp
            if event.item_id is None:
                continue
            last_item = event.item_id
            if event.type == PURCHASE:
                bought = add_bought(bought, event.item_id)
            column = model.index.get(event.item_id) if model is not None else None
            if column is not None:
                todo.append((column, event.timestamp))
        steps.append(todo)
        out.append(
            replace(
                record,
                last_seq=last_seq,
                n_steps=record.n_steps + len(todo),
                n_events=n_events,
                last_time=last_time,
                last_item=last_item,
                bought=bought,
            )
        )
    if model is not None:
        rows = _step_rows(model, [record.state for record in out], steps)
        out = [replace(record, state=row) for record, row in zip(out, rows, strict=True)]
    return out


def _step_rows(
    model: LoadedModel, rows: list[bytes], steps: list[list[tuple[int, float]]]
) -> list[bytes]:
    """Round r steps, together, every session with an r-th pending item (rows of one shape)."""
    rows = list(rows)
    for depth in range(max((len(todo) for todo in steps), default=0)):
        groups: dict[object, list[int]] = defaultdict(list)
        for position, todo in enumerate(steps):
            if len(todo) > depth:
                groups[model.codec.group_key(rows[position])].append(position)
        for members in groups.values():
            state = model.codec.join([rows[p] for p in members])
            items = np.array([steps[p][depth][0] for p in members], dtype=np.int64)
            times = np.array([steps[p][depth][1] for p in members], dtype=np.float64)
            state = model.model.step(state, items, times)
            for position, row in zip(members, model.codec.split(state), strict=True):
                rows[position] = row
    return rows


class LiveState:
    def __init__(self, store: StateStore, log: EventLog, rebuild_events: int = 200) -> None:
        if rebuild_events < 1:
            raise ValueError(f"rebuild_events must be >= 1, not {rebuild_events!r}")
        self.store = store
        self.log = log
        self.rebuild_events = rebuild_events

    # -- events in ------------------------------------------------------------------------
    def apply(
        self, model: LoadedModel | None, events: Sequence[Event], seqs: Sequence[int]
    ) -> None:
        """Advance sessions and users by these newly logged events (`seqs`: their log seqs)."""
        by_session: dict[str, list[Applied]] = defaultdict(list)
        for event, seq in zip(events, seqs, strict=True):
            by_session[event.session_id].append(Applied.of(event, seq))
        sessions = list(by_session)
        keys = [SESSION_KEY + session for session in sessions]
        values = self.store.get_many(keys)
        stale = [s for s, v in zip(sessions, values, strict=True) if not _usable(v, model)]
        rebuilt = self._rebuild(model, stale)  # the log already holds these events

        def compute(current: list[bytes | None]) -> list[bytes | None]:
            records, pending = [], []
            for session, value in zip(sessions, current, strict=True):
                if _usable(value, model):
                    assert value is not None
                    records.append(decode_session(value))
                else:  # rebuilt before, or (rarely) gone since: rebuild now
                    found = rebuilt.get(session) or self._rebuild(model, [session])[session]
                    records.append(found)
                pending.append(by_session[session])
            return [encode_session(record) for record in advance(model, records, pending)]

        self.store.update(keys, compute, values)
        purchases = [e for e in events if e.type == PURCHASE and e.user_id and e.item_id]
        if purchases:
            self._apply_purchases(purchases)

    def _apply_purchases(self, purchases: list[Event]) -> None:
        users = list(dict.fromkeys(str(e.user_id) for e in purchases))
        keys = [USER_KEY + user for user in users]
        values = self.store.get_many(keys)
        missing = [u for u, v in zip(users, values, strict=True) if v is None]
        history = self.log.user_purchases(missing, MAX_BOUGHT) if missing else {}

        def compute(current: list[bytes | None]) -> list[bytes | None]:
            out: list[bytes | None] = []
            for user, value in zip(users, current, strict=True):
                if value is None:  # the log's history already holds this batch's purchases
                    out.append(encode_user(_user_record(history.get(user, []))))
                    continue
                bought = decode_user(value).bought
                for event in purchases:
                    if event.user_id == user and event.item_id is not None:
                        bought = add_bought(bought, event.item_id)
                out.append(encode_user(UserRecord(bought)))
            return out

        self.store.update(keys, compute, values)

    def forget(self, sessions: Iterable[str]) -> None:
        """Drop these sessions' states (best effort), so they are rebuilt from the log."""
        try:
            self.store.delete([SESSION_KEY + session for session in sessions])
        except Exception:
            logger.exception("could not drop session states; they may lag until they expire")

    # -- state out ------------------------------------------------------------------------
    def session(self, model: LoadedModel | None, session_id: str) -> SessionRecord:
        """The session's record for `model`, rebuilt from the log (and stored) when needed."""
        key = SESSION_KEY + session_id
        value = self.store.get_many([key])[0]
        if _usable(value, model):
            assert value is not None
            return decode_session(value)
        record = self._rebuild(model, [session_id])[session_id]
        encoded = encode_session(record)

        def compute(current: list[bytes | None]) -> list[bytes | None]:
            return [None] if _usable(current[0], model) else [encoded]

        stored = self.store.update([key], compute, [value])[0]
        return decode_session(stored) if stored is not None else record

    def user(self, user_id: str) -> UserRecord:
        """The user's record (items bought), from the log when not in the store."""
        key = USER_KEY + user_id
        value = self.store.get_many([key])[0]
        if value is not None:
            return decode_user(value)
        record = _user_record(self.log.user_purchases([user_id], MAX_BOUGHT).get(user_id, []))
        encoded = encode_user(record)
        self.store.update(
            [key], lambda current: [None if current[0] is not None else encoded], [value]
        )
        return record

    def state_of(self, model: LoadedModel, record: SessionRecord) -> object:
        """The model's batch state (of one session) held by `record`."""
        return model.codec.join([record.state])

    def _rebuild(
        self, model: LoadedModel | None, sessions: Iterable[str]
    ) -> dict[str, SessionRecord]:
        """Records rebuilt from each session's last `rebuild_events` logged events."""
        wanted = list(sessions)
        if not wanted:
            return {}
        logged = self.log.session_events(wanted, self.rebuild_events)
        pending = [[Applied.of(e, e.seq) for e in logged.get(s, [])] for s in wanted]
        records = advance(model, [fresh_record(model)] * len(wanted), pending)
        return dict(zip(wanted, records, strict=True))


def _usable(value: bytes | None, model: LoadedModel | None) -> bool:
    """A stored record that belongs to the model answering now."""
    tag = model.tag if model is not None else NO_MODEL_TAG
    return value is not None and session_tag(value) == tag


def _user_record(items: list[str]) -> UserRecord:
    bought: tuple[str, ...] = ()
    for item in items:
        bought = add_bought(bought, item)
    return UserRecord(bought)
