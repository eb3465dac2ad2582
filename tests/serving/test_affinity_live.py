"""Affinity profiles in the live state: every event moves the session's and the user's
profile, in the in-process store and in Redis; a lost profile is rebuilt from the log; a login
counts the session's earlier events once; the routes take the read key."""

from __future__ import annotations

from typing import Any

import pytest
from serving_helpers import ADMIN, READ, WRITE, MakeClient, TestClient, auth, send, view

CATALOG = [
    {"item_id": "run-1", "category_path": ["Sports", "Running", "Shoes"], "brand": "Peak",
     "price": 80.0, "discount": 0.25},
    {"item_id": "run-2", "category_path": ["Sports", "Running", "Shoes"], "brand": "Peak",
     "price": 120.0},
    {"item_id": "run-3", "category_path": ["Sports", "Running", "Shoes"], "brand": "Stride",
     "price": 60.0},
    {"item_id": "pan-1", "category_path": ["Home", "Kitchen", "Pans"], "brand": "Hausgut",
     "price": 30.0},
    {"item_id": "pan-2", "category_path": ["Home", "Kitchen", "Pans"], "brand": "Hausgut",
     "price": 45.0, "discount": 0.5},
]  # fmt: skip


def event(event_id: str, session: str, item_id: str, kind: str = "view", **extra: Any) -> Any:
    return view(event_id, session, item_id, type=kind, **extra)


def brands(reply: Any) -> dict[str, float]:
    assert reply.status_code == 200, reply.text
    return {entry["value"]: entry["score"] for entry in reply.json()["affinity"]["brand"]}


def user_affinity(client: TestClient, user: str) -> Any:
    return client.get(f"/v1/users/{user}/affinity", headers=auth(READ))


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "memory":
        return {}
    url, prefix = request.getfixturevalue("redis_prefix")
    return {"redis_url": url, "redis_prefix": prefix}


def shop(make_client: MakeClient, **overrides: Any) -> TestClient:
    client = make_client(**overrides)
    reply = client.put("/v1/items", json={"items": CATALOG}, headers=auth(ADMIN))
    assert reply.status_code == 200, reply.text
    return client


def test_each_event_moves_the_users_and_the_sessions_profile(
    make_client: MakeClient, backend: dict[str, str]
) -> None:
    client = shop(make_client, **backend)
    assert brands(user_affinity(client, "u1")) == {}  # nothing yet: an empty profile
    send(
        client,
        event("e1", "s1", "pan-1", user_id="u1"),
        event("e2", "s1", "pan-2", user_id="u1"),
        event("e3", "s1", "pan-2", "cart", user_id="u1"),
    )
    first = brands(user_affinity(client, "u1"))
    assert first == {"Hausgut": 1.0}
    send(client, event("e4", "s2", "run-1", user_id="u1"))  # a later session of the user
    after = user_affinity(client, "u1").json()
    scores = {e["value"]: e["score"] for e in after["affinity"]["brand"]}
    assert scores["Hausgut"] > scores["Peak"] > 0.0
    assert after["events"] == 4
    assert after["affinity"]["category_1"][0]["value"] == "Home"
    assert 0.0 <= after["affinity"]["discount_sensitivity"] <= 1.0
    session = client.get("/v1/sessions/s2/affinity", headers=auth(READ))
    assert brands(session) == {"Peak": 1.0}  # a session's profile is its own events only
    assert session.json()["affinity"]["category"][0]["value"] == "Sports > Running > Shoes"
    send(client, event("e5", "s2", "run-2", "purchase", user_id="u1"))  # a purchase weighs 5
    assert brands(user_affinity(client, "u1")).get("Peak", 0) > scores["Peak"]
    anonymous = client.get("/v1/sessions/nobody/affinity", headers=auth(READ))
    assert anonymous.status_code == 200 and anonymous.json()["events"] == 0


