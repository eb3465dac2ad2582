"""`RankingData`: what every learned ranker trains on and scores.

One row per (case, candidate). A *case* is one moment to recommend at: a session after some
of its events (offline, every position of the next-event protocol; served, one request). The
rows of a case are contiguous and the cases are in order, so `case_bounds` slices them.

    case[r]        the case of row r (0..n_cases-1, non-decreasing)
    item[r]        the candidate, an index into the generators' item vocabulary
    features[r]    float32 feature values (NaN: missing), columns named by `names`
    label[r]       1.0 when the candidate is the case's next item (training and evaluation)

Per case: the test `session` it came from (for per-session gAUC), and the shopper's behaviour
`history` (the last actions before the case, for sequence rankers such as the attention-GRU).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, Self

import numpy as np

# action type codes of `History.types` (0 pads a history shorter than its width)
PAD, VIEW, CART, PURCHASE, OTHER = 0, 1, 2, 3, 4
ACTION_CODES = {"view": VIEW, "click": VIEW, "cart": CART, "purchase": PURCHASE}
N_ACTION_TYPES = 5


@dataclass(frozen=True)
class History:
    """The last `L` actions before each case, oldest first, left-padded.

    items [n_cases, L] int64 item index (-1: padding), types [n_cases, L] int8 action codes
    (PAD for padding), age [n_cases, L] float32 seconds from the action to the case's moment
    (0 for padding)."""

    items: np.ndarray
    types: np.ndarray
    age: np.ndarray

    @property
    def width(self) -> int:
        return int(self.items.shape[1])

    def take(self, cases: np.ndarray) -> History:
        return History(self.items[cases], self.types[cases], self.age[cases])


@dataclass(frozen=True)
class RankingData:
    case: np.ndarray  # [N] int64, non-decreasing
    item: np.ndarray  # [N] int64
    features: np.ndarray  # [N, F] float32
    names: tuple[str, ...]  # [F]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group -> names
    label: np.ndarray | None = None  # [N] float32 in {0, 1}
    session: np.ndarray | None = None  # [n_cases] int64: the session of each case
    history: History | None = None  # per case
    n_items: int = 0  # the size of the item vocabulary `item` indexes

    def __post_init__(self) -> None:
        n = len(self.case)
        if self.item.shape != (n,) or self.features.shape != (n, len(self.names)):
            raise ValueError(
                f"RankingData: {n} rows but item {self.item.shape}, features "
                f"{self.features.shape} for {len(self.names)} names"
            )
        if self.label is not None and self.label.shape != (n,):
            raise ValueError(f"RankingData: label {self.label.shape} for {n} rows")

    def __len__(self) -> int:
        return len(self.case)

    @property
    def n_cases(self) -> int:
        return int(self.case[-1]) + 1 if len(self.case) else 0

    @property
    def case_bounds(self) -> np.ndarray:
        """[n_cases + 1] row offsets: case c is rows bounds[c]:bounds[c + 1]."""
        return np.searchsorted(self.case, np.arange(self.n_cases + 1))

    def column(self, name: str) -> np.ndarray:
        return self.features[:, self.names.index(name)]

    def without(self, names: Sequence[str]) -> RankingData:
        """The same rows without some feature columns (the ablations)."""
        keep = [j for j, name in enumerate(self.names) if name not in set(names)]
        groups = {g: tuple(n for n in ns if n not in set(names)) for g, ns in self.groups.items()}
        return replace(
            self,
            features=self.features[:, keep],
            names=tuple(self.names[j] for j in keep),
            groups=groups,
        )

    def take(self, rows: np.ndarray) -> RankingData:
        """Some rows (in increasing case order), their cases kept as they are."""
        return replace(
            self,
            case=self.case[rows],
            item=self.item[rows],
            features=self.features[rows],
            label=None if self.label is None else self.label[rows],
        )

    def with_labels(self, label: np.ndarray) -> RankingData:
        return replace(self, label=np.asarray(label, np.float32))

    def cases(self, selected: np.ndarray) -> RankingData:
        """The rows of some cases (sorted case indices), renumbered 0..len(selected)-1."""
        selected = np.asarray(selected, dtype=np.int64)
        bounds = self.case_bounds
        sizes = bounds[selected + 1] - bounds[selected]
        # each case's rows, without a Python loop: a run of consecutive rows per case
        starts = bounds[selected] - np.r_[0, np.cumsum(sizes)[:-1]] if len(selected) else sizes
        rows = np.repeat(starts, sizes) + np.arange(int(sizes.sum()), dtype=np.int64)
        return replace(
            self,
            case=np.repeat(np.arange(len(selected)), sizes),
            item=self.item[rows],
            features=self.features[rows],
            label=None if self.label is None else self.label[rows],
            session=None if self.session is None else self.session[selected],
            history=None if self.history is None else self.history.take(selected),
        )


def largest_contributions(
    contributions: np.ndarray, names: Sequence[str], top: int
) -> list[list[tuple[str, float]]]:
    """Per row of `contributions` [rows, names]: the `top` (name, value) of largest size, in
    that order (what a ranker's `explain` answers)."""
    out = []
    for row in contributions:
        order = np.argsort(-np.abs(row), kind="stable")[:top]
        out.append([(names[j], float(row[j])) for j in order])
    return out


class LearnedRanker(Protocol):
    """A ranker that learns from `RankingData`: higher `predict` ranks first within a case."""

    name: str

    def fit(self, train: RankingData, valid: RankingData | None = None) -> Self: ...

    def predict(self, data: RankingData) -> np.ndarray: ...  # [N] float64

    def save(self, folder: Path) -> None: ...

    @classmethod
    def load(cls, folder: Path) -> Self: ...


def save_ranking_data(data: RankingData, path: Path) -> None:
    """One .npz (no pickle): what `load_ranking_data` reads back."""
    arrays: dict[str, np.ndarray] = {
        "case": data.case,
        "item": data.item,
        "features": data.features,
        "names": np.array(data.names, dtype=str),
        "n_items": np.array(data.n_items),
        "group_names": np.array(list(data.groups), dtype=str),
    }
    for g, names in enumerate(data.groups.values()):
        arrays[f"group_{g}"] = np.array(names, dtype=str)
    if data.label is not None:
        arrays["label"] = data.label
    if data.session is not None:
        arrays["session"] = data.session
    if data.history is not None:
        arrays.update(
            h_items=data.history.items, h_types=data.history.types, h_age=data.history.age
        )
    np.savez(path, allow_pickle=False, **arrays)  # type: ignore[arg-type]


def load_ranking_data(path: Path) -> RankingData:
    with np.load(path, allow_pickle=False) as z:
        history = History(z["h_items"], z["h_types"], z["h_age"]) if "h_items" in z.files else None
        groups = {
            str(name): tuple(str(n) for n in z[f"group_{g}"])
            for g, name in enumerate(z["group_names"])
        }
        return RankingData(
            case=z["case"],
            item=z["item"],
            features=z["features"],
            names=tuple(str(n) for n in z["names"]),
            groups=groups,
            label=z["label"] if "label" in z.files else None,
            session=z["session"] if "session" in z.files else None,
            history=history,
            n_items=int(z["n_items"]),
        )


def concat_ranking_data(parts: Sequence[RankingData]) -> RankingData:
    """The cases of `parts` one after another (renumbered; sessions kept apart per part)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ValueError("concat_ranking_data: nothing to join")
    first = parts[0]
    if any(p.names != first.names for p in parts):
        raise ValueError("concat_ranking_data: the parts have different features")
    case_offsets = np.cumsum([0] + [p.n_cases for p in parts])
    session_offsets = np.cumsum(
        [0] + [int(p.session.max()) + 1 if p.session is not None else 0 for p in parts]
    )
    histories = [p.history for p in parts]
    history = None
    if all(h is not None for h in histories):
        history = History(
            np.concatenate([h.items for h in histories if h is not None]),
            np.concatenate([h.types for h in histories if h is not None]),
            np.concatenate([h.age for h in histories if h is not None]),
        )
    sessions = [p.session for p in parts]
    return RankingData(
        case=np.concatenate([p.case + o for p, o in zip(parts, case_offsets, strict=False)]),
        item=np.concatenate([p.item for p in parts]),
        features=np.concatenate([p.features for p in parts]),
        names=first.names,
        groups=first.groups,
        label=None
        if any(p.label is None for p in parts)
        else np.concatenate([p.label for p in parts if p.label is not None]),
        session=None
        if any(s is None for s in sessions)
        else np.concatenate(
            [s + o for s, o in zip(sessions, session_offsets, strict=False) if s is not None]
        ),
        history=history,
        n_items=max(p.n_items for p in parts),
    )
