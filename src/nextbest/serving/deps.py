"""Dependencies of the routes, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nextbest.serving.auth import Scope
from nextbest.serving.services import Services

# Declared for the OpenAPI page (its "Authorize" button); `ApiKeys.check` reads the header.
bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY")


# Dependencies are `async def` because they never block: FastAPI runs a plain `def` dependency
# in its thread pool, which costs a thread switch per dependency and request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def _require(scope: Scope) -> Callable[..., Awaitable[None]]:
    async def check(
        request: Request,
        services: ServicesDep,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> None:
        services.keys.check(request.headers.get("authorization"), scope)

    return check


WriteKey = Annotated[None, Depends(_require(Scope.WRITE))]
ReadKey = Annotated[None, Depends(_require(Scope.READ))]
AdminKey = Annotated[None, Depends(_require(Scope.ADMIN))]
