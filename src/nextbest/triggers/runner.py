"""Triggers at work: read the log, wait for what is due, fire at most once, deliver until done.

Every step keeps its state in the event log's database, so a restart loses nothing and repeats
nothing it finished:

- `trigger_cursor`: how far the runner has read the log (it starts at the log's end: history
  before the first start fires nothing);
- `trigger_pending`: per trigger and user, what is waiting and when it is due (a cart add;
  a purchase), dropped when the user buys (abandoned carts);
- `trigger_last`: per trigger and user, when it last fired; a firing claims this row with one
  conditional UPDATE (or INSERT), so two runners never both fire within a window;
- `trigger_outbox`: each message until delivered, with its attempts and next try; a message is
  written in the same transaction as its claim.

Delivery is at least once: a crash after the receiver answered and before the runner noted it
sends that message again, with the same `id` (receivers drop repeats by it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import (
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from nextbest.events.log import SqlEventLog
from nextbest.events.log.base import LoggedEvent
from nextbest.events.log.database import upsert_statement
from nextbest.events.log.tables import trigger_tables
from nextbest.triggers.config import Trigger, Triggers

logger = logging.getLogger(__name__)

PAGE = 2_000  # log events read at a time
KEEP_MESSAGES = 30 * 86400.0  # sent (or given up) messages kept this long, then deleted
FORGET_EVERY = 3600.0
CURSOR = "log"


@dataclass
class Tick:
    read: int = 0  # log events read
    fired: int = 0
    skipped: int = 0  # due, but bought meanwhile, or fired within the window
    delivered: int = 0
    failed: int = 0  # attempts that failed (retried later, or given up)


Lists = Callable[[Trigger, str, str, str | None], tuple[str, str | None, list[dict[str, Any]]]]
Send = Callable[[Trigger, str, bytes, float], None]


class TriggerRunner:
    """`tick()` does one round: read the log, fire what is due, deliver what waits.

    `lists(trigger, user, session, item)` gives (recommendation_id, model_version, items) for
    a message; `send(trigger, message_id, body, now)` delivers one or raises."""

    def __init__(
        self,
        triggers: Triggers,
        log: SqlEventLog,
        engine: Engine,
        lists: Lists,
        send: Send,
        schema: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.triggers, self.log, self.engine = triggers, log, engine
        self.lists, self.send, self.clock = lists, send, clock
        self._next_forget = 0.0  # the first round forgets, then hourly
        # the tables come with the log's migrations (revision 0002), made when `log` opened
        self.metadata, self.cursor, self.pending, self.last, self.outbox = trigger_tables(schema)

    # -- one round -----------------------------------------------------------------------
    def tick(self) -> Tick:
        done = Tick()
        self._read(done)
        self._fire_due(done)
        self._deliver(done)
        if self.clock() >= self._next_forget:
            self.forget(self.clock())
            self._next_forget = self.clock() + FORGET_EVERY
        return done

    def forget(self, now: float) -> None:
        """Delete what no longer matters: messages delivered or given up more than
        KEEP_MESSAGES ago, and claims older than their trigger's window (they block nothing)."""
        box, last = self.outbox, self.last
        with self.engine.begin() as connection:
            connection.execute(
                delete(box).where(
                    box.c.created_at < now - KEEP_MESSAGES,
                    (box.c.delivered_at.is_not(None)) | box.c.failed.is_(True),
                )
            )
            for trigger in self.triggers.triggers:
                connection.execute(
                    delete(last).where(
                        last.c.trigger == trigger.name, last.c.fired_at < now - trigger.window
                    )
                )

    def _read(self, done: Tick) -> None:
        with self.engine.begin() as connection:
            seq = connection.execute(
                select(self.cursor.c.seq).where(self.cursor.c.name == CURSOR)
            ).scalar()
            if seq is None:  # first start: from the log's end on
                seq = self.log.last_seq()
                connection.execute(insert(self.cursor).values(name=CURSOR, seq=seq))
        while True:
            events = self.log.read_after(int(seq), PAGE)
            if not events:
                return
            owners = self._owners([e for e in events if e.user_id is None])
            with self.engine.begin() as connection:
                for event in events:
                    user = event.user_id or owners.get(event.session_id)
                    if user is not None and event.type in ("cart", "purchase"):
                        self._note(connection, event, user)
                seq = events[-1].seq
                connection.execute(
                    update(self.cursor).where(self.cursor.c.name == CURSOR).values(seq=seq)
                )
            done.read += len(events)

    def _owners(self, events: Sequence[LoggedEvent]) -> dict[str, str]:
        sessions = sorted({e.session_id for e in events if e.type in ("cart", "purchase")})
        return self.log.session_owners(sessions) if sessions else {}

    def _note(self, connection: Connection, event: LoggedEvent, user: str) -> None:
        for trigger in self.triggers.triggers:
            key = and_(self.pending.c.trigger == trigger.name, self.pending.c.user_id == user)
            wanted = (trigger.rule == "abandoned_cart" and event.type == "cart") or (
                trigger.rule == "purchase_complements" and event.type == "purchase"
            )
            if trigger.rule == "abandoned_cart" and event.type == "purchase":
                connection.execute(delete(self.pending).where(key))  # bought: no reminder
            elif wanted:
                row = {
                    "trigger": trigger.name, "user_id": user,
                    "due_at": event.timestamp + trigger.after, "session_id": event.session_id,
                    "item_id": event.item_id, "event_time": event.timestamp,
                }  # fmt: skip
                statement = upsert_statement(self.engine, self.pending).values(**row)
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=[self.pending.c.trigger, self.pending.c.user_id],
                        set_={k: v for k, v in row.items() if k not in ("trigger", "user_id")},
                    )
                )

    def _fire_due(self, done: Tick) -> None:
        now = self.clock()
        by_name = {t.name: t for t in self.triggers.triggers}
        with self.engine.connect() as connection:
            due = connection.execute(
                select(self.pending).where(self.pending.c.due_at <= now).limit(500)
            ).all()
        for row in due:
            trigger = by_name.get(row.trigger)
            key = and_(self.pending.c.trigger == row.trigger, self.pending.c.user_id == row.user_id)
            message = None if trigger is None else self._message(trigger, row, now)
            with self.engine.begin() as connection:
                if (
                    trigger is not None
                    and message is not None
                    and self._claim(connection, trigger, row.user_id, now)
                ):
                    connection.execute(
                        insert(self.outbox).values(
                            id=message["id"],
                            trigger=row.trigger,
                            user_id=row.user_id,
                            payload=json.dumps(message),
                            created_at=now,
                            attempts=0,
                            next_attempt_at=now,
                            delivered_at=None,
                            failed=False,
                        )
                    )
                    done.fired += 1
                else:
                    done.skipped += 1
                connection.execute(delete(self.pending).where(key))

    def _message(self, trigger: Trigger, row: Any, now: float) -> dict[str, Any] | None:
        """The message for a due row, or None when it no longer applies (the user bought
        since the cart; the cart was emptied)."""
        extra: dict[str, Any]
        if trigger.rule == "abandoned_cart":
            bought = self.log.user_purchase_times([row.user_id], last=50).get(row.user_id, [])
            if any(at >= row.event_time for _, at in bought):
                return None
            cart = self._cart(row.session_id)
            if not cart:
                return None
            extra = {"cart": cart}
        else:
            extra = {"purchased": row.item_id}
        recommendation_id, version, items = self.lists(
            trigger, row.user_id, row.session_id, row.item_id
        )
        return {
            "id": uuid.uuid4().hex, "trigger": trigger.name, "rule": trigger.rule,
            "user_id": row.user_id, "session_id": row.session_id, "fired_at": now, **extra,
            "recommendation_id": recommendation_id, "model_version": version,
            "placement": trigger.placement, "items": items,
        }  # fmt: skip

    def _cart(self, session_id: str) -> list[str]:
        """The items still in the session's cart: carted, not removed or bought since."""
        events = self.log.session_events([session_id], last=500).get(session_id, [])
        cart: dict[str, None] = {}
        for event in events:
            if event.item_id is None:
                continue
            if event.type == "cart":
                cart[event.item_id] = None
            elif event.type in ("remove-from-cart", "purchase"):
                cart.pop(event.item_id, None)
        return list(cart)

    def _claim(self, connection: Connection, trigger: Trigger, user: str, now: float) -> bool:
        """Whether this runner may fire `trigger` for `user` now: nobody fired it within the
        window. One conditional statement decides, so two runners cannot both win."""
        last = self.last
        won = connection.execute(
            update(last)
            .where(last.c.trigger == trigger.name, last.c.user_id == user)
            .where(last.c.fired_at <= now - trigger.window)
            .values(fired_at=now)
        ).rowcount
        if won:
            return True
        fresh = upsert_statement(self.engine, last).values(
            trigger=trigger.name, user_id=user, fired_at=now
        )
        added = connection.execute(
            fresh.on_conflict_do_nothing(index_elements=[last.c.trigger, last.c.user_id])
        ).rowcount
        return bool(added)

    def _deliver(self, done: Tick) -> None:
        now = self.clock()
        box = self.outbox
        by_name = {t.name: t for t in self.triggers.triggers}
        with self.engine.connect() as connection:
            waiting = connection.execute(
                select(box)
                .where(box.c.delivered_at.is_(None), box.c.failed.is_(False))
                .where(box.c.next_attempt_at <= now)
                .order_by(box.c.created_at)
                .limit(100)
            ).all()
        for row in waiting:
            trigger = by_name.get(row.trigger)
            try:
                if trigger is None:
                    raise RuntimeError(f"trigger {row.trigger!r} is no longer in the file")
                self.send(trigger, row.id, row.payload.encode(), now)
            except Exception as exc:
                attempts = row.attempts + 1
                give_up = attempts >= self.triggers.max_attempts
                retry_at = now + self.triggers.first_retry * 2 ** (attempts - 1)
                with self.engine.begin() as connection:
                    connection.execute(
                        update(box)
                        .where(box.c.id == row.id)
                        .values(
                            attempts=attempts,
                            failed=give_up,
                            next_attempt_at=retry_at,
                            last_error=str(exc)[:500],
                        )
                    )
                done.failed += 1
                logger.warning(
                    "trigger %s: delivery %s failed (attempt %d of %d%s): %s",
                    row.trigger, row.id, attempts, self.triggers.max_attempts,
                    ", giving up" if give_up else "", exc,
                )  # fmt: skip
                continue
            with self.engine.begin() as connection:
                connection.execute(
                    update(box)
                    .where(box.c.id == row.id)
                    .values(attempts=row.attempts + 1, delivered_at=now)
                )
            done.delivered += 1

    def outbox_rows(self) -> list[Any]:
        """Every message, oldest first (for reports and tests)."""
        with self.engine.connect() as connection:
            return list(connection.execute(select(self.outbox).order_by(self.outbox.c.created_at)))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The delivery's signature: HMAC-SHA256 of "<timestamp>.<body>" with the shared secret,
    as sent in X-Nextbest-Signature ("v1=<hex>")."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def http_send(trigger: Trigger, message_id: str, body: bytes, now: float) -> None:
    """POST the message to the trigger's webhook, signed; a non-2xx answer or a timeout
    raises (and is retried)."""
    assert trigger.webhook is not None and trigger.secret is not None
    stamp = int(now)
    reply = httpx.post(
        trigger.webhook,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Nextbest-Delivery": message_id,
            "X-Nextbest-Timestamp": str(stamp),
            "X-Nextbest-Signature": sign(trigger.secret, stamp, body),
        },
        timeout=trigger.timeout,
    )
    if not 200 <= reply.status_code < 300:
        raise RuntimeError(f"{trigger.webhook} answered {reply.status_code}")


class RunnerThread(threading.Thread):
    """`runner.tick()` every `every` seconds until stopped; a failed round is logged and the
    next one tries again."""

    def __init__(self, runner: TriggerRunner, every: float) -> None:
        super().__init__(name="triggers", daemon=True)
        self.runner, self.every = runner, every
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            try:
                done = self.runner.tick()
                if done.fired or done.delivered:
                    logger.info("triggers: %d fired, %d delivered", done.fired, done.delivered)
            except Exception:
                logger.exception("triggers: a round failed; the next one tries again")
