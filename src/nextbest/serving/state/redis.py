"""The shared state store: Redis, for several workers or hosts serving the same sessions.

Values are plain Redis strings under `prefix + key`, written with an expiry (`PX`). `update`
is optimistic: WATCH the keys, read them, compute, then write in MULTI/EXEC; if another
worker wrote one of them in between, EXEC fails and the update starts again on the new values.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from nextbest.serving.state.base import Compute, StateStore

MAX_RETRIES = 50


class RedisStateStore(StateStore):
    def __init__(self, url: str, prefix: str = "nextbest:", ttl_seconds: float = 1800.0) -> None:
        if not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be > 0, not {ttl_seconds!r}")
        self.ttl_seconds = ttl_seconds
        self.prefix = prefix
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self.client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )

    def _keys(self, keys: Sequence[str]) -> list[str]:
        return [self.prefix + key for key in keys]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return _as_bytes(self.client.mget(self._keys(keys)))

    def update(self, keys: Sequence[str], compute: Compute) -> list[bytes | None]:
        if not keys:
            return []
        full = self._keys(keys)
        with self.client.pipeline(transaction=True) as pipe:
            for _ in range(MAX_RETRIES):
                try:
                    pipe.watch(*full)  # type: ignore[no-untyped-call]
                    current = _as_bytes(pipe.mget(full))
                    new = compute(list(current))
                    if len(new) != len(keys):
                        raise ValueError(f"compute returned {len(new)} values for {len(keys)} keys")
                    pipe.multi()
                    for key, value in zip(full, new, strict=True):
                        if value is not None:
                            pipe.set(key, value, px=self._ttl_ms)
                    pipe.execute()
                    return [n if n is not None else c for n, c in zip(new, current, strict=True)]
                except redis.WatchError:
                    continue
        raise RuntimeError(
            f"{len(keys)} state key(s) kept changing: gave up after {MAX_RETRIES} tries"
        )

    def delete(self, keys: Sequence[str]) -> None:
        if keys:
            self.client.delete(*self._keys(keys))

    def ping(self) -> None:
        self.client.ping()

    def close(self) -> None:
        self.client.close()


def _as_bytes(values: list[bytes | str | None]) -> list[bytes | None]:
    """The client returns bytes (no decode_responses); say so to the type checker."""
    return [value.encode() if isinstance(value, str) else value for value in values]
