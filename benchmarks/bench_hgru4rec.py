"""HGRU4Rec against GRU4Rec of the same size and the kNN baselines, on the user protocol.

    .venv/bin/python benchmarks/bench_hgru4rec.py --part demo --seeds 3 --docs
    .venv/bin/python benchmarks/bench_hgru4rec.py --part ml100k --seeds 3 --docs

Each user's last session is the test session (`split_users_last_session`, then test items
unseen in training dropped); HGRU4Rec warms the user state on the user's training sessions,
the other models see the test session alone. `demo`: the demo shop (users with lasting tastes);
`ml100k`: MovieLens 100k ratings cut into sessions by an inactivity gap (`--gap-hours`).
The GRU models are trained with 3 seeds; the table gives the mean and the spread (max - min).
Results go to stdout as JSON lines, to `--log` and, with `--docs`, into docs/benchmarks.md
between `<!-- hgru4rec:begin -->` and `<!-- hgru4rec:end -->`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop
from nextbest.data.prepare import sessionize
from nextbest.data.sessions import Sessions
from nextbest.data.splits import drop_unseen_items, split_users_last_session
from nextbest.evaluation.next_event import EvalConfig
from nextbest.evaluation.user_protocol import FOCUS_HISTORY, evaluate_user_last_session
from nextbest.events.importers import import_file
from nextbest.models.base import SessionModel
from nextbest.models.gru4rec import GRU4Rec
from nextbest.models.hgru4rec import HGRU4Rec, HGRU4RecConfig
from nextbest.models.knn import SKNN, STAN, VSKNN, VSTAN

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- hgru4rec:begin -->", "<!-- hgru4rec:end -->"
CUTOFFS = (5, 20)

# One size for both GRU models; the session part of HGRU4Rec is exactly this GRU4Rec.
BASE = HGRU4RecConfig(
    loss="cross-entropy",
    layers=(100,),
    user_layer=100,
    batch_size=64,
    n_epochs=8,
    learning_rate=0.05,
    n_sample=2048,
    dropout_p_hidden=0.0,
    threads=1,
)
VARIANTS: dict[str, dict[str, Any]] = {
    "hgru4rec (init)": {"user_propagation": "init"},
    "hgru4rec (all)": {"user_propagation": "all"},
    "hgru4rec (all + output)": {"user_propagation": "all", "user_to_output": True},
}


def demo_split(n_events: int, n_users: int) -> tuple[Sessions, Sessions, str]:
    shop = generate_demo_shop(DemoShopConfig(seed=7, n_events=n_events, n_users=n_users))
    events = shop.events.filter(pl.col("item_id").is_not_null())
    label = f"demo shop, seed 7, {n_events:,} events, {n_users:,} users"
    return (*_user_split(events), label)


def ml100k_split(gap_hours: float) -> tuple[Sessions, Sessions, str]:
    events = import_file("movielens", DATASETS / "ml-100k").events
    events = sessionize(events, gap_hours * 3600.0)
    return (*_user_split(events), f"ml-100k, sessions cut at {gap_hours:g} h without a rating")


def _user_split(events: pl.DataFrame) -> tuple[Sessions, Sessions]:
    split = split_users_last_session(events)
    train = Sessions.from_events(split.train)
    test_events = drop_unseen_items(split.test, split.train)
    return train, Sessions.from_events(test_events, item_ids=train.item_ids, min_session_length=2)


def run(
    name: str, model: SessionModel[Any, Any], train: Sessions, test: Sessions
) -> dict[str, Any]:
    started = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - started
    users = evaluate_user_last_session(model, train, test, EvalConfig(cutoffs=CUTOFFS))
    first = users.result.positions == 1
    focus = users.history >= FOCUS_HISTORY
    ranks = users.result.ranks
    return {
        "model": name,
        "overall": {
            k: v
            for k, v in users.result.metrics().items()
            if k.split("@")[0] in ("recall", "mrr", "ndcg")
        },
        "focus": users.focus(),
        "by_history": users.by_history(),
        "focus_first_mrr@20": float(
            np.mean(np.where(ranks[focus & first] <= 20, 1 / ranks[focus & first], 0))
        ),
        "focus_later_mrr@20": float(
            np.mean(np.where(ranks[focus & ~first] <= 20, 1 / ranks[focus & ~first], 0))
        ),
        "cases": users.result.cases,
        "fit_seconds": round(fit_seconds, 1),
        "eval_seconds": round(users.result.eval_seconds, 1),
    }


def gru_models(seed: int, epochs: int) -> dict[str, SessionModel[Any, Any]]:
    base = replace(BASE, seed=seed, n_epochs=epochs)
    models: dict[str, SessionModel[Any, Any]] = {"gru4rec": GRU4Rec(base.session_config())}
    for name, change in VARIANTS.items():
        models[name] = HGRU4Rec(replace(base, **change))
    return models


def knn_models() -> dict[str, SessionModel[Any, Any]]:
    return {"sknn": SKNN(), "vsknn": VSKNN(), "stan": STAN(), "vstan": VSTAN()}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} / {five:.2f}"


def bench(args: argparse.Namespace, part: str) -> tuple[str, list[dict[str, Any]]]:
    if part == "demo":
        train, test, label = demo_split(args.demo_events, args.demo_users)
    else:
        train, test, label = ml100k_split(args.gap_hours)
    rows: list[dict[str, Any]] = []
    for seed in range(1, args.seeds + 1):
        for name, model in gru_models(seed, args.epochs).items():
            row = run(name, model, train, test) | {"seed": seed, "part": part, "load": load()}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if part == "ml100k" or args.knn:
        for name, model in knn_models().items():
            row = run(name, model, train, test) | {"seed": 0, "part": part, "load": load()}
            print(json.dumps(row), flush=True)
            rows.append(row)
    info = (
        f"{label}: {train.n_sessions:,} training sessions ({train.n_events:,} events), "
        f"{test.n_sessions:,} test sessions ({int(test.lengths.sum() - test.n_sessions):,} cases)"
    )
    return info, rows


def _mean_spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {(max(values) - min(values)) / 2:.4f}"


def table(rows: list[dict[str, Any]]) -> str:
    """Mean ± half the range over seeds, per model: users with 3+ earlier sessions, then all."""
    names = list(dict.fromkeys(r["model"] for r in rows))
    buckets = list(dict.fromkeys(b for r in rows for b in r["by_history"]))
    head = ["model", "seeds", f"MRR@20 {FOCUS_HISTORY}+", f"Recall@20 {FOCUS_HISTORY}+"]
    head += [f"MRR@20 {FOCUS_HISTORY}+ pos 1", "MRR@5 all", "MRR@20 all", "Recall@5 all"]
    head += ["Recall@20 all", "NDCG@20 all"] + [f"MRR@20 [{b}]" for b in buckets] + ["fit s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        mine = [r for r in rows if r["model"] == name]

        def cell(get: Any, mine: list[dict[str, Any]] = mine) -> str:
            return _mean_spread([float(get(r)) for r in mine])

        cells = [name, str(len(mine)), cell(lambda r: r["focus"]["mrr@20"])]
        cells += [cell(lambda r: r["focus"]["recall@20"]), cell(lambda r: r["focus_first_mrr@20"])]
        for key in ("mrr@5", "mrr@20", "recall@5", "recall@20", "ndcg@20"):
            cells.append(cell(lambda r, key=key: r["overall"][key]))
        for b in buckets:
            cells.append(
                cell(lambda r, b=b: r["by_history"].get(b, {}).get("mrr@20", float("nan")))
            )
        cells.append(f"{np.mean([r['fit_seconds'] for r in mine]):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    cases = {b: int(rows[0]["by_history"][b]["cases"]) for b in buckets}
    lines.append("")
    lines.append(
        "Cases per bucket of earlier sessions: "
        + ", ".join(f"[{b}] {n:,}" for b, n in cases.items())
    )
    return "\n".join(lines)


def write_docs(sections: list[tuple[str, str]], command: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else ""
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    body = [
        "## HGRU4Rec on the user protocol",
        "",
        f"`{command}`, {time.strftime('%Y-%m-%d')}, {platform.machine()} with "
        f"{os.cpu_count()} cores shared with other jobs (load at the end {load()}); "
        "see docs/hgru4rec.md for what the columns mean.",
    ]
    for info, tab in sections:
        body += ["", f"**{info}**", "", tab]
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOCS.write_text(text[:start] + "\n" + "\n".join(body) + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["demo", "ml100k", "all"], default="all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=BASE.n_epochs)
    parser.add_argument("--demo-events", type=int, default=300_000)
    parser.add_argument("--demo-users", type=int, default=3_000)
    parser.add_argument("--gap-hours", type=float, default=1.0)
    parser.add_argument("--knn", action="store_true", help="kNN baselines on the demo shop too")
    parser.add_argument("--log", type=Path, default=None, help="append JSON lines here")
    parser.add_argument("--docs", action="store_true", help="write the tables into the docs")
    args = parser.parse_args()
    parts = ["demo", "ml100k"] if args.part == "all" else [args.part]
    sections = []
    for part in parts:
        info, rows = bench(args, part)
        if args.log is not None:
            with args.log.open("a") as log:
                log.writelines(json.dumps(r) + "\n" for r in rows)
        sections.append((info, table(rows)))
        print(info + "\n" + table(rows), file=sys.stderr, flush=True)
    if args.docs:
        write_docs(sections, "benchmarks/bench_hgru4rec.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
