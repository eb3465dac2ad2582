"""As an attacker holding the shop's browser key (it is in every page): every way to read or
write another user's data is refused (401, 403 or 429) and nothing is written for the victim.
Beside each attack, the same request made legitimately succeeds, so a refusal is the check's
doing and not a broken route."""

from __future__ import annotations

import time
from typing import Any

import pytest
from serving_helpers import (
    ADMIN,
    BROWSER,
    READ,
    SECRET,
    WRITE,
    MakeClient,
    auth,
    item,
    view,
)
from starlette.testclient import TestClient

from nextbest.user_tokens import sign_user_token

VICTIM, MALLORY = "victim-user", "mallory"
VICTIM_SESSION = "victim-session"


def token(user: str, secret: str = SECRET, ttl: float = 600, now: float | None = None) -> str:
    return sign_user_token(user, secret, ttl, now)


def browser(user_token: str | None = None) -> dict[str, str]:
    headers = auth(BROWSER)
    if user_token is not None:
        headers["X-User-Token"] = user_token
    return headers


def purchase(event_id: str, session: str, item_id: str, **extra: Any) -> dict[str, Any]:
    return {**view(event_id, session, item_id, **extra), "type": "purchase"}


@pytest.fixture
def shop(make_client: MakeClient) -> TestClient:
    """The victim shopped through the shop's backend: logged in, viewed, bought i05."""
    client = make_client()
    events = [
        view("v1", VICTIM_SESSION, item(3), user_id=VICTIM),
        view("v2", VICTIM_SESSION, item(4), user_id=VICTIM),
        purchase("v3", VICTIM_SESSION, item(5), user_id=VICTIM),
    ]
    assert (
        client.post("/v1/events", json={"events": events}, headers=auth(WRITE)).status_code == 200
    )
    return client


def written(client: TestClient) -> tuple[list[tuple[Any, ...]], int]:
    """Every logged event, and the number of answered lists kept."""
    services = client.app.state.services  # type: ignore[attr-defined]
    services.served.flush()
    kept = sum(
        len(batch)
        for placement in ("home", "search", "keywords")
        for batch in services.log.served_lists(placement, 0.0)
    )
    return services.log.export().rows(), kept


def refused(reply: Any, status: int = 403, field: str | None = None) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["error"] and body["detail"]
    if field is not None:
        assert body["detail"][0]["field"] == field, body


def test_the_browser_key_cannot_read_another_users_list_or_profile(shop: TestClient) -> None:
    before = written(shop)
    get = shop.get
    # a user id without a token, or with the attacker's own token
    for headers in (browser(), browser(token(MALLORY))):
        refused(get("/v1/recommendations", params={"user_id": VICTIM}, headers=headers))
        refused(shop.post("/v1/recommendations", json={"user_id": VICTIM}, headers=headers))
        refused(get("/v1/search", params={"q": "i01", "user_id": VICTIM}, headers=headers))
        refused(get("/v1/keywords", params={"user_id": VICTIM}, headers=headers))
        refused(get(f"/v1/users/{VICTIM}/affinity", headers=headers))
        # the victim's logged-in session stands for the victim: the same refusal
        for path in ("/v1/recommendations", "/v1/keywords"):
            refused(get(path, params={"session_id": VICTIM_SESSION}, headers=headers))
        refused(get(f"/v1/sessions/{VICTIM_SESSION}/affinity", headers=headers))
        refused(
            get("/v1/search", params={"q": "zzz", "session_id": VICTIM_SESSION}, headers=headers)
        )
    assert written(shop) == before  # no list was answered, so none was kept
    # the victim's own browser, with the token the shop's server gave them, gets theirs
    mine = get(
        "/v1/recommendations",
        params={"session_id": VICTIM_SESSION, "user_id": VICTIM},
        headers=browser(token(VICTIM)),
    )
    assert mine.status_code == 200 and item(5) not in {i["item_id"] for i in mine.json()["items"]}
    assert get(f"/v1/users/{VICTIM}/affinity", headers=browser(token(VICTIM))).status_code == 200
    # and the shop's server reads any user's with its read key
    assert get("/v1/recommendations", params={"user_id": VICTIM}, headers=auth(READ)).is_success


