"""Incremental update against a full retrain: GRU4Rec on the demo shop.

    .venv/bin/python benchmarks/bench_incremental.py                 # seed 7, 1M events
    .venv/bin/python benchmarks/bench_incremental.py --write-docs    # and update the docs

The demo shop is prepared as `nextbest data prepare` does (its last `--test-days` are the test).
The served version is GRU4Rec (`nextbest demo`'s settings) fitted on the training events
before the last `--update-days`; those days are what arrived since. `--new-items` of the new
days' items (5%) are launched in them: their earlier events are taken out of all the training
data. Then, back to back:

- **full retrain**: GRU4Rec fitted from scratch on every training event;
- **incremental update**: the served version's `update()` on the new days' sessions only
  (`--epochs` passes), new items seeded from the items they follow (`GRU4Rec.update`);
- **not updated**: the served version as it was (its new-item cases are misses: it has no
  row for them).

Every model ranks every item it knows after every test event (next-event protocol,
conservative ties); the full and the updated model know the same items, so they answer the
same cases. "New items" are the cases whose target first appeared in the new days.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import polars as pl

from bench_placements import GRU4REC
from docs_section import replace_section
from machine_info import machine
from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop
from nextbest.data.prepare import PrepareConfig, prepare
from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import EvalConfig, evaluate_next_event
from nextbest.models.gru4rec import GRU4Rec
from nextbest.models.gru4rec.model import warm_start_vocabulary
from nextbest.models.registry import build_model

BEGIN, END = "<!-- incremental:begin -->", "<!-- incremental:end -->"


def figures(model: GRU4Rec, test: pl.DataFrame, new_items: set[str]) -> dict[str, Any]:
    coded = Sessions.from_events(test, item_ids=model.item_ids, min_session_length=2)
    result = evaluate_next_event(model, coded, EvalConfig(cutoffs=(20,)))
    assert result.targets is not None
    metrics = result.metrics()
    targets = np.asarray(model.item_ids, dtype=object)[result.targets]
    fresh = np.isin(targets, list(new_items))
    return {
        "cases": result.cases,
        "mrr@20": metrics["mrr@20"],
        "recall@20": metrics["recall@20"],
        "new_cases": int(fresh.sum()),
        "new_recall@20": float((result.ranks[fresh] <= 20).mean()) if fresh.any() else 0.0,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    shop = generate_demo_shop(DemoShopConfig(seed=args.seed, n_events=args.events))
    prepared = prepare(shop.events, PrepareConfig(test_days=args.test_days))
    train, test = prepared.train, prepared.test
    cut = float(train["timestamp"].max()) - args.update_days * 86400  # type: ignore[arg-type]
    before = train.filter(pl.col("timestamp") <= cut)
    since = train.filter(pl.col("timestamp") > cut)
    # New items: a share of the new days' items, whose earlier events are taken out of the
    # whole training data (they enter the catalog in the new days)
    rng = np.random.default_rng(args.seed)
    recent = sorted(set(since["item_id"].drop_nulls().to_list()))
    launched = set(rng.choice(recent, int(len(recent) * args.new_items), replace=False).tolist())
    earlier = pl.col("item_id").is_in(list(launched)) & (pl.col("timestamp") <= cut)
    train = train.filter(~earlier.fill_null(False))
    before = before.filter(~pl.col("item_id").is_in(list(launched)).fill_null(False))
    old_items = set(before["item_id"].drop_nulls().to_list())
    new_items = set(since["item_id"].drop_nulls().to_list()) - old_items

    served = build_model("gru4rec", GRU4REC)
    assert isinstance(served, GRU4Rec)
    started = time.perf_counter()
    served.fit(Sessions.from_events(before))
    served_seconds = time.perf_counter() - started
    not_updated = figures(served, test, new_items)  # the new items' cases: no row, left out

    full = build_model("gru4rec", GRU4REC)
    started = time.perf_counter()
    full.fit(Sessions.from_events(train))
    full_seconds = time.perf_counter() - started
    assert isinstance(full, GRU4Rec)

    vocabulary = warm_start_vocabulary(np.asarray(served.item_ids), new_items)
    fresh = Sessions.from_events(since, item_ids=vocabulary)
    started = time.perf_counter()
    served.update(fresh, n_epochs=args.epochs)
    update_seconds = time.perf_counter() - started
    return {
        "seed": args.seed,
        "events": args.events,
        "training_events": train.height,
        "new_events": since.height,
        "new_item_count": len(new_items),
        "served_fit_seconds": served_seconds,
        "full": {"seconds": full_seconds, **figures(full, test, new_items)},
        "incremental": {"seconds": update_seconds, **figures(served, test, new_items)},
        "not_updated": not_updated,
    }


def table(result: dict[str, Any], command: str, load: str) -> str:
    m = machine()
    full, inc, old = result["full"], result["incremental"], result["not_updated"]
    share = old["cases"] / full["cases"]  # the served version misses the new items' cases
    lines = [
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), load average {load} "
        f"before, by `{command}`. Demo shop seed {result['seed']}, {result['events']:,} events: "
        f"{result['training_events']:,} training events, of which {result['new_events']:,} in "
        f"the last days the update learns from ({result['new_item_count']} items new in them); "
        "GRU4Rec with `nextbest demo`'s settings.",
        "",
        "| model | training s | MRR@20 | Recall@20 | cases | new items: cases, Recall@20 |",
        "|---|---|---|---|---|---|",
        f"| full retrain | {full['seconds']:.1f} | {full['mrr@20']:.4f} | "
        f"{full['recall@20']:.4f} | {full['cases']:,} | {full['new_cases']:,}, "
        f"{full['new_recall@20']:.3f} |",
        f"| incremental update | {inc['seconds']:.1f} ({inc['seconds'] / full['seconds']:.1%} "
        f"of the full) | {inc['mrr@20']:.4f} ({inc['mrr@20'] / full['mrr@20'] - 1:+.1%}) | "
        f"{inc['recall@20']:.4f} | {inc['cases']:,} | {inc['new_cases']:,}, "
        f"{inc['new_recall@20']:.3f} |",
        f"| not updated (the served version) | | {old['mrr@20'] * share:.4f} | "
        f"{old['recall@20'] * share:.4f} | {full['cases']:,} | {full['new_cases']:,}, 0 (no row) |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--test-days", type=float, default=2.0)
    parser.add_argument("--update-days", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--new-items",
        type=float,
        default=0.05,
        help="share of the new days' items launched in them",
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result = measure(args)
    print(result, flush=True)
    command = "python benchmarks/bench_incremental.py" + (
        f" --events {args.events}" if args.events != 1_000_000 else ""
    )
    text = table(result, command, load)
    print(text)
    if args.write_docs:
        replace_section(text, BEGIN, END, "Incremental update against a full retrain")


if __name__ == "__main__":
    main()
