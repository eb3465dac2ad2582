"""Trigger channels end to end: a real server reads its own log, fires an abandoned-cart message
once per user and window to a local webhook receiver (signed, retried after a 500) and a
purchase's complements to a Redis stream, never reminds a user who bought, and keeps what is
pending and what was sent across a restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from server_process import Server, free_port
from serving_helpers import item

from nextbest.triggers.config import TriggersError, load_triggers
from nextbest.triggers.runner import sign

SECRET = "trigger-secret-0123456789"


class Receiver:
    """A webhook receiver on 127.0.0.1: records every delivery; answers 500 to the first
    `fail_first` of them."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if len(receiver.received) < receiver.fail_first else 200
                receiver.received.append((dict(self.headers), body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body, status in self.received if status == 200]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(fail_first=1)
    yield running
    running.server.shutdown()


def write_triggers(path: Path, url: str, stream: str) -> Path:
    path.write_text(
        f'[triggers.abandoned-cart]\nrule = "abandoned_cart"\nafter = "1s"\nwindow = "1h"\n'
        f'n = 3\nwebhook = "{url}"\nsecret = "{SECRET}"\n\n'
        f'[triggers.goes-with]\nrule = "purchase_complements"\nafter = "0s"\nwindow = "1h"\n'
        f'n = 3\nredis_stream = "{stream}"\n\n'
        f'[delivery]\nmax_attempts = 5\nfirst_retry = "0.2s"\n'
    )
    return path


def events_of(user: str, session: str, steps: list[tuple[str, int]]) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {"event_id": f"{session}-{k}", "type": kind, "session_id": session, "user_id": user,
         "item_id": item(j), "timestamp": now + k * 0.01}
        for k, (kind, j) in enumerate(steps)
    ]  # fmt: skip


def test_triggers_fire_once_deliver_signed_and_survive_a_restart(
    home: Path, receiver: Receiver, redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    stream = f"{prefix}triggers"
    env = {
        "NEXTBEST_TRIGGERS": str(write_triggers(home / "triggers.toml", receiver.url, stream)),
        "NEXTBEST_TRIGGER_TICK_SECONDS": "0.2",
        "NEXTBEST_REDIS_URL": url,
        "NEXTBEST_REDIS_PREFIX": prefix,
    }
    server = Server(home, free_port(), env, "serve.log")
    try:
        assert server.events(*events_of("u-cart", "s1", [("view", 3), ("cart", 3)])).is_success
        bought = [("cart", 5), ("purchase", 5)]
        assert server.events(*events_of("u-buyer", "s2", bought)).is_success
        wait_for(lambda: len(receiver.delivered()) == 1, "the abandoned cart's message")
        (message,) = receiver.delivered()
        assert message["user_id"] == "u-cart" and message["cart"] == [item(3)]
        assert message["trigger"] == "abandoned-cart" and len(message["items"]) == 3
        assert item(3) not in [i["item_id"] for i in message["items"]]  # in the cart already
        assert receiver.received[0][2] == 500  # the first try failed, the retry went through
        headers, body, _ = receiver.received[-1]
        stamp = int(headers["X-Nextbest-Timestamp"])
        assert headers["X-Nextbest-Signature"] == sign(SECRET, stamp, body)
        assert headers["X-Nextbest-Delivery"] == message["id"]

        client = redis.Redis.from_url(url)
        entries = client.xrange(stream)
        assert len(entries) == 1  # the purchase's complements
        sent = json.loads(entries[0][1][b"payload"])
        assert sent["user_id"] == "u-buyer" and sent["purchased"] == item(5)
        assert item(5) not in [i["item_id"] for i in sent["items"]]  # bought: left out
        client.close()

        # a second cart within the window: no second message
        assert server.events(*events_of("u-cart", "s3", [("cart", 7)])).is_success
        # a cart that is due after the restart
        assert server.events(*events_of("u-late", "s4", [("cart", 9)])).is_success
        time.sleep(0.5)  # the runner reads them; neither is due yet
    finally:
        server.stop()
    time.sleep(1.0)
    server = Server(home, free_port(), env, "serve-again.log")
    try:
        wait_for(lambda: len(receiver.delivered()) == 2, "the pending cart after the restart")
        time.sleep(1.5)  # more rounds: nothing more goes out
        users = [m["user_id"] for m in receiver.delivered()]
        assert users == ["u-cart", "u-late"]  # u-buyer bought; u-cart's window holds
    finally:
        server.stop()


def test_a_bad_triggers_file_is_named(tmp_path: Path) -> None:
    cases = {
        'rule = "abandoned_cart"\nwebhook = "http://x"\n': "needs a secret",
        'rule = "abandoned_cart"\n': "exactly one target",
        'rule = "nope"\nredis_stream = "s"\n': "triggers.t.rule",
        'rule = "abandoned_cart"\nafter = "soon"\nredis_stream = "s"\n': "triggers.t.after",
        'rule = "abandoned_cart"\nredis_stream = "s"\ncolour = 1\n': "colour",
    }
    for body, message in cases.items():
        path = tmp_path / "triggers.toml"
        path.write_text("[triggers.t]\n" + body)
        with pytest.raises(TriggersError, match=message):
            load_triggers(path)
