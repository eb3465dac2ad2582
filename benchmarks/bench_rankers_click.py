"""Learned rankers on a click-prediction split: test AUC and gAUC over seeds, as a table.

    .venv/bin/python benchmarks/bench_rankers_click.py \
        --train /tmp/twostage/demo_click_train.npz --test /tmp/twostage/demo_click_test.npz \
        --json benchmarks/results/rankers_click.json

The files are `RankingData` written by `nextbest.twostage.data.save_ranking_data` (labels,
sessions and histories included). Every ranker in `RANKERS` (name -> factory of a seed) is
fitted on the training file with each of `--seeds` and scored on the test file; the table
gives the mean ± half the range over seeds of the pooled AUC and of the gAUC (the AUC within
each test session, weighted by its rows: `nextbest.twostage.metrics`). A ranker that does
not depend on the seed (`SEEDLESS`) runs once. `--rankers` picks some rows; `--param
KEY=VALUE` changes an attention-GRU setting for all its rows (e.g. `--param epochs=2`);
`--valid-share` holds out the last share of the training cases for choosing the epoch;
`--train-cases N` trains on the last N training cases only; `--drop PREFIX` leaves out the
feature columns named so (e.g. `--drop repeat.`: what the history features add); `--jobs`
runs that many fits side by side (forked processes, one thread each).

Rows: `attention_gru` and its ablations (no time gate or decay, one transform for all action
types, neither), `ftrl`, `gbdt`, and `popularity` (the pipeline's baseline ranker: recent
popularity, then overall). Other rankers join the table by adding a factory to `RANKERS`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nextbest.twostage.data import LearnedRanker, RankingData, load_ranking_data
from nextbest.twostage.metrics import auc, gauc
from nextbest.twostage.rankers.attention_gru import AttentionGRUConfig, AttentionGRURanker
from nextbest.twostage.rankers.popularity import PopularityRanker

Factory = Callable[[int, RankingData, dict[str, Any]], LearnedRanker]


def attention_gru(time_decay: bool = True, action_types: bool = True) -> Factory:
    def make(seed: int, train: RankingData, params: dict[str, Any]) -> LearnedRanker:
        config = replace(
            AttentionGRUConfig(**params),
            seed=seed,
            threads=1,
            time_decay=time_decay,
            action_types=action_types,
        )
        return AttentionGRURanker(config)

    return make


def popularity(seed: int, train: RankingData, params: dict[str, Any]) -> LearnedRanker:
    return PopularityRanker()  # the pipeline's baseline: recent popularity, then overall


def ftrl(seed: int, train: RankingData, params: dict[str, Any]) -> LearnedRanker:
    from nextbest.twostage.rankers.ftrl import FTRLConfig, FTRLRanker

    return FTRLRanker(FTRLConfig(seed=seed))  # type: ignore[return-value]


def gbdt(seed: int, train: RankingData, params: dict[str, Any]) -> LearnedRanker:
    from nextbest.twostage.rankers.gbdt import GBDTConfig, GBDTRanker

    return GBDTRanker(GBDTConfig(seed=seed, threads=1))


RANKERS: dict[str, Factory] = {
    "popularity": popularity,
    "ftrl": ftrl,
    "gbdt": gbdt,
    "attention_gru": attention_gru(),
    "attention_gru -time": attention_gru(time_decay=False),
    "attention_gru -types": attention_gru(action_types=False),
    "attention_gru -time -types": attention_gru(time_decay=False, action_types=False),
}
SEEDLESS = {"popularity"}


def parse_params(pairs: list[str]) -> dict[str, Any]:
    kinds = {f.name: f.type for f in fields(AttentionGRUConfig)}
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in kinds:
            raise SystemExit(f"--param {pair!r}: expected KEY=VALUE with KEY one of {list(kinds)}")
        kind = str(kinds[key])
        if kind == "bool":
            params[key] = text.lower() in ("1", "true", "yes", "on")
        elif kind == "int":
            params[key] = int(text)
        elif kind == "float":
            params[key] = float(text)
        else:
            params[key] = text
    return params


def split_valid(train: RankingData, share: float) -> tuple[RankingData, RankingData | None]:
    """The last `share` of the training cases (the latest, in a time split) as validation."""
    if share <= 0:
        return train, None
    n = train.n_cases
    cut = round(n * (1 - share))
    return train.cases(np.arange(cut)), train.cases(np.arange(cut, n))


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    mean = float(np.mean(values))
    half = (max(values) - min(values)) / 2
    return f"{mean:.4f} ± {half:.4f}" if len(values) > 1 else f"{mean:.4f}"


# what the forked workers read (set by main before the pool starts: shared, not pickled)
_SHARED: dict[str, Any] = {}


def run_one(name: str, seed: int) -> dict[str, Any]:
    """Fit one ranker with one seed and score the test file (in a worker or in place)."""
    torch.set_num_threads(1)
    train, valid, test = _SHARED["train"], _SHARED["valid"], _SHARED["test"]
    ranker = RANKERS[name](seed, train, _SHARED["params"])
    start = time.perf_counter()
    ranker.fit(train, valid)
    fit_seconds = time.perf_counter() - start
    scores = ranker.predict(test)
    run: dict[str, Any] = {
        "seed": seed,
        "auc": auc(test.label, scores),
        "gauc": gauc(test.label, scores, _SHARED["groups"]),
        "fit_seconds": round(fit_seconds, 1),
        "loadavg": Path("/proc/loadavg").read_text().split()[0],
    }
    config = getattr(ranker, "config", None)
    if config is not None:
        run["config"] = asdict(config)
    if getattr(ranker, "history_log", None):
        run["epochs"] = ranker.history_log  # type: ignore[attr-defined]
    print(json.dumps({"ranker": name, **run}), file=sys.stderr, flush=True)
    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--rankers", default=",".join(RANKERS), help="comma-separated rows")
    parser.add_argument("--param", action="append", default=[], help="attention-GRU KEY=VALUE")
    parser.add_argument("--valid-share", type=float, default=0.0)
    parser.add_argument(
        "--train-cases", type=int, default=0, help="train on the last N cases only (0: all)"
    )
    parser.add_argument(
        "--drop",
        action="append",
        default=[],
        help="leave out the feature columns whose names start with this (repeatable)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="fits side by side (1 thread each)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    chosen = [name.strip() for name in args.rankers.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in RANKERS]
    if unknown:
        raise SystemExit(f"unknown rankers {unknown}; known: {list(RANKERS)}")
    params = parse_params(args.param)
    full_train, test = load_ranking_data(args.train), load_ranking_data(args.test)
    labels = test.label
    if labels is None:
        raise SystemExit(f"{args.test} has no labels")
    if 0 < args.train_cases < full_train.n_cases:
        full_train = full_train.cases(
            np.arange(full_train.n_cases - args.train_cases, full_train.n_cases)
        )
    if args.drop:
        dropped = [n for n in full_train.names if n.startswith(tuple(args.drop))]
        full_train, test = full_train.without(dropped), test.without(dropped)
        print(f"without {len(dropped)} columns: {', '.join(dropped)}", file=sys.stderr)
    train, valid = split_valid(full_train, args.valid_share)
    groups = test.session[test.case] if test.session is not None else test.case
    print(
        f"train {len(full_train)} rows / {full_train.n_cases} cases, test {len(test)} rows / "
        f"{test.n_cases} cases, {len(test.names)} features, positives "
        f"{float(np.mean(labels)):.4f}",
        file=sys.stderr,
    )
    _SHARED.update(train=train, valid=valid, test=test, groups=groups, params=params)

    notes: list[str] = []
    tasks: list[tuple[str, int]] = []
    for name in chosen:
        tasks += [(name, seed) for seed in (seeds[:1] if name in SEEDLESS else seeds)]
    if args.jobs > 1:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            futures = [pool.submit(run_one, name, seed) for name, seed in tasks]
            outcomes = [future.result() for future in futures]
    else:
        outcomes = [run_one(name, seed) for name, seed in tasks]
    results: list[dict[str, Any]] = []
    for name in chosen:
        runs = [run for (task, _), run in zip(tasks, outcomes, strict=True) if task == name]
        if runs:
            results.append({"ranker": name, "runs": runs})

    lines = [
        "| ranker | test AUC | test gAUC | seeds | fit s (load) |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        runs = result["runs"]
        fit = np.mean([r["fit_seconds"] for r in runs])
        load = runs[-1]["loadavg"]
        lines.append(
            f"| {result['ranker']} | {spread([r['auc'] for r in runs])} | "
            f"{spread([r['gauc'] for r in runs])} | {len(runs)} | {fit:.0f} ({load}) |"
        )
    table = "\n".join(lines)
    print(table)
    for note in notes:
        print(f"\n- {note}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "train": str(args.train),
                    "test": str(args.test),
                    "seeds": seeds,
                    "params": params,
                    "valid_share": args.valid_share,
                    "train_cases": full_train.n_cases,
                    "dropped": args.drop,
                    "python": platform.python_version(),
                    "torch": torch.__version__,
                    "results": results,
                    "notes": notes,
                    "table": table,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
