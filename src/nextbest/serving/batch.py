"""Lists for many users at once, outside any request: an email campaign's.

    with BatchRecommender.open(settings) as batch:
        for user_id in users:
            row = batch.user_list(user_id, "email", n=10)

The same pieces a server uses (the served model version, the catalog, the live counts of the
latest events, the users' records in the state store or rebuilt from the log, the placements
file), so an email's list is what the placement would answer on the site. Each list is kept
for attribution like a served one: a click in the email that carries its `recommendation_id`
counts for it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from nextbest.events.catalog import SqlCatalog
from nextbest.events.log import SqlEventLog
from nextbest.events.log.database import open_engine
from nextbest.models.served import CACHE_DIR, served_version
from nextbest.recommend.context import Query
from nextbest.recommend.placements import load_placements
from nextbest.serving.catalog_cache import CatalogCache
from nextbest.serving.live import LiveState
from nextbest.serving.recommend import Recommended, Recommender, served_list
from nextbest.serving.registry import LoadedModel, default_classes, load_model
from nextbest.serving.served import ServedRecorder
from nextbest.serving.settings import ServingSettings
from nextbest.serving.state import settings_state_store
from nextbest.serving.trends import Trends

FLUSH_EVERY = 5_000  # lists between waits for the recorder to write what it holds


@dataclass(frozen=True)
class UserList:
    user_id: str
    recommendation_id: str
    items: list[Recommended]


class BatchRecommender:
    def __init__(
        self,
        recommender: Recommender,
        model: LoadedModel | None,
        recorder: ServedRecorder | None,
        log: SqlEventLog,
        closers: list[object],
    ) -> None:
        self.recommender, self.model, self.recorder = recommender, model, recorder
        self.log = log
        self._closers = closers
        self._recorded = 0

    @classmethod
    def open(cls, settings: ServingSettings, record: bool = True) -> Self:
        """Everything a list needs, read once; `record`: keep each list for attribution."""
        engine = open_engine(settings.database, settings.sqlite_synchronous)
        log = SqlEventLog(engine, settings.database_schema)
        catalog = CatalogCache(SqlCatalog(engine, settings.database_schema))
        store = settings_state_store(settings)
        live = LiveState(store, log, settings.rebuild_events, facets=catalog.facets)
        trends = Trends(log, settings.trend_window_events)
        trends.start_at_recent()
        trends.refresh()
        catalog.refresh()
        # the served version, without the server's background work (the item neighbour
        # table: a placement that needs similar items scores them live)
        folder = served_version(settings.home)
        cache = settings.home / CACHE_DIR / folder.name if folder is not None else None
        model = load_model(folder, default_classes(), cache) if folder is not None else None
        trends.update_row_counts(catalog.table(model))
        recommender = Recommender(live, trends, catalog, load_placements(settings.placements))
        recorder = ServedRecorder(log) if record else None
        return cls(recommender, model, recorder, log, [store, log])

    def check(self, placement: str) -> None:
        """ValueError when `placement` cannot answer for a user alone (unknown, or it needs
        an item on screen)."""
        self.recommender.placement(Query(placement=placement, user_id="-"))

    def user_list(
        self,
        user_id: str,
        placement: str,
        n: int,
        session_id: str | None = None,
        item_id: str | None = None,
    ) -> UserList:
        """The placement's list for the user as if they came back now: their last session
        (or `session_id`) goes on where it stopped (the model's state, the items already bought
        left out); `item_id`: the item the list is about (a purchase's complements)."""
        if session_id is None:
            last = self.log.user_sessions([user_id], last=1).get(user_id)
            session_id = last[-1] if last else None
        query = Query(
            n=n, placement=placement, user_id=user_id, session_id=session_id, item_id=item_id
        )
        items = self.recommender.recommend(self.model, query)
        recommendation_id = uuid.uuid4().hex
        if self.recorder is not None:
            kept = served_list(
                recommendation_id, self.model, items, session_id, user_id, placement, item_id
            )
            self.recorder.record(kept)
            self._recorded += 1
            if self._recorded % FLUSH_EVERY == 0:  # the recorder's queue is bounded
                self.recorder.flush(timeout=60.0)
        return UserList(user_id, recommendation_id, items)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()  # writes every list still queued
        for closer in self._closers:
            closer.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
