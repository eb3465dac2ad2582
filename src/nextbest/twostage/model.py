"""The two-stage pipeline as one servable model version: its generators and its ranker.

`nextbest train --pipeline FILE` writes a `PipelineModel` as one version folder:

    model.json, arrays.npz    name "pipeline", the spec, the item vocabulary
    members/<label>/          each generator, saved as `nextbest train` saves a model
    stats.npz                 the item statistics of the training data (the ranker's features)
    ranker/                   the learned ranker, as trained by the offline protocol
    ranker-online/            the FTRL ranker as the server's online learning left it (if any)

To the server it is a session model like any other: its state is every member's state side
by side (`EnsembleState`, stored as one bytes row by `EnsembleCodec`), each event steps every
member, and its scorer answers for one member at a time (`MemberState`). The `generators`
source of a placement asks every member for its top-k, and the `learned` ranker scores the
merged candidates with the features of `nextbest.twostage.features` (the same code as
offline). Where a single model is expected (the `session` generator, the `prior` filler,
similar items), the first generator answers.

A ranker that cannot be read (a corrupt file) is refused at load with the reason in
`ranker_error`; the version still serves, in the generators' order.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from nextbest.data.sessions import Sessions
from nextbest.events.schema import Item
from nextbest.models.base import ARRAYS_FILE, MODEL_FILE, NotFittedError, SessionModel
from nextbest.models.registry import MODELS
from nextbest.models.scoring import Scorer
from nextbest.twostage.data import LearnedRanker
from nextbest.twostage.features import ItemStats
from nextbest.twostage.protocol import (
    Generators,
    GeneratorSpec,
    PipelineSpec,
    fit_pipeline,
    ranker_class,
)

logger = logging.getLogger(__name__)

NAME = "pipeline"
MEMBERS_DIR, RANKER_DIR, ONLINE_DIR, STATS_FILE = "members", "ranker", "ranker-online", "stats.npz"
_LENGTH = struct.Struct("<I")


class EnsembleState:
    """The batch state of every member, in the spec's generator order."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[Any]) -> None:
        self.parts = list(parts)


@dataclass(frozen=True)
class MemberState:
    """A question for one member's scorer: its part of a session's state."""

    member: int
    state: Any


