"""`user_level="auto"`: choose HGRU4Rec's user level on a validation split inside `fit`.

The user level helps where returning users keep habits a session does not show (the demo
shop), and costs where they do not (ml-100k: few sessions per user, no repeats): what is best
depends on the data, so `fit` measures it on the training data alone, never on the test.

1. Validation split (`validation_split`): each training user with two or more sessions gives
   their last training session to validation; the model learns from the other sessions. Items
   the remaining sessions never show are dropped from the validation sessions, and sessions
   left with fewer than two events are dropped, as the test protocol does.
2. Every candidate of `USER_LEVEL_CANDIDATES` (the session path alone = GRU4Rec, the paper's
   default user level, and the user state added to the output with dropout 0.8 on the user
   level) is fitted on the remaining sessions with the model's own settings and scored with
   the user protocol (`evaluate_user_last_session`: the user state warmed on the user's
   earlier sessions) on the validation sessions: MRR@20 over all their cases.
3. The best user level is chosen if its MRR@20 beats the session path's by at least
   `user_level_margin` (2 % by default); otherwise the session path is kept. `fit` then trains
   the chosen setting on all the training data.

The choice and the validation figures are a `UserLevelChoice`, kept by the model, saved in its
model.json and shown by `nextbest evaluate` / `nextbest train`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from nextbest.data.sessions import Sessions
from nextbest.models.base import SessionModel
from nextbest.models.hgru4rec.batching import session_owners
from nextbest.models.hgru4rec.config import HGRU4RecConfig

logger = logging.getLogger(__name__)

SESSION_ONLY = "session only"
AS_SET = "as set"
# name -> the config changes of a candidate, the session path first.
USER_LEVEL_CANDIDATES: dict[str, dict[str, Any]] = {
    SESSION_ONLY: {"user_level": "off"},
    "init": {
        "user_level": "on",
        "user_propagation": "init",
        "user_to_output": False,
        "dropout_p_user": 0.0,
        "dropout_p_init": 0.0,
    },
    "init + output, dropout 0.8": {
        "user_level": "on",
        "user_propagation": "init",
        "user_to_output": True,
        "dropout_p_user": 0.8,
        "dropout_p_init": 0.8,
    },
}
CUTOFF = 20
METRIC = f"mrr@{CUTOFF}"


@dataclass(frozen=True)
class UserLevelChoice:
    """Which user level a fitted HGRU4Rec uses, and why."""

    asked: str  # the user_level asked for: auto, on or off
    chosen: str  # a candidate name, or "as set" (the user-level fields as given)
    reason: str
    validation: dict[str, dict[str, float]] = field(default_factory=dict)  # candidate -> figures
    validation_sessions: int = 0
    validation_cases: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> UserLevelChoice:
        return UserLevelChoice(
            asked=str(raw["asked"]),
            chosen=str(raw["chosen"]),
            reason=str(raw["reason"]),
            validation={k: dict(v) for k, v in raw.get("validation", {}).items()},
            validation_sessions=int(raw.get("validation_sessions", 0)),
            validation_cases=int(raw.get("validation_cases", 0)),
        )

    def summary(self) -> str:
        """One line for a person: what is used, and the validation figures behind it."""
        line = f"user level ({self.asked}): {self.chosen} - {self.reason}"
        if self.validation:
            figures = ", ".join(f"{name} {v[METRIC]:.4f}" for name, v in self.validation.items())
            line += (
                f"; validation MRR@{CUTOFF} on {self.validation_sessions:,} sessions "
                f"({self.validation_cases:,} cases): {figures}"
            )
        return line


def fixed_choice(config: HGRU4RecConfig) -> UserLevelChoice:
    """The record of a fit without selection."""
    if config.user_level == "off":
        return UserLevelChoice("off", SESSION_ONLY, "user_level=off: the session path alone")
    if config.user_level == "on":
        return UserLevelChoice("on", AS_SET, "user_level=on: the user-level fields as set")
    return UserLevelChoice(
        "auto", AS_SET, "user-level fields set explicitly: used as set, no selection"
    )


def validation_split(train: Sessions) -> tuple[Sessions, Sessions]:
    """(the training sessions but the validation ones, the validation sessions): each user with
    two or more training sessions gives their last (latest last event; ties: the later start,
    then the later session) to validation, with the items the rest never shows dropped and
    sessions shorter than two events left out. Both keep `train`'s item vocabulary."""
    n = train.n_sessions
    owners = session_owners(train)  # known users: codes < n; anonymous sessions: >= n
    known = owners < n
    ends = train.times[np.maximum(train.offsets[1:] - 1, 0)]
    starts = train.times[np.minimum(train.offsets[:-1], max(train.n_events - 1, 0))]
    order = np.lexsort((np.arange(n), starts, ends, owners))  # per owner: last session last
    last_of_owner = np.r_[owners[order][1:] != owners[order][:-1], True] if n else order
    counts = np.bincount(owners, minlength=2 * n)
    chosen = order[last_of_owner.astype(bool)] if n else order
    chosen = chosen[known[chosen] & (counts[owners[chosen]] >= 2) & (train.lengths[chosen] > 0)]
    is_valid = np.zeros(n, dtype=bool)
    is_valid[chosen] = True
    rest = train.take(np.flatnonzero(~is_valid))
    seen = rest.item_support() > 0
    valid = train.take(np.flatnonzero(is_valid), keep=seen[train.items])
    long_enough = np.flatnonzero(valid.lengths >= 2)
    return rest, valid.take(long_enough)


