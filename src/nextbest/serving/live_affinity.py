"""Users' affinity profiles in the state store, current with every event.

A user's profile (`recommend/affinity.py`) lives under its own key, `a:USER`, without the idle
expiry, apart from the user record (which a model version change rebuilds): tastes do not
depend on the model. Every committed item event of a session that belongs to the user adds to
it, in the same atomic update that moves the session (`LiveState.apply`): no extra round trip
to the store. A profile that is missing (a restart of the in-process
store, an eviction) is rebuilt from the user's last `USER_SESSIONS` sessions in the log, which
already hold the events being applied; it remembers the last log position it read
(`rebuilt_through`) and skips those events. Live events are applied whatever their order, so
two workers committing one user's events at once both count.

A session's own profile is part of its record and moves in `live.advance`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from nextbest.events.log import EventLog
from nextbest.recommend.affinity import USER_HALF_LIFE, Affinity, ItemFacets, decode, encode
from nextbest.serving.state import StateStore

logger = logging.getLogger(__name__)

AFFINITY_KEY = "a:"
USER_SESSIONS = 20  # a lost profile is rebuilt from this many of the user's last sessions


@dataclass(frozen=True, slots=True)
class ItemEvent:
    """What a profile takes of one event; `seq` None: count it even at or before a rebuild's
    position (the events of a session that has just logged in)."""

    type: str
    item_id: str
    time: float
    seq: int | None


FacetsSource = Callable[[], ItemFacets | None]


class UserAffinities:
    def __init__(self, store: StateStore, log: EventLog, rebuild_events: int) -> None:
        self.store, self.log, self.rebuild_events = store, log, rebuild_events

    def prepare(self, facets: ItemFacets, users: Sequence[str]) -> Pending:
        """What an update of these users' profiles starts from: their keys, the values this
        process guesses they hold, and the missing ones rebuilt from the log."""
        keys = [AFFINITY_KEY + user for user in users]
        values = self.store.guess_many(keys) if keys else []  # `update` corrects a stale guess
        missing = [u for u, v in zip(users, values, strict=True) if v is None]
        return Pending(list(users), keys, values, self._rebuild(facets, missing))

    def compute(
        self,
        facets: ItemFacets,
        pending: Pending,
        current: Sequence[bytes | None],
        events: Mapping[str, Sequence[ItemEvent]],
    ) -> list[bytes | None]:
        """The new values of `pending`'s keys (None: unchanged); no side effects."""
        out: list[bytes | None] = []
        for user, value in zip(pending.users, current, strict=True):
            if value is not None:
                try:
                    profile = decode(value)
                except ValueError:  # damaged: rebuilt below, so the sessions' update holds
                    logger.warning("the affinity profile of user %r was unreadable", user)
                else:
                    changed = _add(profile, facets, events.get(user, ()))
                    out.append(encode(profile) if changed else None)
                    continue
            # the log it is rebuilt from holds these events
            rebuilt = pending.rebuilt.get(user) if value is None else None
            rebuilt = rebuilt or self._rebuild(facets, [user])[user]
            out.append(encode(rebuilt) if not rebuilt.empty else None)
        return out

    def apply(self, facets: ItemFacets, events: Mapping[str, Sequence[ItemEvent]]) -> None:
        """Add each user's new events (already committed in the log) to their profile."""
        users = [user for user, evs in events.items() if any(facets.get(e.item_id) for e in evs)]
        if not users:
            return
        pending = self.prepare(facets, users)
        self.store.update(
            pending.keys,
            lambda current: self.compute(facets, pending, current, events),
            pending.values,
            lasting=True,
        )

    def get(self, facets: ItemFacets, user_id: str) -> Affinity:
        """The user's profile, rebuilt from the log (and stored) when missing."""
        key = AFFINITY_KEY + user_id
        value = self.store.get_many([key])[0]
        if value is not None:
            return decode(value)
        profile = self._rebuild(facets, [user_id])[user_id]
        if profile.empty:
            return profile
        encoded = encode(profile)
        stored = self.store.update(
            [key], lambda current: [encoded if current[0] is None else None], [value], lasting=True
        )[0]
        return decode(stored) if stored is not None else profile

    def _rebuild(self, facets: ItemFacets, users: Iterable[str]) -> dict[str, Affinity]:
        wanted = list(users)
        if not wanted:
            return {}
        sessions = self.log.user_sessions(wanted, USER_SESSIONS)
        every = [session for user in wanted for session in sessions.get(user, [])]
        logged = self.log.session_events(every, self.rebuild_events) if every else {}
        out = {}
        for user in wanted:
            events = sorted(
                (e for s in sessions.get(user, []) for e in logged.get(s, []) if e.item_id),
                key=lambda e: e.seq,
            )
            profile = Affinity()
            _add(
                profile,
                facets,
                [ItemEvent(str(e.type), str(e.item_id), e.timestamp, None) for e in events],
            )
            profile.rebuilt_through = max((e.seq for e in events), default=0)
            out[user] = profile
        return out


@dataclass(frozen=True)
class Pending:
    """An update of some users' profiles, ready to run (see `UserAffinities.prepare`)."""

    users: list[str]
    keys: list[str]
    values: list[bytes | None]
    rebuilt: dict[str, Affinity]


def _add(profile: Affinity, facets: ItemFacets, events: Iterable[ItemEvent]) -> bool:
    """Add the events a profile has not seen; True if it changed."""
    changed = False
    for event in events:
        if event.seq is not None and event.seq <= profile.rebuilt_through:
            continue
        item = facets.get(event.item_id)
        if item is not None:
            changed |= profile.add(item, event.type, event.time, USER_HALF_LIFE)
    return changed
