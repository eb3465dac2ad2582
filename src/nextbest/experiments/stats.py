"""The statistics of an A/B test: differences with intervals that hold up to daily peeking.

Every function reads per-user arrays: the user is the unit of assignment, so the user is the
unit of variance (a user's many impressions are not independent draws).

- `mean_difference`: a per-user metric (revenue per shopper), B minus A, with Welch's
  standard error.
- `ratio_difference`: a ratio of sums (click-through = clicks / impressions), B minus A; each
  arm's ratio has the delta method's variance over its users (Deng, Lu and Litz, 2017).
- `cuped`: the metric less what a pre-period covariate predicts of it (Deng, Xu, Kohavi and
  Walker, 2013); the variance falls by the squared correlation.
- `msprt`: the always-valid p-value of a mixture sequential probability ratio test (Johari,
  Pekelis and Walsh, 2017): a normal mixture over the effect, so that looking at the p-value
  every day and stopping at the first p <= alpha keeps the false-positive rate at alpha. The
  fixed-horizon p-value peeked at daily does not.
- `sample_ratio_mismatch`: a chi-square test of the users per variant against the design's
  shares; a broken split is flagged at p < 0.001.
- `power_two_proportions`: the power of the fixed-horizon test to detect a lift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

SRM_ALPHA = 0.001  # a split this unlikely under the design is broken, not unlucky


@dataclass(frozen=True)
class Difference:
    a: float  # the control's estimate
    b: float  # the treatment's
    difference: float  # b - a
    standard_error: float
    low: float  # the (1 - alpha) interval of the difference
    high: float
    p_value: float  # two-sided, fixed horizon

    @property
    def lift(self) -> float:
        """b / a - 1 (nan when a is 0)."""
        return self.b / self.a - 1.0 if self.a else math.nan


def _difference(a: float, b: float, var_a: float, var_b: float, alpha: float) -> Difference:
    se = math.sqrt(max(var_a + var_b, 0.0))
    diff = b - a
    z = stats.norm.ppf(1 - alpha / 2)
    p = 2 * stats.norm.sf(abs(diff) / se) if se > 0 else (0.0 if diff else 1.0)
    return Difference(a, b, diff, se, diff - z * se, diff + z * se, float(p))


def mean_difference(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> Difference:
    """Per-user values of two arms: the difference of their means (Welch)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    _enough(a, "a")
    _enough(b, "b")
    return _difference(
        float(a.mean()), float(b.mean()), a.var(ddof=1) / len(a), b.var(ddof=1) / len(b), alpha
    )


def ratio_variance(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """(sum numerator / sum denominator, its delta-method variance) over users."""
    x, y = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    _enough(x, "numerator")
    n, mean_y = len(x), float(y.mean())
    if mean_y <= 0:
        raise ValueError("a ratio needs a positive denominator on average (impressions)")
    ratio = float(x.sum() / y.sum())
    covariance = np.cov(x, y, ddof=1)
    var = (covariance[0, 0] - 2 * ratio * covariance[0, 1] + ratio**2 * covariance[1, 1]) / (
        n * mean_y**2
    )
    return ratio, float(var)


def ratio_difference(
    numerator_a: np.ndarray,
    denominator_a: np.ndarray,
    numerator_b: np.ndarray,
    denominator_b: np.ndarray,
    alpha: float = 0.05,
) -> Difference:
    """A ratio metric's difference, B minus A, each arm's variance by the delta method."""
    ratio_a, var_a = ratio_variance(numerator_a, denominator_a)
    ratio_b, var_b = ratio_variance(numerator_b, denominator_b)
    return _difference(ratio_a, ratio_b, var_a, var_b, alpha)


def cuped(
    values: Sequence[np.ndarray], covariates: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], float]:
    """Each arm's values less theta x (its covariate - the pooled covariate mean), theta from
    all arms pooled (so the adjustment is the same in every arm and the difference stays
    unbiased); returns the adjusted arms and theta."""
    y = np.concatenate([np.asarray(v, np.float64) for v in values])
    x = np.concatenate([np.asarray(c, np.float64) for c in covariates])
    if len(x) != len(y):
        raise ValueError("cuped: every user needs a value and a covariate")
    var_x = x.var(ddof=1)
    theta = float(np.cov(y, x, ddof=1)[0, 1] / var_x) if var_x > 0 else 0.0
    mean_x = x.mean()
    adjusted = [
        np.asarray(v, np.float64) - theta * (np.asarray(c, np.float64) - mean_x)
        for v, c in zip(values, covariates, strict=True)
    ]
    return adjusted, theta


