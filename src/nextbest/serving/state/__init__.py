"""Live session and user state: the store interface, its backends, records and codecs."""

from __future__ import annotations

from nextbest.serving.settings import ServingSettings
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


def settings_state_store(settings: ServingSettings) -> StateStore:
    """The store the settings name (NEXTBEST_REDIS_URL, its prefix, the expiry and bound)."""
    return open_state_store(
        settings.redis_url,
        settings.state_ttl_seconds,
        settings.redis_prefix,
        settings.state_max_sessions,
    )
