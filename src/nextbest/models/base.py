"""The one interface every session model implements.

A model answers from a *state*: the compact summary of a batch of sessions so far (a GRU hidden
state, or the items seen for the kNN family). Serving and evaluation drive every model the same
way, one event at a time for a batch of sessions:

    state = model.initial_state(batch_size)
    state = model.step(state, items, times)      # items: [B] item indices, times: [B] seconds
    scores = model.score(state)                  # [B, n_items], higher is better
    state = model.select(state, rows)            # keep some sessions (the batch shrinks)

Item indices are positions in the training vocabulary (`Sessions.item_ids` of the data the
model was fitted on); score column j is item j.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Literal,
    Protocol,
    Self,
    TypeVar,
    get_args,
    get_origin,
    get_type_hints,
    runtime_checkable,
)

import numpy as np

from nextbest.data.sessions import Sessions

if TYPE_CHECKING:
    from nextbest.events.schema import Item
    from nextbest.models.scoring import Scorer

StateT = TypeVar("StateT")
ConfigT = TypeVar("ConfigT")

MODEL_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"


class NotFittedError(RuntimeError):
    pass


@runtime_checkable
class RemembersUsers(Protocol):
    """A model with a user state beside the session state (HGRU4Rec): a server closes a
    user's session with `end_session`, and the result is where the user's next session
    starts (its user part carries the user's history)."""

    def end_session(self, state: Any) -> Any: ...


class SessionModel(ABC, Generic[StateT, ConfigT]):
    """Base of every session model: fit on `Sessions`, then step/score/select per event."""

    name: ClassVar[str]
    config_class: ClassVar[type[Any]]

    def __init__(self, config: ConfigT | None = None) -> None:
        self.config: ConfigT = config if config is not None else self.config_class()
        self.item_ids: np.ndarray | None = None  # [n_items] training vocabulary

    # -- training ---------------------------------------------------------------------------
    @abstractmethod
    def fit(self, train: Sessions) -> Self:
        """Learn from training sessions; must set `self.item_ids = train.item_ids`."""

    def use_catalog(self, items: Mapping[str, Item]) -> None:
        """The catalog (items by id) before `fit`: a model that reads item attributes keeps
        it (GRU4Rec with `attributes=...`); the others have no use for it."""

    @property
    def n_items(self) -> int:
        if self.item_ids is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() first")
        return len(self.item_ids)

    # -- answering --------------------------------------------------------------------------
    @abstractmethod
    def initial_state(self, n: int) -> StateT:
        """The state of `n` sessions that have seen nothing yet."""

    @abstractmethod
    def step(self, state: StateT, items: np.ndarray, times: np.ndarray) -> StateT:
        """Advance every session of the batch by one event (items [B], times [B])."""

    @abstractmethod
    def select(self, state: StateT, rows: np.ndarray) -> StateT:
        """The state of the sessions at `rows` (int indices into the batch), in that order."""

    @abstractmethod
    def score(self, state: StateT) -> np.ndarray:
        """[B, n_items] float32 scores; higher ranks first."""

    def recommend(
        self, state: StateT, n: int, exclude: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`n` item indices [B, n] and their scores, best first.

        `exclude[b]` lists item indices never to return for session b (already bought...).
        """
        scores = np.array(self.score(state), dtype=np.float32, copy=True)
        if exclude is not None:
            for row, banned in enumerate(exclude):
                scores[row, banned] = -np.inf
        n = min(n, scores.shape[1])
        top = np.argpartition(-scores, n - 1, axis=1)[:, :n]  # [B, n] unordered
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)

    # -- serving ----------------------------------------------------------------------------
    def scorer(self, cache: Path | None = None) -> Scorer:
        """How serving scores this model's states (`cache`: a folder for arrays that worker
        processes share). A model with a faster exact path overrides this."""
        from nextbest.models.scoring import Scorer

        return Scorer(self)

    def state_codec(self) -> Any | None:
        """How the server stores this model's states as bytes, when the state kinds
        `codec_for` knows do not cover it (a composite of models); None: the usual codec."""
        return None

    def item_embeddings(self) -> np.ndarray | None:
        """[n_items, d] vectors whose dot products say how alike two items are (for
        "similar items" and diversity), or None when the model has none. A model that has
        them also scores a bare float tensor [B, d] of such vectors as if it were a state:
        that is how serving asks for the items most like one item."""
        return None

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write the model as `model.json` (name, config) plus `arrays.npz` (no pickle)."""
        if self.item_ids is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: nothing to save")
        folder.mkdir(parents=True, exist_ok=True)
        config = asdict(self.config) if is_dataclass(self.config) else {}  # type: ignore[arg-type]
        (folder / MODEL_FILE).write_text(json.dumps({"model": self.name, "config": config}))
        arrays = {"item_ids": self.item_ids.astype(str), **self.arrays()}
        np.savez(folder / ARRAYS_FILE, allow_pickle=False, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, folder: Path) -> Self:
        meta = json.loads((folder / MODEL_FILE).read_text())
        if meta.get("model") != cls.name:
            raise ValueError(f"{folder} holds model {meta.get('model')!r}, not {cls.name!r}")
        model = cls(cls.config_class(**meta["config"]))
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        model.item_ids = arrays.pop("item_ids").astype(object)
        model.restore(arrays)
        return model

    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted parameters as named arrays (override; default: nothing)."""
        return {}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of `arrays()` (override)."""


def parse_config(config_class: type[ConfigT], raw: dict[str, str]) -> ConfigT:
    """Build a config dataclass from `KEY=VALUE` strings (the CLI's `--param`).

    Unknown keys and values of the wrong type raise ValueError naming the key; range checks are
    the config's own `__post_init__`.
    """
    hints = get_type_hints(config_class)
    names = [f.name for f in fields(config_class)]  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in names:
            raise ValueError(f"unknown parameter {key!r}; allowed: {', '.join(names)}")
        values[key] = _parse_value(key, text, hints[key])
    return config_class(**values)


def _parse_value(key: str, text: str, hint: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if args and type(None) in args:  # Optional[X]
        if text.lower() in ("none", "null", ""):
            return None
        return _parse_value(key, text, next(a for a in args if a is not type(None)))
    if origin is Literal:
        if text not in [str(a) for a in args]:
            raise ValueError(f"parameter {key!r} must be one of {list(args)}, not {text!r}")
        return next(a for a in args if str(a) == text)
    if origin is tuple:
        return tuple(_parse_value(key, part, args[0]) for part in text.split(",") if part)
    try:
        if hint is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
    except ValueError:
        raise ValueError(f"parameter {key!r} must be {hint.__name__}, not {text!r}") from None
    return text
