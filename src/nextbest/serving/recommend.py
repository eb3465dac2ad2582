"""From a session's live state to a list of next-best items, within the shop's rules.

    candidates:  the model's ranking from the session's state (one step more for the item on
                 screen, when the request names one); items new since training from live
                 co-visitation with the session's latest item, then live popularity
    filters:     never an item bought in this session or by this user, the item on screen,
                 or an item out of stock
    merge:       the model's best first; new items take at most `fresh_share` of the list
    fill:        live popularity, then the model's prior, then the rest of the catalog, so the
                 list has `n` items whenever that many are eligible

Each item says which source put it there (the model's name, "covisit" or "popularity");
scores compare only within one source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from nextbest.serving.catalog_cache import CatalogCache
from nextbest.serving.live import LiveState, fresh_record
from nextbest.serving.registry import LoadedModel
from nextbest.serving.state.records import SessionRecord
from nextbest.serving.trends import Trends

COVISIT, POPULARITY = "covisit", "popularity"


@dataclass(frozen=True)
class Recommended:
    item_id: str
    score: float
    source: str


@dataclass(frozen=True)
class RecommendConfig:
    fresh_share: float = 0.2  # at most this share of a list goes to items new since training
    fresh_min_count: int = 3  # a new item needs this many recent events to count as popular

    def __post_init__(self) -> None:
        if not 0.0 <= self.fresh_share <= 1.0:
            raise ValueError(f"fresh_share must be in [0, 1], not {self.fresh_share!r}")
        if self.fresh_min_count < 1:
            raise ValueError(f"fresh_min_count must be >= 1, not {self.fresh_min_count!r}")


class Picks:
    """The list being built: no repeats, nothing banned, at most `n`."""

    def __init__(self, n: int, banned: set[str], in_stock: Callable[[str], bool]) -> None:
        self.n, self.banned, self.in_stock = n, banned, in_stock
        self.items: list[Recommended] = []
        self.seen: set[str] = set()

    def skip(self, item_id: str) -> bool:
        return item_id in self.banned or item_id in self.seen or not self.in_stock(item_id)

    def add(self, item_id: str, score: float, source: str) -> None:
        if len(self.items) < self.n and not self.skip(item_id):
            self.items.append(Recommended(item_id, score, source))
            self.seen.add(item_id)

    @property
    def missing(self) -> int:
        return self.n - len(self.items)


class Recommender:
    def __init__(
        self,
        live: LiveState,
        trends: Trends,
        catalog: CatalogCache,
        config: RecommendConfig | None = None,
    ) -> None:
        self.live, self.trends, self.catalog = live, trends, catalog
        self.config = config or RecommendConfig()

    def recommend(
        self,
        model: LoadedModel | None,
        n: int,
        session_id: str | None = None,
        user_id: str | None = None,
        item_id: str | None = None,
    ) -> list[Recommended]:
        """The next-best `n` items for the session now (`item_id`: the item on screen)."""
        record = self.live.session(model, session_id) if session_id else fresh_record(model)
        user_id = record.user_id or user_id  # a session that logged in speaks for its user
        if user_id and model is not None and record.n_events == 0:
            # a returning user's first request of a new session (the home page): the state
            # a session of theirs starts from; an unknown user gets the anonymous start
            record = replace(record, state=self.live.user_start(model, user_id))
        banned = set(record.bought)
        if user_id:
            banned.update(self.live.user(user_id).bought)
        if item_id:
            banned.add(item_id)
        picks = Picks(n, banned, self.catalog.in_stock)
        ranked = self._model_ranking(model, record, item_id, n, banned)
        last_item = item_id or record.last_item
        fresh = self._fresh(model, last_item, n, picks) if ranked or last_item else []
        for column_item, score in ranked[: max(0, n - len(fresh))]:
            picks.add(column_item, score, model.name if model else POPULARITY)
        for new_item, score, source in fresh:
            picks.add(new_item, score, source)
        for column_item, score in ranked:  # fresh ones may have been fewer than their slots
            picks.add(column_item, score, model.name if model else POPULARITY)
        self._fill(model, picks)
        return picks.items

    def similar(self, model: LoadedModel | None, item_id: str, n: int) -> list[Recommended]:
        """Items to show beside `item_id`: what comes next after a session of just that item."""
        return self.recommend(model, n, item_id=item_id)

    def _model_ranking(
        self,
        model: LoadedModel | None,
        record: SessionRecord,
        item_id: str | None,
        n: int,
        banned: set[str],
    ) -> list[tuple[str, float]]:
        if model is None:
            return []
        personal = record.n_steps > 0 or record.state != model.initial_row
        state = model.codec.join([record.state]) if personal else None
        column = model.index.get(item_id) if item_id else None
        if column is not None and item_id != record.last_item:
            # the item on screen moves a copy of the state one step; the stored state moves
            # only when its view event arrives
            start = state if state is not None else model.codec.join([model.initial_row])
            state = model.model.step(start, np.array([column]), np.array([record.last_time]))
        if state is None:
            return []  # a session without events: popularity fills the list
        columns = [model.index[i] for i in banned if i in model.index]
        ban = np.concatenate([self.catalog.banned_columns(model), np.array(columns, np.int64)])
        top, values = model.score.top(state, n, ban)
        item_ids = model.model.item_ids
        assert item_ids is not None
        return [(str(item_ids[c]), float(v)) for c, v in zip(top, values, strict=True)]

    def _fresh(
        self, model: LoadedModel | None, last_item: str | None, n: int, picks: Picks
    ) -> list[tuple[str, float, str]]:
        """Items the model does not know: after the latest item, then popular ones."""
        slots = n if model is None else round(n * self.config.fresh_share)
        if slots <= 0:
            return []
        known = model.index if model is not None else {}
        last_is_new = last_item is not None and last_item not in known

        def skip(item: str) -> bool:  # after a known item, only new items are "fresh"
            return picks.skip(item) or (item in known and not last_is_new)

        found = [
            (item, score, COVISIT)
            for item, score in (self.trends.followers(last_item, slots, skip) if last_item else [])
        ]
        taken = {item for item, _, _ in found}
        if len(found) < slots and model is not None:
            popular = self.trends.popular(
                slots,
                lambda item: picks.skip(item) or item in taken,
                self.config.fresh_min_count,
                unknown_to=model,
            )
            found += [(item, score, POPULARITY) for item, score in popular[: slots - len(found)]]
        return found

    def _fill(self, model: LoadedModel | None, picks: Picks) -> None:
        """Complete the list: live popularity, the model's prior, then the rest of the catalog."""
        if picks.missing:
            for item, score in self.trends.popular(picks.missing, picks.skip):
                picks.add(item, score, POPULARITY)
        if picks.missing and model is not None:
            prior = model.codec.join([model.initial_row])
            columns = [model.index[i] for i in picks.banned | picks.seen if i in model.index]
            ban = np.concatenate([self.catalog.banned_columns(model), np.array(columns, np.int64)])
            top, values = model.score.top(prior, picks.missing, ban)
            item_ids = model.model.item_ids
            assert item_ids is not None
            for column, value in zip(top, values, strict=True):
                picks.add(str(item_ids[column]), float(value), model.name)
        if picks.missing:
            for item in self.catalog.new_items(model):
                picks.add(item, 0.0, POPULARITY)
                if not picks.missing:
                    break
