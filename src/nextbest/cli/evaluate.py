"""`nextbest evaluate` and `nextbest train`: fit a model on a training file, evaluate, save."""

from __future__ import annotations

import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from nextbest.cli.common import console, friendly_errors, progress_bar, results_table, setup_logging
from nextbest.cli.models import build_model, parse_params
from nextbest.data.sessions import Sessions
from nextbest.evaluation.metrics import TIE_POLICIES
from nextbest.evaluation.next_event import (
    DEFAULT_CUTOFFS,
    EvalConfig,
    EvalResult,
    evaluate_next_event,
    prefix_target_sessions,
)
from nextbest.evaluation.report import result_record, summary_rows, write_json, write_report
from nextbest.evaluation.user_protocol import PROTOCOL as USER_PROTOCOL
from nextbest.evaluation.user_protocol import UserEvalResult, evaluate_user_last_session
from nextbest.events.io import read_events
from nextbest.models.base import SessionModel
from nextbest.models.store import nextbest_home, save_version

ModelOption = Annotated[str, typer.Option("--model", "-m", help="pop, spop, covisit, sknn, ...")]
TrainOption = Annotated[Path, typer.Option("--train", help="training events (.tsv or .parquet)")]
ParamOption = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="model parameter KEY=VALUE (repeatable)")
]


def load_train(path: Path, skip_bad: bool) -> Sessions:
    train = Sessions.from_events(read_events(path, "skip" if skip_bad else "raise"))
    if train.n_events == 0:
        raise ValueError(f"{path} holds no item events to train on")
    return train


def fit_model(
    name: str, params: dict[str, str], train: Sessions
) -> tuple[SessionModel[Any, Any], float]:
    model = build_model(name, params)
    started = time.perf_counter()
    with console.status(f"fitting {name} on {train.n_events:,} events"):
        model.fit(train)
    return model, time.perf_counter() - started


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


@friendly_errors
def evaluate(
    model_name: ModelOption,
    train_path: TrainOption,
    test_path: Annotated[Path, typer.Option("--test", help="test events, or prefix/target file")],
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
) -> None:
    """Fit a model on TRAIN and evaluate it on TEST with the next-event protocol.

    `--protocol user-last-session`: TEST holds each user's last session and both files have a
    UserId column; models with user state (hgru4rec) first replay the user's TRAIN sessions.
    """
    setup_logging()
    if ties not in TIE_POLICIES:
        raise ValueError(f"--ties must be one of {', '.join(TIE_POLICIES)}, not {ties!r}")
    if protocol not in ("next-event", "prefix-target", USER_PROTOCOL):
        raise ValueError(
            f"--protocol must be next-event, prefix-target or user-last-session, not {protocol!r}"
        )
    config = EvalConfig(
        cutoffs=tuple(sorted(set(cutoff))) if cutoff else DEFAULT_CUTOFFS,
        ties=ties,  # type: ignore[arg-type]
        batch_size=batch_size,
    )
    params = parse_params(param or [])
    build_model(model_name, params)  # refuse bad parameters before loading any data
    train = load_train(train_path, skip_bad)
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
    model, fit_seconds = fit_model(model_name, params, train)
    users: UserEvalResult | None = None
    if protocol == USER_PROTOCOL:
        users = run_user_evaluation(model, test, config, train)
        result = users.result
    else:
        result = run_evaluation(model, test, config, train, count)
    record = result_record(model_name, config_dict(model), result, fit_seconds, protocol)
    console.print(results_table(*summary_rows([record], config.cutoffs)))
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


@friendly_errors
def train(
    model_name: ModelOption,
    train_path: TrainOption,
    param: ParamOption = None,
    skip_bad: Annotated[bool, typer.Option(help="skip malformed rows, counting them")] = False,
) -> None:
    """Fit a model and save it as a new version under $NEXTBEST_HOME/models."""
    setup_logging()
    params = parse_params(param or [])
    build_model(model_name, params)
    train_sessions = load_train(train_path, skip_bad)
    model, fit_seconds = fit_model(model_name, params, train_sessions)
    meta = {
        "model": model_name,
        "params": config_dict(model),
        "train": str(train_path),
        "events": train_sessions.n_events,
        "fit_seconds": round(fit_seconds, 3),
    }
    folder = save_version(model, nextbest_home(), meta)
    console.print(f"trained {model_name} in {fit_seconds:.1f} s -> {folder}")
