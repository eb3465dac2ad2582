"""One HGRU4Rec training epoch: user-parallel mini-batches, GRU4Rec's losses and optimiser.

`HierarchicalTrainer` is GRU4Rec's `Trainer` (same sampled losses, negative sampler, logQ
correction, dropout masks and indexed Adagrad with momentum, all inherited) with a forward pass
that adds the user level. Gradients reach the user level within one mini-batch, as the session
GRU's do within one step (states come in detached, as GRU4Rec trains): at a returning user's
session start the user GRU step and the initialisation are part of the mini-batch's graph;
with `user_propagation="all"` / `user_to_output` the carried user state also enters every step.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from nextbest.models.gru4rec.network import Hidden
from nextbest.models.gru4rec.training import (
    EpochStats,
    Leaves,
    Trainer,
    _grad,
    _leaf,
    batch_loss,
)
from nextbest.models.hgru4rec.batching import UserBatch, UserPlan
from nextbest.models.hgru4rec.config import HGRU4RecConfig
from nextbest.models.hgru4rec.network import HGRU4RecNet


class HierarchicalTrainer(Trainer):
    def __init__(
        self, net: HGRU4RecNet, config: HGRU4RecConfig, support: np.ndarray, n_batches: int
    ) -> None:
        super().__init__(net, config.session_config(), support, n_batches)
        self.hnet = net
        self.hconfig = config

    def epoch_users(self, plan: UserPlan, items: np.ndarray) -> EpochStats:
        started = time.perf_counter()
        self.hnet.train()
        width = int(plan.offsets[1]) if plan.n_batches else 0
        hidden = self.hnet.initial_hidden(width)
        user = torch.zeros(width, self.hconfig.user_layer)  # [B, U]
        total, events = 0.0, 0
        for batch in plan.batches(items):
            hidden, user = _carry(hidden, user, batch)
            loss, hidden, user, scored = self.user_step(batch, hidden, user)
            total += loss
            events += scored
        self.hnet.eval()
        return EpochStats(total / max(events, 1), events, time.perf_counter() - started)

    def user_step(
        self, batch: UserBatch, hidden: Hidden, user: torch.Tensor
    ) -> tuple[float, Hidden, torch.Tensor, int]:
        """Train on one mini-batch; returns its loss, the new states and the rows scored."""
        scored = torch.nonzero(batch.targets >= 0).squeeze(1)  # [b] rows with a target
        if not len(scored):  # only session ends: advance the states, nothing to learn
            with torch.no_grad():
                hidden, user = self._open_sessions(batch, hidden, user, train=True)
                hidden, _, _ = self._forward(batch.inputs, None, hidden, user, train=True)
            return 0.0, hidden, user, 0
        hidden, user = self._open_sessions(batch, hidden, user, train=True)
        targets = batch.targets.index_select(0, scored)
        cols = targets if self.sampler is None else torch.cat([targets, self.sampler()])  # [C]
        hidden, scores, leaves = self._forward(batch.inputs, (scored, cols), hidden, user, True)
        assert scores is not None
        loss = self._loss(scores, cols)
        batch_loss(loss, self.config).backward()  # type: ignore[no-untyped-call]
        for p in self.optimizer.dense:  # user-level weights unused by this mini-batch
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.optimizer.step_dense()
        for table, index, parts in leaves:
            self.optimizer.step_rows(table, index, [_grad(p) for p in parts])
        return loss.item(), [h.detach() for h in hidden], user.detach(), len(scored)

    def _open_sessions(
        self, batch: UserBatch, hidden: Hidden, user: torch.Tensor, train: bool
    ) -> tuple[Hidden, torch.Tensor]:
        """Returning users' rows: the user GRU takes the finished session, then starts the next."""
        rows = batch.session_start
        if rows is None:
            return hidden, user
        net = self.hnet
        new_user = net.user_step(hidden[-1].index_select(0, rows), user.index_select(0, rows))
        p_user, p_init = self.hconfig.dropout_p_user, self.hconfig.dropout_p_init
        if train and p_user > 0.0:
            new_user = new_user * self._keep_mask((len(rows), new_user.shape[1]), p_user)
        start = net.session_init(new_user)  # per layer [s, H_l]
        if train and p_init > 0.0:
            start = [h * self._keep_mask((len(rows), h.shape[1]), p_init) for h in start]
        hidden = [h.index_copy(0, rows, s) for h, s in zip(hidden, start, strict=True)]
        return hidden, user.index_copy(0, rows, new_user)

    def _forward(
        self,
        inputs: torch.Tensor,
        scoring: tuple[torch.Tensor, torch.Tensor] | None,
        hidden: Hidden,
        user: torch.Tensor,
        train: bool,
    ) -> tuple[Hidden, torch.Tensor | None, list[Leaves]]:
        """One session step for all rows; scores [b, C] of rows `scoring[0]` on cols `[1]`."""
        net = self.hnet
        if scoring is None:
            rows = net.input_table.detach().index_select(0, inputs)  # [B, In]
            cols = inputs[:0]
            weights, bias = net.item_weights.detach()[:0], net.item_bias.detach()[:0]
        else:
            rows = _leaf(net.input_table, inputs)
            cols = scoring[1]
            weights = _leaf(net.item_weights, cols)  # [C, H]
            bias = _leaf(net.item_bias, cols)  # [C]
        embed_mask, hidden_masks = self._dropout_masks(len(inputs), rows.shape[1], train)
        x, (w, b) = self.with_attributes(inputs, rows, (cols, weights, bias), train)
        hidden = net.encode(x, hidden, embed_mask, hidden_masks, net.user_gates(user))
        if scoring is None:
            return hidden, None, []
        scored = scoring[0]
        out = net.output(hidden[-1], user).index_select(0, scored)  # [b, H_last]
        scores = net.logits(out, w, b)  # [b, C]
        leaves: list[Leaves] = [(net.item_bias, cols, (bias,))]
        if net.mode == "shared":
            leaves.append((net.item_weights, torch.cat([inputs, cols]), (rows, weights)))
        else:
            leaves += [(net.input_table, inputs, (rows,)), (net.item_weights, cols, (weights,))]
        return hidden, scores, leaves


def _carry(hidden: Hidden, user: torch.Tensor, batch: UserBatch) -> tuple[Hidden, torch.Tensor]:
    """The states entering a mini-batch: finished users dropped, new users zeroed."""
    if batch.keep is not None:
        hidden = [h.index_select(0, batch.keep) for h in hidden]
        user = user.index_select(0, batch.keep)
    if batch.reset is not None:
        for h in hidden:
            h.index_fill_(0, batch.reset, 0.0)
        user = user.index_fill(0, batch.reset, 0.0)
    return hidden, user