def msprt_p_values(
    differences: np.ndarray, variances: np.ndarray, tau2: float | Sequence[float]
) -> np.ndarray:
    """The always-valid p-values of a sequence of looks at a difference (its estimate and
    variance at each look, in order): the normal-mixture SPRT with mixing variance `tau2`
    (the squared size of the effects worth finding), running minimum of 1 / likelihood
    ratio. With several `tau2`, the likelihood ratio is their average: an average of test
    martingales is one, so the test stays valid, and it has power for effects of every one
    of those sizes (one small tau^2 alone barely sees an effect far larger than it)."""
    d, v = np.asarray(differences, np.float64), np.asarray(variances, np.float64)
    scales = [float(t) for t in ([tau2] if isinstance(tau2, int | float) else tau2)]
    if not scales or any(t <= 0 for t in scales):
        raise ValueError(f"tau2 must be > 0, not {tau2}")
    log_ratios = np.stack(
        [0.5 * np.log(v / (v + t)) + t * d**2 / (2 * v * (v + t)) for t in scales]
    )
    log_ratio = np.logaddexp.reduce(log_ratios, axis=0) - np.log(len(scales))  # log of mean
    p = np.minimum(1.0, np.exp(-log_ratio))
    return np.minimum.accumulate(p)


@dataclass(frozen=True)
class SampleRatio:
    counts: tuple[int, ...]
    expected_shares: tuple[float, ...]
    p_value: float
    mismatch: bool  # p < SRM_ALPHA: the split is broken


def sample_ratio_mismatch(counts: Sequence[int], shares: Sequence[float]) -> SampleRatio:
    """Users per variant against the design's shares (chi-square goodness of fit)."""
    observed = np.asarray(counts, np.float64)
    expected_shares = np.asarray(shares, np.float64)
    if len(observed) != len(expected_shares) or len(observed) < 2:
        raise ValueError("sample ratio: one count per variant's share, two variants or more")
    if not math.isclose(float(expected_shares.sum()), 1.0, abs_tol=1e-9):
        raise ValueError(f"sample ratio: the shares sum to {expected_shares.sum()}, not 1")
    p = float(stats.chisquare(observed, observed.sum() * expected_shares).pvalue)
    return SampleRatio(
        tuple(int(c) for c in counts), tuple(float(s) for s in shares), p, p < SRM_ALPHA
    )


def power_z(effect: float, standard_error: float, alpha: float = 0.05) -> float:
    """The two-sided z-test's power to find `effect` (either way) with this standard error."""
    z = stats.norm.ppf(1 - alpha / 2)
    shift = abs(effect) / standard_error
    return float(stats.norm.sf(z - shift) + stats.norm.cdf(-z - shift))


def power_two_proportions(n_per_arm: int, base: float, lift: float, alpha: float = 0.05) -> float:
    """The fixed-horizon two-sided z-test's power to find rate base x (1 + lift) against
    base with `n_per_arm` independent trials in each arm."""
    treated = base * (1 + lift)
    se = math.sqrt(base * (1 - base) / n_per_arm + treated * (1 - treated) / n_per_arm)
    return power_z(treated - base, se, alpha)


def _enough(values: np.ndarray, name: str) -> None:
    if len(values) < 2:
        raise ValueError(f"{name}: a variance needs at least 2 users, not {len(values)}")
