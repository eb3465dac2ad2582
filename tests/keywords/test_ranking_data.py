"""The keyword rankers' cases: a card's history is its shopper's past, never its future; the
keyword's side is its category; the features say what they claim."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from event_tables import event_table
from nextbest.events.schema import conform_items
from nextbest.keywords.graph import QueryGraphConfig, build_query_graph
from nextbest.keywords.ranking import Vocabulary, conform_cards, keyword_ranking_data
from nextbest.twostage.data import PURCHASE, VIEW

COLUMNS = ("session_id", "user_id", "timestamp", "type", "item_id", "query")
ITEMS = conform_items(
    pl.DataFrame(
        {
            "item_id": ["a1", "a2", "b1", "b2"],
            "title": ["Red Tent", "Blue Tent", "Wool Hat", "Sun Hat"],
            "category_path": ["Outdoor > Tents", "Outdoor > Tents", "Wear > Hats", "Wear > Hats"],
            "brand": ["Acme", "Acme", "Knit", "Knit"],
        }
    )
)


def events(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    return event_table(rows, COLUMNS)


SEARCHES = [  # the query graph: "tent" leads to tents, "knit hat" to hats
    (f"q{k}", None, float(k), kind, item, query)
    for k in range(3)
    for kind, item, query in (
        ("search", None, "tent"), ("view", "a1", None), ("view", "a2", None),
        ("search", None, "knit hat"), ("view", "b1", None), ("view", "b2", None),
    )
]  # fmt: skip
SHOPPERS = [
    ("s1", "u1", 100.0, "view", "b1", None),
    ("s1", "u1", 110.0, "purchase", "b1", None),
    ("s2", "u1", 500.0, "view", "a1", None),  # the card of s2 is shown on this view
    ("s2", "u1", 600.0, "view", "b2", None),  # after the card: not its history
    ("s3", None, 300.0, "view", "b2", None),  # another visitor's, anonymous
    ("s4", None, 550.0, "view", "a2", None),
]
LOG = events(SEARCHES + SHOPPERS)
GRAPH = build_query_graph(events(SEARCHES), ITEMS, QueryGraphConfig(min_count=1.0))
VOCABULARY = Vocabulary.of(GRAPH, ITEMS)


def cards(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    names = ("card_id", "session_id", "user_id", "timestamp", "item_id", "position", "query",
             "clicked")  # fmt: skip
    return conform_cards(pl.DataFrame([dict(zip(names, r, strict=True)) for r in rows]))


CARDS = cards(
    [
        ("k2", "s4", None, 550.0, "a2", 0, "knit hat", False),
        ("k2", "s4", None, 550.0, "a2", 1, "Tent", True),
        ("k1", "s2", "u1", 500.0, "a1", 0, "tent", False),
        ("k1", "s2", "u1", 500.0, "a1", 1, "knit hat", True),
    ]
)


@pytest.fixture(scope="module")
def data() -> Any:
    return keyword_ranking_data(CARDS, LOG, GRAPH, VOCABULARY, width=4)


def test_a_keywords_category_is_the_leaf_its_searches_led_to() -> None:
    leaf_of = {VOCABULARY.leaves[k]: k for k in range(len(VOCABULARY.leaves))}
    index = GRAPH.query_index()
    assert VOCABULARY.query_leaf[index["tent"]] == leaf_of["Outdoor > Tents"]
    assert VOCABULARY.query_leaf[index["knit hat"]] == leaf_of["Wear > Hats"]


def test_cards_are_cases_in_time_order_with_their_keywords_and_clicks(data: Any) -> None:
    assert data.case.tolist() == [0, 0, 1, 1]  # k1 (t=500) before k2 (t=550)
    hats = VOCABULARY.query_leaf[GRAPH.query_index()["knit hat"]]
    tents = VOCABULARY.query_leaf[GRAPH.query_index()["tent"]]
    assert data.item.tolist() == [tents, hats, hats, tents]  # "Tent" is the same keyword
    assert data.label.tolist() == [0.0, 1.0, 0.0, 1.0]


def test_a_users_history_spans_sessions_and_stops_at_the_card(data: Any) -> None:
    hats = VOCABULARY.item_leaf["b1"]
    tents = VOCABULARY.item_leaf["a1"]
    history = data.history
    assert history.items[0].tolist() == [-1, hats, hats, tents]  # s1's view and purchase, s2's view
    assert history.types[0].tolist()[1:] == [VIEW, PURCHASE, VIEW]
    assert history.age[0].tolist()[1:] == [400.0, 390.0, 0.0]


def test_an_anonymous_visitors_history_is_the_session_alone(data: Any) -> None:
    assert data.history.items[1].tolist() == [-1, -1, -1, VOCABULARY.item_leaf["a2"]]


def test_history_features_count_the_keywords_category(data: Any) -> None:
    share = data.column("history.leaf_share")
    screen = data.column("history.screen_leaf")
    # k1: the history is hat, hat, tent; the screen shows a tent
    assert share[:2].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert screen.tolist() == [1.0, 0.0, 0.0, 1.0]


def test_text_features_read_the_keywords_words(data: Any) -> None:
    assert data.column("text.words").tolist() == [1.0, 2.0, 2.0, 1.0]
    assert data.column("text.names_brand").tolist() == [0.0, 1.0, 1.0, 0.0]
    assert data.column("text.brand_in_history").tolist() == [0.0, 1.0, 0.0, 0.0]
    assert data.column("text.screen_overlap").tolist() == [1.0, 0.0, 0.0, 1.0]


def test_path_features_score_the_keywords_the_history_leads_to(data: Any) -> None:
    i2q = data.column("path.i2q")
    assert i2q[1] > i2q[0] > 0  # k1's history: two hat events, one tent
    assert i2q[3] > 0 and i2q[2] == 0  # k2's: one tent
    assert np.isfinite(data.column("path.searches")).all()


def test_cards_missing_a_column_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="clicked"):
        conform_cards(CARDS.drop("clicked"))
