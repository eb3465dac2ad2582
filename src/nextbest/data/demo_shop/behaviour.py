"""Simulate the planned sessions, one step (one event) at a time across all active sessions.

Per step every active session picks an event type from its state (searching, browsing, with a
cart), then an item or query, and the shared state moves on. Sessions run in waves (every
user's k-th session together, see `population.py`), so a purchase updates the buyer's
state before their next session starts: a bought durable blocks its leaf and points to its
complements, a bought consumable comes due again after its cycle. What a user compared goes
on to their next visit too (`research.py`).

The Python loop runs over steps, never over events: a step is a few dozen array operations on
the sessions still active, so cost grows with the number of events, not sessions x length.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from nextbest.data.demo_shop.catalog import KINDS, Catalog
from nextbest.data.demo_shop.config import DemoShopConfig
from nextbest.data.demo_shop.front_page import FrontPage, build_front_page, pick_teaser
from nextbest.data.demo_shop.intents import (
    DURABLE_BLOCK,
    REBUY_FROM,
    SATED,
    SEARCH_MOVES,
    VIEW_MOVES,
    UserState,
    drift,
    seasonal_intents,
    start_intents,
    unblocked,
)
from nextbest.data.demo_shop.picks import (
    NO_BRAND,
    pick_in_leaf,
    pick_query,
    pick_related,
    pick_result,
)
from nextbest.data.demo_shop.population import PRICE_LEVEL_SIGMA, SessionPlan, Users
from nextbest.data.demo_shop.queries import Vocabulary
from nextbest.data.demo_shop.research import P_CART_COMPARED, Research, compared_last, reopen
from nextbest.data.demo_shop.sampling import BoolArray, FloatArray, IntArray

TYPES = ("view", "click", "cart", "remove-from-cart", "purchase", "search")
VIEW, CLICK, CART, REMOVE, PURCHASE, SEARCH = range(6)
# Where a view or click came from; "recently-viewed" reopens an item compared on a past visit.
PLACEMENTS = ("home", "category", "product", "search", "recently-viewed")
HOME, CATEGORY, PRODUCT, SEARCH_RESULTS, RECENT = range(5)
TIME_FACTOR = np.array([1.0, 0.4, 0.5, 0.5, 1.0, 0.6])  # of the planned pause, by type (<= 1)

P_FIRST_SEARCH = 0.18  # a session opens with a search
P_SEARCH = 0.05  # a later step is a new search
P_MORE_CLICKS = 0.35  # after a result click, another result of the same search
P_CART, P_CART_REBUY = 0.09, 0.7  # put the item just seen into the cart
SATED_CART = 0.15  # ... scaled by this in a leaf the user bought in lately
P_PURCHASE, P_PURCHASE_REBUY = 0.28, 0.7  # buy what is in the cart
P_REMOVE = 0.05  # take it out again
P_RELATED = 0.5  # staying in the leaf, follow the "similar items" strip
P_REBUY_SAME_ITEM = 0.8  # a rebuy session opens on the item bought last time
DURABLE, CONSUMABLE = KINDS.index("durable"), KINDS.index("consumable")


@dataclass(frozen=True)
class EventArrays:
    """One entry per event, at the positions `SessionPlan.offsets` gives."""

    type: IntArray  # [E] index into TYPES
    item: IntArray  # [E] -1 for searches
    query: IntArray  # [E] index into Vocabulary.texts, -1 unless search or result click
    time: FloatArray  # [E] seconds since the period start
    value: FloatArray  # [E] price paid (purchase), price (cart), NaN otherwise
    placement: IntArray  # [E] index into PLACEMENTS, -1 if none


@dataclass(frozen=True)
class _Shop:
    """What every step reads, and the state that flows from a user's session to the next."""

    catalog: Catalog
    vocabulary: Vocabulary
    plan: SessionPlan
    config: DemoShopConfig
    front: FrontPage
    state: UserState
    research: Research
    out: EventArrays


