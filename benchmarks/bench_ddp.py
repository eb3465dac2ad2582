"""GRU4Rec trained by two processes (torchrun, DDP) against one, on rsc15_100k: quality and time.

    .venv/bin/python benchmarks/bench_ddp.py                       # seeds 42 and 1, 10 epochs
    .venv/bin/python benchmarks/bench_ddp.py --seeds 42 1 2 --docs # and write docs/benchmarks.md

Per seed, back to back, each through the CLI (`nextbest evaluate --json`, the authors'
rsc15_100k setting of bench_gru4rec.py, next-event protocol, conservative ties):

* one process, one thread (`--param threads=1`);
* one process, two threads (`--param threads=2`): what one process makes of both cores;
* `torchrun --standalone --nproc-per-node 2 -m nextbest evaluate ...`: two processes of one
  thread each, every mini-batch's rows split between them (gradients summed by all-reduce).

Two processes compute the gradient one process computes (models/gru4rec/distributed.py), up to
the order of float additions. Training amplifies such rounding differences over thousands of
steps, so after 10 epochs two processes give another model of the same quality, not the same
model: compare them across seeds. Run it alone: the two cores are what is split.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import machine_info
from bench_gru4rec import DATASETS, REFERENCE, git_revision
from docs_section import replace_section
from nextbest.models.gru4rec import GRU4RecConfig

BEGIN, END = "<!-- ddp:begin -->", "<!-- ddp:end -->"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
RUNS = ("1 process, 1 thread", "1 process, 2 threads", "torchrun, 2 processes x 1 thread")


def params_of(config: GRU4RecConfig) -> list[str]:
    """`--param` pairs for every setting that differs from the default config."""
    default = GRU4RecConfig()
    pairs = []
    for field in fields(GRU4RecConfig):
        value = getattr(config, field.name)
        if value == getattr(default, field.name):
            continue
        text = ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
        pairs += ["--param", f"{field.name}={text}"]
    return pairs


def run_once(kind: str, dataset: str, seed: int, epochs: int) -> dict[str, Any]:
    folder = DATASETS / dataset
    reference = REFERENCE[dataset]
    config: GRU4RecConfig = reference["config"]
    threads = 2 if kind == RUNS[1] else 1
    params = [*params_of(config), "--param", f"seed={seed}", "--param", f"threads={threads}"]
    params += ["--param", f"n_epochs={epochs}"]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        evaluate = [
            "evaluate", "--model", "gru4rec", "--train", str(folder / reference["train"]),
            "--test", str(folder / "test.tsv"), "--cutoff", "5", "--cutoff", "20",
            "--json", str(out), *params,
        ]  # fmt: skip
        if kind == RUNS[2]:
            torchrun = Path(sys.executable).with_name("torchrun")
            launcher = [str(torchrun), "--standalone", "--nproc-per-node", "2"]
            command = [*launcher, "-m", "nextbest", *evaluate]
        else:
            command = [sys.executable, "-m", "nextbest", *evaluate]
        environment = {**os.environ, "OMP_NUM_THREADS": "1"}
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}"
            )
        record = json.loads(out.read_text())
    return {
        "run": kind,
        "seed": seed,
        "recall@20": round(record["recall@20"], 4),
        "mrr@20": round(record["mrr@20"], 4),
        "recall@5": round(record["recall@5"], 4),
        "mrr@5": round(record["mrr@5"], 4),
        "fit_seconds": round(record["fit_seconds"], 1),
        "command_seconds": round(wall, 1),
        "load_before": round(load_before, 2),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| run | seed | Recall@20 | MRR@20 | Recall@5 | MRR@5 | fit seconds | load before |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['seed']} | {r['recall@20']:.4f} | {r['mrr@20']:.4f} | "
            f"{r['recall@5']:.4f} | {r['mrr@5']:.4f} | {r['fit_seconds']} | {r['load_before']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="rsc15_100k", choices=["rsc15_100k"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--runs",
        nargs="+",
        type=int,
        choices=[1, 2, 3],
        default=[1, 2, 3],
        help="which of the three runs (1: one thread, 2: two threads, 3: torchrun)",
    )
    parser.add_argument("--docs", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        for kind in (RUNS[k - 1] for k in args.runs):
            row = run_once(kind, args.dataset, seed, args.epochs)
            print(json.dumps(row), flush=True)
            rows.append(row)
    info = {**machine_info.machine(), "commit": git_revision()}
    config = asdict(REFERENCE[args.dataset]["config"])
    header = (
        f"{info['cpu']}, {info['cores']} cores, {time.strftime('%Y-%m-%d')}, commit "
        f"{info['commit']}; GRU4Rec on {args.dataset} (the authors' setting: "
        f"{config['loss']}, {config['layers'][0]} units, batch {config['batch_size']}, "
        f"{config['n_sample']} samples), {args.epochs} epochs; `load before` is the 1-minute "
        "load average as each run started."
    )
    options = ["--seeds", *map(str, args.seeds), "--epochs", str(args.epochs)]
    options += ["--runs", *map(str, args.runs)]
    command = "    .venv/bin/python benchmarks/bench_ddp.py " + " ".join(options)
    block = f"{command}\n\n{header}\n\n{table(rows)}\n"
    print(block)
    if args.docs:
        replace_section(block, BEGIN, END, "GRU4Rec across processes (torchrun)", DOCS)


if __name__ == "__main__":
    main()
