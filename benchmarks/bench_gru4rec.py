"""GRU4Rec against the authors' own PyTorch code: accuracy and training time, one JSON row.

    .venv/bin/python benchmarks/bench_gru4rec.py --dataset rsc15_100k
    .venv/bin/python benchmarks/bench_gru4rec.py --dataset diginetica
    .venv/bin/python benchmarks/bench_gru4rec.py --dataset diginetica \
        --reference DIR --reference-python REFVENV/bin/python        # both, in this run

With `--reference`, the authors' code (a checkout of hidasib/GRU4Rec_PyTorch_Official, never
committed here) trains and evaluates first on the same split, parameters and machine, through
its own `run.py` (`-d cpu`, conservative ties, cut-offs 5, 10 and 20), in its own virtual
environment: it needs numpy < 2 and pandas < 2.2, which this project does not pin. Make one:

    python3 -m venv REFVENV && REFVENV/bin/pip install torch==2.13.0 'numpy<2' 'pandas<2.2' joblib

Then ours trains and evaluates, and the row holds both, each with its fit time, threads and
the load average around it, and the speed-up. Without `--reference`, the row compares our
metrics with those of an earlier run of the authors' code (REFERENCE below), and gives no
speed-up: a fit timed in another run may have run on another VM.

Trains with the reference parameterisation of the dataset, evaluates with the next-event
protocol (conservative ties), and prints one JSON object: our metrics, fit seconds and
training events/second, plus the machine's load, because the machine is shared: a fit timed
while other jobs run is slower than the code is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import machine_info
from docs_section import replace_section
from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import EvalConfig, evaluate_next_event
from nextbest.events.io import read_events
from nextbest.models.base import parse_config
from nextbest.models.gru4rec import GRU4Rec, GRU4RecConfig

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

# The reference runs: the authors' PyTorch GRU4Rec on this machine, same splits and protocol.
REFERENCE: dict[str, dict[str, Any]] = {
    "rsc15_100k": {
        "train": "train_full.tsv",
        "config": GRU4RecConfig(
            loss="cross-entropy",
            logq=1.0,
            constrained_embedding=True,
            layers=(100,),
            batch_size=32,
            dropout_p_embed=0.0,
            dropout_p_hidden=0.4,
            learning_rate=0.2,
            momentum=0.2,
            n_sample=2048,
            sample_alpha=0.5,
            n_epochs=10,
        ),
        "metrics": {"recall@20": 0.6774, "mrr@20": 0.3554, "recall@5": 0.5080, "mrr@5": 0.3372},
        "floor": {"recall@20": 0.67, "mrr@20": 0.35},
    },
    "diginetica": {
        "train": "train.tsv",
        "config": GRU4RecConfig(
            loss="bpr-max",
            elu_param=1.0,
            constrained_embedding=True,
            layers=(100,),
            batch_size=128,
            dropout_p_embed=0.5,
            dropout_p_hidden=0.3,
            learning_rate=0.05,
            momentum=0.15,
            n_sample=2048,
            sample_alpha=0.3,
            bpreg=0.9,
            n_epochs=3,
        ),
        "metrics": {"recall@20": 0.4741, "mrr@20": 0.1471},
        "floor": {"recall@20": 0.465, "mrr@20": 0.144},
    },
    # The authors' tuned RetailRocket setting (their paramfiles/retailrocket_bprmax_shared_best.py:
    # BPR-max, ELU 0.5, shared embedding, 224 units); their figures come from --reference.
    "retailrocket": {
        "train": "train.tsv",
        "config": GRU4RecConfig(
            loss="bpr-max",
            elu_param=0.5,
            constrained_embedding=True,
            layers=(224,),
            batch_size=80,
            dropout_p_embed=0.5,
            dropout_p_hidden=0.05,
            learning_rate=0.05,
            momentum=0.4,
            n_sample=2048,
            sample_alpha=0.4,
            bpreg=1.95,
            n_epochs=10,
        ),
        "metrics": {},
        "floor": {},
    },
}
BEGIN, END = "<!-- gru4rec:begin -->", "<!-- gru4rec:end -->"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def load_split(folder: Path, train_file: str) -> tuple[Sessions, Sessions]:
    train = Sessions.from_events(read_events(folder / train_file))
    test_events = read_events(folder / "test.tsv")
    test = Sessions.from_events(test_events, item_ids=train.item_ids, min_session_length=2)
    return train, test


def git_revision(folder: Path | None = None) -> str:
    """The short commit of the checkout at `folder` (this one by default); "" if unknown."""
    command = ["git", *(["-C", str(folder)] if folder else []), "rev-parse", "--short", "HEAD"]
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    return {**machine_info.machine(), "commit": git_revision()}


# Our parameter -> the authors' (run.py's `-ps`); the others (seed, threads, attributes...)
# have no counterpart there.
AUTHORS_PARAMETERS = (
    "loss", "constrained_embedding", "embedding", "elu_param", "layers", "n_epochs",
    "batch_size", "dropout_p_embed", "dropout_p_hidden", "learning_rate", "momentum",
    "n_sample", "sample_alpha", "bpreg", "logq",
)  # fmt: skip


def authors_parameter_string(config: GRU4RecConfig) -> str:
    """`config` as run.py's `-ps` string (layers joined by '/', booleans as True/False)."""
    if config.final_act is not None or config.attributes or config.batch_loss != "mean":
        raise ValueError(
            "final_act, attributes and batch_loss=sum have no counterpart in the authors' code"
        )
    parts = []
    for name in AUTHORS_PARAMETERS:
        value = getattr(config, name)
        text = "/".join(str(v) for v in value) if name == "layers" else str(value)
        parts.append(f"{name}={text}")
    return ",".join(parts)


