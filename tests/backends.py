"""Fixtures for the real backends: PostgreSQL, Redis and NATS JetStream on this machine (and a
look at how SQLite connections are set up).

Each test gets a fresh PostgreSQL schema (dropped afterwards), a fresh Redis key prefix in
a dedicated database index (its keys deleted afterwards) and a fresh JetStream stream name
(the stream deleted afterwards). A server that cannot be reached
skips the test with a reason naming it, unless NEXTBEST_REQUIRE_BACKENDS=1 (CI), which fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

PG_URL = os.environ.get(
    "NEXTBEST_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("NEXTBEST_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
NATS_URL = os.environ.get("NEXTBEST_TEST_NATS_URL", "nats://127.0.0.1:4222")


def sqlite_pragmas(engine: Engine, connections: int = 3) -> list[tuple[str, int]]:
    """(journal_mode, synchronous) of `connections` connections of the engine's pool, held at
    once so that each is its own (SQLite sets `synchronous` per connection): 2 is FULL, 1
    NORMAL."""
    held = [engine.connect() for _ in range(connections)]
    try:
        return [
            (
                str(c.exec_driver_sql("PRAGMA journal_mode").scalar_one()),
                int(c.exec_driver_sql("PRAGMA synchronous").scalar_one()),
            )
            for c in held
        ]
    finally:
        for connection in held:
            connection.close()


def backend_missing(name: str, url: str, error: Exception) -> None:
    message = f"{name} not reachable at {url}: {type(error).__name__}: {error}"
    if os.environ.get("NEXTBEST_REQUIRE_BACKENDS") == "1":
        pytest.fail(f"{message} (NEXTBEST_REQUIRE_BACKENDS=1 forbids skipping)")
    pytest.skip(message)


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """(database URL, a fresh schema name); the schema is dropped after the test."""
    from sqlalchemy import create_engine, text

    schema = f"nextbest_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        engine.dispose()
        backend_missing("PostgreSQL", PG_URL, exc)
    try:
        yield PG_URL, schema
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def _fresh_redis_prefix() -> Iterator[tuple[str, str]]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        client.close()
        backend_missing("Redis", REDIS_URL, exc)
    prefix = f"nextbest-test-{uuid.uuid4().hex[:12]}:"
    try:
        yield REDIS_URL, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(Redis URL, a fresh key prefix); every key under the prefix is deleted afterwards."""
    yield from _fresh_redis_prefix()


@pytest.fixture(scope="module")
def module_redis_prefix() -> Iterator[tuple[str, str]]:
    """As `redis_prefix`, shared by the tests of one module (one server they all use)."""
    yield from _fresh_redis_prefix()


@pytest.fixture
def nats_stream() -> Iterator[tuple[str, str]]:
    """(NATS URL, a fresh JetStream stream name); the stream is deleted after the test if a
    test made it."""
    import asyncio

    import nats
    import nats.js.errors

    async def jetstream_answers() -> None:
        connection = await nats.connect(NATS_URL, connect_timeout=3, allow_reconnect=False)
        try:
            await connection.jetstream().account_info()  # fails without JetStream (-js)
        finally:
            await connection.close()

    async def delete(stream: str) -> None:
        connection = await nats.connect(NATS_URL, connect_timeout=3, allow_reconnect=False)
        try:
            await connection.jetstream().delete_stream(stream)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await connection.close()

    try:
        asyncio.run(jetstream_answers())
    except Exception as exc:
        backend_missing("NATS JetStream", NATS_URL, exc)
    stream = f"nextbest_test_{uuid.uuid4().hex[:12]}"
    try:
        yield NATS_URL, stream
    finally:
        asyncio.run(delete(stream))
