"""The strategy generators (`attributes`, `preference`, `context`) on the demo shop, offline,
each by itself and inside the placement it fits (`product`, `home`), against the session
model alone.

    .venv/bin/python benchmarks/bench_strategies.py                # print the table
    .venv/bin/python benchmarks/bench_strategies.py --write-docs   # and update benchmarks.md

As `bench_placements.py`: the demo shop (seed 7, 1M events) split as `nextbest demo` splits
it, GRU4Rec with the demo's settings, the learned purchase rules; each placement's list after
every event of the first `--sessions` test sessions (next-event protocol: Recall@20, MRR@20,
and category coverage). `product` lists have that event's item on screen, `home` lists have
none. The session's and the user's affinity profiles are what the live state would hold at
each point (`evaluation.placement.UserProfiles`: no later event counts). The placements
leave out promotions (a promoted slot costs every row alike).
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
import torch

from bench_placements import GRU4REC
from bench_serving import save_result, write_docs
from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop
from nextbest.data.demo_shop.writer import split_demo_shop
from nextbest.data.sessions import Sessions
from nextbest.evaluation.placement import (
    StaticCounts,
    UserProfiles,
    evaluate_placement,
    facets_of_table,
    user_histories,
    walk,
)
from nextbest.events.schema import items_of_table
from nextbest.models.registry import MODELS, build_model
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import Placement, load_placements
from nextbest.recommend.rules.purchase_rules import learn_purchase_rules
from nextbest.serving.registry import LoadedModel, serve_model

BEGIN, END = "<!-- strategies:begin -->", "<!-- strategies:end -->"
PRODUCT = (
    'needs = ["item_id"]\nranker = "fusion"\nfilters = ["priced"]\n'
    "diversity = { mmr = 0.2, max_per_category = 0 }\n"
)
HOME = 'ranker = "priority"\nfilters = ["priced"]\n'
HOME_FUSED = 'ranker = "fusion"\nfilters = ["priced"]\n'
# the shipped placements' generators (product: before the strategies were measured)
SHIPPED_PRODUCT = ["session", "similar", "complements"]
PRODUCT_WEIGHTS = {"session": 4.0, "complements": 0.5}
SHIPPED_HOME = ["session:50", "complements:30", "new_items:20:0.2", "popular:30"]
HOME_FUSION = ["session:50", "complements:30", "popular:30"]  # fusion takes no share
HOME_WEIGHTS = {"session": 4.0, "complements": 0.5}
# name -> (placement, generators as "source[:k[:share]]", ranker weights)
Variant = tuple[str, list[str], dict[str, float]]
VARIANTS: dict[str, Variant] = {
    "product: the session model alone": ("product", ["session"], {}),
    "product: similar (model vectors) alone": ("product", ["similar"], {}),
    "product: attributes alone": ("product", ["attributes"], {}),
    "product: preference alone": ("product", ["preference"], {}),
    "product: context alone": ("product", ["context"], {}),
    "product without attributes (shipped before them)": ("product", SHIPPED_PRODUCT, {}),
    "product + attributes (weight 0.5)": (
        "product", [*SHIPPED_PRODUCT, "attributes"], {"attributes": 0.5},
    ),
    "product + attributes (weight 1, shipped)": (
        "product", [*SHIPPED_PRODUCT, "attributes"], {"attributes": 1.0},
    ),
    "product, attributes in place of similar": (
        "product", ["session", "attributes", "complements"], {},
    ),
    "product shipped + preference (weight 0.5)": (
        "product", [*SHIPPED_PRODUCT, "attributes", "preference"],
        {"attributes": 1.0, "preference": 0.5},
    ),
    "product shipped + preference (weight 1)": (
        "product", [*SHIPPED_PRODUCT, "attributes", "preference"],
        {"attributes": 1.0, "preference": 1.0},
    ),
    "product shipped + context (weight 0.5)": (
        "product", [*SHIPPED_PRODUCT, "attributes", "context"],
        {"attributes": 1.0, "context": 0.5},
    ),
    "product shipped + context (weight 1)": (
        "product", [*SHIPPED_PRODUCT, "attributes", "context"],
        {"attributes": 1.0, "context": 1.0},
    ),
    "product shipped + context (weight 2)": (
        "product", [*SHIPPED_PRODUCT, "attributes", "context"],
        {"attributes": 1.0, "context": 2.0},
    ),
    "home: the session model alone": ("home", ["session:50"], {}),
    "home: preference alone": ("home", ["preference:50"], {}),
    "home: context alone": ("home", ["context:50"], {}),
    "home as shipped": ("home", SHIPPED_HOME, {}),
    "home + preference (share 0.1)": ("home", [*SHIPPED_HOME, "preference:30:0.1"], {}),
    "home + preference (share 0.2)": ("home", [*SHIPPED_HOME, "preference:30:0.2"], {}),
    "home + context (share 0.1)": ("home", [*SHIPPED_HOME, "context:30:0.1"], {}),
    "home + context (share 0.2)": ("home", [*SHIPPED_HOME, "context:30:0.2"], {}),
    "home, fusion ranker (session 4, complements 0.5)": ("home-fusion", HOME_FUSION, {}),
    "home, fusion ranker + context (weight 1)": (
        "home-fusion", [*HOME_FUSION, "context:50"], {"context": 1.0},
    ),
}  # fmt: skip
# the home page before the session's first event, for sessions of users known from earlier
# events: the session model has nothing to go on yet (the list is the fill's popular items)
# no share: behind the model's (and the complements') items, before the popular ones
AFTER_SESSION = [*SHIPPED_HOME[:3], "preference:50", *SHIPPED_HOME[3:]]
AFTER_SESSION_10 = [*SHIPPED_HOME[:3], "preference:10", *SHIPPED_HOME[3:]]
FIRST_PAGE: dict[str, Variant] = {
    "first page: home as shipped": ("home", SHIPPED_HOME, {}),
    "first page: preference alone": ("home", ["preference:50"], {}),
    "first page: home + preference after the session model": ("home", AFTER_SESSION, {}),
    "first page: home + 10 preference items after the session model": (
        "home", AFTER_SESSION_10, {},
    ),
    "first page: home + preference (share 0.2)": (
        "home", [*SHIPPED_HOME, "preference:30:0.2"], {},
    ),
}  # fmt: skip
VARIANTS["home + preference after the session model"] = ("home", AFTER_SESSION, {})
VARIANTS["home + 10 preference items after the session model"] = ("home", AFTER_SESSION_10, {})


def placements_file(folder: Path) -> Path:
    parts = ["[filters]\npriced = 'EXCLUDE WHERE item.price <= 0'\n"]
    for k, (name, (kind, sources, extra)) in enumerate([*VARIANTS.items(), *FIRST_PAGE.items()]):
        specs = []
        for text in sources:
            source, *rest = text.split(":")
            size, share = (rest[0] if rest else "200"), (rest[1] if len(rest) > 1 else None)
            spec = f'source = "{source}", k = {size}' + (f", share = {share}" if share else "")
            specs.append(f"{{ {spec} }}")
        names = [text.split(":")[0] for text in sources]
        base = {"product": PRODUCT_WEIGHTS, "home-fusion": HOME_WEIGHTS}.get(kind, {})
        weights = {s: w for s, w in (base | extra).items() if s in names}
        weight_text = ", ".join(f"{s} = {w}" for s, w in weights.items())
        parts.append(
            f"[placements.v{k}]\n# {name}\ngenerators = [{', '.join(specs)}]\n"
            + {"product": PRODUCT, "home": HOME, "home-fusion": HOME_FUSED}[kind]
            + (f"ranker_weights = {{ {weight_text} }}\n" if weights else "")
        )
    path = folder / "placements.toml"
    path.write_text("\n".join(parts))
    return path


def first_page(
    placement: Placement,
    model: LoadedModel,
    table: ItemTable,
    train: pl.DataFrame,
    test: pl.DataFrame,
    sessions: int,
) -> dict[str, float]:
    """Recall@20, MRR@20 and category coverage of the placement's list before each session's
    first event, over the sessions whose user has a profile by then."""
    profiles = UserProfiles(pl.concat([train, test]), facets_of_table(table))
    cases = walk(
        placement, model, table, StaticCounts(train), test, user_histories(train), 20,
        sessions, profiles=profiles, at_start=True,
    )  # fmt: skip
    ranks: list[float] = []
    seen: set[int] = set()
    for case in cases:
        if case.ctx.user_affinity is None:
            continue
        hit = np.flatnonzero(case.shown.rows == case.target_row)
        ranks.append(float(hit[0] + 1) if len(hit) else np.inf)
        seen.update(int(c) for c in table.category_code[case.shown.rows] if c >= 0)
    rank = np.array(ranks)
    return {
        "cases": len(rank),
        "recall@20": float((rank <= 20).mean()),
        "mrr@20": float(np.where(rank <= 20, 1.0 / rank, 0.0).mean()),
        "category_coverage": len(seen) / len(table.categories),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=1500)
    parser.add_argument(
        "--first-sessions", type=int, default=6000, help="test sessions for the first-page table"
    )
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--only", help="comma-separated words: run only the variants whose name has one of them"
    )
    parser.add_argument(
        "--model-cache",
        type=Path,
        help="a folder for the trained model: trained and saved there when absent, else loaded "
        "(the same shop and settings; saves retraining between runs)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:  # a bad variant stops here, not after training
        load_placements(placements_file(Path(folder)))
    torch.set_num_threads(2)
    shop = generate_demo_shop(DemoShopConfig(seed=7, n_events=args.events))
    train, test = split_demo_shop(shop)
    cached = args.model_cache
    if cached is not None and (cached / "model.json").exists():
        model = MODELS["gru4rec"].load(cached)
    else:
        model = build_model("gru4rec", GRU4REC)
        model.fit(Sessions.from_events(train))
        if cached is not None:
            model.save(cached)
    torch.set_num_threads(1)
    loaded = serve_model(
        model, "bench-strategies", purchase_rules=learn_purchase_rules(train, shop.items)
    )
    table = ItemTable.build(model.item_ids, items_of_table(shop.items))
    rows: list[dict[str, Any]] = []
    firsts: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        placements = load_placements(placements_file(Path(folder)))
        for k, name in enumerate(VARIANTS):
            if args.only and not any(word in name for word in args.only.split(",")):
                continue
            result = evaluate_placement(
                placements[f"v{k}"], loaded, table, train, test, (20,), args.sessions
            )
            ms = 1000 * result.eval_seconds / max(result.cases, 1)
            rows.append(
                {"what": name, "cases": result.cases, "metrics": result.metrics, "ms_per_list": ms}
            )
            print(name, json.dumps(result.metrics), f"{ms:.2f} ms per list", flush=True)
        for j, name in enumerate(FIRST_PAGE):
            if args.only and not any(word in name for word in args.only.split(",")):
                continue
            placement = placements[f"v{len(VARIANTS) + j}"]
            found = first_page(placement, loaded, table, train, test, args.first_sessions)
            firsts.append({"what": name, **found})
            print(name, json.dumps(found), flush=True)
    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows,
              "first_page": firsts, "events": args.events, "sessions": args.sessions,
              "first_sessions": args.first_sessions}  # fmt: skip
    save_result("strategies-only" if args.only else "strategies", record)
    lines = [
        f"Measured {record['date']}; `.venv/bin/python benchmarks/bench_strategies.py` (demo "
        f"shop seed 7, {args.events:,} events, GRU4Rec as `nextbest demo` trains it, the "
        f"first {args.sessions:,} test sessions, {rows[0]['cases']:,} cases; each row has its "
        "placement's ranker, rules and diversity: `product` fusion with the shipped weights, "
        "MMR 0.2, an item on screen; `home` priority order, no item on screen; no promotions).",
        "",
        "| list | Recall@20 | MRR@20 | category coverage |",
        "|---|---|---|---|",
    ]
    for row in rows:
        m = row["metrics"]
        lines.append(
            f"| {row['what']} | {m['recall@20']:.4f} | {m['mrr@20']:.4f} "
            f"| {m['category_coverage']:.3f} |"
        )
    if firsts:
        lines += [
            "",
            f"The home page's first list of a session, before its first event, for the sessions "
            f"of users known from earlier events among the first {args.first_sessions:,} test "
            f"sessions ({firsts[0]['cases']:,} cases; the target is the session's first item):",
            "",
            "| list | Recall@20 | MRR@20 | category coverage |",
            "|---|---|---|---|",
        ]
        for row in firsts:
            lines.append(
                f"| {row['what']} | {row['recall@20']:.4f} | {row['mrr@20']:.4f} "
                f"| {row['category_coverage']:.3f} |"
            )
    text = "\n".join(lines)
    print(text)
    if args.write_docs and not args.only:
        write_docs(text, BEGIN, END, heading="Strategy generators")


if __name__ == "__main__":
    main()
