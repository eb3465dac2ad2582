"""The keyword card: recall from the shopper, no near-duplicates, not in a purchase funnel,
a title from the keywords' category."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from event_tables import event_table
from nextbest.keywords.card import PLAIN_TITLE, CardConfig, keyword_card
from nextbest.keywords.graph import QueryGraph, QueryGraphConfig, build_query_graph

# The planted log: after viewing a running shoe, shoppers search "running shoes" (leading to
# the shoes), "red running shoes" (leading to the same shoes), "socks" and "sports watch";
# kettles lead to "kettle".
PLAN = [
    ("running shoes", ["shoe1", "shoe2"]),
    ("red running shoes", ["shoe1", "shoe2"]),
    ("socks", ["sock1"]),
    ("sports watch", ["watch1"]),
    ("kettle", ["kettle1"]),
]
CATEGORIES = {
    "shoe1": "Sports > Shoes", "shoe2": "Sports > Shoes", "sock1": "Sports > Socks",
    "watch1": "Sports > Watches", "kettle1": "Home > Kettles",
}  # fmt: skip


@pytest.fixture(scope="module")
def graph() -> QueryGraph:
    rows: list[tuple[Any, ...]] = []
    for k in range(4):
        for query, items in PLAN:
            session = f"{query}-{k}"
            if query != "kettle":
                rows.append((session, 0.0, "view", "shoe1", None))  # they came from a shoe
            rows.append((session, 1.0, "search", None, query))
            rows += [(session, 2.0 + j, "view", item, None) for j, item in enumerate(items)]
    items = pl.DataFrame({"item_id": list(CATEGORIES), "category_path": list(CATEGORIES.values())})
    events = event_table(rows, ("session_id", "timestamp", "type", "item_id", "query"))
    return build_query_graph(events, items, QueryGraphConfig(min_count=1.0))


def queries(card: Any) -> list[str]:
    return [k.query for k in card.keywords]


def test_a_shoe_page_offers_distinct_sports_keywords_under_a_sports_title(
    graph: QueryGraph,
) -> None:
    card = keyword_card(graph, [("shoe2", "view", 0.0)], now=10.0, n=4, item_on_screen="shoe1")
    assert card.show and card.title == "Ideas in Sports"
    assert "kettle" not in queries(card)
    # "running shoes" and "red running shoes" lead to the same items: only one is offered
    assert len({"running shoes", "red running shoes"} & set(queries(card))) == 1
    assert {"socks", "sports watch"} <= set(queries(card))
    assert all(k.paths for k in card.keywords)


def test_no_card_in_a_purchase_funnel_or_without_enough_keywords(graph: QueryGraph) -> None:
    funnel = keyword_card(graph, [("shoe1", "view", 0.0), ("shoe1", "cart", 1.0)], now=2.0)
    assert not funnel.show and "funnel" in funnel.reason
    nothing = keyword_card(graph, [("unknown", "view", 0.0)], now=1.0)
    assert not nothing.show and nothing.keywords == [] and "too few" in nothing.reason
    # an old cart add, before the last three events, is no funnel any more
    later = [("shoe1", "cart", 0.0)] + [("shoe2", "view", float(t)) for t in range(1, 4)]
    assert keyword_card(graph, later, now=5.0).show


def test_a_graph_without_categories_gives_the_plain_title() -> None:
    rows = [(f"s{k}", float(t), kind, item, query) for k in range(3)
            for t, (kind, item, query) in enumerate(
                [("search", None, "hat"), ("view", "a", None), ("search", None, "cap"),
                 ("view", "b", None)])]  # fmt: skip
    events = event_table(rows, ("session_id", "timestamp", "type", "item_id", "query"))
    graph = build_query_graph(events, config=QueryGraphConfig(min_count=1.0))
    card = keyword_card(graph, [("a", "view", 0.0), ("b", "view", 0.0)], now=0.0)
    assert card.show and card.title == PLAIN_TITLE


@pytest.mark.parametrize(
    ("settings", "name"),
    [({"max_overlap": 0}, "max_overlap"), ({"min_keywords": 0}, "min_keywords")],
)
def test_bad_settings_are_refused_by_name(settings: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CardConfig(**settings)
