"""`nextbest serve` as a real process: nothing acknowledged is lost to a SIGKILL, and two
servers sharing Redis answer the same whichever of them received a session's events."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import Server, free_port
from serving_helpers import WRITE, auth, item, view

from nextbest.events.log import open_event_log, sqlite_url


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def test_no_acknowledged_event_is_lost_to_sigkill(home: Path, servers: list[Server]) -> None:
    port = free_port()
    server = Server(home, port, {}, "first.log")
    servers.append(server)
    server.events(view("warm-1", "kept", item(10)), view("warm-2", "kept", item(11)))
    before_kill = server.recommend("kept")
    acknowledged: list[str] = []
    failures: list[str] = []

    def load(worker: int) -> None:
        client = httpx.Client(base_url=server.url, timeout=5)
        batch = 0
        while True:
            ids = [f"w{worker}-b{batch}-{k}" for k in range(20)]
            events = [view(i, f"load-{worker}-{batch % 7}", item(k)) for k, i in enumerate(ids)]
            try:
                reply = client.post("/v1/events", json={"events": events}, headers=auth(WRITE))
            except httpx.TransportError:
                break  # the server is gone
            if reply.status_code == 200 and reply.json()["accepted"] == len(ids):
                acknowledged.extend(ids)
            else:
                failures.append(reply.text)
            batch += 1
        client.close()

    loaders = [threading.Thread(target=load, args=(w,)) for w in range(3)]
    for loader in loaders:
        loader.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 600 and time.monotonic() < deadline:
        time.sleep(0.02)
    server.kill()  # in the middle of the load
    for loader in loaders:
        loader.join()
    assert not failures and len(acknowledged) >= 600

    restarted = Server(home, port, {}, "second.log")
    servers.append(restarted)
    log = open_event_log(sqlite_url(home))
    try:
        logged = [e.event_id for e in log.iter_events()]
    finally:
        log.close()
    counts: dict[str, int] = {}
    for event_id in logged:
        counts[event_id] = counts.get(event_id, 0) + 1
    assert all(counts.get(i) == 1 for i in acknowledged)  # every acknowledged event, once
    resent = restarted.events(*[view(i, "again", item(1)) for i in acknowledged[:500]]).json()
    assert resent["accepted"] == 0 and len(resent["duplicates"]) == 500
    assert restarted.recommend("kept") == before_kill  # its state rebuilt from the log


def test_two_servers_behind_redis_agree(
    home: Path, servers: list[Server], redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    env = {"NEXTBEST_REDIS_URL": url, "NEXTBEST_REDIS_PREFIX": prefix}
    first = Server(home, free_port(), env, "a.log")
    servers.append(first)
    second = Server(home, free_port(), env, "b.log")
    servers.append(second)
    path = [item(j) for j in (4, 5, 6, 20, 21)]
    for k, item_id in enumerate(path):
        assert first.events(view(f"only-a-{k}", "only-a", item_id)).status_code == 200
        assert second.events(view(f"only-b-{k}", "only-b", item_id)).status_code == 200
        receiver = first if k % 2 else second
        assert receiver.events(view(f"mixed-{k}", "mixed", item_id)).status_code == 200
    answers = [
        server.recommend(session)
        for server in (first, second)
        for session in ("only-a", "only-b", "mixed")
    ]
    assert all(answer == answers[0] for answer in answers)
    assert answers[0][0][0] == item(22)


def test_two_workers_share_one_port_and_stop_together(
    home: Path, servers: list[Server], redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    env = {"NEXTBEST_REDIS_URL": url, "NEXTBEST_REDIS_PREFIX": prefix}
    port = free_port()
    server = Server(home, port, env, "workers.log", ("--workers", "2"))
    servers.append(server)
    clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(8)]
    for k, client in enumerate(clients):  # eight connections, spread over both workers
        event = view(f"e{k}", "shared", item(k + 1))
        assert (
            client.post("/v1/events", json={"events": [event]}, headers=auth(WRITE)).status_code
            == 200
        )
    answers = {tuple(server.recommend("shared")) for _ in range(6)}
    assert len(answers) == 1 and next(iter(answers))[0][0] == item(9)
    metrics = clients[0].get("/metrics").text  # the sum over both workers
    assert 'nextbest_events_total{outcome="accepted"} 8.0' in metrics
    for client in clients:
        client.close()
    server.stop()
    assert server.process.returncode == 0
    with socket.socket() as probe:  # no worker is left holding the port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
