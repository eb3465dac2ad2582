"""Every baseline on the three public session splits; writes the table in docs/benchmarks.md.

    .venv/bin/python benchmarks/run_baselines.py [--datasets rsc15_100k diginetica retailrocket]
        [--models pop spop covisit sknn vsknn stan vstan] [--shared ../shared/datasets]

Next-event protocol, conservative ties, all training items ranked. Each row also gives the
reference figure measured with the authors' own code where the issue names one, so a reader sees
ours and theirs side by side from the same command.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from machine_info import cpu_name
from nextbest.cli.models import MODELS, build_model
from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import EvalConfig, evaluate_next_event
from nextbest.evaluation.report import result_record
from nextbest.events.io import read_events

ROOT = Path(__file__).resolve().parents[1]
SPLITS = {
    "rsc15_100k": ("train_full.tsv", "test.tsv"),
    "diginetica": ("train.tsv", "test.tsv"),
    "retailrocket": ("train.tsv", "test.tsv"),
}
# Recall@20 / MRR@20 measured with the authors' code on this kind of machine (issue anchors).
REFERENCE: dict[tuple[str, str], tuple[float, float]] = {
    ("vsknn", "rsc15_100k"): (0.6743, 0.3633),
    ("vsknn", "retailrocket"): (0.5663, 0.2884),
    ("vsknn", "diginetica"): (0.5164, 0.1840),
    ("stan", "rsc15_100k"): (0.6849, 0.3728),
    ("stan", "retailrocket"): (0.5595, 0.2885),
    ("stan", "diginetica"): (0.5074, 0.1832),
    ("gru4rec", "rsc15_100k"): (0.6774, 0.3554),
    ("gru4rec", "diginetica"): (0.4741, 0.1471),
}
BEGIN, END = "<!-- baselines:begin -->", "<!-- baselines:end -->"


def run(dataset: str, shared: Path, names: list[str]) -> list[dict[str, Any]]:
    train_file, test_file = SPLITS[dataset]
    train = Sessions.from_events(read_events(shared / dataset / train_file))
    test_events = read_events(shared / dataset / test_file)
    test = Sessions.from_events(test_events, item_ids=train.item_ids, min_session_length=2)
    rows = []
    for name in names:
        model = build_model(name, {})
        started = time.perf_counter()
        model.fit(train)
        fit_seconds = time.perf_counter() - started
        result = evaluate_next_event(model, test, EvalConfig(), train_support=train.item_support())
        record = result_record(name, {}, result, fit_seconds)
        record["dataset"] = dataset
        rows.append(record)
        print(json.dumps(record), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        "| dataset | model | Recall@20 | MRR@20 | reference R@20 / MRR@20 | Recall@5 | MRR@5 "
        "| NDCG@20 | coverage@20 | fit s | eval s |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in rows:
        ref = REFERENCE.get((r["model"], r["dataset"]))
        ref_text = f"{ref[0]:.4f} / {ref[1]:.4f}" if ref else ""
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['recall@20']:.4f} | {r['mrr@20']:.4f} "
            f"| {ref_text} | {r['recall@5']:.4f} | {r['mrr@5']:.4f} | {r['ndcg@20']:.4f} "
            f"| {r['coverage@20']:.3f} | {r['fit_seconds']:.1f} | {r['eval_seconds']:.1f} |"
        )
    return "\n".join(lines)


def write_docs(rows: list[dict[str, Any]], command: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    body = (
        f"{BEGIN}\nMeasured {stamp} on {cpu_name()} with {torch.get_num_threads()} "
        f"torch threads, Python {platform.python_version()}, by\n\n    {command}\n\n"
        f"{table(rows)}\n{END}"
    )
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(head + body + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument("--models", nargs="+", default=[m for m in MODELS if m != "gru4rec"])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--no-docs", action="store_true", help="print only")
    args = parser.parse_args()
    if not args.shared.exists():
        sys.exit(f"datasets not found at {args.shared}: pass --shared PATH")
    rows = [row for dataset in args.datasets for row in run(dataset, args.shared, args.models)]
    if not args.no_docs:
        write_docs(rows, "python benchmarks/run_baselines.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
