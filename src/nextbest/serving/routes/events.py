"""`POST /v1/events`: log a batch of events, then move their sessions' states
(`nextbest.serving.ingest` owns the path; the route parses and answers).

`async def`: the commit happens in the log's writer thread and is awaited, so the event loop
serves other requests meanwhile; validating and stepping the states are short and run on
the loop, which saves a thread switch per request.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from nextbest.serving.auth import Caller
from nextbest.serving.deps import WriteOrBrowserAccess, acting_user, client_address
from nextbest.serving.ingest import ingest
from nextbest.serving.schemas import EventBatchIn, EventsOut, FieldError

router = APIRouter(prefix="/v1", tags=["events"])


@router.post(
    "/events",
    response_model=EventsOut,
    responses={422: {"model": EventsOut, "description": "some events were rejected"}},
)
async def post_events(
    batch: EventBatchIn, services: WriteOrBrowserAccess, request: Request, response: Response
) -> EventsOut:
    """Log up to 500 events (idempotent on `event_id`) and update their sessions' state.

    The reply comes after the events are committed. Rejected events are listed with the field
    at fault (status 422); the good events of the same batch are kept. If the state store
    fails after the commit, the events are still acknowledged and their sessions' states are
    dropped where possible, to be rebuilt from the log.

    Takes a write key, or a browser key: then every event's `user_id` must be the one its
    user token (X-User-Token) vouches for, and no session may belong to another user; else
    the whole batch is 403 and nothing of it is logged.
    """
    caller: Caller = request.state.caller
    services.limiter.events(client_address(request), caller.key, len(batch.events), caller.browser)
    if caller.browser:
        for index, event in enumerate(batch.events):
            if isinstance(event, dict) and event.get("user_id") is not None:
                acting_user(request, str(event["user_id"]), f"events[{index}].user_id")
    result = await ingest(services, batch.events, caller)
    rejected = result.rejected
    reply = EventsOut(accepted=result.accepted, duplicates=result.duplicates, rejected=rejected)
    if rejected:
        response.status_code = 422
        reply.error = f"{len({r.index for r in rejected})} of {len(batch.events)} event(s) rejected"
        reply.detail = [FieldError(field=r.field, message=r.message) for r in rejected]
    return reply
