"""A backend that does not answer (docs/serving.md, "Errors" and "Operations"): the reply is
503 with `Retry-After`, `/healthz` is 503 and names the backend, nothing is half-done, and
the server recovers by itself when the backend is back.

The backends are the machine's PostgreSQL and Redis, reached through a `TcpProxy` that the
test cuts (open connections closed, new ones refused) and restores."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from serving_helpers import MakeClient, item, recommend, send, top, view
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy


@pytest.fixture
def pg_behind_proxy(pg_schema: tuple[str, str]) -> Iterator[tuple[str, str, TcpProxy]]:
    """(database URL through the proxy, schema, the proxy)."""
    url, schema = pg_schema
    parsed = make_url(url)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    proxied = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield proxied, schema, proxy
    proxy.close()


@pytest.fixture
def redis_behind_proxy(redis_prefix: tuple[str, str]) -> Iterator[tuple[str, str, TcpProxy]]:
    """(Redis URL through the proxy, key prefix, the proxy)."""
    url, prefix = redis_prefix
    parsed = urlsplit(url)
    proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 6379)
    yield f"redis://127.0.0.1:{proxy.port}{parsed.path}", prefix, proxy
    proxy.close()


def assert_unavailable(reply: Any) -> None:
    """The documented answer of a backend that does not answer."""
    assert reply.status_code == 503, reply.text
    assert int(reply.headers["Retry-After"]) >= 1  # whole seconds, as HTTP has it
    body = reply.json()
    assert "unavailable" in body["error"] and body["detail"] == []


def problems(reply: Any) -> list[str]:
    """The backends /healthz names as not answering."""
    return [problem.split(":", 1)[0] for problem in reply.json()["problems"]]


def after_retries(call: Callable[[], Any], attempts: int = 20) -> Any:
    """`call()` until it is not a 503 (each 503 in the documented form), as a client that
    honours Retry-After does, but without waiting the whole second."""
    for _ in range(attempts - 1):
        reply = call()
        if reply.status_code != 503:
            return reply
        assert_unavailable(reply)
        time.sleep(0.1)
    return call()


def test_the_database_down_is_503_with_retry_after_and_the_server_recovers(
    make_client: MakeClient, pg_behind_proxy: tuple[str, str, TcpProxy]
) -> None:
    url, schema, proxy = pg_behind_proxy
    client = make_client(database_url=url, database_schema=schema)
    assert send(client, view("e1", "s1", item(3))).status_code == 200
    assert client.get("/healthz").status_code == 200

    proxy.down()
    assert_unavailable(send(client, view("e2", "s1", item(4))))
    assert_unavailable(send(client, view("e3", "s2", item(9))))  # a new session alike
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert problems(health) == ["event log"]

    proxy.up()
    retried = after_retries(lambda: send(client, view("e2", "s1", item(4))))
    assert retried.status_code == 200, retried.text
    assert retried.json()["accepted"] == 1  # nothing of the failed attempt was kept
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["problems"] == []
    assert top(client, session_id="s1") == item(5)  # the state moved once: 3, 4 -> 5
    assert send(client, view("e2", "s1", item(4))).json()["duplicates"] == ["e2"]


def test_the_state_store_down_keeps_events_and_is_503_for_recommendations(
    make_client: MakeClient, redis_behind_proxy: tuple[str, str, TcpProxy]
) -> None:
    url, prefix, proxy = redis_behind_proxy
    client = make_client(redis_url=url, redis_prefix=prefix)
    assert send(client, view("e1", "s1", item(3))).status_code == 200
    assert top(client, session_id="s1") == item(4)

    proxy.down()
    # events do not depend on the state store: logged and acknowledged all the same
    logged = send(client, view("e2", "s2", item(7)))
    assert logged.status_code == 200 and logged.json()["accepted"] == 1, logged.text
    assert_unavailable(recommend(client, session_id="s1", n=3))
    health = client.get("/healthz")
    assert health.status_code == 503 and problems(health) == ["state store"]

    proxy.up()
    answer = after_retries(lambda: recommend(client, session_id="s2", n=3))
    assert answer.status_code == 200, answer.text
    # s2's state could not be stored: it is rebuilt from the log, event e2 included
    assert answer.json()["items"][0]["item_id"] == item(8)
    assert top(client, session_id="s1") == item(4)
    assert client.get("/healthz").status_code == 200
