"""Live session and user state: the store interface, its backends, records and codecs."""

from __future__ import annotations

from nextbest.serving.state.base import StateStore
from nextbest.serving.state.memory import MemoryStateStore


def open_state_store(
    redis_url: str | None,
    ttl_seconds: float,
    prefix: str = "nextbest:",
    max_entries: int = 1_000_000,
) -> StateStore:
    """Redis when `redis_url` is given, else the in-process store."""
    if redis_url:
        if not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "NEXTBEST_REDIS_URL must start with redis://, rediss:// or unix://, "
                f"not {redis_url!r}"
            )
        from nextbest.serving.state.redis import RedisStateStore

        return RedisStateStore(redis_url, prefix, ttl_seconds)
    return MemoryStateStore(ttl_seconds, max_entries)


__all__ = ["MemoryStateStore", "StateStore", "open_state_store"]
