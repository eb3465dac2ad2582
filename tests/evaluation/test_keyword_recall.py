"""The keyword recall protocol: which searches are cases, what history each sees."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from event_tables import event_table
from nextbest.evaluation.keyword_recall import evaluate_keyword_recall
from nextbest.keywords.graph import QueryGraphConfig, build_query_graph

COLUMNS = ("session_id", "user_id", "timestamp", "type", "item_id", "query")


def table(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    return event_table(rows, COLUMNS)


TRAIN = table(
    [
        (f"t{k}", None, float(k), kind, item, query)
        for k in range(3)
        for kind, item, query in (("search", None, "hat"), ("view", "a", None))
    ]
    + [
        (f"r{k}", None, 10.0 + k, kind, item, query)
        for k in range(3)
        for kind, item, query in (("search", None, "tent"), ("view", "c", None))
    ]
)
GRAPH = build_query_graph(TRAIN, config=QueryGraphConfig(min_count=1.0))


def test_a_signed_in_users_earlier_items_lead_to_the_query_they_search() -> None:
    test = table(
        [
            ("x1", "u1", 100.0, "view", "a", None),  # an earlier session of u1
            ("x2", "u1", 200.0, "search", None, "Hat"),  # found through item a
            ("x2", "u1", 201.0, "search", None, "hat"),  # a repeat: not a case
            ("y", None, 300.0, "search", None, "tent"),  # anonymous, nothing before: a miss
            ("z", None, 400.0, "search", None, "kite"),  # a query the graph never saw
        ]
    )
    result = evaluate_keyword_recall(GRAPH, TRAIN, test, n=1)
    assert (result.cases, result.known_queries, result.with_history) == (3, 2, 1)
    assert result.found["i2q"] == result.found["combined"] == 1
    assert result.recall()["combined"] == pytest.approx(1 / 3)


def test_training_history_counts_for_a_signed_in_user_but_a_visitors_other_session_not() -> None:
    train = pl.concat([TRAIN, table([("old", "u2", 50.0, "view", "c", None)])])
    test = table(
        [
            ("new", "u2", 500.0, "search", None, "tent"),  # u2 viewed the tent in training
            ("p", None, 501.0, "view", "a", None),
            ("q", None, 502.0, "search", None, "hat"),  # p's view is another visitor's
        ]
    )
    result = evaluate_keyword_recall(GRAPH, train, test, n=1)
    assert result.cases == 2 and result.with_history == 1
    assert result.found["combined"] == 1


def test_popular_is_the_most_searched_queries_for_everyone() -> None:
    test = table([("y", None, 300.0, "search", None, "tent")])
    assert evaluate_keyword_recall(GRAPH, TRAIN, test, n=2).found["popular"] == 1


def test_n_below_one_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="n must be"):
        evaluate_keyword_recall(GRAPH, TRAIN, TRAIN, n=0)


def test_card_recall_counts_each_clicked_keyword_from_its_shoppers_past() -> None:
    from nextbest.evaluation.keyword_recall import evaluate_card_recall

    log = table(
        [
            ("s1", "u1", 20.0, "view", "a", None),  # u1 looked at a hat before the card
            ("s2", None, 20.0, "view", "a", None),  # another visitor's session
            ("s3", None, 30.0, "view", "c", None),
        ]
    )
    names = ("card_id", "session_id", "user_id", "timestamp", "item_id", "position", "query",
             "clicked")  # fmt: skip
    rows = [
        ("k1", "s9", "u1", 25.0, None, 0, "Hat", True),  # u1's history, another session: found
        ("k1", "s9", "u1", 25.0, None, 1, "tent", False),  # not clicked: no case
        ("k2", "s3", None, 31.0, "c", 0, "hat", True),  # s3 saw a tent only: not found
        ("k3", "s3", None, 32.0, "c", 0, "tent", True),  # found
    ]
    cards = pl.DataFrame([dict(zip(names, r, strict=True)) for r in rows])
    result = evaluate_card_recall(GRAPH, log, cards, n=1)
    assert result.cases == 3 and result.with_history == 3
    assert result.found["i2q"] == 2 and result.found["combined"] == 2
