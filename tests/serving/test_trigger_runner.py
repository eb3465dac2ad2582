"""The trigger runner alone, on a real SQLite log with a clock of its own: when a reminder is
due, that two runners fire it once, retries and giving up, and forgetting old messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from nextbest.events.log import open_event_log, sqlite_url
from nextbest.events.schema import Event
from nextbest.triggers.config import Trigger, Triggers
from nextbest.triggers.runner import TriggerRunner

CART = Trigger("cart", "abandoned_cart", after=10.0, window=3600.0, placement="cart", n=2,
               webhook="http://127.0.0.1:9/hook", secret="s" * 16, timeout=1.0,
               redis_stream=None)  # fmt: skip
TRIGGERS = Triggers("test", (CART,), max_attempts=3, first_retry=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lists(trigger: Trigger, user: str, session: str, item: str | None) -> Any:
    return "rec-1", "v1", [{"item_id": "x", "score": 1.0, "source": "s", "reason": "r"}]


def runner(tmp_path: Path, clock: Clock, sent: list[bytes], fail: bool = False) -> TriggerRunner:
    log = open_event_log(sqlite_url(tmp_path))

    def send(trigger: Trigger, message_id: str, body: bytes, now: float) -> None:
        if fail:
            raise RuntimeError("the receiver answered 500")
        sent.append(body)

    return TriggerRunner(TRIGGERS, log, log.engine, lists, send, clock=clock)


def cart(tmp_path: Path, user: str, at: float, k: int = 0) -> None:
    log = open_event_log(sqlite_url(tmp_path))
    log.append([Event(event_id=f"{user}-{k}", type="cart", session_id=f"{user}-s",
                      item_id="i1", user_id=user, timestamp=at)])  # fmt: skip
    log.close()


def test_due_once_across_two_runners_then_forgotten(tmp_path: Path) -> None:
    clock, sent = Clock(), []  # type: ignore[var-annotated]
    first, second = runner(tmp_path, clock, sent), runner(tmp_path, clock, sent)
    first.tick(), second.tick()  # both start at the log's end
    cart(tmp_path, "u", at=clock.now)
    clock.now += 5
    assert first.tick().fired == 0 and second.tick().fired == 0  # not due yet
    clock.now += 6
    fired = first.tick().fired + second.tick().fired
    assert fired == 1 and len(sent) == 1
    assert json.loads(sent[0])["cart"] == ["i1"]
    cart(tmp_path, "u", at=clock.now, k=1)  # again within the window
    clock.now += 11
    assert first.tick().fired + second.tick().fired == 0
    clock.now += 31 * 86400  # a month on: the message and the claim are forgotten
    first.tick()
    with first.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(first.outbox)).scalar() == 0
        assert connection.execute(select(func.count()).select_from(first.last)).scalar() == 0


def test_failed_deliveries_back_off_then_give_up(tmp_path: Path) -> None:
    clock, sent = Clock(), []  # type: ignore[var-annotated]
    failing = runner(tmp_path, clock, sent, fail=True)
    failing.tick()
    cart(tmp_path, "v", at=clock.now)
    clock.now += 11
    assert failing.tick().failed == 1
    assert failing.tick().failed == 0  # the retry waits its backoff (1 s)
    clock.now += 1.5
    assert failing.tick().failed == 1
    clock.now += 2.5
    assert failing.tick().failed == 1  # third attempt: given up
    clock.now += 100
    assert failing.tick().failed == 0
    with failing.engine.connect() as connection:
        row = connection.execute(select(failing.outbox)).one()
    assert row.failed and row.attempts == 3 and "500" in row.last_error


def test_lists_follow_a_promotion_and_a_rollback_at_once(
    home: Path, backwards_gru: Any, monkeypatch: Any
) -> None:
    """The triggers' lists come from the served version: each list looks at the served-version
    pointer (a folder listing and served.json), so a promotion or a rollback counts from the
    next message on, not after the live counts' minute; the recommender is opened again only
    when the version changes."""
    from serving_helpers import settings_for

    from nextbest.models.served import promote, rollback
    from nextbest.models.store import list_versions, save_version
    from nextbest.serving.batch import BatchRecommender
    from nextbest.serving.server import init_database
    from nextbest.triggers.service import Lists

    first = list_versions(home)[0].name
    second = save_version(backwards_gru, home, {"model": "gru4rec"}).name
    settings = settings_for(home)
    init_database(settings)
    opened: list[str | None] = []
    open_batch = BatchRecommender.open.__func__  # type: ignore[attr-defined]

    def counted(cls: type[BatchRecommender], *args: Any, **kwargs: Any) -> BatchRecommender:
        batch = open_batch(cls, *args, **kwargs)
        opened.append(batch.model.version if batch.model else None)
        return batch  # type: ignore[no-any-return]

    monkeypatch.setattr(BatchRecommender, "open", classmethod(counted))
    lists = Lists(settings)
    home_list = Trigger(**{**CART.__dict__, "placement": "home"})
    try:
        assert lists(home_list, "u", "s", None)[1] == second  # the newest serves
        assert lists(home_list, "u", "s", None)[1] == second and opened == [second]
        promote(home, first, "test")
        assert lists(home_list, "u", "s", None)[1] == first  # the next list, no minute
        rollback(home)
        assert lists(home_list, "u", "s", None)[1] == second
        assert opened == [second, first, second]
    finally:
        if lists._batch is not None:
            lists._batch.close()
