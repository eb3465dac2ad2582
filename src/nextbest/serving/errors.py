"""Errors for people: every 4xx/5xx is JSON that names the field and says what is wrong.

{"error": "invalid request", "detail": [{"field": "events[3].type", "message": "..."}]}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


def field_name(location: Sequence[str | int]) -> str:
    """("body", "events", 3, "type") -> "events[3].type"; ("query", "n") -> "n"."""
    parts = list(location)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def detail_of(errors: Sequence[Any], prefix: Sequence[str | int] = ()) -> list[dict[str, str]]:
    """pydantic errors as [{"field", "message"}], locations under `prefix`."""
    detail = []
    for error in errors:
        location = [*prefix, *error.get("loc", ())]
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "json_invalid":  # the location is a character position
            where = location[-1] if location and isinstance(location[-1], int) else "?"
            reason = error.get("ctx", {}).get("error", message)
            location, message = ["body"], f"malformed JSON at character {where}: {reason}"
        detail.append({"field": field_name(location), "message": message})
    return detail


class ApiError(HTTPException):
    """An error reply: status, a short summary, and the fields at fault."""

    def __init__(
        self,
        status: int,
        error: str,
        field: str | None = None,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        detail = [{"field": field, "message": message or error}] if field else []
        super().__init__(status, {"error": error, "detail": detail}, headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods the app's OpenAPI document lists for this request's path."""
    path = request.url.path
    for template, operations in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path):
            return sorted(method.upper() for method in operations)
    return []


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = {"error": "invalid request", "detail": detail_of(exc.errors())}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body: dict[str, Any] = (
            exc.detail if isinstance(exc.detail, dict) else {"error": str(exc.detail)}
        )
        body.setdefault("detail", [])
        headers = dict(exc.headers or {})
        if exc.status_code == 400 and not body["detail"]:  # bytes that are not text
            body["detail"] = [{"field": "body", "message": "not UTF-8 JSON text"}]
        if exc.status_code == 405:  # every method of the path, not only one route's
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(RedisConnectionError)
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        logger.error("backend unavailable on %s %s: %s", request.method, request.url.path, exc)
        body = {"error": "a backend (database or Redis) is unavailable; retry later", "detail": []}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        body = {"error": "internal error; the server logged the details", "detail": []}
        return JSONResponse(body, status_code=500)
