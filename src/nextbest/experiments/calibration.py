"""Are the A/B statistics calibrated? Simulated per-user outcomes, no server.

Each simulated test runs `days` days; every day `users_per_day` new users arrive in each arm.
A user gets 1 + Poisson(`impressions`) impressions and clicks each with their own chance, drawn
around the arm's click-through rate (a Beta with `concentration`: users differ, so their
impressions are not independent, which is what the delta method is for). The analyst looks
at click-through (clicks / impressions) every day, on all the users so far:

- **fixed horizon, peeked**: stop at the first day whose ordinary p-value is below alpha;
- **sequential**: stop at the first day whose always-valid mSPRT p-value is below alpha.

`false_positive_rates` runs A/A tests (no difference) and counts the stops; `detection_rate`
plants a lift and compares how often the fixed-horizon test on the last day finds it with the
power its own standard error predicts; `cuped_narrowing` compares interval widths with and
without a pre-period covariate against the theory's sqrt(1 - rho^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nextbest.experiments.report import mixing_variances
from nextbest.experiments.stats import (
    cuped,
    mean_difference,
    msprt_p_values,
    power_z,
    ratio_difference,
)


@dataclass(frozen=True)
class Simulation:
    days: int = 14
    users_per_day: int = 500
    click_through: float = 0.1
    impressions: float = 4.0  # mean extra impressions per user (1 + Poisson)
    concentration: float = 20.0  # Beta(a, b) with a + b = this: how alike users are
    alpha: float = 0.05


def _arm(sim: Simulation, rate: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    shows = 1 + rng.poisson(sim.impressions, n)
    chance = rng.beta(rate * sim.concentration, (1 - rate) * sim.concentration, n)
    return rng.binomial(shows, chance).astype(np.float64), shows.astype(np.float64)


def _looks(sim: Simulation, lift: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Per day: the fixed-horizon p-value, the difference and its variance."""
    n = sim.days * sim.users_per_day
    clicks_a, shows_a = _arm(sim, sim.click_through, n, rng)
    clicks_b, shows_b = _arm(sim, sim.click_through * (1 + lift), n, rng)
    p, diff, var = [], [], []
    for day in range(1, sim.days + 1):
        k = day * sim.users_per_day
        result = ratio_difference(clicks_a[:k], shows_a[:k], clicks_b[:k], shows_b[:k], sim.alpha)
        p.append(result.p_value)
        diff.append(result.difference)
        var.append(result.standard_error**2)
    return np.array(p), np.array(diff), np.array(var)


def mixing_variance(sim: Simulation) -> list[float]:
    """The mSPRT's tau^2 values, as the report takes them from the control's click-through."""
    return mixing_variances(sim.click_through)


@dataclass(frozen=True)
class FalsePositives:
    tests: int
    fixed_peeked: float  # share of A/A tests stopped by the daily-peeked fixed-horizon test
    fixed_once: float  # ... by the fixed-horizon test read once, on the last day
    sequential: float  # ... by the mSPRT read daily


def false_positive_rates(sim: Simulation, tests: int = 200, seed: int = 0) -> FalsePositives:
    rng = np.random.default_rng(seed)
    tau2 = mixing_variance(sim)
    peeked = once = sequential = 0
    for _ in range(tests):
        p, diff, var = _looks(sim, 0.0, rng)
        peeked += bool((p < sim.alpha).any())
        once += bool(p[-1] < sim.alpha)
        sequential += bool((msprt_p_values(diff, var, tau2) <= sim.alpha).any())
    return FalsePositives(tests, peeked / tests, once / tests, sequential / tests)


@dataclass(frozen=True)
class Detection:
    tests: int
    lift: float
    predicted_power: float  # from the test's own standard error
    detected: float  # share of tests whose last-day p-value is below alpha, in the lift's way
    sequential_detected: float  # share stopped by the mSPRT on some day, in the lift's way


def detection_rate(sim: Simulation, lift: float, tests: int = 200, seed: int = 1) -> Detection:
    rng = np.random.default_rng(seed)
    tau2 = mixing_variance(sim)
    found = sequential = 0
    errors = []
    for _ in range(tests):
        p, diff, var = _looks(sim, lift, rng)
        found += bool(p[-1] < sim.alpha and diff[-1] > 0)
        sequential += bool(((msprt_p_values(diff, var, tau2) <= sim.alpha) & (diff > 0)).any())
        errors.append(math.sqrt(var[-1]))
    effect = sim.click_through * lift
    # in the lift's direction: the other tail's share of power_z is negligible here
    predicted = power_z(effect, float(np.median(errors)), sim.alpha)
    return Detection(tests, lift, predicted, found / tests, sequential / tests)


@dataclass(frozen=True)
class Narrowing:
    correlation: float  # of the metric with its pre-period covariate
    width_ratio: float  # CUPED interval width / plain interval width
    predicted: float  # sqrt(1 - correlation^2)


def cuped_narrowing(users: int = 20_000, correlation: float = 0.6, seed: int = 2) -> Narrowing:
    """Revenue per user in two arms (no difference), and a pre-period revenue correlated with
    it: how much narrower CUPED's interval is, against theory."""
    rng = np.random.default_rng(seed)
    arms, covariates = [], []
    for _ in range(2):
        pre = rng.normal(size=users)
        noise = rng.normal(size=users)
        arms.append(10 + 3 * (correlation * pre + math.sqrt(1 - correlation**2) * noise))
        covariates.append(pre)
    plain = mean_difference(arms[0], arms[1])
    adjusted, _ = cuped(arms, covariates)
    narrowed = mean_difference(adjusted[0], adjusted[1])
    observed = float(np.corrcoef(np.concatenate(arms), np.concatenate(covariates))[0, 1])
    return Narrowing(
        correlation=observed,
        width_ratio=(narrowed.high - narrowed.low) / (plain.high - plain.low),
        predicted=math.sqrt(1 - observed**2),
    )


@dataclass(frozen=True)
class PlannedPower:
    users_per_arm: int  # what `report.plan` asks for, from a simulated pilot
    power: float  # the power asked
    found: float  # share of simulated A/B tests of that size that find the lift


def planned_power(
    sim: Simulation, lift: float, power: float = 0.8, pilot_users: int = 20_000,
    tests: int = 200, seed: int = 6,
) -> PlannedPower:  # fmt: skip
    """Plan an A/B test's size from a simulated pilot (`report.plan`), then run `tests`
    tests of that size with the lift planted: do they find it as often as planned?"""
    import polars as pl

    from nextbest.experiments.report import plan

    rng = np.random.default_rng(seed)
    clicks, shows = _arm(sim, sim.click_through, pilot_users, rng)
    pilot = pl.DataFrame(
        {
            "user_id": [str(k) for k in range(pilot_users)], "variant": "pilot",
            "impressions": shows, "clicks": clicks, "carts": clicks, "purchases": clicks,
            "revenue": clicks,
        }
    )  # fmt: skip
    [ctr] = [p for p in plan(pilot, lift, power, sim.alpha) if p.metric == "click-through"]
    found = 0
    for _ in range(tests):
        a = _arm(sim, sim.click_through, ctr.users_per_arm, rng)
        b = _arm(sim, sim.click_through * (1 + lift), ctr.users_per_arm, rng)
        result = ratio_difference(a[0], a[1], b[0], b[1], sim.alpha)
        found += result.p_value < sim.alpha and result.difference > 0
    return PlannedPower(ctr.users_per_arm, power, found / tests)
