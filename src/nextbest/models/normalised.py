"""Scaled cosine scores, an option of the neural session models (NISER, Gupta et al. 2019).

With a plain dot product a popular item's embedding grows long and wins everywhere; NISER
L2-normalises the item embeddings and the session vector and multiplies their cosine by a
scale (16 in the paper) so that the softmax can still be sharp. `scale = 0` keeps the plain
dot product of the original papers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ItemTable(nn.Module):
    """The item embedding and the scores of every item against session vectors."""

    def __init__(self, n_items: int, hidden: int, scale: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_items, hidden)
        self.scale = scale
        self._frozen: torch.Tensor | None = None  # the normalised table, outside training

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding.weight

    def table(self) -> torch.Tensor:
        """[n_items, H]: the rows sessions read and are scored against (normalised rows with
        a scale); computed once while the model is not training."""
        if not self.scale:
            return self.embedding.weight
        if self.training or self._frozen is None:
            rows = F.normalize(self.embedding.weight, dim=1)
            if self.training:
                return rows
            self._frozen = rows.detach()
        return self._frozen

    def train(self, mode: bool = True) -> ItemTable:
        self._frozen = None  # the weights may change
        super().train(mode)
        return self

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """The rows of `items` (any shape) as inputs: [..., H]."""
        return self.table()[items]

    def query(self, vectors: torch.Tensor) -> torch.Tensor:
        """What session vectors [B, H] are dotted with the table's rows as: themselves, or
        their unit vectors times the scale."""
        return self.scale * F.normalize(vectors, dim=1) if self.scale else vectors

    def scores(self, vectors: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """[B, n_items] for session vectors [B, H]; `table`: this step's `table()`, when the
        caller already has it (normalising 43k rows twice per training step costs)."""
        return self.query(vectors) @ (self.table() if table is None else table).T

    def scores_of(self, vectors: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """[B, C] for session vectors [B, H] against the items `columns` [C] only."""
        rows = self.embedding.weight[columns]
        if not self.scale:
            return vectors @ rows.T
        return self.scale * F.normalize(vectors, dim=1) @ F.normalize(rows, dim=1).T
