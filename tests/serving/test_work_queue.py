"""The hand-off queue under the served-list recorder and the online learner."""

from __future__ import annotations

import queue
import threading

import pytest

from nextbest.serving.work_queue import WorkQueue


def test_a_full_queue_refuses_without_blocking_and_keeps_what_it_held() -> None:
    work: WorkQueue[int] = WorkQueue(max_pending=2)
    assert work.put(1) and work.put(2)
    assert not work.put(3)
    assert [work.get_nowait(), work.get_nowait()] == [1, 2]
    with pytest.raises(queue.Empty):
        work.get_nowait()


def test_wait_done_waits_for_what_was_put_before_it_and_times_out_otherwise() -> None:
    work: WorkQueue[int] = WorkQueue(max_pending=10)
    work.put(1)
    work.put(2)
    assert not work.wait_done(timeout=0.05)  # nobody consumed them
    work.get()
    work.done()
    assert not work.wait_done(timeout=0.05)  # one of two done

    def consume() -> None:
        work.get()
        work.done()

    threading.Thread(target=consume).start()
    assert work.wait_done(timeout=5)


def test_a_stop_marker_is_not_work_and_nudge_runs_before_waiting() -> None:
    work: WorkQueue[int | None] = WorkQueue(max_pending=1)
    work.put_uncounted(None, timeout=1)
    nudged: list[bool] = []
    assert work.wait_done(timeout=0.05, nudge=lambda: nudged.append(True))
    assert nudged == [True]
    assert work.get() is None


def test_max_pending_below_one_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="max_pending"):
        WorkQueue(max_pending=0)
