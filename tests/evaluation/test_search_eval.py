"""The personalised-search protocol: which clicks are cases, and what a re-rank can change."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from event_tables import event_table
from nextbest.data.sessions import Sessions
from nextbest.evaluation.search_eval import SearchCase, evaluate_search, search_cases
from nextbest.keywords.search import ProductSearch
from nextbest.models.covisit import CoVisitation

COLUMNS = ("session_id", "timestamp", "type", "item_id", "query")
CATALOG = pl.DataFrame(
    {
        "item_id": ["shoe-a", "shoe-b", "shoe-c", "sock"],
        "title": ["Running shoe", "Running shoe for trails", "Running shoe light", "Sock"],
    }
)


def table(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    return event_table(rows, COLUMNS)


def test_a_case_is_a_search_and_the_first_click_on_its_results_with_the_history_before() -> None:
    events = table(
        [
            ("s", 0.0, "view", "sock", None),
            ("s", 1.0, "search", None, "Shoe "),
            ("s", 2.0, "click", "shoe-b", "shoe"),  # the case
            ("s", 3.0, "click", "shoe-c", "shoe"),  # a second click: not a new case
            ("s", 4.0, "search", None, "tent"),  # no click after it: no case
            ("s", 5.0, "view", "shoe-a", None),
            ("t", 0.0, "click", "shoe-a", "shoe"),  # no search before it in its session
        ]
    )
    assert search_cases(events) == [SearchCase("shoe", "shoe-b", ["sock"])]


def test_a_model_that_knows_the_shopper_lifts_the_clicked_result() -> None:
    # in training, sessions that viewed the sock went on to the (last-ranked) trail shoe
    train = table([(f"t{k}", float(j), "view", item, None)
                   for k in range(5) for j, item in enumerate(["sock", "shoe-b"])])  # fmt: skip
    model = CoVisitation().fit(Sessions.from_events(train))
    index = ProductSearch.of_items(CATALOG)
    bm25_order = [item for item, _ in index.search("running shoe")]
    assert bm25_order[-1] == "shoe-b"  # the longest title ranks last on text alone
    cases = [SearchCase("running shoe", "shoe-b", ["sock"])]
    result = evaluate_search(index, cases, model, weights=(0.0, 5.0))
    assert result.mrr["bm25"] == pytest.approx(1 / 3)
    assert result.mrr["model w=0"] == pytest.approx(1 / 3)
    assert result.mrr["model w=5"] == pytest.approx(1.0)
    # without a history the model has nothing to say and the order stays BM25's
    blind = evaluate_search(index, [SearchCase("running shoe", "shoe-b", [])], model, (5.0,))
    assert blind.mrr["model w=5"] == pytest.approx(1 / 3)


def test_a_click_the_search_did_not_find_counts_zero_for_every_method() -> None:
    index = ProductSearch.of_items(CATALOG)
    result = evaluate_search(index, [SearchCase("running shoe", "sock", [])])
    assert (result.cases, result.found, result.mrr["bm25"]) == (1, 0, 0.0)


def test_weights_without_a_model_are_refused() -> None:
    with pytest.raises(ValueError, match="weights need a model"):
        evaluate_search(ProductSearch.of_items(CATALOG), [], None, (1.0,))
