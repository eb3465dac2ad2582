"""Scenarios: mined from purchases that follow one another, curated in a file, walked by the
`scene` path, saved with the graph, and titling the card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from event_tables import event_table
from nextbest.keywords.card import CardConfig, keyword_card
from nextbest.keywords.graph import QueryGraph, QueryGraphConfig, build_query_graph
from nextbest.keywords.recall import recall_keywords
from nextbest.keywords.scenarios import CuratedScenario, read_scenarios

DAY = 86_400.0
CATEGORIES = {
    "tread1": "Sports > Fitness > Treadmills", "tread2": "Sports > Fitness > Treadmills",
    "mat1": "Sports > Fitness > Yoga mats", "shoe1": "Sports > Running > Running shoes",
    "kettle1": "Home > Kitchen > Kettles", "toaster1": "Home > Kitchen > Toasters",
}  # fmt: skip
ITEMS = pl.DataFrame({"item_id": list(CATEGORIES), "category_path": list(CATEGORIES.values())})
SEARCHED = {"treadmill": "tread1", "yoga mat": "mat1", "running shoes": "shoe1",
            "kettle": "kettle1", "toaster": "toaster1"}  # fmt: skip


def planted_log(follow_ups: int = 6) -> pl.DataFrame:
    """Every query searched and clicked a few times (the graph's queries), and `follow_ups`
    customers who buy a treadmill and, a week later, running shoes; kettles and toasters are
    bought by different customers, and yoga mats alone."""
    rows: list[tuple[Any, ...]] = []
    for k in range(3):
        for query, item in SEARCHED.items():
            session = f"s-{query}-{k}"
            rows.append((session, None, 0.0, "search", None, query))
            rows.append((session, None, 1.0, "view", item, query))
    for k in range(follow_ups):
        user = f"runner{k}"
        rows.append((f"{user}-a", user, 10 * DAY, "purchase", "tread1", None))
        rows.append((f"{user}-b", user, 17 * DAY, "purchase", "shoe1", None))
    for k in range(follow_ups):
        rows.append((f"k{k}", f"cook{k}", 10 * DAY, "purchase", "kettle1", None))
        rows.append((f"t{k}", f"baker{k}", 10 * DAY, "purchase", "toaster1", None))
        rows.append((f"m{k}", f"yogi{k}", 10 * DAY, "purchase", "mat1", None))
    # a purchase long after the window is no follow-up
    rows.append(("late-a", "slow", 1 * DAY, "purchase", "kettle1", None))
    rows.append(("late-b", "slow", 40 * DAY, "purchase", "mat1", None))
    columns = ("session_id", "user_id", "timestamp", "type", "item_id", "query")
    return event_table(rows, columns)


CONFIG = QueryGraphConfig(min_count=1.0, scenario_min_count=3.0, scenario_min_pmi=0.1)


@pytest.fixture(scope="module")
def graph() -> QueryGraph:
    return build_query_graph(planted_log(), ITEMS, CONFIG)


def test_purchases_that_follow_one_another_form_a_scenario(graph: QueryGraph) -> None:
    members = {frozenset(s.categories) for s in graph.scenarios}
    assert members == {
        frozenset({"Sports > Fitness > Treadmills", "Sports > Running > Running shoes"})
    }
    scenario = graph.scenarios[0]
    assert scenario.source == "mined"
    assert scenario.title in {"Treadmills and running shoes", "Running shoes and treadmills"}


def test_too_few_follow_ups_form_no_scenario() -> None:
    graph = build_query_graph(planted_log(follow_ups=2), ITEMS, CONFIG)
    assert graph.scenarios == []


def test_the_scene_path_leads_from_a_treadmill_to_running_shoes(graph: QueryGraph) -> None:
    found = recall_keywords(graph, [("tread1", "view", 0.0)], now=0.0)
    by_query = {k.query: k for k in found}
    assert "scene" in by_query["running shoes"].paths
    assert "kettle" not in by_query  # no path from sports to the kitchen


def test_curated_scenarios_join_the_graph_and_title_the_card(tmp_path: Path) -> None:
    file = tmp_path / "scenarios.toml"
    file.write_text(
        '[scenarios.breakfast]\ntitle = "Breakfast at home"\n'
        'categories = ["Home > Kitchen > Kettles"]\nqueries = ["Toaster", "waffle iron"]\n'
    )
    curated = read_scenarios(file)
    assert curated == [
        CuratedScenario(
            "breakfast", "Breakfast at home", ("Home > Kitchen > Kettles",),
            ("toaster", "waffle iron"),
        )
    ]  # fmt: skip
    graph = build_query_graph(planted_log(), ITEMS, CONFIG, curated=curated)
    assert graph.scenarios[0].name == "breakfast" and graph.scenarios[0].source == "curated"
    assert graph.unsearched == ["waffle iron"]  # nobody searched it: left out, and said
    card = keyword_card(
        graph, [], now=0.0, n=4, item_on_screen="kettle1", config=CardConfig(min_keywords=2)
    )
    assert card.show and card.title == "Breakfast at home"
    assert {"kettle", "toaster"} <= {k.query for k in card.keywords}


def test_a_card_without_a_scenario_keeps_its_category_title(graph: QueryGraph) -> None:
    card = keyword_card(graph, [], now=0.0, n=4, item_on_screen="mat1")
    assert card.show  # no scenario leads from yoga mats, so the category titles it
    assert not card.show or card.title.startswith("Ideas in")
    assert card.title == "Ideas in Sports"


def test_scenarios_survive_save_and_load(graph: QueryGraph, tmp_path: Path) -> None:
    graph.save(tmp_path)
    loaded = QueryGraph.load(tmp_path)
    assert loaded.scenarios == graph.scenarios
    assert (loaded.s2q != graph.s2q).nnz == 0 and (loaded.c2s != graph.c2s).nnz == 0
    assert loaded.summary() == graph.summary()


def test_a_version_saved_before_scenarios_loads_without_them(
    graph: QueryGraph, tmp_path: Path
) -> None:
    import json

    import numpy as np

    graph.save(tmp_path)
    with np.load(tmp_path / "query-graph.npz") as arrays:
        kept = {k: arrays[k] for k in arrays.files if not k.startswith(("c2s", "s2q"))}
    np.savez(tmp_path / "query-graph.npz", **kept)  # type: ignore[arg-type]
    meta = json.loads((tmp_path / "query-graph.json").read_text())
    del meta["scenarios"], meta["unsearched"]
    (tmp_path / "query-graph.json").write_text(json.dumps(meta))
    old = QueryGraph.load(tmp_path)
    assert old.scenarios == [] and old.scenario_walk().nnz == 0
    assert recall_keywords(old, [("tread1", "view", 0.0)], now=0.0)  # still recalls


def test_a_curated_category_the_catalog_lacks_is_named(tmp_path: Path) -> None:
    curated = [CuratedScenario("x", "X", ("Home > Kitchen > Kettle",), ())]
    with pytest.raises(ValueError, match=r"scenarios\.x\.categories: 'Home > Kitchen > Kettle'"):
        build_query_graph(planted_log(), ITEMS, CONFIG, curated=curated)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[scenarios.a]\ntitle = 'A'\n", r"scenarios\.a: needs categories or queries"),
        ("[scenarios.a]\ncategories = ['X']\n", r"scenarios\.a\.title: must be a text"),
        ("[scenarios.a]\ntitle = 'A'\nqueries = 'x'\n", r"scenarios\.a\.queries: must be a list"),
        ("[scenarios.a]\ntitle = 'A'\nqueries = ['x']\nsize = 3\n", r"unknown key 'size'"),
        ("[scenario.a]\ntitle = 'A'\n", r"unknown key 'scenario'"),
        ("title = \n", "not valid TOML"),
        ("", r"no \[scenarios\.NAME\] tables"),
    ],
)
def test_a_bad_scenarios_file_is_named(tmp_path: Path, text: str, problem: str) -> None:
    file = tmp_path / "s.toml"
    file.write_text(text)
    with pytest.raises(ValueError, match=problem):
        read_scenarios(file)
    with pytest.raises(ValueError, match="no such scenarios file"):
        read_scenarios(tmp_path / "missing.toml")


def test_the_card_offers_one_keyword_per_leaf() -> None:
    rows: list[tuple[Any, ...]] = []
    for k in range(3):
        for query in ("treadmill", "red treadmill", "blue treadmill", "yoga mat"):
            item = "mat1" if query == "yoga mat" else f"tread{1 + k % 2}"
            rows.append((f"{query}-{k}", 0.0, "search", None, query))
            rows.append((f"{query}-{k}", 1.0, "view", item, query))
    events = event_table(rows, ("session_id", "timestamp", "type", "item_id", "query"))
    graph = build_query_graph(events, ITEMS, QueryGraphConfig(min_count=1.0))
    card = keyword_card(graph, [], now=2.0, n=4, item_on_screen="tread1")
    about_treadmills = [k.query for k in card.keywords if "treadmill" in k.query]
    assert len(about_treadmills) == 1
    wide = keyword_card(
        graph, [], now=2.0, n=4, item_on_screen="tread1",
        config=CardConfig(max_per_leaf=3, max_overlap=1.0),
    )  # fmt: skip
    assert len([k for k in wide.keywords if "treadmill" in k.query]) > 1


def test_the_card_keeps_to_its_pages_and_hours(graph: QueryGraph) -> None:
    config = CardConfig(show_on=("product",), hours=(8, 22))
    at_noon = 12 * 3_600.0
    shown = keyword_card(graph, [], at_noon, n=4, item_on_screen="tread1", config=config)
    assert shown.show
    on_cart = keyword_card(
        graph, [], at_noon, n=4, item_on_screen="tread1", config=config, page="cart"
    )
    assert not on_cart.show and "not shown on the cart page" in on_cart.reason
    at_night = keyword_card(graph, [], 23 * 3_600.0, n=4, item_on_screen="tread1", config=config)
    assert not at_night.show and "outside the card's hours (8:00-22:00 UTC)" in at_night.reason
    overnight = CardConfig(hours=(22, 6))  # wraps past midnight
    assert keyword_card(graph, [], 23 * 3_600.0, 4, item_on_screen="tread1", config=overnight).show
    assert not keyword_card(graph, [], at_noon, 4, item_on_screen="tread1", config=overnight).show
    with pytest.raises(ValueError, match="show_on: unknown page 'checkout'"):
        CardConfig(show_on=("checkout",))
    with pytest.raises(ValueError, match="hours must be"):
        CardConfig(hours=(5, 5))
