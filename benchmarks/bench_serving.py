"""Serving under load, over loopback: `nextbest serve --workers 2`, GRU4Rec (100 units) over the
Diginetica catalog (43k items), Redis for the shared session state, SQLite for the event log.

    .venv/bin/python benchmarks/bench_serving.py                  # all measurements
    .venv/bin/python benchmarks/bench_serving.py --write-docs     # and update docs/benchmarks.md
    PYTHONPATH=<other checkout>/src .venv/bin/python benchmarks/bench_serving.py --label old
    .venv/bin/python benchmarks/bench_serving.py --docs-from benchmarks/results/serving-new.json \
        --beside benchmarks/results/serving-old.json              # both codes in one table

1. compute alone, in one process: one recommendation's state step, scoring of every item,
   filtering and top-n (the serving path), beside the plain `SessionModel` path as reference;
   and the whole pipeline of each placement of `--placements` (default `home,product`) on a
   synthetic catalog of every item (categories, brands, prices, discounts) with learned-style
   complements per category, with the item neighbour table the server builds;
2. per placement, recommendations at a fixed arrival rate (300/s), each preceded by one
   event for its session (the product placement gets that event's item as the item on
   screen); latency of each request, end to end on loopback; three runs of 20 s, because
   this VM's speed drifts from minute to minute; the server's CPU seconds per pair (both
   workers), and its ratio to the compute of step 1 in the same run; then a rate sweep
   (8 s per rate, rising, until two rates in a row miss) for the highest rate whose p99
   stays within 10 ms;
3. events in batches of 100 from 8 connections as fast as they are acknowledged; afterwards the
   log must hold exactly every acknowledged event.

With `--pipeline FILE` (benchmarks/pipelines/serving.toml), the server serves a two-stage
version trained on the same sample (`nextbest train --pipeline`), the placement is `next`
(every generator's top-k, the learned ranker over the merged candidates), and step 1 measures
that placement's pipeline alone with its learned ranker and with the generators' order
(rank fusion) in its place: the difference is the ranker's share of the compute (features
and prediction).

The model is trained for one epoch on a sample of the Diginetica sessions with the whole
training vocabulary, which gives the full-size network (and so the full cost) in seconds.
The load generator is a small asyncio HTTP/1.1 client on uvloop (32 keep-alive connections,
garbage collection paused while it measures): it runs on the same two cores as the server, so
its cost is part of what the numbers pay for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import uvloop
from sqlalchemy import func, select

from docs_section import replace_section
from machine_info import load_summary, machine
from nextbest.data.sessions import Sessions
from nextbest.evaluation.placement import StaticCounts
from nextbest.events.log import open_event_log, sqlite_url
from nextbest.events.schema import Item
from nextbest.models.registry import build_model
from nextbest.models.store import save_version
from nextbest.recommend.context import Context, Query
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import load_placements
from nextbest.recommend.rules.purchase_rules import CategoryRule, PurchaseRules
from nextbest.serving.live import Applied, advance, fresh_record
from nextbest.serving.registry import default_classes, load_model

ROOT = Path(__file__).resolve().parents[1]
DIGINETICA = ROOT.parent / "shared" / "datasets" / "diginetica" / "train.tsv"
KEY = "bench-admin-key-000001"
SWEEP_RATES = (10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 600)  # pairs/s, SWEEP_SECONDS each
SWEEP_SECONDS = 8.0

try:  # the item neighbour table; absent from older code, which this script also measures
    from nextbest.models.neighbours import NeighbourTable
    from nextbest.serving.registry import NEIGHBOURS
except ImportError:
    NeighbourTable = None  # type: ignore[assignment,misc]
BEGIN, END = "<!-- serving:begin -->", "<!-- serving:end -->"
PIPELINE_BEGIN, PIPELINE_END = "<!-- serving-pipeline:begin -->", "<!-- serving-pipeline:end -->"


# -- the model ---------------------------------------------------------------------------------
def diginetica_sample(sample_sessions: int) -> Sessions:
    """The first `sample_sessions` Diginetica training sessions, coded in the whole training
    vocabulary (so the models have the full size, and the full cost)."""
    frame = pl.read_csv(
        DIGINETICA,
        separator="\t",
        schema_overrides={"SessionId": pl.String, "ItemId": pl.String, "Time": pl.Float64},
    ).rename({"SessionId": "session_id", "ItemId": "item_id", "Time": "timestamp"})
    vocabulary = Sessions.from_events(frame).item_ids
    keep = frame["session_id"].unique(maintain_order=True).head(sample_sessions)
    return Sessions.from_events(
        frame.filter(pl.col("session_id").is_in(keep.implode())), vocabulary
    )


# the served model of `--model`: one epoch on the sample gives the full-size network
SERVED_MODELS: dict[str, dict[str, str]] = {
    "gru4rec": {"loss": "bpr-max", "layers": "100", "n_epochs": "1", "batch_size": "128"},
    "srgnn": {"hidden": "100", "n_epochs": "1"},  # the paper's size
    "sasrec": {"hidden": "100", "n_epochs": "1", "loss": "sampled"},  # two blocks, window 50
}


def train_model(home: Path, sample_sessions: int, name: str = "gru4rec") -> tuple[Path, list[str]]:
    sample = diginetica_sample(sample_sessions)
    vocabulary = sample.item_ids
    model = build_model(name, SERVED_MODELS[name])
    model.fit(sample)
    folder = save_version(model, home, {"model": name, "note": "bench_serving"})
    return folder, [str(i) for i in vocabulary]


def served_sample(
    home: Path, sample_sessions: int, name: str = "gru4rec"
) -> tuple[Path, list[str], list[Item]]:
    """`train_model`, then the synthetic catalog of its items, whose purchase rules are saved
    with the version: (the version's folder, its items, the catalog to upload)."""
    folder, items = train_model(home, sample_sessions, name)
    catalog = synthetic_catalog(items)
    synthetic_rules(catalog).save(folder)
    return folder, items, catalog


def train_pipeline_version(
    home: Path, sample_sessions: int, spec_path: Path
) -> tuple[Path, list[str]]:
    """The two-stage pipeline of `spec_path`, trained on the same sample as `train_model`."""
    from nextbest.twostage.model import train_pipeline
    from nextbest.twostage.protocol import load_spec

    sample = diginetica_sample(sample_sessions)
    vocabulary = sample.item_ids
    started = time.perf_counter()
    model, seconds = train_pipeline(load_spec(spec_path), sample, say=print)
    print(f"pipeline trained in {time.perf_counter() - started:.0f} s: {seconds}")
    folder = save_version(model, home, {"model": "pipeline", "note": "bench_serving"})
    return folder, [str(i) for i in vocabulary]


# -- the catalog ------------------------------------------------------------------------------
def synthetic_catalog(items: list[str], seed: int = 3) -> list[Item]:
    """Every item in one of 300 leaf categories (3 levels), with a brand, a price and, for a
    fifth of them, a discount: what the product placement's filter, MMR and promotion read."""
    rng = np.random.default_rng(seed)
    leaves = [f"Top {a} > Mid {a}.{b} > Leaf {a}.{b}.{c}"
              for a in range(5) for b in range(6) for c in range(10)]  # fmt: skip
    leaf = rng.integers(0, len(leaves), len(items))
    price = np.round(np.exp(rng.normal(3.5, 1.0, len(items))), 2)
    discount = np.where(
        rng.random(len(items)) < 0.2, rng.choice([0.1, 0.2, 0.3, 0.5], len(items)), 0
    )
    return [
        Item(item_id=item, title=f"Product {item}", category_path=tuple(leaves[c].split(" > ")),
             brand=f"brand-{int(b)}", price=float(p), discount=float(d))
        for item, c, b, p, d in zip(
            items, leaf, rng.integers(0, 500, len(items)), price, discount, strict=True
        )
    ]  # fmt: skip


def synthetic_rules(catalog: list[Item], seed: int = 4) -> PurchaseRules:
    """Three complement categories per category, as `nextbest train` learns from purchases."""
    rng = np.random.default_rng(seed)
    leaves = sorted({" > ".join(item.category_path) for item in catalog})
    rules = {}
    for leaf in leaves:
        others = rng.choice(len(leaves), 3, replace=False)
        complements = tuple((leaves[o], float(2 + k)) for k, o in enumerate(others))
        rules[leaf] = CategoryRule(
            category=leaf, kind="regular", buyers=100, purchases=120, returning=50,
            rebuy_share=0.05, revisit_share=0.1, cycle_days=None, hold_days=0.0,
            complements=complements,
        )  # fmt: skip
    return PurchaseRules(rules)


def upload_catalog(port: int, catalog: list[Item]) -> None:
    async def upload() -> None:
        connection = await Connection.open(port)
        for start in range(0, len(catalog), 1000):
            chunk = [item.model_dump() for item in catalog[start : start + 1000]]
            body = json.dumps({"items": chunk}).encode()
            status, reply = await connection.request("PUT", "/v1/items", body)
            if status != 200:
                raise RuntimeError(f"catalog upload failed: {status} {reply[:300]!r}")

    uvloop.run(upload())


def pipeline_alone(
    folder: Path, catalog: list[Item], placement: str, iterations: int, fusion: bool = False
) -> dict[str, float]:
    """One request's pipeline compute, in process: context, generators, ranker, rules,
    diversity, promotion, fill (the session's record already read). `fusion`: the learned
    ranker replaced by rank fusion (the generators' order)."""
    from dataclasses import replace

    from nextbest.recommend.ranking.fusion import FusionRanker

    torch.set_num_threads(1)
    loaded = load_model(folder, default_classes())
    if NeighbourTable is not None and loaded.embeddings is not None:  # as the server has it
        loaded.memo["neighbours"] = NeighbourTable.build(
            loaded.score, loaded.embeddings, NEIGHBOURS
        )
    items = ItemTable.build(loaded.model.item_ids, {item.item_id: item for item in catalog})
    rng = np.random.default_rng(0)
    ids = [str(i) for i in items.ids[: items.n_model]]
    frame = pl.DataFrame({
        "session_id": [f"s{k // 5}" for k in range(50_000)],
        "item_id": [ids[j] for j in rng.integers(0, len(ids), 50_000)],
        "timestamp": np.arange(50_000, dtype=np.float64),
    })  # fmt: skip
    live = StaticCounts(frame)
    pipeline = load_placements()[placement].pipeline
    if fusion:
        pipeline = replace(pipeline, ranker=FusionRanker())
    record = fresh_record(loaded)
    for k, column in enumerate(rng.integers(0, loaded.n_items, 5)):
        record = advance(loaded, [record], [[Applied(k + 1, "view", ids[column], 0.0, None)]])[0]

    def run() -> int:
        on_screen = ids[int(rng.integers(0, len(ids)))]
        query = Query(
            n=10, placement=placement, session_id="s", now=1.0,
            item_id=on_screen if placement == "product" else None,  # as the load sends it
        )  # fmt: skip
        ctx = Context(query, loaded, items, record, live, 1.0, None, loaded.purchase_rules)
        return len(pipeline.recommend(ctx))

    return _timed(run, iterations)


# -- 1. compute alone --------------------------------------------------------------------------
def compute_alone(folder: Path, iterations: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    loaded = load_model(folder, default_classes())
    model = loaded.model
    rng = np.random.default_rng(0)
    state = model.initial_state(1)
    for column in rng.integers(0, loaded.n_items, 5):
        state = model.step(state, np.array([column]), np.array([0.0]))
    row = loaded.codec.split(state)[0]
    bought = rng.integers(0, loaded.n_items, 3)
    assert model.item_ids is not None

    def serving() -> list[str]:  # what the server does per recommendation
        stepped = model.step(
            loaded.codec.join([row]), rng.integers(0, loaded.n_items, 1), np.zeros(1)
        )
        loaded.codec.split(stepped)
        columns, _ = loaded.score.top(stepped, 10, bought)
        return [str(model.item_ids[c]) for c in columns]  # type: ignore[index]

    def reference() -> list[str]:  # the plain SessionModel interface, without the speed-ups
        stepped = model.step(state, rng.integers(0, loaded.n_items, 1), np.zeros(1))
        columns, _ = model.recommend(stepped, 10, exclude=[bought])
        return [str(model.item_ids[c]) for c in columns[0]]  # type: ignore[index]

    return {"serving": _timed(serving, iterations), "reference": _timed(reference, iterations)}


def _timed(function: Any, iterations: int) -> dict[str, float]:
    for _ in range(50):
        function()
    seconds = []
    for _ in range(iterations):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return _summary(seconds)


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


# -- the server --------------------------------------------------------------------------------
def wait_for_neighbours(home: Path, timeout: float = 300.0) -> None:
    """Until the server's item neighbour table is saved (a worker builds it once per version
    in the background; measuring while it builds would measure the build)."""
    if NeighbourTable is None:
        return  # older code: no table
    deadline = time.monotonic() + timeout
    while not list(home.glob(".serving-cache/*/neighbours-*-scores.npy")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no item neighbour table after {timeout:.0f} s")
        time.sleep(1.0)
    time.sleep(2.0)  # the other worker maps it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    home: Path, port: int, workers: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "NEXTBEST_HOME": str(home), "NEXTBEST_ADMIN_KEYS": KEY, **env}
    command = [sys.executable, "-m", "nextbest.cli.serve", "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning"]
    log = (home / "server.log").open("ab")
    process = subprocess.Popen(command, env=environment, stdout=log, stderr=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((home / "server.log").read_text()[-3000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if b" 200 " in probe.recv(1024):
                    return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not come up in 120 s")


@contextlib.contextmanager
def running_server(
    home: Path, redis_url: str, env: dict[str, str] | None = None, name: str = "nextbest-bench"
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`nextbest serve --workers 2` over `home` (`start_server`), its session state in Redis
    under a prefix of its own: (the process, its port); stopped, and its Redis keys deleted,
    on leaving."""
    prefix = f"{name}-{uuid.uuid4().hex[:8]}:"
    port = free_port()
    redis = {"NEXTBEST_REDIS_URL": redis_url, "NEXTBEST_REDIS_PREFIX": prefix}
    server = start_server(home, port, 2, redis | (env or {}))
    try:
        yield server, port
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        _clear_redis(redis_url, prefix)


@contextlib.contextmanager
def quiet_collector() -> Iterator[None]:
    """No garbage collection in the load generator while it measures: a full collection
    over its thousands of finished tasks stalls it for tens of milliseconds, and every
    request in flight would seem that much slower."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


class Connection:
    """One keep-alive HTTP/1.1 connection: the cheapest client Python can be."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str = KEY
    ) -> None:
        self.reader, self.writer, self.key = reader, writer, key

    @classmethod
    async def open(cls, port: int, key: str = KEY) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port), key)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        """`headers`: more header lines, each ending in CRLF."""
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {self.key}\r\n"
        head += headers
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)


async def paced(
    one: Callable[[int, bool], Awaitable[None]], rate: float, seconds: float, warmup: float
) -> tuple[int, float]:
    """Start `one(k, measured)` `rate` times a second for `warmup + seconds` (measured after
    the warm-up), each on its own task, so a slow answer never delays the next start; wait
    for all. Returns how many were started and the seconds it took."""
    loop = asyncio.get_running_loop()
    tasks = []
    total = int(rate * (warmup + seconds))
    begin = loop.time()
    for k in range(total):
        await asyncio.sleep(max(0.0, begin + k / rate - loop.time()))
        tasks.append(asyncio.create_task(one(k, k >= rate * warmup)))
    await asyncio.gather(*tasks)
    return total, loop.time() - begin


async def recommendations_at_rate(
    port: int,
    items: list[str],
    rate: float,
    seconds: float,
    warmup: float,
    placement: str,
    key: str = KEY,
    users: Callable[[str], tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """`users`: each session is a logged-in user's: its events and requests name
    `users(session)[0]`, and carry the header lines `users(session)[1]` (a user token)."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await Connection.open(port, key))
    rng = random.Random(1)
    sessions = [f"bench-{uuid.uuid4().hex[:8]}-{k}" for k in range(2000)]
    logged_in = {session: users(session) for session in sessions} if users else {}
    timings: list[tuple[float, float]] = []
    errors: list[str] = []
    answered: list[int] = []
    accepted = 0

    async def pair(k: int, record: bool) -> None:
        nonlocal accepted
        connection = await pool.get()
        session = sessions[k % len(sessions)]
        item = rng.choice(items)
        event = {"event_id": f"r{k}-{session}", "type": "view", "session_id": session,
                 "item_id": item}  # fmt: skip
        query = f"session_id={session}&n=10&placement={placement}"
        if placement == "product":
            query += f"&item_id={item}"
        user, headers = logged_in.get(session, (None, ""))
        if user is not None:
            event["user_id"] = user
            query += f"&user_id={user}"
        started = time.perf_counter()
        status, body = await connection.request(
            "POST", "/v1/events", json.dumps({"events": [event]}).encode(), headers
        )
        posted = time.perf_counter()
        status2, body2 = await connection.request(
            "GET", f"/v1/recommendations?{query}", headers=headers
        )
        done = time.perf_counter()
        pool.put_nowait(connection)
        accepted += json.loads(body)["accepted"] if status == 200 else 0
        if status != 200 or status2 != 200 or len(json.loads(body2)["items"]) != 10:
            errors.append(f"{status} {body[:200]!r} {status2} {body2[:200]!r}")
        else:
            answered.append(k)
        if record:
            timings.append((posted - started, done - posted))

    total, elapsed = await paced(pair, rate, seconds, warmup)
    return {
        "rate_per_s": rate,
        "seconds_with_warmup": warmup + seconds,
        "achieved_per_s": round(total / elapsed, 1),
        "recommendation": _summary([t[1] for t in timings]),
        "event": _summary([t[0] for t in timings]),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "events_acknowledged": accepted,
        "recommendations_answered": len(answered),
    }


async def events_flat_out(
    port: int, items: list[str], seconds: float, batch: int, key: str = KEY
) -> dict[str, Any]:
    rng = random.Random(2)
    bodies = []
    for b in range(int(seconds * 25_000 / batch)):  # prebuilt: the client only sends
        sessions = [f"ev-{b}-{s}" for s in range(20)]  # 5 events per session and batch
        events = [
            {"event_id": f"ev-{b}-{k}", "type": "view", "session_id": sessions[k % 20],
             "item_id": rng.choice(items)}
            for k in range(batch)
        ]  # fmt: skip
        bodies.append(json.dumps({"events": events}).encode())
    acknowledged = 0
    latencies: list[float] = []
    next_body = 0
    deadline = time.perf_counter() + seconds

    async def sender() -> None:
        nonlocal acknowledged, next_body
        connection = await Connection.open(port, key)
        while time.perf_counter() < deadline and next_body < len(bodies):
            body, next_body = bodies[next_body], next_body + 1
            started = time.perf_counter()
            status, reply = await connection.request("POST", "/v1/events", body)
            latencies.append(time.perf_counter() - started)
            if status == 200:
                acknowledged += json.loads(reply)["accepted"]

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(8)))
    elapsed = time.perf_counter() - started
    return {
        "batch": batch,
        "events_per_s": round(acknowledged / elapsed),
        "events_acknowledged": acknowledged,
        "seconds": round(elapsed, 2),
        "request": _summary(latencies),
    }


# -- the report --------------------------------------------------------------------------------
def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds(pids: set[int]) -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, of these processes and their children)."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(v) for i, v in enumerate(fields) if i not in (3, 4))  # all but idle, iowait
    ours = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) in pids or int(stat[1]) in pids:  # stat[1]: the parent's pid
            ours += int(stat[11]) + int(stat[12])  # utime + stime
    return busy / ticks, ours / ticks


@contextlib.contextmanager
def others_cpu(
    result: dict[str, Any], name: str, pids: set[int], server: int | None = None
) -> Iterator[None]:
    """Note the load average, and the CPU that processes other than ours used meanwhile; and
    the CPU seconds of the server (`server`: its pid, workers included), which depend far
    less on what else runs than latencies do."""
    result["load"][name] = load()
    busy, ours = cpu_seconds(pids)
    server_before = cpu_seconds({server})[1] if server else 0.0
    started = time.perf_counter()
    yield
    busy2, ours2 = cpu_seconds(pids)
    elapsed = time.perf_counter() - started
    result["other_cpu"][name] = round(max(0.0, (busy2 - busy) - (ours2 - ours)) / elapsed, 2)
    if server:
        result.setdefault("server_cpu_s", {})[name] = round(
            cpu_seconds({server})[1] - server_before, 2
        )


def markdown(result: dict[str, Any]) -> str:
    c, e, m = result.get("compute"), result["events"], result["machine"]
    rows = []
    if c:
        serving, reference = c["serving"], c["reference"]
        rows.append(
            (
                "compute of one recommendation (step, score 43k, filter, top-10)",
                "p50 / p99 (mean)",
                f"{serving['p50_ms']} / {serving['p99_ms']} ({serving['mean_ms']}) ms",
                "<= 1 ms",
                f"{reference['p50_ms']} / {reference['p99_ms']} ms",
            )
        )
    for name, fused in result.get("fusion", {}).items():
        learned = result["pipelines"][name]
        share = 1 - fused["mean_ms"] / learned["mean_ms"]
        rows.append(
            (
                f"`{name}` with the generators' order (rank fusion) in place of the learned "
                "ranker; the ranker's share of the pipeline's compute (features, prediction)",
                "p50 / p99 (mean); share",
                f"{fused['p50_ms']} / {fused['p99_ms']} ({fused['mean_ms']}) ms; "
                f"{100 * share:.0f}%",
                "",
                "",
            )
        )
    for name, part in result["placements"].items():
        pipeline, rec = result["pipelines"][name], part["median_run"]["recommendation"]
        rows += [
            (
                f"`{name}`: the placement's pipeline alone (generators, ranker, rules, "
                "diversity, promotions, fill)",
                "p50 / p99 (mean)",
                f"{pipeline['p50_ms']} / {pipeline['p99_ms']} ({pipeline['mean_ms']}) ms",
                "",
                "",
            ),
            (
                f"`{name}` at {part['median_run']['rate_per_s']:.0f}/s, each after its event "
                f"(median of {len(part['runs'])} runs by p99)",
                "p50 / p99",
                f"{rec['p50_ms']} / {rec['p99_ms']} ms",
                "<= 3 / 10 ms",
                "",
            ),
            (
                "each run",
                "p50 / p99",
                ", ".join(
                    f"{run['recommendation']['p50_ms']} / {run['recommendation']['p99_ms']}"
                    for run in part["runs"]
                )
                + " ms",
                "",
                "",
            ),
            (
                "server CPU (both workers) per event + recommendation pair, each run",
                "mean",
                ", ".join(f"{run['server_cpu_ms_per_pair']:.2f}" for run in part["runs"]) + " ms",
                "",
                "",
            ),
            (
                "the same (median run) over the compute of one recommendation, and over the "
                "placement's pipeline alone",
                "ratio",
                f"{part.get('cpu_per_pair_over_compute', '-')}x, "
                f"{part['cpu_per_pair_over_pipeline']}x",
                "<= 2x",
                "",
            ),
        ]
        if part["sweep"]:
            rows.append(
                (
                    f"`{name}`: the highest rate whose p99 stays within 10 ms (sweep of "
                    f"{SWEEP_SECONDS:.0f} s runs: rate p50/p99 ms)",
                    "pairs/s",
                    f"{part['max_rate_p99_10ms']} ("
                    + ", ".join(
                        f"{s['rate']}: {s['p50_ms']:.1f}/{s['p99_ms']:.1f}" for s in part["sweep"]
                    )
                    + ")",
                    "",
                    "",
                )
            )
    rows.append(
        (
            f"events in batches of {e['batch']}, 8 connections",
            "sustained",
            f"{e['events_per_s']:,} events/s",
            ">= 20,000 events/s",
            "",
        )
    )
    lines = [
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
        f"torch {m['torch']}, by",
        "",
        f"    {result['command']}",
        "",
        f"`nextbest serve --workers 2`, {result.get('served', 'GRU4Rec with 100 units')} over "
        f"the {result['items']:,} Diginetica items, Redis session state, SQLite event log "
        "(WAL, synchronous=FULL); "
        + load_summary(result["load"], result["other_cpu"])
        + ". Errors: "
        + str(sum(run["errors"] for p in result["placements"].values() for run in p["all_runs"]))
        + "; every acknowledged event in the log exactly once: "
        f"{result['log_check']}; recommendation lists kept for attribution: "
        f"{result['served_lists_kept']}."
        + (
            " Reference: the same compute through the plain `SessionModel` interface "
            "(`model.score` + `model.recommend`), in the same run."
            if c
            else ""
        ),
        "",
        "| what | statistic | nextbest | target | reference |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(row)} |" for row in rows],
    ]
    return "\n".join(lines)


def comparison(results: list[dict[str, Any]]) -> str:
    """Saved results of several codes (`--label`), run back to back, in one table."""
    lines = [
        "Back to back on the same VM, each code from its own checkout "
        "(`PYTHONPATH=<checkout>/src python benchmarks/bench_serving.py --label NAME`; the "
        "table: `--docs-from NEW.json --beside OLD.json`):",
        "",
        "| code | compute of one recommendation, mean | placement | pipeline alone, mean "
        "| server CPU per pair, each run at 300/s | over the compute / the pipeline "
        "| p50 / p99 at 300/s (median run) | p99 <= 10 ms up to | events/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, part in r["placements"].items():
            rec = part["median_run"]["recommendation"]
            runs = ", ".join(f"{run['server_cpu_ms_per_pair']:.1f}" for run in part["runs"])
            lines.append(
                f"| {r.get('label') or '?'} ({r['machine']['date']}) "
                f"| {r['compute']['serving']['mean_ms']:.2f} ms | `{name}` "
                f"| {r['pipelines'][name]['mean_ms']:.2f} ms | {runs} ms "
                f"| {part['cpu_per_pair_over_compute']}x / {part['cpu_per_pair_over_pipeline']}x "
                f"| {rec['p50_ms']:.1f} / {rec['p99_ms']:.1f} ms "
                f"| {part.get('max_rate_p99_10ms', '')} pairs/s | {r['events']['events_per_s']:,} |"
            )
    return "\n".join(lines)


def save_result(name: str, result: dict[str, Any]) -> None:
    """`result` as benchmarks/results/NAME.json (kept out of git), for --docs-from."""
    folder = ROOT / "benchmarks" / "results"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(result, indent=2))


def write_docs(text: str, begin: str = BEGIN, end: str = END, heading: str = "Serving") -> None:
    """Put `text` between the markers in docs/benchmarks.md (a new section when absent)."""
    replace_section(text, begin, end, heading)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3, help="runs of the recommendation load")
    parser.add_argument("--sample-sessions", type=int, default=20_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--placements",
        default=None,
        help="shipped placements, comma-separated (default: home,product; next with --pipeline)",
    )
    parser.add_argument(
        "--pipeline", type=Path, help="serve a two-stage pipeline of this file (see above)"
    )
    parser.add_argument("--no-sweep", action="store_true", help="skip the rate sweep")
    parser.add_argument(
        "--model",
        default="gru4rec",
        help=f"the model served, one of {', '.join(SERVED_MODELS)}; with --compute-only "
        "several, comma-separated, measured back to back",
    )
    parser.add_argument(
        "--compute-only", action="store_true", help="step 1 only: one recommendation's compute"
    )
    parser.add_argument("--label", default="", help="a name for this code in the results")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--docs-from", type=Path, help="write docs from this saved result, run nothing"
    )
    parser.add_argument(
        "--beside", type=Path, help="with --docs-from: a saved result of other code, compared"
    )
    args = parser.parse_args()
    if args.docs_from:
        result = json.loads(args.docs_from.read_text())
        text = markdown(result)
        if args.beside:
            text += "\n\n" + comparison([json.loads(args.beside.read_text()), result])
        if result.get("fusion"):  # a run of --pipeline
            write_docs(text, PIPELINE_BEGIN, PIPELINE_END, "Serving the two-stage pipeline")
        else:
            write_docs(text)
        return
    models = [n.strip() for n in args.model.split(",") if n.strip()]
    if not models or any(n not in SERVED_MODELS for n in models):
        parser.error(f"--model: choose from {', '.join(SERVED_MODELS)}, not {args.model!r}")
    if len(models) > 1 and not args.compute_only:
        parser.error("--model: several models only with --compute-only")
    if args.compute_only:
        compute_of_models(args, models)
        return
    default = "next" if args.pipeline else "home,product"
    placements = [n.strip() for n in (args.placements or default).split(",") if n.strip()]
    home = Path(tempfile.mkdtemp(prefix="nextbest-bench-"))
    if args.pipeline:
        folder, items = train_pipeline_version(home, args.sample_sessions, args.pipeline)
        catalog = synthetic_catalog(items)
        synthetic_rules(catalog).save(folder)
    else:
        folder, items, catalog = served_sample(home, args.sample_sessions, args.model)
    result: dict[str, Any] = {"machine": machine(), "items": len(items), "load": {}}
    result["label"] = args.label
    result["other_cpu"] = {}  # cores busy with processes other than the benchmark's
    result["command"] = " ".join(["python benchmarks/bench_serving.py", *sys.argv[1:]])
    if args.pipeline:
        spec = tomllib.loads(args.pipeline.read_text())["pipeline"]
        generators = ", ".join(f"{g['model']} (k {g.get('k', 100)})" for g in spec["generators"])
        ranker = spec.get("ranker", "gbdt")
        result["served"] = f"the two-stage pipeline of `{args.pipeline}`: {generators}, {ranker}"
    with others_cpu(result, "compute", {os.getpid()}):
        result["compute"] = None if args.pipeline else compute_alone(folder, 3000)
        result["pipelines"] = {
            name: pipeline_alone(folder, catalog, name, 2000) for name in placements
        }
        if args.pipeline:
            result["fusion"] = {
                name: pipeline_alone(folder, catalog, name, 2000, fusion=True)
                for name in placements
            }
    result["placements"] = {}
    with running_server(home, args.redis_url) as (server, port):
        upload_catalog(port, catalog)
        if load_model(folder, default_classes()).embeddings is not None:  # else none is built
            wait_for_neighbours(home)
        time.sleep(5)  # both workers' refreshers read the catalog and build its item table
        ours = {os.getpid(), server.pid}
        for name in placements:
            result["placements"][name] = placement_runs(
                result, port, items, name, args, ours, server.pid
            )
        with others_cpu(result, "events", ours, server.pid), quiet_collector():
            result["events"] = uvloop.run(events_flat_out(port, items, args.seconds, 100))
    log = open_event_log(sqlite_url(home))
    logged, distinct = log.count(), len({e.event_id for e in log.iter_events()})
    with log.engine.connect() as connection:
        kept = connection.execute(select(func.count()).select_from(log.served_table)).scalar_one()
    log.close()
    runs = [run for part in result["placements"].values() for run in part["all_runs"]]
    answered = sum(run["recommendations_answered"] for run in runs)
    result["served_lists_kept"] = f"{kept} of {answered}"
    expected = sum(run["events_acknowledged"] for run in runs)
    expected += result["events"]["events_acknowledged"]
    result["log_check"] = (
        "yes" if logged == distinct == expected else f"NO ({logged} vs {expected})"
    )
    print(json.dumps(result, indent=2))
    save_result(f"serving-{args.label}" if args.label else "serving", result)
    print(markdown(result))
    if args.write_docs:
        if args.pipeline:
            write_docs(
                markdown(result), PIPELINE_BEGIN, PIPELINE_END, "Serving the two-stage pipeline"
            )
        else:
            write_docs(markdown(result))