@dataclass
class _Active:
    """The state of the sessions of one wave that are still running; all arrays are [n]."""

    session: IntArray
    row: IntArray  # user index, or n_users for the anonymous
    length: IntArray
    t: FloatArray
    leaf: IntArray  # current intent
    home: IntArray  # first intent
    last: IntArray  # last item, -1 before the first
    cart: IntArray  # item in the cart, -1 if empty
    query: IntArray  # the search whose results are open, -1 if none
    prev: IntArray  # previous event type, -1 before the first
    session_block: IntArray  # leaf of a durable bought in this session, -1 if none
    jump: BoolArray  # a durable was just bought: go to a complement
    rebuy: IntArray  # consumable this session came to rebuy, -1 if none
    price_level: FloatArray
    favourites: IntArray  # [n, 3] favourite leaves, -1 for the anonymous
    favourite_brands: IntArray  # [n, 2] favourite brands, NO_BRAND for the anonymous
    research: IntArray  # leaf whose items go to the user's compared list, -1 if none
    compared: IntArray  # [n, C] items compared on earlier visits, -1 padded

    def keep(self, mask: BoolArray) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name)[mask])


def simulate(
    catalog: Catalog,
    vocabulary: Vocabulary,
    users: Users,
    plan: SessionPlan,
    config: DemoShopConfig,
    rng: np.random.Generator,
) -> EventArrays:
    n_events = int(plan.offsets[-1])
    out = EventArrays(
        type=np.zeros(n_events, dtype=np.int64),
        item=np.full(n_events, -1, dtype=np.int64),
        query=np.full(n_events, -1, dtype=np.int64),
        time=np.zeros(n_events),
        value=np.full(n_events, np.nan),
        placement=np.full(n_events, -1, dtype=np.int64),
    )
    n_users = len(users.price_level)
    shop = _Shop(
        catalog=catalog,
        vocabulary=vocabulary,
        plan=plan,
        config=config,
        front=build_front_page(catalog, config.days, rng),
        state=UserState.empty(n_users, catalog.n_leaves),
        research=Research.empty(n_users),
        out=out,
    )
    order = np.argsort(plan.wave, kind="stable")
    bounds = np.searchsorted(plan.wave[order], np.arange(int(plan.wave.max()) + 2))
    for wave in range(len(bounds) - 1):
        active = _start(order[bounds[wave] : bounds[wave + 1]], users, shop, rng)
        for k in range(int(active.length.max())):
            if k:
                active.keep(active.length > k)
            _step(k, active, shop, rng)
    return out


def _start(sessions: IntArray, users: Users, shop: _Shop, rng: np.random.Generator) -> _Active:
    plan, catalog = shop.plan, shop.catalog
    n, n_users = len(sessions), len(users.price_level)
    owner = plan.owner[sessions]
    known = owner >= 0
    safe = np.maximum(owner, 0)
    row = np.where(known, owner, n_users)
    favourites = np.where(known[:, None], users.favourite_leaves[safe], -1)
    t = plan.start[sessions].copy()
    back = shop.research.goes_back(catalog, row, t, shop.config.research_share, rng)
    leaf, rebuy = start_intents(catalog, shop.state, row, favourites, back, t, rng)
    if shop.config.season_share > 0:  # no draw without a season: the default log stays as is
        leaf = seasonal_intents(catalog, shop.state, shop.config, row, leaf, back, rebuy, t, rng)
    # Going back continues the compared list; any other visit starts a new one.
    journey = (back >= 0) & (leaf == back)
    fresh = known & ~journey
    shop.research.begin(row[fresh], leaf[fresh], t[fresh])
    price_level = np.where(known, users.price_level[safe], rng.normal(0, PRICE_LEVEL_SIGMA, n))
    return _Active(
        session=sessions,
        row=row,
        length=plan.length[sessions],
        t=t,
        leaf=leaf,
        home=leaf.copy(),
        last=np.full(n, -1),
        cart=np.full(n, -1),
        query=np.full(n, -1),
        prev=np.full(n, -1),
        session_block=np.full(n, -1),
        jump=np.zeros(n, dtype=bool),
        rebuy=rebuy,
        price_level=price_level,
        favourites=favourites,
        favourite_brands=np.where(known[:, None], users.favourite_brands[safe], NO_BRAND),
        research=np.where(known, leaf, -1),
        compared=np.where(journey[:, None], shop.research.items[row], -1),
    )


