"""The next-event protocol, batched: every model is driven through step/select/score.

For every test session and every position t >= 1, the model has seen events 0..t-1 of that
session and ranks every training item; the true item at t is looked up in that ranking. Test
sessions are walked in parallel blocks sorted by length, so the batch only ever shrinks (the
sessions still running are always a prefix of the block) and no session is padded.

The prefix/target protocol of the GNN papers is the same walk with only the last position of
each (prefix + target) sequence counted; `prefix_target_sessions` builds those sequences.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nextbest.data.sessions import Sessions
from nextbest.evaluation.metrics import TiePolicy, mrr_at, ndcg_at, recall_at, target_ranks
from nextbest.models.base import SessionModel

logger = logging.getLogger(__name__)

DEFAULT_CUTOFFS = (5, 10, 20)


@dataclass(frozen=True)
class EvalConfig:
    cutoffs: tuple[int, ...] = DEFAULT_CUTOFFS
    ties: TiePolicy = "conservative"
    batch_size: int = 256

    def __post_init__(self) -> None:
        if not self.cutoffs or any(k < 1 for k in self.cutoffs):
            raise ValueError(f"cutoffs must be positive integers, not {self.cutoffs}")
        if self.ties not in ("conservative", "standard", "median"):
            raise ValueError(f"ties must be conservative, standard or median, not {self.ties!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {self.batch_size}")


@dataclass
class EvalResult:
    """Per-case ranks plus the aggregate figures of one evaluation run."""

    ranks: np.ndarray  # [cases] float64
    positions: np.ndarray  # [cases] position of the target in its session (1 = second event)
    cutoffs: tuple[int, ...]
    ties: str
    coverage: dict[int, float]  # share of training items in any top-K list
    popularity: dict[int, float]  # mean of pop(item) / max pop over the top-K lists
    eval_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    sessions: np.ndarray | None = None  # [cases] the test session of each case
    targets: np.ndarray | None = None  # [cases] the target item index of each case

    @property
    def cases(self) -> int:
        return len(self.ranks)

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in self.cutoffs:
            out[f"recall@{k}"] = recall_at(self.ranks, k)
            out[f"mrr@{k}"] = mrr_at(self.ranks, k)
            out[f"ndcg@{k}"] = ndcg_at(self.ranks, k)
        for k in self.cutoffs:
            out[f"coverage@{k}"] = self.coverage[k]
            out[f"popularity@{k}"] = self.popularity[k]
        return out


class _ListStats:
    """Accumulates item coverage and popularity bias of the top-K lists."""

    def __init__(self, n_items: int, cutoffs: Sequence[int], support: np.ndarray | None) -> None:
        self.cutoffs = tuple(cutoffs)
        self.seen = {k: torch.zeros(n_items, dtype=torch.bool) for k in self.cutoffs}
        self.pop_sum = dict.fromkeys(self.cutoffs, 0.0)
        self.lists = 0
        relative = (support / max(support.max(), 1)) if support is not None else None
        self.relative_pop = (
            torch.from_numpy(relative.astype(np.float64)) if relative is not None else None
        )

    def add(self, scores: torch.Tensor) -> None:
        depth = min(max(self.cutoffs), scores.shape[1])
        top = torch.topk(scores, depth, dim=1).indices  # [B, K]
        self.lists += top.shape[0]
        for k in self.cutoffs:
            self.seen[k][top[:, :k].reshape(-1)] = True
            if self.relative_pop is not None:
                self.pop_sum[k] += float(self.relative_pop[top[:, :k]].mean(dim=1).sum())

    def coverage(self) -> dict[int, float]:
        return {k: float(self.seen[k].float().mean()) for k in self.cutoffs}

    def popularity(self) -> dict[int, float]:
        return {k: self.pop_sum[k] / max(self.lists, 1) for k in self.cutoffs}


def evaluate_next_event(
    model: SessionModel[Any, Any],
    test: Sessions,
    config: EvalConfig | None = None,
    count: np.ndarray | None = None,
    train_support: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
    initial: Callable[[np.ndarray], Any] | None = None,
) -> EvalResult:
    """Rank every target of `test` (coded in the model's vocabulary) against all items.

    `count` [n_events] marks which events are targets (default: all but each session's first);
    `train_support` [n_items] (events per training item) enables the popularity-bias figure;
    `progress(n)` is called with the number of sessions finished after each block;
    `initial(sessions)` gives the state of those test sessions before their first event
    (default: `model.initial_state`; the user protocol starts from warmed-up user states).
    """
    config = config or EvalConfig()
    if test.n_items != model.n_items or (
        model.item_ids is not None and not np.array_equal(test.item_ids, model.item_ids)
    ):
        raise ValueError("test sessions must be coded with the model's training vocabulary")
    lengths = test.lengths
    if count is None:
        count = np.ones(test.n_events, dtype=bool)
        count[test.offsets[:-1]] = False
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] >= 2]
    stats = _ListStats(model.n_items, config.cutoffs, train_support)
    ranks: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    started = time.perf_counter()
    for first in range(0, len(order), config.batch_size):
        block = order[first : first + config.batch_size]
        out = (ranks, positions, owners, targets)
        _walk_block(model, test, block, count, config, stats, out, initial)
        if progress is not None:
            progress(len(block))
    all_ranks = np.concatenate(ranks) if ranks else np.zeros(0)
    return EvalResult(
        ranks=all_ranks,
        positions=np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64),
        cutoffs=config.cutoffs,
        ties=config.ties,
        coverage=stats.coverage(),
        popularity=stats.popularity(),
        eval_seconds=time.perf_counter() - started,
        sessions=np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64),
        targets=np.concatenate(targets) if targets else np.zeros(0, dtype=np.int64),
    )


def cold_start_figures(result: EvalResult, train_support: np.ndarray) -> dict[str, float]:
    """Recall and MRR over the cases whose target item had no training event (a catalog
    item new in the test period): `cold_cases`, `cold_recall@K`, `cold_mrr@K`."""
    if result.targets is None:
        raise ValueError("the result does not know its targets")
    cold = train_support[result.targets] == 0
    figures: dict[str, float] = {"cold_cases": int(cold.sum())}
    for k in result.cutoffs:
        figures[f"cold_recall@{k}"] = recall_at(result.ranks[cold], k) if cold.any() else 0.0
        figures[f"cold_mrr@{k}"] = mrr_at(result.ranks[cold], k) if cold.any() else 0.0
    return figures


def _walk_block(
    model: SessionModel[Any, Any],
    test: Sessions,
    block: np.ndarray,
    count: np.ndarray,
    config: EvalConfig,
    stats: _ListStats,
    out: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]],
    initial: Callable[[np.ndarray], Any] | None = None,
) -> None:
    """Step one block of sessions (sorted by length, longest first) through to their ends.

    Appends each case's rank, position, test session and target item to the lists of `out`.
    """
    ranks, positions, owners, targets_out = out
    starts = test.offsets[block]  # [b]
    lengths = test.lengths[block]  # [b], non-increasing
    state = model.initial_state(len(block)) if initial is None else initial(block)
    size = len(block)
    for t in range(int(lengths[0]) - 1):
        running = int(np.searchsorted(-lengths, -(t + 2), side="right"))  # sessions with len > t+1
        if running < size:
            state = model.select(state, np.arange(running))
            size = running
        here = starts[:size] + t  # [b] event positions fed now
        state = model.step(state, test.items[here], test.times[here])
        targets = here + 1
        wanted = np.flatnonzero(count[targets])
        if not len(wanted):
            continue
        scored_state = state if len(wanted) == size else model.select(state, wanted)
        # views (broadcasts) become a writable contiguous copy, which torch needs
        scores = np.require(model.score(scored_state), np.float32, ["C", "W"])  # [w, n_items]
        truth = test.items[targets[wanted]]
        ranks.append(target_ranks(scores, truth, config.ties))
        positions.append(np.full(len(wanted), t + 1, dtype=np.int64))
        owners.append(block[wanted])
        targets_out.append(truth)
        stats.add(torch.from_numpy(scores))


def prefix_target_sessions(
    prefixes: Sequence[Sequence[str]],
    targets: Sequence[str],
    item_ids: np.ndarray,
    times: Sequence[float] | np.ndarray | None = None,
) -> tuple[Sessions, np.ndarray]:
    """Turn prefix/target cases into sessions plus the mask of events to count.

    Prefix items unseen in training are dropped (as the next-event protocol does); a case whose
    target is unseen, or whose prefix becomes empty, is skipped: the number kept is the second
    return's sum. Timestamps are positions unless `times` (one per case, the target's) is given.
    """
    index = {str(item): j for j, item in enumerate(item_ids)}
    items: list[int] = []
    stamps: list[float] = []
    offsets = [0]
    counted: list[bool] = []
    for case, (prefix, target) in enumerate(zip(prefixes, targets, strict=True)):
        known = [index[i] for i in prefix if i in index]
        if target not in index or not known:
            continue
        sequence = [*known, index[target]]
        base = float(times[case]) if times is not None else 0.0
        items.extend(sequence)
        stamps.extend(base - len(sequence) + 1 + np.arange(len(sequence)))
        counted.extend([False] * len(known) + [True])
        offsets.append(len(items))
    sessions = Sessions(
        item_ids=np.asarray(item_ids, dtype=object),
        session_ids=np.array([str(i) for i in range(len(offsets) - 1)], dtype=object),
        offsets=np.asarray(offsets, dtype=np.int64),
        items=np.asarray(items, dtype=np.int64),
        times=np.asarray(stamps, dtype=np.float64),
    )
    return sessions, np.asarray(counted, dtype=bool)
