"""`GET /healthz` and `GET /metrics` (no key needed: keep them off the public internet)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from nextbest.serving import metrics
from nextbest.serving.deps import ServicesDep
from nextbest.serving.schemas import HealthOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def healthz(services: ServicesDep, response: Response) -> HealthOut:
    """ok when the event log and the state store answer (and the event bus is connected,
    when there is one)."""
    problems = []
    pings = [("event log", services.log.ping), ("state store", services.store.ping)]
    if services.bus is not None:
        pings.append(("event bus", services.bus.ping))
    for name, ping in pings:
        try:
            ping()
        except Exception as exc:
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    model = services.model
    if problems:
        response.status_code = 503
    return HealthOut(
        status="unavailable" if problems else "ok",
        model_version=model.version if model else None,
        model=model.name if model else None,
        problems=problems,
    )


@router.get("/metrics", response_class=Response)
def get_metrics() -> Response:
    """Prometheus text format."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
