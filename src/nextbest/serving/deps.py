"""Dependencies of the routes, as `Annotated` aliases.

A route that needs a key takes `services: ReadAccess` (or `WriteAccess`, `AdminAccess`): one
dependency that checks the key and hands over the services. One dependency, not a chain of
them, because FastAPI's dependency resolution costs tens of microseconds per dependency and
request. All are `async def`: FastAPI runs a plain `def` dependency in its thread pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from nextbest.serving.auth import Scope
from nextbest.serving.services import Services

Params = TypeVar("Params", bound=BaseModel)


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def access(request: Request, scope: Scope) -> Services:
    """The services, if the request's key has `scope` (else the 401/403 ApiError) and its
    address and key are within their request rates (else the 429 ApiError)."""
    services: Services = request.app.state.services
    services.limiter.request_from(client_address(request))  # before the key: wrong keys count
    key = services.keys.check(request.headers.get("authorization"), scope)
    services.limiter.request_with(key)
    request.state.api_key = key  # for a route's own limits (the events')
    return services


def client_address(request: Request) -> str:
    """The client's address (the proxy's, unless uvicorn is told to trust its headers)."""
    return request.client.host if request.client else "unknown"


def _require(scope: Scope) -> Callable[[Request], Awaitable[Services]]:
    async def authorized(request: Request) -> Services:
        return access(request, scope)

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
