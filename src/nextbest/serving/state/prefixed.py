"""A view of a state store under a key prefix: one store holding several live states apart.

An experiment's variant that serves another model version than the one answering keeps its
own live state (session and user records of that version): `PrefixedStore(store, "v1a2b:")`
is the same store with every key moved under the prefix, so the two never overwrite each
other and both expire alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from nextbest.serving.state.base import Compute, StateStore


class PrefixedStore(StateStore):
    def __init__(self, store: StateStore, prefix: str) -> None:
        if not prefix:
            raise ValueError("a prefixed store needs a non-empty prefix")
        self.store, self.prefix = store, prefix
        self.ttl_seconds = store.ttl_seconds

    def _keys(self, keys: Sequence[str]) -> list[str]:
        return [self.prefix + key for key in keys]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.store.get_many(self._keys(keys))

    def guess_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.store.guess_many(self._keys(keys))

    def update(
        self,
        keys: Sequence[str],
        compute: Compute,
        current: list[bytes | None] | None = None,
        lasting: bool | Sequence[bool] = False,
    ) -> list[bytes | None]:
        return self.store.update(self._keys(keys), compute, current, lasting)

    def delete(self, keys: Sequence[str]) -> None:
        self.store.delete(self._keys(keys))

    def ping(self) -> None:
        self.store.ping()

    def close(self) -> None:
        """The underlying store is closed by its owner."""
