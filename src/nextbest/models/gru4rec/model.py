"""GRU4Rec as a `SessionModel`: train offline, then one GRU step per event.

The state of a batch of sessions is one float32 tensor [B, sum(layers)]: each session's hidden
states of all layers side by side (for one layer simply [B, H]). A session's row is all it
needs to continue, so a server can store it after an event and restore it for the next one:

    state = model.initial_state(1)
    state = model.step(state, np.array([item]), np.array([t]))   # one GRU step
    top, scores = model.recommend(state, 20)                     # or model.score(state)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np
import torch

from nextbest.data.sessions import Sessions
from nextbest.events.schema import Item
from nextbest.models import distributed
from nextbest.models.base import NotFittedError, SessionModel
from nextbest.models.gru4rec.attributes import (
    AttributeIndex,
    clear_unseen,
    index_for,
    settle_unseen,
)
from nextbest.models.gru4rec.batching import plan
from nextbest.models.gru4rec.config import GRU4RecConfig
from nextbest.models.gru4rec.network import GRU4RecNet, GRULayer, with_hidden_biases
from nextbest.models.gru4rec.training import EpochStats, Trainer, run_epochs, torch_threads

if TYPE_CHECKING:
    from nextbest.models.scoring import Scorer

logger = logging.getLogger(__name__)

Items = np.ndarray | torch.Tensor


class GRU4Rec(SessionModel[torch.Tensor, GRU4RecConfig]):
    name = "gru4rec"
    config_class = GRU4RecConfig

    def __init__(self, config: GRU4RecConfig | None = None) -> None:
        super().__init__(config)
        self.net: GRU4RecNet | None = None
        self.history: list[EpochStats] = []  # per epoch of the last fit
        self.fit_seconds = 0.0
        self.catalog: Mapping[str, Item] | None = None  # read by fit when attributes are on
        self.attribute_values: np.ndarray | None = None  # [V] "kind=value" of the fitted net
        # Adagrad's accumulators where training stopped (dense params in order, then the item
        # tables'), saved with the version so that `update` goes on from there
        self.optimizer_state: list[np.ndarray] | None = None

    def use_catalog(self, items: Mapping[str, Item]) -> None:
        """The catalog whose attributes `fit` embeds (with `config.attributes` set)."""
        self.catalog = items

    # -- training ---------------------------------------------------------------------------
    def fit(self, train: Sessions) -> Self:
        with torch_threads(self.config.threads):
            return self._fit(train)

    def _fit(self, train: Sessions) -> Self:
        started = time.perf_counter()
        self.item_ids = train.item_ids
        index = index_for(self.config, self.catalog, train.item_ids)
        self.net = GRU4RecNet(train.n_items, self.config, index)
        support = train.item_support()
        unseen = clear_unseen(self.net, support)
        walk = plan(train, self.config.batch_size)
        if walk.n_batches == 0:
            raise ValueError("no training session has two or more events: nothing to learn")
        trainer = _trainer(self.net, self.config, support, walk.n_batches * self.config.n_epochs)
        self.history = run_epochs(
            "gru4rec", self.config.n_epochs, lambda: trainer.epoch(walk, train.items)
        )
        settle_unseen(self.net, unseen, index)
        self.optimizer_state = None if index is not None else accumulators(trainer)
        self.attribute_values = None if index is None else index.values
        self.fit_seconds = time.perf_counter() - started
        return self

    def update(self, new: Sessions, n_epochs: int = 1) -> Self:
        """Warm start: go on training this fitted model on `new` sessions only (the events since
        it was trained), `n_epochs` passes. `new` is coded over this model's items in their
        order, followed by any new items (`warm_start_vocabulary`). A new item's rows start
        from the mean of the rows of the items it follows in `new` (its neighbours), so it is
        recommendable before its own rows learn anything; old items keep what they learned.
        Not for a model that embeds attributes (retrain it in full)."""
        with torch_threads(self.config.threads):
            return self._update(new, n_epochs)

    def _update(self, new: Sessions, n_epochs: int) -> Self:
        old = self._fitted()
        if self.config.attributes:
            raise ValueError("a GRU4Rec with attributes cannot be updated: retrain it in full")
        if self.optimizer_state is None:
            raise ValueError(
                "this GRU4Rec version does not hold its optimizer's state (trained before "
                "updates existed): retrain it in full once"
            )
        started = time.perf_counter()
        n_old = self.n_items
        known = np.asarray(self.item_ids, dtype=object)
        if not np.array_equal(np.asarray(new.item_ids[:n_old], dtype=object), known):
            raise ValueError("the new sessions must be coded over the model's items first")
        net = GRU4RecNet(new.n_items, self.config)
        with torch.no_grad():
            state = old.state_dict()
            for name, value in net.state_dict().items():
                kept = state[name]
                if kept.shape == value.shape:
                    value.copy_(kept)
                else:  # an item table: the old rows, then the new ones from their neighbours
                    value[:n_old] = kept
            _seed_new_rows(net, new, n_old)
        walk = plan(new, self.config.batch_size)
        if walk.n_batches == 0:
            raise ValueError("no new session has two or more events: nothing to learn")
        trainer = Trainer(net, self.config, new.item_support(), walk.n_batches * n_epochs)
        resume(trainer, self.optimizer_state, n_old)  # Adagrad goes on where it stopped
        self.history = run_epochs(
            "gru4rec update", n_epochs, lambda: trainer.epoch(walk, new.items)
        )
        net.eval()
        self.net = net
        self.item_ids = new.item_ids
        self.optimizer_state = accumulators(trainer)
        self.fit_seconds = time.perf_counter() - started
        return self

    # -- answering --------------------------------------------------------------------------
    def initial_state(self, n: int) -> torch.Tensor:
        return torch.zeros(n, sum(self.config.layers))  # [B, sum(H)]

    def step(self, state: torch.Tensor, items: np.ndarray, times: np.ndarray) -> torch.Tensor:
        """One GRU step for every session of the batch (items [B]); times are not used."""
        net = self._fitted()
        if len(items) == 1 and not state.requires_grad:  # serving: one event at a time
            row = state.numpy()[0].astype(np.float32, copy=False)
            return torch.from_numpy(one_step(net, row, int(items[0]))[None])
        return self._batch_step(net, state, items)

    @torch.no_grad()
    def _batch_step(self, net: GRU4RecNet, state: torch.Tensor, items: np.ndarray) -> torch.Tensor:
        index = torch.as_tensor(items, dtype=torch.int64)
        rows = net.input_table.index_select(0, index)  # [B, In]
        hidden = net.encode(rows, list(torch.split(state, list(self.config.layers), dim=1)))
        return hidden[0] if len(hidden) == 1 else torch.cat(hidden, dim=1)

    def select(self, state: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        return state.index_select(0, torch.as_tensor(rows, dtype=torch.int64))

    @torch.no_grad()
    def score(self, state: torch.Tensor, items: Items | None = None) -> np.ndarray:
        """[B, n_items] float32 scores, or [B, len(items)] for just the columns `items`.

        These are the network's raw output scores. BPR-max's final activation (ELU, ...) is
        monotone, so leaving it out changes no ranking, and keeps apart scores it would
        saturate into ties.
        """
        net = self._fitted()
        last = state[:, state.shape[1] - self.config.layers[-1] :]  # [B, H_last]
        index = None if items is None else torch.as_tensor(items, dtype=torch.int64)
        return net.score(last, index).numpy()

    def recommend(
        self, state: torch.Tensor, n: int, exclude: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`n` item indices [B, n] and scores, best first; `exclude[b]` never returned."""
        scores = torch.from_numpy(self.score(state))  # [B, n_items]
        if exclude is not None:
            for row, banned in enumerate(exclude):
                scores[row, torch.as_tensor(banned, dtype=torch.int64)] = float("-inf")
        top = torch.topk(scores, min(n, scores.shape[1]), dim=1)
        return top.indices.numpy(), top.values.numpy()

    # -- persistence ------------------------------------------------------------------------
    def scorer(self, cache: Path | None = None) -> Scorer:
        """Exact top-n from an int8 prescreen over a shared [H, N] copy of the item matrix."""
        from nextbest.models.scoring import GRU4RecScorer

        return GRU4RecScorer(self, cache)

    def item_embeddings(self) -> np.ndarray | None:
        """The output item vectors [N, H]: items scored alike after the same state."""
        return self._fitted().item_weights.detach().numpy()

    def arrays(self) -> dict[str, np.ndarray]:
        net = self._fitted()
        arrays = {f"net.{k}": v.detach().numpy().copy() for k, v in net.state_dict().items()}
        if self.attribute_values is not None:
            arrays["attribute_values"] = self.attribute_values.astype(str)
        for k, accumulator in enumerate(self.optimizer_state or []):
            arrays[f"optimizer.{k}"] = accumulator
        return arrays

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        saved = sorted((k for k in arrays if k.startswith("optimizer.")), key=lambda k: int(k[10:]))
        self.optimizer_state = [arrays.pop(k) for k in saved] or None
        index = None
        if "attribute_values" in arrays:
            values = arrays.pop("attribute_values").astype(str)
            index = AttributeIndex(
                values, arrays["net.attributes.slots"], arrays["net.attributes.weights"]
            )
            self.attribute_values = values
        net = GRU4RecNet(self.n_items, self.config, index)
        state = {k.removeprefix("net."): torch.from_numpy(v) for k, v in arrays.items()}
        net.load_state_dict(with_hidden_biases(state))
        net.eval()
        self.net = net

    def _fitted(self) -> GRU4RecNet:
        if self.net is None:
            raise NotFittedError("GRU4Rec is not fitted: call fit() or load() first")
        return self.net


