"""Product search: BM25 over the catalog's text, queries that cannot break out of the match
syntax, and the personalised re-rank."""

from __future__ import annotations

import json
import random
import re
from itertools import pairwise
from pathlib import Path

import polars as pl
import pytest

from nextbest.keywords.search import ProductSearch, match_expression

ITEMS = pl.DataFrame(
    {
        "item_id": ["shoe-1", "shoe-2", "sock-1", "watch-1", "tent-1"],
        "title": [
            "Strideon Flex Running Shoe",
            "Pacer Trail Shoes",
            "Strideon Running Socks",
            "Pulse Sports Watch",
            "Camp Tent for two",
        ],
        "category_path": [
            "Sports > Running > Running shoes",
            "Sports > Running > Running shoes",
            "Sports > Running > Socks",
            "Sports > Running > Sports watches",
            "Outdoor > Tents",
        ],
        "brand": ["Strideon", "Pacer", "Strideon", "Pulse", "Camp"],
        "attributes": [json.dumps({"colour": "blue"}), None, "{}", '{"colour": ["red"]}', "x"],
    }
)


@pytest.fixture(scope="module")
def index() -> ProductSearch:
    return ProductSearch.of_items(ITEMS)


def ids(found: list[tuple[str, float]]) -> list[str]:
    return [item for item, _ in found]


def test_every_word_must_match_and_stems_match(index: ProductSearch) -> None:
    assert set(ids(index.search("running shoes"))) == {"shoe-1", "shoe-2"}
    assert ids(index.search("strideon shoe")) == ["shoe-1"]  # brand and title, stemmed
    assert ids(index.search("BLUE")) == ["shoe-1"]  # an attribute value, any case


def test_a_title_match_ranks_above_a_category_only_match(index: ProductSearch) -> None:
    found = index.search("socks")
    assert ids(found)[0] == "sock-1"
    assert all(a >= b for (_, a), (_, b) in pairwise(found))


def test_when_no_item_holds_every_word_any_word_may(index: ProductSearch) -> None:
    assert ids(index.search("tent kayak")) == ["tent-1"]
    assert index.search("kayak") == []


@pytest.mark.parametrize(
    "query",
    ['shoe" OR "tent', "NEAR(shoe tent)", "title:tent", "shoe*", "^shoe", "NOT tent", '"""',
     "shoe AND", "-tent", "(", "products MATCH 'x'", "\x00shoe"],
)  # fmt: skip
def test_full_text_operators_are_only_words(index: ProductSearch, query: str) -> None:
    index.search(query)  # never an FTS5 syntax error
    expression = match_expression(query) or ""
    assert all(part.startswith('"') and part.endswith('"') for part in expression.split())


def test_fuzzed_queries_never_raise_and_match_only_by_their_words(index: ProductSearch) -> None:
    rng = random.Random(0)
    alphabet = "shoetnrun \"*^:()-+NEARORANDNOT\\'\x00\u00e9\u4e2d{}[]"
    for _ in range(500):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        words = " ".join(re.findall(r"\w+", query))
        assert index.search(query) == index.search(words), query  # the rest is nothing
    binary = bytes(range(256)).decode("latin-1")
    index.search(binary)


def test_a_query_without_words_finds_nothing(index: ProductSearch) -> None:
    assert match_expression("  ?! ") is None
    assert index.search("  ?! ") == []


def test_upsert_replaces_an_items_text(tmp_path: Path) -> None:
    index = ProductSearch.of_items(ITEMS, tmp_path / "search.db")
    index.upsert(pl.DataFrame({"item_id": ["tent-1"], "title": ["Kayak"]}))
    assert len(index) == len(ITEMS)
    assert ids(index.search("kayak")) == ["tent-1"] and index.search("tent") == []
    index.close()
    reopened = ProductSearch(tmp_path / "search.db")  # the file keeps the index
    assert ids(reopened.search("kayak")) == ["tent-1"]


def test_n_below_one_is_refused_by_name(index: ProductSearch) -> None:
    with pytest.raises(ValueError, match="n must be"):
        index.search("shoe", n=0)


def test_an_item_upserted_twice_in_one_batch_keeps_its_last_text() -> None:
    index = ProductSearch.of_items(ITEMS)
    twice = pl.DataFrame({"item_id": ["tent-1", "tent-1"], "title": ["Canoe", "Kayak"]})
    assert index.upsert(twice) == 1
    assert len(index) == len(ITEMS)
    assert ids(index.search("kayak")) == ["tent-1"] and index.search("canoe") == []


def test_reindexing_a_large_catalog_replaces_rows_by_their_row_not_by_a_scan() -> None:
    """43k items indexed twice: each replacement deletes one row by its rowid. Deleting by
    the unindexed item_id scanned the whole table per item (minutes of a core here)."""
    n = 20_000
    items = pl.DataFrame({"item_id": [f"i{k}" for k in range(n)], "title": ["Shoe"] * n})
    index = ProductSearch.of_items(items)
    statements: list[str] = []
    index._db.set_trace_callback(statements.append)
    index.upsert(items.with_columns(pl.lit("Boot").alias("title")))
    assert len(index) == n and len(index.search("boot", n=5)) == 5
    assert index.search("shoe") == []
    assert not any("WHERE item_id" in s for s in statements)
