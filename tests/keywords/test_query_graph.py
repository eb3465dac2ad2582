"""The query graph: what a search is credited with, PPMI against popular queries, categories,
and storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from event_tables import event_table
from nextbest.keywords.graph import QueryGraph, QueryGraphConfig, build_query_graph

COLUMNS = ("session_id", "timestamp", "type", "item_id", "query")


def rows_of(session: str, *steps: tuple[str, str | None, str | None]) -> list[tuple[Any, ...]]:
    """(type, item, query) steps of one session, one second apart."""
    return [(session, float(t), kind, item, query) for t, (kind, item, query) in enumerate(steps)]


def graph_of(rows: list[tuple[Any, ...]], **config: Any) -> QueryGraph:
    settings = {"min_count": 1.0, **config}
    return build_query_graph(event_table(rows, COLUMNS), config=QueryGraphConfig(**settings))


def pairs(graph: QueryGraph) -> dict[tuple[str, str], float]:
    coo = graph.counts.tocoo()
    return {
        (graph.queries[q], graph.item_ids[i]): float(w)
        for q, i, w in zip(coo.row, coo.col, coo.data, strict=True)
    }


def test_a_search_is_credited_with_what_follows_it_by_weight_within_its_window() -> None:
    rows = rows_of(
        "s1",
        ("view", "before", None),  # before any search: nobody's
        ("search", None, "Running  Shoes "),
        ("view", "a", None),
        ("cart", "a", None),
        ("view", "b", None),
        ("view", "late", None),  # the fourth item event: outside follow_events=3
        ("search", None, "socks"),
        ("purchase", "c", None),
    ) + rows_of("s2", ("view", "d", None))  # another session's item: not the search's
    graph = graph_of(rows, follow_events=3)
    assert pairs(graph) == {
        ("running shoes", "a"): 1.0 + 3.0,
        ("running shoes", "b"): 1.0,
        ("socks", "c"): 5.0,
    }
    assert graph.searches[graph.queries.index("running shoes")] == 1


def test_an_event_carrying_its_own_query_is_credited_to_it_not_to_the_latest_search() -> None:
    rows = rows_of(
        "s1",
        ("search", None, "hat"),
        ("click", "a", "scarf"),  # a click on a result of an earlier "scarf" search
        ("view", "b", None),
    )
    assert pairs(graph_of(rows)) == {("scarf", "a"): 1.0, ("hat", "b"): 1.0}


def test_events_in_one_session_are_taken_in_time_order_not_table_order() -> None:
    rows = rows_of("s1", ("search", None, "hat"), ("view", "a", None))
    assert pairs(graph_of(list(reversed(rows)))) == {("hat", "a"): 1.0}


def test_a_popular_query_does_not_attach_to_every_item() -> None:
    """ "sale" precedes everything; "tent" only tents. The tent's strongest query is "tent",
    though "sale" preceded the tent as often."""
    rows: list[tuple[Any, ...]] = []
    for k in range(40):
        item = f"x{k % 20}"
        rows += rows_of(f"sale{k}", ("search", None, "sale"), ("view", item, None))
    for k in range(4):
        rows += rows_of(f"tent{k}", ("search", None, "tent"), ("view", "tent-1", None))
        rows += rows_of(f"sale-tent{k}", ("search", None, "sale"), ("view", "tent-1", None))
    graph = graph_of(rows)
    assert pairs(graph)[("sale", "tent-1")] == pairs(graph)[("tent", "tent-1")]
    queries = graph.queries_of_item("tent-1")
    assert queries[0][0] == "tent"
    assert sum(score for _, score in queries) == pytest.approx(1.0)
    # and "sale" is still the query of the items only it led to
    assert graph.queries_of_item("x3")[0][0] == "sale"


def test_pairs_below_min_count_are_left_out_of_the_item_side_but_add_up_in_categories() -> None:
    rows: list[tuple[Any, ...]] = []
    for k in range(6):  # six different boots, one view each after "boots"
        rows += rows_of(f"s{k}", ("search", None, "boots"), ("view", f"boot{k}", None))
    rows += rows_of("t", ("search", None, "tea"), ("view", "tea1", None), ("view", "tea1", None))
    items = pl.DataFrame(
        {
            "item_id": [f"boot{k}" for k in range(6)] + ["tea1"],
            "category_path": ["Shoes > Boots"] * 6 + ["Food > Tea"],
        }
    )
    graph = build_query_graph(event_table(rows, COLUMNS), items, QueryGraphConfig(min_count=2.0))
    assert pairs(graph) == {("tea", "tea1"): 2.0}
    assert graph.queries_of_item("boot1") == []
    assert [q for q, _ in graph.queries_of_category("Shoes > Boots")] == ["boots"]
    assert [q for q, _ in graph.queries_of_category("Shoes")] == ["boots"]
    assert [q for q, _ in graph.queries_of_category("Food")] == ["tea"]
    assert graph.categories == ["Food", "Food > Tea", "Shoes", "Shoes > Boots"]


def test_blank_and_overlong_queries_are_left_out() -> None:
    rows = rows_of("s1", ("search", None, "   "), ("view", "a", None))
    rows += rows_of("s2", ("search", None, "x" * 101), ("view", "b", None))
    graph = graph_of(rows)
    assert graph.queries == [] and pairs(graph) == {}


def test_items_of_a_query_are_looked_up_by_its_normalised_text() -> None:
    rows = rows_of("s1", ("search", None, "hat"), ("view", "a", None), ("cart", "b", None))
    rows += rows_of("s2", ("search", None, "cap"), ("view", "c", None))
    graph = graph_of(rows)
    assert [i for i, _ in graph.items_of_query("  HAT ")] == ["b", "a"]
    assert graph.items_of_query("unknown") == []


def test_save_and_load_give_the_same_graph(tmp_path: Path) -> None:
    rows = rows_of("s1", ("search", None, "hat"), ("view", "a", None), ("cart", "b", None))
    rows += rows_of("s2", ("search", None, "cap"), ("view", "b", None))
    items = pl.DataFrame({"item_id": ["a", "b"], "category_path": ["Hats", "Hats > Caps"]})
    graph = build_query_graph(event_table(rows, COLUMNS), items, QueryGraphConfig(min_count=1))
    graph.save(tmp_path)
    loaded = QueryGraph.load(tmp_path)
    assert (loaded.queries, loaded.item_ids, loaded.categories) == (
        graph.queries,
        graph.item_ids,
        graph.categories,
    )
    assert loaded.config == graph.config
    np.testing.assert_array_equal(loaded.searches, graph.searches)
    for name in ("counts", "q2i", "i2q", "c2q", "item_categories"):
        assert (getattr(loaded, name) != getattr(graph, name)).nnz == 0, name


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"follow_events": 0}, "follow_events"),
        ({"min_count": 0}, "min_count"),
        ({"alpha": 1.5}, "alpha"),
        ({"per_item": 0}, "per_item"),
        ({"weights": {"view": -1.0}}, "weights.view"),
    ],
)
def test_bad_settings_are_refused_by_name(settings: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        QueryGraphConfig(**settings)
