"""The operations loop end to end: a server takes events, `nextbest train --from-log` trains on
its log and promotes what passes the gate, a planted worse candidate is kept out, and a
rollback switches the running server back without a failed request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import Server, free_port
from serving_helpers import ADMIN, N_ITEMS, READ, auth, item
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.models.served import read_served, served_version

runner = CliRunner()
DAY = 86_400.0
START = 1_790_000_000.0  # the log's first day


def walks(day: int, sessions: int, prefix: str, top: int = N_ITEMS) -> list[dict[str, Any]]:
    """Sessions that walk the items below `top` in a circle (after item j comes j + 1), on
    `day` (the items from `top` on are launched later)."""
    events = []
    for s in range(sessions):
        begin = START + day * DAY + s * 60.0
        for step in range(5):
            events.append(
                {"event_id": f"{prefix}-{s}-{step}", "type": "view",
                 "session_id": f"{prefix}-{s}", "item_id": item((s + step) % top),
                 "timestamp": begin + step * 5.0}
            )  # fmt: skip
    return events


def send(server: Server, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 500):
        reply = server.events(*events[start : start + 500])
        assert reply.status_code == 200, reply.text


def retrain(home: Path, *args: str) -> Any:
    return runner.invoke(app, ["train", "--from-log", *args], env={"NEXTBEST_HOME": str(home)})


def models(home: Path, *args: str) -> Any:
    return runner.invoke(app, ["models", *args], env={"NEXTBEST_HOME": str(home)})


def serving(server: Server) -> str | None:
    reply = server.client.get("/v1/models", headers=auth(ADMIN))
    assert reply.status_code == 200, reply.text
    current: str | None = reply.json()["current"]
    return current


def wait_until_serving(server: Server, version: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while serving(server) != version:
        assert time.monotonic() < deadline, f"still serving {serving(server)}, not {version}"
        time.sleep(0.1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir()
    running = Server(home, free_port(), {"NEXTBEST_MODEL_POLL_SECONDS": "0.2"}, "serve.log")
    catalog = [{"item_id": item(j), "title": f"Product {item(j)}"} for j in range(N_ITEMS)]
    reply = running.client.put("/v1/items", json={"items": catalog}, headers=auth(ADMIN))
    assert reply.status_code == 200, reply.text
    yield running
    running.stop()


def test_serve_retrain_gate_and_rollback(server: Server, tmp_path: Path) -> None:
    home = tmp_path / "home"
    send(server, walks(0, 150, "a") + walks(1, 150, "b"))

    first = retrain(home, "--model", "covisit")
    assert first.exit_code == 0, first.output
    assert "promoted" in first.output and "nothing to compare with" in first.output
    v1 = served_version(home)
    assert v1 is not None
    wait_until_serving(server, v1.name)
    assert server.recommend("a-3")[0][0] == item(8)  # a-3 walked items 3..7: 8 comes next

    nothing_new = retrain(home)
    assert nothing_new.exit_code == 0 and "no event in the log since" in nothing_new.output

    send(server, walks(2, 150, "c"))  # a new day
    worse = retrain(home, "--model", "pop")  # popularity cannot follow the walk
    assert worse.exit_code == 0, worse.output
    assert f"kept {v1.name}" in worse.output and "worse: MRR@20" in worse.output
    assert served_version(home) == v1
    time.sleep(0.5)  # more than the server's poll: it stays where it was
    assert serving(server) == v1.name
    kept_out = models(home, "list", "--candidates")
    assert kept_out.exit_code == 0 and "failed" in kept_out.output

    again = retrain(home)  # the served version's recipe (covisit) on the new day too
    assert again.exit_code == 0, again.output
    assert "promoted" in again.output and "not worse" in again.output
    v2 = served_version(home)
    assert v2 is not None and v2 != v1
    wait_until_serving(server, v2.name)

    # roll back while shoppers keep asking: every request answered, by one version or the other
    answered: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def shop() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                reply = client.get(
                    "/v1/recommendations", params={"session_id": "c-5"}, headers=auth(READ)
                )
                version = reply.json().get("model_version") if reply.status_code == 200 else None
                answered.append((reply.status_code, version))

    shopper = threading.Thread(target=shop)
    shopper.start()
    try:
        time.sleep(0.3)
        back = models(home, "rollback")
        assert back.exit_code == 0, back.output
        assert v1.name in back.output
        wait_until_serving(server, v1.name)
        time.sleep(0.3)
    finally:
        stop.set()
        shopper.join()
    assert answered and all(status == 200 for status, _ in answered)
    assert {version for _, version in answered} == {v1.name, v2.name}
    choice = read_served(home)
    assert choice is not None and choice.version == v1.name


def test_bad_retrains_end_with_a_clear_message_and_the_served_version_stays(
    server: Server, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    empty = retrain(home, "--model", "covisit")
    assert empty.exit_code == 2 and "holds no item events" in empty.output
    assert served_version(home) is None

    no_recipe = retrain(home)
    assert no_recipe.exit_code == 2 and "no version is served yet" in no_recipe.output

    send(server, walks(0, 100, "a") + walks(1, 100, "b"))
    assert retrain(home, "--model", "covisit").exit_code == 0
    served = served_version(home)
    assert served is not None

    product = retrain(home, "--gate-placement", "product")
    assert product.exit_code == 2 and "needs item_id" in product.output
    unknown = models(home, "promote", "20990101T000000.000000-nope")
    assert unknown.exit_code == 2 and "no model version" in unknown.output
    no_rollback = models(home, "rollback")
    assert no_rollback.exit_code == 2 and "no earlier served version" in no_rollback.output
    both = retrain(home, "--train", "x.tsv")
    assert both.exit_code == 2 and "leave out --train" in both.output
    assert served_version(home) == served


def test_a_corrupt_log_is_named_and_nothing_changes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "events.db").write_bytes(b"this is not a database" * 100)
    broken = retrain(home, "--model", "covisit")
    assert broken.exit_code == 2, broken.output
    assert "cannot read the event log" in broken.output
    assert served_version(home) is None


def test_serve_retrains_on_its_schedule_and_one_retrain_runs_at_a_time(
    server: Server, tmp_path: Path
) -> None:
    from nextbest.cli.retrain import retrain_lock

    home = tmp_path / "home"
    send(server, walks(0, 100, "a") + walks(1, 100, "b"))
    assert retrain(home, "--model", "covisit").exit_code == 0
    first = served_version(home)
    assert first is not None
    with retrain_lock(home):  # a cron job's retrain running now
        blocked = retrain(home)
    assert blocked.exit_code == 2 and "another retrain holds" in blocked.output
    send(server, walks(2, 100, "c"))
    server.stop()
    scheduled = Server(
        home, free_port(), {"NEXTBEST_MODEL_POLL_SECONDS": "0.2"}, "scheduled.log",
        ("--retrain-every", "1s"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (newest := served_version(home)) == first:
            assert time.monotonic() < deadline, (home / "scheduled.log").read_text()[-3000:]
            time.sleep(0.2)
        assert newest is not None
        wait_until_serving(scheduled, newest.name)
    finally:
        scheduled.stop()
    choice = read_served(home)  # the schedule's retrain passed the gate and promoted it
    assert choice is not None and choice.version == newest.name
    assert choice.reason.startswith("retrained from the log: not worse")


def test_retrain_every_names_a_bad_interval(tmp_path: Path) -> None:
    for bad in ("6 hours", "0s", "-1h", "h"):
        result = runner.invoke(
            app, ["serve", "--retrain-every", bad], env={"NEXTBEST_HOME": str(tmp_path)}
        )
        assert result.exit_code == 2 and "--retrain-every" in result.output, (bad, result.output)


GRU = ["--model", "gru4rec", "--param", "layers=32", "--param", "n_epochs=3", "--param",
       "batch_size=16", "--param", "n_sample=0", "--param", "learning_rate=0.1", "--param",
       "batch_loss=sum"]  # fmt: skip


def test_an_incremental_update_goes_on_from_the_served_gru4rec(
    server: Server, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    send(server, walks(0, 200, "a", top=25) + walks(1, 200, "b", top=25))
    first = retrain(home, *GRU)
    assert first.exit_code == 0, first.output
    v1 = served_version(home)
    assert v1 is not None
    send(server, walks(2, 200, "c") + walks(3, 200, "d"))  # items 25-29 launched on day 2
    update = retrain(home, "--incremental")
    assert update.exit_code == 0, update.output
    assert f"updated {v1.name}" in update.output and "promoted" in update.output
    v2 = served_version(home)
    assert v2 is not None and v2 != v1
    meta = json.loads((v2 / "meta.json").read_text())
    assert meta["updated_from"].endswith("-gru4rec") and meta["recipe"]["model"] == "gru4rec"
    wait_until_serving(server, v2.name)
    for k, item_id in enumerate([item(21), item(22), item(23)]):
        assert server.events(
            {"event_id": f"new-{k}", "type": "view", "session_id": "new", "item_id": item_id,
             "timestamp": START + 4 * DAY + k}
        ).status_code == 200  # fmt: skip
    shown = [entry[0] for entry in server.recommend("new", n=5)]
    assert item(24) in shown and item(25) in shown[:5], shown  # a launched item, at once

    send(server, walks(5, 100, "e"))
    quick = retrain(home, "--incremental", "--model", "covisit")
    assert quick.exit_code == 0 and "refits on every event in seconds" in quick.output
    alone = runner.invoke(app, ["train", "--incremental", "--train", "x.tsv", "--model", "pop"])
    assert alone.exit_code == 2 and "goes with --from-log" in alone.output
