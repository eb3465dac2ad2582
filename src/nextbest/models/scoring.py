"""Scoring for serving: the best n items of one session state, exactly, and fast.

`model.scorer(cache)` gives a `Scorer` (a model with a fast path overrides `scorer`; serving
never asks for the model's type): called on a batch state it returns every item's score
(`model.score` as a float32 tensor); `scorer.top(state, n, banned)` returns the best `n`
columns of the first session, never a banned one. The base class ranks the full scores. For
a model whose scores are a query vector's dot products with the item rows (`LinearScorer`:
GRU4Rec, SR-GNN, the self-attentive model), two speed-ups keep the answer exactly the same:

- Scoring one session reads the whole item matrix (43k x 100 float32 = 17 MB), so its speed
  is the speed of memory. The float scorer reads a copy laid out [H, N] (contiguous along
  the items, read in order), and that copy is a file under the data folder that every worker
  process memory-maps: the workers share one physical copy in the CPU's last-level cache.
- `top` first scores every item with an int8 copy of the matrix (4x less to read; PyTorch's
  fbgemm dynamic-quantized linear layer), each with a proven bound `B_i` on how far its int8
  score can be from the float one, so its float score lies in `[lower_i, upper_i]`. At least
  n items score at least the n-th largest `lower`; an item whose `upper` is below it cannot
  be in the top n. Only the others (a few dozen to a few hundred of 43k) are scored again in
  float32 and ranked. `Int8Prescreen` says why the bounds hold.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nextbest.models.base import NotFittedError, SessionModel

if TYPE_CHECKING:
    from nextbest.models.gru4rec import GRU4Rec

logger = logging.getLogger(__name__)

# Above this many candidates the int8 pass saved nothing: rank the float scores instead.
MAX_RESCORED = 4096


class Scorer:
    """A model's scores for serving (the base class: `model.score` as a float32 tensor)."""

    def __init__(self, model: SessionModel[Any, Any]) -> None:
        self.model = model

    def __call__(self, state: Any) -> torch.Tensor:
        """Every item's score, [B, n_items] float32."""
        return torch.from_numpy(np.array(self.model.score(state), dtype=np.float32))

    def top(
        self, state: Any, n: int, banned: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best `n` columns of the first session in `state` (best first), and their
        scores; never a column in `banned`."""
        return top_n(self(state)[0], n, banned)

    def top_many(
        self,
        states: Sequence[Any],
        n: Sequence[int],
        banned: Sequence[np.ndarray | None],
        exact: Sequence[int | None] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """`top` of several queries at once (a fast path reads the item matrix once).

        `exact[b]`: how many of query b's first items must be the float ranking's exactly
        (None: all); a fast path may order the rest by approximate scores. This one is exact.
        """
        return [self.top(s, k, b) for s, k, b in zip(states, n, banned, strict=True)]

    def score_rows(self, state: Any, columns: np.ndarray) -> np.ndarray:
        """The first session's float scores of `columns` only, [len(columns)] float32."""
        scores: np.ndarray = self(state)[0].numpy()[columns]
        return scores


class Int8Prescreen:
    """Approximate item scores from an int8 copy of the item matrix, with error bounds.

    The weights are quantized per item (row i: scale `max|w_i| / 127`, symmetric), so
    `|w_ij - q_ij| <= w_err_i`, row i's largest rounding error. At query time fbgemm
    quantizes the state `x` to 8 bits over its range including 0, `[lo, hi]`, with a step of
    at most `x_step = (hi - lo) / 127` (fewer levels when reduce_range is on) and an error of
    at most one step, even where moving the zero point to an integer clips an end. The int8
    score is exact integer arithmetic on `x'` and `q` plus the float bias, so per item

        |score_i - int8_score_i| <= |x - x'|_inf * |q_i|_1 + |x|_1 * |w_i - q_i|_inf
                                 <= x_step * |q_i|_1 + |x|_1 * w_err_i            = B_i

    plus float rounding, covered by a small relative margin.
    """

    def __init__(self, weights: torch.Tensor, bias: torch.Tensor) -> None:
        n_items, hidden = weights.shape
        with warnings.catch_warnings():  # PyTorch marks its eager quantization as deprecated
            warnings.simplefilter("ignore")
            from torch.ao.nn.quantized.dynamic import Linear

            scales = (weights.abs().amax(dim=1) / 127).clamp_min(1e-12).double()
            zeros = torch.zeros(n_items, dtype=torch.long)
            quantized = torch.quantize_per_channel(weights, scales, zeros, 0, torch.qint8)
            self.linear = Linear(hidden, n_items, dtype=torch.qint8)  # type: ignore[no-untyped-call]
            self.linear.set_weight_bias(quantized, torch.zeros_like(bias))
        rounded = quantized.dequantize()
        # [2, N]: per item |q_i|_1 and w_err_i, so that the bounds are one small matmul
        self.terms = torch.stack([rounded.abs().sum(dim=1), (weights - rounded).abs().amax(dim=1)])
        self.terms_np = self.terms.numpy()
        self.largest_terms = (float(self.terms_np[0].max()), float(self.terms_np[1].max()))
        self.magnitude = float(weights.abs().max()), float(bias.abs().max())
        self.bias = bias.clone()

    @torch.no_grad()
    def __call__(self, last: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The int8 scores of the rows of `last` [B, H] and their bounds, both [B, N]."""
        approx, bounds = self.scores(last)
        return approx, np.stack([bound.at(None) for bound in bounds])

    @torch.no_grad()
    def scores(self, last: torch.Tensor) -> tuple[np.ndarray, list[RowBound]]:
        """The int8 scores of the rows of `last` [B, H], [B, N], and each row's bounds, to be
        computed only for the items that need them (a full row of bounds costs as much as
        the int8 pass itself).

        fbgemm quantizes the whole input on one range, so with several rows each is first
        scaled to max |x| = 1 (scores are linear in x: its int8 score is scaled back); the
        rows then share one pass over the weights, and each row's bound is its scale times
        the bound of its scaled row.
        """
        if len(last) == 1:
            scale, unit = None, last
        else:
            scale = last.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)  # [B, 1]
            unit = last / scale
        rows = unit.numpy()
        x_step = (max(float(rows.max()), 0.0) - min(float(rows.min()), 0.0)) / 127
        l1 = np.abs(rows).sum(axis=1)  # [B] of the (scaled) rows
        scales = np.ones(len(rows)) if scale is None else scale[:, 0].numpy().astype(np.float64)
        w_max, b_max = self.magnitude
        bounds = [  # in the units of the original rows
            RowBound(
                self.terms_np,
                np.float32(x_step * scales[b]),
                np.float32(l1[b] * scales[b]),
                np.float32(1e-5 * (l1[b] * scales[b] * w_max + b_max) + 1e-6),  # float rounding
                self.largest_terms,
            )
            for b in range(len(rows))
        ]
        products = self.linear(unit)  # [B, N], without the bias (the layer holds zeros)
        if scale is None:
            approx = products.add_(self.bias)
        else:
            approx = torch.addcmul(self.bias, products, scale)
        return approx.numpy(), bounds


class RowBound:
    """One query's bounds `B_i = x_step * |q_i|_1 + |x|_1 * w_err_i + margin` (float32),
    for any set of items, and an upper bound on all of them."""

    def __init__(
        self,
        terms: np.ndarray,
        step: np.float32,
        l1: np.float32,
        margin: np.float32,
        largest: tuple[float, float],
    ) -> None:
        self.q_l1, self.w_err = terms
        self.step, self.l1, self.margin = step, l1, margin
        # >= every B_i: each term grows with its per-item factor (all factors are >= 0)
        self.most = (largest[0] * float(step) + largest[1] * float(l1) + float(margin)) * (1 + 1e-6)

    def at(self, columns: np.ndarray | None) -> np.ndarray:
        """B_i of `columns` (None: every item), float32."""
        q_l1 = self.q_l1 if columns is None else self.q_l1[columns]
        w_err = self.w_err if columns is None else self.w_err[columns]
        bound: np.ndarray = q_l1 * self.step
        bound += w_err * self.l1
        bound += self.margin
        return bound


class LinearScorer(Scorer):
    """Scores that are a query vector's dot products with the item rows plus a bias
    (GRU4Rec's last layer; SR-GNN's and the self-attentive model's session vectors): the
    shared [H, N] float copy and the int8 prescreen serve any such model.

    `query(state)` -> [B, H] the query vectors of a batch state; `weights` [N, H], `bias` [N].
    """

    def __init__(
        self,
        model: SessionModel[Any, Any],
        weights: torch.Tensor,
        bias: torch.Tensor,
        query: Callable[[Any], torch.Tensor],
        cache: Path | None = None,
        prescreen: bool = True,
    ) -> None:
        super().__init__(model)
        self.query = query
        weights = weights.detach()
        weights_t = weights.T.contiguous().numpy()  # [H, N]
        if cache is not None:
            weights_t = shared_array(weights_t, cache / "item_weights_t.npy")
        with warnings.catch_warnings():  # a read-only map: torch warns, nothing writes to it
            warnings.simplefilter("ignore", UserWarning)
            self.weights_t = torch.from_numpy(weights_t)
        self.weights = weights.contiguous()  # rows, for rescoring candidates
        self.bias = bias.detach().clone()  # [N]
        self.prescreen: Int8Prescreen | None = None
        if prescreen:
            try:
                self.prescreen = Int8Prescreen(self.weights, self.bias)
            except Exception:  # no int8 kernels on this machine: float scores only
                logger.warning("int8 prescreen unavailable: scoring in float32", exc_info=True)

    @torch.no_grad()
    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, self.query(state), self.weights_t)  # [B, N]

    def keep_the_faster_path(
        self, states: Sequence[torch.Tensor], n: int = 10, rounds: int = 5
    ) -> dict[str, float]:
        """Time `top(state, n)` with and without the int8 prescreen on `states` and drop the
        prescreen where it is the slower (both answers are the same exact top-n).

        Which is faster depends on the CPU's int8 kernels and caches: on one 2-core VM the
        int8 path took half the float path's time, on another slightly more. Rounds
        alternate the two paths and each keeps its fastest round, so a busy moment while a
        server starts (another worker loading) weighs on neither. Returns the milliseconds
        per call of each path.
        """
        prescreen = self.prescreen
        if prescreen is None or not states:
            return {}
        best = {"int8": float("inf"), "float32": float("inf")}
        for _ in range(rounds):
            for path in ("int8", "float32"):
                self.prescreen = prescreen if path == "int8" else None
                started = time.perf_counter()
                for state in states:
                    self.top(state, n)
                elapsed = (time.perf_counter() - started) / len(states)
                best[path] = min(best[path], 1000 * elapsed)
        self.prescreen = prescreen if best["int8"] <= best["float32"] else None
        return best

    @torch.no_grad()
    def top(
        self, state: torch.Tensor, n: int, banned: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.prescreen is None or n <= 0:
            return super().top(state, n, banned)
        last = self.query(state)[:1]
        approx, bounds = self.prescreen.scores(last)
        return self._top_row(state, last[0], approx[0], bounds[0], n, banned)

    @torch.no_grad()
    def top_many(
        self,
        states: Sequence[torch.Tensor],
        n: Sequence[int],
        banned: Sequence[np.ndarray | None],
        exact: Sequence[int | None] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """As the base class; past its `exact[b]` first items, query b is ordered by the
        int8 scores (each within its proven bound of the float score)."""
        if self.prescreen is None:
            return super().top_many(states, n, banned)
        exact = exact if exact is not None else [None] * len(states)
        lasts = torch.cat([self.query(state)[:1] for state in states])  # [B, H]
        approx, bounds = self.prescreen.scores(lasts)
        return [
            self._top_row(states[b], lasts[b], approx[b], bounds[b], n[b], banned[b], exact[b])
            if n[b] > 0
            else super(LinearScorer, self).top(states[b], n[b], banned[b])
            for b in range(len(states))
        ]

    def _top_row(
        self,
        state: torch.Tensor,
        last: torch.Tensor,
        approx: np.ndarray,
        bounds: RowBound,
        n: int,
        banned: np.ndarray | None,
        exact: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top-n of one query from its int8 scores [N] and bounds (`last`: [H]): its
        first `exact` (None: all n) exactly the float ranking's, the rest by int8 score.

        Each item's float score lies in [approx - bound, approx + bound]. The `exact` items
        of best int8 score all score at least the smallest of their lower bounds, T, so the
        `exact`-th best float score is at least T too, and an item whose upper bound is
        below T cannot be among the first `exact`: only the others are scored in float32.
        """
        if banned is not None and len(banned):
            approx[banned] = -np.inf
        head = n if exact is None else min(exact, n)
        finite = len(approx) if banned is None else len(approx) - len(banned)  # unique columns
        wanted = min(n + head, finite)
        if wanted <= 0 or finite < head:  # fewer items left than asked: the float path
            return super().top(state, n, banned)
        scores = torch.from_numpy(approx)
        best_values, best = torch.topk(scores, wanted)  # by int8 score
        if head == 0:
            return best[:n].numpy(), best_values[:n].numpy()
        first = best[:head].numpy()
        threshold = float((approx[first] - bounds.at(first)).min())
        # the items whose upper bound reaches T: first those that the largest bound lets
        # reach it (a superset, with slack for float rounding), then each by its own bound
        slack = bounds.most + 1e-5 * (abs(threshold) + bounds.most)
        near = np.flatnonzero(approx >= threshold - slack)
        near = near[approx[near] + bounds.at(near) >= threshold]
        candidates = torch.from_numpy(near)
        if len(candidates) > MAX_RESCORED:
            return super().top(state, n, banned)
        rescored = torch.addmv(self.bias[candidates], self.weights[candidates], last)
        values, order = torch.topk(rescored, head)
        columns = candidates[order].numpy()
        if head == n:
            return columns, values.numpy()
        tail = best.numpy()
        tail_values = best_values.numpy()
        keep = ~(tail[:, None] == columns[None, :]).any(axis=1)  # a few hundred by n: small
        tail, tail_values = tail[keep][: n - head], tail_values[keep][: n - head]
        return np.concatenate([columns, tail]), np.concatenate([values.numpy(), tail_values])

    @torch.no_grad()
    def score_rows(self, state: torch.Tensor, columns: np.ndarray) -> np.ndarray:
        index = torch.from_numpy(np.asarray(columns, dtype=np.int64))
        last = self.query(state)[0]
        scores: np.ndarray = torch.addmv(self.bias[index], self.weights[index], last).numpy()
        return scores


class GRU4RecScorer(LinearScorer):
    def __init__(self, model: GRU4Rec, cache: Path | None = None, prescreen: bool = True) -> None:
        net = model.net
        if net is None:
            raise NotFittedError("GRU4Rec is not fitted: nothing to serve")
        hidden = model.config.layers[-1]

        def last_layer(state: torch.Tensor) -> torch.Tensor:
            return state[:, state.shape[1] - hidden :]  # [B, H_last]: the last layer's state

        super().__init__(model, net.item_weights, net.item_bias, last_layer, cache, prescreen)
        self.hidden = hidden  # the last layer's size: the query is a state's last H columns


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
    return model.scorer(cache)


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
