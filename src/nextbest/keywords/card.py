"""The keyword card: which three or four keywords to offer a shopper, under what title, and
whether to offer any.

This is the card's first, rule-based version; the learned rankers of issue 13 replace its
ordering once keyword impressions and clicks exist to learn from.

- **Recall**: the meta-paths of `recall.py` from the session's latest item events, the
  user's purchases, and the product on screen (the strongest signal: what the shopper looks
  at now, counted as a cart add).
- **Order**: a learned keyword ranker's score when the version has one (`card_ranker.py`),
  else the paths' combined score.
- **Diversity**: at most `max_per_leaf` keywords about one leaf category (a keyword's leaf:
  the deepest category holding most of its items), and a keyword whose items mostly overlap
  a keyword already on the card (cosine of their q2i rows at least `max_overlap`) is
  skipped, so the card never offers "scarf", "red scarf" and "wool scarf" for one need.
- **Not again**: what the session searched already, or clicked on a card, is left out.
- **Whether to show**: not in a purchase funnel (a cart add or purchase among the session's
  last `funnel_events` events: the shopper knows what they want); with `focus_run`, not
  after that many item events in a row in the leaf on screen; not when the version's show
  model (`show_model.py`) expects no click; and only with at least `min_keywords` keywords
  found.
- **Title**: the scenario that leads this shopper to most of the card's keywords, when it
  leads to two or more ("Treadmills, running shirts and sports watches", or a curated
  scenario's own title); else the top-level category the keywords share most, from c2q
  ("Ideas in Sports"); without one, a plain title.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from nextbest.keywords.graph import QueryGraph, walk
from nextbest.keywords.recall import (
    Keyword,
    RecallConfig,
    keywords_of,
    shopper_weights,
    weighted_path_scores,
)
from nextbest.keywords.show_model import run_in_leaf

PLAIN_TITLE = "Shoppers also searched"
FUNNEL_TYPES = frozenset({"cart", "purchase"})
Page = Literal["product", "home", "cart", "search", "other"]  # where a card may be asked for
PAGES: tuple[str, ...] = get_args(Page)
MIN_SCENE_KEYWORDS = 2  # a scenario titles the card when it leads to this many of its keywords
ON_SCREEN_ACTION = "cart"  # the weight the product on screen counts with


@dataclass(frozen=True)
class CardConfig:
    recall: int = 50  # keywords recalled before diversity
    max_overlap: float = 0.5  # cosine of two keywords' items above which the second is skipped
    min_keywords: int = 2
    funnel_events: int = 3
    max_per_leaf: int = 1  # keywords about one leaf category ("treadmills", "red treadmills")
    focus_run: int = 0  # no card after this many item events in a row in the leaf on screen
    show_on: tuple[str, ...] = PAGES  # the pages a card may show on
    hours: tuple[int, int] = (0, 24)  # the hours of the day (UTC, [start, end)) it may show in

    def __post_init__(self) -> None:
        if not 0 < self.max_overlap <= 1:
            raise ValueError(f"max_overlap must be in (0, 1], not {self.max_overlap!r}")
        if not set(self.show_on) <= set(PAGES):
            unknown = sorted(set(self.show_on) - set(PAGES))
            raise ValueError(f"show_on: unknown page {unknown[0]!r} (pages: {', '.join(PAGES)})")
        start, end = self.hours
        if start == end:
            raise ValueError(
                f"hours: start and end must differ (hours must be [start, end); end < start "
                f"wraps past midnight), not {list(self.hours)!r}"
            )
        if not (0 <= start <= 23 and 1 <= end <= 24):
            raise ValueError(
                f"hours must be [start, end) with 0 <= start <= 23 and 1 <= end <= 24, not "
                f"{list(self.hours)!r}"
            )
        if self.focus_run < 0:
            raise ValueError(f"focus_run must be >= 0 (0: off), not {self.focus_run!r}")
        for name in ("recall", "min_keywords", "funnel_events", "max_per_leaf"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)!r}")


@dataclass(frozen=True)
class KeywordCampaign:
    """A scenario the shop pushes onto the card in a time window (the placements file's
    `[keywords.campaigns.NAME]`): its queries take the card's first `slots` places and its
    title is the card's."""

    name: str
    title: str
    queries: tuple[str, ...]  # normalised
    slots: int = 2
    start: float | None = None  # Unix time; None: no bound
    end: float | None = None

    def active(self, now: float) -> bool:
        return (self.start is None or self.start <= now) and (self.end is None or now < self.end)


