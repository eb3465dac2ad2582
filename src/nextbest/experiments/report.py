"""An experiment's report from per-user outcomes: each metric by variant against the control,
with intervals, lifts, the fixed-horizon and the always-valid p-value, CUPED where a
pre-period is given, and the sample-ratio check.

The outcome table has one row per user (`OUTCOME_COLUMNS`): the variant, and the user's
impressions, clicks, carts, purchases and revenue over the experiment. A column `pre_<metric>`
(the same user's value before the experiment) turns CUPED on for that metric. The metrics:

    click-through       clicks / impressions (a ratio: the delta method)
    conversion          share of users with a purchase
    revenue per user    revenue / users
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from nextbest.experiments.attribution import Attribution, totals_of
from nextbest.experiments.stats import (
    Difference,
    SampleRatio,
    cuped,
    mean_difference,
    msprt_p_values,
    ratio_difference,
    ratio_variance,
    sample_ratio_mismatch,
)

OUTCOME_COLUMNS = {
    "user_id": pl.String,
    "variant": pl.String,
    "impressions": pl.Float64,
    "clicks": pl.Float64,
    "carts": pl.Float64,
    "purchases": pl.Float64,
    "revenue": pl.Float64,
}
METRICS = ("click-through", "conversion", "revenue per user")
# The mSPRT's mixing: effects of 5% to 25 times the control's value, averaged. A single 5%
# scale left a 20-fold difference in conversion "no difference yet" at p 0.89, and scales
# up to 1x a 30-fold difference in revenue per user (a heavy-tailed metric) at p 0.43.
TAU_SHARES = (0.05, 0.25, 1.0, 5.0, 25.0)


@dataclass(frozen=True)
class MetricResult:
    metric: str
    variant: str
    difference: Difference
    always_valid_p: float
    cuped: bool


@dataclass(frozen=True)
class Report:
    control: str
    users: dict[str, int]
    sample_ratio: SampleRatio
    results: list[MetricResult]


def conform_outcomes(outcomes: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in OUTCOME_COLUMNS if c not in outcomes.columns]
    if missing:
        raise ValueError(f"the outcome table lacks the columns {missing}")
    extra = [c for c in outcomes.columns if c.startswith("pre_")]
    try:
        table = outcomes.select(
            *(pl.col(c).cast(t, strict=True) for c, t in OUTCOME_COLUMNS.items()),
            *(pl.col(c).cast(pl.Float64, strict=True) for c in extra),
        )
    except pl.exceptions.InvalidOperationError as error:
        raise ValueError(f"the outcome table: a column has the wrong type ({error})") from error
    if table["user_id"].is_duplicated().any():
        raise ValueError("the outcome table has a user twice: one row per user")
    if table.select(pl.any_horizontal(pl.all().is_null()).any()).item():
        raise ValueError("the outcome table has empty cells")
    return table


def analyse(outcomes: pl.DataFrame, shares: dict[str, float], control: str) -> Report:
    """The report of an experiment with the design's `shares` (variant -> share)."""
    table = conform_outcomes(outcomes)
    if control not in shares:
        raise ValueError(f"the control {control!r} is not among the variants {sorted(shares)}")
    found = set(table["variant"].unique().to_list())
    if found - set(shares):
        raise ValueError(
            f"the outcomes name variants the design lacks: {sorted(found - set(shares))}"
        )
    names = list(shares)
    users = {v: int((table["variant"] == v).sum()) for v in names}
    ratio = sample_ratio_mismatch([users[v] for v in names], [shares[v] for v in names])
    arms = {v: table.filter(pl.col("variant") == v) for v in names}
    results = []
    for variant in names:
        if variant == control:
            continue
        for metric in METRICS:
            results.append(_metric(metric, arms[control], arms[variant], variant))
    return Report(control, users, ratio, results)


def _metric(metric: str, a: pl.DataFrame, b: pl.DataFrame, variant: str) -> MetricResult:
    if metric == "click-through":
        diff = ratio_difference(
            a["clicks"].to_numpy(), a["impressions"].to_numpy(),
            b["clicks"].to_numpy(), b["impressions"].to_numpy(),
        )  # fmt: skip
        used_cuped = False
    else:
        column = "purchases" if metric == "conversion" else "revenue"
        values = [arm[column].to_numpy() for arm in (a, b)]
        if metric == "conversion":
            values = [(v > 0).astype(np.float64) for v in values]
        pre = f"pre_{column}"
        used_cuped = pre in a.columns
        if used_cuped:
            values, _ = cuped(values, [arm[pre].to_numpy() for arm in (a, b)])
        diff = mean_difference(values[0], values[1])
    tau2 = mixing_variances(diff.a)
    always = (
        float(
            msprt_p_values(np.array([diff.difference]), np.array([diff.standard_error**2]), tau2)[0]
        )
        if diff.standard_error > 0
        else 1.0
    )
    return MetricResult(metric, variant, diff, always, used_cuped)


