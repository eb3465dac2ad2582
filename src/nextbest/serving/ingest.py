"""The event path, in one call: validate a batch, log what is good, move the live states.

    result = await ingest(services, raw_events)   # IngestResult: accepted, duplicates, rejected

Events are validated one by one (one bad event rejects that event only), events naming an
unknown item are rejected, the rest are committed in the log's writer thread (awaited, so the
event loop serves other requests meanwhile), then their sessions' states move one step per
event. The events do not depend on the state store: if it cannot answer before the commit,
they are committed all the same; if it fails after, they are acknowledged and their
sessions' states are dropped, to be rebuilt from the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nextbest.events.schema import Event
from nextbest.serving import metrics
from nextbest.serving.auth import Caller
from nextbest.serving.bus import BusUnavailable
from nextbest.serving.deps import check_sessions
from nextbest.serving.errors import ApiError
from nextbest.serving.online import OUTCOMES
from nextbest.serving.schemas import Rejected, parse_event, unknown_item
from nextbest.serving.services import Services
from nextbest.serving.state.records import is_session_record, session_owner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    accepted: int  # events logged now
    duplicates: list[str]  # event ids logged before
    rejected: list[Rejected]  # in batch order


async def ingest(
    services: Services, batch: Sequence[Any], caller: Caller | None = None
) -> IngestResult:
    """`caller`: a browser key's batch may touch only sessions that are anonymous or its
    token's user's (else the 403 ApiError, before anything is committed)."""
    now = time.time()
    model = services.model
    good: list[tuple[int, Event]] = []
    rejected: list[Rejected] = []
    for index, raw in enumerate(batch):
        parsed = parse_event(raw, index, now)
        if isinstance(parsed, Event):
            good.append((index, parsed))
        else:
            rejected.extend(parsed)
    unknown = services.catalog.unknown({e.item_id for _, e in good if e.item_id}, model)
    if unknown:
        rejected.extend(unknown_item(i, e) for i, e in good if e.item_id in unknown)
        good = [(i, e) for i, e in good if e.item_id not in unknown]
    rejected.sort(key=lambda r: r.index)
    events = [event for _, event in good]
    if services.bus is not None:  # JetStream stores them; a consumer logs them
        return await _publish(services, events, rejected, caller)
    # A session without a stored record may be new: the commit then says so, which spares
    # reading its past from the log.
    stored = stored_records(services, events)
    if caller is not None and caller.browser and events:
        check_sessions(caller, _owners(services, events, stored), "events.session_id")
    seqs = await log_and_apply(services, events, stored)
    duplicates = [event.event_id for event, seq in zip(events, seqs, strict=True) if not seq]
    return _counted(IngestResult(len(events) - len(duplicates), duplicates, rejected))


async def log_and_apply(
    services: Services, events: Sequence[Event], stored: dict[str, bytes | None] | None
) -> tuple[int, ...]:
    """Commit the events to the log, then move their sessions' states (and the experiments'
    and the online learner's); per event its `seq`, or 0 for one logged before. `stored`:
    the sessions' records as read before the commit (None if the store could not answer).
    Both ingest and the bus consumer log through here."""
    model = services.model
    probe = [session for session, value in (stored or {}).items() if value is None]
    logged = await asyncio.wrap_future(services.log.submit(events, probe=probe))
    seqs = logged.seqs
    fresh = [(event, seq) for event, seq in zip(events, seqs, strict=True) if seq]
    if fresh:
        applied, applied_seqs = [e for e, _ in fresh], [s for _, s in fresh]
        try:
            moved = services.live.apply(model, applied, applied_seqs, logged.new_sessions, stored)
        except Exception:  # the events are committed: acknowledge them, rebuild the states
            logger.exception("state update failed for %d committed event(s)", len(fresh))
            services.live.forget({event.session_id for event, _ in fresh})
        else:  # the experiments' pinned versions follow their sessions too
            try:
                services.experiments.apply(applied, applied_seqs, logged.new_sessions, moved)
            except Exception:  # their states are rebuilt from the log when next used
                logger.exception("experiment state update failed for %d event(s)", len(fresh))
    if services.online is not None:  # the outcomes of learned lists: queued, learned later
        for event, _ in fresh:
            if event.recommendation_id and event.item_id and str(event.type) in OUTCOMES:
                services.online.outcome(event.recommendation_id, event.item_id)
    return seqs


async def _publish(
    services: Services, events: list[Event], rejected: list[Rejected], caller: Caller | None
) -> IngestResult:
    """The bus's half of ingest: acknowledged once JetStream stored every event (a 503 if
    the bus does not confirm them all; a re-send is safe). Duplicates are those the bus
    had within its duplicate window."""
    assert services.bus is not None
    if caller is not None and caller.browser and events:
        stored = stored_records(services, events)
        check_sessions(caller, _owners(services, events, stored), "events.session_id")
    if not events:
        return _counted(IngestResult(0, [], rejected))
    try:
        confirmed = await services.bus.publish(events)
    except BusUnavailable as exc:
        logger.error("%s", exc)
        raise ApiError(
            503, "the event bus is unavailable; nothing unconfirmed was kept, retry later",
            headers={"Retry-After": "1"},
        ) from exc  # fmt: skip
    for event, one in zip(events, confirmed, strict=True):
        services.bus.published(event.session_id, one.seq)  # for read-your-writes
    duplicates = [e.event_id for e, one in zip(events, confirmed, strict=True) if one.duplicate]
    return _counted(IngestResult(len(events) - len(duplicates), duplicates, rejected))


def stored_records(services: Services, events: Sequence[Event]) -> dict[str, bytes | None] | None:
    try:
        return services.live.stored_records(event.session_id for event in events)
    except Exception:
        logger.exception("could not read session states before a commit")
        return None


def _counted(result: IngestResult) -> IngestResult:
    metrics.EVENTS.labels("accepted").inc(result.accepted)
    metrics.EVENTS.labels("duplicate").inc(len(result.duplicates))
    metrics.EVENTS.labels("rejected").inc(len({r.index for r in result.rejected}))
    return result


def _owners(
    services: Services, events: Sequence[Event], stored: dict[str, bytes | None] | None
) -> dict[str, str | None]:
    """Each session's owner: from its stored record when there is one (read anyway, so this
    costs no query for a session in progress), else from the log (a new or expired session;
    one indexed query for the batch)."""
    owners: dict[str, str | None] = {}
    unknown = []
    for session in {event.session_id for event in events}:
        value = (stored or {}).get(session)
        if value is not None and is_session_record(value):
            owners[session] = session_owner(value)
        else:
            unknown.append(session)
    if unknown:
        owners.update(services.log.session_owners(unknown))
    return owners
