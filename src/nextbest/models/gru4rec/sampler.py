"""Extra negative items, shared by a mini-batch, drawn ahead in a large store.

Item i is drawn with probability support_i ** alpha / sum_j support_j ** alpha (alpha = 1:
by popularity, 0: uniformly), with replacement. Drawing for every mini-batch would cost a call
per step, so a store of many mini-batches' worth is drawn at once and refilled when used up,
as the authors describe (CIKM 2018; their README's sample store of 10M item ids).

Draws use Walker's alias method: one uniform picks a column, a second chooses between the
column's own item and its alias, so a draw costs O(1) instead of a binary search over the
cumulative distribution (which made a 10M refill take a second).
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_STORE_SIZE = 10_000_000  # item ids held at once, as in the authors' implementation


def sampling_probabilities(support: np.ndarray, alpha: float) -> np.ndarray:
    """[n_items] float64 probabilities proportional to support ** alpha."""
    weights = np.asarray(support, dtype=np.float64) ** alpha
    total = weights.sum()
    if total <= 0.0:
        raise ValueError("no item has training support to sample negatives from")
    probabilities: np.ndarray = weights / total
    return probabilities


class NegativeSampler:
    """Hands out [n_sample] item ids per call from a store refilled in bulk."""

    def __init__(
        self,
        support: np.ndarray,
        n_sample: int,
        alpha: float,
        generator: torch.Generator,
        store_size: int = DEFAULT_STORE_SIZE,
        max_batches: int | None = None,
    ) -> None:
        """`max_batches` caps the store at the number of calls training will make."""
        if n_sample < 1:
            raise ValueError(f"n_sample must be >= 1 to sample, not {n_sample}")
        self.n_sample = n_sample
        self.generator = generator
        probabilities = sampling_probabilities(support, alpha)
        self.items = torch.from_numpy(np.flatnonzero(probabilities > 0))  # [m] drawable ids
        accept, alias = alias_table(probabilities[self.items.numpy()])
        self.accept = torch.from_numpy(accept)  # [m] float64
        self.alias = torch.from_numpy(alias)  # [m] int64
        batches = max(1, store_size // n_sample)
        self.batches = batches if max_batches is None else max(1, min(batches, max_batches))
        self.store = torch.empty(0, n_sample, dtype=torch.int64)  # [batches, n_sample]
        self.next = 0
        self.refills = 0

    def __call__(self) -> torch.Tensor:
        """The next [n_sample] int64 item ids (a view into the store)."""
        if self.next >= len(self.store):
            self._refill()
        sample = self.store[self.next]
        self.next += 1
        return sample

    def _refill(self) -> None:
        count, m = self.batches * self.n_sample, len(self.items)
        column = torch.randint(m, (count,), generator=self.generator)  # [count]
        coin = torch.rand(count, generator=self.generator, dtype=torch.float64)  # [count]
        keep = coin < self.accept.index_select(0, column)  # [count] own item, or its alias
        other = self.alias.index_select(0, column)
        chosen = other.add_((column - other).mul_(keep))  # column where keep, else alias
        self.store = self.items.index_select(0, chosen).view(self.batches, self.n_sample)
        self.next = 0
        self.refills += 1


def alias_table(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table of positive `probabilities` [m] (summing to 1).

    Column k is drawn uniformly, then k is kept with probability accept[k], else alias[k] is
    taken; every column's accept mass plus what other columns alias to it is m * p_k.
    """
    m = len(probabilities)
    scaled = probabilities * m
    accept = np.ones(m, dtype=np.float64)
    alias = np.arange(m, dtype=np.int64)
    small = [k for k in range(m) if scaled[k] < 1.0]
    large = [k for k in range(m) if scaled[k] >= 1.0]
    while small and large:
        low, high = small.pop(), large.pop()
        accept[low], alias[low] = scaled[low], high
        scaled[high] -= 1.0 - scaled[low]
        (small if scaled[high] < 1.0 else large).append(high)
    return accept, alias  # leftovers (rounding) keep accept 1: their own item
