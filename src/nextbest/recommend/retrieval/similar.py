"""Items like the one on screen: nearest by the model's item vectors.

With GRU4Rec these are the output vectors: two items are alike when the model scores them
alike after the same session. The anchor's vector goes through the model's own scorer (the
exact int8-prescreened top-k), so this costs one more scoring of the catalog. A model without
item vectors answers with its next items after a session of just the anchor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context


@dataclass(frozen=True)
class SimilarItems:
    name: str = "similar"

    def generate(self, ctx: Context, k: int) -> Candidates:
        model, anchor = ctx.model, ctx.anchor_row
        if model is None or anchor is None or anchor >= ctx.items.n_model or k <= 0:
            return Candidates.empty()
        banned = ctx.hard_banned
        banned = np.union1d(banned[banned < ctx.items.n_model], [anchor])
        vectors = model.embeddings
        if vectors is not None:
            query = torch.from_numpy(vectors[anchor : anchor + 1])  # [1, H]
        else:
            start = model.codec.join([model.initial_row])
            query = model.model.step(start, np.array([anchor]), np.zeros(1))
        top, values = model.score.top(query, k, banned)
        reason = f"similar to {ctx.items.title_of(anchor)}"
        return Candidates.of(np.asarray(top, np.int64), values, self.name, reason)
