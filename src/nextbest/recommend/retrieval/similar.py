"""Items like the one on screen: nearest by the model's item vectors.

With GRU4Rec these are the output vectors: two items are alike when the model scores them
alike after the same session. The anchor's vector goes through the model's own scorer (in the
same int8 pass over the item matrix as the session's query; the neighbours come in int8
order), so similar items cost little more than the session's. A model without item vectors
answers with its next items after a session of just the anchor.

An anchor's neighbours do not depend on the session: the server builds every item's list
once per version in the background (`nextbest.models.neighbours`, exact float order), and
until it is ready (and offline, where nothing builds it) each model keeps the last
`NEIGHBOUR_CACHE` anchors' lists (over-fetched by `SPARE`, so that the session's own
exclusions can be taken out afterwards): a product page shown again costs no scoring.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from nextbest.models.neighbours import NeighbourTable
from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context
from nextbest.recommend.retrieval.session_model import generate_from_model
from nextbest.recommend.stages import ModelQuery
from nextbest.serving.registry import LoadedModel

NEIGHBOUR_CACHE = 20_000  # anchors per model (a list of k + SPARE int64: ~2 KB each at k=200)
SPARE = 50


class Neighbours:
    """The latest anchors' neighbour lists of one model version, least recently used out."""

    def __init__(self, size: int = NEIGHBOUR_CACHE) -> None:
        self.size = size
        self._lists: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def get(self, anchor: int, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        found = self._lists.get((anchor, k))
        if found is not None:
            self._lists.move_to_end((anchor, k))
        return found

    def put(self, anchor: int, k: int, rows: np.ndarray, scores: np.ndarray) -> None:
        self._lists[(anchor, k)] = (rows, scores)
        if len(self._lists) > self.size:
            self._lists.popitem(last=False)


def neighbours_of(model: LoadedModel) -> Neighbours:
    """The neighbour lists of `model`'s version (they go with it at a switch)."""
    cache = model.memo.get("similar")
    if cache is None:
        cache = model.memo["similar"] = Neighbours()
    assert isinstance(cache, Neighbours)
    return cache


@dataclass(frozen=True)
class SimilarItems:
    name: str = "similar"

    def query(self, ctx: Context, k: int) -> ModelQuery | Candidates | None:
        model, anchor = ctx.model, ctx.anchor_row
        if model is None or anchor is None or anchor >= ctx.items.n_model:
            return None
        table = model.memo.get("neighbours")  # built by the server in the background
        wanted = min(k + SPARE, ctx.items.n_model - 1)
        if isinstance(table, NeighbourTable) and table.k >= wanted:
            rows, scores = table.of(anchor)
            return self._shown(ctx, k, rows[:wanted], scores[:wanted])
        cached = neighbours_of(model).get(anchor, k)
        if cached is not None:
            return self._shown(ctx, k, *cached)
        vectors = model.embeddings
        if vectors is not None:
            state = torch.from_numpy(vectors[anchor : anchor + 1])  # [1, H]
        else:
            start = model.codec.join([model.initial_row])
            state = model.model.step(start, np.array([anchor]), np.zeros(1))
        # near neighbours by int8 score suffice; the session's exclusions come out after
        return ModelQuery(state, np.array([anchor], np.int64), exact=0, k=k + SPARE)

    def from_top(self, ctx: Context, top: np.ndarray, values: np.ndarray, k: int) -> Candidates:
        assert ctx.model is not None and ctx.anchor_row is not None
        rows = np.asarray(top, np.int64)
        neighbours_of(ctx.model).put(ctx.anchor_row, k, rows, values)
        return self._shown(ctx, k, rows, values)

    def _shown(self, ctx: Context, k: int, rows: np.ndarray, values: np.ndarray) -> Candidates:
        assert ctx.anchor_row is not None
        keep = ~ctx.hard_banned_mask[rows]
        reason = f"similar to {ctx.items.title_of(ctx.anchor_row)}"
        return Candidates.of(rows[keep][:k], values[keep][:k], self.name, reason)

    def generate(self, ctx: Context, k: int) -> Candidates:
        return generate_from_model(self, ctx, k)
