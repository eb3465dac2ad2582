"""The learned ranker of a two-stage version: its features of the candidates, its scores.

The candidates come from the `generators` source (each generator's rank and score); the
features are computed by `nextbest.twostage.features`, the code the ranker was trained with
offline: the session's history from its record, live popularity from the server's own
counts of the latest events, the item statistics of the version's training data. Candidates
the version's vocabulary does not hold (new items from another source) follow the ranked
ones, in their merged order.

A pipeline that names `store_features` reads them from the feature store (`ctx.feature_store`:
the Redis online store when serving): item features of each candidate, user features of the
request's user, pair features of (the session's latest item, each candidate). Without a
usable ranker (a single model serving, a ranker refused at load as corrupt, or store
features that cannot be read) the list keeps the generators' order (reciprocal-rank
fusion), and `nextbest_ranked_lists_total{outcome="fallback"}` counts it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import redis

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context
from nextbest.recommend.ranking.fusion import FusionRanker
from nextbest.serving import metrics
from nextbest.twostage.data import RankingData
from nextbest.twostage.features import LIVE_WINDOWS, PLACEMENTS, CaseInputs, ranking_data
from nextbest.twostage.generate import Merged
from nextbest.twostage.model import PipelineModel
from nextbest.twostage.store.definitions import by_name, entities, entity_ids

EXPLAINED = 3  # features named per item when a request asks why
WARN_EVERY_SECONDS = 60.0  # a store that cannot be read is logged at most this often

logger = logging.getLogger(__name__)
_last_warning = [0.0]


class StoreUnavailable(LookupError):
    """The version's ranker reads store features, and this request has no store to read."""


@dataclass(frozen=True)
class Ranked:
    """What the learned ranker saw of one list: its features of the model's candidates
    (row r of `data` is candidate row `rows[r]` of the item table), and the explanations."""

    data: RankingData
    rows: np.ndarray
    explained: dict[int, list[tuple[str, float]]]  # item-table row -> (feature, contribution)


def request_data(pipeline: PipelineModel, ctx: Context, candidates: Candidates) -> RankingData:
    """The ranker's features of `candidates` (all in the version's vocabulary) for `ctx`."""
    assert pipeline.stats is not None
    labels = pipeline.labels
    n = len(candidates)
    rank = np.full((n, len(labels)), np.nan, np.float32)
    score = np.full((n, len(labels)), np.nan, np.float32)
    for g, label in enumerate(labels):
        found = candidates.features.get(f"{label}.rank")
        if found is not None:
            rank[:, g] = found
            score[:, g] = candidates.features[f"{label}.score"]
    merged = Merged(np.zeros(n, np.int64), candidates.rows, rank, score, labels)
    record = ctx.record
    recent = [(i.item_id, i.type, i.time) for i in record.recent]
    placement = PLACEMENTS.get(ctx.query.placement, 0)
    assert ctx.model is not None
    cases = CaseInputs.of_session(recent, record.n_events, ctx.model.index, placement)
    if not recent:  # no item event yet: the request's own clock
        cases = CaseInputs(np.array([ctx.now]), cases.length, cases.gap, cases.history, placement)
    live = None
    ids = [str(i) for i in ctx.items.ids[candidates.rows]]
    recent_counts = getattr(ctx.live, "recent_counts", None)
    if recent_counts is not None and len(pipeline.stats.live_windows) == len(LIVE_WINDOWS):
        live = [recent_counts(ids, w) for w in pipeline.stats.live_windows]
    names = pipeline.spec.store_features
    store = _store_values(ctx, ids, names) if names else None
    return ranking_data(merged, cases, pipeline.stats, live=live, store=store)


def _store_values(ctx: Context, ids: list[str], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The store features `names` of the candidates `ids` (item features), of the request's
    user and of the pairs (session's latest item, candidate); StoreUnavailable when they
    cannot be read (no store, nothing materialized, a feature the store lacks, Redis down)."""
    if ctx.feature_store is None:
        raise StoreUnavailable(
            "the version's ranker reads store features, and the server has no feature "
            "store: set NEXTBEST_REDIS_URL and run `nextbest features materialize --online`"
        )
    wanted = by_name(names)
    n = len(ids)
    recent = ctx.record.recent
    users = [ctx.query.user_id] * n
    anchors = [recent[-1].item_id if recent else None] * n
    values: dict[str, np.ndarray] = {}
    for kind in entities(wanted):
        columns = [f.name for f in wanted if f.entity == kind]
        if kind == "user":  # one row, the same for every candidate
            keys = entity_ids(kind, ids[:1], users[:1], anchors[:1])
        else:
            keys = entity_ids(kind, ids, users, anchors)
        try:
            table = np.asarray(ctx.feature_store.read(kind, keys, columns), np.float32)
        except (LookupError, redis.RedisError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        if kind == "user":
            table = np.repeat(table, n, axis=0)
        values |= {name: table[:, k] for k, name in enumerate(columns)}
    return {name: values[name] for name in names}


@dataclass(frozen=True)
class LearnedRanking:
    fallback: FusionRanker = field(default_factory=FusionRanker)

    def rank(self, ctx: Context, candidates: Candidates) -> Candidates:
        model = ctx.model.model if ctx.model is not None else None
        ranker = model.ranker if isinstance(model, PipelineModel) else None
        if ranker is None or not len(candidates):
            if len(candidates):
                metrics.RANKED.labels("fallback").inc()
            return self.fallback.rank(ctx, candidates)
        assert isinstance(model, PipelineModel)
        known = candidates.rows < ctx.items.n_model
        inside = candidates.take(known)
        try:
            data = request_data(model, ctx, inside)
        except StoreUnavailable as exc:
            _warn(f"learned ranker skipped, the feature store cannot be read: {exc}")
            metrics.RANKED.labels("fallback").inc()
            return self.fallback.rank(ctx, candidates)
        predicted = np.asarray(ranker.predict(data), np.float64)
        explained: dict[int, list[tuple[str, float]]] = {}
        explain = getattr(ranker, "explain", None)
        if ctx.query.explain and explain is not None:
            order = np.argsort(-predicted, kind="stable")[: ctx.n]
            for position, why in zip(order, explain(data, order, EXPLAINED), strict=True):
                explained[int(inside.rows[position])] = why
        ctx.ranked = Ranked(data, inside.rows, explained)
        metrics.RANKED.labels("learned").inc()
        scores = np.full(len(candidates), -np.inf)
        scores[known] = predicted
        # outside the vocabulary: after the ranked ones, in merged order
        floor = predicted.min() if len(predicted) else 0.0
        scores[~known] = floor - 1.0 - np.arange(int((~known).sum()))
        return candidates.with_scores(scores).sorted()


def _warn(message: str) -> None:
    """Log `message`, at most once a minute (a request after request would flood the log)."""
    now = time.monotonic()
    if now - _last_warning[0] >= WARN_EVERY_SECONDS:
        _last_warning[0] = now
        logger.warning(message)
