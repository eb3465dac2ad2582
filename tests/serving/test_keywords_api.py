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
    plant_keyword_ranker,
    plant_query_graph,
    send,
    view,
)

# The planted graph's "socks" lead to a running shoe's leaf; the tests below read the card
# with more than one keyword per leaf (tests/keywords/test_scenarios.py checks the default).
PER_LEAF = """
[placements.home]
generators = [{ source = "popular", k = 10 }]

[keywords]
max_per_leaf = 3
"""


def placed(make_client: MakeClient, tmp_path: Path, placements: str) -> TestClient:
    """A client of a server started with this placements file's text."""
    file = tmp_path / "placements.toml"
    file.write_text(placements)
    return make_client(placements=file)


@pytest.fixture
def client(home: Path, make_client: MakeClient, tmp_path: Path) -> TestClient:
    plant_query_graph(home)
    return placed(make_client, tmp_path, PER_LEAF)


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


CAMPAIGN = """
[placements.home]
generators = [{ source = "popular", k = 10 }]

[keywords]
max_per_leaf = 3

[keywords.campaigns.over]
title = "Last week's sale"
queries = ["coffee"]
end = 2001-01-01T00:00:00Z

[keywords.campaigns.winter]
title = "Winter running"
queries = ["Thermal Socks", "socks"]
slots = 1
start = 2001-01-01T00:00:00Z
"""


def test_a_running_campaign_leads_the_card_and_is_attributed(
    home: Path, make_client: MakeClient, tmp_path: Path
) -> None:
    plant_query_graph(home)
    client = placed(make_client, tmp_path, CAMPAIGN)
    send(client, view("e1", "s1", item(12)))
    body = card(client, session_id="s1", item_id=item(12), n=3).json()
    assert body["show"] and body["title"] == "Winter running"  # the ended one is left out
    first, *rest = body["keywords"]
    assert (first["query"], first["path"]) == ("thermal socks", "campaign")  # one slot
    assert all(k["path"] != "campaign" for k in rest) and "coffee" not in str(body)
    kept = client.get(f"/v1/recommendations/{body['recommendation_id']}", headers=auth(ADMIN))
    recorded = kept.json()["items"][0]
    assert (recorded["item_id"], recorded["source"]) == ("thermal socks", "campaign")


def test_a_version_with_a_keyword_ranker_serves_the_card_in_its_order(
    home: Path, make_client: MakeClient, tmp_path: Path
) -> None:
    plant_keyword_ranker(home)
    client = placed(make_client, tmp_path, PER_LEAF)
    send(client, view("e1", "s1", item(12)))
    body = card(client, session_id="s1", item_id=item(12), n=3).json()
    assert body["show"] and body["ranker"] == "ftrl"
    queries = [k["query"] for k in body["keywords"]]
    assert queries[0] == "socks"  # what shoppers clicked, ahead of the recall's "running shoe"
    scores = [k["score"] for k in body["keywords"]]
    assert scores == sorted(scores, reverse=True)


def test_without_a_keyword_ranker_the_recall_orders_the_card(client: TestClient) -> None:
    send(client, view("e1", "s1", item(12)))
    body = card(client, session_id="s1", item_id=item(12), n=3).json()
    assert body["ranker"] == "recall" and body["keywords"][0]["query"] == "running shoe"


def test_the_show_model_hides_the_card_unless_the_placements_turn_it_off(
    home: Path, make_client: MakeClient, tmp_path: Path
) -> None:
    import json

    from nextbest.models.store import latest_version

    plant_keyword_ranker(home)
    version = latest_version(home)
    assert version is not None
    show_file = version / "keywords" / "ranker" / "show" / "show-model.json"
    assert show_file.is_file()  # the planted cards taught it
    show_file.write_text(json.dumps(json.loads(show_file.read_text()) | {"threshold": 1.01}))
    client = placed(make_client, tmp_path, PER_LEAF)
    send(client, view("e1", "s1", item(12)))
    body = card(client, session_id="s1", item_id=item(12)).json()
    assert not body["show"] and "the show model expects no click" in body["reason"]
    reloaded = placed(make_client, tmp_path, PER_LEAF + "show_model = false\n")
    assert card(reloaded, session_id="s1", item_id=item(12)).json()["show"]


def test_the_focus_rule_hides_the_card_after_a_run_in_one_leaf(
    home: Path, make_client: MakeClient, tmp_path: Path
) -> None:
    plant_query_graph(home)
    client = placed(make_client, tmp_path, PER_LEAF + "focus_run = 2\n")
    send(client, view("e1", "s1", item(2)))  # a treadmill, then a running shoe
    assert card(client, session_id="s1", item_id=item(12)).json()["show"]
    send(client, view("e2", "s1", item(12)), view("e3", "s1", item(13)))
    body = card(client, session_id="s1", item_id=item(13)).json()
    assert not body["show"] and "in a row in the leaf on screen" in body["reason"]


def test_the_card_shows_only_on_the_pages_the_placements_allow(
    home: Path, make_client: MakeClient, tmp_path: Path
) -> None:
    plant_query_graph(home)
    client = placed(make_client, tmp_path, PER_LEAF + 'show_on = ["product"]\n')
    send(client, view("e1", "s1", item(12)))
    assert card(client, session_id="s1", item_id=item(12)).json()["show"]  # a product page
    home_page = card(client, session_id="s1").json()  # no item: the home page
    assert not home_page["show"] and "not shown on the home page" in home_page["reason"]
    cart = card(client, session_id="s1", item_id=item(12), page="cart").json()
    assert not cart["show"] and "cart page" in cart["reason"]
    assert card(client, session_id="s1", page="checkout").status_code == 422
