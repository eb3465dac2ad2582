"""The personalised-search protocol: BM25's matches through the server's search placement,
with the session model's order fused in by weight."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from event_tables import event_table
from nextbest.data.sessions import Sessions
from nextbest.evaluation.search_eval import best_weight, evaluate_search, search_placements
from nextbest.events.schema import items_of_table
from nextbest.keywords.search import ProductSearch
from nextbest.models.covisit import CoVisitation
from nextbest.recommend.items import ItemTable
from nextbest.serving.registry import serve_model

COLUMNS = ("session_id", "timestamp", "type", "item_id", "query")
CATALOG = pl.DataFrame(
    {
        "item_id": ["shoe-a", "shoe-b", "shoe-c", "sock"],
        "title": ["Running shoe", "Running shoe for long trails", "Running shoe light", "Sock"],
        "category_path": ["Shoes", "Shoes", "Shoes", "Socks"],
    }
)
INDEX = ProductSearch.of_items(CATALOG)
# in training, sessions that viewed the sock went on to the trail shoe (which BM25 ranks last)
TRAIN = event_table(
    [(f"t{k}", float(j), "view", item, None)
     for k in range(5) for j, item in enumerate(["sock", "shoe-b"])]
    + [(f"u{k}", float(j), "view", item, None)
       for k in range(5) for j, item in enumerate(["shoe-a", "shoe-c"])],
    COLUMNS,
)  # fmt: skip


def run(test_rows: list[tuple[Any, ...]], weights: tuple[float, ...] = (0.0, 100.0)) -> Any:
    model = CoVisitation().fit(Sessions.from_events(TRAIN))
    items = ItemTable.build(model.item_ids, items_of_table(CATALOG))
    test = event_table(test_rows, COLUMNS)
    return evaluate_search(INDEX, serve_model(model, "test"), items, TRAIN, test, weights)


def test_bm25_alone_ranks_the_trail_shoe_last() -> None:
    assert [i for i, _ in INDEX.search("running shoe")][-1] == "shoe-b"


def test_the_session_before_the_search_lifts_the_clicked_result() -> None:
    result = run(
        [
            ("s", 0.0, "view", "sock", None),
            ("s", 1.0, "search", None, "Running Shoe"),
            ("s", 2.0, "click", "shoe-b", "running shoe"),  # the case
            ("s", 3.0, "click", "shoe-c", "running shoe"),  # a second click: no new case
        ]
    )
    assert (result.cases, result.found) == (1, 1)
    assert result.mrr[0.0] == pytest.approx(1 / 3)  # BM25's order
    assert result.mrr[100.0] == pytest.approx(1.0)  # the model knows what follows the sock
    assert best_weight(result) == 100.0


def test_without_events_before_the_search_the_order_stays_bm25s() -> None:
    result = run(
        [("s", 1.0, "search", None, "running shoe"), ("s", 2.0, "click", "shoe-b", "running shoe")]
    )
    assert result.mrr[0.0] == result.mrr[100.0] == pytest.approx(1 / 3)


def test_an_unfound_click_counts_zero_and_a_search_without_a_click_is_no_case() -> None:
    result = run(
        [
            ("s", 1.0, "search", None, "running shoe"),
            ("s", 2.0, "click", "sock", "running shoe"),  # not a match of the query
            ("s", 3.0, "search", None, "tent"),  # nobody clicked: not a case
            ("s", 4.0, "view", "shoe-a", None),
        ]
    )
    assert (result.cases, result.found, result.mrr[0.0]) == (1, 0, 0.0)


def test_a_negative_weight_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="personal weight"):
        search_placements((-1.0,))
