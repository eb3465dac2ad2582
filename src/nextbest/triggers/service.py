"""The trigger runner as `nextbest serve` starts it: its lists from the served version, its
deliveries to webhooks or Redis streams."""

from __future__ import annotations

import time
from typing import Any

from nextbest.events.log import SqlEventLog
from nextbest.events.log.database import open_engine
from nextbest.models.served import served_version
from nextbest.serving.batch import BatchRecommender
from nextbest.serving.settings import ServingSettings
from nextbest.triggers.config import Trigger, Triggers, load_triggers
from nextbest.triggers.runner import RunnerThread, TriggerRunner, http_send

REOPEN_SECONDS = 60.0  # the lists' live counts and catalog are read again this often


class Lists:
    """A trigger's list: the batch recommender's, opened again when the served version
    changes or its live counts are a minute old."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self._batch: BatchRecommender | None = None
        self._version: str | None = None
        self._opened = 0.0

    def __call__(
        self, trigger: Trigger, user: str, session: str, item: str | None
    ) -> tuple[str, str | None, list[dict[str, Any]]]:
        batch = self._current()
        listed = batch.user_list(user, trigger.placement, trigger.n, session, item)
        items = [
            {"item_id": i.item_id, "score": i.score, "source": i.source, "reason": i.reason}
            for i in listed.items
        ]
        version = batch.model.version if batch.model else None
        return listed.recommendation_id, version, items

    def _current(self) -> BatchRecommender:
        folder = served_version(self.settings.home)
        version = folder.name if folder is not None else None
        stale = time.monotonic() - self._opened > REOPEN_SECONDS
        if self._batch is None or version != self._version or stale:
            if self._batch is not None:
                self._batch.close()
            self._batch = BatchRecommender.open(self.settings)
            self._version, self._opened = version, time.monotonic()
        return self._batch


def redis_sender(url: str | None) -> Any:
    def send(trigger: Trigger, message_id: str, body: bytes, now: float) -> None:
        import redis

        if url is None:
            raise RuntimeError("a redis_stream target needs NEXTBEST_REDIS_URL")
        client = redis.Redis.from_url(url)
        try:
            client.xadd(trigger.redis_stream or "", {"id": message_id, "payload": body})
        finally:
            client.close()

    return send


def open_runner(settings: ServingSettings, triggers: Triggers | None = None) -> TriggerRunner:
    """The runner of `NEXTBEST_TRIGGERS` (a bad file raises TriggersError, naming it)."""
    assert settings.triggers is not None
    triggers = triggers or load_triggers(settings.triggers)
    if any(t.redis_stream for t in triggers.triggers) and settings.redis_url is None:
        raise ValueError(
            f"{settings.triggers}: a redis_stream target needs NEXTBEST_REDIS_URL to be set"
        )
    engine = open_engine(settings.database, settings.sqlite_synchronous)
    log = SqlEventLog(engine, settings.database_schema)
    to_redis = redis_sender(settings.redis_url)

    def send(trigger: Trigger, message_id: str, body: bytes, now: float) -> None:
        if trigger.webhook is not None:
            http_send(trigger, message_id, body, now)
        else:
            to_redis(trigger, message_id, body, now)

    return TriggerRunner(
        triggers, log, engine, Lists(settings), send, schema=settings.database_schema
    )


def start_triggers(settings: ServingSettings) -> RunnerThread | None:
    """The trigger thread of `nextbest serve` when NEXTBEST_TRIGGERS names a file."""
    if settings.triggers is None:
        return None
    thread = RunnerThread(open_runner(settings), settings.trigger_tick_seconds)
    thread.start()
    return thread
