"""Items like the one on screen: nearest by the model's item vectors.

With GRU4Rec these are the output vectors: two items are alike when the model scores them
alike after the same session. The anchor's vector goes through the model's own scorer (the
exact int8-prescreened top-k, in the same pass over the item matrix as the session's own
query), so similar items cost little more than the session's. A model without item vectors
answers with its next items after a session of just the anchor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context
from nextbest.recommend.retrieval.session_model import generate_from_model
from nextbest.recommend.stages import ModelQuery


@dataclass(frozen=True)
class SimilarItems:
    name: str = "similar"

    def query(self, ctx: Context) -> ModelQuery | None:
        model, anchor = ctx.model, ctx.anchor_row
        if model is None or anchor is None or anchor >= ctx.items.n_model:
            return None
        banned = ctx.hard_banned
        banned = np.union1d(banned[banned < ctx.items.n_model], [anchor])
        vectors = model.embeddings
        if vectors is not None:
            state = torch.from_numpy(vectors[anchor : anchor + 1])  # [1, H]
        else:
            start = model.codec.join([model.initial_row])
            state = model.model.step(start, np.array([anchor]), np.zeros(1))
        return ModelQuery(state, banned, exact=0)  # near neighbours by int8 score suffice

    def from_top(self, ctx: Context, top: np.ndarray, values: np.ndarray) -> Candidates:
        assert ctx.anchor_row is not None
        reason = f"similar to {ctx.items.title_of(ctx.anchor_row)}"
        return Candidates.of(np.asarray(top, np.int64), values, self.name, reason)

    def generate(self, ctx: Context, k: int) -> Candidates:
        return generate_from_model(self, ctx, k)
