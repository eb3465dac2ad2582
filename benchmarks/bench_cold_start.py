"""Cold start: GRU4Rec with item attributes against the id-only GRU4Rec and category
popularity, on a demo shop with a tenth of its catalog held out of training.

    .venv/bin/python benchmarks/bench_cold_start.py                      # seed 7, 1M events
    .venv/bin/python benchmarks/bench_cold_start.py --write-docs         # and update the docs
    .venv/bin/python benchmarks/bench_cold_start.py --seed 8 --events 300000 --sweep \\
        --write-docs                                                     # the validation sweep

The shop is what `nextbest data demo-shop --cold-items 0.1` writes: the held-out items have no
training event, their test events stay, and the catalog describes them. Each model is fitted
and evaluated as `nextbest evaluate --items items.csv` does it (the same functions): every
catalog item is ranked after every test event (next-event protocol, conservative ties), and
the cold figures are over the cases whose target is a held-out item. GRU4Rec runs with
`nextbest demo`'s settings. `--sweep` adds the variants that chose the attribute settings
(their learning rate, the id dropout, which attributes); run it on a shop other than the
test's (seed 8), so that the choice never saw the test.

    .venv/bin/python benchmarks/bench_cold_start.py --beauty ../shared/datasets/amazon_beauty

Amazon Beauty as S3Rec prepared it (`Beauty.txt`: a user's items in time order a line;
`Beauty_item2attributes.json`: the brand and category ids of each item, unlabelled): each
user's history without its last item trains, and the last item is the test (ranked after the
rest, against every item). The attribute ids are one list-valued attribute, `tags`. Its items
all have 5+ interactions, so there is no cold case: what it shows is whether the attributes
help the items that are rare.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench_placements import GRU4REC
from bench_serving import machine, save_result, write_docs
from nextbest.cli.evaluate import read_items, training_sessions
from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop, write_demo_shop
from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import (
    EvalConfig,
    cold_start_figures,
    evaluate_next_event,
    prefix_target_sessions,
)
from nextbest.events.io import read_events
from nextbest.events.schema import Item, items_of_table
from nextbest.models.registry import build_model

# One thread: quality is measured here, not speed, and two 2-thread fits on two shared cores
# slow each other down many times over.
GRU4REC = GRU4REC | {"threads": "1"}
ATTRIBUTES = {"attributes": "category,brand,price"}
MODELS: dict[str, tuple[str, dict[str, str]]] = {
    "category popularity (catpop)": ("catpop", {}),
    "GRU4Rec, ids only": ("gru4rec", GRU4REC),
    "GRU4Rec + category, brand, price": ("gru4rec", GRU4REC | ATTRIBUTES),
}
SWEEP: dict[str, tuple[str, dict[str, str]]] = {
    "attributes at the id rows' learning rate (attribute_rate=1)": (
        "gru4rec",
        GRU4REC | ATTRIBUTES | {"attribute_rate": "1"},
    ),
    "attribute_rate=0.3": ("gru4rec", GRU4REC | ATTRIBUTES | {"attribute_rate": "0.3"}),
    "attribute_rate=0.03": ("gru4rec", GRU4REC | ATTRIBUTES | {"attribute_rate": "0.03"}),
    "no id dropout (attribute_id_dropout=0)": (
        "gru4rec",
        GRU4REC | ATTRIBUTES | {"attribute_id_dropout": "0"},
    ),
    "attribute_id_dropout=0.3": (
        "gru4rec",
        GRU4REC | ATTRIBUTES | {"attribute_id_dropout": "0.3"},
    ),
}
RESULTS = Path(__file__).resolve().parent / "results"
BEAUTY_EPOCHS = "5"
BEGIN, END = "<!-- cold-start:begin -->", "<!-- cold-start:end -->"
BEAUTY_BEGIN, BEAUTY_END = "<!-- cold-start-beauty:begin -->", "<!-- cold-start-beauty:end -->"
SWEEP_BEGIN, SWEEP_END = "<!-- cold-start-sweep:begin -->", "<!-- cold-start-sweep:end -->"


def run(folder: Path, name: str, params: dict[str, str]) -> dict[str, Any]:
    items = read_items(folder / "items.csv")
    train = training_sessions(read_events(folder / "train.tsv", "raise"), folder, items)
    test_events = read_events(folder / "test.tsv", "raise")
    test = Sessions.from_events(test_events, item_ids=train.item_ids, min_session_length=2)
    model = build_model(name, params)
    model.use_catalog(items_of_table(items))
    started = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - started
    support = train.item_support()
    result = evaluate_next_event(model, test, EvalConfig(cutoffs=(20,)), train_support=support)
    return {
        "cases": result.cases,
        **{k: round(v, 4) for k, v in result.metrics().items() if k.endswith("@20")},
        **{k: round(float(v), 4) for k, v in cold_start_figures(result, support).items()},
        "fit_seconds": round(fit_seconds, 1),
    }


def beauty(folder: Path) -> dict[str, dict[str, Any]]:
    """GRU4Rec with and without the items' attribute ids on Amazon Beauty (last item test)."""
    lines = (folder / "Beauty.txt").read_text().split("\n")
    histories = [line.split()[1:] for line in lines if line.strip()]
    tags = json.loads((folder / "Beauty_item2attributes.json").read_text())
    catalog = {
        item: Item(item_id=item, attributes={"tags": [str(t) for t in values]})
        for item, values in tags.items()
    }
    kept = [h for h in histories if len(h) >= 3]  # two to train on, one to test
    # each user's history but its last item as one session; times are positions (GRU4Rec
    # reads the order only), so the sessions keep the file's order
    owners = [str(user) for user, history in enumerate(kept) for _ in history[:-1]]
    events = pl.DataFrame(
        {
            "session_id": owners,
            "item_id": [item for history in kept for item in history[:-1]],
            "timestamp": np.arange(len(owners), dtype=np.float64),
        }
    )
    train = Sessions.from_events(events)
    test, count = prefix_target_sessions(
        [h[:-1] for h in kept], [h[-1] for h in kept], train.item_ids
    )
    support = train.item_support()
    rows = {}
    for label, extra in (("GRU4Rec, ids only", {}), ("GRU4Rec + tags", {"attributes": "tags"})):
        model = build_model("gru4rec", GRU4REC | {"n_epochs": BEAUTY_EPOCHS} | extra)
        model.use_catalog(catalog)
        started = time.perf_counter()
        model.fit(train)
        fit_seconds = time.perf_counter() - started
        result = evaluate_next_event(
            model, test, EvalConfig(cutoffs=(10, 20)), count=count, train_support=support
        )
        figures = {k: round(v, 4) for k, v in result.metrics().items() if "@" in k}
        rare = support[result.targets] <= np.quantile(support, 0.5)  # type: ignore[index]
        figures["rare_cases"] = int(rare.sum())
        figures["rare_recall@20"] = round(float((result.ranks[rare] <= 20).mean()), 4)
        rows[label] = {"cases": result.cases, **figures, "fit_seconds": round(fit_seconds, 1)}
        print(label, rows[label], flush=True)
    return rows


