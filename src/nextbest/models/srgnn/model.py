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

import time

import numpy as np
import torch
import torch.nn.functional as F

from nextbest.data.sessions import Sessions
from nextbest.models.gru4rec.training import EpochStats, run_epochs
from nextbest.models.neural import NeuralSessionModel
from nextbest.models.sequences import gather
from nextbest.models.srgnn.config import SRGNNConfig
from nextbest.models.srgnn.graph import build_graphs
from nextbest.models.srgnn.network import SRGNNNet


class SRGNN(NeuralSessionModel[np.ndarray, SRGNNConfig, SRGNNNet]):
    name = "srgnn"
    config_class = SRGNNConfig

    def new_net(self) -> SRGNNNet:
        c = self.config
        return SRGNNNet(self.n_items, c.hidden, c.steps, c.hybrid, c.scale)

    # -- training ---------------------------------------------------------------------------
    def train_epochs(self, net: SRGNNNet, train: Sessions) -> list[EpochStats]:
        config = self.config
        starts, lengths, targets = prefix_cases(train, config.max_length)
        if not len(targets):
            raise ValueError("no training session has two or more events: nothing to learn")
        optimizer = torch.optim.Adam(net.parameters(), config.learning_rate, weight_decay=config.l2)
        schedule = torch.optim.lr_scheduler.StepLR(
            optimizer, config.lr_decay_epochs, config.lr_decay
        )
        generator = torch.Generator().manual_seed(config.seed + 1)

        def epoch() -> EpochStats:
            began, total = time.perf_counter(), 0.0
            net.train()
            order = torch.randperm(len(targets), generator=generator).numpy()
            for first in range(0, len(order), config.batch_size):
                rows = order[first : first + config.batch_size]
                sequences, sizes = gather(train.items, starts[rows], lengths[rows])
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
            self.epoch_done()
            return stats

        return run_epochs("srgnn", config.n_epochs, epoch)

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

    def query(self, state: np.ndarray) -> torch.Tensor:
        """Each session's vector: its graph built and run (zeros before any click)."""
        if state.shape[1] == 0:
            return torch.zeros(len(state), self.config.hidden)
        lengths = np.full(len(state), state.shape[1], dtype=np.int64)
        return self._session_vectors(state, lengths)

    @torch.no_grad()
    def score_sequences(self, items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Scores [B, n_items] after left-aligned sequences [B, T] of `lengths` [B] (>= 1),
        padded as in training: what stepping them click by click must give."""
        return self.score(self._session_vectors(items, lengths))

    def _session_vectors(self, items: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
        net = self._fitted()
        sequences = torch.as_tensor(np.ascontiguousarray(items, dtype=np.int64))
        graphs = build_graphs(sequences, torch.as_tensor(np.asarray(lengths, dtype=np.int64)))
        with torch.no_grad():
            vectors: torch.Tensor = net.session_vectors(graphs)
        return vectors


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
