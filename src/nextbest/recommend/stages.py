"""The interfaces of the pipeline's stages, written down once.

Every stage is a small frozen dataclass (its configuration) with one call. A stage reads the
request through `Context` and passes `Candidates` on; none converts lists of ids.

    Generator.generate(ctx, k)   -> up to k candidates, best first (over-fetching: k > n)
    Ranker.rank(ctx, merged)     -> the merged candidates with new scores, best first
    Rule.apply(ctx, candidates)  -> candidates filtered, boosted or re-scored
    Diversifier.select(ctx, candidates, n) -> the n to show, in order
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context


class Generator(Protocol):
    name: str  # the `source` of the items it proposes

    def generate(self, ctx: Context, k: int) -> Candidates: ...


@dataclass(frozen=True)
class ModelQuery:
    """One top-k question to the session model's scorer: a batch state of one row, the score
    columns never to return, and how many of the first items must be exactly the float
    ranking's (None: all; the rest of the over-fetch may come in int8 order)."""

    state: Any
    banned: np.ndarray
    exact: int | None = None
    k: int | None = None  # how many to ask for (None: the generator's k)


@runtime_checkable
class ModelGenerator(Generator, Protocol):
    """A generator whose candidates are the model's top-k for one query: the pipeline asks
    all such generators of a placement in one pass over the item matrix (`top_many`).
    `query` may answer at once (from a cache) with the candidates themselves, or with None
    when it has nothing to ask."""

    def query(self, ctx: Context, k: int) -> ModelQuery | Candidates | None: ...

    def from_top(self, ctx: Context, top: np.ndarray, values: np.ndarray, k: int) -> Candidates: ...


class Ranker(Protocol):
    def rank(self, ctx: Context, candidates: Candidates) -> Candidates: ...


class Rule(Protocol):
    def apply(self, ctx: Context, candidates: Candidates) -> Candidates: ...


class Diversifier(Protocol):
    def select(self, ctx: Context, candidates: Candidates, n: int) -> Candidates: ...
