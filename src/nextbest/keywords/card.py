"""The keyword card: which three or four keywords to offer a shopper, under what title, and
whether to offer any.

This is the card's first, rule-based version; the learned rankers of issue 13 replace its
ordering once keyword impressions and clicks exist to learn from.

- **Recall**: the meta-paths of `recall.py` from the session's latest item events, the
  user's purchases, and the product on screen (the strongest signal: what the shopper looks
  at now, counted as a cart add).
- **Order**: the paths' combined score.
- **Diversity**: a keyword whose items mostly overlap a keyword already on the card (cosine
  of their q2i rows at least `max_overlap`) is skipped, so the card never offers "scarf",
  "red scarf" and "wool scarf" for one need.
- **Not again**: what the session searched already, or clicked on a card, is left out.
- **Whether to show**: not in a purchase funnel (a cart add or purchase among the session's
  last `funnel_events` events: the shopper knows what they want), and only with at least
  `min_keywords` keywords found.
- **Title**: the top-level category the card's keywords share most, from c2q ("Ideas in
  Sports"); without one, a plain title.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nextbest.events.schema import CATEGORY_SEPARATOR
from nextbest.keywords.graph import QueryGraph
from nextbest.keywords.recall import Keyword, RecallConfig, recall_keywords

PLAIN_TITLE = "Shoppers also searched"
FUNNEL_TYPES = frozenset({"cart", "purchase"})
ON_SCREEN_ACTION = "cart"  # the weight the product on screen counts with


@dataclass(frozen=True)
class CardConfig:
    recall: int = 50  # keywords recalled before diversity
    max_overlap: float = 0.5  # cosine of two keywords' items above which the second is skipped
    min_keywords: int = 2
    funnel_events: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.max_overlap <= 1:
            raise ValueError(f"max_overlap must be in (0, 1], not {self.max_overlap!r}")
        for name in ("recall", "min_keywords", "funnel_events"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)!r}")


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
) -> Card:
    """The card for a shopper whose session's item events are `events` (item_id, action,
    timestamp; oldest first), who looks at `item_on_screen`, and whose `earlier` events (a
    signed-in user's purchases) count for recall but not as the session's funnel. Queries
    the session `searched` (or clicked on a card) are not offered again."""
    config = config or CardConfig()
    history = [*earlier, *events]
    if item_on_screen is not None:
        history.append((item_on_screen, ON_SCREEN_ACTION, now))
    if any(action in FUNNEL_TYPES for _, action, _ in events[-config.funnel_events :]):
        return Card(False, "in a purchase funnel: the shopper knows what they want", "", [])
    recalled = recall_keywords(graph, history, now, config.recall, recall_config, searched)
    chosen = _diverse(graph, recalled, n, config.max_overlap)
    if len(chosen) < min(config.min_keywords, n):
        return Card(False, f"{len(chosen)} keyword(s) found: too few to ask", "", chosen)
    return Card(True, "keywords found for this shopper", _title(graph, chosen), chosen)


def _diverse(graph: QueryGraph, found: list[Keyword], n: int, max_overlap: float) -> list[Keyword]:
    index = graph.query_index()
    rows = graph.q2i
    chosen: list[Keyword] = []
    vectors: list[np.ndarray] = []
    for keyword in found:
        row = rows.getrow(index[keyword.query]).toarray().ravel()
        norm = float(np.linalg.norm(row))
        vector = row / norm if norm > 0 else row
        if any(float(vector @ other) >= max_overlap for other in vectors):
            continue
        chosen.append(keyword)
        vectors.append(vector)
        if len(chosen) == n:
            break
    return chosen


def _title(graph: QueryGraph, keywords: list[Keyword]) -> str:
    """ "Ideas in X" for the top-level category X holding most of the keywords' c2q mass."""
    if not graph.categories:
        return PLAIN_TITLE
    index = graph.query_index()
    columns = [index[k.query] for k in keywords]
    mass = np.asarray(graph.c2q[:, columns].sum(axis=1)).ravel()
    tops = [k for k, name in enumerate(graph.categories) if CATEGORY_SEPARATOR not in name]
    if not tops or mass[tops].max() <= 0:
        return PLAIN_TITLE
    best = tops[int(np.argmax(mass[tops]))]
    return f"Ideas in {graph.categories[best]}"