def mixing_variances(base: float) -> list[float]:
    """The mSPRT's tau^2 values for a metric whose control value is `base`."""
    return [(share * base) ** 2 if base else 1e-12 for share in TAU_SHARES]


@dataclass(frozen=True)
class Plan:
    metric: str
    base: float  # the pilot's value
    users_per_arm: int  # to find `lift` with `power` at `alpha` (two arms of equal size)


def plan(pilot: pl.DataFrame, lift: float, power: float = 0.8, alpha: float = 0.05) -> list[Plan]:
    """How many users each arm needs, from a pilot's per-user outcomes (one arm, or an A/A
    test's users pooled): each metric's variance per user, by the same estimators the report
    uses, scaled to the sample size at which a difference of `lift` x the pilot's value
    has the power asked."""
    from scipy import stats

    if not 0 < power < 1 or not 0 < alpha < 1 or lift == 0:
        raise ValueError("plan: power and alpha in (0, 1), and a lift other than 0")
    table = conform_outcomes(pilot)
    n = table.height
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    estimates = {
        "click-through": ratio_variance(
            table["clicks"].to_numpy(), table["impressions"].to_numpy()
        ),
    }
    for metric, column in (("conversion", "purchases"), ("revenue per user", "revenue")):
        values = table[column].to_numpy().astype(np.float64)
        if metric == "conversion":
            values = (values > 0).astype(np.float64)
        estimates[metric] = (float(values.mean()), float(values.var(ddof=1)) / n)
    plans = []
    for metric, (base, variance_of_mean) in estimates.items():
        per_user = variance_of_mean * n  # the variance one user adds
        effect = abs(lift * base)
        users = math.ceil(2 * per_user * (z / effect) ** 2) if effect > 0 else 0
        plans.append(Plan(metric, base, users))
    return plans


ALPHA = 0.05
MIN_USERS = 2  # per arm, for any interval at all


def verdict(result: MetricResult, alpha: float = ALPHA) -> str:
    """What the always-valid test says now (safe to read every day): "better" or "worse"
    when it rejects no difference at `alpha`, else "no difference yet"."""
    if result.always_valid_p < alpha and result.difference.difference != 0:
        return "better" if result.difference.difference > 0 else "worse"
    return "no difference yet"


@dataclass(frozen=True)
class Snapshot:
    """An experiment as it stood at `at`: its per-unit outcomes, the counts per variant, and
    the report once every arm has `MIN_USERS` users (None before)."""

    at: float
    outcomes: pl.DataFrame
    totals: dict[str, dict[str, float]]
    report: Report | None


def snapshot(attribution: Attribution, at: float | None = None) -> Snapshot:
    """The experiment's report from its attribution, as of `at` (None: all of it)."""
    experiment = attribution.experiment
    shares = {v.name: v.share for v in experiment.variants}
    control = next(v.name for v in experiment.variants if v.control)
    outcomes = attribution.outcomes(at)  # once: the totals and the report both read it
    totals = totals_of(outcomes, list(shares))
    enough = all(t["users"] >= MIN_USERS for t in totals.values())
    report = analyse(outcomes, shares, control) if enough else None
    stamp = (
        at if at is not None else max((r[3] for r in attribution.rows), default=experiment.start)
    )
    return Snapshot(stamp, outcomes, totals, report)


def timeline(attribution: Attribution, until: float, points: int = 12) -> list[Snapshot]:
    """`points` snapshots evenly spaced from the first impression to `until`."""
    first = attribution.first_at
    if first is None or points < 1:
        return []
    step = max(until - first, 0.0) / points
    return [snapshot(attribution, first + step * k) for k in range(1, points + 1)]


def result_rows(report: Report | None) -> list[dict[str, object]]:
    """The report's results as plain rows (the API's, the CLI's and the dashboard's)."""
    if report is None:
        return []
    return [
        {
            "metric": r.metric,
            "variant": r.variant,
            "control_value": r.difference.a,
            "variant_value": r.difference.b,
            "difference": r.difference.difference,
            "low": r.difference.low,
            "high": r.difference.high,
            "lift": None if math.isnan(r.difference.lift) else r.difference.lift,
            "p_fixed": r.difference.p_value,
            "p_always_valid": r.always_valid_p,
            "cuped": r.cuped,
            "verdict": verdict(r),
        }
        for r in report.results
    ]
