"""The baseline ranker: candidates by popularity (recent first, then overall)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from nextbest.twostage.data import RankingData


@dataclass
class PopularityRanker:
    name: str = "popularity"

    def fit(self, train: RankingData, valid: RankingData | None = None) -> Self:
        return self

    def predict(self, data: RankingData) -> np.ndarray:
        recent = np.nan_to_num(data.column("item.pop_recent"))
        overall = np.nan_to_num(data.column("item.pop"))
        scores: np.ndarray = recent.astype(np.float64) + 1e-3 * overall
        return scores

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def load(cls, folder: Path) -> Self:
        return cls()