def beauty_table(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| model | cases | Recall@10 | NDCG@10 | Recall@20 | MRR@20 | rare cases | "
        "rare Recall@20 | fit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        lines.append(
            f"| {label} | {r['cases']:,} | {r['recall@10']:.4f} | {r['ndcg@10']:.4f} "
            f"| {r['recall@20']:.4f} | {r['mrr@20']:.4f} | {r['rare_cases']:,} "
            f"| {r['rare_recall@20']:.4f} | {r['fit_seconds']:.0f} |"
        )
    return "\n".join(lines)


def table(rows: dict[str, dict[str, Any]], fit_times: bool = True) -> str:
    """The figures of each variant; `fit_times=False` leaves out the fit seconds (a sweep
    compares quality, and its fits share the machine with whatever else runs)."""
    header = ["model", "Recall@20", "MRR@20", "cold cases", "cold Recall@20", "cold MRR@20"]
    header += ["fit s"] if fit_times else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, r in rows.items():
        cells = [label, f"{r['recall@20']:.4f}", f"{r['mrr@20']:.4f}"]
        cells += [f"{int(r['cold_cases']):,}", f"{r['cold_recall@20']:.4f}"]
        cells += [f"{r['cold_mrr@20']:.4f}"]
        cells += [f"{r['fit_seconds']:.0f}"] if fit_times else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measure(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    variants = MODELS | (SWEEP if args.sweep else {})
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        shop = generate_demo_shop(DemoShopConfig(seed=args.seed, n_events=args.events))
        write_demo_shop(shop, tmp, args.cold_items)
        for label, (name, params) in variants.items():
            rows[label] = run(Path(tmp), name, params)
            print(label, rows[label], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--cold-items", type=float, default=0.1)
    parser.add_argument("--sweep", action="store_true", help="add the attribute settings' sweep")
    parser.add_argument("--beauty", type=Path, help="the amazon_beauty folder: run on it")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--from-results",
        action="store_true",
        help="write the docs from the results this command saved last (benchmarks/results)",
    )
    args = parser.parse_args()
    if args.beauty is not None:
        found = beauty(args.beauty)
        text = beauty_table(found)
        print(text)
        save_result("cold_start_beauty", {"rows": found, "machine": machine()})
        if args.write_docs:
            command = "`.venv/bin/python benchmarks/bench_cold_start.py --beauty DIR --write-docs`"
            header = (
                f"Amazon Beauty (S3Rec's preparation), each user's last item as the test; "
                f"GRU4Rec with `nextbest demo`'s settings and {BEAUTY_EPOCHS} epochs; "
                f'{command}; {machine()["cpu"]}. "rare": targets with at most the median '
                "item's training interactions.\n\n"
            )
            write_docs(header + text, BEAUTY_BEGIN, BEAUTY_END, "Cold start: Amazon Beauty")
        return
    tag = f"cold_start_seed{args.seed}_{args.events}" + ("_sweep" if args.sweep else "")
    if args.from_results:
        saved = json.loads((RESULTS / f"{tag}.json").read_text())
        rows, where = saved["rows"], saved["machine"]
    else:
        rows, where = measure(args), machine()
        save_result(tag, {"rows": rows, "args": vars(args), "machine": where})
    text = table(rows, fit_times=not args.sweep)
    print(text)
    if args.write_docs or args.from_results:
        command = (
            f"`.venv/bin/python benchmarks/bench_cold_start.py --seed {args.seed} "
            f"--events {args.events}{' --sweep' if args.sweep else ''} --write-docs`"
        )
        header = (
            f"Demo shop seed {args.seed}, {args.events:,} events, {args.cold_items:.0%} of "
            f"the items held out of training; {command}; {where['cpu']}, {where['cores']} "
            f"cores, {where['date']}"
            + ("" if args.sweep else " (fit times on a machine shared with other work)")
            + ".\n\n"
        )
        begin, end = (SWEEP_BEGIN, SWEEP_END) if args.sweep else (BEGIN, END)
        heading = "Cold start: the attribute settings' sweep" if args.sweep else "Cold start"
        write_docs(header + text, begin, end, heading)


if __name__ == "__main__":
    main()
