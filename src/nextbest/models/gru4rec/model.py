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
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np
import torch

from nextbest.data.sessions import Sessions
from nextbest.events.schema import Item
from nextbest.models.base import NotFittedError, SessionModel
from nextbest.models.gru4rec.attributes import (
    AttributeIndex,
    clear_unseen,
    index_for,
    settle_unseen,
)
from nextbest.models.gru4rec.batching import plan
from nextbest.models.gru4rec.config import GRU4RecConfig
from nextbest.models.gru4rec.network import GRU4RecNet
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
        trainer = Trainer(self.net, self.config, support, walk.n_batches * self.config.n_epochs)
        self.history = run_epochs(
            "gru4rec", self.config.n_epochs, lambda: trainer.epoch(walk, train.items)
        )
        settle_unseen(self.net, unseen, index)
        self.attribute_values = None if index is None else index.values
        self.fit_seconds = time.perf_counter() - started
        return self

    # -- answering --------------------------------------------------------------------------
    def initial_state(self, n: int) -> torch.Tensor:
        return torch.zeros(n, sum(self.config.layers))  # [B, sum(H)]

    @torch.no_grad()
    def step(self, state: torch.Tensor, items: np.ndarray, times: np.ndarray) -> torch.Tensor:
        """One GRU step for every session of the batch (items [B]); times are not used."""
        net = self._fitted()
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
        return arrays

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        index = None
        if "attribute_values" in arrays:
            values = arrays.pop("attribute_values").astype(str)
            index = AttributeIndex(
                values, arrays["net.attributes.slots"], arrays["net.attributes.weights"]
            )
            self.attribute_values = values
        net = GRU4RecNet(self.n_items, self.config, index)
        state = {k.removeprefix("net."): torch.from_numpy(v) for k, v in arrays.items()}
        net.load_state_dict(state)
        net.eval()
        self.net = net

    def _fitted(self) -> GRU4RecNet:
        if self.net is None:
            raise NotFittedError("GRU4Rec is not fitted: call fit() or load() first")
        return self.net
