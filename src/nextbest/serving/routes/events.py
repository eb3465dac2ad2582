"""`POST /v1/events`: log a batch of events, then move their sessions' states.

`async def`: the commit happens in the log's writer thread and is awaited, so the event loop
serves other requests meanwhile; validating and stepping the states are short and run on
the loop, which saves a thread switch per request.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Response

from nextbest.events.schema import Event
from nextbest.serving import metrics
from nextbest.serving.deps import WriteAccess
from nextbest.serving.schemas import (
    EventBatchIn,
    EventsOut,
    FieldError,
    Rejected,
    parse_event,
    unknown_item,
)

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["events"])


@router.post(
    "/events",
    response_model=EventsOut,
    responses={422: {"model": EventsOut, "description": "some events were rejected"}},
)
async def post_events(batch: EventBatchIn, services: WriteAccess, response: Response) -> EventsOut:
    """Log up to 500 events (idempotent on `event_id`) and update their sessions' state.

    The reply comes after the events are committed. Rejected events are listed with the field
    at fault (status 422); the good events of the same batch are kept. If the state store
    fails after the commit, the events are still acknowledged and their sessions' states are
    dropped where possible, to be rebuilt from the log.
    """
    now = time.time()
    model = services.model
    good: list[tuple[int, Event]] = []
    rejected: list[Rejected] = []
    for index, raw in enumerate(batch.events):
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
    # the loop serves other requests while the commit (and its disk sync) happens
    # a session without a stored record may be new: the commit then says so, which spares
    # reading its past from the log. The events do not depend on the state store: if it
    # cannot answer, they are committed all the same.
    stored: dict[str, bytes | None] | None = None
    try:
        stored = services.live.stored_records(event.session_id for event in events)
    except Exception:
        logger.exception("could not read session states before a commit")
    probe = [session for session, value in (stored or {}).items() if value is None]
    logged = await asyncio.wrap_future(services.log.submit(events, probe=probe))
    seqs = logged.seqs
    fresh = [(event, seq) for event, seq in zip(events, seqs, strict=True) if seq]
    if fresh:
        try:
            services.live.apply(
                model, [e for e, _ in fresh], [s for _, s in fresh], logged.new_sessions, stored
            )
        except Exception:  # the events are committed: acknowledge them, rebuild the states
            logger.exception("state update failed for %d committed event(s)", len(fresh))
            services.live.forget({event.session_id for event, _ in fresh})
    duplicates = [event.event_id for event, seq in zip(events, seqs, strict=True) if not seq]
    metrics.EVENTS.labels("accepted").inc(len(fresh))
    metrics.EVENTS.labels("duplicate").inc(len(duplicates))
    metrics.EVENTS.labels("rejected").inc(len({r.index for r in rejected}))
    reply = EventsOut(accepted=len(fresh), duplicates=duplicates, rejected=rejected)
    if rejected:
        response.status_code = 422
        reply.error = f"{len({r.index for r in rejected})} of {len(batch.events)} event(s) rejected"
        reply.detail = [FieldError(field=r.field, message=r.message) for r in rejected]
    return reply
