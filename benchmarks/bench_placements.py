"""Placements on the demo shop, offline, through the pipeline the server runs: what the learned
purchase rules do after a purchase, and what the diversity knobs cost and give.

    .venv/bin/python benchmarks/bench_placements.py                # print the tables
    .venv/bin/python benchmarks/bench_placements.py --write-docs   # and update docs/benchmarks.md

The demo shop (seed 7, 1M events, as `make demo` makes it) is split as `nextbest demo` splits
it; GRU4Rec is trained with the demo's settings and the purchase rules are learned from the
training events and the catalog, as `nextbest train --items` learns them.

1. Durables: every test-session case after the session bought an item of a category learned
   as durable. The share of the `home` list's top 10 in the bought item's category, with the
   placement as shipped and with `purchase_rules = false`; Recall@20 of the next purchase when
   it is of a planted complement of the bought category, and of the next event when it is.
2. Consumables: a user who bought an item of a learned consumable category, asked for the
   `home` list at fractions of the learned cycle: the share of the top 10 in that category.
3. Diversity: the `product` placement on sampled test sessions for several MMR and per-category
   cap settings: MRR@20, Recall@20, intra-list diversity, category coverage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from bench_serving import write_docs
from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop
from nextbest.data.demo_shop.writer import split_demo_shop
from nextbest.data.sessions import Sessions
from nextbest.evaluation.placement import StaticCounts, evaluate_placement, user_histories, walk
from nextbest.events.schema import items_of_table
from nextbest.models.registry import build_model
from nextbest.recommend.context import Context, Query
from nextbest.recommend.diversity import Diversity
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import Placement, load_placements
from nextbest.recommend.ranking.fusion import FusionRanker
from nextbest.recommend.ranking.priority import PriorityRanker
from nextbest.recommend.rules.exclusions import Exclusions
from nextbest.recommend.rules.purchase_rules import learn_purchase_rules
from nextbest.serving.live import fresh_record
from nextbest.serving.registry import LoadedModel, serve_model
from nextbest.serving.state.records import UserRecord, add_purchase

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- placements:begin -->", "<!-- placements:end -->"
DAY = 86_400.0
GRU4REC = {  # `nextbest demo`'s settings
    "loss": "cross-entropy", "logq": "1", "constrained_embedding": "true", "layers": "100",
    "batch_size": "64", "dropout_p_hidden": "0.3", "learning_rate": "0.2", "momentum": "0.2",
    "n_epochs": "3", "threads": "2",
}  # fmt: skip


def without_rules(model: LoadedModel) -> LoadedModel:
    """The same model served without learned purchase rules: no holds, boosts or complements."""
    return dataclasses.replace(model, purchase_rules=None)


def reduced(placement: Placement, exclude: bool) -> Placement:
    """The session model's list alone, with the exclusions or with nothing left out."""
    session = tuple(s for s in placement.pipeline.retrieval if s.label == "session")
    rules = (Exclusions(),) if exclude else (Exclusions(False, False, False, False),)
    pipeline = dataclasses.replace(
        placement.pipeline, retrieval=session, ranker=FusionRanker(), rules=rules,
        diversifier=Diversity(), promotions=(), pins=(),
    )  # fmt: skip
    return dataclasses.replace(placement, pipeline=pipeline)


def with_diversity(placement: Placement, mmr: float, cap: int) -> Placement:
    pipeline = dataclasses.replace(placement.pipeline, diversifier=Diversity(mmr, cap))
    return dataclasses.replace(placement, pipeline=pipeline)


