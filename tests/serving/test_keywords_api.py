"""`GET /v1/keywords`: the keyword card from the version's query graph, its attribution
through keyword-click events, and why no card is shown."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from serving_helpers import (
    ADMIN,
    READ,
    MakeClient,
    TestClient,
    auth,
    item,
    plant_query_graph,
    send,
    view,
)


@pytest.fixture
def client(home: Path, make_client: MakeClient) -> TestClient:
    plant_query_graph(home)
    return make_client()


def card(client: TestClient, key: str = READ, **params: Any) -> Any:
    return client.get("/v1/keywords", params=params, headers=auth(key))


def test_a_shoe_page_gets_a_card_of_sports_keywords(client: TestClient) -> None:
    send(client, view("e1", "s1", item(12)))
    reply = card(client, session_id="s1", item_id=item(12), n=3)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["show"] and body["title"] == "Ideas in Sports"
    queries = [k["query"] for k in body["keywords"]]
    assert queries[0] == "running shoe" and "socks" in queries and "coffee" not in queries
    assert all(k["path"] in k["paths"] for k in body["keywords"])
    assert body["model_version"]


def test_a_keyword_click_is_attributed_to_its_card(client: TestClient) -> None:
    send(client, view("e1", "s1", item(12)))
    body = card(client, session_id="s1", item_id=item(12)).json()
    kept = client.get(f"/v1/recommendations/{body['recommendation_id']}", headers=auth(ADMIN))
    assert kept.status_code == 200
    assert kept.json()["placement"] == "keywords"
    assert [i["item_id"] for i in kept.json()["items"]] == [k["query"] for k in body["keywords"]]
    click = {
        "event_id": "k1", "type": "keyword-click", "session_id": "s1", "timestamp": time.time(),
        "query": "socks", "recommendation_id": body["recommendation_id"],
    }  # fmt: skip
    assert send(client, click).json()["accepted"] == 1
    outcomes = client.get(
        f"/v1/recommendations/{body['recommendation_id']}", headers=auth(ADMIN)
    ).json()["outcomes"]
    assert [(o["type"], o["item_id"]) for o in outcomes] == [("keyword-click", None)]


def test_no_card_in_a_purchase_funnel_and_none_is_recorded(client: TestClient) -> None:
    send(client, view("e1", "s1", item(12)), view("e2", "s1", item(12)) | {"type": "cart"})
    body = card(client, session_id="s1", item_id=item(12)).json()
    assert not body["show"] and "funnel" in body["reason"]
    kept = client.get(f"/v1/recommendations/{body['recommendation_id']}", headers=auth(ADMIN))
    assert kept.status_code == 404


def test_a_version_without_a_query_graph_says_so(make_client: MakeClient) -> None:
    body = card(make_client(), session_id="s1").json()
    assert not body["show"] and "no query graph" in body["reason"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n": 0}, "n"),
        ({"n": 11}, "n"),
        ({"item_id": "no-such-item"}, "item_id"),
        ({"session_id": ""}, "session_id"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    reply = card(client, **params)
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["field"] == field


def test_the_card_needs_a_key(client: TestClient) -> None:
    assert client.get("/v1/keywords").status_code == 401


def test_a_keyword_click_without_its_keyword_is_refused_by_name(client: TestClient) -> None:
    click = {"event_id": "k1", "type": "keyword-click", "session_id": "s1", "timestamp": 1.0}
    reply = send(client, click).json()
    assert reply["accepted"] == 0 and reply["rejected"][0]["field"] == "events[0].query"


def test_a_query_the_session_searched_is_not_offered_again(client: TestClient) -> None:
    send(client, view("e1", "s1", item(12)))

    def offered() -> list[str]:
        body = card(client, session_id="s1", item_id=item(12)).json()
        return [k["query"] for k in body["keywords"]]

    assert "socks" in offered()
    searched = {"event_id": "q1", "type": "search", "session_id": "s1",
                "timestamp": time.time(), "query": "  SOCKS "}  # fmt: skip
    send(client, searched)
    assert "socks" not in offered() and offered()
