"""`nextbest evaluate` and `nextbest train`: fit a model on a training file, evaluate, save."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import polars as pl
import typer

from nextbest.cli.common import console, friendly_errors, progress_bar, results_table, setup_logging
from nextbest.cli.models import build_model, parse_params
from nextbest.data.sessions import Sessions
from nextbest.evaluation.metrics import TIE_POLICIES
from nextbest.evaluation.next_event import (
    DEFAULT_CUTOFFS,
    EvalConfig,
    EvalResult,
    cold_start_figures,
    evaluate_next_event,
    prefix_target_sessions,
)
from nextbest.evaluation.report import result_record, summary_rows, write_json, write_report
from nextbest.evaluation.user_protocol import PROTOCOL as USER_PROTOCOL
from nextbest.evaluation.user_protocol import UserEvalResult, evaluate_user_last_session
from nextbest.events.io import read_events
from nextbest.events.schema import items_of_table
from nextbest.models import distributed
from nextbest.models.base import SessionModel
from nextbest.recommend.rules.purchase_rules import PurchaseRules, learn_purchase_rules

ModelOption = Annotated[str, typer.Option("--model", "-m", help="pop, spop, covisit, sknn, ...")]
OptionalModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="pop, spop, covisit, sknn, ... (or --pipeline FILE)"),
]
TrainOption = Annotated[Path, typer.Option("--train", help="training events (.tsv or .parquet)")]
ParamOption = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="model parameter KEY=VALUE (repeatable)")
]
ItemsOption = Annotated[
    Path | None,
    typer.Option("--items", help="the catalog (.csv or .parquet, ITEM_SCHEMA columns)"),
]


def load_train(path: Path, skip_bad: bool, items: pl.DataFrame | None = None) -> Sessions:
    return training_sessions(read_events(path, "skip" if skip_bad else "raise"), path, items)


def training_sessions(
    events: pl.DataFrame, path: Path, items: pl.DataFrame | None = None
) -> Sessions:
    """The coded training sessions; with a catalog, every catalog item joins the vocabulary
    (an item without training events is then still ranked, and can be a test target)."""
    vocabulary = None
    if items is not None:
        seen = events.filter(pl.col("item_id").is_not_null())["item_id"].unique()
        listed = pl.concat([seen, items["item_id"].cast(pl.String)]).unique()
        vocabulary = np.array(sorted(listed.to_list()), dtype=object)
    train = Sessions.from_events(events, item_ids=vocabulary)
    if train.n_events == 0:
        raise ValueError(f"{path} holds no item events to train on")
    return train


def last_event_time(events: pl.DataFrame) -> float | None:
    """When the last training event happened (a retrain from the log holds out what came
    after it), None for a table without events."""
    latest = events["timestamp"].max() if events.height else None
    return float(latest) if isinstance(latest, (int, float)) else None


def check_catalog_need(model: SessionModel[Any, Any], items_path: Path | None) -> None:
    """Refuse, before any data is read, a model that embeds attributes without a catalog."""
    attributes = getattr(model.config, "attributes", ())
    if attributes and items_path is None:
        raise ValueError(
            f"--param attributes={','.join(attributes)} needs the catalog: add --items FILE "
            "(the demo shop's items.csv format)"
        )


def fit_model(
    name: str,
    params: dict[str, str],
    train: Sessions,
    items: pl.DataFrame | None = None,
) -> tuple[SessionModel[Any, Any], float]:
    model = build_model(name, params)
    if items is not None:
        model.use_catalog(items_of_table(items))
    rank, world = join_torchrun(name)
    started = time.perf_counter()
    with console.status(f"fitting {name} on {train.n_events:,} events"):
        model.fit(train)
    leave_torchrun(rank, world)
    return model, time.perf_counter() - started


def join_torchrun(name: str) -> tuple[int, int]:
    """(rank, world size): joins torchrun's process group when it started this process."""
    if not distributed.launched():
        return 0, 1
    if name not in distributed.DISTRIBUTED_MODELS:
        raise ValueError(
            f"{name} trains in one process; torchrun can share the training of "
            f"{', '.join(distributed.DISTRIBUTED_MODELS)} only"
        )
    return join_group()