def durables(
    placement: Placement, model: LoadedModel, table: ItemTable, live: StaticCounts,
    test: pl.DataFrame, users: dict[str, UserRecord], planted: dict[str, set[str]],
) -> dict[str, Any]:  # fmt: skip
    """Cases after a durable purchase in the session, with the learned rules and without."""
    rules = model.purchase_rules
    assert rules is not None
    durable = {r.category for r in rules if r.kind == "durable"}
    bought_durable = test.filter(
        (pl.col("type") == "purchase")
        & pl.col("item_id").is_in([i for i, r in table.row_of.items()
                                   if table.category[r] in durable])
    )["session_id"].unique()  # fmt: skip
    sessions = test.filter(pl.col("session_id").is_in(bought_durable.implode()))
    # each session's purchases after each position: the next purchase, looked ahead to
    rows_of = {
        str(sid): frame.sort("timestamp").select("item_id", "type").rows()
        for (sid,), frame in sessions.filter(pl.col("item_id").is_not_null())
        .group_by("session_id")
    }  # fmt: skip
    out: dict[str, Any] = {"sessions": int(bought_durable.len())}
    for name, served in (("with the rule", model), ("without", without_rules(model))):
        share, purchase_hits, view_hits = [], [], []
        first_after: set[str] = set()
        for case in walk(placement, served, table, live, sessions, users, 20):
            bought = [str(table.category[row]) for row, _ in case.ctx.purchases
                      if table.category[row] in durable]  # fmt: skip
            if not bought:
                continue
            category = bought[-1]
            top = case.shown.rows[:10]
            share.append(float(np.mean(table.category[top] == category)) if len(top) else 0.0)
            target = str(table.category[case.target_row])
            if target in planted.get(category, set()):
                view_hits.append(float(case.target_row in case.shown.rows[:20]))
            if case.session_id in first_after:
                continue
            first_after.add(case.session_id)  # the list right after the durable purchase:
            later = rows_of[case.session_id][case.position :]  # is the next purchase in it?
            purchase = next((item for item, kind in later if kind == "purchase"), None)
            row = table.row_of.get(purchase) if purchase else None
            if row is not None and str(table.category[row]) in planted.get(category, set()):
                purchase_hits.append(float(row in case.shown.rows[:20]))
        out[name] = {
            "cases": len(share),
            "share_top10_in_bought_category": round(float(np.mean(share)), 4),
            "recall@20_next_purchase_complement": round(float(np.mean(purchase_hits)), 4),
            "purchase_cases": len(purchase_hits),
            "recall@20_next_event_complement": round(float(np.mean(view_hits)), 4),
            "event_cases": len(view_hits),
        }
    before = out["without"]["share_top10_in_bought_category"]
    after = out["with the rule"]["share_top10_in_bought_category"]
    out["fall"] = round(1 - after / before, 4) if before else None
    return out


FRACTIONS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def consumables(
    placement: Placement, model: LoadedModel, table: ItemTable, live: StaticCounts
) -> dict[str, Any]:
    """A user who bought one item of each consumable category, asked at fractions of its cycle."""
    rules = model.purchase_rules
    assert rules is not None
    found: dict[str, Any] = {}
    code_of = table.code_of
    for variant_name, served in (("with the rule", model), ("without", without_rules(model))):
        shares: dict[float, list[float]] = {f: [] for f in FRACTIONS}
        for rule in rules:
            if rule.kind != "consumable" or not rule.cycle_days or rule.category not in code_of:
                continue
            members = table.category_rows[code_of[rule.category]]
            bought = str(table.ids[members[0]])
            start = 1_700_000_000.0
            user = add_purchase(UserRecord(), bought, start)
            for fraction in FRACTIONS:
                now = start + fraction * rule.cycle_days * DAY
                query = Query(n=10, placement="home", user_id="probe", now=now)
                ctx = Context(
                    query, served, table, fresh_record(model), live, now, user,
                    served.purchase_rules,
                )  # fmt: skip
                top = placement.pipeline.recommend(ctx).rows[:10]
                shares[fraction].append(float(np.mean(table.category[top] == rule.category)))
        found[variant_name] = {str(f): round(float(np.mean(v)), 4) for f, v in shares.items()}
        found["categories"] = len(shares[FRACTIONS[0]])
    return found


