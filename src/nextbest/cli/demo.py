"""`nextbest demo`: the whole engine on its embedded default data, from nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from nextbest.cli.common import console, friendly_errors, results_table, setup_logging
from nextbest.cli.evaluate import config_dict, fit_model, load_train, run_evaluation
from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import EvalConfig, EvalResult
from nextbest.evaluation.report import result_record, summary_rows, write_report
from nextbest.events.io import read_events
from nextbest.models.store import nextbest_home, save_version

DEMO_MODELS: tuple[tuple[str, dict[str, str]], ...] = (
    ("pop", {}),
    ("spop", {}),
    ("covisit", {}),
    ("vsknn", {}),
    ("stan", {}),
    # GRU4Rec with the authors' RSC15 settings (cross-entropy + logQ, shared embedding), but a
    # batch of 64 and 3 epochs so that the demo stays a few minutes on two cores.
    (
        "gru4rec",
        {
            "loss": "cross-entropy",
            "logq": "1",
            "constrained_embedding": "true",
            "layers": "100",
            "batch_size": "64",
            "dropout_p_hidden": "0.3",
            "learning_rate": "0.2",
            "momentum": "0.2",
            "n_epochs": "3",
            "threads": "2",
        },
    ),
)


@friendly_errors
def demo(
    events: Annotated[int, typer.Option(help="size of the generated demo shop")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="demo shop seed")] = 7,
) -> None:
    """Generate the demo shop, train the models, evaluate them and report."""
    from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop, write_demo_shop

    setup_logging()
    home = nextbest_home()
    shop_dir = home / "demo-shop"
    if not (shop_dir / "train.tsv").exists():
        with console.status(f"generating the demo shop ({events:,} events)"):
            write_demo_shop(
                generate_demo_shop(DemoShopConfig(seed=seed, n_events=events)), shop_dir
            )
    console.print(f"demo shop: {shop_dir}")
    train = load_train(shop_dir / "train.tsv", skip_bad=False)
    test = Sessions.from_events(
        read_events(shop_dir / "test.tsv"), item_ids=train.item_ids, min_session_length=2
    )
    records: list[dict[str, Any]] = []
    results: dict[str, EvalResult] = {}
    config = EvalConfig()
    best: tuple[float, Path | None] = (-1.0, None)
    for name, params in DEMO_MODELS:
        model, fit_seconds = fit_model(name, params, train)
        result = run_evaluation(model, test, config, train)
        record = result_record(name, config_dict(model), result, fit_seconds)
        records.append(record)
        results[name] = result
        folder = save_version(model, home, {"model": name, "metrics": record})
        if record["mrr@20"] > best[0]:
            best = (record["mrr@20"], folder)
    report = write_report("nextbest demo shop", records, results, home / "demo-report")
    console.print(results_table(*summary_rows(records, config.cutoffs)))
    console.print(f"report: {report}")
    console.print(f"best model by MRR@20: {best[1]}")
