"""The online store: the offline store's latest day in Redis, read for a request's candidates.

Keys, under a deployment's prefix (the server's `nextbest:`, a test's own):

    {prefix}features:current              the version served now
    {prefix}features:versions             list: the versions still kept, oldest first
    {prefix}features:{version}:meta       hash: as_of (the day's start, epoch seconds),
                                          names (JSON: entity -> its feature names, in order)
    {prefix}features:{version}:{entity}   hash: entity id -> its row, float64 little-endian

One hash per entity kind, a field per entity, not a hash per entity: a request's 300
candidates are then one HMGET, not a pipeline of 300 (measured 0.56 against 5.7 ms p50 on
the 2-core VM, docs/operations.md "Feature store"). A row holds every feature of the entity,
so reading 10 of 14 costs the same as reading all; columns are picked after.

`write_online` writes a whole new version, then points `current` at it, then deletes every
version but the new one and the one before (a reader mid-request may still be on it): a
reader never mixes two days. Raw float64 reads back bit for bit what the offline store
holds, and decodes with one `numpy.frombuffer`.

Only numpy and redis are imported here: the benchmark runs this reader beside Feast in a
separate environment.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import redis

from nextbest.twostage.store.definitions import by_name, fill_missing

BATCH = 5_000  # entities per HSET when writing
KEEP_VERSIONS = 2  # the new one and the one before


def where(url: str) -> str:
    """`url` without its password, to name in an error."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str) -> redis.Redis:
    """A client of the Redis at `url`, checked: ValueError names the URL when it cannot be
    reached."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
        client.ping()
    except (redis.RedisError, ValueError, OSError) as exc:
        raise ValueError(f"Redis not reachable at {where(url)}: {exc}") from None
    return client


def _rows_key(prefix: str, version: str, entity: str) -> str:
    return f"{prefix}features:{version}:{entity}"


def write_online(
    client: redis.Redis,
    prefix: str,
    as_of: float,
    tables: Mapping[str, tuple[Sequence[str], Sequence[str], np.ndarray]],
) -> str:
    """Write one day's values as a new version and serve it; returns the version.
    `tables`: entity -> (ids, feature names, values [len(ids), len(names)])."""
    version = f"{int(as_of)}-{uuid.uuid4().hex[:8]}"
    names = {entity: list(table[1]) for entity, table in tables.items()}
    with client.pipeline(transaction=False) as pipe:
        for entity, (ids, columns, values) in tables.items():
            rows = np.ascontiguousarray(values, dtype="<f8")
            if rows.shape != (len(ids), len(columns)):
                raise ValueError(f"{entity}: {rows.shape} values for {len(ids)} ids x {columns}")
            key = _rows_key(prefix, version, entity)
            for start in range(0, len(ids), BATCH):
                stop = min(start + BATCH, len(ids))
                mapping = {str(ids[k]): rows[k].tobytes() for k in range(start, stop)}
                pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                pipe.execute()
        meta = {"as_of": repr(float(as_of)), "names": json.dumps(names)}
        pipe.hset(f"{prefix}features:{version}:meta", mapping=meta)  # type: ignore[arg-type]
        pipe.execute()
    client.set(f"{prefix}features:current", version)
    client.rpush(f"{prefix}features:versions", version)
    _drop_old_versions(client, prefix)
    return version


def _drop_old_versions(client: redis.Redis, prefix: str) -> None:
    listed = f"{prefix}features:versions"
    versions = [v.decode() for v in client.lrange(listed, 0, -1)]  # type: ignore[union-attr]
    for old in versions[:-KEEP_VERSIONS]:
        keys = list(client.scan_iter(match=f"{prefix}features:{old}:*", count=1_000))
        if keys:
            client.unlink(*keys)  # freed in the background: a large hash does not block
        client.lrem(listed, 1, old)


@dataclass(frozen=True)
class OnlineRows:
    values: np.ndarray  # [len(ids), len(names)] float64, missing filled with defaults
    as_of: float  # the values are of the events before this moment (a day's start)
    version: str


@dataclass(frozen=True)
class _Version:
    name: str
    as_of: float
    columns: Mapping[str, Sequence[str]]  # entity -> feature names, in row order


class OnlineFeatures:
    """Reads the served version's features of some entities in one round trip: the
    `current` pointer and one HMGET, pipelined (read again if the version changed)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._version: _Version | None = None

    def read(self, entity: str, ids: Sequence[str], names: Sequence[str]) -> np.ndarray:
        """[len(ids), len(names)] of the served version (`read_rows` adds its version)."""
        return self.read_rows(entity, ids, names).values

    def read_rows(self, entity: str, ids: Sequence[str], names: Sequence[str]) -> OnlineRows:
        features = by_name(names)
        if any(f.entity != entity for f in features):
            raise ValueError(f"features {list(names)} are not all of entity {entity!r}")
        for _ in range(3):  # a new version between two reads: read again on it
            known = self._version or self._load_version()
            with self.client.pipeline(transaction=False) as pipe:
                pipe.get(f"{self.prefix}features:current")
                if ids:
                    pipe.hmget(_rows_key(self.prefix, known.name, entity), [str(i) for i in ids])
                current, *reply = pipe.execute()
            if current is not None and current.decode() == known.name:
                self._version = known
                rows = _decode(reply[0] if reply else [], known.columns.get(entity, ()))
                columns = [_column(known, entity, n) for n in names]
                return OnlineRows(fill_missing(rows[:, columns], features), known.as_of, known.name)
            self._version = None
        raise RuntimeError("the online feature store's version kept changing during a read")

    def _load_version(self) -> _Version:
        current = self.client.get(f"{self.prefix}features:current")
        if current is None:
            raise LookupError(f"no features under {self.prefix!r}: materialize them first")
        name = current.decode()  # type: ignore[union-attr]
        meta = self.client.hgetall(f"{self.prefix}features:{name}:meta")
        as_of = float(meta.get(b"as_of", b"nan"))  # type: ignore[union-attr]
        columns = json.loads(meta.get(b"names", b"{}"))  # type: ignore[union-attr]
        return _Version(name, as_of, columns)


