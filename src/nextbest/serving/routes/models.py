"""`GET /v1/models` and `POST /v1/models/reload`: which model answers; switch to the newest."""

from __future__ import annotations

from fastapi import APIRouter

from nextbest.serving.deps import AdminAccess
from nextbest.serving.errors import ApiError
from nextbest.serving.schemas import ModelsOut, RankerOut
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


def _ranker(services: Services) -> RankerOut:
    model = services.model
    pipeline = model.model if model is not None else None
    ranker = getattr(pipeline, "ranker", None)
    error = getattr(pipeline, "ranker_error", None)
    return RankerOut(
        version=model.version if model else None,
        ranker=None if pipeline is None or not hasattr(pipeline, "spec") else pipeline.spec.ranker,
        state="refused" if error else ("none" if ranker is None else pipeline.ranker_source),  # type: ignore[union-attr]
        error=error,
        online_learning=services.online is not None,
    )


@router.get("/ranker", response_model=RankerOut)
def get_ranker(services: AdminAccess) -> RankerOut:
    """Admin key. The answering version's learned ranker: which state answers (`ranker`:
    as trained; `ranker-online`: as online learning left it), or why it was refused."""
    return _ranker(services)


@router.post(
    "/ranker/reset",
    response_model=RankerOut,
    responses={409: {"description": "no learned ranker to reset"}},
)
def reset_ranker(services: AdminAccess) -> RankerOut:
    """Admin key. Forget what the FTRL ranker learned online: the trained ranker answers
    again, and the saved online state is deleted (with several workers, the others keep
    theirs until they restart)."""
    model = services.model
    if model is None or services.online is None:
        raise ApiError(409, "nothing to reset", "ranker", "no model, or online learning is off")
    try:
        services.online.reset(model)
    except ValueError as exc:
        raise ApiError(409, "cannot reset the ranker", "ranker", str(exc)) from None
    return _ranker(services)
