"""Every item's nearest items by the model's own score, computed once per model version.

    table = NeighbourTable.build(scorer, vectors, k=250)   # [N, k] rows and scores
    rows, scores = table.of(anchor)                        # best first, the anchor left out

Item-to-item neighbours do not depend on the session, so a product page need not scan the
item matrix for them: the server builds this table in a background thread when it loads a
version (about 15 s of one core for 43k items), shares it between its workers as a memory
map in the version's serving cache, and until it is ready the "similar" generator scores
the anchor live as before. Neighbours here are in exact float order: `score(vectors[a])`,
the scores the model gives every item after a session whose state is item a's vector.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

BLOCK = 256  # anchors scored per matrix product while building


@dataclass(frozen=True)
class NeighbourTable:
    rows: np.ndarray  # [N, k] int32, best first
    scores: np.ndarray  # [N, k] float32

    @property
    def k(self) -> int:
        return int(self.rows.shape[1])

    def of(self, anchor: int) -> tuple[np.ndarray, np.ndarray]:
        return self.rows[anchor].astype(np.int64), self.scores[anchor]

    @classmethod
    @torch.no_grad()
    def build(cls, scorer: Any, vectors: np.ndarray, k: int) -> NeighbourTable:
        """`scorer(state)` -> [B, N] float scores; `vectors` [N, d]: each item's query."""
        n = len(vectors)
        k = min(k, n - 1)
        rows = np.empty((n, k), dtype=np.int32)
        scores = np.empty((n, k), dtype=np.float32)
        for start in range(0, n, BLOCK):
            stop = min(start + BLOCK, n)
            block = scorer(torch.from_numpy(np.ascontiguousarray(vectors[start:stop])))
            anchors = torch.arange(start, stop)
            block[anchors - start, anchors] = -torch.inf  # an item is not its own neighbour
            values, top = torch.topk(block, k, dim=1)
            rows[start:stop] = top.numpy()
            scores[start:stop] = values.numpy()
        return cls(rows, scores)

    def save(self, folder: Path) -> None:
        """Both arrays into `folder`, each written aside and linked into place."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in (("rows", self.rows), ("scores", self.scores)):
            path = folder / f"neighbours-{self.k}-{name}.npy"
            staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with staging.open("wb") as out:
                np.save(out, array)
            os.replace(staging, path)

    @classmethod
    def open(cls, folder: Path, k: int) -> NeighbourTable | None:
        """The table saved in `folder` with this k, memory-mapped; None if there is none."""
        paths = [folder / f"neighbours-{k}-{name}.npy" for name in ("rows", "scores")]
        if not all(path.exists() for path in paths):
            return None
        rows, scores = (np.load(path, mmap_mode="r") for path in paths)
        if rows.shape != scores.shape or rows.dtype != np.int32:
            return None
        return cls(rows, scores)


def prepare_in_background(
    memo: dict[Any, Any], scorer: Any, vectors: np.ndarray, k: int, cache: Path | None
) -> threading.Thread:
    """Put the table into `memo["neighbours"]` when it is ready: from `cache` if a worker
    saved it, else built here (one process builds, under a lock file; the others wait for
    its file) and saved for the others."""

    def run() -> None:
        with contextlib.suppress(OSError):  # Linux: this thread only, below the requests'
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        started = time.perf_counter()
        try:
            table = _load_or_build(scorer, vectors, k, cache)
        except Exception:
            logger.exception("could not build the item neighbour table: similar items live")
            return
        memo["neighbours"] = table
        logger.info(
            "item neighbour table ready (%d items x %d) in %.1f s",
            len(table.rows), table.k, time.perf_counter() - started,
        )  # fmt: skip

    thread = threading.Thread(target=run, name="neighbour-table", daemon=True)
    thread.start()
    return thread


def _load_or_build(scorer: Any, vectors: np.ndarray, k: int, cache: Path | None) -> NeighbourTable:
    k = min(k, len(vectors) - 1)
    if cache is None:
        return NeighbourTable.build(scorer, vectors, k)
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "neighbours.lock").open("w") as lock:  # closing it releases the lock
        fcntl.flock(lock, fcntl.LOCK_EX)  # a worker that finds it taken waits for the file
        found = NeighbourTable.open(cache, k)
        if found is not None:
            return found
        NeighbourTable.build(scorer, vectors, k).save(cache)
    table = NeighbourTable.open(cache, k)  # the mapped copy: its pages shared by the workers
    assert table is not None
    return table
