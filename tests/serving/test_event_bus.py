"""The event bus (NEXTBEST_EVENT_BUS) on the machine's NATS JetStream, into the SQLite log:
acknowledged means stored in the stream, the consumer logs each event once and moves the
states, re-sent events are duplicates, a node that dies before acknowledging loses nothing,
and a bus that cannot be reached is named at start and is a 503 mid-request.

Each test has a stream of its own (`nats_stream`), deleted afterwards, made with a consumer
that redelivers after a second (ACK_WAIT), not 30: a stopping app, or a cut connection, leaves
messages handed to a pull request nobody reads any more, which wait that long."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from server_process import free_port
from serving_helpers import (
    MakeClient,
    TestClient,
    assert_logged_exactly_once,
    drained,
    item,
    send,
    stop,
    top,
    view,
)
from tcp_proxy import TcpProxy

from nextbest.events.log import open_event_log, sqlite_url
from nextbest.serving.bus import BusUnavailable, EventBus, decode

ACK_WAIT = 1.0


@pytest.fixture
def bus_stream(nats_stream: tuple[str, str]) -> tuple[str, str]:
    """`nats_stream`, made with the short redelivery (apps then find it and keep it)."""
    url, stream = nats_stream

    async def make() -> None:
        bus = EventBus(url, stream, ack_wait=ACK_WAIT)
        await bus.connect()
        await bus.close()

    asyncio.run(make())
    return nats_stream


def bus_settings(nats_stream: tuple[str, str]) -> dict[str, str]:
    url, stream = nats_stream
    return {"event_bus": url, "event_bus_stream": stream}


def test_acknowledged_events_are_logged_once_and_a_list_right_after_sees_them(
    home: Path, make_client: MakeClient, bus_stream: tuple[str, str]
) -> None:
    nats_stream = bus_stream
    client = make_client(**bus_settings(nats_stream))
    reply = send(client, view("e1", "s1", item(3)))
    assert reply.status_code == 200 and reply.json()["accepted"] == 1, reply.text
    assert top(client, session_id="s1") == item(4)  # read-your-writes: waited for the bus
    send(client, view("e2", "s1", item(4)))
    assert top(client, session_id="s1") == item(5)
    drained(*nats_stream)
    assert_logged_exactly_once(open_event_log(sqlite_url(home)), ["e1", "e2"])


def slow_log_commits(client: TestClient, seconds: float) -> None:
    """Every commit of the app's log answers `seconds` late (the bus stays as it is): a
    consumer that lags."""
    log = client.app.state.services.log  # type: ignore[attr-defined]
    submit = log.submit

    def late(*args: Any, **kwargs: Any) -> Future[Any]:
        done: Future[Any] = Future()

        def commit() -> None:
            committed = submit(*args, **kwargs)
            committed.add_done_callback(lambda f: done.set_result(f.result()))

        threading.Timer(seconds, commit).start()
        return done

    log.submit = late


def test_a_list_waits_for_its_session_events_on_a_lagging_bus_up_to_a_bound(
    make_client: MakeClient, bus_stream: tuple[str, str]
) -> None:
    nats_stream = bus_stream
    patient = make_client(**bus_settings(nats_stream), event_bus_wait_seconds=2.0)
    slow_log_commits(patient, 0.3)
    send(patient, view("e1", "s1", item(3)))
    started = time.monotonic()
    assert top(patient, session_id="s1") == item(4)  # waited for the lagging consumer
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    top(patient, session_id="other")  # a session with nothing pending does not wait
    assert time.monotonic() - started < 0.2
    stop(patient)

    hasty = make_client(**bus_settings(nats_stream), event_bus_wait_seconds=0.05)
    slow_log_commits(hasty, 1.0)
    send(hasty, view("e2", "s2", item(3)))
    started = time.monotonic()
    answer = top(hasty, session_id="s2")
    assert time.monotonic() - started < 0.5
    assert answer == top(hasty, session_id="never-seen")  # answered before its event was in
    drained(*nats_stream)  # the late commit lands before the app stops


def test_resent_events_are_duplicates_and_move_the_state_once(
    home: Path, make_client: MakeClient, bus_stream: tuple[str, str]
) -> None:
    nats_stream = bus_stream
    client = make_client(**bus_settings(nats_stream))
    batch = [view("e1", "s1", item(3)), view("e2", "s1", item(4))]
    assert send(client, *batch).json()["accepted"] == 2
    again = send(client, *batch, view("e2", "s1", item(4)))  # and once more in the batch
    assert again.status_code == 200
    assert again.json()["accepted"] == 0
    assert again.json()["duplicates"] == ["e1", "e2", "e2"]
    assert top(client, session_id="s1") == item(5)  # 3, 4 -> 5: each stepped once
    drained(*nats_stream)
    assert_logged_exactly_once(open_event_log(sqlite_url(home)), ["e1", "e2"])


def test_a_node_that_dies_before_acknowledging_loses_nothing(
    home: Path, make_client: MakeClient, nats_stream: tuple[str, str]
) -> None:
    """A node took four events from the bus, logged two of them and died before moving the
    states and acknowledging: another node gets all four again, and the log holds each once."""
    url, stream = nats_stream
    events = [view(f"e{k}", "s1", item(3 + k)) for k in range(4)]

    async def dying_node() -> None:
        bus = EventBus(url, stream, ack_wait=ACK_WAIT)
        await bus.connect()
        stored = await bus.publish([decode_view(event) for event in events])
        assert [one.duplicate for one in stored] == [False] * 4
        messages = await (await bus.subscribe()).fetch(4, timeout=5)
        assert len(messages) == 4
        log = open_event_log(sqlite_url(home))
        log.append([decode(message.data) for message in messages[:2]])  # then it dies
        log.close()
        await bus.close()  # without acknowledging anything

    asyncio.run(dying_node())
    client = make_client(**bus_settings(nats_stream))
    drained(url, stream)
    assert_logged_exactly_once(open_event_log(sqlite_url(home)), [e["event_id"] for e in events])
    assert top(client, session_id="s1") == item(7)  # 3, 4, 5, 6 -> 7, rebuilt from the log


def decode_view(event: dict[str, object]) -> object:
    import json

    return decode(json.dumps({**event, "timestamp": 1.0}).encode())


def test_an_unreachable_bus_stops_the_start_naming_its_url(make_client: MakeClient) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(BusUnavailable, match=url):
        make_client(event_bus=url)


@pytest.fixture
def nats_behind_proxy(bus_stream: tuple[str, str]) -> Iterator[tuple[str, str, TcpProxy]]:
    url, stream = bus_stream
    parsed = urlparse(url)
    proxy = TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 4222)
    yield f"nats://127.0.0.1:{proxy.port}", stream, proxy
    proxy.close()


def test_the_bus_down_is_503_and_nothing_unstored_is_acknowledged(
    home: Path, make_client: MakeClient, nats_behind_proxy: tuple[str, str, TcpProxy]
) -> None:
    url, stream, proxy = nats_behind_proxy
    client = make_client(event_bus=url, event_bus_stream=stream)
    assert send(client, view("e1", "s1", item(3))).status_code == 200

    proxy.down()
    reply = send(client, view("e2", "s1", item(4)))
    assert reply.status_code == 503, reply.text
    assert reply.headers["Retry-After"] == "1"
    assert "event bus is unavailable" in reply.json()["error"]
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json()["problems"][0].startswith("event bus")

    proxy.up()
    deadline = time.monotonic() + 15
    while (reply := send(client, view("e2", "s1", item(4)))).status_code == 503:
        assert time.monotonic() < deadline, "the bus did not come back"
        time.sleep(0.2)
    assert reply.status_code == 200, reply.text
    # the unconfirmed attempt may have reached the stream after all (then a duplicate); never
    # both, never neither
    assert reply.json()["accepted"] + len(reply.json()["duplicates"]) == 1
    assert top(client, session_id="s1") == item(5)
    drained(url, stream)
    assert_logged_exactly_once(open_event_log(sqlite_url(home)), ["e1", "e2"])