def parse_authors_output(text: str) -> dict[str, Any]:
    """Fit seconds, evaluation seconds and Recall/MRR@N from run.py's printout."""
    fit = re.search(r"Total training time: ([0-9.]+)s", text)
    if fit is None:
        raise RuntimeError(f"the authors' run.py printed no training time:\n{text[-3000:]}")
    metrics: dict[str, float] = {}
    for cutoff, recall, mrr in re.findall(r"Recall@(\d+): ([0-9.]+) MRR@\d+: ([0-9.]+)", text):
        metrics[f"recall@{cutoff}"] = round(float(recall), 4)
        metrics[f"mrr@{cutoff}"] = round(float(mrr), 4)
    evaluation = re.search(r"Evaluation took ([0-9.]+)s", text)
    return {
        "fit_seconds": round(float(fit.group(1)), 1),
        "eval_seconds": round(float(evaluation.group(1)), 1) if evaluation else None,
        "metrics": metrics,
    }


def run_authors(
    code: Path, python: Path, folder: Path, train_file: str, config: GRU4RecConfig
) -> dict[str, Any]:
    """The authors' run.py on the split in `folder`, with `config`'s parameters, on the CPU
    with PyTorch's default threads (its best setting on 2 cores in earlier runs)."""
    if not (code / "run.py").exists() or not (code / "gru4rec_pytorch.py").exists():
        raise SystemExit(f"--reference {code}: no run.py and gru4rec_pytorch.py there")
    if not python.exists():
        raise SystemExit(f"--reference-python {python}: no such interpreter")
    command = [
        str(python), str(code / "run.py"), str(folder / train_file),
        "-ps", authors_parameter_string(config), "-t", str(folder / "test.tsv"),
        "-m", "5", "10", "20", "-e", "conservative", "-d", "cpu",
    ]  # fmt: skip
    load_before = os.getloadavg()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the authors' run.py failed:\n{(done.stdout + done.stderr)[-3000:]}")
    parsed = parse_authors_output(done.stdout)
    revision = git_revision(code)
    threads = subprocess.run(
        [str(python), "-c", "import torch; print(torch.get_num_threads())"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        **parsed,
        "source": f"authors' PyTorch GRU4Rec ({revision or 'unknown revision'}), this run",
        "threads": int(threads) if threads.isdigit() else None,
        "load_average": {"before_fit": load_before, "after_fit": os.getloadavg()},
        "command": " ".join(command),
    }


def run(
    dataset: str,
    data_dir: Path,
    overrides: dict[str, str],
    authors: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    reference = REFERENCE[dataset]
    config: GRU4RecConfig = reference["config"]
    if overrides:  # parsed (and validated) like the CLI's --param, then applied on top
        parsed = parse_config(GRU4RecConfig, overrides)
        config = replace(config, **{key: getattr(parsed, key) for key in overrides})
    measured = None
    if authors is not None:  # first, so that both run on the machine as it is now
        measured = run_authors(*authors, data_dir / dataset, reference["train"], config)
    train, test = load_split(data_dir / dataset, reference["train"])
    load_before = os.getloadavg()
    model = GRU4Rec(config)
    started = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - started
    load_after_fit = os.getloadavg()
    result = evaluate_next_event(model, test, EvalConfig(cutoffs=(5, 10, 20)))
    metrics = {k: round(v, 4) for k, v in result.metrics().items() if k[:3] in ("rec", "mrr")}
    trained_events = sum(stats.events for stats in model.history)
    # A speed-up only against a fit timed in this run: a fit timed in another run, maybe
    # on another VM, says nothing about speed.
    compared: dict[str, Any] = measured or {
        "metrics": reference["metrics"],
        "fit_seconds": None,
        "source": "authors' PyTorch GRU4Rec, an earlier run: same split and protocol",
    }
    reference_seconds = compared["fit_seconds"]
    return {
        "dataset": dataset,
        "config": asdict(config),
        "metrics": metrics,
        "cases": result.cases,
        "fit_seconds": round(fit_seconds, 1),
        "epoch_seconds": [round(stats.seconds, 1) for stats in model.history],
        "events_per_second": round(trained_events / fit_seconds),
        "eval_seconds": round(result.eval_seconds, 1),
        "threads": config.threads,
        "reference": compared,
        "speedup": round(reference_seconds / fit_seconds, 2) if reference_seconds else None,
        "meets_floor": all(metrics[k] >= v for k, v in reference["floor"].items()),
        "load_average": {"before_fit": load_before, "after_fit": load_after_fit},
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(REFERENCE), required=True)
    parser.add_argument("--data-dir", type=Path, default=DATASETS)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one GRU4Rec parameter (e.g. n_epochs=1 for a quick run)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        metavar="DIR",
        help="a checkout of the authors' code (hidasib/GRU4Rec_PyTorch_Official): run it "
        "first, in this run, on the same split and parameters",
    )
    parser.add_argument(
        "--reference-python",
        type=Path,
        metavar="PYTHON",
        help="the interpreter of the authors' code's own venv (numpy<2, pandas<2.2)",
    )
    parser.add_argument("--log", type=Path, help="append the JSON row to this file")
    parser.add_argument(
        "--docs",
        action="store_true",
        help="rewrite the GRU4Rec table in docs/benchmarks.md from --log",
    )
    args = parser.parse_args(argv)
    overrides = dict(p.split("=", 1) for p in args.param)
    if (args.reference is None) != (args.reference_python is None):
        parser.error("--reference and --reference-python go together")
    authors = (args.reference, args.reference_python) if args.reference else None
    row = run(args.dataset, args.data_dir, overrides, authors)
    row["command"] = "python benchmarks/bench_gru4rec.py " + " ".join(argv or sys.argv[1:])
    print(json.dumps(row))
    if args.log is not None:
        with args.log.open("a") as log:
            log.write(json.dumps(row) + "\n")
        if args.docs:
            rows = [json.loads(line) for line in args.log.read_text().splitlines() if line]
            write_docs(rows)
    return row


def write_docs(rows: list[dict[str, Any]]) -> None:
    """Replace the GRU4Rec section of docs/benchmarks.md with a table of `rows`."""
    lines = [
        "| dataset | layers | loss | epochs | Recall@20 | MRR@20 | reference R@20 / MRR@20 "
        "| fit s | reference fit s | speed-up | threads ours / reference "
        "| load before / after fit | command |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        # A reference run in the same run (--reference) ran these very parameters; the stored
        # figures ran one setting per dataset: compare only rows of that model size.
        same_run = "command" in r["reference"]
        comparable = same_run or list(r["config"]["layers"]) == list(
            REFERENCE[r["dataset"]]["config"].layers
        )
        ref = r["reference"]["metrics"] if comparable else {}
        ref_text = f"{ref['recall@20']:.4f} / {ref['mrr@20']:.4f}" if ref else ""
        if not same_run:  # a fit timed in another run, maybe on another VM: no speed-up
            r = {**r, "speedup": None, "reference": {**r["reference"], "fit_seconds": None}}
        load = r["load_average"]
        lines.append(
            f"| {r['dataset']} | {r['config']['layers']} | {r['config']['loss']} "
            f"| {r['config']['n_epochs']} | {r['metrics']['recall@20']:.4f} "
            f"| {r['metrics']['mrr@20']:.4f} | {ref_text} | {r['fit_seconds']} "
            f"| {r['reference']['fit_seconds'] or ''} | {r['speedup'] or ''} "
            f"| {r.get('threads', r['config']['threads'])} / "
            f"{r['reference'].get('threads') or ''} "
            f"| {load['before_fit'][0]:.1f} / {load['after_fit'][0]:.1f} | `{r['command']}` |"
        )
    replace_section("\n".join(lines), BEGIN, END, "GRU4Rec against the authors' code", DOCS)


if __name__ == "__main__":
    main(sys.argv[1:])
