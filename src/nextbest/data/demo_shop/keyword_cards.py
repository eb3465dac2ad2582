"""Keyword cards shown to the demo shop's shoppers, and the keywords they clicked.

The keyword rankers learn from a card's impressions and clicks. A shop's own server logs them
(`keywords/cards.py` reads them back); the demo shop plants them here, after the events are
simulated and from a random generator of its own, so the event log is the same with or without
them.

**When a card is shown**: on a share (`P_CARD`) of product views that are not in a purchase
funnel (no cart add or purchase among the session's last 3 events), as the served card does.

**What it shows** (the logging policy): `CARD_SIZE` keywords about distinct leaves, drawn
from what a page can see: the viewed item's leaf, one of its complements, a complement of the
shopper's latest purchase, a sibling under the same parent, a leaf the session browsed
earlier, and a popular leaf. Each leaf gives one of
its queries by how often shoppers type it; the order on the card is random. A random policy
is what lets a ranker learn every keyword's worth, not only the ones an earlier ranker liked.

**What is clicked** (the planted truth): the shopper wants what they browse next in the
session. A keyword about that leaf is clicked with probability `P_WANTED` times the position's
bias, more when it names one of the user's favourite brands (a taste the page cannot see but a
user's history shows). A shopper who bought a durable in the last 21 days still needs its
complements (the simulator's own rule, `intents.py`): a keyword about one gets `P_NEEDED`. A
keyword about a leaf under the wanted leaf's parent gets `P_NEAR`, any other `P_OTHER`. At
most one keyword per card is clicked: the shopper reads from the first. How sure the shopper
is of what they want scales it all: one whose last three item events keep to one leaf clicks
0.4 times as often, one whose last four span three leaves or more 1.6 times (the premise of
asking at all: a question helps the undecided). So what matters is in
the history, with its action types and ages: the leaf browsed just now, a purchase weeks ago
(a view of the same item would mean nothing), the brands of earlier visits.
"""

from __future__ import annotations

import numpy as np

from nextbest.data.demo_shop.behaviour import CART, PURCHASE, VIEW
from nextbest.data.demo_shop.catalog import KINDS, Catalog
from nextbest.data.demo_shop.intents import AFTER_DURABLE
from nextbest.data.demo_shop.picks import pick_query
from nextbest.data.demo_shop.population import Users
from nextbest.data.demo_shop.queries import Vocabulary
from nextbest.data.demo_shop.sampling import IntArray, sample_weighted

CARD_SEED = 0x4B57  # the cards' generator is seeded with (config.seed, CARD_SEED)
P_CARD = 0.12  # share of eligible product views that show a card
CARD_SIZE = 4
FUNNEL_WINDOW = 3  # no card when a cart add or purchase is among the session's last 3 events
POSITION_BIAS = np.array([1.0, 0.8, 0.65, 0.55])
P_WANTED = 0.5  # click probability of the wanted leaf's keyword in the first position
FAVOURITE_BRAND_BOOST = 1.6  # ... when the keyword names one of the user's favourite brands
P_NEEDED = 0.3  # a complement of a durable bought within AFTER_DURABLE
P_NEAR = 0.06  # a keyword about a leaf under the wanted leaf's parent
P_OTHER = 0.015  # any other keyword
# How sure the shopper is of what they want scales every click chance of a card: one who
# keeps to one leaf (the last FOCUS_RUN item events all of it) rarely takes a suggestion; one
# who wanders (WANDER_LEAVES distinct leaves among the last INTENT_WINDOW) looks for one.
INTENT_WINDOW = 4
FOCUS_RUN = 3
WANDER_LEAVES = 3
FOCUSED_FACTOR = 0.4
WANDERING_FACTOR = 1.6


