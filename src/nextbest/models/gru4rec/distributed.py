"""GRU4Rec trained by several processes at once (data parallel, `torchrun`).

Every process walks the same session-parallel plan and draws the same random numbers (the
same seed: the same negative samples and dropout masks), but computes only its own slots'
rows of each mini-batch: slot k of the first mini-batch belongs to process k % world, and a
slot keeps its owner as sessions come and go in it (a session that takes over a slot is
trained by that slot's process). A process's rows are scored against every column of the
mini-batch (all slots' targets and the shared samples), as in one process, so each row's
loss is exactly the one a single process computes.

After the backward pass, the gradients of the dense weights and of the gathered item rows
(laid out the same in every process: every slot's input row, every column) are summed across
processes in one all-reduce; every process then applies the same Adagrad update, dense and
indexed, so the replicas stay identical. The sum of the processes' gradients is the gradient
one process computes over the whole mini-batch: two processes train the model one process
trains, up to the order of float additions. The mini-batch is the configured `batch_size`
across all processes, and every process takes the same number of steps.

What it buys: the per-row work (the GRU step, the [B, C] scores, the loss and their backward
passes) is split; the gathering of item rows and the optimiser's updates are repeated in
every process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from nextbest.models.distributed import sum_across
from nextbest.models.gru4rec.batching import Plan
from nextbest.models.gru4rec.network import Hidden
from nextbest.models.gru4rec.training import EpochStats, Trainer, _grad, batch_loss, carry


@dataclass(frozen=True)
class OwnRows:
    """One mini-batch as one process sees it."""

    rows: torch.Tensor  # [b] this process's rows of the mini-batch (slots it owns)
    columns: torch.Tensor  # [B] the mini-batch's target columns, this process's rows first
    keep: torch.Tensor | None  # [b] rows of this process's previous state still running
    reset: torch.Tensor | None  # [r] this process's rows (after keep) whose session starts


def own_rows(plan: Plan, rank: int, world: int) -> list[OwnRows]:
    """Per mini-batch of `plan`, the rows process `rank` of `world` trains (see the module)."""
    if plan.n_batches == 0:
        return []
    owner = np.arange(int(plan.offsets[1])) % world  # [B] the owner of each slot
    local = _positions(owner, rank)
    out = []
    for b in range(plan.n_batches):
        keep_local = None
        if b > 0 and plan.keeps[b] is not None:
            kept = plan.keeps[b]
            assert kept is not None
            owner = owner[kept]
            mine_before = local[kept]  # positions in this process's previous rows
            keep_local = mine_before[owner == rank]
            local = _positions(owner, rank)
        mine = np.flatnonzero(owner == rank)
        others = np.flatnonzero(owner != rank)
        reset = plan.resets[b]
        reset_local = None
        if reset is not None:
            own_reset = reset[owner[reset] == rank]
            reset_local = local[own_reset] if len(own_reset) else None
        out.append(
            OwnRows(
                torch.from_numpy(mine),
                torch.from_numpy(np.concatenate([mine, others])),
                None if keep_local is None else torch.from_numpy(keep_local),
                None if reset_local is None else torch.from_numpy(reset_local),
            )
        )
    return out


def _positions(owner: np.ndarray, rank: int) -> np.ndarray:
    """For each slot, its position among `rank`'s slots (meaningless for the others')."""
    return np.cumsum(owner == rank) - 1


class DistributedTrainer(Trainer):
    """`Trainer` for one process of several; see the module."""

    def __init__(self, *args: object, rank: int, world: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.rank = rank
        self.world = world

    def epoch(self, plan: Plan, items: np.ndarray) -> EpochStats:
        started = time.perf_counter()
        self.net.train()
        shares = own_rows(plan, self.rank, self.world)
        hidden = self.net.initial_hidden(len(shares[0].rows) if shares else 0)
        total = torch.zeros(1, dtype=torch.float64)
        for batch, share in zip(plan.batches(items), shares, strict=True):
            hidden = carry(hidden, share.keep, share.reset)
            loss, hidden = self.own_step(batch.inputs, batch.targets, hidden, share)
            total += loss
        self.net.eval()
        (total,) = sum_across([total])  # every process's share of the loss
        events = plan.n_events
        return EpochStats(float(total) / max(events, 1), events, time.perf_counter() - started)

    def own_step(
        self, inputs: torch.Tensor, targets: torch.Tensor, hidden: Hidden, share: OwnRows
    ) -> tuple[float, Hidden]:
        """One mini-batch (inputs, targets [B]): this process's rows' loss, gradients summed
        across the processes, the same update everywhere."""
        n_targets = len(targets)
        cols = targets if self.sampler is None else torch.cat([targets, self.sampler()])  # [C]
        order = torch.cat([share.columns, torch.arange(n_targets, len(cols))])  # [C]
        scores, hidden, leaves = self.forward(inputs, cols, hidden, True, (share.rows, order))
        loss = self._loss(scores, cols, n_targets, order)
        batch_loss(loss, self.config).backward()  # type: ignore[no-untyped-call]
        dense = [p for p in self.optimizer.dense if p.grad is not None]
        parts = [[_grad(p) for p in leaf_parts] for _, _, leaf_parts in leaves]
        sums = iter(sum_across([_grad(p) for p in dense] + [g for ps in parts for g in ps]))
        for p in dense:  # the summed gradients are read where the all-reduce left them
            p.grad = next(sums)
        self.optimizer.step_dense()
        for (table, index, _), grads in zip(leaves, parts, strict=True):
            self.optimizer.step_rows(table, index, [next(sums) for _ in grads])
        return loss.item(), [h.detach() for h in hidden]
