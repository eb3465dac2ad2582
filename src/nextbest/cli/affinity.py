"""`nextbest affinity evaluate`: does the affinity profile know what a user buys next?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nextbest.cli.common import console, friendly_errors, results_table

affinity_app = typer.Typer(no_args_is_help=True, help="Affinity profiles of users.")


@affinity_app.command("evaluate")
@friendly_errors
def evaluate(
    train: Annotated[Path, typer.Option(help="training events (.tsv or .parquet)")],
    test: Annotated[Path, typer.Option(help="test events, after the training period")],
    items: Annotated[Path, typer.Option(help="the catalog (.csv or .parquet)")],
    cutoff: Annotated[list[int] | None, typer.Option(help="accuracy@K (repeatable)")] = None,
    half_life_hours: Annotated[
        float | None, typer.Option(help="the profile's half-life (default: the server's)")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the results here")] = None,
) -> None:
    """Predict the brand and the category of each test session's first purchase from the
    user's profile when the session began, against the most popular values and the brands
    and categories the user viewed last."""
    from nextbest.cli.evaluate import read_items
    from nextbest.evaluation.affinity import evaluate_affinity
    from nextbest.events.io import read_events
    from nextbest.events.schema import items_of_table
    from nextbest.recommend.affinity import USER_HALF_LIFE, ItemFacets

    cutoffs = sorted(set(cutoff or [1, 5]))
    if cutoffs[0] < 1:
        raise ValueError(f"--cutoff must be at least 1, not {cutoffs[0]}")
    if half_life_hours is not None and half_life_hours <= 0:
        raise ValueError(f"--half-life-hours must be positive, not {half_life_hours:g}")
    half_life = half_life_hours * 3600.0 if half_life_hours is not None else USER_HALF_LIFE
    with console.status("reading"):
        facets = ItemFacets.build(items_of_table(read_items(items)).values())
        train_events, test_events = read_events(train), read_events(test)
    with console.status("replaying users' events"):
        result = evaluate_affinity(train_events, test_events, facets, cutoffs, half_life)
    if result.cases == 0:
        raise ValueError(
            f"{test} has no purchase of a catalog item in a session of a known user: "
            "nothing to predict"
        )
    console.print(
        f"{result.cases:,} test sessions of {result.users:,} users with a purchase "
        f"(half-life {half_life / 3600:g} h)"
    )
    header = ["predict", "from", *(f"accuracy@{k}" for k in cutoffs)]
    console.print(results_table(header, result.rows(cutoffs)))
    if json_path is not None:
        record = {
            "cases": result.cases,
            "users": result.users,
            "half_life_hours": half_life / 3600,
            "accuracy": result.accuracy,
        }
        json_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        console.print(f"results written to {json_path}")
