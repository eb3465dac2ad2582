"""The bus's other half: each server process pulls batches from the one durable consumer all
nodes share (so each message goes to one of them), logs the events, moves their sessions'
states, and only then acknowledges the messages.

    consumer = await open_bus(services)   # None when NEXTBEST_EVENT_BUS is not set
    ...
    await consumer.close()

Why in the server processes, not a separate command: they already hold what writing needs
(the log, the state store, the model the states are stepped with), there is nothing else to
deploy and supervise, and the writing grows with the nodes.

A node killed between logging and acknowledging loses nothing: after ACK_WAIT_SECONDS
JetStream hands its messages to another node, and the log, idempotent on the event id, keeps
each event once. The dead node may have logged them without moving their sessions' states,
so when a redelivered event turns out to be logged already, its session's state is dropped,
to be rebuilt from the log when next used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from nextbest.events.schema import Event
from nextbest.serving import metrics
from nextbest.serving.bus import BusUnavailable, EventBus, decode
from nextbest.serving.ingest import log_and_apply, stored_records
from nextbest.serving.services import Services

logger = logging.getLogger(__name__)

FETCH_BATCH = 256  # messages per commit at most (a state update blocks the loop meanwhile)
FETCH_WAIT_SECONDS = 1.0  # a fetch returns what there is, or waits this long for something
RETRY_SECONDS = 1.0  # after the log or the bus failed
PENDING_EVERY_SECONDS = 5.0  # how often the pending gauges are read from the bus
CLOSE_WAIT_SECONDS = 5.0  # for the batch in hand when the server stops


class BusConsumer:
    def __init__(self, services: Services, bus: EventBus) -> None:
        self.services = services
        self.bus = bus
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._subscription = await self.bus.subscribe()
        self._tasks = [
            asyncio.create_task(self._run(self._subscription), name="bus-consumer"),
            asyncio.create_task(self._watch_pending(), name="bus-pending"),
        ]

    async def _run(self, subscription: JetStreamContext.PullSubscription) -> None:
        while not self._stopping.is_set():
            try:
                messages = await subscription.fetch(FETCH_BATCH, timeout=FETCH_WAIT_SECONDS)
            except nats.errors.TimeoutError:
                continue  # nothing to log
            except (nats.errors.Error, BusUnavailable) as exc:
                logger.warning("event bus: fetching failed (%s: %s); retrying", type(exc), exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                await self.write(messages)
            except Exception:  # unacknowledged: redelivered after ACK_WAIT_SECONDS
                logger.exception("event bus: writing %d message(s) failed", len(messages))
                await asyncio.sleep(RETRY_SECONDS)

    async def write(self, messages: list[Msg]) -> None:
        """Log the messages' events and move the states, then acknowledge the messages; if
        the log fails, ask for them again a little later."""
        events: list[Event] = []
        kept: list[Msg] = []
        for message in messages:
            try:
                events.append(decode(message.data))
                kept.append(message)
            except ValueError:  # not published by ingest: nothing will ever read it
                logger.error("event bus: message %r is not an event; dropped", message.data[:200])
                await message.term()
        if not kept:
            return
        try:
            seqs = await log_and_apply(self.services, events, stored_records(self.services, events))
        except Exception:
            logger.exception("event bus: logging %d event(s) failed; retrying", len(events))
            metrics.BUS_EVENTS.labels("retried").inc(len(events))
            for message in kept:
                await message.nak(delay=RETRY_SECONDS)
            return
        self._forget_redelivered(events, seqs, kept)
        for message in kept:
            await message.ack()
        # once a batch, for its oldest event (the stream's order: the first): an observation
        # per message cost a tenth of the consumer's time (a multiprocess histogram)
        oldest = kept[0].metadata.timestamp.timestamp()
        metrics.BUS_LAG.observe(max(0.0, time.time() - oldest))
        logged = sum(1 for seq in seqs if seq)
        metrics.BUS_EVENTS.labels("logged").inc(logged)
        metrics.BUS_EVENTS.labels("logged before").inc(len(events) - logged)

    def _forget_redelivered(
        self, events: list[Event], seqs: tuple[int, ...], messages: list[Msg]
    ) -> None:
        """A redelivered event the log already had was logged by a node that died before
        acknowledging it, maybe before moving its session's state: drop that state."""
        sessions = {
            event.session_id
            for event, seq, message in zip(events, seqs, messages, strict=True)
            if not seq and message.metadata.num_delivered > 1
        }
        if sessions:
            try:
                self.services.live.forget(sessions)
            except Exception:  # the state store is down: its states are gone or rebuilt
                logger.exception("event bus: could not drop %d session state(s)", len(sessions))

    async def _watch_pending(self) -> None:
        while True:
            try:
                waiting, unacknowledged = await self.bus.pending()
            except (TimeoutError, nats.errors.Error, BusUnavailable) as exc:
                logger.debug("event bus: pending unknown: %s", exc)
            else:
                metrics.BUS_PENDING.labels("waiting").set(waiting)
                metrics.BUS_PENDING.labels("unacknowledged").set(unacknowledged)
            await asyncio.sleep(PENDING_EVERY_SECONDS)

    async def close(self) -> None:
        """Stop pulling: a batch being written is finished and acknowledged first (if it
        takes longer than CLOSE_WAIT_SECONDS it is dropped, and redelivered); then
        disconnect."""
        self._stopping.set()
        run, *others = self._tasks
        for task in others:
            task.cancel()
        try:
            await asyncio.wait_for(run, CLOSE_WAIT_SECONDS)
        except TimeoutError:
            logger.warning("event bus: the consumer did not stop in time; its batch is redelivered")
        for task in others:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.bus.close()


async def open_bus(services: Services) -> BusConsumer | None:
    """Connect the services' event bus and start its consumer (None without a bus).
    BusUnavailable, naming the URL, if the bus cannot be reached."""
    if services.bus is None:
        return None
    await services.bus.connect()
    consumer = BusConsumer(services, services.bus)
    await consumer.start()
    return consumer
