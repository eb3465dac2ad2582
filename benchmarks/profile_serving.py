"""Where a serving worker's time goes under the benchmark's load: `py-spy record` of each
worker of `nextbest serve --workers 2` while bench_serving.py's load (an event, then a
recommendation of the placement, 300 pairs/s) runs, every sample put in one layer.

    .venv/bin/python benchmarks/profile_serving.py                 # table to stdout
    .venv/bin/python benchmarks/profile_serving.py --write-docs    # and into docs/benchmarks.md

py-spy samples every running thread of a worker 200 times a second. A sample of
the event loop's thread goes to the deepest layer it is in (the model inside the pipeline
counts as the model); the background threads (group commit, served-list writer, catalog
and live-count refresh) are shown apart. Shares are of the worker's samples; the CPU column
turns the busy shares into milliseconds per pair from the workers' measured CPU seconds.
py-spy's sampling itself costs the workers a few percent.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import (
    cpu_seconds,
    events_flat_out,
    load,
    machine,
    recommendations_at_rate,
    running_server,
    save_result,
    served_sample,
    upload_catalog,
    wait_for_neighbours,
    write_docs,
)

RATE = 200  # samples per second and thread
BEGIN, END = "<!-- serving-profile:begin -->", "<!-- serving-profile:end -->"

# (layer, patterns of "function (file)" frames). Checked from the innermost frame outwards;
# the first frame matching any layer names the sample's layer, so order inside the list only
# matters for frames that match two patterns.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("model step and scoring", ("nextbest/models/", "torch/")),
    ("served-list recording", ("serving/served.py",)),
    ("metrics", ("prometheus_client/", "serving/metrics.py")),
    ("log append (commit, awaited)", ("events/log/", "sqlalchemy/", "sqlite3/", "psycopg/")),
    ("live state (read, step, write)", ("serving/live.py", "serving/state/", "redis/")),
    ("pipeline (generators, rules, diversity)", ("nextbest/recommend/", "serving/recommend.py")),
    ("auth", ("serving/auth.py", "serving/deps.py")),
    ("event validation", ("serving/schemas.py", "serving/ingest.py")),
    ("response serialisation", ("serialize_response", "jsonable_encoder", "render (starlette")),
    ("request parsing and validation", ("pydantic", "request_body_to_args", "solve_dependencies",
                                        "request_params_to_args", "json/")),
    ("route handlers (other)", ("serving/routes/",)),
    ("HTTP, routing, middleware", ("uvicorn/", "starlette/", "fastapi/", "httptools", "h11/",
                                   "anyio/")),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop/")),
]  # fmt: skip


def worker_pids(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            command = (entry / "cmdline").read_bytes()
            if int(stat[1]) == parent and b"spawn_main" in command:  # not the resource tracker
                children.append(int(entry.name))
    return sorted(children)


# Innermost frames that wait rather than compute: py-spy counts a thread blocked in a socket
# read of the Redis client as running, but it spends no CPU there (the worker's CPU seconds
# say so). Such samples are the event loop blocked on a Redis reply: wall time, not CPU.
WAITS: list[tuple[str, tuple[str, ...]]] = [
    ("waiting: Redis reply", ("read_from_socket", "_socket_can_read", "recv_into", "(socket")),
    ("waiting: a lock or a thread", ("wait (threading", "acquire", "_wait_for_tstate_lock")),
]


def layer_of(frames: list[str]) -> str:
    if frames:
        for layer, patterns in WAITS:
            if any(p in frames[-1] for p in patterns):
                return layer
    for frame in reversed(frames):
        for layer, patterns in LAYERS:
            if any(p in frame for p in patterns):
                return layer
    return "other"


THREADS = {
    "event-log-writer": "group commit writer",
    "served-recorder": "served-list writer",
    "refresher": "catalog and live-count refresh",
}


def classify(raw: Path) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """(busy samples of the event loop's thread by layer, busy samples of the background
    threads by purpose) from py-spy's raw (collapsed) output, idle samples left out."""
    loop: collections.Counter[str] = collections.Counter()
    background: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        thread, *frames = stack.split(";")
        name = thread.split(":", 1)[1].strip()
        if name == "MainThread":
            loop[layer_of(frames)] += count
        else:
            background[THREADS.get(name, "other threads")] += count
    return loop, background


