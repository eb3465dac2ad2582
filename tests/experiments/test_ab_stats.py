"""The A/B statistics: calibrated under daily peeking (simulated A/A and A/B tests), checked
against statsmodels and SciPy on the same numbers, and the sample-ratio check."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from nextbest.experiments.calibration import (
    Simulation,
    cuped_narrowing,
    detection_rate,
    false_positive_rates,
)
from nextbest.experiments.stats import (
    cuped,
    mean_difference,
    msprt_p_values,
    power_two_proportions,
    ratio_difference,
    ratio_variance,
    sample_ratio_mismatch,
)


def test_daily_peeking_keeps_the_sequential_test_at_alpha_and_inflates_the_fixed_one() -> None:
    rates = false_positive_rates(Simulation(), tests=200, seed=0)
    assert rates.sequential <= 0.08  # alpha 0.05 plus the simulation's error
    assert rates.fixed_peeked > 0.12  # peeking at the fixed-horizon test inflates it
    assert rates.fixed_once <= 0.08  # ... which is calibrated when read once


def test_a_planted_lift_is_found_with_the_power_the_test_predicts() -> None:
    found = detection_rate(Simulation(), lift=0.05, tests=200, seed=1)
    assert 0.3 < found.predicted_power < 0.9  # a check with something to miss
    assert abs(found.detected - found.predicted_power) <= 0.10
    assert found.sequential_detected > 0.1  # the always-valid test pays for peeking in power


def test_cuped_narrows_the_interval_as_the_correlation_predicts() -> None:
    narrowing = cuped_narrowing(users=20_000, correlation=0.6, seed=2)
    assert narrowing.width_ratio == pytest.approx(narrowing.predicted, abs=0.02)
    assert narrowing.width_ratio < 0.85


def test_the_mean_difference_is_statsmodels_welch_interval() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.exponential(10, 5_000), rng.exponential(10.5, 4_000)
    ours = mean_difference(a, b)
    theirs = CompareMeans(DescrStatsW(b), DescrStatsW(a))
    low, high = theirs.zconfint_diff(alpha=0.05, usevar="unequal")
    assert (ours.low, ours.high) == pytest.approx((low, high), rel=1e-9)
    _, p = theirs.ztest_ind(usevar="unequal")
    assert ours.p_value == pytest.approx(p, rel=1e-9)


def test_the_delta_method_variance_matches_a_user_bootstrap() -> None:
    rng = np.random.default_rng(4)
    shows = 1 + rng.poisson(4, 3_000).astype(float)
    clicks = rng.binomial(shows.astype(int), rng.beta(0.5, 4.5, 3_000)).astype(float)
    ratio, variance = ratio_variance(clicks, shows)
    assert ratio == pytest.approx(clicks.sum() / shows.sum())
    draws = rng.integers(0, 3_000, (2_000, 3_000))
    boot = clicks[draws].sum(axis=1) / shows[draws].sum(axis=1)
    assert np.sqrt(variance) == pytest.approx(boot.std(ddof=1), rel=0.08)
    # treating impressions as independent trials would understate it
    naive = np.sqrt(ratio * (1 - ratio) / shows.sum())
    assert naive < 0.9 * np.sqrt(variance)


def test_cuped_keeps_the_difference_unbiased() -> None:
    rng = np.random.default_rng(5)
    pre_a, pre_b = rng.normal(size=4_000), rng.normal(size=4_000)
    a = 5 + 2 * pre_a + rng.normal(size=4_000)
    b = 5.3 + 2 * pre_b + rng.normal(size=4_000)
    (adj_a, adj_b), theta = cuped([a, b], [pre_a, pre_b])
    assert theta == pytest.approx(2.0, abs=0.05)
    assert mean_difference(adj_a, adj_b).difference == pytest.approx(0.3, abs=0.05)


def test_a_48_52_split_of_a_50_50_design_is_flagged() -> None:
    broken = sample_ratio_mismatch([48_000, 52_000], [0.5, 0.5])
    assert broken.mismatch and broken.p_value < 1e-30
    fine = sample_ratio_mismatch([50_100, 49_900], [0.5, 0.5])
    assert not fine.mismatch and fine.p_value > 0.5
    with pytest.raises(ValueError, match="sum to"):
        sample_ratio_mismatch([10, 10], [0.5, 0.4])


def test_the_power_is_statsmodels_normal_power() -> None:
    ours = power_two_proportions(20_000, 0.10, 0.05)
    effect = proportion_effectsize(0.105, 0.10)
    theirs = NormalIndPower().power(effect, nobs1=20_000, alpha=0.05, ratio=1.0)
    assert ours == pytest.approx(theirs, abs=0.01)


def test_the_always_valid_p_value_only_falls_and_grows_with_evidence() -> None:
    variances = np.full(5, 0.01)
    weak = msprt_p_values(np.array([0.01, 0.02, 0.0, 0.01, 0.0]), variances, tau2=0.01)
    strong = msprt_p_values(np.array([0.3, 0.4, 0.5, 0.5, 0.5]), variances, tau2=0.01)
    assert np.all(np.diff(weak) <= 0) and weak[-1] > 0.5
    assert strong[-1] < 0.01
    with pytest.raises(ValueError, match="tau2"):
        msprt_p_values(variances, variances, tau2=0.0)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="at least 2 users"):
        mean_difference(np.array([1.0]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="positive denominator"):
        ratio_difference(np.ones(3), np.zeros(3), np.ones(3), np.ones(3))


def test_a_mixture_over_effect_sizes_sees_a_large_effect_a_small_scale_misses() -> None:
    """The demo's simulated A/B: conversion 0.0054 against 0.106 (standard error 0.0075).
    A mixing scale of 5% of the control barely moves; the averaged scales reject."""
    d, v = np.array([0.101]), np.array([0.0075**2])
    small = msprt_p_values(d, v, tau2=(0.05 * 0.0054) ** 2)[0]
    mixed = msprt_p_values(d, v, tau2=[(s * 0.0054) ** 2 for s in (0.05, 0.25, 1.0)])[0]
    assert small > 0.5 and mixed < 1e-6
    # and an average never claims more than its strongest part could: at most 3x its p
    strongest = min(msprt_p_values(d, v, tau2=(s * 0.0054) ** 2)[0] for s in (0.05, 0.25, 1.0))
    assert strongest <= mixed <= 3 * strongest
