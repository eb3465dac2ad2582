"""Preparing a log in memory (`prepare`) against streaming it (`prepare_parquet`): wall time
and peak memory, each in a process of its own, on a demo-shop log written as Parquet.

    .venv/bin/python benchmarks/bench_prepare_stream.py --write-docs    # 1M, 5M and 10M events

Both prepare the same way (30-minute sessions, items with 5+ events, sessions with 2+, the
last day as the test) and must give the same number of training and test events. Peak memory
is the child process's maximum resident set (`getrusage`), Python and Polars included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docs_section import replace_section
from machine_info import machine

BEGIN, END = "<!-- prepare-stream:begin -->", "<!-- prepare-stream:end -->"

CHILD = """
import json, resource, sys, time
from pathlib import Path
import polars as pl
from nextbest.data.prepare import PrepareConfig, prepare
from nextbest.data.prepare_stream import prepare_parquet
mode, source, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
config = PrepareConfig(test_days=1.0)
started = time.perf_counter()
if mode == "memory":
    prepared = prepare(pl.read_parquet(source), config)
    prepared.train.write_parquet(out / "train.parquet")
    prepared.test.write_parquet(out / "test.parquet")
    counts = (prepared.train.height, prepared.test.height)
else:
    done = prepare_parquet(source, out, config)
    counts = (done.train_events, done.test_events)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
print(json.dumps({"seconds": seconds, "peak_mib": peak, "train": counts[0], "test": counts[1]}))
"""


def run(mode: str, source: Path, out: Path) -> dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(source), str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(events: int, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        source = tmp / "events.parquet"
        subprocess.run(
            [sys.executable, "-c",
             "import sys; from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop;"
             "shop = generate_demo_shop(DemoShopConfig(seed=int(sys.argv[1]), "
             "n_events=int(sys.argv[2]))); shop.events.write_parquet(sys.argv[3])",
             str(seed), str(events), str(source)],
            check=True,
        )  # fmt: skip
        size = source.stat().st_size / 2**20
        memory = run("memory", source, tmp / "memory")
        streamed = run("stream", source, tmp / "stream")
    assert (memory["train"], memory["test"]) == (streamed["train"], streamed["test"])
    return {"events": events, "mib": size, **{f"memory_{k}": v for k, v in memory.items()},
            **{f"stream_{k}": v for k, v in streamed.items()}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", default="1000000,5000000,10000000", help="sizes, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = [measure(int(n), args.seed) for n in args.events.split(",")]
    m = machine()
    lines = [
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), load average {load} before, "
        f"by `python benchmarks/bench_prepare_stream.py --events {args.events}`. Demo shops of "
        f"seed {args.seed}; at each size both give the same training and test events. Peak "
        "memory: the preparing process's maximum resident set.",
        "",
        "| events (Parquet) | training / test events | in memory: s, peak | by partitions: s, "
        "peak |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {int(r['events']):,} ({r['mib']:.0f} MiB) | {int(r['memory_train']):,} / "
            f"{int(r['memory_test']):,} | {r['memory_seconds']:.1f}, "
            f"{r['memory_peak_mib']:,.0f} MiB | {r['stream_seconds']:.1f}, "
            f"{r['stream_peak_mib']:,.0f} MiB |"
        )
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        replace_section(text, BEGIN, END, "Preparing a log larger than memory")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