class PipelineModel(SessionModel[EnsembleState, PipelineSpec]):
    name = NAME
    config_class = PipelineSpec

    def __init__(
        self,
        spec: PipelineSpec,
        members: Sequence[SessionModel[Any, Any]] = (),
        ranker: LearnedRanker | None = None,
        stats: ItemStats | None = None,
        ranker_error: str | None = None,
    ) -> None:
        super().__init__(spec)
        self.spec = spec
        self.members = list(members)
        self.ranker = ranker
        self.stats = stats
        self.ranker_error = ranker_error  # why the saved ranker was refused (None: it was not)
        self.ranker_source = RANKER_DIR  # which folder the ranker came from
        if self.members:
            self.item_ids = self.members[0].item_ids

    @classmethod
    def of(cls, spec: PipelineSpec, fitted: Generators, ranker: LearnedRanker | None) -> Self:
        """A servable pipeline of generators fitted on all training data and its ranker (as
        `train_pipeline` or an offline `run_pipeline` left them)."""
        model = cls(spec, ranker=ranker)
        model._take(fitted)
        return model

    @cached_property
    def unsupported(self) -> np.ndarray:
        """Columns without a training event: never proposed (a GRU's untrained rows score
        at random), as offline (`nextbest.twostage.generate.propose`)."""
        if self.stats is None:
            return np.zeros(0, np.int64)
        return np.flatnonzero(self.stats.pop == 0).astype(np.int64)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.spec.generators)

    # -- training ---------------------------------------------------------------------------
    def fit(self, train: Sessions) -> Self:
        """Fit the generators on `train` (no ranker: `train_pipeline` runs the protocol)."""
        fitted = Generators.fit(self.spec.generators, train)
        self._take(fitted)
        return self

    def _take(self, fitted: Generators) -> None:
        self.members = fitted.models
        self.item_ids = fitted.train.item_ids
        # the live windows scale with the training data, as offline (`ItemStats.with_stream`)
        windows = ItemStats.windows_of(fitted.train.n_events)
        self.stats = replace(
            fitted.stats, live_windows=windows, stream_keys=None, stream_times=None
        )

    # -- answering --------------------------------------------------------------------------
    def initial_state(self, n: int) -> EnsembleState:
        return EnsembleState([m.initial_state(n) for m in self._fitted()])

    def step(self, state: EnsembleState, items: np.ndarray, times: np.ndarray) -> EnsembleState:
        return EnsembleState(
            [m.step(p, items, times) for m, p in zip(self._fitted(), state.parts, strict=True)]
        )

    def select(self, state: EnsembleState, rows: np.ndarray) -> EnsembleState:
        return EnsembleState(
            [m.select(p, rows) for m, p in zip(self._fitted(), state.parts, strict=True)]
        )

    def score(self, state: EnsembleState) -> np.ndarray:
        """The first generator's scores (where one model's answer is wanted)."""
        return self._fitted()[0].score(state.parts[0])

    def _fitted(self) -> list[SessionModel[Any, Any]]:
        if not self.members:
            raise NotFittedError("the pipeline has no fitted generators: train it first")
        return self.members

    # -- serving ----------------------------------------------------------------------------
    def scorer(self, cache: Path | None = None) -> Scorer:
        return EnsembleScorer(
            self,
            [
                m.scorer(cache / label if cache is not None else None)
                for m, label in zip(self._fitted(), self.labels, strict=True)
            ],
        )

    @cached_property
    def embedding_member(self) -> int | None:
        """The first generator with item vectors: its vectors are the pipeline's (similar
        items, diversity), and its scorer answers for them."""
        for index, member in enumerate(self._fitted()):
            if member.item_embeddings() is not None:
                return index
        return None

    def item_embeddings(self) -> np.ndarray | None:
        member = self.embedding_member
        return None if member is None else self._fitted()[member].item_embeddings()

    def state_codec(self) -> Any:
        from nextbest.serving.state.codec import codec_for

        return EnsembleCodec([codec_for(m) for m in self._fitted()])

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        members = self._fitted()
        if self.stats is None:
            raise NotFittedError("the pipeline has no item statistics: train it first")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MODEL_FILE).write_text(
            json.dumps({"model": NAME, "config": spec_dict(self.spec), "ranker": self.spec.ranker})
        )
        np.savez(folder / ARRAYS_FILE, allow_pickle=False, item_ids=self.item_ids.astype(str))  # type: ignore[union-attr]
        for member, label in zip(members, self.labels, strict=True):
            member.save(folder / MEMBERS_DIR / label)
        save_stats(self.stats, folder / STATS_FILE)
        if self.ranker is not None:
            self.ranker.save(folder / RANKER_DIR)

    @classmethod
    def load(cls, folder: Path) -> Self:
        meta = json.loads((folder / MODEL_FILE).read_text())
        if meta.get("model") != NAME:
            raise ValueError(f"{folder} holds model {meta.get('model')!r}, not {NAME!r}")
        spec = spec_of(meta["config"])
        members = [MODELS[g.model].load(folder / MEMBERS_DIR / g.name) for g in spec.generators]
        vocabulary = members[0].item_ids
        assert vocabulary is not None
        for g, member in zip(spec.generators, members, strict=True):
            if member.item_ids is None or not np.array_equal(member.item_ids, vocabulary):
                raise ValueError(f"{folder}: generator {g.name} has another item vocabulary")
        model = cls(spec, members, stats=load_stats(folder / STATS_FILE))
        model.ranker, model.ranker_error, model.ranker_source = load_ranker(spec, folder)
        return model


def load_ranker(spec: PipelineSpec, folder: Path) -> tuple[LearnedRanker | None, str | None, str]:
    """The version's ranker: the online-learned state if there is one, else the trained one;
    (None, the reason, folder) when it cannot be read: it is refused, never half-used."""
    source = ONLINE_DIR if (folder / ONLINE_DIR).is_dir() else RANKER_DIR
    try:
        ranker = ranker_class(spec.ranker).load(folder / source)
    except Exception as exc:  # a corrupt or missing file: refuse it, say why
        reason = f"the {spec.ranker} ranker in {folder / source} was refused: {exc}"
        logger.error("%s; serving the generators' order", reason)
        return None, reason, source
    return ranker, None, source


def save_online(ranker: LearnedRanker, folder: Path) -> None:
    """Write the online-learned ranker beside the trained one, atomically (a new folder
    renamed over the old), so a crash mid-write never leaves a half state behind."""
    staging = folder / f".{ONLINE_DIR}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    ranker.save(staging)
    target = folder / ONLINE_DIR
    if target.exists():
        old = folder / f".{ONLINE_DIR}.old"
        if old.exists():
            shutil.rmtree(old)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)


def forget_online(folder: Path) -> bool:
    """Delete the online-learned state (the trained ranker answers again); True if there was
    one."""
    target = folder / ONLINE_DIR
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True


