"""Live state: every logged event moves its session's state one model step.

`apply` takes events just committed to the log and advances the state of each of their
sessions by one `model.step` per event (sessions of one batch step together, one round per
event depth), never replaying a session. A session whose record is missing (a restart of
the in-process store, an expiry) or was made by another model version is rebuilt once from
its last events in the log, then stepped live again. Each record remembers the log position
of its last event, so no event is applied twice, even when a rebuild and an event race.

    stored = live.stored_records(sessions)       # before the commit; then, once committed:
    live.apply(model, events, seqs, new, stored) # (new: the sessions the append started)
    record = live.session(model, "s-1")          # current record, rebuilt if needed
    state = live.state_of(model, record)         # the model's batch state of that session
    live.identify(model, "s-1", "u-7")           # login: the session belongs to u-7 from now

Users. A session belongs to the user of its first event with a `user_id`, or to the user it
logs in as (`identify`); the event log keeps that link. For a model that remembers users
(HGRU4Rec) a user record, kept without the idle expiry, holds the state the user's open
session started from. When a session of the user starts (or an anonymous one logs in and is
rebuilt), the session open before it is closed: `end_session` on its state moves the user
state one step, and the new session starts from the result. So the user state moves once
per finished session, and only then. A user record of another model version, or a lost one,
is rebuilt from the user's last `USER_SESSIONS` sessions in the log.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from nextbest.events.log import EventLog, LoggedEvent
from nextbest.events.schema import Event, EventType
from nextbest.models.base import RemembersUsers
from nextbest.recommend.affinity import SESSION_HALF_LIFE, Affinity, ItemFacets
from nextbest.recommend.affinity import decode as decode_affinity
from nextbest.recommend.affinity import encode as encode_affinity
from nextbest.serving.live_affinity import (
    AFFINITY_KEY,
    FacetsSource,
    ItemEvent,
    Pending,
    UserAffinities,
)
from nextbest.serving.registry import NO_MODEL_TAG, LoadedModel
from nextbest.serving.state import StateStore
from nextbest.serving.state.records import (
    MAX_BOUGHT,
    SessionRecord,
    UserRecord,
    add_bought,
    add_purchase,
    add_recent,
    decode_session,
    decode_user,
    encode_session,
    encode_user,
    is_session_record,
    session_owner,
    session_tag,
)

logger = logging.getLogger(__name__)

SESSION_KEY, USER_KEY = "s:", "u:"
PURCHASE = EventType.PURCHASE.value
USER_SESSIONS = 20  # a lost user state is rebuilt from this many of the user's last sessions


class OwnedByAnother(ValueError):
    """A login names a user, but the session already belongs to another one."""

    def __init__(self, session_id: str, owner: str) -> None:
        super().__init__(f"session {session_id!r} already belongs to another user")
        self.session_id, self.owner = session_id, owner


@dataclass(frozen=True, slots=True)
class Applied:
    """What a state needs of one logged event."""

    seq: int
    type: str
    item_id: str | None
    timestamp: float
    user_id: str | None

    @classmethod
    def of(cls, event: Event | LoggedEvent, seq: int) -> Applied:
        return cls(seq, str(event.type), event.item_id, event.timestamp, event.user_id)


def fresh_record(
    model: LoadedModel | None, user_id: str | None = None, start: bytes | None = None
) -> SessionRecord:
    """A session before its first event (`start`: the state row it starts from)."""
    if model is None:
        return SessionRecord(NO_MODEL_TAG, b"", user_id=user_id)
    return SessionRecord(model.tag, model.initial_row if start is None else start, user_id=user_id)


def remembers_users(model: LoadedModel | None) -> bool:
    if model is None:
        return False
    # isinstance against a runtime-checkable Protocol inspects the class each time (tens of
    # microseconds per event); the answer is the model class's, so it is asked once per class
    kind = type(model.model)
    known = _REMEMBERS_USERS.get(kind)
    if known is None:
        known = _REMEMBERS_USERS[kind] = isinstance(model.model, RemembersUsers)
    return known


_REMEMBERS_USERS: dict[type, bool] = {}


def advance(
    model: LoadedModel | None,
    records: Sequence[SessionRecord],
    pending: Sequence[Sequence[Applied]],
    facets: ItemFacets | None = None,
) -> list[SessionRecord]:
    """Each record moved past its pending events (those after its `last_seq`), in order;
    with `facets`, its affinity profile too."""
    out: list[SessionRecord] = []
    steps: list[list[tuple[int, float]]] = []  # per record: (item column, time) to step
    for record, events in zip(records, pending, strict=True):
        todo: list[tuple[int, float]] = []
        bought, last_item, last_seq = record.bought, record.last_item, record.last_seq
        recent, affinity = record.recent, record.affinity
        profile: Affinity | None = None  # decoded at the first event that moves it
        n_events, last_time, user_id = record.n_events, record.last_time, record.user_id
        started_anonymous = record.started_anonymous
        for event in events:
            if event.seq <= last_seq:
                continue  # already in this record
            if n_events == 0:  # from the log alone, so a rebuild agrees with the live record
                started_anonymous = event.user_id is None
            last_seq, n_events, last_time = event.seq, n_events + 1, event.timestamp
            user_id = user_id or event.user_id
            if event.item_id is None:
                continue
            last_item = event.item_id
            recent = add_recent(recent, event.item_id, event.type, event.timestamp)
            if event.type == PURCHASE:
                bought = add_bought(bought, event.item_id)
            item_facets = facets.get(event.item_id) if facets is not None else None
            if item_facets is not None:
                if profile is None:
                    profile = decode_affinity(affinity)
                profile.add(item_facets, event.type, event.timestamp, SESSION_HALF_LIFE)
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
                user_id=user_id,
                recent=recent,
                affinity=encode_affinity(profile) if profile is not None else affinity,
                started_anonymous=started_anonymous,
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
    def __init__(
        self,
        store: StateStore,
        log: EventLog,
        rebuild_events: int = 200,
        facets: FacetsSource | None = None,
    ) -> None:
        """`facets`: the catalog's affinity facets now (the catalog cache's); without it, no
        affinity profiles are kept."""
        if rebuild_events < 1:
            raise ValueError(f"rebuild_events must be >= 1, not {rebuild_events!r}")
        self.store = store
        self.log = log
        self.rebuild_events = rebuild_events
        self.facets = facets or (lambda: None)
        self.affinities = UserAffinities(store, log, rebuild_events)

    # -- events in ------------------------------------------------------------------------
    def apply(
        self,
        model: LoadedModel | None,
        events: Sequence[Event],
        seqs: Sequence[int],
        new_sessions: Collection[str] = frozenset(),
        stored: Mapping[str, bytes | None] | None = None,
    ) -> dict[str, SessionRecord]:
        """Advance sessions and users by these newly logged events (`seqs`: their log seqs);
        return each session's record as written.

        `new_sessions`: sessions these events started (`AppendResult.new_sessions`). Their
        past is these events, so they start fresh instead of being rebuilt from the log: the
        first event of a session costs no log read on the request's path. `stored`: the
        sessions' records as `stored_records` read them before the commit.
        """
        facets = self.facets()
        by_session: dict[str, list[Applied]] = defaultdict(list)
        for event, seq in zip(events, seqs, strict=True):
            by_session[event.session_id].append(Applied.of(event, seq))
        sessions = list(by_session)
        keys = [SESSION_KEY + session for session in sessions]
        if stored is not None and all(session in stored for session in sessions):
            values = [stored[session] for session in sessions]
        else:
            values = self.store.guess_many(keys)  # `update` corrects a stale guess
        personal = remembers_users(model)

        def needs_rebuild(session: str, value: bytes | None) -> bool:
            if not _usable(value, model):
                return True
            # an anonymous session whose events now name a user has logged in: for a model
            # that remembers users it restarts from the user's state (the log has its events)
            assert value is not None
            logs_in = any(applied.user_id for applied in by_session[session])
            return personal and logs_in and decode_session(value).user_id is None

        stale = [s for s, v in zip(sessions, values, strict=True) if needs_rebuild(s, v)]
        starting = {s for s, v in zip(sessions, values, strict=True) if v is None} & set(
            new_sessions
        )
        # the log already holds these events; a session they started has no more past
        rebuilt = self._rebuild(model, [s for s in stale if s not in starting], facets)
        rebuilt.update(self._start(model, {s: by_session[s] for s in stale if s in starting}))

        # The users whose profiles these events move, as far as can be told before the
        # update (a session's owner, else its events' user); one update writes them with
        # the sessions. A user only the update finds (a login by another worker meanwhile)
        # is updated after it.
        profiles = self._affinity_update(facets, sessions, values, rebuilt, by_session)
        n_sessions = len(sessions)
        unforeseen: dict[str, list[ItemEvent]] = {}
        written: list[SessionRecord] = []  # the records the last compute wrote

        def compute(current: list[bytes | None]) -> list[bytes | None]:
            records, pending = [], []
            for session, value in zip(sessions, current[:n_sessions], strict=True):
                fresh = rebuilt.get(session)
                if fresh is not None and _usable(value, model):
                    assert value is not None
                    if decode_session(value).last_seq > fresh.last_seq:
                        fresh = None  # another writer got further since the rebuild
                if fresh is not None:
                    records.append(fresh)
                elif _usable(value, model):
                    assert value is not None
                    records.append(decode_session(value))
                else:  # (rarely) gone since it was read: rebuild now
                    records.append(self._rebuild(model, [session], facets)[session])
                pending.append(by_session[session])
            moved = advance(model, records, pending, facets)
            written[:] = moved
            out: list[bytes | None] = [encode_session(record) for record in moved]
            if profiles is not None:
                assert facets is not None
                by_user = _user_events(
                    [
                        (record.user_id, by_session[s])
                        for record, s in zip(moved, sessions, strict=True)
                    ]
                )
                out += self.affinities.compute(facets, profiles, current[n_sessions:], by_user)
                unforeseen.clear()
                unforeseen.update((u, e) for u, e in by_user.items() if u not in profiles.users)
            return out

        keys_all, values_all, lasting = keys, values, False
        if profiles is not None:
            keys_all, values_all = keys + profiles.keys, values + profiles.values
            lasting = [False] * n_sessions + [True] * len(profiles.keys)  # type: ignore[assignment]
        self.store.update(keys_all, compute, values_all, lasting=lasting)
        purchases: dict[str, list[tuple[str, float]]] = defaultdict(list)  # user -> bought
        for session, record in zip(sessions, written, strict=True):
            for applied in by_session[session]:
                user = record.user_id or applied.user_id
                if applied.type == PURCHASE and user and applied.item_id:
                    purchases[user].append((applied.item_id, applied.timestamp))
        if purchases:
            self._apply_purchases(purchases)
        if unforeseen and facets is not None:
            self._apply_affinities(facets, unforeseen)
        return dict(zip(sessions, written, strict=True))

    def _affinity_update(
        self,
        facets: ItemFacets | None,
        sessions: list[str],
        values: list[bytes | None],
        rebuilt: Mapping[str, SessionRecord],
        by_session: Mapping[str, list[Applied]],
    ) -> Pending | None:
        """The profiles of the users these sessions' item events belong to, ready to update
        (None: there are none, or no catalog to take attributes from)."""
        if facets is None:
            return None
        owned = []
        for session, value in zip(sessions, values, strict=True):
            record = rebuilt.get(session)
            if record is not None:
                owner = record.user_id
            elif value is not None and is_session_record(value):
                owner = session_owner(value)
            else:
                owner = None
            owned.append((owner, by_session[session]))
        users = [
            user
            for user, events in _user_events(owned).items()
            if any(facets.get(e.item_id) for e in events)
        ]
        return self.affinities.prepare(facets, users) if users else None

    def _apply_affinities(self, facets: ItemFacets, users: dict[str, list[ItemEvent]]) -> None:
        # the sessions are stored: a profile that fails to move must not drop them (the
        # caller would); it is behind by these events until rebuilt
        try:
            self.affinities.apply(facets, users)
        except Exception:
            logger.exception("could not update the affinity of %d user(s)", len(users))

    def stored_records(self, sessions: Iterable[str]) -> dict[str, bytes | None]:
        """The sessions' stored records (maybe as this process last saw them; `apply`
        corrects a stale one). Read before their events are committed, they tell which
        sessions the log should probe for being new: those without a record."""
        wanted = list(dict.fromkeys(sessions))
        values = self.store.guess_many([SESSION_KEY + session for session in wanted])
        return dict(zip(wanted, values, strict=True))

    def _apply_purchases(self, purchases: dict[str, list[tuple[str, float]]]) -> None:
        users = list(purchases)
        keys = [USER_KEY + user for user in users]
        values = self.store.get_many(keys)
        missing = [u for u, v in zip(users, values, strict=True) if _user(v) is None]
        history = self.log.user_purchase_times(missing, MAX_BOUGHT) if missing else {}

        def compute(current: list[bytes | None]) -> list[bytes | None]:
            out: list[bytes | None] = []
            for user, value in zip(users, current, strict=True):
                record = _user(value)
                if record is None:  # the log's history already holds this batch's purchases
                    out.append(encode_user(_user_record(history.get(user, []))))
                    continue
                for item, time in purchases[user]:
                    record = add_purchase(record, item, time)
                out.append(encode_user(record))
            return out

        self.store.update(keys, compute, values, lasting=True)

    def identify(self, model: LoadedModel | None, session_id: str, user_id: str) -> SessionRecord:
        """Log in: the session belongs to `user_id` from now on, its earlier events too.

        The link is committed in the log before this returns; repeating it changes nothing.
        The session is rebuilt from the log, so a model that remembers users continues it
        from the user's state, and what it bought counts for the user. Raises
        `OwnedByAnother` if the session already belongs to another user.
        """
        owner = self.log.link(session_id, user_id)
        if owner != user_id:
            raise OwnedByAnother(session_id, owner)
        key = SESSION_KEY + session_id
        value = self.store.get_many([key])[0]
        if _usable(value, model) and value is not None:
            record = decode_session(value)
            if record.user_id == user_id:
                return record  # logged in already: nothing moves twice
        facets = self.facets()
        record = self._rebuild(model, [session_id], facets)[session_id]
        encoded = encode_session(record)
        self.store.update([key], lambda current: [encoded], [value])
        if facets is not None and record.recent:  # what it did before the login counts too
            events = [ItemEvent(i.type, i.item_id, i.time, None) for i in record.recent]
            self._apply_affinities(facets, {user_id: events})
        if record.bought:
            when = {i.item_id: i.time for i in record.recent if i.type == PURCHASE}
            bought = [(item, when.get(item, record.last_time)) for item in record.bought]
            self._apply_purchases({user_id: bought})
        return record

    def repair(self, recent: int = 10_000) -> int:
        """At startup: drop the stored states that miss one of the last `recent` logged events
        of their session (a server that died between an event's commit and its state
        update leaves such a state behind); they are rebuilt from the log when next used.
        Returns how many were dropped."""
        last: dict[str, int] = {}
        for seq, session, _ in self.log.read_items_after(
            max(0, self.log.last_seq() - recent), recent
        ):
            last[session] = seq
        sessions = list(last)
        behind = []
        for start in range(0, len(sessions), 1_000):
            chunk = sessions[start : start + 1_000]
            values = self.store.get_many([SESSION_KEY + session for session in chunk])
            behind += [
                session
                for session, value in zip(chunk, values, strict=True)
                if value is not None
                and is_session_record(value)
                and decode_session(value).last_seq < last[session]
            ]
        if behind:
            logger.warning(
                "%d session state(s) missed logged events: rebuilt on next use", len(behind)
            )
            self.forget(behind)
        return len(behind)

    def erase(self, sessions: Iterable[str], user_id: str) -> None:
        """Delete these sessions' states and the user's record and affinity profile (a
        person's erasure; the log's part is `EventLog.erase_user`)."""
        keys = [SESSION_KEY + session for session in sessions]
        self.store.delete([*keys, USER_KEY + user_id, AFFINITY_KEY + user_id])

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
        record = self._rebuild(model, [session_id], self.facets())[session_id]
        encoded = encode_session(record)

        def compute(current: list[bytes | None]) -> list[bytes | None]:
            return [None] if _usable(current[0], model) else [encoded]

        stored = self.store.update([key], compute, [value])[0]
        return decode_session(stored) if stored is not None else record

    def user(self, user_id: str) -> UserRecord:
        """The user's record (items bought), from the log when not in the store."""
        key = USER_KEY + user_id
        value = self.store.get_many([key])[0]
        record = _user(value)
        if record is not None:
            return record
        record = _user_record(self.log.user_purchase_times([user_id], MAX_BOUGHT).get(user_id, []))
        encoded = encode_user(record)
        self.store.update(
            [key],
            lambda current: [None if _user(current[0]) is not None else encoded],
            [value],
            lasting=True,
        )
        return record

    def user_affinity(self, user_id: str) -> Affinity | None:
        """The user's affinity profile (rebuilt from the log when missing); None without a
        catalog to take attributes from."""
        facets = self.facets()
        return self.affinities.get(facets, user_id) if facets is not None else None

    def user_start(self, model: LoadedModel, user_id: str) -> bytes:
        """The state row a new session of the user would start from now (read only: the
        user's open session is closed in the copy, not in the store). For an unknown user,
        or a model that does not remember users, the anonymous start."""
        if not remembers_users(model):
            return model.initial_row
        record, _ = self._user_state(model, user_id, None)
        return self._closed(model, record)

    def state_of(self, model: LoadedModel, record: SessionRecord) -> object:
        """The model's batch state (of one session) held by `record`."""
        return model.codec.join([record.state])

    def _rebuild(
        self, model: LoadedModel | None, sessions: Iterable[str], facets: ItemFacets | None = None
    ) -> dict[str, SessionRecord]:
        """Records rebuilt from each session's last `rebuild_events` logged events; a
        session of a user starts from the user's state (for a model that remembers users)."""
        wanted = list(sessions)
        if not wanted:
            return {}
        logged = self.log.session_events(wanted, self.rebuild_events)
        owners = self.log.session_owners(wanted)
        starts = [self._fresh(model, session, owners.get(session)) for session in wanted]
        pending = [[Applied.of(e, e.seq) for e in logged.get(s, [])] for s in wanted]
        records = advance(model, starts, pending, facets)
        return dict(zip(wanted, records, strict=True))

    def _start(
        self, model: LoadedModel | None, sessions: dict[str, list[Applied]]
    ) -> dict[str, SessionRecord]:
        """Records of sessions with no logged past before `sessions[s]` (their first events):
        owned by the first user those events name, which the log links them to."""
        owners = {
            s: next((a.user_id for a in applied if a.user_id), None)
            for s, applied in sessions.items()
        }
        return {session: self._fresh(model, session, owner) for session, owner in owners.items()}

    def _fresh(
        self, model: LoadedModel | None, session_id: str, owner: str | None
    ) -> SessionRecord:
        """The record of a session before its first event: a session of a user starts from
        the user's state, for a model that remembers users."""
        start = None
        if owner is not None and model is not None and remembers_users(model):
            start = self._session_start(model, owner, session_id)
        return fresh_record(model, owner, start)

    def _session_start(self, model: LoadedModel, user_id: str, session_id: str) -> bytes:
        """The state row `session_id` of the user starts from; the user's session open
        before it is closed (the user state moves) and this one becomes the open one."""
        key = USER_KEY + user_id
        record, value = self._user_state(model, user_id, session_id)
        opened_here = record.open_session == session_id
        start = record.state if opened_here else self._closed(model, record)
        opened = replace(record, state=start, open_session=session_id)

        def compute(current: list[bytes | None]) -> list[bytes | None]:
            now = _user(current[0])
            if now is not None and now.model_tag == model.tag and now.open_session == session_id:
                return [None]  # another request opened it first
            bought = now if now is not None else record
            return [encode_user(replace(opened, bought=bought.bought, bought_at=bought.bought_at))]

        stored = _user(self.store.update([key], compute, [value], lasting=True)[0])
        return stored.state if stored is not None else start

    def _user_state(
        self, model: LoadedModel, user_id: str, session_id: str | None
    ) -> tuple[UserRecord, bytes | None]:
        """The user's record for `model`, and the stored value it came from. A record that is
        missing or of another version is rebuilt from the log (the user's sessions before
        `session_id`, each closed in turn) and stored, so later requests find it."""
        key = USER_KEY + user_id
        value = self.store.get_many([key])[0]
        found = _user(value)
        if found is not None and found.model_tag == model.tag:
            return found, value
        if found is not None:
            bought = found
        else:
            bought = _user_record(
                self.log.user_purchase_times([user_id], MAX_BOUGHT).get(user_id, [])
            )
        history = self.log.user_sessions([user_id], USER_SESSIONS + 1).get(user_id, [])
        earlier = [s for s in history if s != session_id][-USER_SESSIONS:]
        logged = self.log.session_events(earlier, self.rebuild_events) if earlier else {}
        state = model.initial_row
        for session in earlier:
            events = [Applied.of(e, e.seq) for e in logged.get(session, [])]
            record = advance(model, [SessionRecord(model.tag, state)], [events])[0]
            state = self._end(model, record.state)
        rebuilt = UserRecord(
            bought.bought, bought.bought_at, model_tag=model.tag, state=state, open_session=None
        )
        encoded = encode_user(rebuilt)
        stored = self.store.update(
            [key], lambda current: [encoded if current[0] == value else None], [value], lasting=True
        )[0]
        kept = _user(stored)  # another writer may have come first
        return (kept if kept is not None and kept.model_tag == model.tag else rebuilt), stored

    def _closed(self, model: LoadedModel, record: UserRecord) -> bytes:
        """Where the user's next session starts: after closing the open session, if any."""
        if record.open_session is None:
            return record.state
        value = self.store.get_many([SESSION_KEY + record.open_session])[0]
        if _usable(value, model) and value is not None:
            final = decode_session(value).state
        else:  # expired: replay it from the state it started from
            logged = self.log.session_events([record.open_session], self.rebuild_events)
            events = [Applied.of(e, e.seq) for e in logged.get(record.open_session, [])]
            final = advance(model, [SessionRecord(model.tag, record.state)], [events])[0].state
        return self._end(model, final)

    def _end(self, model: LoadedModel, row: bytes) -> bytes:
        assert isinstance(model.model, RemembersUsers)
        return model.codec.split(model.model.end_session(model.codec.join([row])))[0]


def _user_events(
    sessions: Iterable[tuple[str | None, Sequence[Applied]]],
) -> dict[str, list[ItemEvent]]:
    """Item events by the user they count for: the session's owner, else the event's user."""
    out: dict[str, list[ItemEvent]] = defaultdict(list)
    for owner, events in sessions:
        for applied in events:
            user = owner or applied.user_id
            if user and applied.item_id:
                out[user].append(
                    ItemEvent(applied.type, applied.item_id, applied.timestamp, applied.seq)
                )
    return out


def _usable(value: bytes | None, model: LoadedModel | None) -> bool:
    """A stored record that belongs to the model answering now."""
    tag = model.tag if model is not None else NO_MODEL_TAG
    return value is not None and is_session_record(value) and session_tag(value) == tag


def _user(value: bytes | None) -> UserRecord | None:
    return decode_user(value) if value is not None else None


def _user_record(purchases: list[tuple[str, float]]) -> UserRecord:
    record = UserRecord()
    for item, time in purchases:
        record = add_purchase(record, item, time)
    return record
