"""Scoring for serving: item scores of one batch state, and the top-n that survive the filters.

`scorer_for(model)` is `model.score` as a float32 tensor, with one speed-up for GRU4Rec that
keeps the interface. Scoring one session reads the whole item matrix (43k x 100 float32 =
17 MB), so its speed is the speed of memory. The scorer reads a copy laid out [H, N]
(contiguous along the items, read in order), and that copy is a file under the data folder
that every worker process memory-maps: the workers share one physical copy, which stays in
the CPU's last-level cache, instead of each evicting the other's from it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nextbest.models.base import NotFittedError, SessionModel
from nextbest.models.gru4rec import GRU4Rec

Scorer = Callable[[Any], torch.Tensor]  # batch state -> [B, n_items] float32


class GRU4RecScorer:
    def __init__(self, model: GRU4Rec, cache: Path | None = None) -> None:
        net = model.net
        if net is None:
            raise NotFittedError("GRU4Rec is not fitted: nothing to serve")
        self.hidden = model.config.layers[-1]
        weights_t = net.item_weights.detach().T.contiguous().numpy()  # [H_last, N]
        if cache is not None:
            weights_t = shared_array(weights_t, cache / "item_weights_t.npy")
        with warnings.catch_warnings():  # a read-only map: torch warns, nothing writes to it
            warnings.simplefilter("ignore", UserWarning)
            self.weights_t = torch.from_numpy(weights_t)
        self.bias = net.item_bias.detach().clone()  # [N]

    @torch.no_grad()
    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        last = state[:, state.shape[1] - self.hidden :]  # [B, H_last]: the last layer's state
        return torch.addmm(self.bias, last, self.weights_t)  # [B, N]


def shared_array(array: np.ndarray, path: Path) -> np.ndarray:
    """`array` as a read-only memory map of `path`, written there by the first process.

    Processes that load the same model map the same file, so they share its pages. The first
    writer links its finished file into place; the others find it there and map it.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with staging.open("wb") as out:
            np.save(out, array)
        with contextlib.suppress(FileExistsError):
            os.link(staging, path)
        staging.unlink()
    mapped: np.ndarray = np.load(path, mmap_mode="r")
    if mapped.shape != array.shape or mapped.dtype != array.dtype:
        raise ValueError(f"{path} does not hold this model's array: delete it and restart")
    return mapped


def scorer_for(model: SessionModel[Any, Any], cache: Path | None = None) -> Scorer:
    """How serving scores a batch state; `cache`: a folder for arrays shared by workers."""
    if isinstance(model, GRU4Rec):
        return GRU4RecScorer(model, cache)

    def score(state: Any) -> torch.Tensor:
        return torch.from_numpy(np.array(model.score(state), dtype=np.float32))

    return score


def top_n(
    scores: torch.Tensor, n: int, banned: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The best `n` columns of one row of scores [N] (best first) and their scores.

    Columns in `banned` are never returned, nor are columns scored -inf; fewer than `n` come
    back only when fewer remain.
    """
    if banned is not None and len(banned):
        scores = scores.clone()
        scores[torch.from_numpy(banned)] = float("-inf")
    k = min(n, scores.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    values, columns = torch.topk(scores, k)
    top, best = columns.numpy(), values.numpy()
    keep = np.isfinite(best)  # -inf: banned, only reached when too few items remain
    return top[keep], best[keep]
