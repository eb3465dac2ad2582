"""`nextbest evaluate --pipeline FILE`: the two-stage pipeline (several generators, a learned
ranker) through the next-event protocol, with the honest cut of `nextbest.twostage.protocol`.

The JSON is `evaluate --model`'s record plus `candidate_recall@K` (the share of cases whose
target is among the union of every generator's first K: what any ranker can reach at most),
each generator's own recall, the seconds of every part, and the ranker's feature gains."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nextbest.cli.common import console, results_table
from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import EvalConfig, EvalResult
from nextbest.evaluation.report import result_record, summary_rows, write_json
from nextbest.events.io import read_events
from nextbest.events.schema import items_of_table
from nextbest.models import distributed
from nextbest.twostage.protocol import (
    PipelineRun,
    PipelineSpec,
    list_figures,
    load_spec,
    run_pipeline,
)


def evaluate_pipeline_cli(
    pipeline_path: Path,
    train_path: Path,
    test_path: Path,
    items_path: Path | None,
    config: EvalConfig,
    json_path: Path | None,
    skip_bad: bool,
) -> dict[str, Any]:
    from nextbest.cli.evaluate import load_train, read_items

    spec = load_spec(pipeline_path)  # a bad file fails before any data is read
    catalog = items_of_table(read_items(items_path)) if items_path is not None else None
    on_error: Literal["skip", "raise"] = "skip" if skip_bad else "raise"
    train = load_train(train_path, skip_bad)
    test_events = read_events(test_path, on_error)
    test = Sessions.from_events(test_events, item_ids=train.item_ids, min_session_length=2)
    if test.n_events == 0:
        raise ValueError(f"{test_path} holds no session of two or more known items to evaluate")
    started = time.perf_counter()
    run = run_pipeline(
        spec,
        train,
        test,
        catalog,
        config.ties,
        say=lambda line: console.print(line, highlight=False),
    )
    record = pipeline_record(spec, run, train, config, time.perf_counter() - started)
    console.print(results_table(*summary_rows([record], config.cutoffs)))
    recall = ", ".join(f"@{k} {v:.4f}" for k, v in run.candidate_recall.items())
    console.print(f"candidate recall (every generator's first K merged): {recall}", highlight=False)
    console.print(
        "each generator's recall: "
        + ", ".join(f"{name} {value:.4f}" for name, value in run.recall_of_generators.items()),
        highlight=False,
    )
    example = explain_example(run, train)
    if example:
        console.print(example, highlight=False)
    if json_path is not None:
        write_json(record, json_path)
        console.print(f"results written to {json_path}")
    return record


def explain_example(run: PipelineRun, train: Sessions, n: int = 5) -> str:
    """The first test case's top items and the features that moved each (a ranker that can
    explain itself: gbdt)."""
    explain = getattr(run.ranker, "explain", None)
    data = run.test_data
    if explain is None or not len(data):
        return ""
    rows = np.flatnonzero(data.case == data.case[0])
    rows = rows[np.argsort(-run.scores[rows], kind="stable")][:n]
    lines = ["why the first test case's top items rank where they do (feature: contribution):"]
    for row, reasons in zip(rows, explain(data, rows), strict=True):
        why = ", ".join(f"{name} {value:+.2f}" for name, value in reasons)
        lines.append(f"  {train.item_ids[data.item[row]]}: {why}")
    return "\n".join(lines)


def pipeline_result(
    run: PipelineRun, train: Sessions, config: EvalConfig, seconds: float
) -> EvalResult:
    """The run's figures as `evaluate --model` reports them (for tables and reports)."""
    support = train.item_support()
    coverage, popularity = list_figures(run.test_data, run.scores, support, config.cutoffs)
    return EvalResult(
        ranks=run.ranks,
        positions=run.positions,
        cutoffs=config.cutoffs,
        ties=config.ties,
        coverage=coverage,
        popularity=popularity,
        eval_seconds=seconds,
    )