def plant_cards(
    catalog: Catalog,
    vocabulary: Vocabulary,
    users: Users,
    offsets: IntArray,
    owner: IntArray,
    types: IntArray,
    items: IntArray,
    times: np.ndarray,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray, IntArray]:
    """(event [K], query [K, CARD_SIZE], clicked [K]) of the planted cards.

    `offsets` [S + 1] bound each session's events in `types`, `items` and `times` (the
    simulator's arrays, a session's events contiguous and in order; -1 items for searches);
    `owner` [S] is the user of each session (-1 anonymous). `event` is the position of the
    product view that showed the card, `query` indexes `vocabulary.texts` in card order, and
    `clicked` is the position clicked (-1: none)."""
    n_events = len(types)
    session = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    first = offsets[session]  # [E] the first position of each event's session
    position = np.arange(n_events) - first
    leaf = np.where(items >= 0, catalog.item_leaf[np.maximum(items, 0)], -1)
    in_funnel = np.zeros(n_events, dtype=bool)
    for back in range(FUNNEL_WINDOW):  # this event and the two before it in the session
        valid = position >= back
        before = types[np.where(valid, np.arange(n_events) - back, 0)]
        in_funnel |= valid & ((before == CART) | (before == PURCHASE))
    eligible = (types == VIEW) & (items >= 0) & ~in_funnel
    shown = np.flatnonzero(eligible & (rng.random(n_events) < P_CARD))
    wanted = _next_leaf(leaf, session, shown)
    earlier = _earlier_other_leaf(leaf, first, shown)
    # a shopper is a user across sessions, an anonymous visitor within one
    shopper = np.where(owner[session] >= 0, owner[session], len(users.price_level) + session)
    bought = (types == PURCHASE) & (items >= 0)
    latest = _latest_before(shopper, times, bought, shown, np.inf)
    durable = bought & (catalog.leaf_kind[np.maximum(leaf, 0)] == KINDS.index("durable"))
    recent_durable = _latest_before(shopper, times, durable, shown, AFTER_DURABLE)
    queries = _card_queries(
        catalog, vocabulary, leaf[shown], earlier, _leaf_or_none(leaf, latest), rng
    )
    needed = np.where(
        (recent_durable >= 0)[:, None],
        catalog.complements[np.maximum(_leaf_or_none(leaf, recent_durable), 0)],
        -1,
    )
    user = owner[session[shown]]
    sureness = _intent_factor(leaf, first, shown)
    clicked = _clicks(catalog, vocabulary, users, queries, wanted, needed, user, sureness, rng)
    return shown, queries, clicked


def _intent_factor(leaf: IntArray, first: IntArray, at: IntArray) -> np.ndarray:
    """[K] FOCUSED_FACTOR where the session's latest FOCUS_RUN item events up to each event
    `at` are all of one leaf, WANDERING_FACTOR where its latest INTENT_WINDOW hold
    WANDER_LEAVES distinct leaves or more, else 1."""
    factor = np.ones(len(at))
    for k, e in enumerate(at.tolist()):  # a card's session is short: walk back through it
        latest: list[int] = []
        for back in range(e, int(first[e]) - 1, -1):
            if leaf[back] >= 0:
                latest.append(int(leaf[back]))
                if len(latest) == INTENT_WINDOW:
                    break
        if len(latest) >= FOCUS_RUN and len(set(latest[:FOCUS_RUN])) == 1:
            factor[k] = FOCUSED_FACTOR
        elif len(set(latest)) >= WANDER_LEAVES:
            factor[k] = WANDERING_FACTOR
    return factor


def _leaf_or_none(leaf: IntArray, events: IntArray) -> IntArray:
    return np.where(events >= 0, leaf[np.maximum(events, 0)], -1)


def _latest_before(
    shopper: IntArray, times: np.ndarray, mask: np.ndarray, at: IntArray, window: float
) -> IntArray:
    """[K] the shopper's latest event of `mask` before each event `at` and no more than
    `window` seconds earlier (-1 if none)."""
    chosen = np.flatnonzero(mask)
    order = np.lexsort((times[chosen], shopper[chosen]))
    chosen = chosen[order]
    # the last chosen event at or before (shopper, time): shoppers sort first, then times
    keys = np.rec.fromarrays([shopper[chosen], times[chosen]])
    wanted = np.rec.fromarrays([shopper[at], times[at]])
    found = np.searchsorted(keys, wanted, side="left") - 1  # strictly before: not itself
    safe = chosen[np.maximum(found, 0)]
    ok = (found >= 0) & (shopper[safe] == shopper[at]) & (times[at] - times[safe] <= window)
    return np.where(ok, safe, -1)


def _next_leaf(leaf: IntArray, session: IntArray, at: IntArray) -> IntArray:
    """[K] the leaf of the session's next item event after each event `at` (-1 if none)."""
    with_item = np.flatnonzero(leaf >= 0)
    following = np.searchsorted(with_item, at, side="right")
    found = following < len(with_item)
    nxt = with_item[np.minimum(following, len(with_item) - 1)]
    return np.where(found & (session[nxt] == session[at]), leaf[nxt], -1)


def _earlier_other_leaf(leaf: IntArray, first: IntArray, at: IntArray) -> IntArray:
    """[K] the latest leaf of the session before each event `at` unlike the event's own (-1
    if none)."""
    result = np.full(len(at), -1)
    for k, e in enumerate(at.tolist()):  # a card's session is short: walk back through it
        for back in range(e - 1, int(first[e]) - 1, -1):
            if leaf[back] >= 0 and leaf[back] != leaf[e]:
                result[k] = leaf[back]
                break
    return result


