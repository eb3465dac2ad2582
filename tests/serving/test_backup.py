"""`nextbest backup` while a server takes events, then `nextbest restore` into an empty data
folder: every event acknowledged before the backup began is there, and so are the model
versions, the served choice and the keys; a server on the restored folder answers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
from server_process import Server, free_port
from serving_helpers import WRITE, auth, item, view
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.events.log import open_event_log, sqlite_url
from nextbest.models.served import promote
from nextbest.models.store import list_versions

runner = CliRunner()


def test_backup_under_load_then_restore(home: Path, tmp_path: Path) -> None:
    (home / "api-keys.json").write_text(json.dumps({"admin": "a" * 20}))
    (version,) = list_versions(home)
    promote(home, version.name, "by hand")
    server = Server(home, free_port(), {}, "serve.log")
    acknowledged: list[tuple[float, str]] = []  # (when acknowledged, event id)
    stop = threading.Event()

    def shop() -> None:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            batch = 0
            while not stop.is_set():
                ids = [f"b{batch}-{k}" for k in range(20)]
                events = [view(i, f"s{batch % 9}", item(k)) for k, i in enumerate(ids)]
                reply = client.post("/v1/events", json={"events": events}, headers=auth(WRITE))
                assert reply.status_code == 200, reply.text
                acknowledged.extend((time.time(), i) for i in ids)
                batch += 1

    shopper = threading.Thread(target=shop)
    shopper.start()
    try:
        time.sleep(1.0)
        began = time.time()
        copy = tmp_path / "backup"
        result = runner.invoke(app, ["backup", str(copy)], env={"NEXTBEST_HOME": str(home)})
        assert result.exit_code == 0, result.output
        time.sleep(0.5)  # the load goes on after the backup
    finally:
        stop.set()
        shopper.join()
        server.stop()
    before = {i for at, i in acknowledged if at < began}
    assert len(before) > 100

    restored = tmp_path / "restored"
    env = {"NEXTBEST_HOME": str(restored)}
    result = runner.invoke(app, ["restore", str(copy)], env=env)
    assert result.exit_code == 0, result.output
    log = open_event_log(sqlite_url(restored))
    try:
        logged = {e.event_id for e in log.iter_events()}
    finally:
        log.close()
    assert before <= logged  # everything acknowledged before the backup began
    assert [v.name for v in list_versions(restored)] == [version.name]
    assert (restored / "models" / "served.json").exists()
    assert json.loads((restored / "api-keys.json").read_text()) == {"admin": "a" * 20}
    again = Server(restored, free_port(), {}, "serve-again.log")
    try:
        assert again.events(view("after-restore", "s0", item(3))).status_code == 200
        assert again.recommend("s0")
    finally:
        again.stop()

    refused = runner.invoke(app, ["restore", str(copy)], env=env)  # not empty any more
    assert refused.exit_code == 2 and "already holds" in refused.output
    taken = runner.invoke(app, ["backup", str(copy)], env={"NEXTBEST_HOME": str(home)})
    assert taken.exit_code == 2 and "is not empty" in taken.output
    postgres = runner.invoke(
        app, ["backup", str(tmp_path / "pg")],
        env={"NEXTBEST_HOME": str(home), "NEXTBEST_DATABASE_URL": "postgresql+psycopg://x@h/db"},
    )  # fmt: skip
    assert postgres.exit_code == 2 and "pg_dump" in postgres.output