def join_group() -> tuple[int, int]:
    """(rank, world size) in torchrun's process group, joined; the processes after rank 0
    log warnings only (one set of progress lines, rank 0's)."""
    rank, world = distributed.join()
    if rank > 0:
        logging.getLogger("nextbest").setLevel(logging.WARNING)
    return rank, world


def leave_torchrun(rank: int, world: int) -> None:
    """After a fit across `world` processes: every process leaves the group, and all but
    rank 0 end here (exit code 0): rank 0 saves and reports. Nothing for one process."""
    if world == 1:
        return
    distributed.leave()
    if rank > 0:  # a helper process's part ends with the fit
        raise typer.Exit(0)
    console.print(f"trained by {world} processes (torchrun)")


def run_evaluation(
    model: SessionModel[Any, Any],
    test: Sessions,
    config: EvalConfig,
    train: Sessions,
    count: np.ndarray | None = None,
) -> EvalResult:
    sessions = int((test.lengths >= 2).sum())
    with progress_bar() as bar:
        task = bar.add_task(f"evaluating {model.name}", total=sessions)
        return evaluate_next_event(
            model,
            test,
            config,
            count=count,
            train_support=train.item_support(),
            progress=lambda n: bar.advance(task, n),
        )


def run_user_evaluation(
    model: SessionModel[Any, Any], test: Sessions, config: EvalConfig, train: Sessions
) -> UserEvalResult:
    sessions = int((test.lengths >= 2).sum())
    with progress_bar() as bar:
        task = bar.add_task(f"evaluating {model.name} on users' last sessions", total=sessions)
        return evaluate_user_last_session(
            model, train, test, config, progress=lambda n: bar.advance(task, n)
        )


def _check_users(train: Sessions, train_path: Path, test: Sessions, test_path: Path) -> None:
    for sessions, path in ((train, train_path), (test, test_path)):
        if sessions.user_ids is None:
            raise ValueError(
                f"{path} has no user ids: the user-last-session protocol needs a UserId column "
                "(split with nextbest.data.splits.split_users_last_session)"
            )


def history_rows(
    users: UserEvalResult, cutoffs: tuple[int, ...]
) -> tuple[list[str], list[list[str]]]:
    """The by-history table: one row per bucket of earlier sessions."""
    header = ["earlier sessions", "sessions", "cases"]
    header += [f"{m}@{k}" for k in cutoffs for m in ("Recall", "MRR")]
    rows = []
    groups = users.by_history()
    for label, figures in [*groups.items(), ("3+ (all)", users.focus())]:
        cells = [label, str(int(figures.get("sessions", 0))), str(int(figures["cases"]))]
        cells += [f"{figures[f'{m}@{k}']:.4f}" for k in cutoffs for m in ("recall", "mrr")]
        rows.append(cells)
    return header, rows


def config_dict(model: SessionModel[Any, Any]) -> dict[str, Any]:
    return asdict(model.config) if is_dataclass(model.config) else {}  # type: ignore[arg-type]


def fit_report(model: SessionModel[Any, Any]) -> dict[str, Any]:
    """What the model's `fit` decided by itself (HGRU4Rec: its user level), printed here and
    returned for the JSON record; empty for models that decide nothing."""
    summary = getattr(model, "fit_summary", lambda: None)()
    if summary:
        console.print(summary, highlight=False)
    report: dict[str, Any] = getattr(model, "fit_report", dict)()
    return report