def _card_queries(
    catalog: Catalog,
    vocabulary: Vocabulary,
    viewed: IntArray,
    earlier: IntArray,
    bought: IntArray,
    rng: np.random.Generator,
) -> IntArray:
    """[K, CARD_SIZE] one query for each of CARD_SIZE distinct leaves, in a random order."""
    k = len(viewed)
    popular = sample_weighted(catalog.leaf_cum, k, rng)
    complement = _one_of(catalog.complements, catalog.n_complements, viewed, rng)
    sibling = _one_of(catalog.siblings, catalog.n_siblings, viewed, rng)
    after = _one_of(catalog.complements, catalog.n_complements, np.maximum(bought, 0), rng)
    after = np.where(bought >= 0, after, -1)
    spare = sample_weighted(catalog.leaf_cum, k, rng)
    pool = np.stack([viewed, complement, after, sibling, earlier, popular, spare], axis=1)
    pool = np.take_along_axis(pool, _shuffled_middle(pool.shape, rng), axis=1)
    leaves = np.full((k, CARD_SIZE), -1)
    for row in range(k):  # the first CARD_SIZE distinct known leaves of the pool
        distinct = list(dict.fromkeys(x for x in pool[row].tolist() if x >= 0))
        while len(distinct) < CARD_SIZE:  # a small taxonomy: any leaf not on the card yet
            extra = int(sample_weighted(catalog.leaf_cum, 1, rng)[0])
            distinct += [extra] if extra not in distinct else []
        leaves[row] = distinct[:CARD_SIZE]
    leaves = np.take_along_axis(leaves, rng.random(leaves.shape).argsort(axis=1), axis=1)
    return pick_query(vocabulary, leaves.ravel(), rng).reshape(k, CARD_SIZE)


def _shuffled_middle(shape: tuple[int, int], rng: np.random.Generator) -> IntArray:
    """Column orders that keep the viewed leaf first and shuffle the rest, so that which of
    the related leaves make the card's CARD_SIZE is random."""
    rest = rng.random((shape[0], shape[1] - 1)).argsort(axis=1) + 1
    return np.concatenate([np.zeros((shape[0], 1), dtype=np.int64), rest], axis=1)


def _one_of(
    table: IntArray, counts: IntArray, leaves: IntArray, rng: np.random.Generator
) -> IntArray:
    """[K] one entry of each leaf's padded row of `table` (-1 where the row is empty)."""
    n = counts[leaves]
    pick = (rng.random(len(leaves)) * np.maximum(n, 1)).astype(np.int64)
    return np.where(n > 0, table[leaves, np.minimum(pick, table.shape[1] - 1)], -1)


def _clicks(
    catalog: Catalog,
    vocabulary: Vocabulary,
    users: Users,
    queries: IntArray,
    wanted: IntArray,
    needed: IntArray,
    user: IntArray,
    sureness: np.ndarray,
    rng: np.random.Generator,
) -> IntArray:
    """[K] the position clicked on each card (-1: none), by the planted truth; `needed`
    [K, C] are the complements still needed (-1 padded), `sureness` [K] scales each card's
    chances by the shopper's intent."""
    leaf = vocabulary.leaf[queries]  # [K, CARD_SIZE]
    parent = _parents(catalog)
    want = wanted[:, None]
    near = (want >= 0) & (parent[leaf] == parent[np.maximum(want, 0)]) & (leaf != want)
    need = (leaf[:, :, None] == needed[:, None, :]).any(axis=2) & (leaf != want)
    p = np.where(leaf == want, P_WANTED, np.where(need, P_NEEDED, np.where(near, P_NEAR, P_OTHER)))
    favourite = np.where(
        (user >= 0)[:, None, None], users.favourite_brands[np.maximum(user, 0)][:, None, :], -2
    )  # [K, 1, 2]
    names_favourite = (vocabulary.brand[queries][:, :, None] == favourite).any(axis=2)
    p = np.where((leaf == want) & names_favourite, p * FAVOURITE_BRAND_BOOST, p)
    p = np.minimum(p * POSITION_BIAS[None, : queries.shape[1]] * sureness[:, None], 1.0)
    hit = rng.random(p.shape) < p
    return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)


def _parents(catalog: Catalog) -> IntArray:
    """[L] an index of each leaf's parent category."""
    names: dict[tuple[str, str], int] = {}
    return np.array([names.setdefault((leaf.top, leaf.mid), len(names)) for leaf in catalog.leaves])
