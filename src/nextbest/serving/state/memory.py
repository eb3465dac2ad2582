"""The embedded state store: a dict in this process, with idle expiry and a size bound.

Entries are kept in write order, so the oldest write is always first: expiry pops from the
front (amortised O(1) per write), and when the store is full the least recently written
session is dropped (it is rebuilt from the event log if it comes back). Lasting entries (user
states) live in a second table without expiry, bounded by the same size, dropped least
recently written first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from nextbest.serving.state.base import Compute, StateStore


class MemoryStateStore(StateStore):
    def __init__(
        self,
        ttl_seconds: float = 1800.0,
        max_entries: int = 1_000_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be > 0, not {ttl_seconds!r}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, not {max_entries!r}")
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # key: (expiry, value)
        self._lasting: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = self._clock()
        with self._lock:
            return [self._get(key, now) for key in keys]

    def _get(self, key: str, now: float) -> bytes | None:
        lasting = self._lasting.get(key)
        if lasting is not None:
            return lasting
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def update(
        self,
        keys: Sequence[str],
        compute: Compute,
        current: list[bytes | None] | None = None,
        lasting: bool | Sequence[bool] = False,
    ) -> list[bytes | None]:
        flags = self.lasting_flags(keys, lasting)
        with self._lock:  # nobody else can write meanwhile: compute runs once
            now = self._clock()
            current = [self._get(key, now) for key in keys]  # the caller's may be stale
            new = compute(list(current))
            if len(new) != len(keys):
                raise ValueError(f"compute returned {len(new)} values for {len(keys)} keys")
            expiry = now + self.ttl_seconds
            for key, value, lasts in zip(keys, new, flags, strict=True):
                if value is None:
                    continue
                if lasts:
                    self._entries.pop(key, None)
                    self._lasting[key] = value
                    self._lasting.move_to_end(key)
                else:
                    self._lasting.pop(key, None)
                    self._entries[key] = (expiry, value)
                    self._entries.move_to_end(key)
            self._evict(now)
            while len(self._lasting) > self.max_entries:
                self._lasting.popitem(last=False)
            return [n if n is not None else c for n, c in zip(new, current, strict=True)]

    def _evict(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (expiry, _) = next(iter(entries.items()))
            if expiry > now and len(entries) <= self.max_entries:
                return
            del entries[key]

    def delete(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)
                self._lasting.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries) + len(self._lasting)

    def ping(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._lasting.clear()
