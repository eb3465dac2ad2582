"""Vectorised draws the generator makes millions of times: from blocks, from padded tables.

Every draw here takes one row per active session and returns one answer per row, so a step of
the simulation is a handful of array operations whatever the number of sessions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def block_cumsum(weights: FloatArray) -> FloatArray:
    """[n] running sum of `weights`, the table `sample_blocks` searches."""
    return np.cumsum(weights, dtype=np.float64)


def sample_blocks(
    cum: FloatArray,
    starts: IntArray,
    ends: IntArray,
    k: int,
    rng: np.random.Generator,
) -> IntArray:
    """[n, k] indices drawn with replacement from [starts[i], ends[i]) by the block's weights.

    Items (or queries) are stored grouped by leaf, so a leaf is a block of one global running
    sum; one `searchsorted` draws for every session at once. Blocks must not be empty.
    """
    low = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)  # [n]
    high = cum[ends - 1]  # [n]
    u = rng.random((len(starts), k))  # [n, k]
    targets = low[:, None] + u * (high - low)[:, None]  # [n, k]
    picked = np.searchsorted(cum, targets, side="right")  # [n, k]
    # Float rounding can land one past either end of the block.
    return np.clip(picked, starts[:, None], ends[:, None] - 1).astype(np.int64)


def sample_padded(
    table: IntArray, counts: IntArray, rows: IntArray, rng: np.random.Generator
) -> IntArray:
    """[n] a uniform pick from the first counts[r] entries of table[r] for each r in `rows`.

    Rows with a count of 0 give -1.
    """
    n = counts[rows]  # [n]
    column = np.floor(rng.random(len(rows)) * np.maximum(n, 1)).astype(np.int64)  # [n]
    out: IntArray = np.where(n > 0, table[rows, column], -1)
    return out


def sample_weighted(cum: FloatArray, n: int, rng: np.random.Generator) -> IntArray:
    """[n] indices drawn with replacement by the weights whose running sum is `cum`."""
    picked = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")  # [n]
    out: IntArray = np.minimum(picked, len(cum) - 1).astype(np.int64)
    return out


def best_of(candidates: IntArray, scores: FloatArray) -> IntArray:
    """[n] the candidate with the highest score in each row of [n, k] arrays."""
    best: IntArray = candidates[np.arange(len(candidates)), np.argmax(scores, axis=1)]
    return best
