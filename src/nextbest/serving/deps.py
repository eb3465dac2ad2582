"""Dependencies of the routes, as `Annotated` aliases.

A route that needs a key takes `services: ReadAccess` (or `WriteAccess`, `AdminAccess`): one
dependency that checks the key and hands over the services. One dependency, not a chain of
them, because FastAPI's dependency resolution costs tens of microseconds per dependency and
request. All are `async def`: FastAPI runs a plain `def` dependency in its thread pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from nextbest.serving.auth import Scope
from nextbest.serving.services import Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _require(scope: Scope) -> Callable[[Request], Awaitable[Services]]:
    async def authorized(request: Request) -> Services:
        services: Services = request.app.state.services
        services.keys.check(request.headers.get("authorization"), scope)
        return services

    return authorized


ServicesDep = Annotated[Services, Depends(get_services)]  # no key needed
WriteAccess = Annotated[Services, Depends(_require(Scope.WRITE))]
ReadAccess = Annotated[Services, Depends(_require(Scope.READ))]
AdminAccess = Annotated[Services, Depends(_require(Scope.ADMIN))]