def _trainer(
    net: GRU4RecNet, config: GRU4RecConfig, support: np.ndarray, n_batches: int
) -> Trainer:
    """A trainer for this process: its share of every mini-batch when torchrun started it
    as one of several (see distributed.py), else the whole mini-batch."""
    rank, world = distributed.joined()
    if world == 1:
        return Trainer(net, config, support, n_batches)
    from nextbest.models.gru4rec.distributed import DistributedTrainer

    return DistributedTrainer(net, config, support, n_batches, rank=rank, world=world)


def one_step(net: GRU4RecNet, row: np.ndarray, item: int) -> np.ndarray:
    """`GRU4RecNet.encode` for one session and one item, in numpy: [sum(H)] float32.

    The same arithmetic as the batch step, float32 throughout. A served event steps one
    session, and PyTorch spends 10-20 us of dispatch on each of the step's dozen tensor
    operations on so small an input, several times this function's cost.
    """
    table, layers, onehot = _step_arrays(net)
    x = table[item]
    out, offset = [], 0
    for index, (w_input, w_hidden, bias, bias_hidden) in enumerate(layers):
        size = w_hidden.shape[0]
        h = row[offset : offset + size]
        offset += size
        # one-hot input: the table row already is x @ w_input
        gates = x + bias if index == 0 and onehot else x @ w_input + bias  # [3H]
        gates_h = h @ w_hidden + bias_hidden  # [3H]
        rz = gates[: 2 * size] + gates_h[: 2 * size]
        rz = 1.0 / (1.0 + np.exp(-rz))
        n = np.tanh(gates[2 * size :] + rz[:size] * gates_h[2 * size :])
        h = h + rz[size:] * (n - h)  # lerp(h, n, z)
        out.append(h)
        x = h
    return np.concatenate(out).astype(np.float32, copy=False)


