"""One GRU4Rec training epoch: session-parallel mini-batches, sampled loss, indexed updates.

Per mini-batch: the score columns are the slots' targets plus `n_sample` shared extra
negatives; only those rows of the item tables are gathered (as leaf tensors, so autograd never
builds an [n_items, H] gradient), the loss is back-propagated through one GRU step (the state
coming in is detached: no BPTT, as the authors train), and the optimiser updates the dense
weights and just the gathered item rows.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nextbest.models.gru4rec import losses
from nextbest.models.gru4rec.batching import MiniBatch, Plan
from nextbest.models.gru4rec.config import GRU4RecConfig
from nextbest.models.gru4rec.network import GRU4RecNet, Hidden
from nextbest.models.gru4rec.optimizer import IndexedAdagradM
from nextbest.models.gru4rec.sampler import NegativeSampler

Leaves = tuple[nn.Parameter, torch.Tensor, tuple[torch.Tensor, ...]]  # table, rows, leaves


@dataclass
class EpochStats:
    loss: float  # mean loss per event
    events: int
    seconds: float


class Trainer:
    def __init__(
        self, net: GRU4RecNet, config: GRU4RecConfig, support: np.ndarray, n_batches: int
    ) -> None:
        """`support` [n_items]: training events per item; `n_batches`: all epochs' steps."""
        self.net = net
        self.config = config
        self.generator = torch.Generator().manual_seed(config.seed + 1)
        self.sampler: NegativeSampler | None = None
        if config.n_sample > 0:
            self.sampler = NegativeSampler(
                support,
                config.n_sample,
                config.sample_alpha,
                self.generator,
                max_batches=n_batches,
            )
        # logQ: [n_items] logq * log(q) for the in-batch columns and for the sampled ones.
        self.log_q: tuple[torch.Tensor, torch.Tensor] | None = None
        if config.loss == "cross-entropy" and config.logq > 0.0:
            in_batch, sampled = logq_offsets(support, config.logq, config.sample_alpha)
            self.log_q = (torch.from_numpy(in_batch).float(), torch.from_numpy(sampled).float())
        self.activation = config.activation
        self.tables = [net.item_weights, net.item_bias]
        if net.mode != "shared":
            self.tables.append(net.input_table)
        table_ids = {id(t) for t in self.tables}
        dense = [p for p in net.parameters() if id(p) not in table_ids]
        self.optimizer = IndexedAdagradM(dense, self.tables, config.learning_rate, config.momentum)

    def epoch(self, plan: Plan, items: np.ndarray) -> EpochStats:
        started = time.perf_counter()
        self.net.train()
        hidden = self.net.initial_hidden(int(plan.offsets[1]) if plan.n_batches else 0)
        total = 0.0
        for batch in plan.batches(items):
            hidden = _carry(hidden, batch)
            loss, hidden = self.step(batch.inputs, batch.targets, hidden)
            total += loss
        self.net.eval()
        events = plan.n_events
        return EpochStats(total / max(events, 1), events, time.perf_counter() - started)

    def step(
        self, inputs: torch.Tensor, targets: torch.Tensor, hidden: Hidden
    ) -> tuple[float, Hidden]:
        """Train on one mini-batch (inputs, targets [B]); returns its loss and the new state."""
        cols = targets if self.sampler is None else torch.cat([targets, self.sampler()])  # [C]
        scores, hidden, leaves = self.forward(inputs, cols, hidden, train=True)
        loss = self._loss(scores, cols)
        batch_loss(loss, self.config).backward()  # type: ignore[no-untyped-call]
        self.optimizer.step_dense()
        for table, index, parts in leaves:
            self.optimizer.step_rows(table, index, [_grad(p) for p in parts])
        return loss.item(), [h.detach() for h in hidden]

    def forward(
        self,
        inputs: torch.Tensor,
        cols: torch.Tensor,
        hidden: Hidden,
        train: bool,
        own: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, Hidden, list[Leaves]]:
        """Scores [B, C] of the columns `cols` after one step from `inputs` [B].

        Only the needed rows of the item tables are gathered, as leaf tensors, so autograd
        never builds an [n_items, H] gradient; the third result lists, per table, the rows used
        and the leaves holding them, for the indexed update. `train=False`: no dropout.
        `own` (one process of several, distributed.py): (rows, order): only the mini-batch's
        rows `rows` are stepped (`hidden` holds theirs), scored against the columns in the
        order `order`; the leaves and the random draws stay those of the whole mini-batch.
        """
        net = self.net
        rows = _leaf(net.input_table, inputs)  # [B, In]
        weights = _leaf(net.item_weights, cols)  # [C, H]
        bias = _leaf(net.item_bias, cols)  # [C]
        embed_mask, hidden_masks = self._dropout_masks(len(inputs), rows.shape[1], train)
        x, (w, b) = self.with_attributes(inputs, rows, (cols, weights, bias), train)
        if own is not None:
            mine = own[0]
            x = x.index_select(0, mine)
            if embed_mask is not None:
                embed_mask = embed_mask.index_select(0, mine)
            if hidden_masks is not None:
                hidden_masks = [m.index_select(0, mine) for m in hidden_masks]
        hidden = net.encode(x, hidden, embed_mask, hidden_masks)
        scores = net.logits(hidden[-1], w, b)  # [B, C]
        if own is not None:  # the scores' columns reordered, not the [C, H] weights: b << H
            scores = scores.index_select(1, own[1])
        leaves: list[Leaves] = [(net.item_bias, cols, (bias,))]
        if net.mode == "shared":  # one table: a row used as input and column updates once
            leaves.append((net.item_weights, torch.cat([inputs, cols]), (rows, weights)))
        else:
            leaves += [(net.input_table, inputs, (rows,)), (net.item_weights, cols, (weights,))]
        return scores, hidden, leaves

    def with_attributes(
        self,
        inputs: torch.Tensor,
        rows: torch.Tensor,
        columns: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        train: bool,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The input rows [B, In] and the columns' (weights [C, H], bias [C]) with their
        attribute rows added, while the attribute tables are apart (training); unchanged
        without attributes. `columns` is (cols, their weight rows, their bias).

        In training, `attribute_id_dropout` of the inputs and columns lose their id part:
        those are scored by their attributes alone, as a new item is.
        """
        cols, weights, bias = columns
        attributes = self.net.training_attributes
        if attributes is None:
            return rows, (weights, bias)
        p = self.config.attribute_id_dropout if train else 0.0
        keep = torch.rand(len(inputs) + len(cols), generator=self.generator).ge_(p).float()
        keep_in, keep_cols = keep[: len(inputs)], keep[len(inputs) :]
        x = rows * keep_in[:, None] + attributes.input_rows(inputs)
        w = weights * keep_cols[:, None] + attributes.output_rows(cols)
        return x, (w, bias * keep_cols + attributes.bias_rows(cols))

    def _loss(
        self,
        scores: torch.Tensor,
        cols: torch.Tensor,
        n_targets: int | None = None,
        order: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The summed loss of scores [b, C]; `cols` [C]: the mini-batch's `n_targets` targets
        (default b), then the samples; `order`: the scores' columns are cols[order]."""
        if self.config.loss == "cross-entropy":
            offsets = None
            if self.log_q is not None:
                batch = len(scores) if n_targets is None else n_targets
                in_batch, sampled = self.log_q
                offsets = torch.cat([in_batch[cols[:batch]], sampled[cols[batch:]]])  # [C]
                if order is not None:
                    offsets = offsets.index_select(0, order)
            return losses.fused_cross_entropy(scores, offsets)
        if self.config.loss == "bpr-max":
            return losses.fused_bpr_max(scores, self.config.bpreg, *self.activation)
        return losses.top1_max(losses.activate(scores, *self.activation))

    def _dropout_masks(
        self, size: int, n_in: int, train: bool
    ) -> tuple[torch.Tensor | None, list[torch.Tensor] | None]:
        """Inverted-dropout multipliers for the input rows and every layer's output."""
        if not train:
            return None, None
        p_embed, p_hidden = self.config.dropout_p_embed, self.config.dropout_p_hidden
        embed_mask = None
        if p_embed > 0.0:
            width = 1 if self.net.mode == "onehot" else n_in
            embed_mask = self._keep_mask((size, width), p_embed)
        hidden_masks = None
        if p_hidden > 0.0:
            hidden_masks = [self._keep_mask((size, h), p_hidden) for h in self.net.sizes]
        return embed_mask, hidden_masks

    def _keep_mask(self, shape: tuple[int, int], p: float) -> torch.Tensor:
        """1 / (1 - p) with probability 1 - p, else 0 (uniform draws: faster than bernoulli_)."""
        mask = torch.rand(shape, generator=self.generator).ge_(p)
        return mask.div_(1.0 - p)


def batch_loss(summed: torch.Tensor, config: GRU4RecConfig) -> torch.Tensor:
    """The loss a mini-batch back-propagates, from the sum over its rows.

    `mean` divides by the configured `batch_size`, as the authors' training loop does (also
    when fewer sessions are left at the end of an epoch); the reported loss stays the sum.
    """
    return summed / config.batch_size if config.batch_loss == "mean" else summed


def logq_offsets(support: np.ndarray, logq: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """logQ offsets [n_items] of an item as an in-batch column and as a sampled one.

    Each column is corrected by the distribution it was drawn from: the other rows' targets
    come from the data (probability ~ support), the shared samples from support ** alpha, as
    in the authors' code. Both are left unnormalised alike: a constant shared by every column
    of a row does not change its softmax.
    """
    log_support = np.log(np.maximum(np.asarray(support, dtype=np.float64), 1e-300))
    return logq * log_support, logq * alpha * log_support


def _carry(hidden: Hidden, batch: MiniBatch) -> Hidden:
    """The state entering a mini-batch: finished slots dropped, new sessions zeroed."""
    return carry(hidden, batch.keep, batch.reset)


def carry(hidden: Hidden, keep: torch.Tensor | None, reset: torch.Tensor | None) -> Hidden:
    """`hidden` with only the rows `keep` (all when None), then the rows `reset` zeroed."""
    if keep is not None:
        hidden = [h.index_select(0, keep) for h in hidden]
    if reset is not None:
        for h in hidden:
            h.index_fill_(0, reset, 0.0)
    return hidden


def _leaf(table: nn.Parameter, index: torch.Tensor) -> torch.Tensor:
    """The rows `index` of `table` as a new leaf that collects their gradient."""
    return table.detach().index_select(0, index).requires_grad_()


def _grad(leaf: torch.Tensor) -> torch.Tensor:
    if leaf.grad is None:
        raise RuntimeError("a gathered item table received no gradient")
    return leaf.grad


_epoch_logger = logging.getLogger("nextbest.models")


def run_epochs(name: str, n_epochs: int, one_epoch: Callable[[], EpochStats]) -> list[EpochStats]:
    """Run `one_epoch` n_epochs times, logging each; shared by GRU4Rec and HGRU4Rec."""
    history = []
    for epoch in range(n_epochs):
        stats = one_epoch()
        history.append(stats)
        _epoch_logger.info(
            "%s epoch %d/%d: loss %.4f, %.1fs, %.0f events/s",
            name,
            epoch + 1,
            n_epochs,
            stats.loss,
            stats.seconds,
            stats.events / max(stats.seconds, 1e-9),
        )
    return history


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """PyTorch's intra-op threads set to `n` for the block (a fit), then put back."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