@dataclass(frozen=True)
class StoreStatus:
    version: str
    as_of: float  # the values are of the events before this moment (a day's start)
    rows: Mapping[str, int]  # entity -> entities with a row in the served version


def status(client: redis.Redis, prefix: str) -> StoreStatus | None:
    """The served version, its day and its rows per entity (one pipelined round trip after
    the pointer); None when nothing is materialized under `prefix`."""
    current = client.get(f"{prefix}features:current")
    if current is None:
        return None
    name = current.decode()  # type: ignore[union-attr]
    meta = client.hgetall(f"{prefix}features:{name}:meta")
    kinds = list(json.loads(meta.get(b"names", b"{}")))  # type: ignore[union-attr]
    with client.pipeline(transaction=False) as pipe:
        for entity in kinds:
            pipe.hlen(_rows_key(prefix, name, entity))
        counts = pipe.execute()
    as_of = float(meta.get(b"as_of", b"nan"))  # type: ignore[union-attr]
    return StoreStatus(name, as_of, dict(zip(kinds, map(int, counts), strict=True)))


def _column(version: _Version, entity: str, name: str) -> int:
    columns = list(version.columns.get(entity, ()))
    if name not in columns:
        raise LookupError(f"version {version.name} holds no {name!r}: materialize again")
    return columns.index(name)


def _decode(reply: Sequence[bytes | None], columns: Sequence[str]) -> np.ndarray:
    """The rows of an HMGET reply, NaN for an entity without one."""
    width = len(columns)
    missing = np.full(width, np.nan, "<f8").tobytes()
    raw = b"".join(row if row is not None else missing for row in reply)
    return np.frombuffer(raw, "<f8").reshape(len(reply), width).astype(np.float64)
