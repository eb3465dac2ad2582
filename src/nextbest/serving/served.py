"""Keeping every answered recommendation list, off the request's path.

A recommendation request must not wait for a disk sync, so it hands its list to a
`ServedRecorder` (a queue put) and answers. A background thread writes what has queued up,
in one transaction at most every `interval` seconds. Events are the shop's truth and are
never lost; served lists are the record that attribution joins them to, kept on a best-effort
basis: a crash loses the lists of the last `interval` seconds, and when the log cannot keep
up (or is down), lists beyond `max_pending` are dropped and counted, never held without bound.

    recorder = ServedRecorder(log)
    recorder.record(ServedList(...))   # from any thread; never blocks
    recorder.flush()                   # wait until what was recorded before is written
    recorder.close()                   # flush, then stop the thread
    forget_old_served(log, keep_days=30) # the server calls it hourly: kept lists expire
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from nextbest.events.log import EventLog, ServedList
from nextbest.serving import metrics
from nextbest.serving.work_queue import WorkQueue

logger = logging.getLogger(__name__)

BATCH = 1_000  # lists per transaction, at most
FORGET_CHUNK = 5_000  # kept lists deleted per transaction (short, so event commits barely wait)


def forget_old_served(
    log: EventLog, keep_days: float, now: float | None = None, chunk: int = FORGET_CHUNK
) -> int:
    """Delete the kept lists served more than `keep_days` ago, `chunk` per transaction;
    return how many went."""
    return forget_in_chunks(log.forget_served, keep_days, now, chunk)


def forget_in_chunks(
    forget: Callable[[float, int], int], keep_days: float, now: float | None, chunk: int
) -> int:
    """Call `forget(before, chunk)` (a deletion of at most `chunk` rows older than `before`,
    in one short transaction) until it deletes fewer; return how many rows went."""
    before = (time.time() if now is None else now) - keep_days * 86_400
    total = 0
    while True:
        gone = forget(before, chunk)
        total += gone
        if gone < chunk:
            return total


class ServedRecorder:
    def __init__(self, log: EventLog, interval: float = 0.2, max_pending: int = 100_000) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0, not {interval!r}")
        self.log = log
        self.interval = interval
        self._queue: WorkQueue[ServedList] = WorkQueue(max_pending)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="served-recorder", daemon=True)
        self._thread.start()

    def record(self, served: ServedList) -> None:
        """Queue one answered list for writing; drop it (and count it) if the queue is full."""
        if not self._queue.put(served):
            metrics.SERVED.labels("dropped").inc()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every list recorded before the call is written (or dropped); False if
        that took longer than `timeout` seconds."""
        return self._queue.wait_done(timeout, nudge=self._wake.set)

    def close(self) -> None:
        """Write what is queued, then stop."""
        if not self._stop.is_set():
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            while self._write_some():
                pass
            if self._stop.is_set():
                return

    def _write_some(self) -> bool:
        """Write up to `BATCH` waiting lists; False when none were waiting."""
        batch: list[ServedList] = []
        while len(batch) < BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not batch:
            return False
        try:
            self.log.record_served(batch)
            metrics.SERVED.labels("recorded").inc(len(batch))
        except Exception:  # keep serving; these lists are lost, and counted
            logger.exception("could not record %d served list(s)", len(batch))
            metrics.SERVED.labels("dropped").inc(len(batch))
        self._queue.done(len(batch))
        return True