@friendly_errors
def evaluate(
    model_name: OptionalModelOption = None,
    train_path: Annotated[Path | None, typer.Option("--train", help="training events")] = None,
    test_path: Annotated[
        Path | None, typer.Option("--test", help="test events, or prefix/target file")
    ] = None,
    param: ParamOption = None,
    cutoff: Annotated[list[int] | None, typer.Option(help="cutoff K (repeatable)")] = None,
    ties: Annotated[str, typer.Option(help="conservative, standard or median")] = "conservative",
    protocol: Annotated[
        str, typer.Option(help="next-event, prefix-target or user-last-session")
    ] = "next-event",
    json_path: Annotated[Path | None, typer.Option("--json", help="write results here")] = None,
    report: Annotated[Path | None, typer.Option(help="write report.md + plot here")] = None,
    batch_size: Annotated[int, typer.Option(help="sessions scored together")] = 256,
    skip_bad: Annotated[bool, typer.Option(help="skip malformed rows, counting them")] = False,
    placement: Annotated[
        str | None,
        typer.Option(help="evaluate a whole placement: FILE:NAME, or NAME of the shipped ones"),
    ] = None,
    items_path: ItemsOption = None,
    max_sessions: Annotated[
        int | None, typer.Option(help="with --placement: at most this many test sessions")
    ] = None,
    pipeline: Annotated[
        Path | None,
        typer.Option(
            help="a two-stage pipeline file (generators + learned ranker) instead of --model"
        ),
    ] = None,
) -> None:
    """Fit a model on TRAIN and evaluate it on TEST with the next-event protocol.

    `--protocol user-last-session`: TEST holds each user's last session and both files have a
    UserId column; models with user state (hgru4rec) first replay the user's TRAIN sessions.
    `--placement`: the placement's whole pipeline answers each case (rules, diversity and
    promotions included; `--items` gives the catalog and learns the purchase rules).
    `--pipeline FILE`: several generators and a learned ranker (a `[pipeline]` TOML file, see
    benchmarks/pipelines/); the generators are fitted before a cut of TRAIN, the ranker on the
    sessions after it, then the generators on all of TRAIN; the JSON adds candidate_recall@K.
    `--items` (without `--placement`): every catalog item is ranked, test events of catalog
    items unseen in training stay as targets, and the results add cold_cases and
    cold_recall@K / cold_mrr@K over them; GRU4Rec's `attributes=` reads the catalog.
    """
    setup_logging()
    if train_path is None or test_path is None:
        raise ValueError("--train and --test are both required")
    if (model_name is None) == (pipeline is None):
        raise ValueError("give either --model NAME or --pipeline FILE (one of them)")
    if ties not in TIE_POLICIES:
        raise ValueError(f"--ties must be one of {', '.join(TIE_POLICIES)}, not {ties!r}")
    config = EvalConfig(
        cutoffs=tuple(sorted(set(cutoff))) if cutoff else DEFAULT_CUTOFFS,
        ties=ties,  # type: ignore[arg-type]
        batch_size=batch_size,
    )
    if pipeline is not None:
        if protocol != "next-event" or placement is not None or param:
            raise ValueError(
                "--pipeline runs the next-event protocol on its own file's generators: "
                "leave out --protocol, --placement and --param"
            )
        if distributed.launched():
            raise ValueError(
                "evaluate --pipeline runs in one process: run it without torchrun "
                "(train --pipeline trains the attention_gru ranker across processes)"
            )
        from nextbest.cli.pipeline_eval import evaluate_pipeline_cli

        evaluate_pipeline_cli(
            pipeline, train_path, test_path, items_path, config, json_path, skip_bad
        )
        return
    assert model_name is not None
    if placement is not None:
        evaluate_placement_cli(
            model_name, train_path, test_path, param, cutoff, placement, items_path,
            max_sessions, json_path, skip_bad,
        )  # fmt: skip
        return
    if protocol not in ("next-event", "prefix-target", USER_PROTOCOL):
        raise ValueError(
            f"--protocol must be next-event, prefix-target or user-last-session, not {protocol!r}"
        )
    params = parse_params(param or [])
    check_catalog_need(build_model(model_name, params), items_path)  # before loading any data
    items = read_items(items_path) if items_path is not None else None
    train = load_train(train_path, skip_bad, items)
    count = None
    if protocol == "prefix-target":
        from nextbest.events.importers import import_prefix_target

        cases = import_prefix_target(test_path, on_error="skip" if skip_bad else "raise")
        # The files' own times need not share the training file's clock (retailrocket's are Unix
        # times, its training times running numbers), so every case is placed right after the
        # end of training: time-aware models (STAN) then see sensible recency.
        after_training = np.full(len(cases.targets), float(train.times.max()) + 1.0)
        test, count = prefix_target_sessions(
            cases.prefixes, cases.targets, train.item_ids, times=after_training
        )
    else:
        test_events = read_events(test_path, "skip" if skip_bad else "raise")
        test = Sessions.from_events(test_events, item_ids=train.item_ids, min_session_length=2)
    if protocol == USER_PROTOCOL:
        _check_users(train, train_path, test, test_path)
    model, fit_seconds = fit_model(model_name, params, train, items)
    users: UserEvalResult | None = None
    if protocol == USER_PROTOCOL:
        users = run_user_evaluation(model, test, config, train)
        result = users.result
    else:
        result = run_evaluation(model, test, config, train, count)
    if items is not None:
        result.extra.update(cold_start_figures(result, train.item_support()))
    record = result_record(model_name, config_dict(model), result, fit_seconds, protocol)
    record.update(fit_report(model))
    console.print(results_table(*summary_rows([record], config.cutoffs)))
    if items is not None:
        console.print(cold_line(record, config.cutoffs), highlight=False)
    if users is not None:
        console.print(results_table(*history_rows(users, config.cutoffs)))
    if json_path is not None:
        write_json(record, json_path)
        console.print(f"results written to {json_path}")
    if report is not None:
        path = write_report(
            f"{model_name} on {test_path.name}", [record], {model_name: result}, report
        )
        console.print(f"report written to {path}")