StepArrays = tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], bool]


def _step_arrays(net: GRU4RecNet) -> StepArrays:
    """Numpy views of the parameters a step reads, made once per network and made again if
    a parameter's storage was replaced (views share memory: in-place updates show)."""
    cached = net.__dict__.get("_step_arrays")  # plain dict: nn.Module's getattr is slow
    if cached is not None:
        parameters, key, made = cached
        if tuple(parameter.data_ptr() for parameter in parameters) == key:
            return made  # type: ignore[no-any-return]
    parameters = [net.input_table]
    for layer in net.layers:
        assert isinstance(layer, GRULayer)
        parameters += [layer.w_input, layer.w_hidden, layer.bias, layer.bias_hidden]
    arrays = [parameter.detach().numpy() for parameter in parameters]
    layers = [
        (arrays[k], arrays[k + 1], arrays[k + 2], arrays[k + 3]) for k in range(1, len(arrays), 4)
    ]
    made = (arrays[0], layers, net.mode == "onehot")
    key = tuple(parameter.data_ptr() for parameter in parameters)
    net.__dict__["_step_arrays"] = (parameters, key, made)
    return made


def warm_start_vocabulary(known: np.ndarray, new_items: Iterable[str]) -> np.ndarray:
    """The model's items in their order, then the items it has never seen (sorted)."""
    seen = set(known.tolist())
    fresh = sorted({str(i) for i in new_items} - seen)
    return np.concatenate([np.asarray(known, dtype=object), np.array(fresh, dtype=object)])


