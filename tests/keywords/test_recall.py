"""Keyword recall by meta-paths: which path finds what, action weights, time decay."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from event_tables import event_table
from nextbest.keywords.graph import QueryGraph, QueryGraphConfig, build_query_graph
from nextbest.keywords.recall import (
    RecallConfig,
    history_matrix,
    recall_keywords,
    recall_matrix,
)

DAY = 86_400.0


@pytest.fixture(scope="module")
def graph() -> QueryGraph:
    """hat -> a, scarf -> b (both Winter > ...), tent -> c (Camping), each searched twice."""
    rows: list[tuple[Any, ...]] = []
    for k, (query, item) in enumerate([("hat", "a"), ("scarf", "b"), ("tent", "c")] * 2):
        rows += [(f"s{k}", 0.0, "search", None, query), (f"s{k}", 1.0, "view", item, None)]
    items = pl.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "category_path": ["Winter > Hats", "Winter > Scarves", "Camping"],
        }
    )
    events = event_table(rows, ("session_id", "timestamp", "type", "item_id", "query"))
    return build_query_graph(events, items, QueryGraphConfig(min_count=1.0))


def test_the_item_path_finds_the_items_query_and_the_category_path_its_neighbours(
    graph: QueryGraph,
) -> None:
    found = recall_keywords(graph, [("a", "view", 0.0)], now=0.0)
    assert [k.query for k in found] == ["hat", "scarf"]  # not "tent": no path leads there
    hat, scarf = found
    assert set(hat.paths) == {"i2q", "c2q"} and set(scarf.paths) == {"c2q"}
    assert hat.score == pytest.approx(sum(hat.paths.values()))
    assert sum(k.paths.get("i2q", 0.0) for k in found) == pytest.approx(1.0)


def test_a_recent_view_outweighs_an_old_one_and_a_purchase_a_view(graph: QueryGraph) -> None:
    recent = recall_keywords(graph, [("a", "view", 0.0), ("c", "view", 9 * DAY)], now=9 * DAY)
    assert recent[0].query == "tent"
    bought = recall_keywords(
        graph, [("a", "purchase", 8 * DAY), ("c", "view", 9 * DAY)], now=9 * DAY
    )
    assert bought[0].query == "hat"


def test_already_searched_queries_are_left_out_and_n_is_kept(graph: QueryGraph) -> None:
    found = recall_keywords(graph, [("a", "view", 0.0)], now=0.0, exclude=frozenset({"hat"}))
    assert [k.query for k in found] == ["scarf"]
    assert len(recall_keywords(graph, [("a", "view", 0.0)], now=0.0, n=1)) == 1


def test_unknown_items_and_actions_find_nothing(graph: QueryGraph) -> None:
    assert recall_keywords(graph, [("zz", "view", 0.0), ("a", "dwell", 0.0)], now=0.0) == []


def test_the_batch_recall_is_the_one_shopper_recall_row_by_row(graph: QueryGraph) -> None:
    histories = [[("a", "view", 0.0)], [("c", "cart", 0.0), ("b", "view", 0.0)], []]
    config = RecallConfig()
    combined, per_path = recall_matrix(
        graph, history_matrix(graph, histories, [0.0] * 3, config), n=3
    )
    for row, events in enumerate(histories):
        one = [graph.queries.index(k.query) for k in recall_keywords(graph, events, 0.0, n=3)]
        assert combined[row].tolist() == one + [-1] * (3 - len(one))
    assert per_path["i2q"][0].tolist() == [graph.queries.index("hat"), -1, -1]
    assert np.all(combined[2] == -1)


def test_a_half_life_that_is_not_positive_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="half_life_seconds"):
        RecallConfig(half_life_seconds=0)
