"""`DELETE /v1/users/{id}`: after it, no table, state key or export holds the person's events
or ids, on SQLite with the in-process store and on PostgreSQL with Redis; a bystander keeps
everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from serving_helpers import ADMIN, BROWSER, READ, WRITE, MakeClient, auth, item, view
from sqlalchemy import MetaData, insert, select
from starlette.testclient import TestClient

from nextbest.events.log.tables import trigger_tables

GHOST = "ghost-7f3a"  # every id of the person contains it: one substring to look for
SESSIONS = (f"{GHOST}-anonymous-then-login", f"{GHOST}-second-visit")
BYSTANDER = "bystander-19c2"


@pytest.fixture(params=["sqlite+memory", "postgresql+redis"])
def backends(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite+memory":
        return {}
    database, schema = request.getfixturevalue("pg_schema")
    redis_url, prefix = request.getfixturevalue("redis_prefix")
    return {
        "database_url": database,
        "database_schema": schema,
        "redis_url": redis_url,
        "redis_prefix": prefix,
    }


def shop_with_a_ghost(client: TestClient) -> None:
    """The person browsed anonymously, logged in, came back, bought, searched and was shown
    lists; a bystander did the same beside them."""
    items = [
        {"item_id": item(j), "title": f"Product {j}", "category_path": ["Sports", "Shoes"],
         "brand": "Acme", "price": 10.0 + j}
        for j in range(30)
    ]  # fmt: skip
    assert client.put("/v1/items", json={"items": items}, headers=auth(ADMIN)).is_success
    first, second = SESSIONS

    def send(*events: dict[str, Any]) -> None:
        reply = client.post("/v1/events", json={"events": list(events)}, headers=auth(WRITE))
        assert reply.status_code == 200, reply.text

    send(view("g1", first, item(1)), view("b1", BYSTANDER, item(1), user_id="bob"))
    login = {"session_id": first, "user_id": GHOST}
    assert client.post("/v1/identify", json=login, headers=auth(WRITE)).is_success
    send(
        view("g2", first, item(2), user_id=GHOST),
        {**view("g3", second, item(3), user_id=GHOST), "type": "purchase"},
        {
            "event_id": "g4",
            "type": "search",
            "session_id": second,
            "user_id": GHOST,
            "query": f"shoes for {GHOST}",
        },
        view("b2", BYSTANDER, item(2), user_id="bob"),
    )
    for params in ({"session_id": first}, {"user_id": GHOST}, {"session_id": BYSTANDER}):
        assert client.get("/v1/recommendations", params=params, headers=auth(READ)).is_success
    profile = client.get(f"/v1/users/{GHOST}/affinity", headers=auth(READ)).json()
    assert profile["events"] > 0  # the person has a profile to erase
    # the trigger channels hold a reminder waiting, one fired and its message, for both
    log = client.app.state.services.log.log  # type: ignore[attr-defined]
    _, _, pending, last, outbox = trigger_tables(log.metadata.schema)
    with log.engine.begin() as connection:
        for user in (GHOST, "bob"):
            connection.execute(
                insert(pending).values(
                    trigger="abandoned-cart",
                    user_id=user,
                    due_at=1e10,
                    session_id=f"{user}-s",
                    item_id=item(1),
                    event_time=1.0,
                )
            )
            connection.execute(insert(last).values(trigger="goes-with", user_id=user, fired_at=1.0))
            connection.execute(insert(outbox).values(
                id=f"m-{user}", trigger="goes-with", user_id=user,
                payload=f'{{"user_id": "{user}"}}', created_at=1.0, attempts=0,
                next_attempt_at=1.0, delivered_at=None, failed=False))  # fmt: skip


def everything_holding(client: TestClient, text: str) -> list[str]:
    """Every table row, state key and state value that contains `text`."""
    services = client.app.state.services  # type: ignore[attr-defined]
    services.served.flush()
    log = services.log.log  # under the group commit
    found = []
    every = MetaData(schema=log.metadata.schema)
    with log.engine.connect() as connection:
        every.reflect(connection)  # every table in the database, not only the log's own
        assert {"events", "trigger_outbox"} <= {t.name for t in every.sorted_tables}
        for table in every.sorted_tables:
            for row in connection.execute(select(table)):
                if text in repr(tuple(row)):
                    found.append(f"{table.name}: {tuple(row)}")
    store = services.store
    if hasattr(store, "client"):  # Redis: every key under the prefix, and its value
        for key in store.client.scan_iter(match=f"{store.prefix}*", count=1000):
            value = store.client.get(key) or b""
            if text.encode() in key or text.encode() in value:
                found.append(f"redis {key!r}")
    else:
        entries = {**{k: v for k, (_, v) in store._entries.items()}, **store._lasting}
        found += [f"store {k}" for k, v in entries.items() if text in k or text.encode() in v]
    found += [f"export {row}" for row in services.log.export().rows() if text in repr(row)]
    return found


def test_erasure_leaves_nothing_of_the_person_anywhere(
    make_client: MakeClient, backends: dict[str, Any]
) -> None:
    client = make_client(**backends)
    shop_with_a_ghost(client)
    assert everything_holding(client, GHOST)  # the search for it finds it before
    for key in (READ, WRITE, BROWSER):  # only the admin key erases
        assert client.delete(f"/v1/users/{GHOST}", headers=auth(key)).status_code == 403
    reply = client.delete(f"/v1/users/{GHOST}", headers=auth(ADMIN))
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "user_id": GHOST, "sessions": 2, "events": 4, "links": 2, "served_lists": 2,
    }  # fmt: skip
    assert everything_holding(client, GHOST) == []
    # the bystander keeps their events, link and list
    assert len(everything_holding(client, BYSTANDER)) >= 4
    assert len(everything_holding(client, "bob")) >= 3  # and their trigger rows
    # the person is a stranger now, and a repeated erasure deletes nothing
    profile = client.get(f"/v1/users/{GHOST}/affinity", headers=auth(READ)).json()
    assert profile["events"] == 0
    again = client.delete(f"/v1/users/{GHOST}", headers=auth(ADMIN)).json()
    assert (again["events"], again["sessions"], again["served_lists"]) == (0, 0, 0)


def test_a_bad_user_id_is_named(make_client: MakeClient) -> None:
    client = make_client()
    reply = client.delete("/v1/users/" + "x" * 300, headers=auth(ADMIN))
    assert reply.status_code == 422 and reply.json()["detail"][0]["field"] == "user_id"


def test_retention_deletes_events_older_than_the_setting_in_short_transactions(
    tmp_path: Path,
) -> None:
    from nextbest.events.log import open_event_log, sqlite_url
    from nextbest.events.schema import Event
    from nextbest.serving.erasure import forget_old_events

    log = open_event_log(sqlite_url(tmp_path))
    day = 86_400.0

    def event(event_id: str, session: str) -> Event:
        return Event(event_id=event_id, type="view", session_id=session, item_id=item(1),
                     timestamp=1.0)  # fmt: skip

    log.append([event(f"o{k}", f"s{k}") for k in range(7)], received_at=10 * day)
    log.append([event("n1", "s1")], received_at=40 * day)
    assert forget_old_events(log, keep_days=20, now=41 * day, chunk=3) == 7  # 3 + 3 + 1
    assert log.export()["event_id"].to_list() == ["n1"]
    assert forget_old_events(log, keep_days=20, now=41 * day) == 0
    log.close()
