"""Popularity baselines: the floor every session model must clear.

* `MostPopular` ranks every item by its number of training events, whatever the session did.
* `SessionPopular` ranks the items of the current session first, by how often the session has
  seen them, with global popularity breaking ties (and ranking the rest) — a surprisingly strong
  baseline where people return to what they looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np

from nextbest.data.sessions import Sessions
from nextbest.models.base import NotFittedError, SessionModel


@dataclass(frozen=True)
class PopConfig:
    pass


@dataclass
class _Counts:
    """Per session of the batch, the count of each item seen so far (dense, [B, n_items])."""

    counts: np.ndarray


def _normalised_support(train: Sessions) -> np.ndarray:
    support = train.item_support().astype(np.float32)
    return support / max(float(support.max()), 1.0)  # [n_items] in [0, 1]


class MostPopular(SessionModel[int, PopConfig]):
    name = "pop"
    config_class = PopConfig

    def __init__(self, config: PopConfig | None = None) -> None:
        super().__init__(config)
        self.popularity: np.ndarray | None = None

    def fit(self, train: Sessions) -> Self:
        self.item_ids = train.item_ids
        self.popularity = _normalised_support(train)
        return self

    def initial_state(self, n: int) -> int:
        return n  # popularity needs nothing but the batch size

    def step(self, state: int, items: np.ndarray, times: np.ndarray) -> int:
        return state

    def select(self, state: int, rows: np.ndarray) -> int:
        return len(rows)

    def score(self, state: int) -> np.ndarray:
        if self.popularity is None:
            raise NotFittedError("MostPopular is not fitted")
        return np.broadcast_to(self.popularity, (state, len(self.popularity)))

    def arrays(self) -> dict[str, np.ndarray]:
        assert self.popularity is not None
        return {"popularity": self.popularity}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity = arrays["popularity"]


@dataclass(frozen=True)
class SPopConfig:
    pass


class SessionPopular(SessionModel[_Counts, SPopConfig]):
    name = "spop"
    config_class = SPopConfig

    def __init__(self, config: SPopConfig | None = None) -> None:
        super().__init__(config)
        self.popularity: np.ndarray | None = None

    def fit(self, train: Sessions) -> Self:
        self.item_ids = train.item_ids
        self.popularity = _normalised_support(train)
        return self

    def initial_state(self, n: int) -> _Counts:
        return _Counts(np.zeros((n, self.n_items), dtype=np.float32))

    def step(self, state: _Counts, items: np.ndarray, times: np.ndarray) -> _Counts:
        counts = state.counts.copy()
        counts[np.arange(len(items)), items] += 1.0
        return _Counts(counts)

    def select(self, state: _Counts, rows: np.ndarray) -> _Counts:
        return _Counts(state.counts[rows])

    def score(self, state: _Counts) -> np.ndarray:
        if self.popularity is None:
            raise NotFittedError("SessionPopular is not fitted")
        # popularity is in [0, 1], so one more in-session view always outranks it
        scores: np.ndarray = state.counts + self.popularity[None, :]
        return scores

    def arrays(self) -> dict[str, np.ndarray]:
        assert self.popularity is not None
        return {"popularity": self.popularity}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity = arrays["popularity"]
