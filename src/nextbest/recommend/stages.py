"""The interfaces of the pipeline's stages, written down once.

Every stage is a small frozen dataclass (its configuration) with one call. A stage reads the
request through `Context` and passes `Candidates` on; none converts lists of ids.

    Generator.generate(ctx, k)   -> up to k candidates, best first (over-fetching: k > n)
    Ranker.rank(ctx, merged)     -> the merged candidates with new scores, best first
    Rule.apply(ctx, candidates)  -> candidates filtered, boosted or re-scored
    Diversifier.select(ctx, candidates, n) -> the n to show, in order
"""

from __future__ import annotations

from typing import Protocol

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context


class Generator(Protocol):
    name: str  # the `source` of the items it proposes

    def generate(self, ctx: Context, k: int) -> Candidates: ...


class Ranker(Protocol):
    def rank(self, ctx: Context, candidates: Candidates) -> Candidates: ...


class Rule(Protocol):
    def apply(self, ctx: Context, candidates: Candidates) -> Candidates: ...


class Diversifier(Protocol):
    def select(self, ctx: Context, candidates: Candidates, n: int) -> Candidates: ...
