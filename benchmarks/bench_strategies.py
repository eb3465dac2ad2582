"""The attribute-similar strategy (`source = "attributes"`) on the demo shop, offline, by
itself and inside the `product` placement, against the session model alone.

    .venv/bin/python benchmarks/bench_strategies.py                # print the table
    .venv/bin/python benchmarks/bench_strategies.py --write-docs   # and update benchmarks.md

As `bench_placements.py`: the demo shop (seed 7, 1M events) split as `nextbest demo` splits
it, GRU4Rec with the demo's settings, the learned purchase rules; the product placement's
list after every event of the first `--sessions` test sessions, with that event's item on
screen (next-event protocol: Recall@20, MRR@20, and category coverage).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from bench_placements import GRU4REC
from bench_serving import save_result, write_docs
from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop
from nextbest.data.demo_shop.writer import split_demo_shop
from nextbest.data.sessions import Sessions
from nextbest.evaluation.placement import evaluate_placement
from nextbest.events.schema import items_of_table
from nextbest.models.registry import build_model
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import load_placements
from nextbest.recommend.rules.purchase_rules import learn_purchase_rules
from nextbest.serving.registry import serve_model

BEGIN, END = "<!-- strategies:begin -->", "<!-- strategies:end -->"
SHIPPED = ["session", "similar", "complements"]  # the product placement before attributes
WEIGHTS = {"session": 4.0, "complements": 0.5}  # the shipped product placement's
VARIANTS: dict[str, tuple[list[str], dict[str, float]]] = {
    "the session model alone": (["session"], {}),
    "similar (model vectors) alone": (["similar"], {}),
    "attributes alone": (["attributes"], {}),
    "product without attributes (shipped before)": (SHIPPED, {}),
    "product + attributes (weight 0.5)": ([*SHIPPED, "attributes"], {"attributes": 0.5}),
    "product + attributes (weight 1, shipped now)": (
        [*SHIPPED, "attributes"],
        {"attributes": 1.0},
    ),
    "product, attributes in place of similar": (["session", "attributes", "complements"], {}),
}


def placements_file(folder: Path) -> Path:
    parts = ["[filters]\npriced = 'EXCLUDE WHERE item.price <= 0'\n"]
    for k, (name, (sources, extra)) in enumerate(VARIANTS.items()):
        generators = ", ".join(f'{{ source = "{source}", k = 200 }}' for source in sources)
        weights = {s: w for s, w in (WEIGHTS | extra).items() if s in sources}
        weight_text = ", ".join(f"{s} = {w}" for s, w in weights.items())
        parts.append(
            f'[placements.v{k}]\n# {name}\nneeds = ["item_id"]\n'
            f'generators = [{generators}]\nranker = "fusion"\n'
            + (f"ranker_weights = {{ {weight_text} }}\n" if weights else "")
            + 'filters = ["priced"]\ndiversity = { mmr = 0.2, max_per_category = 0 }\n'
        )
    path = folder / "placements.toml"
    path.write_text("\n".join(parts))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=1500)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:  # a bad variant stops here, not after training
        load_placements(placements_file(Path(folder)))
    torch.set_num_threads(2)
    shop = generate_demo_shop(DemoShopConfig(seed=7, n_events=args.events))
    train, test = split_demo_shop(shop)
    model = build_model("gru4rec", GRU4REC)
    model.fit(Sessions.from_events(train))
    torch.set_num_threads(1)
    loaded = serve_model(
        model, "bench-strategies", purchase_rules=learn_purchase_rules(train, shop.items)
    )
    table = ItemTable.build(model.item_ids, items_of_table(shop.items))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        placements = load_placements(placements_file(Path(folder)))
        for k, name in enumerate(VARIANTS):
            result = evaluate_placement(
                placements[f"v{k}"], loaded, table, train, test, (20,), args.sessions
            )
            rows.append({"what": name, "cases": result.cases, "metrics": result.metrics})
            print(name, json.dumps(result.metrics), flush=True)
    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows,
              "events": args.events, "sessions": args.sessions}  # fmt: skip
    save_result("strategies", record)
    lines = [
        f"Measured {record['date']}; `.venv/bin/python benchmarks/bench_strategies.py` (demo "
        f"shop seed 7, {args.events:,} events, GRU4Rec as `nextbest demo` trains it, the "
        f"first {args.sessions:,} test sessions, {rows[0]['cases']:,} cases; the product "
        "placement's ranker, rules and diversity for every row).",
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
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_docs(text, BEGIN, END, heading="Strategy generators")


if __name__ == "__main__":
    main()
