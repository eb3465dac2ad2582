"""The shared state store: Redis, for several workers or hosts serving the same sessions.

Values are plain Redis strings under `prefix + key`, written with an expiry (`PX`), or none for
lasting values (user states). `update` is optimistic compare-and-set: read the keys (or take
the values the caller just read), compute, then one Lua script checks that every key still
holds what was read and writes the new values, atomically. If another worker wrote one of them
in between, nothing is written and the update starts again on the values the script returns.
Two round trips in the common case, one when the caller starts from `guess_many`: the values
this process last read or wrote, kept for the most recent `LOCAL_COPIES` keys (a session's
events usually reach the worker that handled its previous ones; when another worker wrote in
between, the compare fails and its answer carries the current values, so a lost race costs no
extra read).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import redis

from nextbest.serving.state.base import Compute, StateStore

MAX_RETRIES = 50
LOCAL_COPIES = 50_000  # keys whose last seen value this process keeps (see guess_many)

# KEYS: the keys. ARGV[1]: expiry in ms; then per key an expected value and a new value, each
# "0" (expected: absent; new: leave as is) or "1" followed by the bytes; a new value tagged "2"
# instead of "1" is written without expiry (a lasting key).
# Returns 0 when it wrote, else every key's current value (false: absent), so that a writer
# that lost the race starts again without another read.
COMPARE_AND_SET = """
local current = {}
local stale = false
for i, key in ipairs(KEYS) do
  local expected = ARGV[2 * i]
  current[i] = redis.call("GET", key)
  if expected == "0" then
    if current[i] then stale = true end
  elseif current[i] ~= string.sub(expected, 2) then
    stale = true
  end
end
if stale then return current end
for i, key in ipairs(KEYS) do
  local new = ARGV[2 * i + 1]
  if new ~= "0" then
    if string.sub(new, 1, 1) == "2" then
      redis.call("SET", key, string.sub(new, 2))
    else
      redis.call("SET", key, string.sub(new, 2), "PX", ARGV[1])
    end
  end
end
return 0
"""


def _tagged(value: bytes | None, lasting: bool = False) -> bytes:
    if value is None:
        return b"0"
    return (b"2" if lasting else b"1") + value


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
        self._compare_and_set = self.client.register_script(COMPARE_AND_SET)
        self._seen: OrderedDict[str, bytes] = OrderedDict()  # key -> last value read/written
        self._seen_lock = threading.Lock()

    def _note(self, keys: Sequence[str], values: Sequence[bytes | None]) -> None:
        with self._seen_lock:
            for key, value in zip(keys, values, strict=True):
                if value is None:
                    self._seen.pop(key, None)
                else:
                    self._seen[key] = value
                    self._seen.move_to_end(key)
            while len(self._seen) > LOCAL_COPIES:
                self._seen.popitem(last=False)

    def guess_many(self, keys: Sequence[str]) -> list[bytes | None]:
        with self._seen_lock:
            guesses = [self._seen.get(key) for key in keys]
        if all(guess is not None for guess in guesses):
            return guesses
        return self.get_many(keys)  # a key never seen here: ask (it may well exist)

    def _keys(self, keys: Sequence[str]) -> list[str]:
        return [self.prefix + key for key in keys]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        values = _as_bytes(self.client.mget(self._keys(keys)))
        self._note(keys, values)
        return values

    def update(
        self,
        keys: Sequence[str],
        compute: Compute,
        current: list[bytes | None] | None = None,
        lasting: bool | Sequence[bool] = False,
    ) -> list[bytes | None]:
        if not keys:
            return []
        flags = self.lasting_flags(keys, lasting)
        full = self._keys(keys)
        seen = list(current) if current is not None else self.get_many(keys)
        for _ in range(MAX_RETRIES):
            new = compute(list(seen))
            if len(new) != len(keys):
                raise ValueError(f"compute returned {len(new)} values for {len(keys)} keys")
            arguments: list[bytes | int] = [self._ttl_ms]
            for before, after, lasts in zip(seen, new, flags, strict=True):
                arguments += [_tagged(before), _tagged(after, lasts)]
            answer = self._compare_and_set(keys=full, args=arguments)
            if answer == 0:
                stored = [n if n is not None else c for n, c in zip(new, seen, strict=True)]
                self._note(keys, stored)
                return stored
            seen = _as_bytes(answer)  # another writer came first: start from what it wrote
            self._note(keys, seen)
        raise RuntimeError(
            f"{len(keys)} state key(s) kept changing: gave up after {MAX_RETRIES} tries"
        )

    def delete(self, keys: Sequence[str]) -> None:
        if keys:
            self._note(keys, [None] * len(keys))
            self.client.delete(*self._keys(keys))

    def ping(self) -> None:
        self.client.ping()

    def close(self) -> None:
        with self._seen_lock:
            self._seen.clear()
        self.client.close()


def _as_bytes(values: list[bytes | str | None]) -> list[bytes | None]:
    """The client returns bytes (no decode_responses); say so to the type checker."""
    return [value.encode() if isinstance(value, str) else value for value in values]
