"""Ingest through the event bus (NATS JetStream) against ingest straight into the log.

    .venv/bin/python benchmarks/bench_event_bus.py                 # 10 s each, 2 workers
    .venv/bin/python benchmarks/bench_event_bus.py --seconds 20 --docs

Back to back, in this run: `nextbest serve --workers 2` (state in Redis) over a SQLite log
with a catalog of 20,000 items and no model (popularity), once committing each request's
events itself, once with NEXTBEST_EVENT_BUS on the machine's NATS (a stream of its own,
deleted afterwards). The load is bench_serving.py's: batches of 100 view events from 8
connections as fast as they are acknowledged. Reported: events acknowledged per second, the
request's p50 / p99, and how long after the last acknowledgement the log held every
acknowledged event (with the bus: what the consumers still had to write). Needs NATS with
JetStream on 127.0.0.1:4222 and Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import uvloop

from bench_serving import (
    _clear_redis,
    events_flat_out,
    free_port,
    start_server,
    synthetic_catalog,
    upload_catalog,
)
from docs_section import replace_section
from machine_info import machine
from nextbest.events.log import open_event_log, sqlite_url

NATS_URL = os.environ.get("NEXTBEST_BENCH_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("NEXTBEST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BEGIN, END = "<!-- event-bus:begin -->", "<!-- event-bus:end -->"


def logged(home: Path) -> int:
    log = open_event_log(sqlite_url(home))
    try:
        return log.count()
    finally:
        log.close()


def run(kind: str, seconds: float, workers: int) -> dict[str, Any]:
    items = [f"item-{k:05d}" for k in range(20_000)]
    stream = f"bench_{uuid.uuid4().hex[:8]}"
    prefix = f"bench-bus-{uuid.uuid4().hex[:8]}:"  # two workers share state in Redis
    shared = {"NEXTBEST_REDIS_URL": REDIS_URL, "NEXTBEST_REDIS_PREFIX": prefix}
    env = (
        {"NEXTBEST_EVENT_BUS": NATS_URL, "NEXTBEST_EVENT_BUS_STREAM": stream}
        if kind == "bus"
        else {}
    )
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        port = free_port()
        server = start_server(home, port, workers, {**env, **shared})
        try:
            upload_catalog(port, synthetic_catalog(items))
            load_before = os.getloadavg()[0]
            result = uvloop.run(events_flat_out(port, items, seconds, 100))
            acknowledged_at = time.perf_counter()
            deadline = acknowledged_at + 120
            while logged(home) < result["events_acknowledged"] and time.perf_counter() < deadline:
                time.sleep(0.05)
            drained = time.perf_counter() - acknowledged_at
            in_log = logged(home)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            _clear_redis(REDIS_URL, prefix)
        if kind == "bus":
            asyncio.run(_delete_stream(stream))
    return {
        "ingest": kind,
        "events_per_s": result["events_per_s"],
        "p50_ms": round(result["request"]["p50_ms"], 1),
        "p99_ms": round(result["request"]["p99_ms"], 1),
        "acknowledged": result["events_acknowledged"],
        "in_log": in_log,
        "log_caught_up_s": round(drained, 2),
        "load_before": round(load_before, 2),
    }


async def _delete_stream(stream: str) -> None:
    import nats

    connection = await nats.connect(NATS_URL)
    try:
        await connection.jetstream().delete_stream(stream)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--docs", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args()
    rows = [run(kind, args.seconds, args.workers) for kind in ("direct", "bus")]
    for row in rows:
        print(json.dumps(row), flush=True)
    info = machine()
    lines = [
        f"    .venv/bin/python benchmarks/bench_event_bus.py --seconds {args.seconds:g}",
        "",
        f"{info['cpu']}, {info['cores']} cores, {info['date']}; `nextbest serve --workers "
        f"{args.workers}` over SQLite, batches of 100 view events from 8 connections for "
        f"{args.seconds:g} s; `load before` is the 1-minute load average as each run started.",
        "",
        "| ingest | events/s acknowledged | request p50 / p99 ms | acknowledged | in the log "
        "| log caught up after the load (s) | load before |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['ingest']} | {r['events_per_s']:,} | {r['p50_ms']} / {r['p99_ms']} | "
            f"{r['acknowledged']:,} | {r['in_log']:,} | {r['log_caught_up_s']} | "
            f"{r['load_before']} |"
        )
    block = "\n".join(lines) + "\n"
    print(block)
    if args.docs:
        replace_section(block, BEGIN, END, "Event bus: ingest through NATS JetStream")


if __name__ == "__main__":
    main()
