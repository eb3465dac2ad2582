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

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nextbest.data.sessions import Sessions
from nextbest.models.gru4rec.losses import cross_entropy as sampled_cross_entropy
from nextbest.models.gru4rec.sampler import NegativeSampler, sampling_probabilities
from nextbest.models.gru4rec.training import EpochStats, run_epochs
from nextbest.models.neural import NeuralSessionModel
from nextbest.models.sasrec.config import SASRecConfig
from nextbest.models.sasrec.network import SASRecNet
from nextbest.models.sequences import gather


@dataclass(frozen=True)
class SASRecState:
    cache: torch.Tensor  # [B, blocks, 2, t, H] keys and values of the latest clicks
    last: torch.Tensor  # [B, H] output vector after the latest click
    count: np.ndarray  # [B] int64 clicks so far


class SASRec(NeuralSessionModel[SASRecState, SASRecConfig, SASRecNet]):
    name = "sasrec"
    config_class = SASRecConfig

    def new_net(self) -> SASRecNet:
        c = self.config
        return SASRecNet(
            self.n_items, c.hidden, c.blocks, c.heads, c.dropout, c.max_length, c.scale
        )

    # -- training ---------------------------------------------------------------------------
    def train_epochs(self, net: SASRecNet, train: Sessions) -> list[EpochStats]:
        config = self.config
        lengths = np.minimum(train.lengths, config.train_length)
        usable = np.flatnonzero(lengths >= 2)
        if not len(usable):
            raise ValueError("no training session has two or more events: nothing to learn")
        starts = train.offsets[usable]
        lengths = lengths[usable]
        optimizer = torch.optim.Adam(net.parameters(), config.learning_rate, weight_decay=config.l2)
        schedule = torch.optim.lr_scheduler.StepLR(
            optimizer, config.lr_decay_epochs, config.lr_decay
        )
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
            schedule.step()
            net.eval()
            stats = EpochStats(total / n_targets, n_targets, time.perf_counter() - began)
            self.epoch_done()
            return stats

        return run_epochs("sasrec", config.n_epochs, epoch)

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

    def query(self, state: SASRecState) -> torch.Tensor:
        """The output vector after each session's last click (zeros before any click)."""
        return state.last

    @torch.no_grad()
    def score_sequences(self, items: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Scores [B, n_items] after left-aligned sequences [B, T] of `lengths` [B] (>= 1),
        in one padded forward pass as in training: what stepping them click by click must
        give (the model contract checks it)."""
        outputs = self._fitted()(torch.as_tensor(np.asarray(items, dtype=np.int64)))
        return self.score(outputs[torch.arange(len(outputs)), torch.as_tensor(lengths) - 1])


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
