"""A placement's recommendation: retrieve -> rank -> rules -> diversify -> promote -> fill.

    pipeline = placements["product"]
    shown = pipeline.recommend(ctx)        # Candidates: at most ctx.n items, in order

Each generator over-fetches its `k` candidates; they are merged (each item once, with every
generator's rank and score as features), ranked, passed through the rules (exclusions,
filters, the learned purchase rules), diversified down to `n`, given the promotions' and pins'
slots, and filled up to `n` from live popularity, the model's prior and the rest of the
catalog (each filler item passes the same rules), so the list has `n` items whenever that
many are allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from nextbest.recommend.candidates import Candidates, concat, merge
from nextbest.recommend.context import Context
from nextbest.recommend.diversity import Diversity
from nextbest.recommend.retrieval.trending import POPULARITY, popular_reasons
from nextbest.recommend.rules.promotions import Pin, Promotion, place
from nextbest.recommend.stages import (
    Diversifier,
    Generator,
    ModelGenerator,
    ModelQuery,
    Ranker,
    Rule,
)

FILLERS = ("popular", "prior", "catalog")
SOURCE_SCORE = "source_score"  # the proposing generator's own score (what the API answers)


@dataclass(frozen=True)
class Retrieval:
    generator: Generator
    k: int  # candidates it over-fetches
    label: str  # its name in the placement (feature names: "<label>.rank", "<label>.score")


@dataclass(frozen=True)
class Pipeline:
    name: str
    retrieval: Sequence[Retrieval]
    ranker: Ranker
    rules: Sequence[Rule] = ()
    diversifier: Diversifier = field(default_factory=Diversity)
    promotions: Sequence[Promotion] = ()
    pins: Sequence[Pin] = ()
    fill: Sequence[str] = FILLERS

    def recommend(self, ctx: Context) -> Candidates:
        n = ctx.n
        found = []
        for index, (stage, part) in enumerate(
            zip(self.retrieval, self._generate(ctx), strict=True)
        ):
            if len(part):
                rank = np.arange(1, len(part) + 1, dtype=np.float64)
                found.append(
                    part.with_features(
                        **{
                            f"{stage.label}.rank": rank,
                            f"{stage.label}.score": part.scores,
                            "generator": np.full(len(part), float(index)),
                            SOURCE_SCORE: part.scores,
                        }
                    )
                )
        ranked = self.ranker.rank(ctx, merge(found))
        allowed = self.allowed(ctx, ranked)
        shown = self.diversifier.select(ctx, allowed, n)
        if self.promotions or self.pins:
            shown = place(
                ctx, shown, allowed, self.promotions, self.pins, lambda c: self.allowed(ctx, c)
            )
        if len(shown) < n and self.fill:
            shown = concat([shown, self._filler(ctx, shown, n - len(shown))])
        return shown.head(n)

    @cached_property
    def _asks_model(self) -> tuple[bool, ...]:
        # asked once: an isinstance against a runtime-checkable Protocol costs microseconds
        return tuple(isinstance(stage.generator, ModelGenerator) for stage in self.retrieval)

    def _generate(self, ctx: Context) -> list[Candidates]:
        """Every generator's candidates; those that query the model share one scoring pass."""
        model, asks_model = ctx.model, self._asks_model
        parts: list[Candidates | None] = [None] * len(self.retrieval)
        asks: dict[int, ModelQuery] = {}
        for index, stage in enumerate(self.retrieval):
            if not asks_model[index]:
                parts[index] = stage.generator.generate(ctx, stage.k)
                continue
            query = stage.generator.query(ctx, stage.k) if stage.k > 0 else None  # type: ignore[attr-defined]
            if isinstance(query, ModelQuery) and model is not None:
                asks[index] = query
            else:  # answered at once (a cache), or nothing to ask the model
                parts[index] = query if isinstance(query, Candidates) else Candidates.empty()
        if asks and model is not None:
            tops = model.score.top_many(
                [q.state for q in asks.values()],
                [q.k if q.k is not None else self.retrieval[i].k for i, q in asks.items()],
                [q.banned for q in asks.values()],
                [q.exact for q in asks.values()],
            )
            for (index, _), (top, values) in zip(asks.items(), tops, strict=True):
                generator = self.retrieval[index].generator
                k = self.retrieval[index].k
                parts[index] = generator.from_top(ctx, top, values, k)  # type: ignore[attr-defined]
        return [part if part is not None else Candidates.empty() for part in parts]

    @staticmethod
    def source_scores(shown: Candidates) -> np.ndarray:
        """Each item's score as its source gave it (comparable within one source only)."""
        raw = shown.features.get(SOURCE_SCORE)
        if raw is None:
            return shown.scores
        return np.where(np.isnan(raw), shown.scores, raw)

    def allowed(self, ctx: Context, candidates: Candidates) -> Candidates:
        for rule in self.rules:
            candidates = rule.apply(ctx, candidates)
        return candidates

    def _filler(self, ctx: Context, shown: Candidates, missing: int) -> Candidates:
        taken = set(shown.rows.tolist())
        out: list[Candidates] = []
        for source in self.fill:
            if missing <= 0:
                break
            extra = self.allowed(ctx, _fill_candidates(ctx, source, missing * 3 + 10, taken))
            extra = extra.take(~np.isin(extra.rows, list(taken))).head(missing)
            taken.update(extra.rows.tolist())
            out.append(extra)
            missing -= len(extra)
        return concat(out)


def _fill_candidates(ctx: Context, source: str, k: int, taken: set[int]) -> Candidates:
    items, model = ctx.items, ctx.model
    if source == "popular":
        found = ctx.live.popular(k, ctx.skip)
        rows = items.rows([item for item, _ in found])
        scores = [score for item, score in found if item in items.row_of]
        return Candidates.of(rows, scores, POPULARITY, popular_reasons(ctx, rows))
    if source == "prior" and model is not None:
        prior = model.codec.join([model.initial_row])
        ban = ctx.hard_banned[ctx.hard_banned < items.n_model]
        ban = np.union1d(ban, np.array([r for r in taken if r < items.n_model], np.int64))
        top, values = model.score.top(prior, k, ban)
        return Candidates.of(np.asarray(top, np.int64), values, model.name, "popular")
    if source == "catalog":
        rows = np.arange(items.n_model, len(items), dtype=np.int64)
        rows = rows[items.in_stock[rows]][: k + len(taken)]
        return Candidates.of(rows, np.zeros(len(rows)), POPULARITY, "new in the shop")
    return Candidates.empty()