@torch.no_grad()
def _seed_new_rows(net: GRU4RecNet, new: Sessions, n_old: int) -> None:
    """Each new item's rows: the mean rows of the known items right before it in `new`'s
    sessions, else the mean of all known rows."""
    previous = new.items[:-1]
    following = new.items[1:]
    same_session = np.ones(len(previous), dtype=bool)
    same_session[new.offsets[1:-1] - 1] = False  # no pair across a session boundary
    pairs = same_session & (following >= n_old) & (previous < n_old)
    tables = [net.item_weights, net.item_bias]
    if net.mode != "shared":
        tables.append(net.input_table)
    for table in tables:
        known_mean = table[:n_old].mean(dim=0)
        table[n_old:] = known_mean
        if pairs.any():
            targets = torch.from_numpy(following[pairs].astype(np.int64))
            sources = torch.from_numpy(previous[pairs].astype(np.int64))
            sums = torch.zeros_like(table).index_add_(0, targets, table[sources])
            counts = torch.zeros(table.shape[0]).index_add_(0, targets, torch.ones(len(targets)))
            seeded = counts > 0
            shape = (-1,) + (1,) * (table.dim() - 1)
            table[seeded] = sums[seeded] / counts[seeded].reshape(shape)


def accumulators(trainer: Trainer) -> list[np.ndarray]:
    """The trainer's Adagrad accumulators: dense parameters in order, then each item table."""
    optimizer = trainer.optimizer
    dense = [a.numpy().copy() for a in optimizer.dense_acc]
    return dense + [optimizer.accumulator(t).numpy().copy() for t in trainer.tables]


@torch.no_grad()
def resume(trainer: Trainer, saved: list[np.ndarray], n_old: int) -> None:
    """Put saved accumulators into a fresh trainer's optimizer; a new item's rows start from
    zero (they learn at the full rate, the old ones at the rate they had come down to)."""
    optimizer = trainer.optimizer
    dense = optimizer.dense_acc
    if len(saved) != len(dense) + len(trainer.tables):
        raise ValueError("the saved optimizer state does not fit this network")
    for target, value in zip(dense, saved, strict=False):
        target.copy_(torch.from_numpy(value))
    for table, value in zip(trainer.tables, saved[len(dense) :], strict=True):
        optimizer.accumulator(table)[:n_old] = torch.from_numpy(value)
