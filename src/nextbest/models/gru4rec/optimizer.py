"""Adagrad with momentum, with indexed (sparse) updates of item tables.

For a parameter with gradient g (per element):

    acc += g ** 2
    v = momentum * v - learning_rate * g / sqrt(acc + eps)      (momentum on the scaled step)
    w += v

(`momentum = 0` is plain Adagrad.) An item table (the output item matrix and bias, an input
embedding) only receives gradient on the rows a mini-batch used; those rows, and only those,
update their accumulator, velocity and weights. A row used several times in one mini-batch
(an item that is a target twice, or sampled twice) gets the sum of its gradients as one
update. The other rows stay exactly as they are: no decay, no momentum drift.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-6


class IndexedAdagradM:
    def __init__(
        self,
        dense: list[nn.Parameter],
        tables: list[nn.Parameter],
        learning_rate: float,
        momentum: float,
        eps: float = EPS,
    ) -> None:
        self.dense: list[torch.Tensor] = list(dense)
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.eps = eps
        self.dense_acc = [torch.zeros_like(p) for p in dense]
        self.dense_vel = [torch.zeros_like(p) for p in dense]
        # Per table row, accumulator and velocity side by side ([N, 2, ...]; [N, 1, ...]
        # without momentum), so one gather and one scatter serve both.
        slots = 2 if momentum > 0.0 else 1
        self.table_state = {
            id(t): torch.zeros(t.shape[0], slots, *t.shape[1:], dtype=t.dtype) for t in tables
        }
        # Scratch map item -> a position in the current index, to find distinct rows
        # without sorting (see `_distinct`).
        self.table_slot = {id(t): torch.zeros(t.shape[0], dtype=torch.int64) for t in tables}

    def accumulator(self, table: torch.Tensor) -> torch.Tensor:
        return self.table_state[id(table)][:, 0]  # [N, ...]

    def velocity(self, table: torch.Tensor) -> torch.Tensor:
        return self.table_state[id(table)][:, 1]  # [N, ...]; only with momentum

    @torch.no_grad()
    def step_dense(self) -> None:
        """Update every dense parameter from its `.grad`, then clear the gradients."""
        grads: list[torch.Tensor] = []
        for p in self.dense:
            if p.grad is None:
                raise RuntimeError("a dense GRU4Rec parameter received no gradient")
            grads.append(p.grad)
        torch._foreach_addcmul_(self.dense_acc, grads, grads)
        std = torch._foreach_sqrt(torch._foreach_add(self.dense_acc, self.eps))
        if self.momentum > 0.0:
            torch._foreach_mul_(self.dense_vel, self.momentum)
            torch._foreach_addcdiv_(self.dense_vel, grads, std, value=-self.learning_rate)
            torch._foreach_add_(self.dense, self.dense_vel)
        else:
            torch._foreach_addcdiv_(self.dense, grads, std, value=-self.learning_rate)
        for p in self.dense:
            p.grad = None

    @torch.no_grad()
    def step_rows(self, table: torch.Tensor, index: torch.Tensor, grad: torch.Tensor) -> None:
        """Update rows `index` [n] (repeats allowed) of `table` by their gradients [n, ...]."""
        rows, inverse = self._distinct(table, index)  # [u], [n]
        g = grad.new_zeros((len(rows), *grad.shape[1:])).index_add_(0, inverse, grad)  # [u, .]
        state = self.table_state[id(table)]
        used = state.index_select(0, rows)  # [u, slots, ...]
        acc = used[:, 0]
        acc.addcmul_(g, g)
        delta = g.div_(acc.add(self.eps).sqrt_()).mul_(-self.learning_rate)  # [u, ...]
        if self.momentum > 0.0:
            vel = used[:, 1]
            delta.add_(vel, alpha=self.momentum)  # momentum * v - lr * scaled gradient
            vel.copy_(delta)
        # `delta` is contiguous: index_add_ is many times slower from a strided view.
        table.index_add_(0, rows, delta)
        state.index_copy_(0, rows, used)

    def _distinct(
        self, table: torch.Tensor, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The distinct values of `index` [n] and, per entry, its row among them ([u], [n]).

        Every entry writes its position into a per-item scratch slot; reading the slots back
        gives each entry one representative position (whichever write won), shared by all
        entries of the same item. Linear time, unlike `torch.unique`'s sort.
        """
        slot = self.table_slot[id(table)]
        positions = torch.arange(len(index))  # [n]
        slot.index_put_((index,), positions)
        first = slot.index_select(0, index)  # [n] representative position of each entry
        keep = first == positions  # [n] True once per distinct item
        inverse = (torch.cumsum(keep, 0) - 1).index_select(0, first)  # [n]
        return index[keep], inverse
