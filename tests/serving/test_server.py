"""`nextbest serve` as a real process: nothing acknowledged is lost to a SIGKILL (SQLite or
PostgreSQL, one process or two workers over Redis), two servers sharing Redis answer the same
whichever of them received a session's events, and so do two workers on one port, whichever
worker each connection reached; a killed worker is replaced while the port keeps answering.

The servers answer `home` from the session's model state alone (`SESSION_ONLY`): the shipped
`home` also shows live popularity, which each process reads again every 2 seconds on its own
clock, so two processes (or one before and after a restart) may rightly differ there for a
moment. What these tests compare is the state the processes share.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import Server, free_port, is_alive, wait_until_gone
from serving_helpers import READ, WRITE, assert_logged_exactly_once, auth, item, view

from nextbest.events.log import open_event_log, sqlite_url

SESSION_ONLY = """
[placements.home]
generators = [{ source = "session", k = 50 }]
ranker = "priority"
fill = []
"""


def session_only(home: Path) -> dict[str, str]:
    """The environment that makes `home` answer from the session's state alone."""
    path = home / "session-only.toml"
    path.write_text(SESSION_ONLY)
    return {"NEXTBEST_PLACEMENTS": str(path)}


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


# -- nothing acknowledged is lost -------------------------------------------------------------
def load_until_killed(
    server: Server, kill: Callable[[], None], at_least: int = 600, spread: bool = False
) -> tuple[list[str], Counter[int]]:
    """Three clients send batches of 20 new events until `at_least` are acknowledged, then
    `kill()` ends the server in the middle of the load. Returns the acknowledged event ids,
    and with `spread`, how many batches each worker acknowledged.

    `spread`: every batch on a new connection (which the kernel gives any of the workers),
    not one keep-alive connection per client.
    """
    acknowledged: list[str] = []
    by_worker: Counter[int] = Counter()
    failures: list[str] = []

    def load(worker: int) -> None:
        client = httpx.Client(base_url=server.url, timeout=5)
        batch = 0
        while True:
            ids = [f"w{worker}-b{batch}-{k}" for k in range(20)]
            events = [view(i, f"load-{worker}-{batch % 7}", item(k)) for k, i in enumerate(ids)]
            body = {"json": {"events": events}, "headers": auth(WRITE)}
            try:
                if spread:
                    with httpx.Client(base_url=server.url, timeout=5) as fresh:
                        reply, by = server.maybe_answered_by(fresh, "POST", "/v1/events", **body)
                    if by is None:
                        break  # answered, then killed before we could see by whom
                    by_worker[by] += 1
                else:
                    reply = client.post("/v1/events", **body)
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
    while len(acknowledged) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    kill()  # in the middle of the load
    for loader in loaders:
        loader.join()
    assert not failures and len(acknowledged) >= at_least
    return acknowledged, by_worker


def assert_resent_are_duplicates(server: Server, acknowledged: list[str]) -> None:
    """Re-sending acknowledged events, 5 batches of 100 on new connections each, accepts
    none of them."""
    for start in range(0, 500, 100):
        ids = acknowledged[start : start + 100]
        with httpx.Client(base_url=server.url, timeout=10) as client:
            reply = client.post(
                "/v1/events",
                json={"events": [view(i, "again", item(1)) for i in ids]},
                headers=auth(WRITE),
            )
        assert reply.status_code == 200, reply.text
        assert reply.json()["accepted"] == 0 and reply.json()["duplicates"] == ids


def sigkill_env(kind: str, request: pytest.FixtureRequest) -> tuple[dict[str, str], Any]:
    """The server's environment and a way to open its event log, for each kind of log."""
    home: Path = request.getfixturevalue("home")
    if kind == "sqlite":
        return session_only(home), lambda: open_event_log(sqlite_url(home))
    url, schema = request.getfixturevalue("pg_schema")
    env = {"NEXTBEST_DATABASE_URL": url, "NEXTBEST_DATABASE_SCHEMA": schema}
    return session_only(home) | env, lambda: open_event_log(url, schema)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_no_acknowledged_event_is_lost_to_sigkill(
    home: Path, servers: list[Server], request: pytest.FixtureRequest, kind: str
) -> None:
    """SIGKILL in the middle of a load, then a restart, over SQLite or PostgreSQL: every
    acknowledged event is in the log exactly once, re-sending it is a duplicate, and a
    session's state is rebuilt from the log as it was. (Two workers over Redis: below.)"""
    env, open_log = sigkill_env(kind, request)
    port = free_port()
    server = Server(home, port, env, "first.log")
    servers.append(server)
    server.events(view("warm-1", "kept", item(10)), view("warm-2", "kept", item(11)))
    before_kill = server.recommend("kept")
    assert before_kill[0][0] == item(12)
    acknowledged, _ = load_until_killed(server, server.kill)

    restarted = Server(home, port, env, "second.log")
    servers.append(restarted)
    assert_logged_exactly_once(open_log(), acknowledged)
    assert_resent_are_duplicates(restarted, acknowledged)
    assert restarted.recommend("kept") == before_kill  # its state rebuilt from the log


