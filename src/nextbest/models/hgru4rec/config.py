"""HGRU4Rec's hyperparameters: GRU4Rec's session settings plus the user level.

The session-level fields are GRU4Rec's, with the same names and meaning (`layers` are the
session GRU's sizes); they build the `GRU4RecConfig` of the session path (`session_config`),
so a GRU4Rec "of the same size" is `GRU4Rec(config.session_config())`. The user-level fields
follow the paper (Quadrana et al., RecSys 2017):

* `user_layer`: units of the user GRU, which steps once per finished session with that
  session's final (last-layer) hidden state as its input.
* `user_propagation`: "init" (the user state only sets a new session's initial state,
  tanh(W_init h_user + b_init)) or "all" (it also enters the session GRU's input at every step).
* `user_to_output`: the user state, through a learned [user_layer, H_last] map, is added to the
  session's last-layer state before the item scores, so it moves every score.
* `dropout_p_user`, `dropout_p_init`: dropout on the user GRU's output and on a new session's
  initial state; `dropout_p_hidden` / `dropout_p_embed` are the session GRU's, as in GRU4Rec.

Whether the user level is used at all is `user_level`:

* "auto" (default): `fit` chooses on a validation split of the training data (each returning
  user's last training session, scored with the user protocol) between the session path alone
  and the user-level settings of `USER_LEVEL_CANDIDATES`, keeping the session path unless a
  user level beats it by `user_level_margin`; then it refits the choice on all the data (see
  `selection.py`). If a user-level field above is set to other than its default, that setting
  is taken as given, as with "on".
* "on": the user level exactly as the fields above set it (no selection).
* "off": the session path alone: trained and served exactly as GRU4Rec (the user state stays
  zero).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from nextbest.models.gru4rec.config import GRU4RecConfig

Propagation = Literal["init", "all"]
PROPAGATIONS: tuple[str, ...] = ("init", "all")
UserLevel = Literal["auto", "on", "off"]
USER_LEVELS: tuple[str, ...] = ("auto", "on", "off")
# The fields that make a user-level setting (what "auto" chooses among).
SETTING_FIELDS: tuple[str, ...] = (
    "user_propagation",
    "user_to_output",
    "dropout_p_user",
    "dropout_p_init",
)


@dataclass(frozen=True)
class HGRU4RecConfig(GRU4RecConfig):
    """GRU4Rec's fields (the session path, inherited) and the user level's."""

    # -- the user level ----------------------------------------------------------------------
    user_layer: int = 100
    user_propagation: Propagation = "init"
    user_to_output: bool = False
    dropout_p_user: float = 0.0
    dropout_p_init: float = 0.0
    user_level: UserLevel = "auto"
    user_level_margin: float = 0.02  # relative MRR@20 gain over the session path "auto" needs

    def __post_init__(self) -> None:
        try:
            super().__post_init__()  # GRU4Rec's own checks, naming the field
        except ValueError as exc:
            raise ValueError(str(exc).replace("GRU4Rec parameter", "HGRU4Rec parameter")) from None
        _check(self.user_layer >= 1, "user_layer", self.user_layer, "an integer >= 1")
        _check(
            self.user_propagation in PROPAGATIONS,
            "user_propagation",
            self.user_propagation,
            f"one of {list(PROPAGATIONS)}",
        )
        _check(
            isinstance(self.user_to_output, bool),
            "user_to_output",
            self.user_to_output,
            "True or False",
        )
        for name in ("dropout_p_user", "dropout_p_init"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, name, value, "a probability in [0, 1)")
        _check(
            self.user_level in USER_LEVELS,
            "user_level",
            self.user_level,
            f"one of {list(USER_LEVELS)}",
        )
        margin = self.user_level_margin
        _check(
            isinstance(margin, int | float) and not isinstance(margin, bool) and 0 <= margin < 1,
            "user_level_margin",
            margin,
            "a number in [0, 1) (0.02 = a user level must beat the session path by 2 %)",
        )

    def user_setting_is_default(self) -> bool:
        """Whether every user-level setting field is at its default (then "auto" chooses)."""
        return all(getattr(self, n) == getattr(HGRU4RecConfig, n) for n in SETTING_FIELDS)

    def session_config(self) -> GRU4RecConfig:
        """The GRU4Rec config of the session path (same names, same values)."""
        names = {f.name for f in fields(GRU4RecConfig)}
        return GRU4RecConfig(**{n: getattr(self, n) for n in names})


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"HGRU4Rec parameter {name}={value!r} is not allowed: must be {allowed}")
