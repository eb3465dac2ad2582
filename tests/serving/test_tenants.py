"""Tenants: one deployment serves two shops, and a key names its shop. With shop B's keys
(browser, write, read, admin) every read and write that could reach shop A's data is tried
with A's ids; none finds anything of A, nothing B writes lands in A, and A's own keys still see
all of A. On SQLite with the in-process store, and on PostgreSQL with Redis."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving_helpers import ADMIN, BROWSER, READ, WRITE, MakeClient, auth, item, view
from sqlalchemy import create_engine, text

from nextbest.events.log import sqlite_url
from nextbest.serving.settings import ServingSettings

B = {"write": "shop-b-write-key-001", "read": "shop-b-read-key-0001",
     "admin": "shop-b-admin-key-001", "browser": "shop-b-browser-key-1"}  # fmt: skip
SECRET_SESSION, SECRET_USER = "a-secret-session", "a-secret-user"


@pytest.fixture(params=["sqlite+memory", "postgresql+redis"])
def backends(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite+memory":
        yield {}
        return
    database, schema = request.getfixturevalue("pg_schema")
    redis_url, prefix = request.getfixturevalue("redis_prefix")  # B's keys are under it too
    yield {"database_url": database, "database_schema": schema, "redis_url": redis_url,
           "redis_prefix": prefix}  # fmt: skip
    engine = create_engine(database)
    with engine.begin() as connection:  # shop B's schema, beside the fixture's own
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}_shop_b" CASCADE'))
    engine.dispose()


def shop_b_home(home: Path) -> Path:
    """Shop B's data folder: the same model (so a leak would show), keys of its own."""
    folder = home / "tenants" / "shop-b"
    folder.mkdir(parents=True)
    shutil.copytree(home / "models", folder / "models")
    (folder / "api-keys.json").write_text(json.dumps(B))
    return folder


def test_no_read_or_write_with_shop_b_keys_reaches_shop_a(
    make_client: MakeClient, home: Path, backends: dict[str, Any]
) -> None:
    shop_b_home(home)
    client = make_client(tenants=("shop-b",), **backends)
    items = [{"item_id": item(j), "title": f"A's product {j}"} for j in range(30)]
    assert client.put("/v1/items", json={"items": items}, headers=auth(ADMIN)).is_success
    a_events = [view(f"a{k}", SECRET_SESSION, item(k + 3), user_id=SECRET_USER) for k in range(3)]
    assert client.post("/v1/events", json={"events": a_events}, headers=auth(WRITE)).is_success
    listed = client.get(
        "/v1/recommendations", params={"session_id": SECRET_SESSION, "n": 5}, headers=auth(READ)
    ).json()
    a_list = listed["recommendation_id"]
    assert listed["items"][0]["item_id"] == item(6)  # A's session goes on from 3, 4, 5

    def as_b(method: str, path: str, scope: str = "read", **kwargs: Any) -> Any:
        return client.request(method, path, headers=auth(B[scope]), **kwargs)

    # reads with A's ids: B sees a stranger, an empty history, nothing of A's catalog or lists
    b_list = as_b("GET", "/v1/recommendations", params={"session_id": SECRET_SESSION, "n": 5})
    assert b_list.status_code == 200 and b_list.json()["items"][0]["item_id"] != item(6)
    assert as_b("GET", f"/v1/recommendations/{a_list}", "admin").status_code == 404
    user = as_b("GET", f"/v1/users/{SECRET_USER}/affinity").json()
    assert user["events"] == 0
    session = as_b("GET", f"/v1/sessions/{SECRET_SESSION}/affinity").json()
    assert session["events"] == 0
    report = as_b("GET", "/v1/catalog/report", "admin").json()
    assert "A's product" not in json.dumps(report)
    search = as_b("GET", "/v1/search", params={"q": "product", "session_id": "x"})
    assert search.status_code == 200 and search.json()["items"] == []  # B's catalog is empty
    dashboard = as_b("GET", "/v1/dashboard", "admin")
    assert dashboard.status_code == 200 and SECRET_SESSION not in dashboard.text
    for path in ("/v1/models", "/v1/placements", "/v1/experiments", "/v1/ranker"):
        reply = as_b("GET", path, "admin")
        assert reply.status_code in (200, 404, 409), (path, reply.text)
        assert SECRET_SESSION not in reply.text and SECRET_USER not in reply.text
    # writes with A's ids go to B's shop only
    b_events = [view("b1", SECRET_SESSION, item(20), user_id=SECRET_USER)]
    assert as_b("POST", "/v1/events", "write", json={"events": b_events}).status_code == 200
    login = {"session_id": SECRET_SESSION, "user_id": "someone-else"}
    assert as_b("POST", "/v1/identify", "write", json=login).status_code in (200, 409)
    b_items = {"items": [{"item_id": item(1), "title": "B's product"}]}
    assert as_b("PUT", "/v1/items", "admin", json=b_items).status_code == 200
    erased = as_b("DELETE", f"/v1/users/{SECRET_USER}", "admin").json()
    assert erased["events"] == 1  # B's one event of that id, not A's three
    browser = client.post(
        "/v1/events", json={"events": [view("b2", "b-session", item(2))]},
        headers=auth(B["browser"]),
    )  # fmt: skip
    assert browser.status_code == 200

    # A is whole: its own keys see all of it, and nothing of B is in it
    again = client.get(
        "/v1/recommendations", params={"session_id": SECRET_SESSION, "n": 5}, headers=auth(READ)
    ).json()
    assert again["items"][0]["item_id"] == item(6)
    assert client.get(f"/v1/recommendations/{a_list}", headers=auth(ADMIN)).status_code == 200
    profile = client.get(f"/v1/users/{SECRET_USER}/affinity", headers=auth(READ)).json()
    assert profile["events"] == 3
    a_log = client.app.state.services.log.log  # type: ignore[attr-defined]
    b_log = client.app.state.tenants["shop-b"].log.log  # type: ignore[attr-defined]
    assert sorted(e.event_id for e in a_log.iter_events()) == ["a0", "a1", "a2"]
    assert sorted(e.event_id for e in b_log.iter_events()) == ["b2"]  # b1 was erased
    a_catalog = client.app.state.services.catalog.catalog  # type: ignore[attr-defined]
    assert a_catalog.get([item(1)])[item(1)].title == "A's product 1"  # B's upload stayed B's
    assert client.get("/v1/models", headers=auth(BROWSER)).status_code == 403  # scopes hold


