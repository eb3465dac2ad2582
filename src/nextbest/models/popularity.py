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
class _Seen:
    """Per session of the batch, the items seen so far (with repeats)."""

    items: list[np.ndarray]


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


class SessionPopular(SessionModel[_Seen, SPopConfig]):
    name = "spop"
    config_class = SPopConfig

    def __init__(self, config: SPopConfig | None = None) -> None:
        super().__init__(config)
        self.popularity: np.ndarray | None = None

    def fit(self, train: Sessions) -> Self:
        self.item_ids = train.item_ids
        self.popularity = _normalised_support(train)
        return self

    def initial_state(self, n: int) -> _Seen:
        return _Seen([np.zeros(0, dtype=np.int64) for _ in range(n)])

    def step(self, state: _Seen, items: np.ndarray, times: np.ndarray) -> _Seen:
        return _Seen([np.append(seen, item) for seen, item in zip(state.items, items, strict=True)])

    def select(self, state: _Seen, rows: np.ndarray) -> _Seen:
        return _Seen([state.items[int(row)] for row in rows])

    def score(self, state: _Seen) -> np.ndarray:
        if self.popularity is None:
            raise NotFittedError("SessionPopular is not fitted")
        scores = np.tile(self.popularity, (len(state.items), 1))  # [B, n_items]
        rows = np.repeat(np.arange(len(state.items)), [len(seen) for seen in state.items])
        # popularity is in [0, 1], so one more in-session view always outranks it
        np.add.at(scores, (rows, np.concatenate([*state.items, np.zeros(0, np.int64)])), 1.0)
        return scores

    def arrays(self) -> dict[str, np.ndarray]:
        assert self.popularity is not None
        return {"popularity": self.popularity}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity = arrays["popularity"]
