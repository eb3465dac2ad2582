"""GRU4Rec trained by two processes (torchrun, DDP) against one, on rsc15_100k: quality and time.

    .venv/bin/python benchmarks/bench_ddp.py                       # seeds 42 and 1, 10 epochs
    .venv/bin/python benchmarks/bench_ddp.py --seeds 42 1 2 --docs # and write docs/benchmarks.md
    .venv/bin/python benchmarks/bench_ddp.py --scaling --epochs 2 --docs  # how it scales

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

`--scaling` asks where data parallelism starts to pay: one process against two at mini-batches
of 32 (the authors'), 256 and 1,024 rows (seed 42), beside what one gloo all-reduce between
two processes on this host costs, for a tiny message and for each batch's gradients.
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

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import machine_info
from bench_gru4rec import DATASETS, REFERENCE, git_revision
from docs_section import replace_section
from nextbest.models.gru4rec import GRU4RecConfig

BEGIN, END = "<!-- ddp:begin -->", "<!-- ddp:end -->"
SCALING_BEGIN, SCALING_END = "<!-- ddp-scaling:begin -->", "<!-- ddp-scaling:end -->"
SCALING_BATCHES = (32, 256, 1024)
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


def run_once(
    kind: str, dataset: str, seed: int, epochs: int, batch: int | None = None
) -> dict[str, Any]:
    folder = DATASETS / dataset
    reference = REFERENCE[dataset]
    config: GRU4RecConfig = reference["config"]
    threads = 2 if kind == RUNS[1] else 1
    params = [*params_of(config), "--param", f"seed={seed}", "--param", f"threads={threads}"]
    params += ["--param", f"n_epochs={epochs}"]
    if batch is not None:  # the last --param of a name wins
        params += ["--param", f"batch_size={batch}"]
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
        "batch": batch or config.batch_size,
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


def gradient_floats(config: GRU4RecConfig, batch: int) -> int:
    """The numbers one step all-reduces: the dense weights' gradients and those of the gathered
    item rows (models/gru4rec/distributed.py): every input row and every column."""
    from nextbest.models.gru4rec.network import GRU4RecNet

    net = GRU4RecNet(10, config)
    tables = {"item_weights", "item_bias", "embedding"}
    dense = sum(p.numel() for name, p in net.named_parameters() if name not in tables)
    columns = batch + config.n_sample
    width = config.layers[-1]
    rows = batch + columns if config.input_mode == "shared" else columns
    return dense + columns + rows * width + (batch * config.embedding if net.embedding else 0)


def _allreduce_rank(rank: int, port: int, sizes: list[int], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    timings = {}
    for size in sizes:
        flat = torch.zeros(size)
        for _ in range(50):  # warm
            dist.all_reduce(flat)
        started = time.perf_counter()
        for _ in range(1000):
            dist.all_reduce(flat)
        timings[size] = (time.perf_counter() - started) / 1000 * 1e3
    dist.destroy_process_group()
    if rank == 0:
        Path(out).write_text(json.dumps(timings))


def allreduce_ms(sizes: list[int]) -> dict[int, float]:
    """Milliseconds per all-reduce of each size (float32) between two gloo processes here."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "timings.json"
        port = 29_500 + os.getpid() % 1_000
        mp.start_processes(
            _allreduce_rank, args=(port, sizes, str(out)), nprocs=2, start_method="spawn"
        )
        return {int(k): v for k, v in json.loads(out.read_text()).items()}


def scaling(args: argparse.Namespace) -> None:
    config: GRU4RecConfig = REFERENCE[args.dataset]["config"]
    rows = []
    for batch in SCALING_BATCHES:
        for kind in (RUNS[0], RUNS[2]):
            row = run_once(kind, args.dataset, 42, args.epochs, batch)
            print(json.dumps(row), flush=True)
            rows.append(row)
    floats = {batch: gradient_floats(config, batch) for batch in SCALING_BATCHES}
    load_before = os.getloadavg()[0]
    timings = allreduce_ms([1_000, *floats.values()])
    lines = [
        "| mini-batch | 1 process, fit s | 2 processes, fit s | 2 against 1 | MRR@20, 1 / 2 "
        "| numbers all-reduced a step | one all-reduce, ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch in SCALING_BATCHES:
        one, two = (r for r in rows if r["batch"] == batch)
        lines.append(
            f"| {batch} | {one['fit_seconds']} | {two['fit_seconds']} | "
            f"{two['fit_seconds'] / one['fit_seconds']:.2f}x | {one['mrr@20']:.4f} / "
            f"{two['mrr@20']:.4f} | {floats[batch]:,} | {timings[floats[batch]]:.2f} |"
        )
    info = {**machine_info.machine(), "commit": git_revision()}
    loads = ", ".join(str(r["load_before"]) for r in rows)
    header = (
        f"{info['cpu']}, {info['cores']} cores, {time.strftime('%Y-%m-%d')}, commit "
        f"{info['commit']}; GRU4Rec on {args.dataset}, the authors' setting but for the "
        f"mini-batch, {args.epochs} epochs, seed 42; `2 against 1` is the fit time of two "
        "processes of one thread over one process of one thread. One gloo all-reduce of "
        f"1,000 numbers took {timings[1_000]:.2f} ms (load {load_before:.2f}); the runs' "
        f"1-minute loads as they started: {loads}."
    )
    command = f"    .venv/bin/python benchmarks/bench_ddp.py --scaling --epochs {args.epochs}"
    block = f"{command}\n\n{header}\n\n" + "\n".join(lines) + "\n"
    print(block)
    if args.docs:
        replace_section(
            block, SCALING_BEGIN, SCALING_END, "GRU4Rec across processes: where it pays", DOCS
        )


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
    parser.add_argument(
        "--scaling", action="store_true", help="one process against two by mini-batch size"
    )
    args = parser.parse_args()
    if args.scaling:
        scaling(args)
        return
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