CAMPAIGN_PATH = "campaign"  # the `path` of a keyword a campaign put on the card


@dataclass(frozen=True)
class Card:
    show: bool
    reason: str  # why it is shown, or why not
    title: str
    keywords: list[Keyword]


def keyword_card(
    graph: QueryGraph,
    events: Sequence[tuple[str, str, float]],
    now: float,
    n: int = 4,
    item_on_screen: str | None = None,
    earlier: Sequence[tuple[str, str, float]] = (),
    searched: frozenset[str] = frozenset(),
    config: CardConfig | None = None,
    recall_config: RecallConfig | None = None,
    campaigns: Sequence[KeywordCampaign] = (),
    rank: Callable[[list[Keyword]], np.ndarray] | None = None,
    show_check: Callable[[], str | None] | None = None,
    page: str = "product",
) -> Card:
    """The card for a shopper whose session's item events are `events` (item_id, action,
    timestamp; oldest first), who looks at `item_on_screen`, and whose `earlier` events (a
    signed-in user's purchases) count for recall but not as the session's funnel. Queries
    the session `searched` (or clicked on a card) are not offered again. The first of the
    `campaigns` active at `now` leads the card. `rank` (a learned keyword ranker's scores of
    the recalled keywords) orders them before diversity; without it, the recall's score
    does. `show_check` (a show model) says why not to show a card, or None to go on. `page`
    is where the card would show."""
    config = config or CardConfig()
    if page not in config.show_on:
        return Card(False, f"not shown on the {page} page (show_on)", "", [])
    if not _in_hours(now, config.hours):
        start, end = config.hours
        return Card(False, f"outside the card's hours ({start}:00-{end}:00 UTC)", "", [])
    history = [*earlier, *events]
    if item_on_screen is not None:
        history.append((item_on_screen, ON_SCREEN_ACTION, now))
    if any(action in FUNNEL_TYPES for _, action, _ in events[-config.funnel_events :]):
        return Card(False, "in a purchase funnel: the shopper knows what they want", "", [])
    run = _run_in_leaf(graph, events, item_on_screen)
    if config.focus_run and run >= config.focus_run:
        return Card(False, f"{run} item events in a row in the leaf on screen: focused", "", [])
    hide = show_check() if show_check is not None else None
    if hide is not None:
        return Card(False, hide, "", [])
    recall_config = recall_config or RecallConfig()
    campaign = next((c for c in campaigns if c.active(now)), None)
    pushed = _pushed(campaign, n, searched)
    weights = shopper_weights(graph, history, now, recall_config)  # for recall and the title
    scores = weighted_path_scores(graph, weights)
    recalled = keywords_of(graph, scores, config.recall, recall_config, searched)
    recalled = [k for k in recalled if k.query not in {p.query for p in pushed}]
    if rank is not None and recalled:
        learned = rank(recalled)
        order = sorted(range(len(recalled)), key=lambda k: (-learned[k], k))
        recalled = [Keyword(recalled[k].query, float(learned[k]), recalled[k].paths) for k in order]
    chosen = _diverse(graph, pushed, recalled, n, config.max_overlap, config.max_per_leaf)
    if len(chosen) < min(config.min_keywords, n):
        return Card(False, f"{len(chosen)} keyword(s) found: too few to ask", "", chosen)
    if campaign is not None and pushed:
        return Card(True, f"campaign {campaign.name}", campaign.title, chosen)
    title = scenario_title(graph, chosen, weights.categories) or _title(graph, chosen)
    return Card(True, "keywords found for this shopper", title, chosen)


