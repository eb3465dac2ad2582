"""`nextbest demo`: the whole engine on its embedded default data, from nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from nextbest.cli.common import console, friendly_errors, results_table, setup_logging
from nextbest.cli.evaluate import (
    config_dict,
    fit_model,
    learn_rules,
    read_items,
    run_evaluation,
)
from nextbest.cli.keywords import learn_keyword_ranker, learn_query_graph, version_extra
from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import EvalConfig, EvalResult
from nextbest.evaluation.report import result_record, summary_rows, write_report
from nextbest.events.io import read_events
from nextbest.events.schema import items_of_table
from nextbest.models.store import nextbest_home, save_version

DEMO_PIPELINE = Path(__file__).parents[1] / "twostage" / "demo.toml"
PIPELINE = "pipeline"  # the two-stage pipeline: the single models' generators and a ranker

DEMO_MODELS: tuple[tuple[str, dict[str, str]], ...] = (
    ("pop", {}),
    ("spop", {}),
    ("covisit", {}),
    ("vsknn", {}),
    ("stan", {}),
    # GRU4Rec with the authors' RSC15 settings (cross-entropy + logQ, shared embedding), but a
    # batch of 64 and 3 epochs so that the demo stays a few minutes on two cores; with the
    # catalog's category, brand and price band beside the item ids (+6.9% MRR@20 on the demo
    # shop with new items, docs/benchmarks.md "Cold start").
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
            "attributes": "category,brand,price",
        },
    ),
)

# Trained only when named by --serve-model: on two cores each adds minutes to the demo (SR-GNN
# trains on every prefix of every session). Settings from docs/session-models.md, with fewer
# epochs for the demo.
DEMO_EXTRA_MODELS: tuple[tuple[str, dict[str, str]], ...] = (
    ("srgnn", {"n_epochs": "2"}),
    ("sasrec", {"loss": "sampled", "n_epochs": "4"}),
)


@friendly_errors
def demo(
    events: Annotated[int, typer.Option(help="size of the generated demo shop")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="demo shop seed")] = 7,
    serve_model: Annotated[
        str,
        typer.Option(
            help="the model to serve (trained and saved last, so it is the newest): pipeline "
            "(the two-stage pipeline) or a single model; srgnn and sasrec are trained only "
            "when named here"
        ),
    ] = PIPELINE,
    host: Annotated[
        str, typer.Option(help="address to serve on (the page hands out the demo's keys)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to serve on")] = 8000,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="serve the demo shop after training")
    ] = True,
) -> None:
    """Generate the demo shop, train the models, evaluate them, report, then serve the shop."""
    from nextbest.serving.demo import DEMO_KEYS, check_port, serve_demo, write_demo_keys

    setup_logging()
    names = [name for name, _ in DEMO_MODELS + DEMO_EXTRA_MODELS] + [PIPELINE]
    if serve_model not in names:
        raise ValueError(f"--serve-model must be one of {', '.join(names)}, not {serve_model!r}")
    if serve:
        check_port(host, port)  # now rather than after minutes of training
    home = nextbest_home()
    served = train_demo_models(home, make_demo_shop(home, events, seed), serve_model)
    if not serve:
        return
    write_demo_keys(home)
    console.print(f"serving {serve_model} (version {served.name})")
    address = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
    console.print(f"demo page: http://{address}:{port}/demo/  (Ctrl+C stops the server)")
    console.print(f"dashboard: http://{address}:{port}/dashboard/  (the admin key below)")
    console.print(f"API keys: {home / DEMO_KEYS}")
    serve_demo(home, port, host)


def make_demo_shop(home: Path, events: int, seed: int) -> Path:
    """The demo shop's folder under `home`, generated only if it is not there yet."""
    from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop, write_demo_shop

    shop_dir = home / "demo-shop"
    if not (shop_dir / "train.tsv").exists():
        with console.status(f"generating the demo shop ({events:,} events)"):
            write_demo_shop(
                generate_demo_shop(DemoShopConfig(seed=seed, n_events=events)), shop_dir
            )
    console.print(f"demo shop: {shop_dir}")
    return shop_dir


# the demo's curated keyword scenarios, beside those mined from its log
DEMO_SCENARIOS = Path(__file__).parents[1] / "data" / "demo_shop" / "scenarios.toml"


