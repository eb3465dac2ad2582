"""`nextbest evaluate ... --placement FILE:NAME`: a whole placement through the next-event
protocol (rules, diversity and promotions included), so what a rule costs and a knob gives is
measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from nextbest.cli.common import console, progress_bar, results_table
from nextbest.evaluation.placement import PlacementResult, evaluate_placement
from nextbest.events.schema import items_of_table
from nextbest.models.base import SessionModel
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import Placement, load_placements
from nextbest.recommend.rules.purchase_rules import PurchaseRules
from nextbest.serving.registry import serve_model


def parse_placement(spec: str) -> Placement:
    """`FILE:NAME` (a placements file and one of its placements) or `NAME` (a shipped one)."""
    path_text, sep, name = spec.rpartition(":")
    path = Path(path_text) if sep else None
    placements = load_placements(path)
    if name not in placements:
        raise ValueError(
            f"--placement {spec!r}: no placement {name!r} in {placements.source}; "
            f"it has: {', '.join(placements.names)}"
        )
    return placements[name]


def run_placement_evaluation(
    placement: Placement,
    model: SessionModel[Any, Any],
    rules: PurchaseRules | None,
    items: pl.DataFrame | None,
    train: pl.DataFrame,
    test: pl.DataFrame,
    cutoffs: tuple[int, ...],
    max_sessions: int | None,
) -> PlacementResult:
    loaded = serve_model(model, f"evaluate-{model.name}", purchase_rules=rules)
    table = ItemTable.build(model.item_ids, items_of_table(items) if items is not None else {})
    sessions = test["session_id"].n_unique()
    if max_sessions is not None:
        sessions = min(sessions, max_sessions)
    with progress_bar() as bar:
        task = bar.add_task(f"evaluating placement {placement.name}", total=sessions)
        result = evaluate_placement(
            placement, loaded, table, train, test, cutoffs, max_sessions,
            progress=lambda n: bar.advance(task, n),
        )  # fmt: skip
    header = ["placement", "cases", *[f"{m}@{k}" for k in cutoffs for m in ("Recall", "MRR")]]
    header += ["intra-list diversity", "category coverage"]
    m = result.metrics
    row = [placement.name, str(result.cases)]
    row += [f"{m[f'{x}@{k}']:.4f}" for k in cutoffs for x in ("recall", "mrr")]
    row += [f"{m['intra_list_diversity']:.3f}", f"{m['category_coverage']:.3f}"]
    console.print(results_table(header, [row]))
    return result