def markdown(result: dict[str, Any]) -> str:
    d, c = result["durables"], result["consumables"]
    w, wo = d["with the rule"], d["without"]
    lines = [
        f"Command: `{result['command']}` ({result['date']}, {result['cores']} cores, load "
        f"{result['load']}). The demo shop (seed 7, {result['events']:,} events); GRU4Rec "
        f"with `nextbest demo`'s settings, fitted in {result['fit_seconds']:.0f} s; purchase "
        f"rules learned from the training events ({result['rules']}).",
        "",
        f"**After a durable purchase** ({d['sessions']} test sessions that bought one; the "
        "`home` placement):",
        "",
        "| | with the rule | without |",
        "|---|---|---|",
        f"| share of the top 10 in the bought item's category | "
        f"{w['share_top10_in_bought_category']:.3f} | {wo['share_top10_in_bought_category']:.3f} |",
        f"| Recall@20 of the next purchase, when of a planted complement ({w['purchase_cases']}"
        f" cases) | {w['recall@20_next_purchase_complement']:.3f} | "
        f"{wo['recall@20_next_purchase_complement']:.3f} |",
        f"| Recall@20 of the next event, when in a planted complement ({w['event_cases']} "
        f"cases) | {w['recall@20_next_event_complement']:.3f} | "
        f"{wo['recall@20_next_event_complement']:.3f} |",
        f"| cases | {w['cases']} | {wo['cases']} |",
        "",
        f"The rule cuts the bought category's share by {100 * (d['fall'] or 0):.0f}%.",
        "",
        f"**Consumables**: a user who bought one item of each of the {c['categories']} learned "
        "consumable categories, asked for the `home` list at fractions of the category's learned "
        "cycle; the share of the top 10 in that category:",
        "",
        "| cycle fraction | " + " | ".join(c["with the rule"]) + " |",
        "|---|" + "---|" * len(c["with the rule"]),
        "| with the rule | " + " | ".join(f"{v:.2f}" for v in c["with the rule"].values()) + " |",
        "| without | " + " | ".join(f"{v:.2f}" for v in c["without"].values()) + " |",
        "",
        f"**Rankers and diversity** of the `product` placement ({result['diversity_sessions']} "
        "sampled test sessions, the item on screen = the session's latest; the rows with mmr "
        "are the shipped placement with that diversity):",
        "",
        "| `product` with | max per category | MRR@20 | Recall@20 | intra-list diversity "
        "| category coverage |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["reference"] + result["rankers"]:
        m = row["metrics"]
        lines.append(
            f"| {row['what']} | | {m['mrr@20']:.4f} | {m['recall@20']:.4f} "
            f"| {m['intra_list_diversity']:.3f} | {m['category_coverage']:.3f} |"
        )
    for row in result["diversity"]:
        m = row["metrics"]
        lines.append(
            f"| mmr {row['mmr']} | {row['cap'] or 'off'} | {m['mrr@20']:.4f} "
            f"| {m['recall@20']:.4f} "
            f"| {m['intra_list_diversity']:.3f} | {m['category_coverage']:.3f} |"
        )
    lines += [
        "",
        "Intra-list diversity: the share of item pairs of a list from different leaf "
        "categories. Category coverage: the share of the catalog's leaf categories in any list.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--diversity-sessions", type=int, default=1500)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    shop = generate_demo_shop(DemoShopConfig(seed=7, n_events=args.events))
    train, test = split_demo_shop(shop)
    started = time.perf_counter()
    model = build_model("gru4rec", GRU4REC | {"n_epochs": str(args.epochs)})
    model.fit(Sessions.from_events(train))
    fit_seconds = time.perf_counter() - started
    torch.set_num_threads(1)
    rules = learn_purchase_rules(train, shop.items)
    loaded = serve_model(model, "bench-placements", purchase_rules=rules)
    table = ItemTable.build(model.item_ids, items_of_table(shop.items))
    live, users = StaticCounts(train), user_histories(train)
    placements = load_placements()
    planted = {
        row["category_path"]: set(row["complements"])
        for row in shop.categories.iter_rows(named=True)
    }
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_placements.py"
        + (" --write-docs" if args.write_docs else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "events": args.events,
        "fit_seconds": fit_seconds,
        "rules": rules.summary(),
    }
    result["durables"] = durables(placements["home"], loaded, table, live, test, users, planted)
    print(json.dumps(result["durables"], indent=2), flush=True)
    result["consumables"] = consumables(placements["home"], loaded, table, live)
    print(json.dumps(result["consumables"], indent=2), flush=True)
    sessions = test["session_id"].unique(maintain_order=True).head(args.diversity_sessions)
    sample = test.filter(pl.col("session_id").is_in(sessions.implode()))
    result["diversity_sessions"] = int(sessions.len())
    result["reference"] = []
    product = placements["product"]
    for label, variant in (
        ("the session model's list alone, nothing left out", reduced(product, exclude=False)),
        ("the same, with the exclusions (bought, on screen, in cart)", reduced(product, True)),
    ):
        evaluated = evaluate_placement(variant, loaded, table, train, sample)
        result["reference"].append({"what": label, "metrics": evaluated.metrics})
        print(label, json.dumps(evaluated.metrics), flush=True)
    result["rankers"] = []
    for label, ranker in (
        ("fusion, equal weights", FusionRanker()),
        ("fusion, session 2", FusionRanker({"session": 2.0})),
        ("fusion, session 4, complements 0.5 (shipped)", FusionRanker(
            {"session": 4.0, "complements": 0.5})),
        ("priority, similar 0.3 and complements 0.2 of the slots",
         PriorityRanker((None, 0.3, 0.2))),
    ):  # fmt: skip
        variant = dataclasses.replace(
            product, pipeline=dataclasses.replace(product.pipeline, ranker=ranker)
        )
        evaluated = evaluate_placement(variant, loaded, table, train, sample)
        result["rankers"].append({"what": label, "metrics": evaluated.metrics})
        print(label, json.dumps(evaluated.metrics), flush=True)
    result["diversity"] = []
    for mmr, cap in ((0.0, 0), (0.2, 0), (0.4, 0), (0.7, 0), (0.0, 3), (0.0, 1), (0.4, 2)):
        variant = with_diversity(product, mmr, cap)
        evaluated = evaluate_placement(variant, loaded, table, train, sample)
        result["diversity"].append({"mmr": mmr, "cap": cap, "metrics": evaluated.metrics})
        print(mmr, cap, json.dumps(evaluated.metrics), flush=True)
    print(markdown(result))
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "placements.json").write_text(json.dumps(result, indent=2))
    if args.write_docs:
        write_docs(markdown(result), BEGIN, END, "Placements")


if __name__ == "__main__":
    main()