def test_tenant_settings_and_a_tenant_without_keys(tmp_path: Path) -> None:
    settings = ServingSettings(home=tmp_path, redis_prefix="nb:", tenants=("shop-b",))
    b = settings.for_tenant("shop-b")
    assert b.home == tmp_path / "tenants" / "shop-b" and b.redis_prefix == "nb:shop-b:"
    assert b.database == sqlite_url(tmp_path / "tenants" / "shop-b") and b.tenants == ()
    pg = ServingSettings(home=tmp_path, database_url="postgresql+psycopg://x@h/db")
    assert pg.for_tenant("shop-b").database_schema == "nextbest_shop_b"
    with pytest.raises(ValueError, match="tenant name"):
        settings.for_tenant("../escape")
    from nextbest.serving.server import prepare

    (tmp_path / "api-keys.json").write_text(json.dumps({"admin": "x" * 20}))
    with pytest.raises(ValueError, match="NEXTBEST_TENANT=shop-b nextbest keys new"):
        prepare(settings, 1)
    (tmp_path / "tenants" / "shop-b" / "api-keys.json").write_text(json.dumps({"read": "x" * 20}))
    with pytest.raises(ValueError, match="also"):
        prepare(settings, 1)  # the same key in two tenants


def test_a_served_tenant_and_its_own_commands(home: Path) -> None:
    """`nextbest serve` with NEXTBEST_TENANTS answers shop B's keys from B's folder, and a
    command with NEXTBEST_TENANT=shop-b works on B's log and models, not A's."""
    from server_process import Server, free_port
    from typer.testing import CliRunner

    from nextbest.cli.main import app
    from nextbest.models.store import list_versions

    b_home = shop_b_home(home)
    server = Server(home, free_port(), {"NEXTBEST_TENANTS": "shop-b"}, "serve.log")
    try:
        events = [view(f"b{k}-{j}", f"b-{k}", item(k % 10 + j), timestamp=1.79e9 + 60 * k + j)
                  for k in range(60) for j in range(4)]  # fmt: skip
        reply = server.client.post("/v1/events", json={"events": events}, headers=auth(B["write"]))
        assert reply.status_code == 200, reply.text
        assert server.events(view("a-only", "a-1", item(1))).status_code == 200  # A's key
    finally:
        server.stop()
    a_versions = [v.name for v in list_versions(home)]
    trained = CliRunner().invoke(
        app, ["train", "--from-log", "--model", "covisit", "--holdout-days", "0.01"],
        env={"NEXTBEST_HOME": str(home), "NEXTBEST_TENANT": "shop-b"},
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert [v.name for v in list_versions(home)] == a_versions  # A's models untouched
    assert any(v.name.endswith("-covisit") for v in list_versions(b_home))


def test_a_revoked_tenant_key_stops_working_without_a_restart(
    make_client: MakeClient, home: Path
) -> None:
    """The server finds a key's shop in a table of every shop's keys; editing shop B's keys
    file revokes B's old browser key as soon as B's ring reads the file again (within a
    second), and a key B's file gives that A already holds is refused for both."""
    b_home = shop_b_home(home)
    client = make_client(tenants=("shop-b",))
    b_keys = client.app.state.tenants["shop-b"].keys  # type: ignore[attr-defined]

    def status(key: str) -> int:
        reply = client.get("/v1/recommendations", params={"session_id": "s"}, headers=auth(key))
        return reply.status_code

    assert (status(B["browser"]), status(READ)) == (200, 200)
    new_browser = "shop-b-browser-key-2"
    (b_home / "api-keys.json").write_text(json.dumps(B | {"browser": new_browser}))
    b_keys._next_look = 0.0  # as if a second had passed
    assert (status(B["browser"]), status(new_browser)) == (401, 200)
    (b_home / "api-keys.json").write_text(json.dumps(B | {"browser": [new_browser, READ]}))
    b_keys._next_look = 0.0
    reply = client.get("/v1/recommendations", params={"session_id": "s"}, headers=auth(READ))
    assert reply.status_code == 403 and reply.json()["error"] == "ambiguous API key"
    assert status(B["read"]) == 200  # B's other keys stay B's
