"""`/v1/experiments` (admin key): the A/B tests the server runs, defined by a file or by this
API.

    GET  /v1/experiments          what runs, from which file, and why a newer file was refused
    PUT  /v1/experiments          define them: the file's tables as JSON; written to the file
    POST /v1/experiments/reload   read the file again now (each worker also does on a change)

The admin key only: an experiment decides what shoppers see. A definition that cannot run
(shares that do not sum to 1, an unknown placement or model version, two experiments on one
placement at once) is a 422 naming the key, and the experiments running stay.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from nextbest.experiments.spec import Experiment, ExperimentsError
from nextbest.serving.deps import AdminAccess
from nextbest.serving.errors import ApiError
from nextbest.serving.experiments import ServedExperiments

router = APIRouter(prefix="/v1", tags=["experiments"])

KEY = re.compile(r": (experiments[^\s:]*): ")


class VariantOut(BaseModel):
    name: str
    model: str = Field(description='a model version, or "latest" (the version answering)')
    placements: str | None = Field(description="the variant's own placements file, if any")
    share: float
    control: bool


class ExperimentOut(BaseModel):
    name: str
    placement: str
    salt: str
    start: float = Field(description="Unix time")
    end: float | None
    running: bool
    variants: list[VariantOut]


class ExperimentsOut(BaseModel):
    file: str
    loaded_at: float | None
    error: str | None = Field(description="why the file's latest version was refused, if it was")
    experiments: list[ExperimentOut]


def _out(experiments: ServedExperiments) -> ExperimentsOut:
    return ExperimentsOut(
        file=str(experiments.path),
        loaded_at=experiments.loaded_at,
        error=experiments.error,
        experiments=[_experiment(e) for e in experiments.experiments],
    )


def _experiment(e: Experiment) -> ExperimentOut:
    return ExperimentOut(
        name=e.name, placement=e.placement, salt=e.salt, start=e.start, end=e.end,
        running=e.running(time.time()),
        variants=[
            VariantOut(name=v.name, model=v.model, share=v.share, control=v.control,
                       placements=str(v.placements) if v.placements else None)
            for v in e.variants
        ],
    )  # fmt: skip


def _refused(exc: ExperimentsError) -> ApiError:
    found = KEY.search(str(exc))
    return ApiError(
        422, "invalid experiments", found.group(1) if found else "experiments", str(exc)
    )


@router.get("/experiments", response_model=ExperimentsOut)
async def get_experiments(services: AdminAccess) -> ExperimentsOut:
    """Admin key. The experiments loaded, which of them run now, and the file they came from."""
    return _out(services.experiments)


@router.put("/experiments", response_model=ExperimentsOut)
async def put_experiments(
    services: AdminAccess,
    definition: dict[str, Any] = Body(  # noqa: B008 - FastAPI's way to take a free-form body
        description='the experiments file as JSON: {"experiments": {"NAME": {"placement": ..., '
        '"salt": ..., "start": "2026-12-07T00:00:00Z", "variants": [...]}}}',
    ),
) -> ExperimentsOut:
    """Admin key. Replace every experiment by `definition`: checked, then written to the
    experiments file, which every worker loads when it changes. A 422 names the key at fault;
    nothing is written and the running experiments stay."""
    try:
        await asyncio.to_thread(services.experiments.define, definition)
    except ExperimentsError as exc:
        raise _refused(exc) from None
    return _out(services.experiments)


@router.post("/experiments/reload", response_model=ExperimentsOut)
async def reload_experiments(services: AdminAccess) -> ExperimentsOut:
    """Admin key. Read the experiments file again now. A bad file is a 422 naming the key;
    the running experiments stay."""
    try:
        await asyncio.to_thread(services.experiments.load)
    except ExperimentsError as exc:
        raise _refused(exc) from None
    return _out(services.experiments)
