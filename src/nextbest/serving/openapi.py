"""The served OpenAPI document, made true: every status code a route answers, with the error
body it really sends.

FastAPI documents a route's 200 and, for a route with parameters, a 422 with its own
`HTTPValidationError` body. The server answers more: every `/v1` route checks a key (401,
403) and rates (429) in one plain dependency FastAPI cannot see, any route may find a backend
down (503), a body may be too large (413), and every error has one body, `ErrorOut`. So the
document is finished here, once, after FastAPI made it: routes declare what only they answer
(404, 409) in their decorators, and this adds the rest.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from nextbest.serving.schemas import FieldError

REF = "#/components/schemas/{model}"


class ErrorOut(BaseModel):
    """Every error reply: a summary, and the fields at fault (empty when none is)."""

    error: str = Field(description="what went wrong, in a few words")
    detail: list[FieldError] = Field(description="each field at fault, and why")


ERROR = {"application/json": {"schema": {"$ref": REF.format(model="ErrorOut")}}}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
KEYED = {
    "401": "no key, or a key this server does not know",
    "403": "the key may not do this (or, with a browser key, not for this user or session)",
    "429": "over a request or event rate limit",
}
EVERY = {"503": "a backend (the database, Redis or the event bus) is unavailable; retry later"}
WITH_BODY = {
    "400": "the body is not UTF-8 text",
    "413": "the request body is over the size limit",
}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_out = ErrorOut.model_json_schema(ref_template=REF)
    schemas.update(error_out.pop("$defs"))  # FieldError
    schemas["ErrorOut"] = error_out
    components["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "a browser, write, read or admin key",
        }
    }
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            _errors_are_error_out(responses)
            extra = dict(EVERY)
            if path.startswith("/v1/"):
                operation["security"] = [{"apiKey": []}]
                extra |= KEYED
            if "requestBody" in operation:
                extra |= WITH_BODY
            if "parameters" in operation or "requestBody" in operation:
                extra["422"] = "a parameter or the body is invalid: `detail` names each field"
            for status, description in extra.items():
                if status not in responses:
                    responses[status] = {"description": description, "content": ERROR}
                    if status in ("429", "503"):
                        responses[status]["headers"] = RETRY_AFTER
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = schema
    return schema


def _errors_are_error_out(responses: dict[str, Any]) -> None:
    """Replace FastAPI's validation error body by the one the server sends; a route's own
    error model (the events' 422, which names rejected events) admits both."""
    for status, response in responses.items():
        if not status.startswith(("4", "5")):
            continue
        content = response.get("content", {}).get("application/json")
        if content is None:
            response["content"] = ERROR
            continue
        ref = content.get("schema", {}).get("$ref", "")
        if ref.endswith("/HTTPValidationError"):
            content["schema"] = ERROR["application/json"]["schema"]
        elif ref and not ref.endswith("/ErrorOut"):
            content["schema"] = {"anyOf": [{"$ref": ref}, ERROR["application/json"]["schema"]]}