def train_demo_models(home: Path, shop_dir: Path, serve_model: str) -> Path:
    """Train, evaluate and save every demo model and the two-stage pipeline, `serve_model`
    last; report; return its folder."""
    train_path, items = shop_dir / "train.tsv", shop_dir / "items.csv"
    events = read_events(train_path)
    train = Sessions.from_events(events)
    # Every saved version carries the purchase rules, so the served one holds back a second
    # treadmill and shows running shoes instead.
    rules, rules_note = learn_rules(events, train_path, items if items.exists() else None)
    catalog = read_items(items) if items.exists() else None
    console.print(rules_note, highlight=False)
    # ... and the query graph of the shop's searches, for the keyword card and the search:
    # train.tsv holds item events only, so the searches come from the full log, of the
    # training sessions only (no test-period search reaches a saved version)
    log_path = shop_dir / "events.parquet"
    if log_path.exists():
        sessions = events["session_id"].unique().implode()
        log = read_events(log_path).filter(pl.col("session_id").is_in(sessions))
        scenarios = DEMO_SCENARIOS if catalog is not None else None
        graph, graph_note = learn_query_graph(log, log_path, catalog, scenarios)
        # ... and the keyword ranker that orders the served card, from the cards the demo
        # shop showed in the training sessions
        cards_path = shop_dir / "keyword_cards.parquet"
        ranker, ranker_note = None, None
        if cards_path.exists() and graph is not None and catalog is not None:
            ranker, ranker_note = learn_keyword_ranker(
                cards_path, log, graph, catalog, "ftrl", events["session_id"].unique()
            )
        del log
    else:
        graph, graph_note = None, f"no query graph built: no {log_path}"
        ranker, ranker_note = None, None
    console.print(graph_note, highlight=False)
    if ranker_note:
        console.print(ranker_note, highlight=False)
    del events
    test = Sessions.from_events(
        read_events(shop_dir / "test.tsv"), item_ids=train.item_ids, min_session_length=2
    )
    records: list[dict[str, Any]] = []
    results: dict[str, EvalResult] = {}
    config = EvalConfig()
    best: tuple[float, Path | None] = (-1.0, None)
    extra = version_extra(rules, graph, ranker)
    names = [name for name, _ in DEMO_MODELS] + [PIPELINE]
    extra_names = [name for name, _ in DEMO_EXTRA_MODELS]
    names += [serve_model] if serve_model in extra_names else []
    ordered = sorted(names, key=lambda name: name == serve_model)  # stable: it goes last
    params_of = dict(DEMO_MODELS + DEMO_EXTRA_MODELS)
    for name in ordered:
        if name == PIPELINE:
            console.print(f"two-stage pipeline: {DEMO_PIPELINE}")
            model, record, result = run_demo_pipeline(train, test, catalog, config)
        else:
            params = params_of[name]
            if catalog is None and "attributes" in params:  # a shop without items.csv
                params = {k: v for k, v in params.items() if k != "attributes"}
            model, fit_seconds = fit_model(name, params, train, catalog)
            result = run_evaluation(model, test, config, train)
            record = result_record(name, config_dict(model), result, fit_seconds)
        records.append(record)
        results[record["model"]] = result
        # the newest version is the one served: serve_model comes last
        folder = save_version(model, home, {"model": name, "metrics": record}, extra=extra)
        if record["mrr@20"] > best[0]:
            best = (record["mrr@20"], folder)
    report = write_report("nextbest demo shop", records, results, home / "demo-report")
    console.print(results_table(*summary_rows(records, config.cutoffs)))
    console.print(f"report: {report}")
    console.print(f"best model by MRR@20: {best[1]}")
    return folder  # the last saved: serve_model's


def run_demo_pipeline(
    train: Sessions, test: Sessions, catalog: Any, config: EvalConfig
) -> tuple[Any, dict[str, Any], EvalResult]:
    """The demo's two-stage pipeline through the honest protocol (the ranker on the latest
    training sessions, the generators refitted on all), evaluated like the single models;
    returns it as a servable model with its record."""
    import time

    from nextbest.cli.pipeline_eval import pipeline_record, pipeline_result
    from nextbest.twostage.model import PipelineModel
    from nextbest.twostage.protocol import load_spec, run_pipeline

    spec = load_spec(DEMO_PIPELINE)
    items = items_of_table(catalog) if catalog is not None else None
    started = time.perf_counter()
    run = run_pipeline(spec, train, test, items, config.ties, say=_say)
    seconds = time.perf_counter() - started
    result = pipeline_result(run, train, config, seconds)
    record = pipeline_record(spec, run, train, config, seconds, result)
    record["model"] = PIPELINE
    assert run.generators is not None
    return PipelineModel.of(spec, run.generators, run.ranker), record, result


def _say(line: str) -> None:
    console.print(f"  {line}", highlight=False)
