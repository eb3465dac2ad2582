"""A person's erasure, and event retention.

    erased = erase_user(services, "u-42")   # DELETE /v1/users/{id}
    forget_old_events(log, keep_days=365)   # the server calls it hourly with a retention set

Erasure deletes, for the user id: the events of every session linked to the user (those
before the login too) and every event naming them, the session links, the lists answered to
them or their sessions (lists still queued for writing are written first, so none escapes),
the live session states, the user's record and affinity profile in the state store (for the
answering version and every version pinned by an experiment), and the sessions' latest item in
the live counts. What it cannot reach: model versions already trained on those events (they
hold item statistics and weights, no ids; the next training no longer sees the events) and
another worker's in-memory copy of a record, which goes with that worker's next write of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nextbest.events.log import Erased, EventLog
from nextbest.serving.served import forget_in_chunks

if TYPE_CHECKING:  # the services import this module for retention
    from nextbest.serving.services import Services

FORGET_CHUNK = 5_000  # events per transaction (short, so event commits barely wait)


def erase_user(services: Services, user_id: str) -> Erased:
    services.served.flush()
    erased = services.log.erase_user(user_id)
    for live in services.experiments.live_states():
        live.erase([*erased.sessions, *erased.others], user_id)  # others: rebuilt without
    services.trends.forget_sessions(erased.sessions)
    return erased


def forget_old_events(
    log: EventLog, keep_days: float, now: float | None = None, chunk: int = FORGET_CHUNK
) -> int:
    """Delete the events received more than `keep_days` ago (and links made before then),
    `chunk` per transaction; return how many events went."""
    return forget_in_chunks(log.forget_events, keep_days, now, chunk)