def cold_line(record: dict[str, Any], cutoffs: tuple[int, ...]) -> str:
    """One line on the cases whose target is a catalog item without training events."""
    if not record["cold_cases"]:
        return "cold items: no test case targets a catalog item unseen in training"
    figures = ", ".join(
        f"Recall@{k} {record[f'cold_recall@{k}']:.4f} MRR@{k} {record[f'cold_mrr@{k}']:.4f}"
        for k in cutoffs
    )
    return f"cold items ({record['cold_cases']:,} cases, targets unseen in training): {figures}"


def read_items(path: Path) -> pl.DataFrame:
    """The catalog from `.csv`/`.tsv` (the demo shop's items.csv) or `.parquet`, as
    ITEM_SCHEMA; a bad value is named by row and column."""
    from nextbest.events.catalog_quality import read_text_table, typed_items

    frame = read_text_table(path)
    missing = [c for c in ("item_id", "category_path") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the catalog {path} lacks column(s) {', '.join(missing)} (it has "
            f"{', '.join(frame.columns[:8])}); purchase rules need item_id and category_path"
        )
    return typed_items(frame, f"the catalog {path}")


def learn_rules(
    events: pl.DataFrame, events_path: Path, items_path: Path | None
) -> tuple[PurchaseRules | None, str]:
    """The purchase rules of `events` with the catalog at `items_path`, when there are any,
    and one line saying what was learned, or why nothing was."""
    if items_path is None:
        return None, "no purchase rules learned: no catalog given (--items FILE learns them)"
    items = read_items(items_path)
    n_purchases = events.filter(pl.col("type") == "purchase").height
    if n_purchases == 0:
        return None, f"no purchase rules learned: {events_path} has no purchase events"
    rules = learn_purchase_rules(events, items)
    if rules.purchases == 0:
        return None, (
            f"no purchase rules learned: none of the {n_purchases:,} purchases in "
            f"{events_path} is of an item with a category in {items_path}"
        )
    return rules, rules.summary()


def evaluate_placement_cli(
    model_name: str,
    train_path: Path,
    test_path: Path,
    param: list[str] | None,
    cutoff: list[int] | None,
    placement_spec: str,
    items_path: Path | None,
    max_sessions: int | None,
    json_path: Path | None,
    skip_bad: bool,
) -> None:
    from nextbest.cli.placement_eval import parse_placement, run_placement_evaluation

    chosen = parse_placement(placement_spec)  # a bad file or name stops before any fitting
    if max_sessions is not None and max_sessions < 1:
        raise ValueError(f"--max-sessions must be >= 1, not {max_sessions}")
    cutoffs = tuple(sorted(set(cutoff))) if cutoff else DEFAULT_CUTOFFS
    params = parse_params(param or [])
    check_catalog_need(build_model(model_name, params), items_path)
    items = read_items(items_path) if items_path is not None else None
    train_events = read_events(train_path, "skip" if skip_bad else "raise")
    test_events = read_events(test_path, "skip" if skip_bad else "raise")
    train_sessions = Sessions.from_events(train_events)
    if train_sessions.n_events == 0:
        raise ValueError(f"{train_path} holds no item events to train on")
    model, fit_seconds = fit_model(model_name, params, train_sessions, items)
    rules, note = learn_rules(train_events, train_path, items_path)
    console.print(note, highlight=False)
    result = run_placement_evaluation(
        chosen, model, rules, items, train_events, test_events, cutoffs, max_sessions
    )
    if json_path is not None:
        record = {
            "model": model_name, "params": config_dict(model), "placement": placement_spec,
            "protocol": "next-event", "cases": result.cases, **result.metrics,
            "fit_seconds": round(fit_seconds, 3), "eval_seconds": round(result.eval_seconds, 3),
        }  # fmt: skip
        write_json(record, json_path)
        console.print(f"results written to {json_path}")


@friendly_errors
def train(
    train_path: Annotated[
        Path | None, typer.Option("--train", help="training events (.tsv or .parquet)")
    ] = None,
    model_name: OptionalModelOption = None,
    param: ParamOption = None,
    items_path: ItemsOption = None,
    skip_bad: Annotated[bool, typer.Option(help="skip malformed rows, counting them")] = False,
    pipeline: Annotated[
        Path | None,
        typer.Option(
            help="train a two-stage pipeline file (its generators and learned ranker) as one "
            "version, instead of --model"
        ),
    ] = None,
    scenarios: Annotated[
        Path | None,
        typer.Option(
            help="curated keyword scenarios (TOML, see docs/keywords.md), added to the mined "
            "ones in the version's query graph; needs --items"
        ),
    ] = None,
    keyword_cards: Annotated[
        Path | None,
        typer.Option(
            help="keyword cards shown and clicked (.parquet: the demo's keyword_cards.parquet "
            "or `nextbest keywords export-cards`): fit a keyword ranker that orders the served "
            "card; needs --items and searches in TRAIN"
        ),
    ] = None,
    keyword_ranker: Annotated[
        str, typer.Option(help="the keyword ranker: ftrl or attention-gru")
    ] = "ftrl",
    from_log: Annotated[
        bool,
        typer.Option(
            "--from-log",
            help="train on the server's own event log and catalog, and promote the new "
            "version only if it is not worse than the served one (see docs/operations.md)",
        ),
    ] = False,
    holdout_days: Annotated[
        float, typer.Option(help="--from-log: the latest days the gate compares on")
    ] = 1.0,
    margin: Annotated[
        float,
        typer.Option(help="--from-log: how much lower (a share) the candidate's MRR@20 may be"),
    ] = 0.01,
    gate_placement: Annotated[
        str, typer.Option(help="--from-log: the placement both versions answer the gate with")
    ] = "next",
    gate_sessions: Annotated[
        int, typer.Option(help="--from-log: held-out sessions the gate walks, at most")
    ] = 2000,
    refit: Annotated[
        bool,
        typer.Option(help="--from-log: train the passing candidate again on every event"),
    ] = True,
    incremental: Annotated[
        bool,
        typer.Option(
            help="--from-log: a served GRU4Rec goes on training on the new events only "
            "(new items get rows), instead of a full retrain"
        ),
    ] = False,
) -> None:
    """Fit a model and save it as a new version under $NEXTBEST_HOME/models.

    With `--items`, the purchase rules (durables held back, consumables' cycles, complements)
    are learned from the purchases in TRAIN and saved with the version.
    `--pipeline FILE`: the ranker learns on the latest training sessions' candidates from
    generators fitted before them, then the generators are fitted on all of TRAIN; the
    version serves the `next` placement (and every placement that names the `generators`
    source or the `learned` ranker).
    `--from-log` (instead of `--train`): the server's log and catalog, the recipe of the served
    version unless --model or --pipeline names one, and a gate before the version serves.
    Under torchrun (`torchrun --nproc-per-node 2 -m nextbest train ...`), `--model gru4rec` and
    a `--pipeline` with the attention_gru ranker (and its gru4rec generators) train across the
    processes; rank 0 saves the version (see docs/operations.md).
    """
    setup_logging()
    if from_log and distributed.launched():
        raise ValueError(
            "--from-log trains in one process (it holds the retrain lock): run it without torchrun"
        )
    if from_log:
        from nextbest.cli.retrain import Recipe, retrain_from_log

        if train_path is not None or items_path is not None:
            raise ValueError(
                "--from-log reads the server's log and catalog: leave out --train and --items"
            )
        if model_name is not None and pipeline is not None:
            raise ValueError("give --model NAME or --pipeline FILE, not both")
        if pipeline is not None and param:
            raise ValueError("--pipeline takes its parameters from its file: leave out --param")
        if model_name is None and param:
            raise ValueError("--param goes with --model NAME")
        if gate_sessions < 1:
            raise ValueError(f"--gate-sessions must be >= 1, not {gate_sessions}")
        recipe = None
        if model_name is not None or pipeline is not None:
            recipe = Recipe(model_name, tuple(param or ()), str(pipeline) if pipeline else None)
        retrain_from_log(
            recipe, holdout_days, margin, gate_placement, gate_sessions, refit, incremental
        )
        return
    if incremental:
        raise ValueError("--incremental goes with --from-log (a served version to go on from)")
    if train_path is None:
        raise ValueError("give --train FILE (or --from-log: the server's own event log)")
    if (model_name is None) == (pipeline is None):
        raise ValueError("give either --model NAME or --pipeline FILE (one of them)")
    if pipeline is not None:
        if param:
            raise ValueError(
                "--pipeline takes its generators' parameters from its file: leave out --param"
            )
        from nextbest.cli.pipeline_eval import train_pipeline_cli

        train_pipeline_cli(
            pipeline, train_path, items_path, skip_bad, scenarios, keyword_cards, keyword_ranker
        )  # fmt: skip
        return
    assert model_name is not None
    train_model_version(
        train_path, model_name, param or [], items_path, skip_bad, scenarios, keyword_cards,
        keyword_ranker,
    )  # fmt: skip


def train_model_version(
    train_path: Path,
    model_name: str,
    param: list[str],
    items_path: Path | None,
    skip_bad: bool = False,
    scenarios: Path | None = None,
    keyword_cards: Path | None = None,
    keyword_ranker: str = "ftrl",
    home: Path | None = None,
) -> Path:
    """Fit `model_name` on `train_path` and save it as a version under `home`/models (default
    $NEXTBEST_HOME), with its recipe (how to train it again) in its meta."""
    from nextbest.cli.retrain import Recipe
    from nextbest.cli.version_inputs import read_version_inputs

    params = parse_params(param)
    unfitted = build_model(model_name, params)
    check_catalog_need(unfitted, items_path)
    embeds = bool(getattr(unfitted.config, "attributes", ()))
    inputs = read_version_inputs(
        train_path, items_path, skip_bad, scenarios, keyword_cards, keyword_ranker
    )
    # A model that embeds attributes ranks the whole catalog (new items by their attributes);
    # the others keep the items they were trained on.
    items = inputs.item_table if embeds else None
    train_sessions = training_sessions(inputs.release_events(), train_path, items)
    model, fit_seconds = fit_model(model_name, params, train_sessions, items)
    meta = {
        "model": model_name,
        "params": config_dict(model),
        "recipe": Recipe(model_name, tuple(param)).to_meta(),
        "train": str(train_path),
        "events": train_sessions.n_events,
        "fit_seconds": round(fit_seconds, 3),
        **inputs.meta(),
        **fit_report(model),
    }
    folder = inputs.save(model, home, meta, f"trained {model_name} in {fit_seconds:.1f} s")
    return folder
