"""The event bus between ingest and the log: a NATS JetStream stream (opt-in,
NEXTBEST_EVENT_BUS=nats://127.0.0.1:4222).

    bus = EventBus("nats://127.0.0.1:4222", "nextbest_events")
    await bus.connect()                      # BusUnavailable names the URL if it cannot
    stored = await bus.publish(events)       # after JetStream stored every one (PubAck)
    subscription = await bus.subscribe()     # the durable pull consumer all nodes share
    bus.published("s-1", stored[0].seq)      # remembered, for read-your-writes:
    await bus.session_caught_up("s-1", 0.5)  # True once the session's events are applied

Why JetStream: a PubAck comes after the stream has the message in its file store, so
"acknowledged means stored" holds with the bus on, as it does when ingest commits to the log
itself. (Redis Streams would acknowledge from memory; the Redis here keeps nothing on disk.)

Each event is one message whose `Nats-Msg-Id` is the event id: JetStream drops a second
message with the same id within its duplicate window and says so in the PubAck, which is how a
re-sent event is reported as a duplicate without asking the log. The stream keeps a message
only until the consumer acknowledges it (work-queue retention): the log is the record, the
stream holds what is not logged yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from nextbest.events.schema import Event

logger = logging.getLogger(__name__)

# Re-sent events within this window are duplicates by the bus; later ones are accepted again
# and the log, idempotent on the event id, drops them.
DUPLICATE_WINDOW_SECONDS = 600.0
# A message not acknowledged within this time (its node died) goes to another node.
ACK_WAIT_SECONDS = 30.0
PUBLISH_TIMEOUT_SECONDS = 3.0  # then the request answers 503: nothing unstored is acknowledged
CONNECT_TIMEOUT_SECONDS = 3
MSG_ID = "Nats-Msg-Id"
CONSUMER = "log-writer"  # the durable consumer's name, one per stream
# Sessions remembered for read-your-writes before those known to be applied are let go.
MAX_REMEMBERED_SESSIONS = 100_000


class BusUnavailable(RuntimeError):
    """The bus could not be reached or did not confirm a publish (nothing is acknowledged)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One event as JetStream confirmed it: its stream sequence, and whether the bus had it
    already (a duplicate within the window)."""

    seq: int
    duplicate: bool


def encode(event: Event) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


def decode(payload: bytes) -> Event:
    return Event.model_validate_json(payload)


class EventBus:
    def __init__(self, url: str, stream: str, ack_wait: float = ACK_WAIT_SECONDS) -> None:
        self.url = url
        self.stream = stream
        self.ack_wait = ack_wait  # taken by the consumer only when this bus creates it
        self.subject = f"{stream}.events"
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._applied_floor = 0  # every stream sequence up to this is logged and applied
        self._published: dict[str, int] = {}  # session -> its last event published here
        self._closing = False
        self._floor_lock = asyncio.Lock()

    async def connect(self) -> None:
        """Connect and make sure the stream and the consumer exist (idempotent, so every
        node may do it at start)."""
        try:
            self._nc = await nats.connect(
                self.url,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                allow_reconnect=True,
                # the client counts its first connection's attempts as reconnects: a few,
                # so that a bus that is not there stops the start with its URL
                max_reconnect_attempts=1,
                reconnect_time_wait=1,
                error_cb=_log_error,
                disconnected_cb=self._disconnected,
                reconnected_cb=self._reconnected,
            )
            # once up, ride out a restart of the bus however long it takes (publishes answer
            # 503 meanwhile)
            self._nc.options["max_reconnect_attempts"] = -1
            self._js = self._nc.jetstream(timeout=PUBLISH_TIMEOUT_SECONDS)
            await self._ensure_stream()
            await self._ensure_consumer()
        except (nats.errors.Error, OSError) as exc:
            await self.close()
            raise BusUnavailable(
                f"event bus at {self.url} not usable ({type(exc).__name__}: {exc}); "
                "is nats-server running with JetStream (-js)?"
            ) from exc

    async def _ensure_stream(self) -> None:
        config = StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            storage=StorageType.FILE,  # a PubAck means on disk, not in memory
            retention=RetentionPolicy.WORK_QUEUE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )
        try:
            await self.jetstream.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await self.jetstream.add_stream(config)

    async def _ensure_consumer(self) -> None:
        """Create the shared consumer unless it exists (then it is left as it is: the first
        node made it, or an operator tuned it)."""
        try:
            await self.jetstream.consumer_info(self.stream, CONSUMER)
        except nats.js.errors.NotFoundError:
            await self.jetstream.add_consumer(self.stream, self.consumer_config())

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=CONSUMER,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,  # a message is retried until some node logs it
            filter_subject=self.subject,
        )

    @property
    def jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise BusUnavailable(f"event bus at {self.url} is not connected")
        return self._js

    def ping(self) -> None:
        """Raise BusUnavailable unless connected (for /healthz; asks the bus nothing)."""
        if self._nc is None or not self._nc.is_connected:
            raise BusUnavailable(f"not connected to {self.url}")

    async def publish(self, events: Sequence[Event]) -> list[Stored]:
        """Publish the events, all at once, and return when JetStream has stored every one;
        BusUnavailable if any was not confirmed (some may be stored: a re-send is safe)."""
        js = self.jetstream

        async def one(event: Event) -> Stored:
            ack = await js.publish(
                self.subject, encode(event), stream=self.stream, headers={MSG_ID: event.event_id}
            )
            return Stored(ack.seq, bool(ack.duplicate))

        try:
            return list(await asyncio.gather(*(one(event) for event in events)))
        except (TimeoutError, nats.errors.Error) as exc:
            raise BusUnavailable(
                f"the event bus at {self.url} did not confirm the events "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    async def subscribe(self) -> JetStreamContext.PullSubscription:
        return await self.jetstream.pull_subscribe_bind(durable=CONSUMER, stream=self.stream)

    async def pending(self) -> tuple[int, int]:
        """(messages not yet handed to a node, messages handed out and not yet acknowledged)."""
        info = await self.jetstream.consumer_info(self.stream, CONSUMER)
        self._raise_floor(info.ack_floor.stream_seq if info.ack_floor else 0)
        return info.num_pending or 0, info.num_ack_pending or 0

    def published(self, session_id: str, seq: int) -> None:
        """Remember that this node published an event of the session at stream sequence
        `seq`, so that its next recommendation can wait for it (`session_caught_up`)."""
        if seq > self._published.get(session_id, 0):
            self._published[session_id] = seq
        if len(self._published) > MAX_REMEMBERED_SESSIONS:
            floor = self._applied_floor
            self._published = {s: q for s, q in self._published.items() if q > floor}

    async def session_caught_up(self, session_id: str, timeout: float) -> bool:
        """True once the events this node published for the session are logged and applied
        (at once for a session it published none for, or that is known to be applied);
        False if that takes longer than `timeout` seconds."""
        seq = self._published.get(session_id, 0)
        if seq <= self._applied_floor:
            return True
        caught_up = await self.caught_up(seq, timeout)
        if caught_up and self._published.get(session_id) == seq:
            del self._published[session_id]
        return caught_up

    async def caught_up(self, seq: int, timeout: float) -> bool:
        """Wait (up to `timeout` seconds) until every message up to stream sequence `seq` is
        logged and applied by some node: the consumer's acknowledged floor. Waiters share
        one question to the bus at a time."""
        deadline = time.monotonic() + timeout
        while self._applied_floor < seq:
            async with self._floor_lock:
                if self._applied_floor < seq:  # nobody asked while this one waited
                    try:
                        await self.pending()
                    except (TimeoutError, nats.errors.Error):
                        return False
            if self._applied_floor >= seq or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.002)
        return self._applied_floor >= seq

    def _raise_floor(self, floor: int) -> None:
        self._applied_floor = max(self._applied_floor, floor)

    async def delete_stream(self) -> None:
        """Drop the stream and its consumer (tests; an operator's reset)."""
        await self.jetstream.delete_stream(self.stream)

    async def close(self) -> None:
        self._closing = True
        if self._nc is not None and not self._nc.is_closed:
            # flush, not drain: the acknowledgements sent last must reach the bus, but a pull
            # subscription never drains (its pull request stays open until it expires)
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await self._nc.flush(timeout=1)
            await self._nc.close()
        self._nc = self._js = None

    async def _disconnected(self) -> None:
        if not self._closing:
            logger.warning("event bus at %s: disconnected; reconnecting", self.url)

    async def _reconnected(self) -> None:
        logger.warning("event bus at %s: reconnected", self.url)


async def _log_error(error: Exception) -> None:
    logger.warning("event bus: %s: %s", type(error).__name__, error)
