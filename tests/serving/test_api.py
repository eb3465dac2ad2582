"""The HTTP API: keys, bad input (4xx naming the field, server keeps serving), the replies."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY
from serving_helpers import (
    ADMIN,
    READ,
    WRITE,
    MakeClient,
    TestClient,
    auth,
    item,
    model_scores,
    recommend,
    send,
    top,
    view,
)

from backends import sqlite_pragmas
from nextbest.models.gru4rec import GRU4Rec
from nextbest.serving.schemas import MAX_BATCH_EVENTS, MAX_N, RecommendationsQuery


def fields(reply: Any) -> list[str]:
    return [entry["field"] for entry in reply.json()["detail"]]


def test_events_then_recommendations_follow_the_session(
    client: TestClient, trained_gru: GRU4Rec
) -> None:
    reply = send(client, view("e1", "s1", item(5)), view("e2", "s1", item(6)))
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "accepted": 2,
        "duplicates": [],
        "rejected": [],
        "error": None,
        "detail": [],
    }
    body = recommend(client, session_id="s1", n=5).json()
    assert len(body["items"]) == 5 and len(body["recommendation_id"]) == 32
    assert body["items"][0] == {
        "item_id": item(7),
        "score": pytest.approx(model_scores(trained_gru, 5, 6)[item(7)], rel=1e-5, abs=1e-5),
        "source": "gru4rec",
        "reason": "next after i06",
    }
    # the whole list is the model's own ranking after the session, with its scores
    scores = model_scores(trained_gru, 5, 6)
    expected = sorted(scores, key=lambda i: -scores[i])[:5]
    assert [e["item_id"] for e in body["items"]] == expected
    assert [e["score"] for e in body["items"]] == pytest.approx(
        [scores[i] for i in expected], rel=1e-5, abs=1e-5
    )
    send(client, view("e3", "s1", item(7)))  # the next request sees the new event
    assert recommend(client, session_id="s1", n=1).json()["items"][0]["item_id"] == item(8)


def test_a_repeated_event_id_is_accepted_once(client: TestClient) -> None:
    send(client, view("e1", "s1", item(1)))
    reply = send(
        client, view("e1", "s1", item(1)), view("e2", "s1", item(2)), view("e2", "s1", item(2))
    )
    assert reply.status_code == 200
    assert (reply.json()["accepted"], reply.json()["duplicates"]) == (1, ["e1", "e2"])
    # the state moved once per distinct event: after i01, i02 comes i03
    assert recommend(client, session_id="s1", n=1).json()["items"][0]["item_id"] == item(3)


def test_keys_401_and_403(client: TestClient) -> None:
    event = {"events": [view("e1", "s1", item(1))]}
    assert client.post("/v1/events", json=event).status_code == 401
    assert (
        client.post("/v1/events", json=event, headers={"Authorization": "Basic abc"}).status_code
        == 401
    )
    wrong = client.post("/v1/events", json=event, headers=auth("not-a-key-of-ours-at-all"))
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert fields(wrong) == ["Authorization"]
    assert client.post("/v1/events", json=event, headers=auth(READ)).status_code == 403
    assert client.get("/v1/recommendations", headers=auth(WRITE)).status_code == 403
    assert client.put("/v1/items", json={"items": []}, headers=auth(READ)).status_code == 403
    assert client.post("/v1/events", json=event, headers=auth(ADMIN)).status_code == 200
    assert client.get("/v1/recommendations", headers=auth(ADMIN)).status_code == 200


def bad(field: str, **changes: Any) -> tuple[dict[str, Any], str]:
    """A view event with `changes` (None removes a key), and the field the error must name."""
    event = view("bad", "s", item(1)) | changes
    return {k: v for k, v in event.items() if v is not None}, field


BAD_EVENTS = [
    bad("events[0].type", type="teleport"),
    bad("events[0].session_id", session_id=42),
    bad("events[0].timestamp", timestamp="soon"),
    bad("events[0].item_id", item_id="no-such-item"),
    bad("events[0].item_id", item_id=None),
    bad("events[0].session_id", session_id="x" * 100_000),
    bad("events[0].colour", colour="red"),
    bad("events[0].context.device", context={"device": 3}),
    ("not an object", "events[0]"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_EVENTS)
def test_a_bad_event_is_rejected_by_field_and_its_batch_keeps_the_good(
    client: TestClient, bad: Any, field: str
) -> None:
    reply = send(client, bad, view("good", "s2", item(4)))
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert body["accepted"] == 1 and [r["field"] for r in body["rejected"]] == [field]
    assert fields(reply) == [field] and body["error"] == "1 of 2 event(s) rejected"
    assert recommend(client, session_id="s2", n=1).json()["items"][0]["item_id"] == item(5)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"events": [{"event_id": "e1",', "body"),
        (b'{"events": {"event_id": "e1"}}', "events"),
        (b'{"evnts": []}', "events"),
        (b"[]", "body"),
    ],
)
def test_malformed_bodies_name_the_field(client: TestClient, body: bytes, field: str) -> None:
    headers = {**auth(WRITE), "Content-Type": "application/json"}
    reply = client.post("/v1/events", content=body, headers=headers)
    assert reply.status_code == 422 and fields(reply) == [field], reply.text
    assert client.get("/healthz").json()["status"] == "ok"


def test_oversized_batches_and_bodies(make_client: MakeClient) -> None:
    client = make_client(max_body_bytes=200_000)
    events = [view(f"e{i}", "s", item(i)) for i in range(MAX_BATCH_EVENTS + 1)]
    reply = send(client, *events)
    assert reply.status_code == 422 and fields(reply) == ["events"]
    assert "500" in reply.json()["detail"][0]["message"]
    huge = [view(f"e{i}", "s", item(i), query="q" * 1000) for i in range(300)]
    reply = send(client, *huge)
    assert reply.status_code == 413 and fields(reply) == ["body"]
    assert send(client, view("ok", "s", item(1))).status_code == 200


def test_bad_query_parameters(client: TestClient) -> None:
    assert fields(recommend(client, n=0)) == ["n"]
    assert fields(recommend(client, n="many")) == ["n"]
    assert fields(recommend(client, session_id="s" * 300)) == ["session_id"]
    reply = recommend(client, session_id="s", item_id="nope")
    assert reply.status_code == 422 and fields(reply) == ["item_id"]
    similar = client.get("/v1/items/nope/similar", headers=auth(READ))
    assert similar.status_code == 404 and fields(similar) == ["item_id"]
    assert fields(recommend(client, n=3, explain="maybe")) == ["explain"]
    assert fields(recommend(client, filter="")) == ["filter"]
    assert recommend(client, n=4, colour="red").status_code == 200  # unknown: ignored
    repeated = client.get("/v1/recommendations?n=2&n=3", headers=auth(READ))
    assert len(repeated.json()["items"]) == 3  # the last of a repeated parameter
    unauthorised = client.get("/v1/recommendations?n=0")  # the key is checked first
    assert unauthorised.status_code == 401


def test_the_recommendations_query_is_documented_as_validated(client: TestClient) -> None:
    """GET /v1/recommendations validates its query itself: every field it reads is in the
    OpenAPI document with its bounds, and the 422 answer is documented."""
    operation = client.get("/openapi.json").json()["paths"]["/v1/recommendations"]["get"]
    documented = {p["name"]: p for p in operation["parameters"]}
    assert set(documented) == set(RecommendationsQuery.model_fields)
    assert all(p["in"] == "query" and not p["required"] for p in documented.values())
    assert documented["n"]["schema"]["maximum"] == MAX_N
    assert documented["n"]["description"] == "how many items"
    assert "422" in operation["responses"] and operation["security"] == [{"apiKey": []}]


def test_exactly_n_items_and_bought_items_are_left_out(client: TestClient) -> None:
    send(
        client,
        view("e1", "s1", item(3)),
        {
            "event_id": "e2",
            "type": "purchase",
            "session_id": "s1",
            "item_id": item(4),
            "user_id": "u1",
        },
        {
            "event_id": "e3",
            "type": "purchase",
            "session_id": "old",
            "item_id": item(5),
            "user_id": "u1",
        },
    )
    everything = recommend(client, session_id="s1", user_id="u1", n=30).json()["items"]
    ids = [entry["item_id"] for entry in everything]
    assert len(ids) == 28 and len(set(ids)) == 28  # 30 items, two bought
    assert item(4) not in ids and item(5) not in ids
    # s1 belongs to u1 (its purchase named u1): u1's purchases stay out without the user too
    alone = [e["item_id"] for e in recommend(client, session_id="s1", n=30).json()["items"]]
    assert item(4) not in alone and item(5) not in alone
    # an anonymous session leaves out only its own purchase
    send(client, view("e4", "s2", item(3)))
    assert item(5) in [
        e["item_id"] for e in recommend(client, session_id="s2", n=29).json()["items"]
    ]


def served_count(outcome: str) -> float:
    return REGISTRY.get_sample_value("nextbest_served_lists_total", {"outcome": outcome}) or 0.0


def test_a_served_list_and_the_events_that_carried_its_id_back(client: TestClient) -> None:
    recorded_before = served_count("recorded")
    send(client, view("e1", "s1", item(3)))
    shown = recommend(client, session_id="s1", user_id="u1", placement="cart", n=4).json()
    rid = shown["recommendation_id"]
    clicked = shown["items"][2]["item_id"]
    send(
        client,
        view("e2", "s1", clicked, recommendation_id=rid),
        {"event_id": "e3", "type": "purchase", "session_id": "s1", "item_id": clicked,
         "recommendation_id": rid},
        view("e4", "s1", item(20)),  # carries no id: not an outcome
    )  # fmt: skip
    similar = client.get(f"/v1/items/{item(3)}/similar", params={"n": 2}, headers=auth(READ))
    reply = client.get(f"/v1/recommendations/{rid}", headers=auth(ADMIN))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [(i["position"], i["item_id"], i["source"]) for i in body["items"]] == [
        (k, i["item_id"], i["source"]) for k, i in enumerate(shown["items"], start=1)
    ]
    assert (body["session_id"], body["user_id"], body["placement"]) == ("s1", "u1", "cart")
    assert body["model_version"] == shown["model_version"]
    assert [(o["event_id"], o["type"], o["position"]) for o in body["outcomes"]] == [
        ("e2", "view", 3),
        ("e3", "purchase", 3),
    ]
    beside = client.get(
        f"/v1/recommendations/{similar.json()['recommendation_id']}", headers=auth(ADMIN)
    ).json()
    assert beside["item_id"] == item(3) and len(beside["items"]) == 2
    assert beside["outcomes"] == []
    missing = client.get("/v1/recommendations/nothing-here", headers=auth(ADMIN))
    assert missing.status_code == 404 and fields(missing) == ["recommendation_id"]
    assert client.get(f"/v1/recommendations/{rid}", headers=auth(READ)).status_code == 403
    assert served_count("recorded") - recorded_before == 2
    assert 'nextbest_served_lists_total{outcome="recorded"}' in client.get("/metrics").text


def test_item_on_screen_steps_a_copy_of_the_state(client: TestClient) -> None:
    send(client, view("e1", "s1", item(10)))
    on_screen = recommend(client, session_id="s1", item_id=item(20), n=3).json()["items"]
    assert on_screen[0]["item_id"] == item(21) and item(20) not in [e["item_id"] for e in on_screen]
    assert recommend(client, session_id="s1", n=1).json()["items"][0]["item_id"] == item(11)
    similar = client.get(
        f"/v1/items/{item(29)}/similar", params={"n": 4}, headers=auth(READ)
    ).json()
    assert similar["item_id"] == item(29) and similar["items"][0]["item_id"] == item(0)
    assert len(similar["items"]) == 4


def test_a_new_session_gets_popular_items(client: TestClient) -> None:
    for k in range(4):
        send(client, view(f"p{k}", f"other-{k}", item(17)), view(f"q{k}", f"other-{k}", item(2)))
    send(client, view("q-extra", "other-extra", item(2)))
    client.app.state.services.trends.refresh()  # type: ignore[attr-defined]
    items = recommend(client, session_id="brand-new", n=4).json()["items"]
    assert [(e["item_id"], e["source"]) for e in items[:2]] == [
        (item(2), "popularity"),
        (item(17), "popularity"),
    ]
    assert len(items) == 4  # the model's prior completes the list


def metric(client: TestClient, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_health_metrics_docs(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["model"] == "gru4rec" and health["model_version"]
    accepted, rejected = '{outcome="accepted"}', '{outcome="rejected"}'
    before = [metric(client, f"nextbest_events_total{k}") for k in (accepted, rejected)]
    send(client, view("e1", "s1", item(1)), {"event_id": "bad", "type": "nope"})
    after = [metric(client, f"nextbest_events_total{k}") for k in (accepted, rejected)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1.0, 1.0]
    recommend(client, session_id="s1", n=3)
    requests = 'nextbest_http_requests_total{method="GET",route="/v1/recommendations",status="200"}'
    assert metric(client, requests) >= 1.0
    assert "nextbest_http_request_duration_seconds_bucket" in client.get("/metrics").text
    assert metric(client, 'nextbest_model_info{model="gru4rec"') == 1.0
    schema = client.get("/openapi.json").json()
    paths = {"/v1/events", "/v1/recommendations", "/v1/items", "/v1/items/{item_id}/similar"}
    assert paths <= set(schema["paths"])
    assert schema["paths"]["/v1/events"]["post"]["security"] == [{"apiKey": []}]
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("env", "overrides", "level"),
    [
        ({}, {}, 2),  # FULL by default: a commit is on disk before the reply
        ({"NEXTBEST_SQLITE_SYNCHRONOUS": "NORMAL"}, {}, 1),
        ({}, {"sqlite_synchronous": "NORMAL"}, 1),
        ({"NEXTBEST_SQLITE_SYNCHRONOUS": "FULL"}, {}, 2),
    ],
)
def test_the_servers_sqlite_log_is_wal_and_syncs_as_set(
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    overrides: dict[str, Any],
    level: int,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = make_client(**overrides)
    assert send(client, view("e1", "s1", item(1))).status_code == 200
    engine = client.app.state.services.log.log.engine  # type: ignore[attr-defined]
    assert sqlite_pragmas(engine) == [("wal", level)] * 3


def test_cors_allows_the_shops_origin_only(make_client: MakeClient) -> None:
    client = make_client(cors_origins=("https://shop.example",))
    preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
    reply = client.options("/v1/events", headers=preflight)
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "https://shop.example"
    other = client.options("/v1/events", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_catalog_upsert_makes_new_items_known_and_stock_counts(client: TestClient) -> None:
    new = {"item_id": "fresh-1", "title": "New arrival", "category_path": ["Shoes"], "price": 10}
    reply = client.put(
        "/v1/items",
        json={"items": [new, {"item_id": item(8), "in_stock": False}]},
        headers=auth(ADMIN),
    )
    assert reply.json() == {"upserted": 2}
    assert send(client, view("e1", "s1", "fresh-1")).status_code == 200
    send(client, view("e2", "s1", item(7)))
    ids = [e["item_id"] for e in recommend(client, session_id="s1", n=29).json()["items"]]
    assert item(8) not in ids  # out of stock
    bad = client.put(
        "/v1/items", json={"items": [{"item_id": "x", "price": -1}]}, headers=auth(ADMIN)
    )
    assert bad.status_code == 422 and fields(bad) == ["items[0].price"]


def test_events_are_acknowledged_when_the_state_store_fails(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = client.app.state.services.store  # type: ignore[attr-defined]
    send(client, view("e1", "s1", item(3)))
    assert top(client, session_id="s1") == item(4)

    def broken(*args: Any) -> None:
        raise ConnectionError("the state store is down")

    with monkeypatch.context() as patch:
        patch.setattr(store, "update", broken)
        reply = send(client, view("e2", "s1", item(4)))
    assert reply.status_code == 200 and reply.json()["accepted"] == 1
    assert top(client, session_id="s1") == item(5)  # the state was rebuilt from the log
    with monkeypatch.context() as patch:  # down before the commit too: reads fail as well
        patch.setattr(store, "update", broken)
        patch.setattr(store, "get_many", broken)
        patch.setattr(store, "guess_many", broken)
        reply = send(client, view("e3", "s1", item(5)), view("e4", "new", item(1)))
    assert reply.status_code == 200 and reply.json()["accepted"] == 2
    assert top(client, session_id="s1") == item(6)
    assert top(client, session_id="new") == item(2)


def test_the_api_over_postgresql_and_redis(
    make_client: MakeClient, pg_schema: tuple[str, str], redis_prefix: tuple[str, str]
) -> None:
    (database, schema), (redis_url, prefix) = pg_schema, redis_prefix
    backends = {"database_url": database, "database_schema": schema}
    backends |= {"redis_url": redis_url, "redis_prefix": prefix}
    client = make_client(**backends)
    assert (
        send(client, view("e1", "s1", item(12)), view("e1", "s1", item(12))).json()["accepted"] == 1
    )
    client.put("/v1/items", json={"items": [{"item_id": "pg-new"}]}, headers=auth(ADMIN))
    assert send(client, view("e2", "s1", "pg-new"), view("e3", "s1", item(13))).status_code == 200
    assert top(client, session_id="s1") == item(14)
    again = make_client(**backends)  # a second server over the same PostgreSQL and Redis
    assert top(again, session_id="s1") == item(14)
    assert send(again, view("e3", "s1", item(13))).json()["duplicates"] == ["e3"]


def test_the_catalog_report_takes_the_admin_key_and_counts_what_items_lack(
    client: TestClient,
) -> None:
    items = [
        {"item_id": "r1", "category_path": ["A", "B"], "brand": "Z", "price": 3.0},
        {"item_id": "r2", "category_path": ["A", "B"], "price": 4.0, "attributes": {"c": "red"}},
    ]
    assert client.put("/v1/items", json={"items": items}, headers=auth(ADMIN)).status_code == 200
    assert client.get("/v1/catalog/report", headers=auth(READ)).status_code == 403
    reply = client.get("/v1/catalog/report", headers=auth(ADMIN))
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["items"] >= 2 and report["problems"] == []
    before = client.get("/v1/catalog/report", headers=auth(ADMIN)).json()["missing"]["brand"]
    more = [{"item_id": f"nb{i}", "category_path": ["A"]} for i in range(10)]
    client.put("/v1/items", json={"items": more}, headers=auth(ADMIN))
    after = client.get("/v1/catalog/report", headers=auth(ADMIN)).json()
    assert after["items"] == report["items"] + 10
    assert after["missing"]["brand"] > before  # ten more items without a brand


def test_an_item_attribute_of_an_unknown_type_is_a_422_naming_it(client: TestClient) -> None:
    items = [
        {"item_id": "ok-1", "attributes": {"colours": ["red", "blue"]}},
        {"item_id": "bad-1", "attributes": {"colour": "red", "spec": {"width": 3}}},
    ]
    reply = client.put("/v1/items", json={"items": items}, headers=auth(ADMIN))
    assert reply.status_code == 422
    assert fields(reply) == ["items[1].attributes.spec"]
    assert "an object" in reply.json()["detail"][0]["message"]
    report = client.get("/v1/catalog/report", headers=auth(ADMIN)).json()
    assert "colours" not in report["attributes"]  # the whole batch was refused, none kept
