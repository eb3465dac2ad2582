"""Popularity baselines: the floor every session model must clear.

* `MostPopular` ranks every item by its number of training events, whatever the session did.
* `CategoryPopular` ranks the items of the category of the session's last item first, by
  popularity: what a shop without a model shows, and the floor for new (cold) items.
* `SessionPopular` ranks the items of the current session first, by how often the session has
  seen them, with global popularity breaking ties (and ranking the rest) — a surprisingly strong
  baseline where people return to what they looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

import numpy as np

from nextbest.data.sessions import Sessions
from nextbest.events.schema import Item
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


@dataclass(frozen=True)
class CatPopConfig:
    level: int = 0  # category levels compared: 0 = the full path, 1 = the first level, ...

    def __post_init__(self) -> None:
        if self.level < 0:
            raise ValueError(f"catpop parameter level={self.level} must be an integer >= 0")


class CategoryPopular(SessionModel[np.ndarray, CatPopConfig]):
    """Popularity within the category of the item the session saw last, then everywhere.

    The best answer that needs no learned model: it reads the catalog's category paths
    (`use_catalog`) and the training counts. An item without training events scores last in
    its category, so it is the floor a cold-start model must clear.
    """

    name = "catpop"
    config_class = CatPopConfig

    def __init__(self, config: CatPopConfig | None = None) -> None:
        super().__init__(config)
        self.popularity: np.ndarray | None = None
        self.categories: np.ndarray | None = None  # [n_items] int64 category code, -1 none
        self.catalog: Mapping[str, Item] | None = None

    def use_catalog(self, items: Mapping[str, Item]) -> None:
        self.catalog = items

    def fit(self, train: Sessions) -> Self:
        if self.catalog is None:
            raise ValueError("catpop needs the catalog: give the items file (--items FILE)")
        self.item_ids = train.item_ids
        self.popularity = _normalised_support(train) * 0.5  # < 1: the category bonus wins
        names: dict[tuple[str, ...], int] = {}
        codes = np.full(train.n_items, -1, dtype=np.int64)
        for j, item_id in enumerate(train.item_ids):
            item = self.catalog.get(str(item_id))
            if item is not None and item.category_path:
                path = item.category_path
                key = path if self.config.level == 0 else path[: self.config.level]
                codes[j] = names.setdefault(key, len(names))
        self.categories = codes
        return self

    def initial_state(self, n: int) -> np.ndarray:
        return np.full(n, -1, dtype=np.int64)  # the last item of each session, -1: none yet

    def step(self, state: np.ndarray, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        return np.asarray(items, dtype=np.int64).copy()

    def select(self, state: np.ndarray, rows: np.ndarray) -> np.ndarray:
        kept: np.ndarray = state[rows]
        return kept

    def score(self, state: np.ndarray) -> np.ndarray:
        if self.popularity is None or self.categories is None:
            raise NotFittedError("CategoryPopular is not fitted")
        current = np.where(state >= 0, self.categories[np.maximum(state, 0)], -1)  # [B]
        same = (self.categories[None, :] == current[:, None]) & (current[:, None] >= 0)
        scores: np.ndarray = self.popularity[None, :] + same.astype(np.float32)  # [B, n_items]
        return scores

    def arrays(self) -> dict[str, np.ndarray]:
        assert self.popularity is not None and self.categories is not None
        return {"popularity": self.popularity, "categories": self.categories}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity = arrays["popularity"]
        self.categories = arrays["categories"]
