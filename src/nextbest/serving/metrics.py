"""Prometheus metrics: requests and their latency per route, events, items served, model.

With several worker processes, `nextbest serve` points PROMETHEUS_MULTIPROC_DIR at a fresh
folder before the workers start, and `/metrics` adds up every worker's numbers.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "nextbest_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "nextbest_http_request_duration_seconds",
    "Time from request to the end of the reply, per route",
    ["route"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0),
)
EVENTS = Counter(
    "nextbest_events_total", "Events received, by outcome", ["outcome"]
)  # accepted, duplicate, rejected
RECOMMENDED = Counter(
    "nextbest_recommended_items_total",
    "Items recommended, by the source that chose them",
    ["source"],
)
SERVED = Counter(
    "nextbest_served_lists_total",
    "Answered recommendation lists kept for attribution (recorded) or lost (dropped)",
    ["outcome"],
)
EXPERIMENT_SERVED = Counter(
    "nextbest_experiment_lists_total",
    "Lists answered under a running experiment, by experiment and variant",
    ["experiment", "variant"],
)
MODEL = Gauge(
    "nextbest_model_info",
    "1 for the model version answering now",
    ["version", "model"],
    multiprocess_mode="livemax",
)
MODEL_LOADED = Gauge(
    "nextbest_model_loaded_timestamp_seconds",
    "When the answering model version was loaded",
    multiprocess_mode="livemax",
)

RANKED = Counter(
    "nextbest_ranked_lists_total",
    "Lists of the learned ranker: ordered by it (learned), or in the generators' order "
    "because the answering version has no usable ranker (fallback)",
    ["outcome"],
)
RANKER_REFUSED = Gauge(
    "nextbest_ranker_refused",
    "1 while the answering version's ranker was refused at load (a corrupt or unreadable "
    "state): its lists come in the generators' order",
    multiprocess_mode="livemax",
)
ONLINE = Counter(
    "nextbest_ranker_online_total",
    "Online learning of the FTRL ranker: outcomes learned, outcomes whose list this worker "
    "does not hold (unknown), outcomes dropped when the learner was behind, states saved",
    ["outcome"],
)

# NEXTBEST_EVENT_BUS: what the bus consumer did with the events it pulled, how long they
# waited in the stream, and how many are there now (the same numbers on every node).
BUS_EVENTS = Counter(
    "nextbest_bus_events_total",
    "Events taken from the event bus: logged, logged before (a redelivery or a re-send past "
    "the duplicate window), retried (the log failed; asked for again)",
    ["outcome"],
)
BUS_LAG = Histogram(
    "nextbest_bus_lag_seconds",
    "Per batch a node logs: time from its oldest event stored in the bus to the batch logged "
    "and applied",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0),
)
BUS_PENDING = Gauge(
    "nextbest_bus_pending_messages",
    "Events in the bus not yet logged: waiting for a node, or handed out and not yet acknowledged",
    ["state"],
    multiprocess_mode="livemax",
)


def model_switched(old: tuple[str, str] | None, new: tuple[str, str]) -> None:
    """Record a switch of the answering model: (version, model name)."""
    if old is not None:
        MODEL.labels(*old).set(0)
    MODEL.labels(*new).set(1)
    MODEL_LOADED.set(time.time())


def render() -> tuple[bytes, str]:
    """The metrics as Prometheus text (all workers' when running several)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (`/v1/items/{item_id}/similar`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            LATENCY.labels(path).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], path, str(status)).inc()
