"""Hyperparameter search for the neural session models, each over its own space.

GRU4Rec's is the space its authors searched: layer size 64-512, batch size 32-256, learning
rate 0.01-0.25, input and hidden dropout, momentum, the negative-sampling exponent, the BPR-max
regulariser and the final activation (ELU's alpha). SR-GNN's and the self-attentive model's
cover their sizes, learning rates, regularisation, epochs and the scaled-cosine option around
their papers' values. Optuna's TPE sampler picks the trials; each trial fits on the training
part and is scored by MRR@20 on a validation part that the test set never touches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import optuna

from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import EvalConfig, evaluate_next_event
from nextbest.models.base import SessionModel
from nextbest.models.gru4rec.config import GRU4RecConfig
from nextbest.models.gru4rec.model import GRU4Rec
from nextbest.models.sasrec import SASRec, SASRecConfig
from nextbest.models.srgnn import SRGNN, SRGNNConfig

logger = logging.getLogger(__name__)

OBJECTIVE = "mrr@20"


Draws = dict[str, Callable[[], Any]]


def gru4rec_space(trial: optuna.trial.BaseTrial, base: GRU4RecConfig) -> Draws:
    space: Draws = {
        "layers": lambda: (trial.suggest_int("layers", 64, 512, step=32),),
        "batch_size": lambda: trial.suggest_int("batch_size", 32, 256, step=16),
        "learning_rate": lambda: trial.suggest_float("learning_rate", 0.01, 0.25, log=True),
        "dropout_p_embed": lambda: trial.suggest_float("dropout_p_embed", 0.0, 0.5, step=0.05),
        "dropout_p_hidden": lambda: trial.suggest_float("dropout_p_hidden", 0.0, 0.7, step=0.05),
        "momentum": lambda: trial.suggest_float("momentum", 0.0, 0.9, step=0.05),
        "sample_alpha": lambda: trial.suggest_float("sample_alpha", 0.0, 1.0, step=0.1),
    }
    if base.loss != "cross-entropy":  # only the pairwise losses have these knobs
        space["bpreg"] = lambda: trial.suggest_float("bpreg", 0.0, 2.0, step=0.05)
        space["elu_param"] = lambda: trial.suggest_categorical("elu_param", [0.0, 0.5, 1.0, 2.0])
    return space


def srgnn_space(trial: optuna.trial.BaseTrial, base: SRGNNConfig) -> Draws:
    return {
        "hidden": lambda: trial.suggest_int("hidden", 50, 200, step=25),
        "steps": lambda: trial.suggest_int("steps", 1, 3),
        "learning_rate": lambda: trial.suggest_float("learning_rate", 3e-4, 3e-3, log=True),
        "l2": lambda: trial.suggest_float("l2", 1e-6, 1e-4, log=True),
        "n_epochs": lambda: trial.suggest_int("n_epochs", 2, 8),
        "scale": lambda: trial.suggest_categorical("scale", [0.0, 8.0, 12.0, 16.0, 20.0]),
    }


def sasrec_space(trial: optuna.trial.BaseTrial, base: SASRecConfig) -> Draws:
    return {
        "hidden": lambda: trial.suggest_int("hidden", 50, 200, step=25),
        "blocks": lambda: trial.suggest_int("blocks", 1, 3),
        "dropout": lambda: trial.suggest_float("dropout", 0.0, 0.6, step=0.05),
        "learning_rate": lambda: trial.suggest_float("learning_rate", 3e-4, 3e-3, log=True),
        "n_epochs": lambda: trial.suggest_int("n_epochs", 2, 12),
        "scale": lambda: trial.suggest_categorical("scale", [0.0, 8.0, 16.0]),
        "loss": lambda: trial.suggest_categorical("loss", ["cross-entropy", "sampled"]),
    }


# config class -> (the model it configures, its search space)
TUNABLE: dict[type[Any], tuple[type[SessionModel[Any, Any]], Callable[..., Draws]]] = {
    GRU4RecConfig: (GRU4Rec, gru4rec_space),
    SRGNNConfig: (SRGNN, srgnn_space),
    SASRecConfig: (SASRec, sasrec_space),
}
TUNABLE_MODELS: dict[str, type[Any]] = {
    model.name: config for config, (model, _) in TUNABLE.items()
}


def suggest_config(trial: optuna.trial.BaseTrial, base: Any, fixed: set[str]) -> Any:
    """One point of the search space of `base`'s model; names in `fixed` keep `base`'s value."""
    _, space = TUNABLE[type(base)]
    values = {name: draw() for name, draw in space(trial, base).items() if name not in fixed}
    return replace(base, **values)


def tune(
    train: Sessions,
    valid: Sessions,
    base: Any,
    fixed: set[str],
    n_trials: int,
    timeout: float | None = None,
    seed: int = 0,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> optuna.Study:
    """Search for the config with the best validation MRR@20; returns the Optuna study.

    `valid` must be coded with `train`'s vocabulary (items unseen in `train` dropped).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, not {n_trials}")

    def objective(trial: optuna.Trial) -> float:
        config = suggest_config(trial, base, fixed)
        model = TUNABLE[type(base)][0](config).fit(train)
        metrics = evaluate_next_event(model, valid, EvalConfig(cutoffs=(5, 20))).metrics()
        for key in ("recall@20", "mrr@5", "recall@5"):
            trial.set_user_attr(key, metrics[key])
        logger.info("trial %d: %s = %.4f", trial.number, OBJECTIVE, metrics[OBJECTIVE])
        return metrics[OBJECTIVE]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    callbacks = [on_trial] if on_trial is not None else None
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=callbacks)
    return study


def best_config(study: optuna.Study, base: Any, fixed: set[str]) -> Any:
    """The winning trial's config, rebuilt from its suggested values."""
    return suggest_config(optuna.trial.FixedTrial(study.best_params), base, fixed)