def profiled(
    home: Path, workers: list[int], seconds: float, server: int, load: Any
) -> tuple[dict[str, Any], collections.Counter[str], collections.Counter[str], int, float]:
    """Run the coroutine `load()` while py-spy records every worker: (its result, the loop's
    busy samples by layer, background samples, the loop's idle samples, server CPU s)."""
    spies = []
    for pid in workers:
        out = home / f"profile-{pid}-{time.monotonic_ns()}.txt"
        command = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                   "--rate", str(RATE), "--threads", "--nonblocking", "--format", "raw",
                   "--output", str(out), "--duration", str(int(seconds + 2))]  # fmt: skip
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        spies.append((spy, out))
    time.sleep(1.0)
    cpu_before = cpu_seconds({server})[1]
    result = uvloop.run(load())
    cpu = cpu_seconds({server})[1] - cpu_before
    loop: collections.Counter[str] = collections.Counter()
    background: collections.Counter[str] = collections.Counter()
    for spy, out in spies:
        _, errors = spy.communicate(timeout=60)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed: {errors.decode()[-2000:]}")
        a, b = classify(out)
        loop += a
        background += b
    # Without --idle, py-spy records a thread only while it runs (or waits on a socket it
    # does not count as idle); the loop's idle time is what its samples do not cover.
    idle = max(0, int(len(spies) * RATE * (seconds + 2)) - sum(loop.values()))
    return result, loop, background, idle, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sample-sessions", type=int, default=20_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--placement", default="product")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="nextbest-profile-"))
    _, items, catalog = served_sample(home, args.sample_sessions)
    with running_server(home, args.redis_url, name="nextbest-profile") as (server, port):
        result: dict[str, Any] = {"machine": machine(), "load_before": load(), "home": str(home)}
        result |= {"rate": args.rate, "seconds": args.seconds, "placement": args.placement}
        result["command"] = " ".join(["python benchmarks/profile_serving.py", *sys.argv[1:]])
        upload_catalog(port, catalog)
        wait_for_neighbours(home)
        time.sleep(5)  # both workers' item tables
        workers = worker_pids(server.pid)
        # A warm-up run, unprofiled: first requests build caches.
        uvloop.run(recommendations_at_rate(port, items, args.rate, 3.0, 1.0, args.placement))
        run, loop, background, idle, cpu = profiled(
            home, workers, args.seconds, server.pid,
            lambda: recommendations_at_rate(
                port, items, args.rate, args.seconds, 0.0, args.placement
            ),
        )  # fmt: skip
        pairs = args.rate * args.seconds
        result["pairs"] = {
            "server_cpu_ms_per_pair": round(1000 * cpu / pairs, 3),
            "recommendation": run["recommendation"],
            "event": run["event"],
            "loop_samples": dict(loop),
            "loop_idle_samples": idle,
            "background_samples": dict(background),
        }
        run, loop, background, idle, cpu = profiled(
            home, workers, args.seconds, server.pid,
            lambda: events_flat_out(port, items, args.seconds, 100),
        )  # fmt: skip
        result["events"] = {
            "server_cpu_us_per_event": round(1e6 * cpu / run["events_acknowledged"], 1),
            "events_per_s": run["events_per_s"],
            "loop_samples": dict(loop),
            "loop_idle_samples": idle,
            "background_samples": dict(background),
        }
    text = markdown(result)
    print(text)
    save_result("serving_profile", result)
    if args.write_docs:
        write_docs(text, BEGIN, END, "Serving: where a worker's time goes")


def markdown(result: dict[str, Any]) -> str:
    m, pairs, events = result["machine"], result["pairs"], result["events"]
    lines = [
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), load before "
        f"{result['load_before']}, by",
        "",
        f"    {result['command']}",
        "",
        f"py-spy at {RATE} Hz on both workers of `nextbest serve --workers 2` (bench_serving.py's "
        "model, catalog, Redis and SQLite), in two loads of "
        f"{result['seconds']:.0f} s: `{result['placement']}` recommendations at "
        f"{result['rate']:.0f}/s each after its event (server CPU "
        f"{pairs['server_cpu_ms_per_pair']} ms per pair, recommendation p50 / p99 "
        f"{pairs['recommendation']['p50_ms']} / {pairs['recommendation']['p99_ms']} ms), and "
        f"events in batches of 100 as fast as they are acknowledged "
        f"({events['events_per_s']:,}/s, {events['server_cpu_us_per_event']} us of server CPU "
        "per event). A busy sample of the event loop's thread goes to the innermost layer it "
        "is in; a sample blocked in a Redis socket read or on a lock is waiting, which py-spy "
        "counts as running but costs no CPU; `ms` spreads the measured server CPU over the "
        "samples that compute (py-spy's own cost included, so the sum is above an "
        "unprofiled run's).",
        "",
        "| where | pairs: share of busy | ms per pair | events: share of busy | us per event |",
        "|---|---|---|---|---|",
    ]
    names: list[str] = []
    for part in (pairs, events):
        for key in ("loop_samples", "background_samples"):
            for name in sorted(part[key], key=lambda n: -part[key][n]):
                label = ("event loop: " if key == "loop_samples" else "background: ") + name
                if label not in names:
                    names.append(label)

    def cell(part: dict[str, Any], label: str, per: float) -> tuple[str, str]:
        """(share of the busy samples, CPU per unit): the CPU is spread over the samples
        that compute, not over those that wait."""
        busy = sum(part["loop_samples"].values()) + sum(part["background_samples"].values())
        waiting = sum(c for n, c in part["loop_samples"].items() if n.startswith("waiting"))
        kind, _, name = label.partition(": ")
        key = "loop_samples" if kind == "event loop" else "background_samples"
        count = part[key].get(name, 0)
        if name.startswith("waiting"):
            return f"{count / busy:.1%}", "(no CPU)"
        return f"{count / busy:.1%}", f"{per * count / (busy - waiting):.2f}"

    for label in names:
        a = cell(pairs, label, pairs["server_cpu_ms_per_pair"])
        b = cell(events, label, events["server_cpu_us_per_event"])
        lines.append(f"| {label} | {a[0]} | {a[1]} | {b[0]} | {b[1]} |")
    idle = []
    for part, name in ((pairs, "pairs"), (events, "events")):
        total = sum(part["loop_samples"].values()) + part["loop_idle_samples"]
        idle.append(f"{part['loop_idle_samples'] / total:.0%} of the time under the {name} load")
    lines += ["", "The event loop was idle " + ", ".join(idle) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