def _event_types(k: int, s: _Active, shop: _Shop, rng: np.random.Generator) -> IntArray:
    """[n] the type of each session's next event, from what it is doing."""
    catalog, state = shop.catalog, shop.state
    n = len(s.session)
    if k == 0:
        opens_search = (rng.random(n) < P_FIRST_SEARCH) & (s.rebuy < 0)
        return np.where(opens_search, SEARCH, VIEW)
    rebuying = s.rebuy >= 0
    has_cart = s.cart >= 0
    # Cart the item just seen: if in stock, and not the one just carted or bought.
    last = np.maximum(s.last, 0)
    can_cart = (~has_cart) & (s.last >= 0) & (s.prev != CART) & (s.prev != PURCHASE)
    can_cart &= catalog.item_in_stock[last] & (catalog.item_leaf[last] != s.session_block)
    sated = state.sated_until[s.row, catalog.item_leaf[last]] > s.t
    # A second look at a compared item is more often the one that gets bought.
    p_look = np.where(compared_last(s.compared, s.last), P_CART_COMPARED, P_CART)
    p_cart = np.where(rebuying, P_CART_REBUY, np.where(sated, SATED_CART * p_look, p_look))
    p = np.stack(
        [
            np.where(has_cart, np.where(rebuying, P_PURCHASE_REBUY, P_PURCHASE), 0.0),
            np.where(has_cart, P_REMOVE, 0.0),
            np.where(can_cart, p_cart, 0.0),
            np.where((s.prev == CLICK) & (s.query >= 0), P_MORE_CLICKS, 0.0),
            np.full(n, P_SEARCH),
        ],
        axis=1,
    )  # [n, 5]
    choice = (rng.random(n)[:, None] >= np.cumsum(p, axis=1)).sum(axis=1)  # [n] 0..5
    kind = np.array([PURCHASE, REMOVE, CART, CLICK, SEARCH, VIEW])[choice]
    return np.where(s.prev == SEARCH, CLICK, kind)


def _step(k: int, s: _Active, shop: _Shop, rng: np.random.Generator) -> None:
    """Emit event k of every active session and move their state on."""
    catalog, state, out = shop.catalog, shop.state, shop.out
    n = len(s.session)
    kind = _event_types(k, s, shop, rng)
    pos = shop.plan.offsets[s.session] + k  # [n]
    s.t = s.t + shop.plan.gaps[pos] * TIME_FACTOR[kind]
    item, query = np.full(n, -1), np.full(n, -1)
    placement, value = np.full(n, -1), np.full(n, np.nan)
    teaser = np.zeros(n, dtype=bool)  # a home-page teaser leaves the intent where it was

    if (m := (kind == CART) | (kind == REMOVE) | (kind == PURCHASE)).any():
        item[m] = np.where(kind[m] == CART, s.last[m], s.cart[m])
        price = catalog.item_price[item[m]]
        paid = price * (1.0 - catalog.item_discount[item[m]])
        value[m] = np.where(kind[m] == PURCHASE, paid, np.where(kind[m] == CART, price, np.nan))
        s.cart[m] = np.where(kind[m] == CART, item[m], -1)
    if (m := kind == PURCHASE).any():
        _bought(np.flatnonzero(m), item[m], s, shop)
    if (m := kind == SEARCH).any():
        leaves = s.leaf[m]
        if k:
            moved = drift(catalog, SEARCH_MOVES, leaves, s.home[m], s.favourites[m], s.jump[m], rng)
            leaves = unblocked(catalog, state, s.row[m], s.t[m], s.session_block[m], moved, rng)
        query[m] = pick_query(shop.vocabulary, leaves, rng)
        s.leaf[m], s.jump[m] = leaves, False
    if (m := kind == CLICK).any():
        query[m] = s.query[m]
        item[m] = pick_result(
            catalog,
            shop.vocabulary,
            s.query[m],
            s.price_level[m],
            s.favourite_brands[m],
            shop.config.brand_loyalty,
            rng,
        )
        placement[m] = SEARCH_RESULTS
    if (m := kind == VIEW).any():
        idx = np.flatnonzero(m)
        if k == 0:
            item[m], placement[m], teaser[m] = _first_view(idx, s, shop, rng)
        else:
            item[m], placement[m] = _view(idx, s, shop, rng)

    has_item = item >= 0
    s.last = np.where(has_item, item, s.last)
    browsed = ((kind == VIEW) | (kind == CLICK)) & ~teaser
    item_leaf = catalog.item_leaf[np.maximum(item, 0)]
    s.leaf = np.where(browsed, item_leaf, s.leaf)
    s.jump &= ~browsed
    s.query = np.where(kind == SEARCH, query, np.where(kind == CLICK, s.query, -1))
    s.prev = kind
    if (m := browsed & (s.research >= 0) & (item_leaf == s.research)).any():
        shop.research.add(s.row[m], item[m], s.t[m])
    out.type[pos], out.item[pos], out.query[pos] = kind, item, query
    out.time[pos], out.value[pos], out.placement[pos] = s.t, value, placement


