"""From a request to a list: the live records resolved once, then the placement's pipeline.

    recommender.recommend(model, Query(n=10, placement="product", session_id="s-1",
                                       item_id="sku-7"))   # -> [Recommended, ...]

The serving side of a recommendation is only this: read the session's record (rebuilt from
the log when needed) and the user's, build the pipeline's `Context`, check the request's
filter and parameters, run the placement (`nextbest.recommend`). Offline evaluation builds
the same `Context` from its own walk and runs the same pipelines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from nextbest.events.log.base import ServedList
from nextbest.recommend.context import Context, LiveCounts, Query
from nextbest.recommend.placements import Placement, Placements
from nextbest.recommend.rules.filtering import FilterRule
from nextbest.recommend.rules.filters import ParamError, compile_filter
from nextbest.serving.catalog_cache import CatalogCache
from nextbest.serving.live import LiveState, fresh_record
from nextbest.serving.registry import LoadedModel
from nextbest.serving.state.records import SessionRecord


@dataclass(frozen=True)
class Recommended:
    item_id: str
    score: float
    source: str
    reason: str
    because: tuple[tuple[str, float], ...] = ()  # the learned ranker's top features, if asked


def served_list(
    recommendation_id: str,
    model: LoadedModel | None,
    items: list[Recommended],
    session_id: str | None = None,
    user_id: str | None = None,
    placement: str | None = None,
    item_id: str | None = None,
    experiment: tuple[str, str, str] | None = None,
) -> ServedList:
    """An answered list as kept for attribution (`experiment`: its experiment, variant and
    unit, when one chose how it was made)."""
    return ServedList(
        recommendation_id=recommendation_id,
        served_at=time.time(),
        session_id=session_id,
        user_id=user_id,
        placement=placement,
        item_id=item_id,
        model_version=model.version if model else None,
        items=tuple((i.item_id, i.source, i.score) for i in items),
        experiment=experiment[0] if experiment else None,
        variant=experiment[1] if experiment else None,
        unit=experiment[2] if experiment else None,
    )


class UnknownPlacement(ValueError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown placement {name!r}; the placements are: {', '.join(known)}")
        self.name = name


class MissingInput(ValueError):
    def __init__(self, placement: str, field: str) -> None:
        super().__init__(f"placement {placement!r} needs {field}")
        self.field = field


class SessionOfAnotherUser(PermissionError):
    """A browser key's query for a session that belongs to a user it has no token of."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.session_id = session_id


class Recommender:
    def __init__(
        self,
        live: LiveState,
        trends: LiveCounts,
        catalog: CatalogCache,
        placements: Placements,
        feature_store: Any = None,
    ) -> None:
        """`feature_store`: the online feature store's reader (`OnlineFeatures`), for a
        pipeline whose ranker reads store features; None without Redis."""
        self.live, self.trends, self.catalog = live, trends, catalog
        self.placements = placements
        self.feature_store = feature_store

    def placement(self, query: Query) -> Placement:
        """The query's placement, with its request filter; ValueError (UnknownPlacement,
        MissingInput, FilterError, ParamError) names what is wrong with the request."""
        if query.placement not in self.placements:
            raise UnknownPlacement(query.placement, self.placements.names)
        placement = self.placements[query.placement]
        for field in placement.needs:
            if not getattr(query, field):
                raise MissingInput(query.placement, field)
        used: dict[str, str] = {}
        rules = placement.pipeline.rules
        if query.filter is not None:
            rules = (*rules, FilterRule("request", compile_filter(query.filter)))
        campaigns = [p.campaign.compiled for p in placement.pipeline.promotions]
        for compiled in [r.compiled for r in rules if isinstance(r, FilterRule)] + campaigns:
            compiled.bind(query.filter_params)  # ParamError: missing or of the wrong type
            used.update(compiled.params)
        unknown = sorted(set(query.filter_params) - set(used))
        if unknown:
            raise ParamError(f"no filter of this request uses ${unknown[0]}", unknown[0])
        if rules is not placement.pipeline.rules:
            placement = replace(placement, pipeline=replace(placement.pipeline, rules=rules))
        return placement

    def context(
        self, model: LoadedModel | None, query: Query, record: SessionRecord | None = None
    ) -> Context:
        """`record`: the session's record, when the caller has just read it from this live
        state for this model (an experiment's assignment does)."""
        live = self.live
        session_id = query.session_id
        if record is None:
            record = live.session(model, session_id) if session_id else fresh_record(model)
        if query.from_browser and record.user_id is not None and record.user_id != query.user_id:
            raise SessionOfAnotherUser(str(session_id))
        user_id = record.user_id or query.user_id  # a session that logged in speaks for its user
        if user_id and model is not None and record.n_events == 0:
            # a returning user's first request of a new session (the home page): the state
            # a session of theirs starts from; an unknown user gets the anonymous start
            record = replace(record, state=live.user_start(model, user_id))
        return Context(
            query=query,
            model=model,
            items=self.catalog.table(model),
            record=record,
            live=self.trends,
            now=query.now if query.now is not None else time.time(),
            user=live.user(user_id) if user_id else None,
            purchase_rules=model.purchase_rules if model is not None else None,
            facets=self.catalog.facets(),
            # read from the store only when a stage asks (the preference generator)
            user_affinity_of=(lambda: live.user_affinity(user_id)) if user_id else None,
            feature_store=self.feature_store,
        )

    def recommend(self, model: LoadedModel | None, query: Query) -> list[Recommended]:
        return self.recommend_ranked(model, query)[0]

    def recommend_ranked(
        self, model: LoadedModel | None, query: Query, record: SessionRecord | None = None
    ) -> tuple[list[Recommended], Any]:
        """The list, and what a learned ranker saw of it (`Ranked`; None without one)."""
        placement = self.placement(query)
        ctx = self.context(model, query, record)
        shown = placement.pipeline.recommend(ctx)
        ids = ctx.items.ids
        explained = ctx.ranked.explained if ctx.ranked is not None else {}
        return [
            Recommended(
                str(ids[row]), float(score), str(source), str(reason),
                tuple(explained.get(row, ())),
            )
            for row, score, source, reason in zip(
                shown.rows.tolist(),
                placement.pipeline.source_scores(shown).tolist(),
                shown.sources,
                shown.reasons,
                strict=True,
            )
        ], ctx.ranked  # fmt: skip

    def similar(self, model: LoadedModel | None, item_id: str, n: int) -> list[Recommended]:
        """Items to show beside `item_id`, outside any session (the `similar` placement)."""
        return self.recommend(model, Query(n=n, placement="similar", item_id=item_id))
