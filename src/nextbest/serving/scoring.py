"""Scoring for serving: item scores of one batch state, and the top-n that survive the filters.

`scorer_for(model)` is `model.score` as a float32 tensor, with one speed-up that keeps the
interface: GRU4Rec's output layer multiplies by a copy of the item matrix laid out [H, N]
(contiguous along the items), which reads memory in order and halves the time of scoring
43k items for one session on this machine's CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nextbest.models.base import NotFittedError, SessionModel
from nextbest.models.gru4rec import GRU4Rec

Scorer = Callable[[Any], torch.Tensor]  # batch state -> [B, n_items] float32


class GRU4RecScorer:
    def __init__(self, model: GRU4Rec) -> None:
        net = model.net
        if net is None:
            raise NotFittedError("GRU4Rec is not fitted: nothing to serve")
        self.hidden = model.config.layers[-1]
        self.weights_t = net.item_weights.detach().T.contiguous()  # [H_last, N]
        self.bias = net.item_bias.detach().clone()  # [N]

    @torch.no_grad()
    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        last = state[:, state.shape[1] - self.hidden :]  # [B, H_last]: the last layer's state
        return torch.addmm(self.bias, last, self.weights_t)  # [B, N]


def scorer_for(model: SessionModel[Any, Any]) -> Scorer:
    if isinstance(model, GRU4Rec):
        return GRU4RecScorer(model)

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
    keep = torch.isfinite(values)
    return columns[keep].numpy(), values[keep].numpy()
