"""`nextbest serve` in a child process, for the tests that need a real server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from serving_helpers import ADMIN, READ, WRITE, auth


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
        self.url = f"http://127.0.0.1:{port}"
        self.output = (home / log_name).open("ab")
        environment = {
            **os.environ,
            "NEXTBEST_HOME": str(home),
            "NEXTBEST_WRITE_KEYS": WRITE,
            "NEXTBEST_READ_KEYS": READ,
            "NEXTBEST_ADMIN_KEYS": ADMIN,
            **env,
        }
        command = [*serve_command(), "--port", str(port), "--log-level", "warning", *args]
        self.process = subprocess.Popen(
            command, env=environment, stdout=self.output, stderr=self.output
        )
        self.client = httpx.Client(base_url=self.url, timeout=10)
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

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.output.close()