def test_two_servers_behind_redis_agree(
    home: Path, servers: list[Server], redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    env = {"NEXTBEST_REDIS_URL": url, "NEXTBEST_REDIS_PREFIX": prefix} | session_only(home)
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


# -- two workers on one port ------------------------------------------------------------------
class TwoWorkers:
    """One `--workers 2` server over Redis, shared by the tests below in this order: the
    SIGKILL test restarts it (same port, home and Redis), the last test stops it. Each test
    also runs alone, and counts only its own events and sessions."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env, self.port = home, env, free_port()
        self.starts = 0
        self.server = self.start()

    def start(self) -> Server:
        """Start the server (again: after the last one was killed) on the same port."""
        if self.starts:
            self.server.stop()  # (closes what the killed one left open)
        self.starts += 1
        args = ("--workers", "2")
        self.server = Server(self.home, self.port, self.env, f"workers-{self.starts}.log", args)
        return self.server


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory,
    model_home: Path,
    module_redis_prefix: tuple[str, str],
) -> Iterator[TwoWorkers]:
    home = tmp_path_factory.mktemp("workers") / "home"
    shutil.copytree(model_home, home)
    url, prefix = module_redis_prefix
    env = {"NEXTBEST_REDIS_URL": url, "NEXTBEST_REDIS_PREFIX": prefix} | session_only(home)
    shared = TwoWorkers(home, env)
    yield shared
    shared.server.stop()


def metric(server: Server, line_start: str) -> float:
    for line in server.client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def answer(reply: httpx.Response) -> tuple[tuple[str, float, str], ...]:
    assert reply.status_code == 200, reply.text
    return tuple((e["item_id"], round(e["score"], 4), e["source"]) for e in reply.json()["items"])


def recommend_on(server: Server, client: httpx.Client, session: str) -> tuple[Any, int]:
    reply, worker = server.answered_by(
        client, "GET", "/v1/recommendations", params={"session_id": session, "n": 5},
        headers=auth(READ),
    )  # fmt: skip
    return answer(reply), worker


def test_two_workers_agree_whichever_answers(two_workers: TwoWorkers) -> None:
    """Events of one session alternate between the workers (each step a read-modify-write
    of the shared state by the other worker), then recommendations on new connections,
    spread by the kernel over both workers, all give the same answer."""
    server = two_workers.server
    pinned = server.pin_workers(2)
    pids = sorted(pinned)
    accepted = 'nextbest_events_total{outcome="accepted"}'
    accepted_before = metric(server, accepted)
    for k in range(8):  # event k through worker k % 2
        event = view(f"agree-{k}", "agree", item(k + 1))
        reply, worker = server.answered_by(
            pinned[pids[k % 2]], "POST", "/v1/events", json={"events": [event]},
            headers=auth(WRITE),
        )  # fmt: skip
        assert reply.status_code == 200 and reply.json()["accepted"] == 1, reply.text
        assert worker == pids[k % 2]
    answers: dict[int, set[Any]] = {pid: set() for pid in pids}
    seen: Counter[int] = Counter()
    for _ in range(64):  # a new connection per request, until each worker answered 3 times
        with httpx.Client(base_url=server.url, timeout=10) as fresh:
            items, worker = recommend_on(server, fresh, "agree")
        answers[worker].add(items)
        seen[worker] += 1
        if all(seen[pid] >= 3 for pid in pids):
            break
    assert all(seen[pid] >= 3 for pid in pids), f"the answers came from {dict(seen)}"
    for pid, client in pinned.items():  # and on the connections kept to each worker
        items, worker = recommend_on(server, client, "agree")
        assert worker == pid
        answers[worker].add(items)
    distinct = set().union(*answers.values())
    assert len(distinct) == 1, answers  # both workers, every time, the same list
    assert next(iter(distinct))[0][0] == item(9)  # after item 8 comes item 9
    assert metric(server, accepted) - accepted_before == 8  # the sum over both workers


class StartupGate:
    """Holds a starting worker in the middle of its startup: its placements file (which a
    worker reads while it starts, and never again) becomes a named pipe, and the worker's
    read waits until the test writes the file's text into it."""

    def __init__(self, path: Path) -> None:
        self.path, self.text = path, path.read_bytes()
        path.unlink()
        os.mkfifo(path)
        self._writer: int | None = None

    def wait_for_reader(self, timeout: float = 60.0) -> None:
        """Return once a process has opened the file and waits for its text."""
        deadline = time.monotonic() + timeout
        while self._writer is None:
            try:  # a non-blocking open for writing succeeds only while someone reads
                self._writer = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                assert time.monotonic() < deadline, "no process read the placements file"
                time.sleep(0.01)

    def release(self) -> None:
        """Hand the waiting reader the text, and make the file a plain file again."""
        if self._writer is not None:
            os.set_blocking(self._writer, True)
            os.write(self._writer, self.text)
            os.close(self._writer)
            self._writer = None
        staging = self.path.with_name(self.path.name + ".tmp")
        staging.write_bytes(self.text)
        staging.replace(self.path)


def test_a_killed_worker_is_replaced_and_the_port_keeps_answering(
    two_workers: TwoWorkers,
) -> None:
    """SIGKILL one worker. While the supervisor's replacement is still starting (held
    there: see `StartupGate`), every request on a new connection is answered by the other
    worker: a worker takes connections only once it can answer them. Then the replacement
    answers too, from the session state both share in Redis."""
    server = two_workers.server
    pinned = server.pin_workers(2)
    victim, survivor = sorted(pinned)
    for k in range(3):
        reply = pinned[survivor].post(
            "/v1/events", json={"events": [view(f"kill-{k}", "kill", item(k + 20))]},
            headers=auth(WRITE),
        )  # fmt: skip
        assert reply.status_code == 200, reply.text
    expected, _ = recommend_on(server, pinned[victim], "kill")
    assert expected[0][0] == item(23)
    pinned.pop(victim).close()
    gate = StartupGate(Path(two_workers.env["NEXTBEST_PLACEMENTS"]))
    try:
        os.kill(victim, signal.SIGKILL)
        wait_until_gone(victim)
        gate.wait_for_reader()  # the replacement is starting, and waits there
        replacement = next(pid for pid in server.workers() if pid != survivor)
        for attempt in range(10):  # each on a new connection, which may reach any worker
            with httpx.Client(base_url=server.url, timeout=2) as fresh:
                try:
                    items, worker = recommend_on(server, fresh, "kill")
                except httpx.TimeoutException:
                    pytest.fail(
                        f"new connection {attempt + 1} waited on worker {replacement}, which "
                        "is still starting: it listens on the port before it can answer"
                    )
            assert (items, worker) == (expected, survivor)
    finally:
        gate.release()
    answered_by: Counter[int] = Counter()
    deadline = time.monotonic() + 60
    while answered_by[replacement] == 0:
        assert time.monotonic() < deadline, f"the replacement never answered: {answered_by}"
        with httpx.Client(base_url=server.url, timeout=10) as fresh:
            items, worker = recommend_on(server, fresh, "kill")  # asserts a 200
        assert items == expected  # the state in Redis, whichever worker answers
        answered_by[worker] += 1
    assert set(answered_by) <= {survivor, replacement}
    assert is_alive(survivor) and not is_alive(victim)
    assert server.workers() == sorted([survivor, replacement])


def test_no_acknowledged_event_is_lost_when_two_workers_are_killed(
    two_workers: TwoWorkers,
) -> None:
    """`--workers 2` over Redis: SIGKILL to the supervisor and both workers at once, in the
    middle of a load spread over both workers, then a restart (two workers again): every
    acknowledged event is in the log exactly once, re-sending it is a duplicate (through
    either worker), and a session's state in Redis is what it was."""
    server = two_workers.server
    pinned = server.pin_workers(2)  # both workers take the load
    for k, client in enumerate(pinned.values()):
        reply = client.post(
            "/v1/events", json={"events": [view(f"warm-{k}", "kept", item(10 + k))]},
            headers=auth(WRITE),
        )  # fmt: skip
        assert reply.status_code == 200, reply.text
    before_kill = server.recommend("kept")
    assert before_kill[0][0] == item(12)
    acknowledged, by_worker = load_until_killed(server, server.kill_all, spread=True)
    assert set(by_worker) == set(pinned)  # both workers acknowledged batches

    restarted = two_workers.start()
    assert_logged_exactly_once(open_event_log(sqlite_url(two_workers.home)), acknowledged)
    assert_resent_are_duplicates(restarted, acknowledged)
    pinned = restarted.pin_workers(2)
    for client in pinned.values():  # each worker: the state in Redis survived the kill
        items, _ = recommend_on(restarted, client, "kept")
        assert [(i, s) for i, s, _ in items] == [(i, s) for i, s, _ in before_kill]


def test_two_workers_stop_together(two_workers: TwoWorkers) -> None:
    """SIGTERM to the supervisor stops every worker (a replaced one too) and frees the port."""
    server = two_workers.server
    server.pin_workers(2)
    workers = server.workers()
    assert len(workers) == 2
    server.stop()
    assert server.process.returncode == 0
    for pid in workers:
        wait_until_gone(pid)
    with socket.socket() as probe:  # no worker is left holding the port
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))
