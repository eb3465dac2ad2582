"""`nextbest tune`: search a neural model's hyperparameters (GRU4Rec, SR-GNN, the self-attentive
model) on a validation split of the training data."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from nextbest.cli.common import console, friendly_errors, progress_bar, setup_logging
from nextbest.cli.models import parse_params
from nextbest.data.sessions import Sessions
from nextbest.data.splits import split_last_sessions
from nextbest.events.io import read_events
from nextbest.models.base import parse_config


@friendly_errors
def tune(
    train_path: Annotated[Path, typer.Option("--train", help="training events (.tsv/.parquet)")],
    model_name: Annotated[
        str, typer.Option("--model", "-m", help="gru4rec, srgnn or sasrec")
    ] = "gru4rec",
    valid_path: Annotated[
        Path | None, typer.Option("--valid", help="validation events; default: split --train")
    ] = None,
    valid_share: Annotated[
        float, typer.Option(help="share of the latest sessions held out when --valid is absent")
    ] = 0.1,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="fix a parameter KEY=VALUE (it is not searched)"),
    ] = None,
    trials: Annotated[int, typer.Option(help="number of trials")] = 20,
    timeout: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    seed: Annotated[int, typer.Option(help="seed of the search")] = 0,
    json_path: Annotated[Path | None, typer.Option("--json", help="write trials here")] = None,
) -> None:
    """Search a model's hyperparameters (GRU4Rec: the authors' space), maximising validation
    MRR@20."""
    from nextbest.models.tuning import TUNABLE_MODELS, best_config
    from nextbest.models.tuning import tune as run_tune

    setup_logging()
    if model_name not in TUNABLE_MODELS:
        raise ValueError(
            f"--model: {model_name!r} cannot be tuned; choose one of {', '.join(TUNABLE_MODELS)}"
        )
    if trials < 1:
        raise ValueError(f"--trials must be >= 1, not {trials}")
    fixed = parse_params(param or [])
    base = parse_config(TUNABLE_MODELS[model_name], fixed)
    events = read_events(train_path)
    if valid_path is None:
        split = split_last_sessions(events, valid_share)
        train_events, valid_events = split.train, split.test
    else:
        train_events, valid_events = events, read_events(valid_path)
    train = Sessions.from_events(train_events)
    valid = Sessions.from_events(valid_events, item_ids=train.item_ids, min_session_length=2)
    if valid.n_sessions == 0:
        raise ValueError("the validation part has no session of 2+ known items to evaluate")
    console.print(
        f"tuning on {train.n_events:,} events, validating on {valid.n_sessions:,} sessions"
    )
    with progress_bar() as bar:
        task = bar.add_task("trials", total=trials)
        study = run_tune(
            train, valid, base, set(fixed), trials, timeout, seed,
            on_trial=lambda _study, _trial: bar.advance(task),
        )  # fmt: skip
    best = best_config(study, base, set(fixed))
    console.print(f"best validation MRR@20 {study.best_value:.4f} with:")
    shown = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in study.best_params.items()}
    console.print(" ".join(f"--param {k}={v}" for k, v in sorted(shown.items())))
    if json_path is not None:
        record = {
            "best_value": study.best_value,
            "best_params": study.best_params,
            "best_config": asdict(best),
            "trials": [
                {"number": t.number, "value": t.value, "params": t.params, **t.user_attrs}
                for t in study.trials
            ],
        }
        json_path.write_text(json.dumps(record, indent=2, default=list) + "\n")
        console.print(f"trials written to {json_path}")