COMPUTE_BEGIN, COMPUTE_END = "<!-- serving-compute:begin -->", "<!-- serving-compute:end -->"


def compute_of_models(args: argparse.Namespace, models: list[str]) -> None:
    """Step 1 alone for each model of `--model` (comma-separated), back to back in one run:
    one recommendation's compute on the serving path, and the `home` placement's pipeline."""
    rows = []
    for name in models:
        home = Path(tempfile.mkdtemp(prefix="nextbest-bench-"))
        folder, items, catalog = served_sample(home, args.sample_sessions, name)
        row: dict[str, Any] = {
            "model": name, "params": SERVED_MODELS[name], "items": len(items),
            "load": {}, "other_cpu": {},
        }  # fmt: skip
        with others_cpu(row, "compute", {os.getpid()}):
            row["compute"] = compute_alone(folder, 3000)
            row["home"] = pipeline_alone(folder, catalog, "home", 2000)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "machine": machine(),
        "rows": rows,
        "command": " ".join(["python benchmarks/bench_serving.py", *sys.argv[1:]]),
    }
    save_result("serving-compute", result)
    text = compute_markdown(result)
    print(text)
    if args.write_docs:
        write_docs(text, COMPUTE_BEGIN, COMPUTE_END, "Serving compute of each session model")


