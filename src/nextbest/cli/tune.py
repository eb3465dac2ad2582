"""`nextbest tune`: search a neural model's hyperparameters (GRU4Rec, SR-GNN, the self-attentive
model) on a validation split of the training data; with `--pipeline FILE:NAME`, a whole
placement's knobs instead (`evaluation/placement_tuning.py`), optionally checked with a
simulated A/B test of the tuned placement against the file's."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import polars as pl
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
    pipeline: Annotated[
        str | None,
        typer.Option(
            help="tune a placement instead: FILE:NAME (a placements file, one of its "
            "placements); --model serves it, fitted on --train"
        ),
    ] = None,
    items_path: Annotated[
        Path | None, typer.Option("--items", help="with --pipeline: the catalog (.csv/.parquet)")
    ] = None,
    max_sessions: Annotated[
        int | None, typer.Option(help="with --pipeline: validation sessions per trial, at most")
    ] = 2_000,
    out: Annotated[
        Path | None, typer.Option(help="with --pipeline: write the tuned placements file here")
    ] = None,
    simulate: Annotated[
        int,
        typer.Option(
            help="with --pipeline: check the winner against the file's placement "
            "with this many simulated shoppers (needs --home's demo shop)"
        ),
    ] = 0,
    home: Annotated[
        Path | None, typer.Option(help="with --simulate: the data folder; default NEXTBEST_HOME")
    ] = None,
) -> None:
    """Search a model's hyperparameters (GRU4Rec: the authors' space), maximising validation
    MRR@20; or, with --pipeline, a placement's over-fetch, ranker weights, diversity and rule
    knobs."""
    if pipeline is not None:
        tune_pipeline(
            pipeline, train_path, model_name, param, valid_path, valid_share, items_path,
            trials, timeout, seed, max_sessions, out, simulate, home, json_path,
        )  # fmt: skip
        return
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
    train_events, valid_events = train_and_validation(train_path, valid_path, valid_share)
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


def train_and_validation(
    train_path: Path, valid_path: Path | None, valid_share: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The training events and the validation events: --valid's, or the latest
    `valid_share` of --train's sessions."""
    events = read_events(train_path)
    if valid_path is None:
        split = split_last_sessions(events, valid_share)
        return split.train, split.test
    return events, read_events(valid_path)


def tune_pipeline(
    spec: str,
    train_path: Path,
    model_name: str,
    param: list[str] | None,
    valid_path: Path | None,
    valid_share: float,
    items_path: Path | None,
    trials: int,
    timeout: float | None,
    seed: int,
    max_sessions: int | None,
    out: Path | None,
    simulate: int,
    home: Path | None,
    json_path: Path | None = None,
) -> None:
    """`nextbest tune --pipeline FILE:NAME`: the placement's knobs against validation MRR@20."""
    from nextbest.cli.evaluate import fit_model, learn_rules, read_items
    from nextbest.evaluation.placement_tuning import tune_placement
    from nextbest.events.schema import items_of_table
    from nextbest.recommend.items import ItemTable
    from nextbest.recommend.placements import DEFAULT_FILE, PlacementsError, parse_placements
    from nextbest.serving.registry import serve_model
    from nextbest.toml_files import read_toml

    setup_logging()
    path_text, sep, name = spec.rpartition(":")
    path = Path(path_text) if sep else DEFAULT_FILE
    raw = read_toml(path, "placements", PlacementsError)
    placements = parse_placements(raw, str(path))  # a bad file stops before any fitting
    if name not in placements:
        raise ValueError(f"--pipeline {spec!r}: no placement {name!r} in {path}; it has: "
                         f"{', '.join(placements.names)}")  # fmt: skip
    if trials < 1:
        raise ValueError(f"--trials must be >= 1, not {trials}")
    if max_sessions is not None and max_sessions < 1:
        raise ValueError(f"--max-sessions must be >= 1, not {max_sessions}")
    if simulate < 0:
        raise ValueError(f"--simulate must be >= 0, not {simulate}")
    out = out or Path(f"{path.stem}-tuned.toml")
    train_events, valid_events = train_and_validation(train_path, valid_path, valid_share)
    items = read_items(items_path) if items_path is not None else None
    model, _ = fit_model(model_name, parse_params(param or []), Sessions.from_events(train_events),
                         items)  # fmt: skip
    rules, note = learn_rules(train_events, train_path, items_path)
    console.print(note, highlight=False)
    loaded = serve_model(model, f"tune-{model.name}", purchase_rules=rules)
    table = ItemTable.build(model.item_ids, items_of_table(items) if items is not None else {})
    console.print(f"tuning placement {name} of {path} with {model_name}: {trials} trials on "
                  f"{valid_events['session_id'].n_unique():,} validation sessions "
                  f"(at most {max_sessions or 'all'} per trial)", highlight=False)  # fmt: skip
    with progress_bar() as bar:
        task = bar.add_task("trials", total=trials)
        study, best = tune_placement(
            raw, name, loaded, table, train_events, valid_events, trials, seed, max_sessions,
            timeout, on_trial=lambda _study, _trial: bar.advance(task),
        )  # fmt: skip
    first = study.trials[0]
    console.print(
        f"MRR@20 on validation: the file's {first.value:.4f}, the best {study.best_value:.4f} "
        f"({study.best_value / first.value - 1:+.1%})" if first.value else
        f"MRR@20 on validation: the best {study.best_value:.4f}", highlight=False,
    )  # fmt: skip
    shown = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in study.best_params.items()}
    console.print(" ".join(f"{k}={v}" for k, v in sorted(shown.items())), highlight=False)
    import tomli_w

    out.write_text(tomli_w.dumps(best))
    console.print(f"tuned placements written to {out}")
    if json_path is not None:
        trials_record = [{"number": t.number, "value": t.value, "params": t.params, **t.user_attrs}
                         for t in study.trials]  # fmt: skip
        record = {"placement": spec, "best_value": study.best_value, "as_is": first.value,
                  "best_params": study.best_params, "trials": trials_record}  # fmt: skip
        json_path.write_text(json.dumps(record, indent=2) + "\n")
        console.print(f"trials written to {json_path}")
    if simulate:
        simulate_tuned(path, out, name, simulate, seed, home)


def simulate_tuned(
    original: Path, tuned: Path, name: str, shoppers: int, seed: int, home: Path | None
) -> None:
    """A simulated A/B of the tuned placement against the file's, both on the served model."""
    import datetime

    import tomli_w

    from nextbest.cli.simulate import print_rehearsal, rehearse

    experiment = tuned.with_name(f"{tuned.stem}-experiment.toml")
    variants = [
        {"name": label, "control": control, "placements": str(file.resolve()), "share": 0.5}
        for label, control, file in (("as-is", True, original), ("tuned", False, tuned))
    ]
    definition = {"experiments": {f"tuned-{name}": {
        "placement": name, "salt": f"tuned-{name}-{seed}",
        "start": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), "variants": variants,
    }}}  # fmt: skip
    experiment.write_text(tomli_w.dumps(definition))
    console.print(f"simulated A/B of the tuned placement: {experiment}")
    print_rehearsal(rehearse(experiment, shoppers, home, seed=seed))
