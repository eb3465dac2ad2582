"""What the dashboard plots of the server itself: events and recommendations per second and
the recommendations' latency percentiles, over the last hour.

The numbers are the Prometheus metrics `/metrics` exposes (every worker's, added up, when
there are several), read every few seconds by the refresher (`Throughput.sample`). Rates and
percentiles come from the differences between samples: a percentile is read off the latency
histogram's buckets, linearly within the bucket it falls in, as Prometheus's
`histogram_quantile` does.

    throughput = Throughput()
    throughput.sample()          # the refresher, every NEXTBEST_REFRESH_SECONDS
    throughput.series()          # [{at, events_per_second, recommendations_per_second,
                                 #   p50_ms, p95_ms, p99_ms}, ...]
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

# the routes whose answers are recommendation lists
RECOMMENDATION_ROUTES = ("/v1/recommendations", "/v1/search", "/v1/items/{item_id}/similar")
KEEP_SECONDS = 3600.0
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Sample:
    at: float
    events: float  # accepted events so far
    lists: float  # recommendation requests answered so far
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count) of their latency


class Throughput:
    def __init__(self, keep_seconds: float = KEEP_SECONDS) -> None:
        self.keep_seconds = keep_seconds
        self._samples: deque[Sample] = deque()
        self._lock = threading.Lock()

    def sample(self, now: float | None = None) -> Sample:
        """Read the counters now and keep them (the last `keep_seconds`)."""
        sample = read_counters(time.time() if now is None else now)
        with self._lock:
            self._samples.append(sample)
            while self._samples and self._samples[0].at < sample.at - self.keep_seconds:
                self._samples.popleft()
        return sample

    def series(self) -> list[dict[str, float | None]]:
        """Per interval between two samples: its end, the rates, and the latency percentiles
        (milliseconds; None when no list was answered in it)."""
        with self._lock:
            samples = list(self._samples)
        points: list[dict[str, float | None]] = []
        for before, after in itertools.pairwise(samples):
            seconds = after.at - before.at
            if seconds <= 0:
                continue
            counts = _bucket_deltas(before.buckets, after.buckets)
            point: dict[str, float | None] = {
                "at": after.at,
                "events_per_second": max(after.events - before.events, 0.0) / seconds,
                "recommendations_per_second": max(after.lists - before.lists, 0.0) / seconds,
            }
            for q in QUANTILES:
                value = quantile(counts, q)
                point[f"p{round(q * 100)}_ms"] = None if value is None else value * 1000.0
            points.append(point)
        return points


def read_counters(now: float) -> Sample:
    """The counters as `/metrics` would show them now."""
    events = lists = 0.0
    buckets: dict[float, float] = {}
    for family in _registry().collect():
        for s in family.samples:
            if s.name == "nextbest_events_total" and s.labels.get("outcome") == "accepted":
                events += s.value
            elif s.name == "nextbest_http_requests_total" and _is_list(s.labels):
                lists += s.value
            elif s.name == "nextbest_http_request_duration_seconds_bucket" and _is_list(s.labels):
                bound = float(s.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + s.value
    return Sample(now, events, lists, tuple(sorted(buckets.items())))


def read_operations() -> dict[str, dict[str, float]]:
    """The learned ranker's lists by outcome (learned, fallback) and the event bus's pending
    messages by state (none when this server has no bus), as `/metrics` shows them now."""
    ranked: dict[str, float] = {}
    pending: dict[str, float] = {}
    for family in _registry().collect():
        for s in family.samples:
            if s.name == "nextbest_ranked_lists_total":
                outcome = s.labels.get("outcome", "")
                ranked[outcome] = ranked.get(outcome, 0.0) + s.value
            elif s.name == "nextbest_bus_pending_messages":
                state = s.labels.get("state", "")
                pending[state] = max(pending.get(state, 0.0), s.value)
    return {"ranked_lists": ranked, "bus_pending": pending}


def _is_list(labels: dict[str, str]) -> bool:
    return labels.get("route") in RECOMMENDATION_ROUTES and labels.get("status", "200") < "400"


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def _bucket_deltas(
    before: Iterable[tuple[float, float]], after: Iterable[tuple[float, float]]
) -> list[tuple[float, float]]:
    earlier = dict(before)
    return [(bound, max(count - earlier.get(bound, 0.0), 0.0)) for bound, count in after]


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of observations counted in cumulative `buckets` (upper bound, count),
    interpolated within its bucket; None without observations. Beyond the last finite bound,
    that bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            inside = count - lower_count
            share = (rank - lower_count) / inside if inside > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound
