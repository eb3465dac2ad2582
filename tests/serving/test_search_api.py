"""`GET /v1/search`: the catalog's full-text matches, ordered for the session by the search
placement; new catalog items found at once; bad queries named; the list recorded."""

from __future__ import annotations

import random
from typing import Any

import pytest
from serving_helpers import (
    ADMIN,
    READ,
    MakeClient,
    TestClient,
    auth,
    item,
    send,
    view,
)

from nextbest.events.schema import MAX_QUERY_LENGTH

KINDS = ["treadmill", "running shoe", "coffee"]


def kind_of(j: int) -> str:
    return KINDS[j // 10]


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    started = make_client()
    items = [
        {"item_id": item(j), "title": f"Acme {kind_of(j)} {j}", "brand": f"brand-{j % 3}",
         "category_path": ["Shop", kind_of(j).title()],
         "attributes": {"colour": "red" if j % 2 else "blue"}}
        for j in range(30)
    ]  # fmt: skip
    assert started.put("/v1/items", json={"items": items}, headers=auth(ADMIN)).status_code == 200
    return started


def search(client: TestClient, key: str = READ, **params: Any) -> Any:
    return client.get("/v1/search", params=params, headers=auth(key))


def ids(reply: Any) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [entry["item_id"] for entry in reply.json()["items"]]


def test_a_search_finds_the_matching_items_and_only_those(client: TestClient) -> None:
    found = ids(search(client, q="Running SHOES", n=20))
    assert sorted(found) == [item(j) for j in range(10, 20)]
    assert sorted(ids(search(client, q="red coffee", n=20))) == [item(j) for j in range(21, 30, 2)]
    reply = search(client, q="running shoe", n=3).json()
    assert reply["placement"] == "search" and len(reply["items"]) == 3
    assert {entry["source"] for entry in reply["items"]} == {"search"}


def test_the_session_orders_the_matches(client: TestClient) -> None:
    """The model learned "after item j comes j + 1": after i13 the shopper gets i14 first,
    though every running shoe matches the words alike."""
    plain = ids(search(client, q="running shoe", n=10))
    assert plain[0] == item(10)  # text alone: equal matches in id order
    send(client, view("e1", "s1", item(13)))
    personal = ids(search(client, q="running shoe", n=10, session_id="s1"))
    assert personal[0] == item(14)
    assert item(13) in personal  # viewed, not bought: still a result


def test_an_item_put_into_the_catalog_is_found_at_once(client: TestClient) -> None:
    assert ids(search(client, q="kayak")) == []
    new = {"item_id": "kayak-1", "title": "Sea kayak", "category_path": ["Shop", "Boats"]}
    assert client.put("/v1/items", json={"items": [new]}, headers=auth(ADMIN)).status_code == 200
    assert ids(search(client, q="kayak")) == ["kayak-1"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": ""}, "q"),
        ({"q": "x" * (MAX_QUERY_LENGTH + 1)}, "q"),
        ({"q": " ?! -- "}, "q"),
        ({"q": "shoe", "n": 0}, "n"),
        ({"q": "shoe", "n": 101}, "n"),
        ({"q": "shoe", "session_id": ""}, "session_id"),
        ({}, "q"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    reply = search(client, **params)
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["field"] == field


def test_full_text_operators_and_fuzz_never_break_the_search(client: TestClient) -> None:
    rng = random.Random(1)
    alphabet = "acoefrunsh \"*^:()-+NEARORANDNOT\\'{}[]\u00e9\u4e2d"
    for _ in range(200):
        q = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        reply = search(client, q=q)
        assert reply.status_code in (200, 422), (q, reply.text)
        if reply.status_code == 422:
            assert reply.json()["detail"][0]["field"] == "q"
    # quotes and operators are nothing: the same answer as the bare words
    injected = ids(search(client, q='coffee" OR "treadmill', n=30))
    assert injected == ids(search(client, q="coffee or treadmill", n=30))


def test_the_answer_is_recorded_for_attribution_and_needs_a_key(client: TestClient) -> None:
    reply = search(client, q="coffee", session_id="s9")
    recommendation_id = reply.json()["recommendation_id"]
    kept = client.get(f"/v1/recommendations/{recommendation_id}", headers=auth(ADMIN))
    assert kept.status_code == 200 and kept.json()["placement"] == "search"
    assert [i["item_id"] for i in kept.json()["items"]] == ids(reply)
    empty = search(client, q="kayak", session_id="s9")  # a failed search is kept too
    assert ids(empty) == []
    kept = client.get(
        f"/v1/recommendations/{empty.json()['recommendation_id']}", headers=auth(ADMIN)
    )
    assert kept.status_code == 200 and kept.json()["items"] == []
    assert client.get("/v1/search", params={"q": "coffee"}).status_code == 401


def test_the_product_on_screen_orders_the_results_and_is_not_among_them(
    client: TestClient,
) -> None:
    """A search begun from i13's page (a keyword card's): i14 comes first, as if the session
    had just viewed i13, and i13 itself is not a result."""
    found = ids(search(client, q="running shoe", n=10, session_id="s2", item_id=item(13)))
    assert found[0] == item(14) and item(13) not in found and len(found) == 9
    unknown = search(client, q="running shoe", item_id="no-such-item")
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "item_id"
