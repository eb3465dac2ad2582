"""`/v1/experiments` (admin key): the A/B tests the server runs, defined by a file or by this
API.

    GET  /v1/experiments               what runs, from which file, why a newer file was refused
    PUT  /v1/experiments               define them: the file's tables as JSON; written to the file
    POST /v1/experiments/reload        read the file again now (each worker also does on a change)
    POST /v1/experiments/{name}/stop   end it now (its end written to the file); its report stays
    GET  /v1/experiments/{name}/report the attributed outcomes per variant, the statistics, the
                                       verdict, and how they moved over time

The admin key only: an experiment decides what shoppers see. A definition that cannot run
(shares that do not sum to 1, an unknown placement or model version, two experiments on one
placement at once) is a 422 naming the key, and the experiments running stay.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from nextbest.events.log import EventLog
from nextbest.experiments.spec import Experiment, ExperimentsError
from nextbest.serving.deps import AdminAccess
from nextbest.serving.errors import ApiError
from nextbest.serving.experiments import ServedExperiments

router = APIRouter(prefix="/v1", tags=["experiments"])

KEY = re.compile(r": (experiments[^\s:]*): ")
REPORT_SECONDS = 15.0  # a report is computed again after this long


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


@router.post(
    "/experiments/reload",
    response_model=ExperimentsOut,
    responses={422: {"description": "the experiments file is invalid"}},
)
async def reload_experiments(services: AdminAccess) -> ExperimentsOut:
    """Admin key. Read the experiments file again now. A bad file is a 422 naming the key;
    the running experiments stay."""
    try:
        await asyncio.to_thread(services.experiments.load)
    except ExperimentsError as exc:
        raise _refused(exc) from None
    return _out(services.experiments)


class ResultOut(BaseModel):
    metric: str = Field(description="click-through, conversion or revenue per user")
    variant: str
    control_value: float
    variant_value: float
    difference: float = Field(description="variant - control")
    low: float = Field(description="the 95% interval of the difference (fixed horizon)")
    high: float
    lift: float | None = Field(description="variant / control - 1")
    p_fixed: float = Field(description="valid when read once, at the planned end")
    p_always_valid: float = Field(description="mSPRT: valid however often it is read")
    cuped: bool
    verdict: str = Field(description='"better", "worse" or "no difference yet" (always valid)')


class PointOut(BaseModel):
    at: float
    totals: dict[str, dict[str, float]]
    results: list[ResultOut]


class ReportOut(BaseModel):
    experiment: str
    placement: str
    control: str
    at: float = Field(description="the outcomes up to this time (Unix) are counted")
    window_seconds: float
    lists: int = Field(description="the lists answered under the experiment")
    mixed_units: int = Field(description="shoppers seen in two variants (should be 0)")
    totals: dict[str, dict[str, float]] = Field(description="per variant: users and sums")
    sample_ratio_p: float | None
    sample_ratio_mismatch: bool
    results: list[ResultOut]
    timeline: list[PointOut]


def build_report(
    experiments: ServedExperiments,
    log: EventLog,
    name: str,
    window_hours: float,
    points: int,
    at: float | None = None,
) -> ReportOut:
    """The experiment's report from the log (shared by the route and the dashboard)."""
    from nextbest.experiments.attribution import attribute
    from nextbest.experiments.report import result_rows, snapshot, timeline

    experiment = next((e for e in experiments.experiments if e.name == name), None)
    if experiment is None:
        known = ", ".join(e.name for e in experiments.experiments) or "none"
        raise ApiError(
            404, "unknown experiment", "name", f"no experiment {name!r}; loaded: {known}"
        )
    until = at if at is not None else time.time()  # an ended one: its lists, and the window after
    attribution = attribute(log, experiment, until, window_hours * 3600.0)
    now = snapshot(attribution, until)
    report = now.report
    return ReportOut(
        experiment=experiment.name, placement=experiment.placement,
        control=next(v.name for v in experiment.variants if v.control),
        at=until, window_seconds=window_hours * 3600.0, lists=attribution.lists,
        mixed_units=attribution.mixed_units, totals=now.totals,
        sample_ratio_p=report.sample_ratio.p_value if report else None,
        sample_ratio_mismatch=bool(report and report.sample_ratio.mismatch),
        results=[ResultOut(**row) for row in result_rows(report)],  # type: ignore[arg-type]
        timeline=[
            PointOut(at=p.at, totals=p.totals,
                     results=[ResultOut(**row) for row in result_rows(p.report)])  # type: ignore[arg-type]
            for p in timeline(attribution, until, points)
        ],
    )  # fmt: skip


@router.get(
    "/experiments/{name}/report",
    response_model=ReportOut,
    responses={404: {"description": "no such experiment"}},
)
async def get_report(
    services: AdminAccess,
    name: Annotated[str, Path(min_length=1, max_length=200)],
    window_hours: Annotated[
        float, Query(gt=0, le=24 * 90, description="a cart or purchase counts this long after")
    ] = 24.0,
    points: Annotated[int, Query(ge=0, le=100, description="timeline points")] = 12,
) -> ReportOut:
    """Admin key. The experiment's attributed outcomes per variant, each metric against the
    control with its interval, fixed and always-valid p-values and verdict, the sample-ratio
    check, and the same over time (`points` snapshots). A report is kept for
    `REPORT_SECONDS`: it reads every list and outcome of the experiment (about a second
    for 20,000 lists), and a dashboard left open asks again and again."""
    await asyncio.to_thread(services.served.flush)  # this worker's latest lists count too
    return await asyncio.to_thread(
        services.experiments.kept_report,
        (name, window_hours, points),
        lambda: build_report(services.experiments, services.log, name, window_hours, points),
        REPORT_SECONDS,
    )


@router.post(
    "/experiments/{name}/stop",
    response_model=ExperimentsOut,
    responses={404: {"description": "no such experiment"}},
)
async def stop_experiment(
    services: AdminAccess, name: Annotated[str, Path(min_length=1, max_length=200)]
) -> ExperimentsOut:
    """Admin key. End the experiment now: its end is written to the experiments file (which
    every worker loads), its shoppers get the server's own placements from then on, and its
    report stays. An unknown name is a 404."""
    try:
        await asyncio.to_thread(services.experiments.stop, name)
    except KeyError:
        known = ", ".join(e.name for e in services.experiments.experiments) or "none"
        raise ApiError(
            404, "unknown experiment", "name", f"no experiment {name!r}; loaded: {known}"
        ) from None
    except ExperimentsError as exc:
        raise _refused(exc) from None
    return _out(services.experiments)