def _first_view(
    idx: IntArray, s: _Active, shop: _Shop, rng: np.random.Generator
) -> tuple[IntArray, IntArray, BoolArray]:
    """[m] the first items of sessions `idx` that open on a view, [m] where each came from and
    [m] whether it was a home-page teaser rather than the intent."""
    m = len(idx)
    item = pick_in_leaf(
        shop.catalog,
        s.leaf[idx],
        s.last[idx],
        s.price_level[idx],
        s.favourite_brands[idx],
        shop.config.brand_loyalty,
        rng,
    )
    placement = np.full(m, HOME)
    again = (s.rebuy[idx] >= 0) & (rng.random(m) < P_REBUY_SAME_ITEM)
    item = np.where(again, s.rebuy[idx], item)
    # Back for a research: the "recently viewed" strip reopens a compared item.
    compared = reopen(s.compared[idx], s.last[idx], rng)
    recent = (compared >= 0) & (rng.random(m) < shop.config.research_revisit)
    item, placement = np.where(recent, compared, item), np.where(recent, RECENT, placement)
    teaser = (s.rebuy[idx] < 0) & ~recent & (rng.random(m) < shop.config.teaser_share)
    shown = pick_teaser(shop.front, s.t[idx], rng)
    # Nobody opens a teaser for a treadmill they have just bought.
    blocked = shop.state.block_until[s.row[idx], shop.catalog.item_leaf[shown]] > s.t[idx]
    teaser &= ~blocked
    return np.where(teaser, shown, item), placement, teaser


def _view(
    idx: IntArray, s: _Active, shop: _Shop, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """[m] the items viewed by sessions `idx` after their first event, and [m] where each view
    came from."""
    catalog = shop.catalog
    last, brands, level = s.last[idx], s.favourite_brands[idx], s.price_level[idx]
    moved = drift(
        catalog, VIEW_MOVES, s.leaf[idx], s.home[idx], s.favourites[idx], s.jump[idx], rng
    )
    leaves = unblocked(catalog, shop.state, s.row[idx], s.t[idx], s.session_block[idx], moved, rng)
    item = pick_in_leaf(catalog, leaves, last, level, brands, shop.config.brand_loyalty, rng)
    # Staying in the last item's leaf, half the time through its "similar items" strip.
    on_page = (last >= 0) & (catalog.item_leaf[np.maximum(last, 0)] == leaves) & ~s.jump[idx]
    related = on_page & (rng.random(len(idx)) < P_RELATED)
    item[related] = pick_related(catalog, last[related], rng)
    placement = np.where(related, PRODUCT, CATEGORY)
    # In the researched leaf, some views go back to items compared on earlier visits.
    compared = reopen(s.compared[idx], last, rng)
    recent = (compared >= 0) & (leaves == s.research[idx])
    recent &= rng.random(len(idx)) < shop.config.research_revisit
    return np.where(recent, compared, item), np.where(recent, RECENT, placement)


def _bought(idx: IntArray, items: IntArray, s: _Active, shop: _Shop) -> None:
    """Record purchases: a durable blocks its leaf and sends the shopper to complements; a
    consumable starts its repurchase clock; buying in the researched leaf ends the research."""
    catalog, state = shop.catalog, shop.state
    leaves = catalog.item_leaf[items]
    kind = catalog.leaf_kind[leaves]
    rows, t = s.row[idx], s.t[idx]
    known = rows < len(state.durable_leaf) - 1
    durable = kind == DURABLE
    s.session_block[idx[durable]] = leaves[durable]
    s.jump[idx[durable]] = True
    d = durable & known
    state.block_until[rows[d], leaves[d]] = t[d] + DURABLE_BLOCK
    state.durable_leaf[rows[d]], state.durable_time[rows[d]] = leaves[d], t[d]
    c = (kind == CONSUMABLE) & known
    state.consumable_item[rows[c]], state.consumable_time[rows[c]] = items[c], t[c]
    # Bought it, so rarely cart it again soon: a consumable until it comes due.
    r = ~durable & known
    rest = np.where(c, REBUY_FROM * catalog.leaf_cycle[leaves], SATED)
    state.sated_until[rows[r], leaves[r]] = t[r] + rest[r]
    s.rebuy[idx] = -1
    done = known & (leaves == s.research[idx])
    shop.research.close(rows[done])
    s.research[idx[done]] = -1
    s.compared[idx[done]] = -1
