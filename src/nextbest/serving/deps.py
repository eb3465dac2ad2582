"""Dependencies of the routes, as `Annotated` aliases.

A route that needs a key takes `services: ReadAccess` (or `WriteAccess`, `AdminAccess`): one
dependency that checks the key and hands over the services. One dependency, not a chain of
them, because FastAPI's dependency resolution costs tens of microseconds per dependency and
request. All are `async def`: FastAPI runs a plain `def` dependency in its thread pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from nextbest.serving.auth import Caller, KeyOwners, Scope, bearer_key, caller_of
from nextbest.serving.errors import ApiError
from nextbest.serving.services import Services
from nextbest.user_tokens import BadUserToken, verify_user_token

Params = TypeVar("Params", bound=BaseModel)


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def access(request: Request, scope: Scope, browser: bool = False) -> Services:
    """The services of the shop whose key the request has, if the key has `scope` (or, when
    `browser`, is a browser key with no token or a valid one) and its address and key are
    within their request rates; else the 401/403/429 ApiError. The caller is left in
    `request.state.caller`, for the route's own checks (`acting_user`, `check_sessions`) and
    limits (the events')."""
    services: Services = request.app.state.services
    address = client_address(request)
    services.limiter.request_from(address)  # before the key: wrong keys count
    key = bearer_key(request.headers.get("authorization"))
    # the tenant whose key it is (the default shop's, granting nothing, when none holds it)
    owners: KeyOwners[Services] = request.app.state.key_owners
    found = owners.find(key)
    services = found.owner
    caller = caller_of(key, found.granted, scope, browser)
    services.limiter.request_with(caller.key)
    if caller.browser:
        services.limiter.browser_request_from(address)
        caller = prove_user(
            caller, request.headers.get(USER_TOKEN_HEADER), found.keys.identity_secrets
        )
    request.state.caller = caller
    return services


USER_TOKEN_HEADER = "x-user-token"


def prove_user(caller: Caller, token: str | None, identity_secrets: Sequence[str]) -> Caller:
    """A browser caller with the user its token vouches for (none without a token); a token
    that is bad, expired or unverifiable is 403, whatever the request."""
    if token is None:
        return caller
    if not identity_secrets:
        raise ApiError(
            403, "user tokens are not accepted", USER_TOKEN_HEADER,
            "this server has no identity secret (NEXTBEST_IDENTITY_SECRETS) to check them with",
        )  # fmt: skip
    try:
        user = verify_user_token(token.strip(), identity_secrets)
    except BadUserToken as exc:
        raise ApiError(403, "invalid user token", USER_TOKEN_HEADER, str(exc)) from None
    return replace(caller, user=user)


def acting_user(request: Request, user_id: str | None, field: str = "user_id") -> str | None:
    """The user a request acts for. A server key's request names any user (or none). A
    browser key's acts for the user its token vouches for: naming another user, or a user
    without a token, is 403; naming none with a token means the token's user."""
    caller: Caller = request.state.caller
    if not caller.browser:
        return user_id
    if user_id is not None and user_id != caller.user:
        raise ApiError(
            403,
            "user not proven",
            field,
            f"a browser key acts for {caller.user!r} only (the user its token vouches for)"
            if caller.user
            else f"a browser key names a user only with a user token ({USER_TOKEN_HEADER})",
        )
    return caller.user


def check_sessions(
    caller: Caller, owners: Mapping[str, str | None], field: str = "session_id"
) -> None:
    """403 when a browser caller touches a session that belongs to a user other than the one
    its token vouches for (`owners`: session -> user, as the log or the session says)."""
    if not caller.browser:
        return
    for session, owner in owners.items():
        if owner is not None and owner != caller.user:
            raise session_refused(session, field)


def session_refused(session_id: str, field: str = "session_id") -> ApiError:
    return ApiError(
        403,
        "session of another user",
        field,
        f"session {session_id!r} belongs to a logged-in user: a browser key reaches it only "
        f"with that user's token ({USER_TOKEN_HEADER})",
    )


def client_address(request: Request) -> str:
    """The client's address (the proxy's, unless uvicorn is told to trust its headers)."""
    return request.client.host if request.client else "unknown"


def _require(scope: Scope, browser: bool = False) -> Callable[[Request], Awaitable[Services]]:
    async def authorized(request: Request) -> Services:
        return access(request, scope, browser)

    return authorized


# The hottest route (GET /v1/recommendations) takes the request itself and validates its
# query as one model: FastAPI resolves declared query parameters one by one on each request
# (0.3 ms of a slow core for nine of them, even grouped in a model), and validates and
# serialises a returned model a second time. The three helpers below keep what FastAPI
# gives: the same 422 answer for a bad parameter, and the parameters in the OpenAPI document.


def query_params(model: type[Params], request: Request) -> Params:
    """The request's query parameters as `model` (the last of a repeated one, unknown ones
    ignored, as FastAPI reads them), or the RequestValidationError FastAPI would raise."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in errors]
        ) from None


def query_parameters_doc(model: type[BaseModel]) -> list[dict[str, Any]]:
    """`model`'s fields as OpenAPI query parameters (for a route's `openapi_extra`)."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        description = field.get("description")
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


# what FastAPI documents for a route whose parameters it validates
VALIDATION_ERROR_DOC = {
    "description": "Validation Error",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
    },
}


def json_reply(reply: BaseModel, status_code: int = 200) -> Response:
    """`reply` serialised once, by pydantic (a returned model FastAPI would check again)."""
    return Response(reply.model_dump_json(), status_code, media_type="application/json")


ServicesDep = Annotated[Services, Depends(get_services)]  # no key needed
WriteAccess = Annotated[Services, Depends(_require(Scope.WRITE))]
ReadAccess = Annotated[Services, Depends(_require(Scope.READ))]
AdminAccess = Annotated[Services, Depends(_require(Scope.ADMIN))]
# routes a page may call with a browser key: they check its user with `acting_user` and its
# sessions with `check_sessions`
WriteOrBrowserAccess = Annotated[Services, Depends(_require(Scope.WRITE, browser=True))]
ReadOrBrowserAccess = Annotated[Services, Depends(_require(Scope.READ, browser=True))]
