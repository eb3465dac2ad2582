"""What the affinity profiles add to each event in the live state, against the same state
without them, back to back in one run.

    .venv/bin/python benchmarks/bench_affinity.py                # print the table
    .venv/bin/python benchmarks/bench_affinity.py --write-docs   # and update benchmarks.md

The demo shop's catalog (seed 7, 4,000 items), 1,000 logged-in users with one session each.
A warm-up applies every session's first event, so every profile and session record exists;
then the next events are logged and `LiveState.apply` is timed on them (CPU time of the
process, `time.process_time`), once with the catalog's facets (profiles on) and once without
(profiles off), each on its own fresh store, alternating for `--rounds` rounds. Two shapes:
one event per call (an event of a shopper's page) and batches of 100 events (20 sessions x 5).
No model: the state's own cost is what is compared. The stores are the in-process one and
Redis on 127.0.0.1 (skipped with a note if it is not there).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_serving import _clear_redis, machine, save_result, write_docs
from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop
from nextbest.events.log import open_event_log, sqlite_url
from nextbest.events.schema import Event, items_of_table
from nextbest.recommend.affinity import Affinity, ItemFacets, decode, encode
from nextbest.serving.live import LiveState
from nextbest.serving.state import open_state_store

BEGIN, END = "<!-- affinity-cost:begin -->", "<!-- affinity-cost:end -->"
REDIS_URL = "redis://127.0.0.1:6379/0"
USERS, EVENTS_PER_SESSION = 1_000, 6  # the first is the warm-up


def workload(item_ids: list[str], seed: int) -> list[list[Event]]:
    """Per session, its events in order (session k belongs to user k)."""
    import random

    rng = random.Random(seed)
    sessions = []
    for k in range(USERS):
        start = 1.7e9 + k
        sessions.append(
            [
                Event(
                    event_id=f"{seed}-{k}-{j}",
                    type=rng.choice(("view", "view", "view", "click", "cart")),
                    session_id=f"s{seed}-{k}",
                    user_id=f"u{seed}-{k}",
                    item_id=rng.choice(item_ids),
                    timestamp=start + 30.0 * j,
                )
                for j in range(EVENTS_PER_SESSION)
            ]
        )
    return sessions


def time_apply(
    live: LiveState, sessions: list[list[Event]], batch_sessions: int, per_session: int
) -> float:
    """Microseconds of CPU per event of `live.apply` over the events after the first."""
    log = live.log
    warm = [events[0] for events in sessions]
    for start in range(0, len(warm), 100):
        chunk = warm[start : start + 100]
        result = log.append(chunk)
        live.apply(None, chunk, result.seqs)
    batches = []
    for start in range(0, len(sessions), batch_sessions):
        group = sessions[start : start + batch_sessions]
        for offset in range(1, EVENTS_PER_SESSION, per_session):
            batch = [e for events in group for e in events[offset : offset + per_session]]
            batches.append((batch, log.append(batch).seqs))
    gc.collect()
    gc.freeze()  # as the server does after loading: the collector leaves the setup alone
    started = time.process_time()
    for batch, seqs in batches:
        live.apply(None, batch, seqs)
    spent = time.process_time() - started
    gc.unfreeze()
    return 1e6 * spent / sum(len(batch) for batch, _ in batches)


def measure(
    store_kind: str, facets: ItemFacets, item_ids: list[str], rounds: int
) -> dict[str, Any]:
    shapes = {"1 event per call": (1, 1), "batches of 100 (20 sessions x 5)": (20, 5)}
    out: dict[str, Any] = {}
    for shape, (batch_sessions, per_session) in shapes.items():
        runs: dict[str, list[float]] = {"off": [], "on": []}
        for round_ in range(rounds):
            for mode in ("off", "on"):
                with tempfile.TemporaryDirectory() as folder:
                    log = open_event_log(sqlite_url(Path(folder)), synchronous="NORMAL")
                    prefix = f"bench-affinity-{uuid.uuid4().hex[:8]}:"
                    url = REDIS_URL if store_kind == "redis" else None
                    store = open_state_store(url, 3600.0, prefix)
                    source: Callable[[], ItemFacets | None] = (
                        (lambda: facets) if mode == "on" else (lambda: None)
                    )
                    live = LiveState(store, log, facets=source)
                    seed = round_ * 10 + (mode == "on")
                    runs[mode].append(
                        time_apply(live, workload(item_ids, seed), batch_sessions, per_session)
                    )
                    store.close()
                    if url is not None:
                        _clear_redis(url, prefix)
        off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
        out[shape] = {"off_us": off, "on_us": on, "added_us": on - off, "runs": runs}
    return out


def profile_parts(facets: ItemFacets, item_ids: list[str]) -> dict[str, float]:
    """The pure profile operations, in microseconds per call."""
    profile = Affinity()
    items = [facets.get(item) for item in item_ids[:200]]
    calls = 50_000
    started = time.process_time()
    for k in range(calls):
        profile.add(items[k % 200], "view", 1.7e9 + k, 600.0)  # type: ignore[arg-type]
    add = 1e6 * (time.process_time() - started) / calls
    data = encode(profile)
    started = time.process_time()
    for _ in range(5_000):
        decode(data)
    decode_us = 1e6 * (time.process_time() - started) / 5_000
    started = time.process_time()
    for _ in range(5_000):
        encode(profile)
    encode_us = 1e6 * (time.process_time() - started) / 5_000
    return {"add": add, "decode": decode_us, "encode": encode_us, "bytes": float(len(data))}


def redis_reachable() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        return True
    except Exception:
        return False


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Measured {result['machine']['date']} on {result['machine']['cpu']} "
        f"({result['machine']['cores']} cores), nothing else running; "
        f"`.venv/bin/python benchmarks/bench_affinity.py --rounds {result['rounds']}` "
        "(median of the rounds, CPU microseconds per event of `LiveState.apply`).",
        "",
        "| Store | Shape | Profiles off | Profiles on | Added per event |",
        "|---|---|---|---|---|",
    ]
    for store, shapes in result["stores"].items():
        for shape, row in shapes.items():
            lines.append(
                f"| {store} | {shape} | {row['off_us']:.1f} µs | {row['on_us']:.1f} µs "
                f"| {row['added_us']:.1f} µs |"
            )
    parts = result["parts"]
    lines += [
        "",
        f"The profile itself: an event's update {parts['add']:.1f} µs; a session's profile "
        f"({parts['bytes']:.0f} bytes with every attribute full) decodes in "
        f"{parts['decode']:.1f} µs and encodes in {parts['encode']:.1f} µs, once per session "
        "and batch. A user's profile is one more key in the same atomic update as its session "
        "(no extra round trip), so its bytes travel to the store and back with every batch.",
    ]
    if result.get("note"):
        lines += ["", result["note"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    shop = generate_demo_shop(DemoShopConfig(seed=7, n_events=20_000))
    items = items_of_table(shop.items)
    facets = ItemFacets.build(items.values())
    item_ids = sorted(items)
    stores = ["memory", "redis"] if redis_reachable() else ["memory"]
    result: dict[str, Any] = {"machine": machine(), "rounds": args.rounds, "stores": {}}
    if "redis" not in stores:
        result["note"] = f"Redis was not reachable at {REDIS_URL}: the in-process store only."
    for store in stores:
        result["stores"][store] = measure(store, facets, item_ids, args.rounds)
    result["parts"] = profile_parts(facets, item_ids)
    save_result("affinity", result)
    text = table(result)
    print(text)
    if args.write_docs:
        write_docs(text, BEGIN, END, heading="Affinity profiles: cost per event")


if __name__ == "__main__":
    main()
