"""The Python client against the app: calls, errors with fields, retries that stay idempotent."""

from __future__ import annotations

import httpx
import pytest
from serving_helpers import ADMIN, READ, WRITE, TestClient, item, model_scores

from nextbest.client import NextbestClient, NextbestError, new_event_id
from nextbest.models.gru4rec import GRU4Rec


def test_the_client_sends_and_recommends(client: TestClient, trained_gru: GRU4Rec) -> None:
    writer = NextbestClient("http://testserver", WRITE, http=client)
    events = [{"event_id": new_event_id(), "type": "view", "session_id": "s1", "item_id": item(3)}]
    assert writer.send_events(events)["accepted"] == 1
    assert writer.send_events(events)["duplicates"] == [events[0]["event_id"]]
    reader = NextbestClient("http://testserver", READ, http=client)
    shown = reader.recommendations(session_id="s1", n=2)
    assert shown["items"][0]["item_id"] == item(4)
    kept = NextbestClient("http://testserver", ADMIN, http=client).served(
        shown["recommendation_id"]
    )
    assert [entry["item_id"] for entry in kept["items"]] == [
        entry["item_id"] for entry in shown["items"]
    ]
    assert reader.similar(item(9), n=1)["items"][0]["item_id"] == item(10)
    filtered = reader.recommendations(
        session_id="s1", n=5, filter="EXCLUDE WHERE item.id IN $ids",
        filter_params={"ids": [item(4), item(5)]},
    )  # fmt: skip
    scores = model_scores(trained_gru, 3)  # the model's own best after 3, but for 4 and 5
    best = max((i for i in scores if i not in (item(3), item(4), item(5))), key=scores.__getitem__)
    assert filtered["items"][0]["item_id"] == best
    searched = reader.recommendations(
        session_id="s1", placement="search", candidates=[item(20), item(4)]
    )
    assert [entry["item_id"] for entry in searched["items"]] == [item(4), item(20)]
    with pytest.raises(NextbestError, match=r"placement") as unknown:
        reader.recommendations(session_id="s1", placement="checkout")
    assert unknown.value.status == 422
    assert NextbestClient("http://testserver", ADMIN, http=client).put_items(
        [{"item_id": "x"}]
    ) == {"upserted": 1}
    with pytest.raises(NextbestError, match=r"403.*Authorization") as refused:
        writer.recommendations(session_id="s1")
    assert refused.value.status == 403
    with pytest.raises(NextbestError, match=r"events\[0\]\.type"):
        writer.send_events([{"event_id": "x", "type": "nope", "session_id": "s"}])
    assert writer.identify("s1", "u1") == {"session_id": "s1", "user_id": "u1", "events": 1}
    with pytest.raises(NextbestError, match="409") as taken:
        writer.identify("s1", "u2")
    assert taken.value.status == 409
    admin = NextbestClient("http://testserver", ADMIN, http=client)
    admin.put_items([{"item_id": item(3), "brand": "Acme", "category_path": ["A", "B"]}])
    writer.send_events([{"event_id": "c2", "type": "view", "session_id": "s9", "item_id": item(3)}])
    assert reader.session_affinity("s9")["affinity"]["brand"][0]["value"] == "Acme"
    assert reader.user_affinity("u 7?x")["events"] == 0  # the id is quoted in the path
    assert admin.catalog_report()["items"] >= 2


def test_the_client_retries_server_errors_then_succeeds() -> None:
    calls: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(503, json={"error": "busy", "detail": []})
        return httpx.Response(200, json={"accepted": 1, "duplicates": [], "rejected": []})

    http = httpx.Client(base_url="http://x", transport=httpx.MockTransport(flaky))
    nb = NextbestClient("http://x", WRITE, backoff=0.0, http=http)
    assert nb.send_events([{"event_id": "e"}])["accepted"] == 1 and len(calls) == 3
    calls.clear()
    with pytest.raises(NextbestError, match="503"):
        NextbestClient("http://x", WRITE, retries=1, backoff=0.0, http=http).send_events([])
    assert len(calls) == 2


def test_the_client_asks_for_the_keyword_card_and_searches(client: TestClient) -> None:
    reader = NextbestClient("http://testserver", READ, http=client)
    admin = NextbestClient("http://testserver", ADMIN, http=client)
    admin.put_items([{"item_id": item(3), "title": "Blue running shoe"}])
    card = reader.keywords(session_id="s1", item_id=item(3))
    assert {"show", "keywords", "recommendation_id"} <= set(card)
    found = reader.search("running", session_id="s1", n=5)
    assert [entry["item_id"] for entry in found["items"]] == [item(3)]
    with pytest.raises(NextbestError, match=r"422.*\bq\b"):
        reader.search("!!!")
