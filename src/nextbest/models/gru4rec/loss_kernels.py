"""GRU4Rec's sampled losses, loss and gradient in one compiled pass per row of the scores.

BPR-max (with ELU or no final activation) and cross-entropy (with its logQ offsets). Their
PyTorch forms (`losses._BPRMax`, autograd through `losses.cross_entropy`) walk the whole
[B, C] score matrix a dozen times; at diginetica's 128 x 2,176 that matrix (1.1 MB) does not
fit in a core's cache, so every walk goes to memory. Here each row (C floats, a few KB) is
loaded once and stays in L1 while its activation, softmax, sigmoids, sums and gradient are
computed; the gradient is written once.

The exponential is computed inline (`_exp_into`): 2^n times a degree-6 Taylor polynomial of
e^r on |r| <= ln(2)/2 (relative error under 5e-7, a few float32 ulps), so that LLVM
vectorises the loop. numba's `np.exp` is a scalar libm call per element (pip's llvmlite has
no vector math library), several times slower.

Two exponentials per element instead of three: with w_j = exp(r_j - m) from the softmax,
exp(r_j - r_i) = w_j * exp(m - r_i), so sigmoid(r_i - r_j) needs no exponential of its own.
(Where w_j underflows the sigmoid is inexact, but every use of it is weighted by s_j = 0.)

The formulas are those of `losses._BPRMax` (see there) and of softmax cross-entropy; tests
hold both to autograd on the plain definitions.
"""

from __future__ import annotations

import numba
import numpy as np

EPSILON = 1e-24  # the authors' guard inside the logarithms (losses.py's too)

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # ln 2 = _LN2_HI + _LN2_LO, the high part exact in few bits
_LN2_LO = np.float32(-2.12194440e-4)
_FLOOR = np.float32(-3.0e38)


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _exp_into(x: np.ndarray, out: np.ndarray, scale_bits: np.ndarray, n: int) -> None:
    """out[:n] = exp(x[:n]) (float32; inputs clamped to [-87, 88], where float32 is normal).

    `scale_bits` [>= n] int32 scratch whose float32 view receives 2^k (built from its bits).
    """
    scale = scale_bits.view(np.float32)
    for j in range(n):
        v = min(max(x[j], np.float32(-87.0)), np.float32(88.0))
        k = np.floor(v * _LOG2E + np.float32(0.5))
        r = v - k * _LN2_HI - k * _LN2_LO  # |r| <= ln(2) / 2
        p = np.float32(1.0 / 720.0)
        p = p * r + np.float32(1.0 / 120.0)
        p = p * r + np.float32(1.0 / 24.0)
        p = p * r + np.float32(1.0 / 6.0)
        p = p * r + np.float32(0.5)
        p = p * r + np.float32(1.0)
        out[j] = p * r + np.float32(1.0)
        scale_bits[j] = (np.int32(k) + np.int32(127)) << np.int32(23)
    for j in range(n):
        out[j] *= scale[j]


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def bpr_max_rows(logits: np.ndarray, grad: np.ndarray, bpreg: float, elu_alpha: float) -> float:
    """Sum over rows of BPR-max of `logits` [B, C] (column i: row i's target); writes
    d loss / d logits into `grad` [B, C]. elu_alpha > 0: ELU(alpha) first; 0: none."""
    rows, width = logits.shape
    r = np.empty(width, dtype=np.float32)  # the activated row
    slope = np.empty(width, dtype=np.float32)  # d r / d logit
    w = np.empty(width, dtype=np.float32)
    bits = np.empty(width, dtype=np.int32)
    alpha = np.float32(elu_alpha)
    reg = np.float32(bpreg)
    total = 0.0
    for i in range(rows):
        x = logits[i]
        if elu_alpha > 0.0:
            for j in range(width):
                w[j] = min(x[j], np.float32(0.0))
            _exp_into(w, slope, bits, width)  # exp(min(x, 0))
            for j in range(width):
                below = alpha * slope[j]  # alpha * e^x: ELU's slope where x <= 0
                positive = x[j] > np.float32(0.0)
                r[j] = x[j] if positive else below - alpha
                slope[j] = np.float32(1.0) if positive else below
        else:
            for j in range(width):
                r[j] = x[j]
        target = r[i]
        r[i] = _FLOOR  # the target is not its own negative (finite: fastmath assumes no inf)
        top = _FLOOR
        for j in range(width):
            top = max(top, r[j])
        for j in range(width):
            w[j] = r[j] - top
        _exp_into(w, w, bits, width)
        w[i] = 0.0
        r[i] = target
        total_w = np.float32(0.0)
        for j in range(width):
            total_w += w[j]
        inv_w = np.float32(1.0) / total_w
        # exp(r_j - r_i) = w_j * exp(top - r_i), the factor capped to stay finite
        lift = np.float32(np.exp(min(float(top - target), 80.0)))
        above = np.float32(0.0)  # A = sum_j s_j sig_j
        above_sq = np.float32(0.0)  # sum_j s_j sig_j ** 2
        penalty = np.float32(0.0)  # P = sum_j s_j r_j ** 2
        g = grad[i]
        for j in range(width):
            s = w[j] * inv_w
            sig = np.float32(1.0) / (np.float32(1.0) + w[j] * lift)
            w[j] = s
            g[j] = sig  # kept here until the sums are known
            above += s * sig
            above_sq += s * sig * sig
            penalty += s * r[j] * r[j]
        coef = np.float32(-1.0) / (above + np.float32(EPSILON))
        for j in range(width):
            sig = g[j]
            g[j] = w[j] * (
                coef * (sig * sig - above) + reg * (r[j] * r[j] + np.float32(2.0) * r[j] - penalty)
            )
        g[i] = coef * (above - above_sq)
        if elu_alpha > 0.0:
            for j in range(width):
                g[j] *= slope[j]
        total += -np.log(float(above) + EPSILON) + bpreg * float(penalty)
    return total


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def cross_entropy_rows(scores: np.ndarray, offsets: np.ndarray, grad: np.ndarray) -> float:
    """Sum over rows of -log(softmax(scores_i - offsets)_i + eps) for scores [B, C] (column
    i: row i's target) and logQ offsets [C] (zeros: none); writes d loss / d scores into
    `grad` [B, C]. With p the softmax, the gradient is p_i / (p_i + eps) * (p_j - [j = i])."""
    rows, width = scores.shape
    z = np.empty(width, dtype=np.float32)
    bits = np.empty(width, dtype=np.int32)
    total = 0.0
    for i in range(rows):
        x = scores[i]
        top = _FLOOR
        for j in range(width):
            z[j] = x[j] - offsets[j]
            top = max(top, z[j])
        for j in range(width):
            z[j] -= top
        g = grad[i]
        _exp_into(z, g, bits, width)
        norm = np.float32(0.0)
        for j in range(width):
            norm += g[j]
        inv = np.float32(1.0) / norm
        for j in range(width):
            g[j] *= inv
        p_target = float(g[i])
        scale = np.float32(p_target / (p_target + EPSILON))
        g[i] -= np.float32(1.0)
        for j in range(width):
            g[j] *= scale
        total -= np.log(p_target + EPSILON)
    return total
