"""What the neural session models SR-GNN and the self-attentive model share.

Each holds a PyTorch network `net` whose `items` is an `ItemTable` (its item rows and the
scores of session vectors against them). This base fits under `config.threads`, counts epochs
for an `after_epoch` hook (a benchmark's per-epoch validation), saves the network as named
arrays, serves through `LinearScorer` (the shared item matrix and the int8 prescreen), and
scores a bare [B, H] tensor as a query vector. A model supplies `new_net`, `train_epochs` and
`query(state)`, the [B, H] session vectors of a batch state.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, cast

import numpy as np
import torch
from torch import nn

from nextbest.data.sessions import Sessions
from nextbest.models.base import ConfigT, NotFittedError, SessionModel, StateT
from nextbest.models.gru4rec.training import EpochStats, torch_threads
from nextbest.models.normalised import ItemTable

if TYPE_CHECKING:
    from nextbest.models.scoring import Scorer

NetT = TypeVar("NetT", bound=nn.Module)


class NeuralSessionModel(SessionModel[StateT, ConfigT], Generic[StateT, ConfigT, NetT]):
    def __init__(self, config: ConfigT | None = None) -> None:
        super().__init__(config)
        self.net: NetT | None = None
        self.history: list[EpochStats] = []  # per epoch of the last fit
        self.fit_seconds = 0.0
        # called with the number of epochs done after each one (a benchmark's validation)
        self.after_epoch: Callable[[int], None] | None = None
        self.epochs_done = 0

    # -- what a model supplies ---------------------------------------------------------------
    @abstractmethod
    def new_net(self) -> NetT:
        """A freshly initialised network for `self.n_items` items and the config."""

    @abstractmethod
    def train_epochs(self, net: NetT, train: Sessions) -> list[EpochStats]:
        """Train `net` for the configured epochs, calling `epoch_done()` after each."""

    @abstractmethod
    def query(self, state: StateT) -> torch.Tensor:
        """[B, H] the session vectors of a batch state, as the item table scores them."""

    # -- training ---------------------------------------------------------------------------
    def fit(self, train: Sessions) -> Self:
        config: Any = self.config
        with torch_threads(config.threads):
            started = time.perf_counter()
            torch.manual_seed(config.seed)
            self.item_ids = train.item_ids
            self.epochs_done = 0
            self.net = net = self.new_net()
            self.history = self.train_epochs(net, train)
            net.eval()
            self.fit_seconds = time.perf_counter() - started
        return self

    def epoch_done(self) -> None:
        self.epochs_done += 1
        if self.after_epoch is not None:
            self.after_epoch(self.epochs_done)

    # -- answering --------------------------------------------------------------------------
    def query_vectors(self, state: StateT | torch.Tensor) -> torch.Tensor:
        """What the item rows are dotted with: a bare tensor [B, H] is an item's vector (for
        the items most like it), anything else a state."""
        with torch.no_grad():
            vectors = state if isinstance(state, torch.Tensor) else self.query(state)
            return self.item_table().query(vectors)

    @torch.no_grad()
    def score(self, state: StateT | torch.Tensor) -> np.ndarray:
        """[B, n_items] scores (a bare tensor [B, H]: of a query vector)."""
        table = self.item_table().table()
        scores: np.ndarray = (self.query_vectors(state) @ table.T).numpy()
        return scores

    def scorer(self, cache: Path | None = None) -> Scorer:
        """The shared item matrix and int8 prescreen of `LinearScorer`."""
        from nextbest.models.scoring import LinearScorer

        table = self.item_table().table().detach()
        bias = torch.zeros(len(table))
        return LinearScorer(self, table, bias, self.query_vectors, cache)

    def item_embeddings(self) -> np.ndarray | None:
        rows: np.ndarray = self.item_table().table().detach().numpy()
        return rows

    # -- persistence ------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        net = self._fitted()
        return {f"net.{k}": v.detach().numpy().copy() for k, v in net.state_dict().items()}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        net = self.new_net()
        net.load_state_dict(
            {k.removeprefix("net."): torch.from_numpy(v) for k, v in arrays.items()}
        )
        net.eval()
        self.net = net

    def item_table(self) -> ItemTable:
        return cast(ItemTable, self._fitted().items)

    def _fitted(self) -> NetT:
        if self.net is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load() first")
        return self.net
