"""The shared suite of the state stores, run against the in-process store and Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from nextbest.serving.state import MemoryStateStore, StateStore, open_state_store
from nextbest.serving.state.prefixed import PrefixedStore

MakeStore = Callable[..., StateStore]


@pytest.fixture(params=["memory", "redis", "prefixed"])
def make_store(request: pytest.FixtureRequest) -> Iterator[MakeStore]:
    """A factory of fresh stores of each kind, given a TTL; closed afterwards."""
    opened: list[StateStore] = []

    def make(ttl_seconds: float = 60.0) -> StateStore:
        if request.param == "memory":
            store = open_state_store(None, ttl_seconds)
        elif request.param == "prefixed":  # a variant's view of the server's store
            store = PrefixedStore(open_state_store(None, ttl_seconds), "v0123:")
        else:
            url, prefix = request.getfixturevalue("redis_prefix")
            store = open_state_store(url, ttl_seconds, prefix)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def put(store: StateStore, values: dict[str, bytes]) -> None:
    store.update(list(values), lambda current: list(values.values()))


def test_values_round_trip_and_absent_keys_are_none(make_store: MakeStore) -> None:
    store = make_store()
    put(store, {"s:a": b"\x00\x01binary\xff", "u:b": b""})
    assert store.get_many(["s:a", "missing", "u:b"]) == [b"\x00\x01binary\xff", None, b""]
    assert store.get_many([]) == []
    store.delete(["s:a"])
    assert store.get_many(["s:a", "u:b"]) == [None, b""]
    store.ping()


def test_update_sees_current_values_and_none_keeps_a_value(make_store: MakeStore) -> None:
    store = make_store()
    put(store, {"a": b"1", "b": b"2"})
    seen: list[list[bytes | None]] = []

    def compute(current: list[bytes | None]) -> list[bytes | None]:
        seen.append(current)
        return [b"10", None, b"new"]

    assert store.update(["a", "b", "c"], compute) == [b"10", b"2", b"new"]
    assert seen[-1] == [b"1", b"2", None]
    assert store.get_many(["a", "b", "c"]) == [b"10", b"2", b"new"]


def test_update_starts_over_when_the_callers_values_are_stale(make_store: MakeStore) -> None:
    store = make_store()
    put(store, {"k": b"written by another worker"})
    seen: list[list[bytes | None]] = []

    def compute(current: list[bytes | None]) -> list[bytes | None]:
        seen.append(current)
        return [b"mine"]

    assert store.update(["k"], compute, current=[b"what I read earlier"]) == [b"mine"]
    assert seen[-1] == [b"written by another worker"]
    assert store.get_many(["k"]) == [b"mine"]


def test_idle_keys_expire(make_store: MakeStore) -> None:
    store = make_store(ttl_seconds=0.3)
    put(store, {"old": b"x", "kept": b"y"})
    time.sleep(0.2)
    put(store, {"kept": b"y2"})  # a write refreshes the expiry
    time.sleep(0.2)
    assert store.get_many(["old", "kept"]) == [None, b"y2"]


def test_lasting_keys_do_not_expire(make_store: MakeStore) -> None:
    store = make_store(ttl_seconds=0.3)
    store.update(["u:1"], lambda _: [b"user"], lasting=True)
    store.update(["s:1"], lambda _: [b"session"])
    time.sleep(0.5)
    assert store.get_many(["u:1", "s:1"]) == [b"user", None]
    store.update(["u:1"], lambda current: [current[0] + b"!"], lasting=True)  # type: ignore[operator]
    assert store.get_many(["u:1"]) == [b"user!"]
    store.delete(["u:1"])
    assert store.get_many(["u:1"]) == [None]


def test_one_update_writes_lasting_and_expiring_keys_together(make_store: MakeStore) -> None:
    store = make_store(ttl_seconds=0.3)
    stored = store.update(["s:2", "a:2"], lambda _: [b"session", b"profile"], lasting=[False, True])
    assert stored == [b"session", b"profile"]
    time.sleep(0.5)
    assert store.get_many(["s:2", "a:2"]) == [None, b"profile"]
    with pytest.raises(ValueError, match="2 lasting flags for 1 keys"):
        store.update(["s:3"], lambda _: [b"x"], lasting=[True, False])


def test_concurrent_updates_lose_nothing(make_store: MakeStore) -> None:
    """Four threads each add 25 to one counter: read-modify-write must not lose an increment."""
    store = make_store()
    put(store, {"counter": b"0"})

    def add() -> None:
        for _ in range(25):
            store.update(["counter"], lambda current: [str(int(current[0] or b"0") + 1).encode()])

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get_many(["counter"]) == [b"100"]


def test_memory_store_drops_the_least_recently_written_when_full() -> None:
    now = [0.0]
    store = MemoryStateStore(ttl_seconds=10.0, max_entries=3, clock=lambda: now[0])
    for key in "abcd":
        now[0] += 1
        put(store, {key: key.encode()})
    assert store.get_many(list("abcd")) == [None, b"b", b"c", b"d"] and len(store) == 3
    now[0] = 12.5  # a (gone), b written at 2 and c at 3 expire at 12 and 13
    put(store, {"e": b"e"})
    assert store.get_many(list("bcde")) == [None, b"c", b"d", b"e"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        MemoryStateStore(ttl_seconds=0)
    with pytest.raises(ValueError, match="NEXTBEST_REDIS_URL"):
        open_state_store("http://localhost", 10.0)


def test_an_update_from_a_stale_guess_sees_the_other_workers_value(
    redis_prefix: tuple[str, str],
) -> None:
    url, prefix = redis_prefix
    mine, theirs = open_state_store(url, 60.0, prefix), open_state_store(url, 60.0, prefix)
    try:
        put(mine, {"s": b"1"})
        assert mine.guess_many(["s"]) == [b"1"]  # from this process's copy
        put(theirs, {"s": b"2"})  # another worker writes meanwhile
        guess = mine.guess_many(["s"])
        assert guess == [b"1"]  # stale, and that is allowed
        seen: list[list[bytes | None]] = []

        def append(current: list[bytes | None]) -> list[bytes | None]:
            seen.append(current)
            return [(current[0] or b"") + b"+"]

        assert mine.update(["s"], append, guess) == [b"2+"]
        assert seen == [[b"1"], [b"2"]]  # tried the guess, then the real value
        assert theirs.get_many(["s"]) == [b"2+"]
        mine.delete(["s"])
        assert mine.guess_many(["s"]) == [None]  # forgotten here too, and absent there
    finally:
        mine.close()
        theirs.close()


def test_a_prefixed_view_keeps_its_keys_apart_from_the_store_it_shares() -> None:
    shared = MemoryStateStore(60.0)
    variant = PrefixedStore(shared, "vabc:")
    put(shared, {"s:1": b"main"})
    put(variant, {"s:1": b"variant"})
    assert shared.get_many(["s:1", "vabc:s:1"]) == [b"main", b"variant"]
    assert variant.get_many(["s:1"]) == [b"variant"]
    variant.delete(["s:1"])
    assert shared.get_many(["s:1", "vabc:s:1"]) == [b"main", None]