def test_the_browser_key_cannot_write_for_another_user(shop: TestClient) -> None:
    before = written(shop)
    post = shop.post
    attacks = [
        # events naming the victim, with no token or the attacker's own
        ([view("a1", "mallory-session", item(7), user_id=VICTIM)], browser()),
        ([view("a2", "mallory-session", item(7), user_id=VICTIM)], browser(token(MALLORY))),
        # one bad event sinks the batch: the good one beside it is not written either
        (
            [view("a3", "mallory-session", item(7)), purchase("a4", "m2", item(8), user_id=VICTIM)],
            browser(),
        ),
        # events into the victim's session, anonymously or as the attacker
        ([view("a5", VICTIM_SESSION, item(9))], browser()),
        ([view("a6", VICTIM_SESSION, item(9), user_id=MALLORY)], browser(token(MALLORY))),
    ]
    for events, headers in attacks:
        refused(post("/v1/events", json={"events": events}, headers=headers))
    # a login as the victim
    for headers in (browser(), browser(token(MALLORY))):
        login = {"session_id": "mallory-session", "user_id": VICTIM}
        refused(post("/v1/identify", json=login, headers=headers), field="user_id")
    assert written(shop) == before
    assert shop.app.state.services.log.session_owners(["mallory-session"]) == {}  # type: ignore[attr-defined]
    # the same requests made honestly go through
    mine = [view("m1", "mallory-session", item(7), user_id=MALLORY)]
    assert post("/v1/events", json={"events": mine}, headers=browser(token(MALLORY))).is_success
    anonymous = [view("m2", "anonymous-session", item(7))]
    assert post("/v1/events", json={"events": anonymous}, headers=browser()).is_success
    login = {"session_id": "mallory-session", "user_id": MALLORY}
    assert post("/v1/identify", json=login, headers=browser(token(MALLORY))).is_success


def test_expired_tampered_and_foreign_tokens_are_refused_whatever_the_request(
    shop: TestClient,
) -> None:
    before = written(shop)
    expired = token(VICTIM, now=time.time() - 3600)  # signed right, an hour old
    prefix, user, expiry, signature = token(MALLORY).split(".")
    other_user = sign_user_token(VICTIM, SECRET, 600).split(".")[1]
    tampered = ".".join([prefix, other_user, expiry, signature])  # mallory's signature
    later = ".".join([prefix, user, str(int(expiry) + 10**6), signature])  # a longer life
    foreign = token(VICTIM, secret="another-shops-secret-0123456789abcdef")
    for bad, why in [
        (expired, "expired"),
        (tampered, "not signed"),
        (later, "not signed"),
        (foreign, "not signed"),
        ("garbage", "not a user token"),
    ]:
        reply = shop.get("/v1/recommendations", params={"n": 3}, headers=browser(bad))
        refused(reply, field="x-user-token")
        assert why in reply.json()["detail"][0]["message"]
        event = [view(f"t-{why}", "anywhere", item(1))]  # anonymous, yet the token is bad
        refused(shop.post("/v1/events", json={"events": event}, headers=browser(bad)))
    assert written(shop) == before


def test_the_browser_key_reaches_only_its_routes(shop: TestClient) -> None:
    served = shop.get("/v1/recommendations", params={"n": 2}, headers=auth(READ)).json()
    for method, path, body in [
        ("PUT", "/v1/items", {"items": [{"item_id": "new"}]}),
        ("GET", f"/v1/recommendations/{served['recommendation_id']}", None),
        ("GET", "/v1/models", None),
        ("POST", "/v1/models/reload", None),
        ("GET", "/v1/experiments", None),
        ("GET", "/v1/dashboard", None),
        ("GET", "/v1/catalog/report", None),
    ]:
        reply = shop.request(method, path, json=body, headers=browser(token(VICTIM)))
        refused(reply, field="Authorization")
        assert "browser key" in reply.json()["error"]
    assert shop.get("/v1/models", headers=auth(ADMIN)).is_success
    # an unknown key is no key at all
    refused(shop.get("/v1/recommendations", headers=auth("no-such-key-0000000")), 401)


def test_a_flood_from_one_address_is_cut_off_with_retry_after(make_client: MakeClient) -> None:
    client = make_client(
        rate_limit_browser_requests_per_address=3.0,
        rate_limit_browser_events_per_address=10.0,
        rate_limit_burst_seconds=1.0,
    )
    replies = [client.get("/v1/recommendations", headers=browser()) for _ in range(6)]
    assert [r.status_code for r in replies[:3]] == [200] * 3
    assert {r.status_code for r in replies[3:]} == {429}
    assert int(replies[-1].headers["Retry-After"]) >= 1
    assert "browser address" in replies[-1].json()["detail"][0]["message"]
    # the shop's server shares nothing with the browsers' buckets
    assert client.get("/v1/recommendations", headers=auth(READ)).status_code == 200


def test_a_flood_of_events_is_cut_off_and_its_batch_not_written(make_client: MakeClient) -> None:
    client = make_client(
        rate_limit_browser_requests_per_address=0.0,
        rate_limit_browser_events_per_address=2.0,
        rate_limit_burst_seconds=1.0,
    )
    big = [view(f"f{k}", "flood", item(k)) for k in range(500)]  # a whole batch passes once
    assert client.post("/v1/events", json={"events": big}, headers=browser()).status_code == 200
    more = [view("f-more", "flood", item(1))]
    refused(client.post("/v1/events", json={"events": more}, headers=browser()), 429)
    events = client.app.state.services.log.export()  # type: ignore[attr-defined]
    assert "f-more" not in set(events["event_id"].to_list()) and len(events) == 500
