"""Evaluation results as JSON (for machines) and a Markdown report with a plot (for people)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np

from nextbest.evaluation.next_event import EvalResult

MAX_POSITION_BUCKET = 10  # positions beyond this share one bar ("10+")


def result_record(
    model: str,
    params: Mapping[str, Any],
    result: EvalResult,
    fit_seconds: float,
    protocol: str = "next-event",
) -> dict[str, Any]:
    """The stable JSON shape of one evaluation (what `nextbest evaluate --json` writes)."""
    record: dict[str, Any] = {
        "model": model,
        "params": dict(params),
        "protocol": protocol,
        "ties": result.ties,
        "cases": result.cases,
    }
    record.update({key: round(value, 6) for key, value in result.metrics().items()})
    record["fit_seconds"] = round(fit_seconds, 3)
    record["eval_seconds"] = round(result.eval_seconds, 3)
    record.update(result.extra)
    return record


def write_json(records: Sequence[dict[str, Any]] | dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2) + "\n")


def summary_rows(
    records: Sequence[dict[str, Any]], cutoffs: Sequence[int]
) -> tuple[list[str], list[list[str]]]:
    """The header and cells of the summary table (shared by Markdown and the terminal)."""
    header = ["model", "cases"]
    for k in cutoffs:
        header += [f"Recall@{k}", f"MRR@{k}"]
    last = cutoffs[-1]
    header += [f"NDCG@{last}", f"coverage@{last}", "fit s", "eval s"]
    rows = []
    for r in records:
        cells = [str(r["model"]), str(r["cases"])]
        for k in cutoffs:
            cells += [f"{r[f'recall@{k}']:.4f}", f"{r[f'mrr@{k}']:.4f}"]
        cells += [
            f"{r[f'ndcg@{last}']:.4f}",
            f"{r[f'coverage@{last}']:.3f}",
            f"{r['fit_seconds']:.1f}",
            f"{r['eval_seconds']:.1f}",
        ]
        rows.append(cells)
    return header, rows


def markdown_table(records: Sequence[dict[str, Any]], cutoffs: Sequence[int]) -> str:
    header, rows = summary_rows(records, cutoffs)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def write_report(
    title: str,
    records: Sequence[dict[str, Any]],
    results: Mapping[str, EvalResult],
    out_dir: Path,
) -> Path:
    """Write `report.md`, `report.png` and `results.json` into `out_dir`; return the .md path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cutoffs = next(iter(results.values())).cutoffs
    write_json(list(records), out_dir / "results.json")
    _plot(results, out_dir / "report.png")
    text = [
        f"# {title}",
        "",
        "Next-event protocol: every event of every test session after its first is predicted from "
        f"the events before it, ranked against all training items, ties `{records[0]['ties']}`.",
        "",
        markdown_table(records, cutoffs),
        "",
        "![Recall and MRR by cutoff, and Recall by position in the session](report.png)",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(text))
    return path


def _plot(results: Mapping[str, EvalResult], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for number, (name, result) in enumerate(results.items()):
        color = f"C{number % 10}"  # one colour per model in both panels
        metrics = result.metrics()
        ks = list(result.cutoffs)
        recall = [metrics[f"recall@{k}"] for k in ks]
        left.plot(ks, recall, marker="o", color=color, label=f"{name} Recall")
        mrr = [metrics[f"mrr@{k}"] for k in ks]
        left.plot(ks, mrr, marker="x", ls="--", color=color, label=f"{name} MRR")
        buckets = np.minimum(result.positions, MAX_POSITION_BUCKET)
        k = max(result.cutoffs)
        hits = result.ranks <= k
        xs = np.arange(1, MAX_POSITION_BUCKET + 1)
        ys = [hits[buckets == x].mean() if (buckets == x).any() else np.nan for x in xs]
        right.plot(xs, ys, marker="o", color=color, label=name)
    left.set(xlabel="cutoff K", ylabel="score", title="Recall@K and MRR@K")
    right.set(
        xlabel="events seen in the session (10 = 10 or more)",
        ylabel=f"Recall@{max(next(iter(results.values())).cutoffs)}",
        title="Accuracy by session position",
    )
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
