"""Diversity: maximal marginal relevance (Carbonell and Goldstein, 1998) and a cap per category.

MMR picks the list one item at a time, each maximising

    (1 - mmr) * relevance - mmr * max similarity to the items already picked

with relevance the candidates' scores scaled to [0, 1] and similarity the cosine of the
model's item vectors (rows the model knows), else of the items' attributes (same category 1,
same top category 0.5, same brand 0.3). `max_per_category` caps the items of one leaf
category. Both 0: the list is the candidates' top n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.events.schema import CATEGORY_SEPARATOR
from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context

POOL_FACTOR, MIN_POOL = 5, 50  # MMR looks at the best max(5 n, 50) candidates only


@dataclass(frozen=True)
class Diversity:
    mmr: float = 0.0  # 0: off; 1: similarity only
    max_per_category: int = 0  # 0: no cap

    def __post_init__(self) -> None:
        if not 0.0 <= self.mmr <= 1.0:
            raise ValueError(f"mmr must be in [0, 1], not {self.mmr!r}")
        if self.max_per_category < 0:
            raise ValueError(f"max_per_category must be >= 0, not {self.max_per_category!r}")

    def select(self, ctx: Context, candidates: Candidates, n: int) -> Candidates:
        if self.mmr == 0.0 and self.max_per_category == 0:
            return candidates.head(n)
        pool = candidates.head(max(POOL_FACTOR * n, MIN_POOL))
        codes = ctx.items.category_code[pool.rows]
        cap = self.max_per_category
        if self.mmr == 0.0:
            return pool.take(_capped(codes, cap, n))
        vectors = _vectors(ctx, pool.rows)
        similarity = vectors @ vectors.T  # [P, P]: the pool is small
        scores = pool.scores
        span = float(scores.max() - scores.min()) if len(scores) else 0.0
        relevance = (scores - scores.min()) / span if span > 0 else np.ones(len(scores))
        gain = (1.0 - self.mmr) * relevance
        penalty = np.zeros(len(pool))  # mmr * the max similarity to the picked ones
        per_category: dict[int, int] = {}
        picked: list[int] = []
        for _ in range(len(pool)):
            if len(picked) == n:
                break
            best = int(np.argmax(gain - penalty))
            gain[best] = -np.inf  # taken (or capped) either way
            code = int(codes[best])
            if cap and code >= 0 and per_category.get(code, 0) >= cap:
                continue
            per_category[code] = per_category.get(code, 0) + 1
            picked.append(best)
            np.maximum(penalty, self.mmr * similarity[best], out=penalty)
        return pool.take(np.array(picked, dtype=np.int64))


def _capped(codes: np.ndarray, cap: int, n: int) -> np.ndarray:
    count: dict[int, int] = {}
    keep = []
    for position, code in enumerate(codes.tolist()):
        if code >= 0 and count.get(code, 0) >= cap:
            continue
        count[code] = count.get(code, 0) + 1
        keep.append(position)
        if len(keep) == n:
            break
    return np.array(keep, dtype=np.int64)


def _vectors(ctx: Context, rows: np.ndarray) -> np.ndarray:
    """Unit vectors [C, d] whose dot products are the items' similarities."""
    model = ctx.model
    embeddings = model.embeddings if model is not None else None
    if embeddings is not None and len(rows) and (rows < len(embeddings)).all():
        vectors = embeddings[rows].astype(np.float64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray = vectors / np.where(norms > 0, norms, 1.0)
        return unit
    return attribute_vectors(ctx, rows)


def attribute_vectors(ctx: Context, rows: np.ndarray) -> np.ndarray:
    """One-hot leaf, top category and brand, weighted so that dot products are 1 for the same
    leaf (and brand), 0.5 for the same top category, 0.3 for the same brand only."""
    items = ctx.items
    leaves = items.category[rows]
    tops = [str(c).split(CATEGORY_SEPARATOR, 1)[0] if c else None for c in leaves]
    brands = items.brand[rows]
    columns: dict[tuple[str, object], int] = {}
    entries = []
    for position, keys in enumerate(zip(leaves, tops, brands, strict=True)):
        for kind, key, weight in zip(("leaf", "top", "brand"), keys, (0.2, 0.5, 0.3), strict=True):
            if key is not None:
                column = columns.setdefault((kind, key), len(columns))
                entries.append((position, column, weight))
    vectors = np.zeros((len(rows), max(1, len(columns))))
    for position, column, weight in entries:
        vectors[position, column] = np.sqrt(weight)
    return vectors
