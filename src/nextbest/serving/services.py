"""Everything a server process holds, built from the settings, and the loop that keeps it fresh.

services = open_services(ServingSettings())
services.start()       # load the newest model, then refresh in a background thread
...
services.close()
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from nextbest.events.catalog import SqlCatalog
from nextbest.events.log import GroupCommitLog, SqlEventLog
from nextbest.events.log.database import open_engine
from nextbest.recommend.placements import Placements, load_placements
from nextbest.serving import metrics
from nextbest.serving.auth import KeyRing, resolve_keys
from nextbest.serving.bus import EventBus
from nextbest.serving.catalog_cache import CatalogCache
from nextbest.serving.dashboard import Throughput
from nextbest.serving.erasure import forget_old_events
from nextbest.serving.experiments import ServedExperiments
from nextbest.serving.live import LiveState
from nextbest.serving.online import OnlineLearner
from nextbest.serving.rate_limits import RateLimiter
from nextbest.serving.recommend import Recommender
from nextbest.serving.registry import LoadedModel, ModelClasses, ModelRegistry
from nextbest.serving.served import ServedRecorder, forget_old_served
from nextbest.serving.settings import ServingSettings
from nextbest.serving.state import StateStore, settings_state_store
from nextbest.serving.trends import Trends

logger = logging.getLogger(__name__)

# Kept lists past their days are deleted a minute after start, then hourly.
FIRST_FORGET_SECONDS, FORGET_EVERY_SECONDS = 60.0, 3600.0


@dataclass
class Services:
    settings: ServingSettings
    keys: KeyRing
    log: GroupCommitLog
    catalog: CatalogCache
    store: StateStore
    registry: ModelRegistry
    live: LiveState
    trends: Trends
    recommender: Recommender
    served: ServedRecorder
    experiments: ServedExperiments
    online: OnlineLearner | None = None  # a two-stage version's FTRL learning from outcomes
    limiter: RateLimiter = field(default_factory=RateLimiter)  # no limits unless set
    throughput: Throughput = field(default_factory=Throughput)  # the dashboard's rates
    bus: EventBus | None = None  # NEXTBEST_EVENT_BUS: events reach the log through JetStream
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def model(self) -> LoadedModel | None:
        return self.registry.current

    def start(self) -> None:
        """Load the newest model and the catalog, then keep them fresh in the background."""
        self.reload_model()
        self.experiments.load()  # a bad file stops the server here, as a bad placements file
        self.live.repair()  # states a crash left behind their logged events
        self.trends.start_at_recent()
        self.trends.refresh()
        self.catalog.refresh()
        self._prepare_tables()
        self.catalog.facets()
        self.catalog.index_changes()
        self.throughput.sample()
        self._thread = threading.Thread(target=self._loop, name="refresher", daemon=True)
        self._thread.start()
        # Everything loaded so far lives as long as the process: keep the garbage collector
        # from walking it again and again (long pauses show up as slow requests).
        gc.collect()
        gc.freeze()

    def reload_placements(self) -> Placements:
        """Read the placements file again; a bad file raises PlacementsError and the
        placements in use stay."""
        placements = load_placements(self.settings.placements)
        self.recommender.placements = placements
        logger.info("placements reloaded from %s: %s", placements.source, placements.names)
        return placements

    def reload_model(self) -> LoadedModel | None:
        """Switch to the newest model version if there is a newer one; return it if switched."""
        before = self.registry.current
        loaded = self.registry.refresh()
        if loaded is not None:
            old = (before.version, before.name) if before is not None else None
            metrics.model_switched(old, (loaded.version, loaded.name))
            metrics.RANKER_REFUSED.set(1 if getattr(loaded.model, "ranker_error", None) else 0)
        elif before is None:
            logger.warning(
                "no model in %s/models yet: serving live popularity until `nextbest train` "
                "writes one", self.settings.home,
            )  # fmt: skip
        return loaded

    def _loop(self) -> None:
        next_poll = time.monotonic() + self.settings.model_poll_seconds
        next_forget = time.monotonic() + FIRST_FORGET_SECONDS
        while not self._stop.wait(self.settings.refresh_seconds):
            try:
                self.throughput.sample()
                self.trends.refresh()
                self.catalog.refresh()
                self._prepare_tables()
                self.catalog.facets()  # likewise
                self.catalog.index_changes()  # likewise
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.settings.model_poll_seconds
                    self.reload_model()
                    self.experiments.refresh()  # the file changed (another worker's define)?
                if time.monotonic() >= next_forget:
                    next_forget = time.monotonic() + FORGET_EVERY_SECONDS
                    gone = forget_old_served(self.log, self.settings.served_keep_days)
                    if gone:
                        logger.info("forgot %d served list(s) older than %s days",
                                    gone, self.settings.served_keep_days)  # fmt: skip
                    if self.settings.event_retention_days > 0:
                        gone = forget_old_events(self.log, self.settings.event_retention_days)
                        if gone:
                            logger.info("deleted %d event(s) older than %s days", gone,
                                        self.settings.event_retention_days)  # fmt: skip
            except Exception:  # keep serving; the next round tries again
                logger.exception("background refresh failed")

    def _prepare_tables(self) -> None:
        """Item tables and their live counts for every model served (the answering one and
        the experiments' pinned ones), built here, not on a request."""
        loaded = self.registry.loaded()
        served: list[LoadedModel | None] = [*loaded] or [None]  # no model yet: the catalog's
        for model in served:
            self.trends.update_row_counts(self.catalog.table(model))
        self.catalog.forget_tables({model.tag for model in loaded} | {b""})

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.online is not None:
            self.online.close()  # saves what it learned
        self.served.close()  # writes the lists still queued
        self.log.close()
        self.store.close()


def init_database(settings: ServingSettings) -> None:
    """Create the tables once (before worker processes start, so they do not race)."""
    engine = open_engine(settings.database, settings.sqlite_synchronous)
    try:
        SqlEventLog(engine, settings.database_schema)
    finally:
        engine.dispose()


def feature_store(settings: ServingSettings) -> Any:
    """The online feature store's reader under the deployment's Redis prefix (what `nextbest
    features materialize --online` writes), or None without Redis. Not checked here: a
    pipeline without store features never reads it, and one with them falls back to the
    generators' order while it cannot (the log says why)."""
    if settings.redis_url is None:
        return None
    import redis

    from nextbest.twostage.store.online import OnlineFeatures

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    return OnlineFeatures(client, settings.redis_prefix)


def open_services(settings: ServingSettings, classes: ModelClasses | None = None) -> Services:
    torch.set_num_threads(settings.torch_threads)
    engine = open_engine(settings.database, settings.sqlite_synchronous)
    log = GroupCommitLog(SqlEventLog(engine, settings.database_schema))
    catalog = CatalogCache(SqlCatalog(engine, settings.database_schema))
    store = settings_state_store(settings)
    keys = resolve_keys(settings.fixed_keys, settings.keys_file, settings.home, settings.demo)
    live = LiveState(store, log, settings.rebuild_events, facets=catalog.facets)
    trends = Trends(log, settings.trend_window_events)
    placements = load_placements(settings.placements)  # a bad file stops the server here
    recommender = Recommender(live, trends, catalog, placements, feature_store(settings))
    registry = ModelRegistry(settings.home, classes)
    experiments = ServedExperiments(
        settings.experiments_file, settings.home, registry, live, recommender
    )
    online = (
        OnlineLearner(settings.home, lambda: registry.current, settings.online_save_seconds)
        if settings.online_learning
        else None
    )
    return Services(
        settings=settings,
        keys=keys,
        log=log,
        catalog=catalog,
        store=store,
        registry=registry,
        live=live,
        trends=trends,
        recommender=recommender,
        served=ServedRecorder(log),
        experiments=experiments,
        online=online,
        limiter=RateLimiter.from_settings(settings),
        bus=(
            EventBus(settings.event_bus, settings.event_bus_stream) if settings.event_bus else None
        ),
    )
