"""The recorder of served lists: off the request's path, bounded, and never fatal."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from nextbest.events.log import EventLog, ServedList, open_event_log, sqlite_url
from nextbest.serving.served import ServedRecorder


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
