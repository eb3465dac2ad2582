"""Online learning of a two-stage version's FTRL ranker, off the request's path.

Each list the learned ranker ordered is an *impression*: the worker keeps the ranker's
features of the shown items under the list's `recommendation_id` (the latest
`max_impressions`, in memory). An event that carries the id back (a click, a cart, a
purchase) is an *outcome*: `outcome` queues it and returns; a background thread learns it.
The first outcome of a list teaches one FTRL pass over all its shown items (the item of the
outcome 1, the others 0); a later outcome on another item of the same list teaches that
item's row as a positive. Lists without an outcome teach nothing (a list nobody looked at
says nothing about its items).

The learned state is saved beside the version's trained ranker (`ranker-online/`, written
atomically) every `save_seconds` while it changes and at shutdown, and a restart loads it:
what was learned survives. `reset` goes back to the trained ranker and deletes the saved
state. A saved state that cannot be read is refused at load (`PipelineModel.ranker_error`),
and the version serves in its generators' order until it is reset or replaced.

With several worker processes, each learns from the outcomes it receives for the lists it
served, and the state saved last is the one a restart loads. A reset leaves a marker file
in the version folder (`ranker-reset`); every worker's learner looks for a newer one about
once a second and resets itself too, so no worker saves the forgotten state again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nextbest.serving import metrics
from nextbest.serving.registry import LoadedModel
from nextbest.serving.work_queue import WorkQueue
from nextbest.twostage.data import RankingData
from nextbest.twostage.model import (
    RANKER_DIR,
    PipelineModel,
    forget_online,
    load_ranker,
    save_online,
)

logger = logging.getLogger(__name__)

OUTCOMES = frozenset({"click", "cart", "purchase"})
RESET_MARKER = "ranker-reset"  # in the version folder: when the ranker was last reset


@dataclass
class Impression:
    version: str
    items: list[str]  # shown, in order, that the ranker scored
    data: RankingData  # its rows, in `items` order
    positives: set[str] = field(default_factory=set)


def learns_online(model: LoadedModel | None) -> bool:
    pipeline = model.model if model is not None else None
    return (
        isinstance(pipeline, PipelineModel)
        and pipeline.ranker is not None
        and hasattr(pipeline.ranker, "update")
    )


class OnlineLearner:
    def __init__(
        self,
        home: Path,
        current: Any,
        save_seconds: float = 30.0,
        max_impressions: int = 50_000,
        max_pending: int = 10_000,
    ) -> None:
        """`current`: a callable giving the model answering now (the registry's)."""
        self.home = home
        self.current = current
        self.save_seconds = save_seconds
        self.max_impressions = max_impressions
        self._impressions: OrderedDict[str, Impression] = OrderedDict()
        self._queue: WorkQueue[tuple[str, str] | None] = WorkQueue(max_pending)
        self._lock = threading.Lock()  # impressions, and the ranker while it learns or resets
        self._dirty: str | None = None  # the version whose ranker learned since its last save
        self._last_save = time.monotonic()
        self._reset_seen: dict[str, float] = {}  # version -> the marker's time acted on
        self._thread = threading.Thread(target=self._run, name="online-learner", daemon=True)
        self._thread.start()

    def folder(self, version: str) -> Path:
        return self.home / "models" / version

    # -- the request and event paths: quick, never blocking ----------------------------------
    def impression(
        self, model: LoadedModel | None, recommendation_id: str, ranked: Any, items: list[Any]
    ) -> None:
        """Keep the ranker's features of the shown items of one answered list."""
        if model is None or not learns_online(model):
            return
        column_of = {int(row): position for position, row in enumerate(ranked.rows)}
        shown, rows = [], []
        for item in items:
            column = model.index.get(item.item_id)
            position = column_of.get(column) if column is not None else None
            if position is not None:
                shown.append(item.item_id)
                rows.append(position)
        if not rows:
            return
        kept = Impression(model.version, shown, ranked.data.take(np.asarray(rows)))
        with self._lock:
            self._impressions[recommendation_id] = kept
            while len(self._impressions) > self.max_impressions:
                self._impressions.popitem(last=False)

    def outcome(self, recommendation_id: str, item_id: str) -> None:
        """Queue one outcome (an event carrying `recommendation_id` for `item_id`)."""
        if not self._queue.put((recommendation_id, item_id)):
            metrics.ONLINE.labels("dropped").inc()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every outcome queued before the call is learned (tests, shutdown)."""
        return self._queue.wait_done(timeout)

    # -- the learner -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                work = self._queue.get(timeout=1.0)
            except queue.Empty:
                work = ()  # type: ignore[assignment]
            if work is None:
                return
            if work:
                try:
                    self._learn(*work)
                except Exception:
                    logger.exception("online learning failed for one outcome")
                self._queue.done()
            self._follow_reset()
            if self._dirty and time.monotonic() - self._last_save >= self.save_seconds:
                self.save()

    def _learn(self, recommendation_id: str, item_id: str) -> None:
        model = self.current()
        with self._lock:
            kept = self._impressions.get(recommendation_id)
            if kept is None or model is None or kept.version != model.version:
                metrics.ONLINE.labels("unknown").inc()
                return
            if item_id not in kept.items or item_id in kept.positives:
                return  # not a shown item of the list, or learned already
            ranker = model.model.ranker
            if ranker is None:
                return
            if not kept.positives:  # the list's first outcome: every shown item once
                labels = np.array([i == item_id for i in kept.items], np.float32)
                ranker.update(kept.data.with_labels(labels))
            else:
                row = kept.items.index(item_id)
                ranker.update(kept.data.take(np.array([row])).with_labels(np.ones(1)))
            kept.positives.add(item_id)
            self._dirty = model.version
        metrics.ONLINE.labels("learned").inc()

    def _marker_time(self, version: str) -> float:
        try:
            return (self.folder(version) / RESET_MARKER).stat().st_mtime
        except OSError:
            return 0.0

    def _follow_reset(self) -> None:
        """Reset this worker's ranker too when another worker reset the version's."""
        model = self.current()
        if model is None or not isinstance(model.model, PipelineModel):
            return
        marker = self._marker_time(model.version)
        seen = self._reset_seen.setdefault(model.version, marker)  # at start: nothing to do
        if marker > seen:
            self._reset_seen[model.version] = marker
            try:
                self._reset_in_memory(model)
            except ValueError:
                logger.exception("could not follow the reset of the ranker of %s", model.version)
            else:
                logger.info("the ranker of %s was reset by another worker", model.version)

    def save(self) -> bool:
        """Write the learned state of the version answering now, if it learned since."""
        model = self.current()
        with self._lock:
            if model is None or self._dirty != model.version or model.model.ranker is None:
                return False
            try:
                save_online(model.model.ranker, self.folder(model.version))
            except Exception:
                logger.exception("could not save the online ranker of %s", model.version)
                return False
            self._dirty = None
            self._last_save = time.monotonic()
        metrics.ONLINE.labels("saved").inc()
        return True

    def reset(self, model: LoadedModel) -> str:
        """Back to the trained ranker: the online state is forgotten, in memory and on disk.
        Returns where the ranker now comes from; ValueError when the version has no ranker
        to go back to."""
        pipeline = model.model
        if not isinstance(pipeline, PipelineModel):
            raise ValueError(f"model {model.version} is not a two-stage pipeline: no ranker")
        folder = self.folder(model.version)
        with self._lock:
            forget_online(folder)
            (folder / RESET_MARKER).write_text(f"{time.time()}\n")  # the other workers follow
            self._reset_seen[model.version] = self._marker_time(model.version)
        return self._reset_in_memory(model)

    def _reset_in_memory(self, model: LoadedModel) -> str:
        pipeline = model.model
        assert isinstance(pipeline, PipelineModel)
        with self._lock:
            ranker, error, source = load_ranker(pipeline.spec, self.folder(model.version))
            pipeline.ranker, pipeline.ranker_error, pipeline.ranker_source = ranker, error, source
            self._impressions.clear()  # their features were scored by the old state
            self._dirty = None
        metrics.RANKER_REFUSED.set(1 if error else 0)
        if error:
            raise ValueError(error)
        return RANKER_DIR

    def close(self) -> None:
        """Learn what is queued (for up to 10 s), stop, and save."""
        try:
            self._queue.put_uncounted(None, timeout=10)
        except queue.Full:  # the learner is far behind: the outcomes still queued are lost
            logger.warning(
                "online learner: stopping with %d outcomes unlearned", self._queue.qsize()
            )
        self._thread.join(timeout=10)
        self.save()
