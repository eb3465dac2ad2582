"""SR-GNN as a `SessionModel`: trained on every prefix of every training session, served from
the session's own items.

The state of a batch of sessions is an int64 array [B, t]: each session's most recent clicks
(at most `max_length`). That is all the network needs, since it builds the session's graph
afresh when scores are asked for, so a step only appends a column:

    state = model.initial_state(1)
    state = model.step(state, np.array([item]), np.array([t]))
    top, scores = model.recommend(state, 20)

Training follows the paper: each prefix s_1..s_k of a training session is a case whose target
is s_{k+1}; the loss is the cross-entropy of the softmax over all items; Adam with an L2
penalty, the learning rate decayed in steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np
import torch
import torch.nn.functional as F

from nextbest.data.sessions import Sessions
from nextbest.models.base import NotFittedError, SessionModel
from nextbest.models.gru4rec.training import EpochStats, run_epochs, torch_threads
from nextbest.models.sequences import gather
from nextbest.models.srgnn.config import SRGNNConfig
from nextbest.models.srgnn.graph import build_graphs
from nextbest.models.srgnn.network import SRGNNNet

if TYPE_CHECKING:
    from nextbest.models.scoring import Scorer

logger = logging.getLogger(__name__)


class SRGNN(SessionModel[np.ndarray, SRGNNConfig]):
    name = "srgnn"
    config_class = SRGNNConfig

    def __init__(self, config: SRGNNConfig | None = None) -> None:
        super().__init__(config)
        self.net: SRGNNNet | None = None
        self.history: list[EpochStats] = []
        self.fit_seconds = 0.0
        # called with the number of epochs done after each one (a benchmark's validation)
        self.after_epoch: Callable[[int], None] | None = None
        self.epochs_done = 0

    # -- training ---------------------------------------------------------------------------
    def fit(self, train: Sessions) -> Self:
        with torch_threads(self.config.threads):
            return self._fit(train)

    def _fit(self, train: Sessions) -> Self:
        started = time.perf_counter()
        config = self.config
        torch.manual_seed(config.seed)
        self.item_ids = train.item_ids
        self.epochs_done = 0
        self.net = net = SRGNNNet(
            train.n_items, config.hidden, config.steps, config.hybrid, config.scale
        )
        starts, lengths, targets = prefix_cases(train, config.max_length)
        if not len(targets):
            raise ValueError("no training session has two or more events: nothing to learn")
        optimizer = torch.optim.Adam(net.parameters(), config.learning_rate, weight_decay=config.l2)
        schedule = torch.optim.lr_scheduler.StepLR(
            optimizer, config.lr_decay_epochs, config.lr_decay
        )
        generator = torch.Generator().manual_seed(config.seed + 1)
        items = train.items

        def epoch() -> EpochStats:
            began, total = time.perf_counter(), 0.0
            net.train()
            order = torch.randperm(len(targets), generator=generator).numpy()
            for first in range(0, len(order), config.batch_size):
                rows = order[first : first + config.batch_size]
                sequences, sizes = gather(items, starts[rows], lengths[rows])
                table = net.items.table()  # once per step: normalised rows cost a pass
                vectors = net.session_vectors(build_graphs(sequences, sizes), table)
                scores = net.scores(vectors, table)
                loss = F.cross_entropy(scores, torch.from_numpy(targets[rows]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                total += loss.item() * len(rows)
            schedule.step()
            net.eval()
            stats = EpochStats(total / len(targets), len(targets), time.perf_counter() - began)
            self._report_epoch()
            return stats

        self.history = run_epochs("srgnn", config.n_epochs, epoch)
        net.eval()
        self.fit_seconds = time.perf_counter() - started
        return self

    def _report_epoch(self) -> None:
        self.epochs_done += 1
        if self.after_epoch is not None:
            self.after_epoch(self.epochs_done)

    # -- answering --------------------------------------------------------------------------
    def initial_state(self, n: int) -> np.ndarray:
        return np.zeros((n, 0), dtype=np.int64)

    def step(self, state: np.ndarray, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Append each session's click; keep the most recent `max_length`."""
        column = np.asarray(items, dtype=np.int64).reshape(-1, 1)
        grown: np.ndarray = np.concatenate([state, column], axis=1)
        return grown[:, -self.config.max_length :]

    def select(self, state: np.ndarray, rows: np.ndarray) -> np.ndarray:
        chosen: np.ndarray = state[rows]
        return chosen

    @torch.no_grad()
    def score(self, state: np.ndarray | torch.Tensor) -> np.ndarray:
        """[B, n_items] scores; a float tensor [B, H] is a query vector (an item's embedding,
        for the items most like it)."""
        net = self._fitted()
        if isinstance(state, torch.Tensor):
            return net.scores(state).numpy()
        if state.shape[1] == 0:
            return np.zeros((len(state), self.n_items), dtype=np.float32)
        items = torch.from_numpy(np.ascontiguousarray(state, dtype=np.int64))
        lengths = torch.full((len(state),), state.shape[1], dtype=torch.int64)
        return net.scores(net.session_vectors(build_graphs(items, lengths))).numpy()

    def scorer(self, cache: Path | None = None) -> Scorer:
        """The shared item matrix and int8 prescreen of `LinearScorer`, queried by each
        session's vector (its graph run once per request)."""
        from nextbest.models.scoring import LinearScorer

        net = self._fitted()
        table = net.items.table().detach()

        @torch.no_grad()
        def query(state: np.ndarray | torch.Tensor) -> torch.Tensor:
            if isinstance(state, torch.Tensor):  # an item's vector: items like it
                return net.items.query(state)
            if state.shape[1] == 0:
                return torch.zeros(len(state), table.shape[1])
            items = torch.from_numpy(np.ascontiguousarray(state, dtype=np.int64))
            lengths = torch.full((len(state),), state.shape[1], dtype=torch.int64)
            return net.items.query(net.session_vectors(build_graphs(items, lengths)))

        return LinearScorer(self, table, torch.zeros(len(table)), query, cache)

    @torch.no_grad()
    def score_sequences(self, items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Scores [B, n_items] after left-aligned sequences [B, T] of `lengths` [B] (>= 1),
        padded as in training: what stepping them click by click must give."""
        net = self._fitted()
        sequences = torch.as_tensor(np.asarray(items, dtype=np.int64))
        graphs = build_graphs(sequences, torch.as_tensor(np.asarray(lengths, dtype=np.int64)))
        return net.scores(net.session_vectors(graphs)).numpy()

    def item_embeddings(self) -> np.ndarray | None:
        return self._fitted().items.table().detach().numpy()

    # -- persistence ------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        net = self._fitted()
        return {f"net.{k}": v.detach().numpy().copy() for k, v in net.state_dict().items()}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        config = self.config
        net = SRGNNNet(self.n_items, config.hidden, config.steps, config.hybrid, config.scale)
        net.load_state_dict(
            {k.removeprefix("net."): torch.from_numpy(v) for k, v in arrays.items()}
        )
        net.eval()
        self.net = net

    def _fitted(self) -> SRGNNNet:
        if self.net is None:
            raise NotFittedError("SR-GNN is not fitted: call fit() or load() first")
        return self.net


def prefix_cases(train: Sessions, max_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every prefix of every training session as a case: (start [C], length [C], target [C]).

    The case of a session's k-th click (k >= 1, 0-based) is its clicks before k, at most the
    last `max_length` of them, with click k as the target.
    """
    lengths = train.lengths
    n_cases = np.maximum(lengths - 1, 0)
    session = np.repeat(np.arange(len(lengths)), n_cases)
    k = np.arange(int(n_cases.sum())) - np.repeat(np.cumsum(n_cases) - n_cases, n_cases) + 1
    size = np.minimum(k, max_length)
    begin = train.offsets[session] + k - size
    return begin.astype(np.int64), size.astype(np.int64), train.items[train.offsets[session] + k]
