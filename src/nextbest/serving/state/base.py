"""The state store's interface: bytes per key, an idle expiry, and atomic read-modify-write.

    store.get_many(["s:abc", "u:42"])            # [bytes | None, ...]
    store.update(keys, compute)                   # atomically: new = compute(current)

`update` is how every change is made: it reads the keys, calls `compute` with their current
values, and writes what it returns (None: leave that key as it is), refreshing the expiry of
what it writes. When another writer (a thread, another worker) changed one of the keys in
the meantime, the store calls `compute` again on the new values, so `compute` must not have
side effects. A key not written for `ttl_seconds` expires, unless it was written with
`lasting=True` (user states: a user comes back after weeks); `lasting` may also be one flag
per key, so one update writes a session and its user's lasting profile together.

Every implementation runs the shared suite in `tests/serving/test_state_store.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

Compute = Callable[[list[bytes | None]], list[bytes | None]]


class StateStore(ABC):
    ttl_seconds: float

    @abstractmethod
    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The value of each key, None where absent or expired."""

    @abstractmethod
    def update(
        self,
        keys: Sequence[str],
        compute: Compute,
        current: list[bytes | None] | None = None,
        lasting: bool | Sequence[bool] = False,
    ) -> list[bytes | None]:
        """Atomically replace the values of `keys` by `compute(current values)`.

        Returns the values stored afterwards. `keys` must be distinct. `current`: the values
        the caller has just read, to start from (a store may use them to save a read; compute
        still only ever sees the values the keys hold). `lasting`: the written values do not
        expire (a bounded store may still drop the least recently written); one flag for
        all keys, or one per key.
        """

    @staticmethod
    def lasting_flags(keys: Sequence[str], lasting: bool | Sequence[bool]) -> list[bool]:
        """`lasting` as one flag per key."""
        if isinstance(lasting, bool):
            return [lasting] * len(keys)
        flags = list(lasting)
        if len(flags) != len(keys):
            raise ValueError(f"{len(flags)} lasting flags for {len(keys)} keys")
        return flags

    def guess_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values to start an `update` from: what this process saw last, which may be stale
        (`update` then reads and computes again). A store with a network round trip per read
        keeps such a copy to save it; by default, the current values."""
        return self.get_many(keys)

    @abstractmethod
    def delete(self, keys: Sequence[str]) -> None:
        """Forget these keys."""

    @abstractmethod
    def ping(self) -> None:
        """Raise if the store cannot be reached (for health checks)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
