"""`POST /v1/identify`: a session logs in, and from then on it belongs to the user.

Every event of the session, before the login too, counts for the user, exactly once (the
event log links the session to the user; a repeated login changes nothing). A model that
remembers users (HGRU4Rec) continues the session from the user's state from the next
request on. The write key may call it, so the browser SDK can say who logged in; a shop
that does not want browsers to name users calls it from its own server instead.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from nextbest.serving.deps import WriteOrBrowserAccess, acting_user
from nextbest.serving.errors import ApiError
from nextbest.serving.live import OwnedByAnother
from nextbest.serving.schemas import IdentifyIn, IdentifyOut

router = APIRouter(prefix="/v1", tags=["events"])


@router.post(
    "/identify",
    response_model=IdentifyOut,
    responses={409: {"description": "the session already belongs to another user"}},
)
def post_identify(
    login: IdentifyIn, services: WriteOrBrowserAccess, request: Request
) -> IdentifyOut:
    """Stitch an anonymous session to the user who logged in (idempotent).

    Takes a write key, or a browser key with the user's token (X-User-Token)."""
    acting_user(request, login.user_id)
    try:
        record = services.live.identify(services.model, login.session_id, login.user_id)
    except OwnedByAnother as exc:
        raise ApiError(
            409,
            "session belongs to another user",
            "session_id",
            f"{exc}; start a new session id after a logout",
        ) from None
    return IdentifyOut(session_id=login.session_id, user_id=login.user_id, events=record.n_events)
