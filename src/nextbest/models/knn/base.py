"""What every session-kNN model shares: the state, step/select, and the scoring loop.

The state of a session is its item list (repeats kept) and the time of its latest event. The
accumulated candidate set of the papers (the union of the sessions of every item seen so far)
is a function of that list, so it is not stored: `score` derives it, already cut to the most
recent `sample_size`, straight from the index (see `index.candidates`). Stepping is therefore
O(length of the session), and neighbours are only searched when scores are asked for.

A model supplies `votes(sequence, now)`: for one session, (items [m], weights [m]) to be
summed per item. Scores are divided by their maximum (the reference implementations do; it does
not change the ranking). Items already in the session stay recommendable.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Self

import numpy as np

from nextbest.data.sessions import Sessions
from nextbest.models.base import ConfigT, NotFittedError, SessionModel
from nextbest.models.knn.index import Candidates, SessionIndex, gather_ranges


@dataclass(frozen=True)
class KnnState:
    items: np.ndarray  # [B, t] int64, the item list of each session so far
    times: np.ndarray  # [B] float64, timestamp of each session's latest event


@dataclass
class Neighbours:
    """The k chosen neighbours of one session and their distinct items, one entry per pair."""

    chosen: np.ndarray  # [k'] indices into the candidates
    similarity: np.ndarray  # [k'] similarity of each chosen neighbour
    items: np.ndarray  # [m] item of each (neighbour, item) entry
    pos: np.ndarray  # [m] 1-based position of that item's last occurrence in the neighbour
    owner: np.ndarray  # [m] which chosen neighbour (index into `chosen`) the entry belongs to


class SessionKNN(SessionModel[KnnState, ConfigT]):
    """Base of the session-kNN models: fit builds a `SessionIndex`; score walks the batch."""

    def __init__(self, config: ConfigT | None = None) -> None:
        super().__init__(config)
        self.index: SessionIndex | None = None

    def fit(self, train: Sessions) -> Self:
        self.item_ids = train.item_ids
        self.index = SessionIndex.build(train)
        return self

    def fitted_index(self) -> SessionIndex:
        if self.index is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() first")
        return self.index

    def initial_state(self, n: int) -> KnnState:
        return KnnState(np.zeros((n, 0), dtype=np.int64), np.zeros(n, dtype=np.float64))

    def step(self, state: KnnState, items: np.ndarray, times: np.ndarray) -> KnnState:
        column = np.asarray(items, dtype=np.int64).reshape(-1, 1)  # [B, 1]
        return KnnState(
            np.concatenate([state.items, column], axis=1), np.asarray(times, dtype=np.float64)
        )

    def select(self, state: KnnState, rows: np.ndarray) -> KnnState:
        return KnnState(state.items[rows], state.times[rows])

    def score(self, state: KnnState) -> np.ndarray:
        self.fitted_index()  # raises NotFittedError before any work
        n_items = self.n_items
        scores = np.zeros((state.items.shape[0], n_items), dtype=np.float32)  # [B, n_items]
        if state.items.shape[1] == 0:
            return scores
        for row, sequence in enumerate(state.items):
            items, weights = self.votes(sequence, float(state.times[row]))
            if not len(items):
                continue
            summed = np.bincount(items, weights=weights, minlength=n_items)  # [n_items] f64
            peak = summed.max()
            if peak > 0:
                scores[row] = summed / peak
        return scores

    @abstractmethod
    def votes(self, sequence: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(items [m], weights [m]) that one session's neighbours add to the item scores."""

    def arrays(self) -> dict[str, np.ndarray]:
        return self.fitted_index().arrays()

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.index = SessionIndex.from_arrays(arrays)


def cosine(
    index: SessionIndex, found: Candidates, weights: np.ndarray, normalise: bool = True
) -> np.ndarray:
    """[S] weighted cosine of the session (distinct-item `weights` [u]) with each candidate.

    Sum of the weights of the shared items / (sqrt(sum of squared weights over the session's
    distinct items) * sqrt(#distinct items of the candidate)); without `normalise`, the raw sum.
    """
    overlap = np.bincount(found.row, weights=weights[found.group], minlength=len(found.sessions))
    if not normalise:
        return overlap
    norm = float(np.sqrt(np.sum(weights * weights)))
    similarity: np.ndarray = overlap / (norm * np.sqrt(index.n_distinct[found.sessions]))
    return similarity


def latest_shared(found: Candidates, values: np.ndarray) -> np.ndarray:
    """[S] per candidate, the maximum of `values` [m] over its entries (0 where it has none)."""
    out = np.zeros(len(found.sessions), dtype=values.dtype)
    np.maximum.at(out, found.row, values)
    return out


def neighbours(
    index: SessionIndex, found: Candidates, chosen: np.ndarray, similarity: np.ndarray
) -> Neighbours:
    """Gather the distinct items of the chosen candidates (one entry per neighbour and item)."""
    entries, owner = gather_ranges(index.session_offsets, found.sessions[chosen])
    return Neighbours(
        chosen=chosen,
        similarity=similarity[chosen],
        items=index.session_items[entries],
        pos=index.session_last_pos[entries],
        owner=owner,
    )


def check_positive_int(name: str, value: int, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")


def check_positive(name: str, value: float | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        allowed = "a number > 0" + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be {allowed}, not {value!r}")


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
