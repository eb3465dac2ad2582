"""The self-attentive model as a `SessionModel`: trained on whole sessions, served one
position per event.

The state of a batch of sessions holds, per session, the keys and values of its latest clicks
in every block (what the next click attends to), the output vector of its last click (what
scores are read from) and its number of clicks (the next position). Stepping is one position
of work, never a replay of the session:

    state = model.initial_state(1)
    state = model.step(state, np.array([item]), np.array([t]))
    top, scores = model.recommend(state, 20)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np
import torch
import torch.nn.functional as F

from nextbest.data.sessions import Sessions
from nextbest.models.base import NotFittedError, SessionModel
from nextbest.models.gru4rec.losses import cross_entropy as sampled_cross_entropy
from nextbest.models.gru4rec.sampler import NegativeSampler, sampling_probabilities
from nextbest.models.gru4rec.training import EpochStats, run_epochs, torch_threads
from nextbest.models.sasrec.config import SASRecConfig
from nextbest.models.sasrec.network import SASRecNet
from nextbest.models.sequences import gather

if TYPE_CHECKING:
    from nextbest.models.scoring import Scorer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SASRecState:
    cache: torch.Tensor  # [B, blocks, 2, t, H] keys and values of the latest clicks
    last: torch.Tensor  # [B, H] output vector after the latest click
    count: np.ndarray  # [B] int64 clicks so far


class SASRec(SessionModel[SASRecState, SASRecConfig]):
    name = "sasrec"
    config_class = SASRecConfig

    def __init__(self, config: SASRecConfig | None = None) -> None:
        super().__init__(config)
        self.net: SASRecNet | None = None
        self.history: list[EpochStats] = []
        self.fit_seconds = 0.0
        # called with the number of epochs done after each one (a benchmark's validation)
        self.after_epoch: Callable[[int], None] | None = None
        self.epochs_done = 0

    def _new_net(self) -> SASRecNet:
        c = self.config
        return SASRecNet(
            self.n_items, c.hidden, c.blocks, c.heads, c.dropout, c.max_length, c.scale
        )

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
        self.net = net = self._new_net()
        lengths = np.minimum(train.lengths, config.train_length)
        usable = np.flatnonzero(lengths >= 2)
        if not len(usable):
            raise ValueError("no training session has two or more events: nothing to learn")
        starts = train.offsets[usable]
        lengths = lengths[usable]
        optimizer = torch.optim.Adam(net.parameters(), config.learning_rate, weight_decay=config.l2)
        generator = torch.Generator().manual_seed(config.seed + 1)
        rng = np.random.default_rng(config.seed + 2)
        support = train.item_support()
        sampler, log_q = None, None
        if config.loss == "sampled":
            sampler = NegativeSampler(support, config.n_sample, config.sample_alpha, generator)
            q = sampling_probabilities(support, config.sample_alpha)
            log_q = torch.from_numpy(np.log(np.maximum(q, np.finfo(np.float64).tiny))).float()
        n_targets = int((lengths - 1).sum())

        def epoch() -> EpochStats:
            began, total = time.perf_counter(), 0.0
            net.train()
            for rows in _packed_batches(lengths, config.batch_size, rng):
                sequences, sizes = gather(train.items, starts[rows], lengths[rows])
                table = net.items.table()  # once per step: normalised rows cost a pass
                outputs = net(sequences[:, :-1], table)  # [B, T-1, H]
                real = torch.arange(sequences.shape[1] - 1).unsqueeze(0) < (sizes - 1).unsqueeze(1)
                vectors, targets = outputs[real], sequences[:, 1:][real]  # [P, H], [P]
                if sampler is None:
                    loss = F.cross_entropy(net.scores(vectors, table), targets, reduction="sum")
                else:
                    columns = torch.cat([targets, sampler()])
                    scores = net.items.scores_of(vectors, columns)  # [P, P + n_sample]
                    loss = sampled_cross_entropy(scores, None if log_q is None else log_q[columns])
                optimizer.zero_grad(set_to_none=True)
                (loss / len(targets)).backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                total += loss.item()
            net.eval()
            stats = EpochStats(total / n_targets, n_targets, time.perf_counter() - began)
            self._report_epoch()
            return stats

        self.history = run_epochs("sasrec", config.n_epochs, epoch)
        net.eval()
        self.fit_seconds = time.perf_counter() - started
        return self

    def _report_epoch(self) -> None:
        self.epochs_done += 1
        if self.after_epoch is not None:
            self.after_epoch(self.epochs_done)

    # -- answering --------------------------------------------------------------------------
    def initial_state(self, n: int) -> SASRecState:
        c = self.config
        return SASRecState(
            cache=torch.zeros(n, c.blocks, 2, 0, c.hidden),
            last=torch.zeros(n, c.hidden),
            count=np.zeros(n, dtype=np.int64),
        )

    @torch.no_grad()
    def step(self, state: SASRecState, items: np.ndarray, times: np.ndarray) -> SASRecState:
        """One position per session (items [B]); times are not used."""
        net = self._fitted()
        index = torch.as_tensor(np.asarray(items, dtype=np.int64))
        last, cache = net.step(index, torch.from_numpy(state.count), state.cache)
        return SASRecState(cache=cache, last=last, count=state.count + 1)

    def select(self, state: SASRecState, rows: np.ndarray) -> SASRecState:
        index = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        return SASRecState(
            state.cache.index_select(0, index), state.last.index_select(0, index), state.count[rows]
        )

    @torch.no_grad()
    def score(self, state: SASRecState | torch.Tensor) -> np.ndarray:
        """[B, n_items] scores; a bare tensor [B, H] is a query vector (an item's embedding,
        for the items most like it)."""
        if isinstance(state, torch.Tensor):
            return self._fitted().scores(state).numpy()
        scores = self._fitted().scores(state.last).numpy()
        fresh = state.count == 0
        if fresh.any():
            scores[fresh] = 0.0  # a session without clicks has no preference yet
        return scores

    @torch.no_grad()
    def score_sequences(self, items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Scores [B, n_items] after left-aligned sequences [B, T] of `lengths` [B] (>= 1),
        in one padded forward pass as in training: what stepping them click by click must
        give (the model contract checks it)."""
        net = self._fitted()
        outputs = net(torch.as_tensor(np.asarray(items, dtype=np.int64)))  # [B, T, H]
        last = outputs[torch.arange(len(outputs)), torch.as_tensor(lengths) - 1]
        return net.scores(last).numpy()

    def scorer(self, cache: Path | None = None) -> Scorer:
        """The shared item matrix and int8 prescreen of `LinearScorer`, queried by the output
        vector of each session's last click."""
        from nextbest.models.scoring import LinearScorer

        items = self._fitted().items
        table = items.table().detach()

        def query(state: SASRecState | torch.Tensor) -> torch.Tensor:
            vectors = state if isinstance(state, torch.Tensor) else state.last
            return items.query(vectors)

        return LinearScorer(self, table, torch.zeros(len(table)), query, cache)

    def item_embeddings(self) -> np.ndarray | None:
        return self._fitted().items.table().detach().numpy()

    # -- persistence ------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        net = self._fitted()
        return {f"net.{k}": v.detach().numpy().copy() for k, v in net.state_dict().items()}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        net = self._new_net()
        net.load_state_dict(
            {k.removeprefix("net."): torch.from_numpy(v) for k, v in arrays.items()}
        )
        net.eval()
        self.net = net

    def _fitted(self) -> SASRecNet:
        if self.net is None:
            raise NotFittedError("SASRec is not fitted: call fit() or load() first")
        return self.net


def _packed_batches(
    lengths: np.ndarray, per_batch: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Session rows grouped by similar length, about `per_batch` targets per group, in a random
    order (ties in length broken at random, so the groups change from epoch to epoch)."""
    order = np.lexsort((rng.random(len(lengths)), lengths))
    targets = np.cumsum(lengths[order] - 1)
    cuts = np.searchsorted(targets, np.arange(per_batch, int(targets[-1]), per_batch), side="left")
    groups = [g for g in np.split(order, np.unique(cuts + 1)) if len(g)]
    return [groups[i] for i in rng.permutation(len(groups))]
