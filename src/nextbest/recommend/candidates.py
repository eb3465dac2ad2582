"""`Candidates`: the one currency that passes between the pipeline's stages.

Columns, not lists of objects: `rows` index the shop's `ItemTable` (so a stage reads any item
field by row), `scores` order the list (higher first, comparable within the list only),
`sources` say which generator put each item there (the API's `source`), `reasons` the short
text a page may show, and `features` hold per-generator columns (`"<generator>.score"`,
`"<generator>.rank"`, NaN where that generator did not propose the item) for rankers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Candidates:
    rows: np.ndarray  # int64 [C]
    scores: np.ndarray  # float64 [C]
    sources: np.ndarray  # object [C] str
    reasons: np.ndarray  # object [C] str
    features: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> float64 [C]

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def of(
        cls,
        rows: np.ndarray | Sequence[int],
        scores: np.ndarray | Sequence[float],
        source: str,
        reason: str | np.ndarray | Sequence[str],
    ) -> Candidates:
        """One generator's list, best first (the pipeline adds its score and rank features)."""
        rows = np.asarray(rows, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float64)
        sources = np.full(len(rows), source, dtype=object)
        if isinstance(reason, str):
            reasons = np.full(len(rows), reason, dtype=object)
        else:
            reasons = np.asarray(reason, dtype=object)
        return cls(rows, scores, sources, reasons, {})

    def with_features(self, **columns: np.ndarray) -> Candidates:
        return Candidates(
            self.rows, self.scores, self.sources, self.reasons, {**self.features, **columns}
        )

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, object), np.zeros(0, object), {})

    def take(self, index: np.ndarray) -> Candidates:
        """The candidates at `index` (int positions or a bool mask), in that order."""
        return Candidates(
            self.rows[index],
            self.scores[index],
            self.sources[index],
            self.reasons[index],
            {name: column[index] for name, column in self.features.items()},
        )

    def with_scores(self, scores: np.ndarray) -> Candidates:
        return Candidates(self.rows, scores, self.sources, self.reasons, self.features)

    def sorted(self) -> Candidates:
        """Best score first (stable: ties keep their order)."""
        return self.take(np.argsort(-self.scores, kind="stable"))

    def head(self, n: int) -> Candidates:
        return self if len(self) <= n else self.take(np.arange(n))


# Below this length a full sort costs no more than the partition that avoids it.
PARTITION_FROM = 512


def best_first(scores: np.ndarray, k: int) -> np.ndarray:
    """The positions of the `k` highest scores, highest first, ties in position order: exactly
    `np.argsort(-scores, kind="stable")[:k]`, without sorting a long list whole (a generator
    scoring thousands of category items keeps a few hundred). Scores without NaN."""
    n = len(scores)
    if n <= k or n < PARTITION_FROM:
        return np.argsort(-scores, kind="stable")[:k]
    kth = np.partition(scores, n - k)[n - k]  # the k-th highest score
    above = np.flatnonzero(scores > kth)
    tied = np.flatnonzero(scores == kth)[: k - len(above)]  # the earliest of the tied
    chosen = np.concatenate([above, tied])  # each part in position order
    return chosen[np.argsort(-scores[chosen], kind="stable")]


def merge(lists: Sequence[Candidates]) -> Candidates:
    """The union of several generators' lists: each item once, in the order of its first
    proposal (`lists` in order, each best first), credited (source, reason, score) to the
    generator that ranked it highest (ties: the earlier list), with every generator's
    features (NaN where it did not propose the item; a shared name keeps the credited one's)."""
    lists = [c for c in lists if len(c)]
    if not lists:
        return Candidates.empty()
    if len(lists) == 1:
        return lists[0]
    rows = np.concatenate([c.rows for c in lists])
    list_of = np.concatenate([np.full(len(c), k) for k, c in enumerate(lists)])
    rank = np.concatenate([np.arange(len(c)) for c in lists])
    unique, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    best_first = np.lexsort((list_of, rank, inverse))  # per row: best rank, then earlier list
    starts = np.searchsorted(inverse[best_first], np.arange(len(unique)))
    credited = best_first[starts]  # [U] the entry each unique row is credited to
    order = np.argsort(first, kind="stable")  # output: first proposal order
    keep = credited[order]
    position = np.empty(len(unique), np.int64)
    position[order] = np.arange(len(unique))
    at = position[inverse]  # for each entry: its place in the merged list
    features: dict[str, np.ndarray] = {}
    names = {name for part in lists for name in part.features}
    for name in names:
        if all(name in part.features for part in lists):  # shared: the credited one's
            features[name] = np.concatenate([part.features[name] for part in lists])[keep]
            continue
        merged = features[name] = np.full(len(keep), np.nan)
        offset = 0
        for part in lists:
            column = part.features.get(name)
            if column is not None:
                span = at[offset : offset + len(part)]
                earlier = merged[span]
                merged[span] = np.where(np.isnan(earlier), column, earlier)
            offset += len(part)
    return Candidates(
        rows[keep],
        np.concatenate([c.scores for c in lists])[keep],
        np.concatenate([c.sources for c in lists])[keep],
        np.concatenate([c.reasons for c in lists])[keep],
        features,
    )


def concat(lists: Sequence[Candidates]) -> Candidates:
    """`lists` one after another, items already in an earlier list left out."""
    lists = [c for c in lists if len(c)]
    if len(lists) <= 1:
        return lists[0] if lists else Candidates.empty()
    seen: set[int] = set()
    parts = []
    for part in lists:
        rows = part.rows.tolist()
        fresh = np.array([r not in seen for r in rows], dtype=bool)
        seen.update(rows)
        parts.append(part if fresh.all() else part.take(fresh))
    names = {name for part in parts for name in part.features}
    features = {
        name: np.concatenate(
            [part.features.get(name, np.full(len(part), np.nan)) for part in parts]
        )
        for name in names
    }
    return Candidates(
        np.concatenate([p.rows for p in parts]),
        np.concatenate([p.scores for p in parts]),
        np.concatenate([p.sources for p in parts]),
        np.concatenate([p.reasons for p in parts]),
        features,
    )
