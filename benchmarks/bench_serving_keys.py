"""What browser keys, user tokens and rate limits cost a served request: two servers, the same
model, catalog and load, measured in turns.

    .venv/bin/python benchmarks/bench_serving_keys.py [--runs 3] [--write-docs]

bench_serving.py's setup (GRU4Rec with 100 units over the 43k Diginetica items, the synthetic
catalog, `nextbest serve --workers 2`, Redis state, SQLite log), twice, in two data folders:
- **server keys**: the shop's backend with its admin key, rate limits off (the defaults);
- **browser key**: the shop's pages with a browser key and a user token, every one of the six
  rate limits on (per address, per key, the browser address limits; set far above the load,
  so every request goes through the buckets and none is refused).
The load is bench_serving's `home` pairs at 300/s (an event, then the session's list), every
session a logged-in user's: its events and requests name the user, with the user's token on
the browser side. So both sides serve the same work, and the difference is the checks: the
token's HMAC, the session-owner query per event batch, the buckets. The runs alternate
(server, browser, server, ...), since this VM's speed drifts from minute to minute; then each
side's events in batches of 100 flat out (anonymous sessions).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvloop

from bench_serving import (
    KEY,
    events_flat_out,
    others_cpu,
    quiet_collector,
    recommendations_at_rate,
    running_server,
    save_result,
    served_sample,
    upload_catalog,
    wait_for_neighbours,
)
from docs_section import replace_section
from machine_info import load_summary, machine
from nextbest.user_tokens import sign_user_token

BROWSER_KEY = "bench-browser-key-0001"
SECRET = "bench-identity-secret-0123456789abcdef"
FAR_ABOVE = "1000000"  # a limit no run reaches: the buckets work, nothing is refused
LIMITS = {
    f"NEXTBEST_RATE_LIMIT_{name}": FAR_ABOVE
    for name in (
        "REQUESTS_PER_ADDRESS",
        "REQUESTS_PER_KEY",
        "EVENTS_PER_ADDRESS",
        "EVENTS_PER_KEY",
        "BROWSER_REQUESTS_PER_ADDRESS",
        "BROWSER_EVENTS_PER_ADDRESS",
    )
}
BEGIN, END = "<!-- serving-keys:begin -->", "<!-- serving-keys:end -->"


def server_user(session: str) -> tuple[str, str]:
    return f"u-{session}", ""


def browser_user(session: str) -> tuple[str, str]:
    user = f"u-{session}"
    return user, f"X-User-Token: {sign_user_token(user, SECRET, 3600)}\r\n"


SIDES: dict[str, dict[str, Any]] = {
    "server keys": {"key": KEY, "users": server_user, "env": {}},
    "browser key": {
        "key": BROWSER_KEY,
        "users": browser_user,
        "env": {"NEXTBEST_BROWSER_KEYS": BROWSER_KEY, "NEXTBEST_IDENTITY_SECRETS": SECRET} | LIMITS,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--logged-in-rate", type=float, default=100.0, help="pairs/s of logged-in users"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per side, alternating")
    parser.add_argument("--sample-sessions", type=int, default=20_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    first = Path(tempfile.mkdtemp(prefix="nextbest-bench-"))
    _, items, catalog = served_sample(first, args.sample_sessions)
    second = Path(tempfile.mkdtemp(prefix="nextbest-bench-"))
    shutil.copytree(first / "models", second / "models")
    result: dict[str, Any] = {"machine": machine(), "items": len(items), "load": {}}
    result["other_cpu"] = {}
    result["command"] = " ".join(["python benchmarks/bench_serving_keys.py", *sys.argv[1:]])
    servers: dict[str, tuple[Any, int]] = {}
    with contextlib.ExitStack() as stack:
        for (name, side), home in zip(SIDES.items(), (first, second), strict=True):
            servers[name] = stack.enter_context(running_server(home, args.redis_url, side["env"]))
            upload_catalog(servers[name][1], catalog)
            wait_for_neighbours(home)
        time.sleep(5)  # the workers' refreshers read the catalog
        result["workloads"] = {}
        for workload, rate in (("anonymous", args.rate), ("logged-in", args.logged_in_rate)):
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SIDES}
            for k in range(args.runs):
                for name, side in SIDES.items():
                    server, port = servers[name]
                    label = f"{workload} {name} #{k + 1}"
                    ours = {os.getpid(), server.pid}
                    users = side["users"] if workload == "logged-in" else None
                    with others_cpu(result, label, ours, server.pid), quiet_collector():
                        load = recommendations_at_rate(
                            port, items, rate, args.seconds, 3.0, "home", side["key"], users
                        )
                        run = uvloop.run(load)
                    cpu = result["server_cpu_s"][label]
                    run["server_cpu_ms_per_pair"] = round(
                        1000 * cpu / (rate * (args.seconds + 3.0)), 3
                    )
                    runs[name].append(run)
            result["workloads"][workload] = {name: summary(runs[name]) for name in SIDES}
        result["events"] = {}
        for name, side in SIDES.items():
            server, port = servers[name]
            ours = {os.getpid(), server.pid}
            with others_cpu(result, f"events {name}", ours, server.pid), quiet_collector():
                result["events"][name] = uvloop.run(
                    events_flat_out(port, items, 8.0, 100, side["key"])
                )
    print(json.dumps(result, indent=2))
    save_result("serving-keys", result)
    text = markdown(result)
    print(text)
    if args.write_docs:
        replace_section(text, BEGIN, END, "Serving with browser keys")


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_p99 = sorted(runs, key=lambda r: r["recommendation"]["p99_ms"])
    return {
        "runs": runs,
        "median_run": by_p99[len(by_p99) // 2],
        "server_cpu_ms_per_pair": round(
            float(np.median([r["server_cpu_ms_per_pair"] for r in runs])), 3
        ),
        "errors": sum(r["errors"] for r in runs),
        "first_error": next((r["first_error"] for r in runs if r["errors"]), None),
    }


def markdown(result: dict[str, Any]) -> str:
    m, workloads = result["machine"], result["workloads"]
    rate = {w: sides["server keys"]["median_run"]["rate_per_s"] for w, sides in workloads.items()}
    errors = ", ".join(
        f"{w} {name} {side['errors']}"
        for w, sides in workloads.items()
        for name, side in sides.items()
    )
    lines = [
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
        f"torch {m['torch']}, by",
        "",
        f"    {result['command']}",
        "",
        "Two `nextbest serve --workers 2` over the same GRU4Rec (43,097 Diginetica items), "
        "Redis state and SQLite log, each with its own data folder; `home` pairs (an event, "
        f"then the session's list) from anonymous shoppers at {rate['anonymous']:g}/s, then "
        f"from logged-in users at {rate['logged-in']:g}/s (every event and request names the "
        "user; the browser side sends the user's token), the runs alternating between the "
        "sides. Server keys: the admin key, rate limits off (the defaults). Browser key: all "
        "six rate limits on, far above the load; "
        + load_summary(result["load"], result["other_cpu"])
        + f". Errors: {errors}.",
        "",
        "| what | server keys, limits off | browser key, limits on | change |",
        "|---|---|---|---|",
    ]

    def row(what: str, a: float, b: float, unit: str) -> str:
        return f"| {what} | {a:g} {unit} | {b:g} {unit} | {100 * (b / a - 1):+.1f}% |"

    def each(side: dict[str, Any]) -> str:
        return ", ".join(
            f"{r['recommendation']['p50_ms']} / {r['recommendation']['p99_ms']}"
            for r in side["runs"]
        )

    for workload, sides in workloads.items():
        a, b = sides["server keys"], sides["browser key"]
        what = f"{workload} at {rate[workload]:g}/s"
        for part in ("event", "recommendation"):
            for stat in ("p50_ms", "p99_ms"):
                lines.append(
                    row(
                        f"{what}: {part} {stat[:3]} (median run by p99)",
                        a["median_run"][part][stat],
                        b["median_run"][part][stat],
                        "ms",
                    )
                )
        lines.append(f"| {what}: each run's list p50 / p99 | {each(a)} ms | {each(b)} ms | |")
        lines.append(
            row(
                f"{what}: server CPU per pair (median of runs)",
                a["server_cpu_ms_per_pair"],
                b["server_cpu_ms_per_pair"],
                "ms",
            )
        )
    events = result["events"]
    lines.append(
        row(
            "events in batches of 100 (anonymous), 8 connections",
            events["server keys"]["events_per_s"],
            events["browser key"]["events_per_s"],
            "events/s",
        )
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
