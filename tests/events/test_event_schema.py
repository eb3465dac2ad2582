"""One event at the edge: which types need an item, and a keyword click needs its keyword."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from nextbest.events.schema import Event

BASE: dict[str, Any] = {"event_id": "e1", "session_id": "s1", "timestamp": 1.0}


@pytest.mark.parametrize("kind", ["search", "keyword-click"])
def test_searches_and_keyword_clicks_need_no_item(kind: str) -> None:
    event = Event(**BASE, type=kind, query="running shoes")
    assert event.item_id is None


def test_an_item_event_without_an_item_names_item_id() -> None:
    with pytest.raises(ValidationError) as raised:
        Event(**BASE, type="view")
    assert raised.value.errors()[0]["loc"] == ("item_id",)


@pytest.mark.parametrize("query", [None, "", "   "])
def test_a_keyword_click_without_its_keyword_names_query(query: str | None) -> None:
    with pytest.raises(ValidationError) as raised:
        Event(**BASE, type="keyword-click", query=query)
    error = raised.value.errors()[0]
    assert error["loc"] == ("query",) and "keyword-click" in error["msg"]