def compute_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"`{result['command']}`, {m.get('cpu', '')}, {m.get('date', '')}; one process, one "
        "thread (the last column: cores other processes used meanwhile); the model trained "
        "for one epoch on the benchmark's Diginetica sample with the "
        "whole vocabulary (full size). Compute: the state step, scoring every item, filtering "
        "and the top 10, as the server does it; `home`: the home placement's whole pipeline.",
        "",
        "| model | compute p50 / p99 ms | plain SessionModel path p50 ms "
        "| home pipeline p50 / p99 ms | other processes' CPU |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        c, h = row["compute"], row["home"]
        busy = row.get("other_cpu", {}).get("compute", "")
        lines.append(
            f"| {row['model']} | {c['serving']['p50_ms']} / {c['serving']['p99_ms']} | "
            f"{c['reference']['p50_ms']} | {h.get('p50_ms', '')} / {h.get('p99_ms', '')} | {busy} |"
        )
    return "\n".join(lines)


def placement_runs(
    result: dict[str, Any],
    port: int,
    items: list[str],
    placement: str,
    args: argparse.Namespace,
    ours: set[int],
    server: int,
) -> dict[str, Any]:
    """`args.runs` runs at `args.rate`, then the rate sweep; each run with the server's CPU
    seconds per pair (both workers), which depend far less on the VM's mood than latency."""
    part: dict[str, Any] = {"runs": [], "sweep": [], "all_runs": []}

    def measured(rate: float, seconds: float, warmup: float, name: str) -> dict[str, Any]:
        with others_cpu(result, name, ours, server), quiet_collector():
            run = uvloop.run(recommendations_at_rate(port, items, rate, seconds, warmup, placement))
        cpu = result["server_cpu_s"][name]
        run["server_cpu_ms_per_pair"] = round(1000 * cpu / (rate * (seconds + warmup)), 3)
        part["all_runs"].append(run)
        return run

    for k in range(args.runs):  # this VM's speed drifts: one run can mislead
        part["runs"].append(measured(args.rate, args.seconds, 3.0, f"{placement} #{k + 1}"))
    by_p99 = sorted(part["runs"], key=lambda r: r["recommendation"]["p99_ms"])
    part["median_run"] = by_p99[len(by_p99) // 2]
    cpu = [run["server_cpu_ms_per_pair"] for run in part["runs"]]
    part["server_cpu_ms_per_pair"] = round(float(np.median(cpu)), 3)
    pipeline = result["pipelines"][placement]["mean_ms"]
    part["cpu_per_pair_over_pipeline"] = round(part["server_cpu_ms_per_pair"] / pipeline, 2)
    if result.get("compute"):
        part["cpu_per_pair_over_compute"] = round(
            part["server_cpu_ms_per_pair"] / result["compute"]["serving"]["mean_ms"], 2
        )
    if not args.no_sweep:
        failed = 0
        for rate in SWEEP_RATES:
            run = measured(rate, SWEEP_SECONDS, 2.0, f"{placement} sweep {rate}/s")
            ok = run["recommendation"]["p99_ms"] <= 10.0 and not run["errors"]
            part["sweep"].append({
                "rate": rate, "p50_ms": run["recommendation"]["p50_ms"],
                "p99_ms": run["recommendation"]["p99_ms"], "ok": ok,
                "server_cpu_ms_per_pair": run["server_cpu_ms_per_pair"],
            })  # fmt: skip
            failed = 0 if ok else failed + 1
            if failed == 2:
                break
        passing = [s["rate"] for s in part["sweep"]]
        first_fail = next((s["rate"] for s in part["sweep"] if not s["ok"]), None)
        below = [r for r in passing if first_fail is None or r < first_fail]
        part["max_rate_p99_10ms"] = max(below) if below else 0
    return part


def _clear_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


if __name__ == "__main__":
    main()
