"""Request and event rate limits per client address and per API key: 429 with Retry-After.

Each limited name (an address, a key) has a token bucket: it refills at `rate` tokens a
second and holds at most `rate * burst_seconds` (never less than one whole request or one
whole event batch), so a client may spend a short burst and then its rate. A request takes one
token from its address's request bucket (before its key is checked, so that a flood of wrong
keys is limited too) and one from its key's; `POST /v1/events` also takes one token per event
from the address's and the key's event buckets. A rate of 0 turns that limit off.

Requests with a browser key also count in their address's browser buckets, which are on by
default: a browser key is public, so its per-key limit would throttle the whole shop, and
each shopper's address is what tells one client from another.

The buckets live in the worker process: with `--workers N` each worker counts its own clients,
so a client spread over N workers gets up to N times the rate. The least recently seen names
are forgotten beyond `max_names`, so a flood of new addresses cannot grow memory without bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from nextbest.serving.errors import ApiError
from nextbest.serving.schemas import MAX_BATCH_EVENTS

if TYPE_CHECKING:
    from nextbest.serving.settings import ServingSettings


class TokenBuckets:
    """One token bucket per name: `rate` tokens a second, holding at most `capacity`."""

    def __init__(
        self,
        rate: float,
        capacity: float,
        max_names: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self.max_names = max_names
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when
        self._lock = threading.Lock()

    def take(self, name: str, tokens: float = 1.0) -> float:
        """0.0 when `tokens` were taken; else the seconds until they would be there."""
        now = self.clock()
        with self._lock:
            held, when = self._buckets.pop(name, (self.capacity, now))
            held = min(self.capacity, held + (now - when) * self.rate)
            granted = held >= tokens
            self._buckets[name] = (held - tokens if granted else held, now)
            if len(self._buckets) > self.max_names:
                self._buckets.popitem(last=False)  # the least recently seen name
        return 0.0 if granted else (tokens - held) / self.rate


class RateLimiter:
    """The six limits (rates per second; 0 turns one off); an event bucket always holds
    `largest_batch` events, so a whole batch can pass."""

    def __init__(
        self,
        requests_per_address: float = 0.0,
        requests_per_key: float = 0.0,
        events_per_address: float = 0.0,
        events_per_key: float = 0.0,
        burst_seconds: float = 2.0,
        browser_requests_per_address: float = 0.0,
        browser_events_per_address: float = 0.0,
        largest_batch: int = MAX_BATCH_EVENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        def buckets(rate: float, smallest: float) -> TokenBuckets | None:
            if rate <= 0:
                return None
            return TokenBuckets(rate, max(rate * burst_seconds, smallest), clock=clock)

        self.address_requests = buckets(requests_per_address, 1.0)
        self.key_requests = buckets(requests_per_key, 1.0)
        self.address_events = buckets(events_per_address, largest_batch)
        self.key_events = buckets(events_per_key, largest_batch)
        self.browser_requests = buckets(browser_requests_per_address, 1.0)
        self.browser_events = buckets(browser_events_per_address, largest_batch)

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> RateLimiter:
        return cls(
            settings.rate_limit_requests_per_address,
            settings.rate_limit_requests_per_key,
            settings.rate_limit_events_per_address,
            settings.rate_limit_events_per_key,
            settings.rate_limit_burst_seconds,
            settings.rate_limit_browser_requests_per_address,
            settings.rate_limit_browser_events_per_address,
        )

    def request_from(self, address: str) -> None:
        _take(self.address_requests, address, 1, "requests", "client address")

    def request_with(self, key: str) -> None:
        _take(self.key_requests, key, 1, "requests", "API key")

    def browser_request_from(self, address: str) -> None:
        _take(self.browser_requests, address, 1, "requests", "browser address")

    def events(self, address: str, key: str, count: int, browser: bool = False) -> None:
        _take(self.address_events, address, count, "events", "client address")
        _take(self.key_events, key, count, "events", "API key")
        if browser:
            _take(self.browser_events, address, count, "events", "browser address")


def _take(buckets: TokenBuckets | None, name: str, tokens: int, what: str, per: str) -> None:
    if buckets is None:
        return
    wait = buckets.take(name, tokens)
    if wait > 0.0:
        retry = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "too many requests",
            "Authorization" if per == "API key" else "client",  # the name, not the value
            f"at most {buckets.rate:g} {what} a second per {per}; retry after {retry} s",
            {"Retry-After": str(retry)},
        )