def pipeline_record(
    spec: PipelineSpec,
    run: PipelineRun,
    train: Sessions,
    config: EvalConfig,
    seconds: float,
    result: EvalResult | None = None,
) -> dict[str, Any]:
    if result is None:
        result = pipeline_result(run, train, config, seconds)
    params = {
        "ranker": spec.ranker,
        "ranker_params": dict(spec.ranker_params),
        "ranker_share": spec.ranker_share,
        "ranker_folds": spec.ranker_folds,
        "generators": [
            {"model": g.model, "k": g.k, "params": dict(g.params), "label": g.name}
            for g in spec.generators
        ],
    }
    fits = sum(v for k, v in run.seconds.items() if k.startswith("fit") or k == "ranker fit")
    record = result_record(f"pipeline:{spec.ranker}", params, result, fits)
    for k, value in run.candidate_recall.items():
        record[f"candidate_recall@{k}"] = round(value, 6)
    record["generator_recall"] = {k: round(v, 6) for k, v in run.recall_of_generators.items()}
    record["seconds"] = {k: round(v, 2) for k, v in run.seconds.items()}
    record["ranker_train_cases"] = run.ranker_train_cases
    importance: dict[str, float] = getattr(run.ranker, "importance", dict)()
    if importance:
        ranked = sorted(importance.items(), key=lambda kv: -kv[1])
        record["feature_gain"] = {name: round(float(v), 5) for name, v in ranked}
    record["candidates_per_case"] = round(len(run.test_data) / max(len(run.ranks), 1), 1)
    record["cases_without_candidates"] = int(len(run.ranks) - len(np.unique(run.test_data.case)))
    return record


def check_torchrun_ranker(spec: PipelineSpec, pipeline_path: Path) -> None:
    """Refuse, under torchrun, a pipeline whose ranker trains in one process only."""
    if distributed.launched() and spec.ranker not in distributed.DISTRIBUTED_RANKERS:
        shared = ", ".join(distributed.DISTRIBUTED_RANKERS)
        raise ValueError(
            f"the {spec.ranker} ranker of {pipeline_path} trains in one process; torchrun can "
            f"share the training of pipelines with the {shared} ranker only (train this one "
            "without torchrun)"
        )


def train_pipeline_cli(
    pipeline_path: Path,
    train_path: Path,
    items_path: Path | None,
    skip_bad: bool,
    scenarios: Path | None = None,
    keyword_cards: Path | None = None,
    keyword_ranker: str = "ftrl",
    home: Path | None = None,
) -> Path:
    """`nextbest train --pipeline FILE`: the generators and the ranker as one version, under
    `home`/models (default $NEXTBEST_HOME), with its recipe (how to train it again) in its
    meta."""
    from nextbest.cli.evaluate import join_group, leave_torchrun, training_sessions
    from nextbest.cli.retrain import Recipe
    from nextbest.cli.version_inputs import read_version_inputs
    from nextbest.twostage.model import spec_dict, train_pipeline

    spec = load_spec(pipeline_path)  # a bad file fails before any data is read
    check_torchrun_ranker(spec, pipeline_path)  # and so does a ranker torchrun cannot share
    inputs = read_version_inputs(
        train_path, items_path, skip_bad, scenarios, keyword_cards, keyword_ranker
    )
    item_table = inputs.item_table
    catalog = items_of_table(item_table) if item_table is not None else None
    train = training_sessions(inputs.release_events(), train_path)
    # Under torchrun every process reads the files and computes the generators, their
    # candidates and the features itself, inside the group: these are deterministic (the kNN,
    # co-visitation and popularity generators count; the neural ones draw from their
    # config's seed; every process runs the same code with the same settings), so every
    # process holds the ranker's same training data, which the attention-GRU checks before
    # it trains on its share of each mini-batch. Rank 0 computing them alone would leave the
    # others idle all the same, need a broadcast of the ranking data, and keep a GRU4Rec
    # generator from training across the processes, which it does by itself here (its fit
    # runs inside the group).
    rank, world = join_group() if distributed.launched() else (0, 1)
    started = time.perf_counter()
    model, seconds = train_pipeline(
        spec,
        train,
        catalog,
        say=None if rank > 0 else lambda line: console.print(line, highlight=False),
    )
    leave_torchrun(rank, world)  # the processes after rank 0 end here: rank 0 saves
    took = time.perf_counter() - started
    meta = {
        "model": "pipeline",
        "pipeline": str(pipeline_path),
        "params": spec_dict(spec),
        "recipe": Recipe(pipeline=str(pipeline_path.resolve())).to_meta(),
        "train": str(train_path),
        "events": train.n_events,
        "fit_seconds": round(took, 3),
        "seconds": {name: round(value, 3) for name, value in seconds.items()},
        **inputs.meta(),
    }
    over = ", ".join(model.labels)
    done = f"trained the pipeline ({spec.ranker} over {over}) in {took:.1f} s"
    folder = inputs.save(model, home, meta, done)
    return folder
