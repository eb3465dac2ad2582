"""The recorder of served lists: off the request's path, bounded, and never fatal."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from serving_helpers import MakeClient

from nextbest.events.log import EventLog, ServedList, open_event_log, sqlite_url
from nextbest.serving import services as services_module
from nextbest.serving.served import ServedRecorder, forget_old_served


def served(number: int) -> ServedList:
    return ServedList(f"r{number}", float(number), "s", None, None, None, "v", (("a", "m", 1.0),))


def dropped() -> float:
    return REGISTRY.get_sample_value("nextbest_served_lists_total", {"outcome": "dropped"}) or 0.0


class BlockedLog:
    """A log whose writes wait for `release` (or fail, once told to)."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.release = threading.Event()
        self.fail = False
        self.writes: list[int] = []

    def record_served(self, lists: list[ServedList]) -> None:
        self.release.wait(10)
        if self.fail:
            raise OSError("disk full")
        self.writes.append(len(lists))
        self.log.record_served(lists)


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return open_event_log(sqlite_url(tmp_path))


def test_lists_are_written_in_batches_and_flush_waits_for_them(log: EventLog) -> None:
    recorder = ServedRecorder(log, interval=60.0)  # only a flush (or close) wakes the writer
    for number in range(2500):
        recorder.record(served(number))
    assert log.served("r0") is None  # not written yet: nothing waited on the disk
    assert recorder.flush(timeout=10)
    assert log.served("r0") == served(0) and log.served("r2499") == served(2499)
    recorder.record(served(9999))
    recorder.close()  # writes what is still queued
    assert log.served("r9999") == served(9999)


def test_a_full_queue_drops_and_counts_instead_of_growing(log: EventLog) -> None:
    blocked = BlockedLog(log)
    recorder = ServedRecorder(blocked, interval=0.01, max_pending=5)  # type: ignore[arg-type]
    recorder.record(served(0))
    deadline = time.monotonic() + 10
    while recorder._queue.qsize() and time.monotonic() < deadline:  # until the writer took it
        time.sleep(0.001)
    before = dropped()
    for number in range(1, 20):
        recorder.record(served(number))
    assert dropped() - before == 14  # 5 fit in the queue; the writer holds one more
    blocked.release.set()
    assert recorder.flush(timeout=10)
    assert sum(blocked.writes) == 6
    recorder.close()


def test_a_failing_write_is_counted_and_the_recorder_goes_on(log: EventLog) -> None:
    blocked = BlockedLog(log)
    blocked.fail = True
    blocked.release.set()
    recorder = ServedRecorder(blocked, interval=0.01)  # type: ignore[arg-type]
    before = dropped()
    recorder.record(served(1))
    assert recorder.flush(timeout=10)
    assert dropped() - before == 1
    blocked.fail = False
    recorder.record(served(2))
    assert recorder.flush(timeout=10)
    assert log.served("r2") == served(2)
    recorder.close()


def test_lists_older_than_the_kept_days_are_forgotten_in_chunks(log: EventLog) -> None:
    day = 86_400.0
    now = 100 * day
    log.record_served([served(number) for number in range(7)])  # served at 0..6 s: old
    log.record_served([ServedList("recent", now - day, None, None, None, None, None, ())])
    calls: list[int] = []
    original = log.forget_served

    def counted(before: float, limit: int) -> int:
        gone = original(before, limit)
        calls.append(gone)
        return gone

    log.forget_served = counted  # type: ignore[method-assign]
    assert forget_old_served(log, keep_days=30, now=now, chunk=3) == 7
    assert calls == [3, 3, 1]
    assert log.served("r6") is None and log.served("recent") is not None


def test_the_server_forgets_old_lists_in_the_background(
    make_client: MakeClient, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    before_start = open_event_log(sqlite_url(home))  # kept by an earlier run of the server
    before_start.record_served(
        [
            ServedList("old", now - 3 * 86_400, None, None, None, None, None, ()),
            ServedList("new", now, None, None, None, None, None, ()),
        ]
    )
    before_start.close()
    monkeypatch.setattr(services_module, "FIRST_FORGET_SECONDS", 0.0)
    client = make_client(refresh_seconds=0.05, served_keep_days=1.0)
    log = client.app.state.services.log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while log.served("old") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.served("old") is None and log.served("new") is not None