class EnsembleScorer(Scorer):
    """Each member's scorer; a `MemberState` names the member, a whole state asks the first,
    and a bare state (from item vectors) the member whose vectors they are."""

    def __init__(self, model: PipelineModel, scorers: Sequence[Scorer]) -> None:
        super().__init__(model)
        self.pipeline = model
        self.scorers = list(scorers)

    def _route(self, state: Any) -> tuple[int, Any]:
        """The member that answers for `state`, and its part of it."""
        if isinstance(state, MemberState):
            return state.member, state.state
        if isinstance(state, EnsembleState):
            return 0, state.parts[0]
        # a bare state: built from the pipeline's item vectors (similar items), which are
        # those of its embedding member
        member = self.pipeline.embedding_member
        if member is None:
            raise TypeError(f"a pipeline scores its own states, not {type(state).__name__}")
        return member, state

    def __call__(self, state: Any) -> torch.Tensor:
        member, part = self._route(state)
        return self.scorers[member](part)

    def top(
        self, state: Any, n: int, banned: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        member, part = self._route(state)
        return self.scorers[member].top(part, n, banned)

    def top_many(
        self,
        states: Sequence[Any],
        n: Sequence[int],
        banned: Sequence[np.ndarray | None],
        exact: Sequence[int | None] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Grouped by member, so a member with a fast path reads its matrix once."""
        routed = [self._route(s) for s in states]
        groups: dict[int, list[int]] = defaultdict(list)
        for position, (member, _) in enumerate(routed):
            groups[member].append(position)
        out: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.zeros(0))] * len(states)
        for member, positions in groups.items():
            answers = self.scorers[member].top_many(
                [routed[p][1] for p in positions],
                [n[p] for p in positions],
                [banned[p] for p in positions],
                [exact[p] for p in positions] if exact is not None else None,
            )
            for position, answer in zip(positions, answers, strict=True):
                out[position] = answer
        return out

    def score_rows(self, state: Any, columns: np.ndarray) -> np.ndarray:
        member, part = self._route(state)
        return self.scorers[member].score_rows(part, columns)


class EnsembleCodec:
    """A row is every member's row, each behind its length (4 bytes)."""

    def __init__(self, codecs: Sequence[Any]) -> None:
        self.codecs = list(codecs)

    def split(self, state: EnsembleState) -> list[bytes]:
        per_member = [c.split(p) for c, p in zip(self.codecs, state.parts, strict=True)]
        return [
            b"".join(_LENGTH.pack(len(part)) + part for part in parts)
            for parts in zip(*per_member, strict=True)
        ]

    def _parts(self, row: bytes) -> list[bytes]:
        parts, offset = [], 0
        for _ in self.codecs:
            (length,) = _LENGTH.unpack_from(row, offset)
            offset += _LENGTH.size
            parts.append(row[offset : offset + length])
            offset += length
        if offset != len(row):
            raise ValueError("a pipeline state row of another shape")
        return parts

    def join(self, rows: Sequence[bytes]) -> EnsembleState:
        split = [self._parts(row) for row in rows]
        return EnsembleState(
            [c.join([parts[m] for parts in split]) for m, c in enumerate(self.codecs)]
        )

    def group_key(self, row: bytes) -> Hashable:
        return tuple(c.group_key(p) for c, p in zip(self.codecs, self._parts(row), strict=True))


# -- training ---------------------------------------------------------------------------------
def train_pipeline(
    spec: PipelineSpec,
    train: Sessions,
    catalog: Mapping[str, Item] | None = None,
    say: Callable[[str], None] | None = None,
    cache: Path | None = None,
) -> tuple[PipelineModel, dict[str, float]]:
    """The protocol's training half: the ranker learns on candidates of the latest training
    sessions from generators fitted before them, then the generators are fitted on all of
    `train`. Returns the model and the seconds of each part."""
    seconds: dict[str, float] = {}
    ranker, full, _ = fit_pipeline(spec, train, catalog, seconds, say, cache)
    return PipelineModel.of(spec, full, ranker), seconds


# -- spec and statistics as plain data --------------------------------------------------------
def spec_dict(spec: PipelineSpec) -> dict[str, Any]:
    return asdict(spec)  # the generators too, as dicts


def spec_of(raw: Mapping[str, Any]) -> PipelineSpec:
    generators = tuple(
        GeneratorSpec(g["model"], int(g["k"]), dict(g["params"]), str(g.get("label", "")))
        for g in raw["generators"]
    )
    rest = {k: v for k, v in raw.items() if k != "generators"}
    return PipelineSpec(generators=generators, **rest)


_STAT_ARRAYS = ("pop", "pop_recent", "first_seen", "price", "discount", "category", "brand",
                "price_band")  # fmt: skip


def save_stats(stats: ItemStats, path: Path) -> None:
    arrays = {name: getattr(stats, name) for name in _STAT_ARRAYS}
    arrays["live_windows"] = np.asarray(stats.live_windows, np.int64)
    np.savez(path, allow_pickle=False, **arrays)  # type: ignore[arg-type]


def load_stats(path: Path) -> ItemStats:
    with np.load(path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    known = {f.name for f in fields(ItemStats)}
    windows = tuple(int(w) for w in arrays.pop("live_windows"))
    return ItemStats(**{k: v for k, v in arrays.items() if k in known}, live_windows=windows)
