"""Keys and identity secrets rotate by editing the keys file, without a restart."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from serving_helpers import MakeClient, auth

from nextbest.serving.auth import ApiKeys, KeyRing, Scope
from nextbest.user_tokens import sign_user_token

OLD_BROWSER, NEW_BROWSER = "old-browser-key-0001", "new-browser-key-0001"
OLD_SECRET, NEW_SECRET = "old-secret-" + "0" * 30, "new-secret-" + "1" * 30


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, **fields: object) -> None:
    path.write_text(json.dumps(fields))


def test_the_ring_reads_the_file_again_when_it_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "keys.json", Clock()
    write(path, browser=OLD_BROWSER)
    ring = KeyRing(ApiKeys(admin=("env-admin-key-00001",)), path, interval=1.0, clock=clock)
    assert ring.current.scopes(OLD_BROWSER) == {Scope.BROWSER}
    write(path, browser=[OLD_BROWSER, NEW_BROWSER])
    assert ring.current.scopes(NEW_BROWSER) == set()  # looked at once a second at most
    clock.now += 1.0
    assert ring.current.scopes(NEW_BROWSER) == {Scope.BROWSER}
    assert ring.current.admin == ("env-admin-key-00001",)  # the environment's stay
    path.write_text("{not json")
    clock.now += 1.0
    with caplog.at_level(logging.ERROR):
        assert ring.current.scopes(NEW_BROWSER) == {Scope.BROWSER}  # kept
    assert "kept the previous API keys" in caplog.text
    write(path, browser=NEW_BROWSER)
    clock.now += 1.0
    assert ring.current.scopes(OLD_BROWSER) == set() and ring.current.browser == (NEW_BROWSER,)


def test_a_running_server_takes_rotated_keys_and_secrets(
    make_client: MakeClient, tmp_path: Path
) -> None:
    path = tmp_path / "rotating-keys.json"
    write(path, browser=OLD_BROWSER, identity_secrets=OLD_SECRET)
    client = make_client(browser_keys=(), identity_secrets=(), keys_file=path)
    services = client.app.state.services  # type: ignore[attr-defined]

    def ask(key: str, secret: str) -> int:
        headers = auth(key) | {"X-User-Token": sign_user_token("u1", secret)}
        reply = client.get("/v1/recommendations", params={"user_id": "u1"}, headers=headers)
        return reply.status_code

    assert ask(OLD_BROWSER, OLD_SECRET) == 200
    assert (ask(NEW_BROWSER, OLD_SECRET), ask(OLD_BROWSER, NEW_SECRET)) == (401, 403)
    # step 1: both keys and both secrets (the new secret first: the one to sign with)
    write(path, browser=[OLD_BROWSER, NEW_BROWSER], identity_secrets=[NEW_SECRET, OLD_SECRET])
    services.keys._next_look = 0.0  # as if a second had passed
    assert {ask(k, s) for k in (OLD_BROWSER, NEW_BROWSER) for s in (OLD_SECRET, NEW_SECRET)} == {
        200
    }
    # step 2: the old ones are gone
    write(path, browser=NEW_BROWSER, identity_secrets=NEW_SECRET)
    services.keys._next_look = 0.0
    assert (ask(NEW_BROWSER, NEW_SECRET), ask(OLD_BROWSER, NEW_SECRET)) == (200, 401)
    assert ask(NEW_BROWSER, OLD_SECRET) == 403


def test_key_owners_find_a_key_in_one_lookup_and_follow_revocations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which shop holds a key: one digest of the presented key and one lookup, in a table made
    again only when a shop's keys change; a key removed from a shop's file stops working as
    soon as that shop's ring reads the file again (within its interval), and a key two shops
    hold is refused."""
    from nextbest.serving import auth as auth_module
    from nextbest.serving.auth import KeyOwners
    from nextbest.serving.errors import ApiError

    clock = Clock()
    a_path, b_path = tmp_path / "a.json", tmp_path / "b.json"
    write(a_path, read="shop-a-read-key-0001")
    write(b_path, browser=OLD_BROWSER, read="shop-b-read-key-0001")
    rings = [KeyRing(ApiKeys(), path, interval=1.0, clock=clock) for path in (a_path, b_path)]
    owners = KeyOwners([("a", rings[0]), ("b", rings[1])])
    digested: list[str] = []
    digest = auth_module.key_digest
    monkeypatch.setattr(auth_module, "key_digest", lambda key: digested.append(key) or digest(key))

    found = owners.find(OLD_BROWSER)
    assert (found.owner, found.granted, found.keys.read) == (
        "b", {Scope.BROWSER}, ("shop-b-read-key-0001",)
    )  # fmt: skip
    table = owners._made[1]
    assert owners.find("shop-a-read-key-0001").owner == "a" and owners._made[1] is table
    assert digested == [OLD_BROWSER, "shop-a-read-key-0001"]  # one digest per lookup
    unknown = owners.find("nobody-has-this-key-01")
    assert (unknown.owner, unknown.granted) == ("a", frozenset())  # the default's: a 401
    assert len(owners._made[1]) == 3  # configured keys only: an unknown key is not kept

    write(b_path, browser=NEW_BROWSER, read="shop-b-read-key-0001")  # the old one revoked
    clock.now += 1.0  # the ring's interval: it reads the file again
    assert owners.find(OLD_BROWSER).granted == frozenset()
    assert owners.find(NEW_BROWSER).owner == "b"
    write(b_path, browser=NEW_BROWSER, read="shop-a-read-key-0001")  # a's key, given to b too
    clock.now += 1.0
    with pytest.raises(ApiError) as refused:
        owners.find("shop-a-read-key-0001")
    assert refused.value.status_code == 403
    assert refused.value.detail["error"] == "ambiguous API key"