def choose_user_level(
    config: HGRU4RecConfig,
    train: Sessions,
    fit: Callable[[HGRU4RecConfig, Sessions], SessionModel[Any, Any]],
) -> tuple[HGRU4RecConfig, UserLevelChoice]:
    """The config to train on all of `train` (user_level "on" or "off") and the record of the
    choice. `fit(config, sessions)` returns a fitted model of `config`."""
    from nextbest.evaluation.next_event import EvalConfig
    from nextbest.evaluation.user_protocol import evaluate_user_last_session

    rest, valid = validation_split(train)
    cases = int((valid.lengths - 1).sum())
    if cases == 0 or rest.n_sessions == 0 or rest.n_events == 0:
        why = "no training user has two sessions to validate on: the session path alone"
        return replace(config, **USER_LEVEL_CANDIDATES[SESSION_ONLY]), UserLevelChoice(
            "auto", SESSION_ONLY, why
        )
    figures: dict[str, dict[str, float]] = {}
    for name, changes in USER_LEVEL_CANDIDATES.items():
        model = fit(replace(config, **changes), rest)
        result = evaluate_user_last_session(model, rest, valid, EvalConfig(cutoffs=(CUTOFF,)))
        metrics = result.result.metrics()
        figures[name] = {
            METRIC: round(float(metrics[METRIC]), 6),
            f"recall@{CUTOFF}": round(float(metrics[f"recall@{CUTOFF}"]), 6),
        }
        logger.info(
            "hgru4rec user level %r: validation MRR@%d %.4f", name, CUTOFF, figures[name][METRIC]
        )
    base = figures[SESSION_ONLY][METRIC]
    best = max((n for n in figures if n != SESSION_ONLY), key=lambda n: figures[n][METRIC])
    gain = figures[best][METRIC] / base - 1.0 if base > 0 else float("inf")
    margin = config.user_level_margin
    if figures[best][METRIC] > base and gain >= margin:
        chosen = best
        reason = f"beats the session path by {gain:+.1%} on validation (needs {margin:+.1%})"
    else:
        chosen = SESSION_ONLY
        reason = (
            f"no user level beats the session path by {margin:.1%} on validation "
            f"(best: {best}, {gain:+.1%})"
        )
    record = UserLevelChoice(
        "auto", chosen, reason, figures, int((valid.lengths >= 2).sum()), cases
    )
    return replace(config, **USER_LEVEL_CANDIDATES[chosen]), record
