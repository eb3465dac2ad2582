"""Candidate generation offline: walk sessions with several fitted models, merge their top-k.

Every case of the next-event protocol (a session after its first t events, t >= 1) gets each
generator's top-k items with their scores and ranks; the union is the case's candidate set.
Cases are numbered in (session, position) order, so the lists of different generators line up.

A generator proposes only items it has evidence for: items without a training event in its
own training data are never proposed (a GRU's untrained rows score at random), and the kNN
family and co-visitation propose only items with a positive score (the rest tie at zero).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nextbest.data.sessions import Sessions
from nextbest.models.base import SessionModel

POSITIVE_ONLY = ("covisit", "sknn", "vsknn", "stan", "vstan", "spop")


@dataclass(frozen=True)
class Cases:
    """The cases of a walk: case c predicts event `target[c]` of `sessions` (an event index),
    having seen the events of its session before it."""

    sessions: Sessions
    target: np.ndarray  # [n_cases] event index of the item to predict

    @property
    def n_cases(self) -> int:
        return len(self.target)

    @property
    def session(self) -> np.ndarray:
        """[n_cases] the session index of each case."""
        found: np.ndarray = np.searchsorted(self.sessions.offsets, self.target, side="right")
        return found - 1

    @property
    def target_item(self) -> np.ndarray:
        found: np.ndarray = self.sessions.items[self.target]
        return found

    @property
    def position(self) -> np.ndarray:
        """[n_cases] events seen before the case (1 = after the session's first)."""
        found: np.ndarray = self.target - self.sessions.offsets[self.session]
        return found

    @property
    def moment(self) -> np.ndarray:
        """[n_cases] the time of the case: that of the last event seen."""
        found: np.ndarray = self.sessions.times[self.target - 1]
        return found

    @classmethod
    def of(cls, sessions: Sessions, count: np.ndarray | None = None) -> Cases:
        """Every event after its session's first (or those marked in `count`)."""
        if count is None:
            count = np.ones(sessions.n_events, dtype=bool)
            count[sessions.offsets[:-1]] = False
        return cls(sessions, np.flatnonzero(count).astype(np.int64))


@dataclass(frozen=True)
class Proposals:
    """One generator's top-k per case: `items` [n_cases, k] (-1: nothing proposed there) and
    their `scores`, best first."""

    name: str
    items: np.ndarray
    scores: np.ndarray


def propose(
    model: SessionModel[Any, Any],
    cases: Cases,
    k: int,
    name: str | None = None,
    support: np.ndarray | None = None,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> Proposals:
    """Walk the cases' sessions with `model` and keep its top-`k` at every case.

    `support` [n_items]: training events per item of the data `model` was fitted on; items
    with none are never proposed.
    """
    sessions = cases.sessions
    if model.n_items != sessions.n_items:
        raise ValueError("the cases must be coded in the model's item vocabulary")
    k = min(k, sessions.n_items)
    top_items = np.full((cases.n_cases, k), -1, dtype=np.int64)
    top_scores = np.full((cases.n_cases, k), np.nan, dtype=np.float32)
    case_of_event = np.full(sessions.n_events, -1, dtype=np.int64)
    case_of_event[cases.target] = np.arange(cases.n_cases)
    unknown = torch.from_numpy(support == 0) if support is not None else None
    positive_only = model.name in POSITIVE_ONLY
    lengths = sessions.lengths
    wanted_sessions = np.unique(cases.session)
    order = wanted_sessions[np.argsort(-lengths[wanted_sessions], kind="stable")]
    for first in range(0, len(order), batch_size):
        block = order[first : first + batch_size]
        starts, block_lengths = sessions.offsets[block], lengths[block]
        state = model.initial_state(len(block))
        size = len(block)
        for t in range(int(block_lengths.max()) - 1):
            running = int(np.searchsorted(-block_lengths, -(t + 2), side="right"))
            if running < size:
                state = model.select(state, np.arange(running))
                size = running
            here = starts[:size] + t
            state = model.step(state, sessions.items[here], sessions.times[here])
            at = case_of_event[here + 1]
            wanted = np.flatnonzero(at >= 0)
            if not len(wanted):
                continue
            scored = state if len(wanted) == size else model.select(state, wanted)
            scores = torch.from_numpy(np.require(model.score(scored), np.float32, ["C", "W"]))
            if unknown is not None:
                scores[:, unknown] = -torch.inf
            values, top = torch.topk(scores, k, dim=1)
            values_np, top_np = values.numpy(), top.numpy()
            dead = ~np.isfinite(values_np)
            if positive_only:
                dead |= values_np <= 0
            top_np = np.where(dead, -1, top_np)
            top_items[at[wanted]] = top_np
            top_scores[at[wanted]] = np.where(dead, np.nan, values_np)
        if progress is not None:
            progress(len(block))
    return Proposals(name or model.name, top_items, top_scores)


@dataclass(frozen=True)
class Merged:
    """The union of several generators' proposals, one row per (case, item), cases in order.

    `rank[:, g]` / `score[:, g]`: the item's rank (1 = first) and score in generator g's list
    (NaN where g did not propose it)."""

    case: np.ndarray  # [N]
    item: np.ndarray  # [N]
    rank: np.ndarray  # [N, G] float32
    score: np.ndarray  # [N, G] float32
    names: tuple[str, ...]  # [G]


def merge_proposals(proposals: Sequence[Proposals]) -> Merged:
    """Every (case, item) any generator proposed, with every generator's rank and score."""
    if not proposals:
        raise ValueError("merge_proposals needs at least one generator")
    n_cases = proposals[0].items.shape[0]
    cases, items, gens, ranks, scores = [], [], [], [], []
    for g, part in enumerate(proposals):
        if part.items.shape[0] != n_cases:
            raise ValueError(
                f"generator {part.name} walked {part.items.shape[0]} cases, not {n_cases}"
            )
        valid = part.items >= 0
        c, r = np.nonzero(valid)
        cases.append(c)
        items.append(part.items[c, r])
        gens.append(np.full(len(c), g, np.int64))
        ranks.append(r.astype(np.float32) + 1)
        scores.append(part.scores[c, r])
    case = np.concatenate(cases)
    item = np.concatenate(items)
    gen = np.concatenate(gens)
    n_items = int(item.max()) + 1 if len(item) else 1
    key = case * n_items + item
    unique, inverse = np.unique(key, return_inverse=True)
    G = len(proposals)
    rank = np.full((len(unique), G), np.nan, np.float32)
    score = np.full((len(unique), G), np.nan, np.float32)
    rank[inverse, gen] = np.concatenate(ranks)
    score[inverse, gen] = np.concatenate(scores)
    return Merged(
        case=(unique // n_items).astype(np.int64),
        item=(unique % n_items).astype(np.int64),
        rank=rank,
        score=score,
        names=tuple(p.name for p in proposals),
    )
