"""A bounded hand-off from the request path to one background thread.

Producers never block: `put` returns False when `max_pending` items wait already (the caller
counts the drop). The consumer marks what it finished with `done`, and `wait_done` waits until
everything put before the call is done, which is how tests and shutdown know the background
work caught up. The served-list recorder and the online learner both hand work off this way.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class WorkQueue(Generic[T]):
    def __init__(self, max_pending: int) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, not {max_pending!r}")
        self._items: queue.Queue[T] = queue.Queue(maxsize=max_pending)
        self._progress = threading.Condition()
        self._put = 0  # items accepted so far
        self._done = 0  # of those, finished (or given up) by the consumer

    def put(self, item: T) -> bool:
        """Queue `item` without blocking; False (nothing queued) when the queue is full."""
        with self._progress:
            try:
                self._items.put_nowait(item)
            except queue.Full:
                return False
            self._put += 1
            return True

    def put_uncounted(self, item: T, timeout: float) -> None:
        """Queue a stop marker, waiting up to `timeout` s for room (queue.Full after that);
        it is not work, so `wait_done` does not wait for it."""
        self._items.put(item, timeout=timeout)

    def get(self, timeout: float | None = None) -> T:
        """The next item, waiting up to `timeout` s (queue.Empty after that)."""
        return self._items.get(timeout=timeout)

    def get_nowait(self) -> T:
        return self._items.get_nowait()

    def done(self, count: int = 1) -> None:
        with self._progress:
            self._done += count
            self._progress.notify_all()

    def wait_done(self, timeout: float, nudge: Callable[[], None] | None = None) -> bool:
        """Wait until every item put before the call is done; False after `timeout` s.
        `nudge` runs first (to wake a consumer that sleeps between batches)."""
        with self._progress:
            target = self._put
            if nudge is not None:
                nudge()
            return self._progress.wait_for(lambda: self._done >= target, timeout)

    def qsize(self) -> int:
        return self._items.qsize()
