"""Session-parallel mini-batches (Hidasi et al., ICLR 2016, section 3.1.1).

Each of `batch_size` slots walks one session, one event per mini-batch: the input is the
slot's current event, the target the session's next one. When a session has no next event
left, the next session in order (sessions are ordered by their first event's time, never
shuffled: the authors' `time_sort`, no `train_random_order`) takes over the slot, whose hidden
state is then zeroed. When no session is left to take a slot, the slot is removed and the
mini-batch shrinks; nothing is padded and the last sessions are trained on like the others.
Sessions with a single event have no target and are skipped.

The walk does not depend on the model, so it is planned once (`plan`) and replayed every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from nextbest.data.sessions import Sessions


@dataclass(frozen=True)
class MiniBatch:
    inputs: torch.Tensor  # [B] int64 item ids fed now
    targets: torch.Tensor  # [B] int64 the next item of each slot's session
    keep: torch.Tensor | None  # [B] rows of the previous state still running, or None (all)
    reset: torch.Tensor | None  # [r] rows (after `keep`) whose session starts now, or None


@dataclass(frozen=True)
class Plan:
    """Every mini-batch of one epoch, in order."""

    positions: np.ndarray  # [n_inputs] event index of each input, mini-batch after mini-batch
    offsets: np.ndarray  # [n_batches + 1] mini-batch b is positions[offsets[b]:offsets[b + 1]]
    keeps: list[np.ndarray | None]  # per mini-batch, see MiniBatch.keep
    resets: list[np.ndarray | None]  # per mini-batch, see MiniBatch.reset

    @property
    def n_batches(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.positions)

    def batches(self, items: np.ndarray) -> Iterator[MiniBatch]:
        """The mini-batches with item ids from `items` (the sessions' `items` array)."""
        inputs = torch.from_numpy(np.ascontiguousarray(items[self.positions]))
        targets = torch.from_numpy(np.ascontiguousarray(items[self.positions + 1]))
        keeps = [None if k is None else torch.from_numpy(k) for k in self.keeps]
        resets = [None if r is None else torch.from_numpy(r) for r in self.resets]
        bounds = self.offsets.tolist()
        for b in range(self.n_batches):
            first, last = bounds[b], bounds[b + 1]
            yield MiniBatch(inputs[first:last], targets[first:last], keeps[b], resets[b])


def plan(sessions: Sessions, batch_size: int) -> Plan:
    """Lay out the session-parallel walk over `sessions` in their stored (time) order."""
    starts = sessions.offsets[:-1]
    ends = sessions.offsets[1:]
    queue = np.flatnonzero(ends - starts >= 2)  # sessions with at least one target
    # a slot feeds a session's events that have a next one: [start, end - 1)
    return Plan(*walk_slots(starts[queue], ends[queue] - 1, batch_size))


def walk_slots(
    starts: np.ndarray, ends: np.ndarray, batch_size: int
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None], list[np.ndarray | None]]:
    """`batch_size` slots walk the ranges [starts[k], ends[k]) in order of k, one position per
    mini-batch; a slot whose range is done takes the next range (a reset), and is removed
    when none is left (the batch shrinks). Returns (positions, offsets, keeps, resets) as
    `Plan` holds them. Shared by the session-parallel and the user-parallel walks."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    width = min(batch_size, len(starts))
    position = starts[:width].copy()  # [B] current position of each slot
    end = ends[:width].copy()  # [B] one past each slot's range
    waiting = width  # next range to hand out
    chunks: list[np.ndarray] = []
    keeps: list[np.ndarray | None] = []
    resets: list[np.ndarray | None] = []
    keep: np.ndarray | None = None
    reset: np.ndarray | None = None
    while len(position):
        chunks.append(position.copy())
        keeps.append(keep)
        resets.append(reset)
        position += 1
        done = np.flatnonzero(position >= end)
        keep, reset = None, None
        if not len(done):
            continue
        refill = done[: max(0, min(len(done), len(starts) - waiting))]
        if len(refill):
            position[refill] = starts[waiting : waiting + len(refill)]
            end[refill] = ends[waiting : waiting + len(refill)]
            waiting += len(refill)
        gone = done[len(refill) :]
        if len(gone):
            kept = np.setdiff1d(np.arange(len(position)), gone)
            position, end = position[kept], end[kept]
            keep = kept
            refill = np.searchsorted(kept, refill)  # slot numbers after the shrink
        reset = refill if len(refill) else None
    offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(c) for c in chunks])
    positions = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    return positions.astype(np.int64), offsets, keeps, resets