def test_a_repeated_event_counts_once(make_client: MakeClient, backend: dict[str, str]) -> None:
    client = shop(make_client, **backend)
    send(client, event("d1", "s1", "pan-1", user_id="u2"), event("d2", "s1", "run-1", user_id="u2"))
    before = user_affinity(client, "u2").json()
    reply = send(client, event("d1", "s1", "pan-1", user_id="u2"))
    assert reply.json()["duplicates"] == ["d1"]
    assert user_affinity(client, "u2").json() == before


def test_a_lost_profile_is_rebuilt_from_the_log_as_it_was(make_client: MakeClient) -> None:
    client = shop(make_client)
    events = [
        event("r1", "s1", "pan-1", user_id="u3"),
        event("r2", "s1", "pan-2", "cart", user_id="u3"),
        event("r3", "s2", "run-3", user_id="u3"),
    ]
    for e in events:  # one batch per event: the live path, not a rebuild
        send(client, e)
    live = user_affinity(client, "u3").json()
    session_live = client.get("/v1/sessions/s1/affinity", headers=auth(READ)).json()
    client.__exit__(None, None, None)
    restarted = make_client()  # the in-process store starts empty: rebuilt from the log
    assert user_affinity(restarted, "u3").json() == live
    assert restarted.get("/v1/sessions/s1/affinity", headers=auth(READ)).json() == session_live


def test_a_login_counts_the_sessions_earlier_events_once(
    make_client: MakeClient, backend: dict[str, str]
) -> None:
    client = shop(make_client, **backend)
    send(client, event("l1", "old", "run-1", user_id="u4"))  # the user's profile exists
    send(client, event("l2", "anon", "pan-1"), event("l3", "anon", "pan-2", "cart"))
    assert brands(user_affinity(client, "u4")) == {"Peak": 1.0}
    login = {"session_id": "anon", "user_id": "u4"}
    assert client.post("/v1/identify", json=login, headers=auth(WRITE)).status_code == 200
    after = brands(user_affinity(client, "u4"))
    assert after["Hausgut"] > after["Peak"]  # a view and a cart add against one view
    client.post("/v1/identify", json=login, headers=auth(WRITE))  # again: nothing moves
    assert brands(user_affinity(client, "u4")) == after
    send(client, event("l4", "anon", "run-3"))  # the session's events now count for u4
    assert "Stride" in brands(user_affinity(client, "u4"))


def test_the_affinity_routes_take_the_read_key_and_check_their_input(client: TestClient) -> None:
    assert client.get("/v1/users/u/affinity").status_code == 401
    assert client.get("/v1/users/u/affinity", headers=auth(WRITE)).status_code == 403
    assert client.get("/v1/sessions/s/affinity", headers=auth(WRITE)).status_code == 403
    assert client.get("/v1/users/u/affinity", headers=auth(ADMIN)).status_code == 200
    reply = client.get("/v1/users/u/affinity", params={"n": 0}, headers=auth(READ))
    assert reply.status_code == 422 and reply.json()["detail"][0]["field"] == "n"
    long_id = "x" * 300
    assert client.get(f"/v1/users/{long_id}/affinity", headers=auth(READ)).status_code == 422


def test_a_damaged_profile_is_rebuilt_and_the_session_still_moves(make_client: MakeClient) -> None:
    client = shop(make_client)
    send(client, event("z1", "s1", "pan-1", user_id="u5"))
    store = client.app.state.services.store  # type: ignore[attr-defined]
    [good] = store.get_many(["a:u5"])
    store.update(["a:u5"], lambda _: [good[:-20]], lasting=True)  # cut short
    send(client, event("z2", "s1", "run-1", user_id="u5"))
    assert set(brands(user_affinity(client, "u5"))) == {"Hausgut", "Peak"}  # from the log
    session = client.get("/v1/sessions/s1/affinity", headers=auth(READ)).json()
    assert session["events"] == 2
