"""Tuning a whole placement: Optuna searches its knobs against the next-event protocol.

The knobs are those of the placement in its file: each generator's over-fetch `k`, the fusion
ranker's weight per source, the diversity's `mmr` and `max_per_category`, and the purchase
rules' `boost`. A trial writes its values into a copy of the file's tables, builds the
placement as the server would (`parse_placements`), and scores MRR@20 of its lists on the
validation sessions (`evaluate_placement`, rules and diversity included). The best trial's
tables are the tuned placements file.

    study, best = tune_placement(raw, "product", model, items, train, valid, trials=30)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import polars as pl

from nextbest.evaluation.placement import evaluate_placement
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import parse_placements
from nextbest.serving.registry import LoadedModel

OBJECTIVE = "mrr@20"
K_RANGE = (10, 1000)
WEIGHT_RANGE = (0.05, 10.0)
MMR_RANGE = (0.0, 0.6)
MAX_PER_CATEGORY = (0, 2, 3, 4, 6)
BOOST_RANGE = (0.0, 3.0)


def apply_params(raw: dict[str, Any], name: str, params: dict[str, Any]) -> dict[str, Any]:
    """A copy of the placements file's tables with the placement `name` set to `params`
    (keys as `suggest` names them)."""
    tables = copy.deepcopy(raw)
    spec = tables["placements"][name]
    for key, value in params.items():
        kind, _, rest = key.partition(":")
        if kind == "k":
            spec["generators"][int(rest)]["k"] = int(value)
        elif kind == "weight":
            spec.setdefault("ranker_weights", {})[rest] = float(value)
        elif kind == "mmr":
            spec.setdefault("diversity", {})["mmr"] = float(value)
        elif kind == "max_per_category":
            spec.setdefault("diversity", {})["max_per_category"] = int(value)
        elif kind == "boost":
            spec["purchase_rules"] = {"boost": float(value)}
    return tables


@dataclass(frozen=True)
class Knob:
    """One searched setting of a placement: its range, and its value in the file (clipped
    to the range; the default where the file sets none)."""

    name: str  # as `apply_params` reads it
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    integer: bool = False
    choices: tuple[int, ...] = ()
    current: float = 0.0

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.name, self.choices)
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def as_is(self) -> Any:
        if self.choices:
            return int(self.current) if int(self.current) in self.choices else self.choices[0]
        value = min(max(self.current, self.low), self.high)
        return int(value) if self.integer else value


def knobs(spec: dict[str, Any]) -> list[Knob]:
    """The placement's searched settings: each generator's k, the fusion ranker's weight per
    source, the diversity's mmr and max_per_category, the purchase rules' boost."""
    found: list[Knob] = []
    weights = spec.get("ranker_weights", {})
    fusion = spec.get("ranker", "fusion") == "fusion"
    for index, generator in enumerate(spec["generators"]):
        found.append(Knob(f"k:{index}", *K_RANGE, log=True, integer=True,
                          current=generator.get("k", 100)))  # fmt: skip
        if fusion:
            source = generator["source"]
            found.append(Knob(f"weight:{source}", *WEIGHT_RANGE, log=True,
                              current=weights.get(source, 1.0)))  # fmt: skip
    diversity = spec.get("diversity", {})
    found.append(Knob("mmr", *MMR_RANGE, current=diversity.get("mmr", 0.0)))
    found.append(Knob("max_per_category", choices=MAX_PER_CATEGORY,
                      current=diversity.get("max_per_category", 0)))  # fmt: skip
    rules = spec.get("purchase_rules", True)
    if rules is not False:
        boost = rules.get("boost", 1.0) if isinstance(rules, dict) else 1.0
        found.append(Knob("boost", *BOOST_RANGE, current=boost))
    return found


def suggest(trial: optuna.Trial, spec: dict[str, Any]) -> dict[str, Any]:
    """The trial's values of the placement's knobs."""
    return {knob.name: knob.suggest(trial) for knob in knobs(spec)}


def placement_score(
    raw: dict[str, Any],
    name: str,
    model: LoadedModel,
    items: ItemTable,
    train: pl.DataFrame,
    valid: pl.DataFrame,
    max_sessions: int | None,
) -> dict[str, float]:
    placement = parse_placements(raw, "a trial")[name]
    return evaluate_placement(placement, model, items, train, valid, (10, 20), max_sessions).metrics


def tune_placement(
    raw: dict[str, Any],
    name: str,
    model: LoadedModel,
    items: ItemTable,
    train: pl.DataFrame,
    valid: pl.DataFrame,
    trials: int,
    seed: int = 0,
    max_sessions: int | None = 2_000,
    timeout: float | None = None,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> tuple[optuna.Study, dict[str, Any]]:
    """Search the placement's knobs; the study, and the tables of the best placements file.
    The first trial is the file as it is, so the winner is never worse on validation."""
    if name not in raw.get("placements", {}):
        raise ValueError(f"no placement {name!r} to tune")
    spec = raw["placements"][name]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(_as_is(spec))

    def objective(trial: optuna.Trial) -> float:
        tables = apply_params(raw, name, suggest(trial, spec))
        metrics = placement_score(tables, name, model, items, train, valid, max_sessions)
        for metric in ("recall@20", "intra_list_diversity", "category_coverage"):
            trial.set_user_attr(metric, metrics[metric])
        return metrics[OBJECTIVE]

    study.optimize(objective, n_trials=trials, timeout=timeout,
                   callbacks=[on_trial] if on_trial else None)  # fmt: skip
    return study, apply_params(raw, name, study.best_params)


def _as_is(spec: dict[str, Any]) -> dict[str, Any]:
    """The knobs' values in the file (defaults where it sets none), clipped to the space."""
    return {knob.name: knob.as_is() for knob in knobs(spec)}
