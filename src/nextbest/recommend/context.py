"""What one recommendation is asked for (`Query`) and everything the stages may read (`Context`).

The serving layer (or offline evaluation) resolves the session's and user's records once and
hands a `Context` to the pipeline; stages read derived facts (the model state with the item
on screen, the cart, the purchases, the interactions for filters) through cached properties,
so each is computed at most once per request and only when a stage needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from nextbest.recommend.affinity import Affinity, ItemFacets
from nextbest.recommend.affinity import decode as decode_affinity
from nextbest.recommend.candidates import Candidates
from nextbest.recommend.items import ItemTable
from nextbest.recommend.rules.filters import Interactions
from nextbest.serving.registry import LoadedModel
from nextbest.serving.state.records import SessionRecord, UserRecord

if TYPE_CHECKING:
    from nextbest.recommend.rules.purchase_rules import AfterPurchase, PurchaseRules

PURCHASE, CART, REMOVE = "purchase", "cart", "remove-from-cart"


@dataclass(frozen=True)
class Query:
    """A request for `n` items on a placement (`item_id`: the item on screen)."""

    n: int = 10
    placement: str = "home"
    session_id: str | None = None
    user_id: str | None = None
    item_id: str | None = None
    candidates: tuple[str, ...] = ()  # the caller's items to re-rank (the search placement)
    filter: str | None = None  # a filter expression for this request only
    filter_params: Mapping[str, Any] = field(default_factory=dict)
    now: float | None = None  # the request's clock (the server's when None)
    explain: bool = False  # the learned ranker says which features moved each item
    # a browser key asks: `user_id` is the user its token proved (or None), and a session that
    # belongs to another user is refused (serving.recommend.SessionOfAnotherUser)
    from_browser: bool = False


class LiveCounts(Protocol):
    """Recent popularity and co-visitation (`nextbest.serving.trends.Trends`, or counts from
    training data offline)."""

    def popular(
        self,
        k: int,
        skip: Callable[[str], bool],
        min_count: int = 1,
        unknown_to: LoadedModel | None = None,
    ) -> list[tuple[str, float]]: ...

    def followers(
        self, item_id: str, k: int, skip: Callable[[str], bool]
    ) -> list[tuple[str, float]]: ...

    def count_rows(self, items: ItemTable) -> np.ndarray: ...  # [len(items)] counts per row


@dataclass(eq=False)
class Context:
    query: Query
    model: LoadedModel | None
    items: ItemTable
    record: SessionRecord
    live: LiveCounts
    now: float
    user: UserRecord | None = None
    purchase_rules: PurchaseRules | None = None
    # the catalog's affinity facets (price bands, the discounted share), and the user's
    # profile on demand (a store read: only a stage that needs it pays for it)
    facets: ItemFacets | None = None
    user_affinity_of: Callable[[], Affinity | None] | None = None
    # set by the learned ranker: its features of the candidates (for online learning) and,
    # when the query asks, each item's explanation
    ranked: Any = None
    # a generator's answer for this request by (name, k), for a generator that another one
    # calls too (`Complements` inside `SessionContext`): computed once per request
    generated: dict[tuple[str, int], Candidates] = field(default_factory=dict)
    # the feature store's reader (`read(entity, ids, names)` -> values), for a ranker that
    # reads store features: Redis when serving (twostage/store/online.py), the training
    # events as of the case offline; None: no store
    feature_store: Any = None

    @property
    def n(self) -> int:
        return self.query.n

    @cached_property
    def state(self) -> Any | None:
        """The model's batch state of this session, moved one step by the item on screen
        (a copy: the stored state moves when the view event arrives); None before any event
        and without a user start."""
        model, record = self.model, self.record
        if model is None:
            return None
        personal = record.n_steps > 0 or record.state != model.initial_row
        state = model.codec.join([record.state]) if personal else None
        item_id = self.query.item_id
        column = model.index.get(item_id) if item_id else None
        if column is not None and item_id != record.last_item:
            start = state if state is not None else model.codec.join([model.initial_row])
            state = model.model.step(start, np.array([column]), np.array([record.last_time]))
        return state

    @cached_property
    def session_affinity(self) -> Affinity | None:
        """The session's affinity profile (None before an item event with attributes, and
        for a damaged one: the next event's update rebuilds it)."""
        try:
            profile = decode_affinity(self.record.affinity)
        except ValueError:
            return None
        return None if profile.empty else profile

    @cached_property
    def user_affinity(self) -> Affinity | None:
        """The user's lasting affinity profile (None: anonymous, or nothing known yet)."""
        if self.user_affinity_of is None:
            return None
        profile = self.user_affinity_of()
        return profile if profile is not None and not profile.empty else None

    @cached_property
    def screen_row(self) -> int | None:
        item_id = self.query.item_id
        return self.items.row_of.get(item_id) if item_id else None

    @cached_property
    def last_row(self) -> int | None:
        last = self.record.last_item
        return self.items.row_of.get(last) if last else None

    @cached_property
    def anchor_row(self) -> int | None:
        """The item the list is about: the one on screen, else the session's latest."""
        return self.screen_row if self.screen_row is not None else self.last_row

    @cached_property
    def bought_rows(self) -> np.ndarray:
        bought = set(self.record.bought)
        if self.user is not None:
            bought.update(self.user.bought)
        return self.items.rows(sorted(bought))

    @cached_property
    def cart_rows(self) -> np.ndarray:
        """The session's cart: items added and not removed or bought since, oldest first."""
        cart: dict[str, None] = {}
        for interaction in self.record.recent:
            if interaction.type == CART:
                cart[interaction.item_id] = None
            elif interaction.type in (REMOVE, PURCHASE):
                cart.pop(interaction.item_id, None)
        return self.items.rows(list(cart))

    @cached_property
    def purchases(self) -> list[tuple[int, float]]:
        """(row, time) of the shopper's purchases, this session's and the user's, oldest first."""
        row_of = self.items.row_of
        found: dict[int, float] = {}
        if self.user is not None:
            for item, time in zip(self.user.bought, self.user.bought_at, strict=False):
                if item in row_of:
                    found[row_of[item]] = time
        for interaction in self.record.recent:
            if interaction.type == PURCHASE and interaction.item_id in row_of:
                found[row_of[interaction.item_id]] = interaction.time
        for item in self.record.bought:  # bought earlier than the recent events kept
            if item in row_of:
                found.setdefault(row_of[item], self.record.last_time)
        return sorted(found.items(), key=lambda pair: pair[1])

    @cached_property
    def interactions(self) -> Interactions:
        """The session's recent item events and the user's purchases, for filters."""
        row_of = self.items.row_of
        rows, types, times, in_session = [], [], [], []
        for interaction in self.record.recent:
            row = row_of.get(interaction.item_id)
            if row is not None:
                rows.append(row)
                types.append(interaction.type)
                times.append(interaction.time)
                in_session.append(True)
        if self.user is not None:
            for item, time in zip(self.user.bought, self.user.bought_at, strict=False):
                row = row_of.get(item)
                if row is not None:
                    rows.append(row)
                    types.append(PURCHASE)
                    times.append(time)
                    in_session.append(False)
        if not rows:
            return Interactions.empty()
        return Interactions(
            rows=np.array(rows, dtype=np.int64),
            types=np.array(types, dtype=object),
            times=np.array(times, dtype=np.float64),
            in_session=np.array(in_session, dtype=bool),
        )

    @cached_property
    def hard_banned(self) -> np.ndarray:
        """Rows never shown on any placement: bought, on screen, out of stock."""
        parts = [self.bought_rows, self.items.out_of_stock_rows]
        if self.screen_row is not None:
            parts.append(np.array([self.screen_row], dtype=np.int64))
        return np.unique(np.concatenate(parts))

    @cached_property
    def hard_banned_mask(self) -> np.ndarray:
        """`hard_banned` as a bool per table row. A generator keeps its rows with
        `rows[~ctx.hard_banned_mask[rows]]`: an index per row, where `np.isin` sorts both
        arrays (about 12 us a call, several calls a request)."""
        mask = np.zeros(len(self.items), dtype=bool)
        mask[self.hard_banned] = True
        return mask

    @cached_property
    def skip(self) -> Callable[[str], bool]:
        """Whether an item id is never to be shown (bought, on screen, out of stock): the
        test the live counts' lists take."""
        banned = set(self.record.bought)
        if self.user is not None:
            banned.update(self.user.bought)
        if self.query.item_id:
            banned.add(self.query.item_id)
        row_of, in_stock = self.items.row_of, self.items.in_stock

        def skip(item_id: str) -> bool:
            if item_id in banned:
                return True
            row = row_of.get(item_id)
            return row is not None and not in_stock[row]

        return skip

    @cached_property
    def after_purchase(self) -> AfterPurchase | None:
        """What the shopper's purchases mean now (held and boosted categories)."""
        rules = self.purchase_rules
        if rules is None or not self.purchases:
            return None
        category = self.items.category
        bought = [(str(category[row]), when) for row, when in self.purchases if category[row]]
        return rules.after_purchases(bought, self.now) if bought else None
