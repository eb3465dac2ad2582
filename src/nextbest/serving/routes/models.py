"""`GET /v1/models` and `POST /v1/models/reload`: which model answers; switch to the newest."""

from __future__ import annotations

from fastapi import APIRouter

from nextbest.serving.deps import AdminAccess
from nextbest.serving.schemas import ModelsOut
from nextbest.serving.services import Services

router = APIRouter(prefix="/v1", tags=["models"])


def _models(services: Services, switched: bool = False) -> ModelsOut:
    model = services.model
    return ModelsOut(
        current=model.version if model else None,
        model=model.name if model else None,
        versions=services.registry.versions(),
        switched=switched,
    )


@router.get("/models", response_model=ModelsOut)
def get_models(services: AdminAccess) -> ModelsOut:
    """The version answering now and the versions on disk."""
    return _models(services)


@router.post("/models/reload", response_model=ModelsOut)
def reload_models(services: AdminAccess) -> ModelsOut:
    """Switch to the newest version now (the server also checks every few seconds).

    With several workers, this worker switches at once and the others at their next check."""
    return _models(services, switched=services.reload_model() is not None)
