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

The row update is one compiled pass (`_update_rows`, numba): it sums the repeated rows'
gradients and updates each distinct row's accumulator, velocity and weights in place. Done with
PyTorch ops it took a dozen passes over the [rows, H] block (gather, scatter, several
elementwise steps), about a third of a training step; `step_rows_reference` keeps that form,
which the tests compare the kernel against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
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
        # without sorting (-1: not in this step; see `_distinct` and `_update_rows`).
        self.table_slot = {id(t): torch.full((t.shape[0],), -1, dtype=torch.int64) for t in tables}

    def accumulator(self, table: torch.Tensor) -> torch.Tensor:
        return self.table_state[id(table)][:, 0]  # [N, ...]

    def velocity(self, table: torch.Tensor) -> torch.Tensor:
        return self.table_state[id(table)][:, 1]  # [N, ...]; only with momentum

    @torch.no_grad()
    def step_dense(self) -> None:
        """Update every dense parameter from its `.grad`, then clear the gradients."""
        for p, acc, vel in zip(self.dense, self.dense_acc, self.dense_vel, strict=True):
            if p.grad is None:
                raise RuntimeError("a dense GRU4Rec parameter received no gradient")
            if p.dtype == p.grad.dtype == torch.float32 and p.is_contiguous():
                _update_dense(
                    p.detach().numpy().reshape(-1),
                    acc.numpy().reshape(-1),
                    vel.numpy().reshape(-1),
                    p.grad.contiguous().numpy().reshape(-1),
                    self.learning_rate,
                    self.momentum,
                    self.eps,
                )
            else:
                self._step_dense_reference(p, p.grad, acc, vel)
            p.grad = None

    def _step_dense_reference(
        self, p: torch.Tensor, grad: torch.Tensor, acc: torch.Tensor, vel: torch.Tensor
    ) -> None:
        acc.addcmul_(grad, grad)
        std = acc.add(self.eps).sqrt_()
        if self.momentum > 0.0:
            vel.mul_(self.momentum).addcdiv_(grad, std, value=-self.learning_rate)
            p.add_(vel)
        else:
            p.addcdiv_(grad, std, value=-self.learning_rate)

    @torch.no_grad()
    def step_rows(
        self, table: torch.Tensor, index: torch.Tensor, grad: torch.Tensor | Sequence[torch.Tensor]
    ) -> None:
        """Update rows `index` [n] (repeats allowed) of `table` by their gradients [n, ...],
        given whole or as consecutive parts (one per leaf: no copy to join them)."""
        parts = [grad] if isinstance(grad, torch.Tensor) else list(grad)
        n_rows = table.shape[0]
        fits = table.dtype == torch.float32 and table.is_contiguous()
        if not (fits and all(p.dtype == torch.float32 for p in parts)):
            whole = parts[0] if len(parts) == 1 else torch.cat(parts)
            self.step_rows_reference(table, index, whole)
            return
        state = self.table_state[id(table)]
        _update_rows(
            table.detach().numpy().reshape(n_rows, -1),
            state.numpy().reshape(n_rows, state.shape[1], -1),
            self.table_slot[id(table)].numpy(),
            index.numpy(),
            tuple(p.detach().contiguous().numpy().reshape(len(p), -1) for p in parts),
            self.learning_rate,
            self.momentum,
            self.eps,
        )

    @torch.no_grad()
    def step_rows_reference(
        self, table: torch.Tensor, index: torch.Tensor, grad: torch.Tensor
    ) -> None:
        """`step_rows` in PyTorch ops: the definition the compiled kernel is tested against."""
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
        slot.index_fill_(0, index, -1)  # the map is left clear for the next step
        keep = first == positions  # [n] True once per distinct item
        inverse = (torch.cumsum(keep, 0) - 1).index_select(0, first)  # [n]
        return index[keep], inverse


# error_model="numpy": no zero-division check in the loop, so LLVM vectorises it (3x here;
# the denominator is never 0, eps > 0). No fastmath: the arithmetic stays IEEE, as PyTorch's
# (fastmath's approximate reciprocal square root was 1.4x faster, but changed training runs).
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _update_rows(
    table: np.ndarray,
    state: np.ndarray,
    slot: np.ndarray,
    index: np.ndarray,
    grads: tuple[np.ndarray, ...],
    learning_rate: float,
    momentum: float,
    eps: float,
) -> None:
    """Adagrad(-momentum) on the rows `index` [n] of table [N, D], in place.

    state [N, slots, D] holds each row's accumulator (and velocity); slot [N] is -1 for
    every row and is left so. `grads` are the rows' gradients [n, D], split in consecutive
    parts. Repeated rows first have their gradients summed, in the order they come, so each
    distinct row updates once.
    """
    n, width = len(index), table.shape[1]
    rows = np.empty(n, dtype=np.int64)
    summed = np.empty((n, width), dtype=np.float32)
    distinct = 0
    j = 0
    for grad in grads:
        for i in range(grad.shape[0]):
            row = index[j]
            j += 1
            at = slot[row]
            if at < 0:
                slot[row] = distinct
                rows[distinct] = row
                for k in range(width):
                    summed[distinct, k] = grad[i, k]
                distinct += 1
            else:
                for k in range(width):
                    summed[at, k] += grad[i, k]
    lr = np.float32(learning_rate)
    mu = np.float32(momentum)
    tiny = np.float32(eps)
    with_momentum = momentum > 0.0
    for u in range(distinct):
        row = rows[u]
        slot[row] = -1
        velocity = state[row, 1] if with_momentum else state[row, 0]  # (unused without)
        _adagrad_into(table[row], state[row, 0], velocity, summed[u], lr, mu, tiny, with_momentum)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _update_dense(
    weights: np.ndarray,
    acc: np.ndarray,
    velocity: np.ndarray,
    grad: np.ndarray,
    learning_rate: float,
    momentum: float,
    eps: float,
) -> None:
    """Adagrad(-momentum) on a whole (flattened) dense parameter, in place: one pass."""
    lr, mu, tiny = np.float32(learning_rate), np.float32(momentum), np.float32(eps)
    _adagrad_into(weights, acc, velocity, grad, lr, mu, tiny, momentum > 0.0)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _adagrad_into(
    weights: np.ndarray,
    acc: np.ndarray,
    velocity: np.ndarray,
    grad: np.ndarray,
    lr: np.float32,
    mu: np.float32,
    tiny: np.float32,
    with_momentum: bool,
) -> None:
    """acc += g ** 2; v = mu * v - lr * g / sqrt(acc + tiny); w += v (v = the step without
    momentum), elementwise over 1-d arrays, in place."""
    if with_momentum:
        for k in range(len(weights)):
            a = acc[k] + grad[k] * grad[k]
            acc[k] = a
            v = mu * velocity[k] - lr * grad[k] / np.sqrt(a + tiny)
            velocity[k] = v
            weights[k] += v
    else:
        for k in range(len(weights)):
            a = acc[k] + grad[k] * grad[k]
            acc[k] = a
            weights[k] -= lr * grad[k] / np.sqrt(a + tiny)
