"""`nextbest serve` in a child process, for the tests that need a real server.

With `--workers N` the child is the supervisor; its workers are its children. Which worker
answered a request is read from the OS (nothing in a reply names it): the worker that
accepted a connection holds the server side of that TCP connection among its open files
(`/proc/net/tcp` gives the socket's inode, `/proc/<pid>/fd` who holds it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from serving_helpers import ADMIN, BROWSER, READ, SECRET, WRITE, auth


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_command() -> list[str]:
    """`nextbest serve` once the CLI registers it; the same function run as a module before."""
    from nextbest.cli.main import app

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    if "serve" in names:
        return [str(Path(sys.executable).with_name("nextbest")), "serve"]
    return [sys.executable, "-m", "nextbest.cli.serve"]


class Server:
    def __init__(
        self,
        home: Path,
        port: int,
        env: dict[str, str],
        log_name: str,
        args: tuple[str, ...] = (),
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.output = (home / log_name).open("ab")
        environment = {
            **os.environ,
            "NEXTBEST_HOME": str(home),
            "NEXTBEST_WRITE_KEYS": WRITE,
            "NEXTBEST_READ_KEYS": READ,
            "NEXTBEST_ADMIN_KEYS": ADMIN,
            "NEXTBEST_BROWSER_KEYS": BROWSER,
            "NEXTBEST_IDENTITY_SECRETS": SECRET,
            **env,
        }
        command = [*serve_command(), "--port", str(port), "--log-level", "warning", *args]
        self.process = subprocess.Popen(
            command, env=environment, stdout=self.output, stderr=self.output
        )
        self.client = httpx.Client(base_url=self.url, timeout=10)
        self._clients: list[httpx.Client] = []  # opened by `pin_workers`, closed by `stop`
        self._wait_until_up(home / log_name)

    def _wait_until_up(self, log: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server not up after 60 s: {log.read_text()[-2000:]}")

    def events(self, *events: dict[str, Any]) -> httpx.Response:
        return self.client.post("/v1/events", json={"events": list(events)}, headers=auth(WRITE))

    def recommend(self, session: str, n: int = 5) -> list[tuple[str, float, str]]:
        reply = self.client.get(
            "/v1/recommendations", params={"session_id": session, "n": n}, headers=auth(READ)
        )
        assert reply.status_code == 200, reply.text
        return [(e["item_id"], round(e["score"], 4), e["source"]) for e in reply.json()["items"]]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def workers(self) -> list[int]:
        """The pids of the live worker processes of a `--workers N` server (none for one)."""
        return sorted(
            pid
            for pid in children(self.process.pid)
            if "spawn_main" in command_line(pid) and is_alive(pid)
        )

    def kill_all(self) -> None:
        """SIGKILL the supervisor and, at once, every process it started (workers too): a
        machine-level crash of the whole server, not a shutdown."""
        started = children(self.process.pid)
        self.process.send_signal(signal.SIGKILL)
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        for pid in started:
            wait_until_gone(pid)

    def new_client(self) -> httpx.Client:
        """A client of its own: its first request opens a new connection, which the kernel
        hands to any of the workers."""
        client = httpx.Client(base_url=self.url, timeout=10)
        self._clients.append(client)
        return client

    def answered_by(
        self, client: httpx.Client, method: str, path: str, **kwargs: Any
    ) -> tuple[httpx.Response, int]:
        """Send a request; return the reply and the pid of the worker that answered it (the
        one holding the server side of the connection while the reply is read)."""
        reply, owner = self.maybe_answered_by(client, method, path, **kwargs)
        assert owner is not None, "no worker holds the connection"
        return reply, owner

    def maybe_answered_by(
        self, client: httpx.Client, method: str, path: str, **kwargs: Any
    ) -> tuple[httpx.Response, int | None]:
        """As `answered_by`; None for a worker gone (killed) before it could be looked up."""
        with client.stream(method, path, **kwargs) as reply:
            local = reply.extensions["network_stream"].get_extra_info("client_addr")
            owner = connection_owner(self.port, int(local[1]), self.workers())
            reply.read()
        return reply, owner

    def pin_workers(self, count: int, timeout: float = 60.0) -> dict[int, httpx.Client]:
        """A keep-alive client connected to each of `count` workers, by worker pid (waits
        until that many workers answer: a worker may still be starting)."""
        pinned: dict[int, httpx.Client] = {}
        deadline = time.monotonic() + timeout
        while len(pinned) < count:
            assert time.monotonic() < deadline, f"only workers {sorted(pinned)} answered"
            client = self.new_client()
            reply, owner = self.answered_by(client, "GET", "/healthz")
            assert reply.status_code == 200, reply.text
            if owner in pinned:
                client.close()
                time.sleep(0.05)
            else:
                pinned[owner] = client
        return pinned

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.output.close()


def children(parent: int) -> list[int]:
    """The pids whose parent is `parent` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def is_alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.02)


def connection_owner(server_port: int, client_port: int, pids: Iterable[int]) -> int | None:
    """Which of `pids` holds the server side of the established TCP connection from
    `client_port` to `server_port` on this machine (None: none of them)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)  # the header
            for line in lines:
                fields = line.split()
                local, remote, state = fields[1], fields[2], fields[3]
                if (
                    state == "01"  # ESTABLISHED
                    and int(local.rsplit(":", 1)[1], 16) == server_port
                    and int(remote.rsplit(":", 1)[1], 16) == client_port
                ):
                    inode = fields[9]
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{descriptor}") == target:
                    return pid
            except OSError:
                continue
    return None


def demo_server(
    home: Path, items: list[dict[str, Any]], env: dict[str, str] | None = None
) -> Iterator[Server]:
    """The demo server over `home`, its catalog holding `items`; stopped at the end."""
    server = Server(home, free_port(), {"NEXTBEST_DEMO": "1", **(env or {})}, "demo.log")
    server.client.put("/v1/items", json={"items": items}, headers=auth(ADMIN)).raise_for_status()
    yield server
    server.stop()