def _in_hours(now: float, hours: tuple[int, int]) -> bool:
    hour = int((now % 86_400.0) // 3_600.0)
    start, end = hours
    return start <= hour < end if start < end else (hour >= start or hour < end)


def _run_in_leaf(
    graph: QueryGraph, events: Sequence[tuple[str, str, float]], on_screen: str | None
) -> int:
    """How many of the session's latest item events in a row are in the leaf on screen (the
    latest event's leaf without one); items the graph does not know end the run."""
    lookups = graph.lookups
    leaves = [
        int(lookups.item_leaf[row]) if (row := lookups.item_of.get(item)) is not None else -1
        for item, _, _ in events
    ]
    screen_row = lookups.item_of.get(on_screen) if on_screen is not None else None
    return run_in_leaf(
        leaves, int(lookups.item_leaf[screen_row]) if screen_row is not None else None
    )


def _pushed(campaign: KeywordCampaign | None, n: int, searched: frozenset[str]) -> list[Keyword]:
    """A campaign's keywords for the card's first places: its first `slots` queries the
    session has not searched yet."""
    if campaign is None:
        return []
    fresh = [q for q in campaign.queries if q not in searched][: min(campaign.slots, n)]
    return [Keyword(q, 1.0, {CAMPAIGN_PATH: 1.0}) for q in fresh]


def _diverse(
    graph: QueryGraph,
    pushed: list[Keyword],
    found: list[Keyword],
    n: int,
    max_overlap: float,
    max_per_leaf: int,
) -> list[Keyword]:
    """`pushed` (a campaign's, kept as they are), then those of `found` that add a leaf and
    items the card does not have yet."""
    lookups, q2i = graph.lookups, graph.q2i
    chosen: list[Keyword] = []
    rows: list[tuple[np.ndarray, np.ndarray, float]] = []  # the chosen keywords' q2i rows
    per_leaf: dict[int, int] = {}
    for keyword in [*pushed, *found]:
        row = lookups.query_of.get(keyword.query, -1)  # a campaign may push an unsearched one
        leaf = int(lookups.query_leaf[row]) if row >= 0 else -1
        mine = (np.zeros(0, np.int32), np.zeros(0), 0.0)
        if row >= 0:
            begin, end = q2i.indptr[row], q2i.indptr[row + 1]
            mine = (q2i.indices[begin:end], q2i.data[begin:end], float(lookups.q2i_norms[row]))
        if keyword not in pushed and (
            (leaf >= 0 and per_leaf.get(leaf, 0) >= max_per_leaf)
            or any(_cosine(mine, other) >= max_overlap for other in rows)
        ):
            continue
        chosen.append(keyword)
        rows.append(mine)
        per_leaf[leaf] = per_leaf.get(leaf, 0) + 1
        if len(chosen) == n:
            break
    return chosen


def _cosine(
    a: tuple[np.ndarray, np.ndarray, float], b: tuple[np.ndarray, np.ndarray, float]
) -> float:
    if a[2] <= 0 or b[2] <= 0:
        return 0.0
    _, in_a, in_b = np.intersect1d(a[0], b[0], assume_unique=True, return_indices=True)
    return float(a[1][in_a] @ b[1][in_b]) / (a[2] * b[2])


def scenario_title(
    graph: QueryGraph, keywords: Sequence[Keyword], categories: dict[int, float]
) -> str | None:
    """The title of the scenario that leads this shopper (by their `categories` weights) to
    most of the card's keywords, when it leads to at least two of them; else None."""
    if not graph.scenarios or not categories:
        return None
    scenes = walk(graph.c2s, categories, len(graph.scenarios))  # [S] the shopper's scenarios
    if not scenes.any():
        return None
    q2s = graph.query_scenarios()
    reach = np.zeros(len(graph.scenarios))  # each scenario's part in leading to the keywords
    reached = np.zeros(len(graph.scenarios), dtype=np.int64)  # ... and to how many of them
    for keyword in keywords:
        row = graph.lookups.query_of[keyword.query]
        begin, end = q2s.indptr[row], q2s.indptr[row + 1]
        found = q2s.indices[begin:end]
        part = scenes[found] * q2s.data[begin:end]
        reach[found] += part
        reached[found] += part > 0
    best = int(np.argmax(reach))
    if reach[best] <= 0 or reached[best] < MIN_SCENE_KEYWORDS:
        return None
    return graph.scenarios[best].title


def _title(graph: QueryGraph, keywords: list[Keyword]) -> str:
    """ "Ideas in X" for the top-level category X holding most of the keywords' c2q mass."""
    lookups = graph.lookups
    if not len(lookups.top_categories):
        return PLAIN_TITLE
    rows = {lookups.query_of[k.query]: 1.0 for k in keywords}
    mass = walk(lookups.q2c, rows, len(graph.categories))[lookups.top_categories]
    if mass.max() <= 0:
        return PLAIN_TITLE
    return f"Ideas in {graph.categories[int(lookups.top_categories[int(np.argmax(mass))])]}"
