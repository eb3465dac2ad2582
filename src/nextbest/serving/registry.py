"""The model registry: which model version answers, and switching versions without a pause.

The server serves the newest version folder under `$NEXTBEST_HOME/models` (`nextbest train`
writes one). `refresh()` (the server calls it every few seconds, and on `POST
/v1/models/reload`) loads a newer version completely beside the one answering, then swaps
one reference: a request holds the `LoadedModel` it started with to its end, so no request
sees half a switch and none is dropped. Session states carry the tag of the version that
made them; a state of another version is rebuilt from the event log when next used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nextbest.keywords.card_ranker import KeywordRanker
from nextbest.keywords.graph import QueryGraph, load_version_graph
from nextbest.models.base import MODEL_FILE, SessionModel
from nextbest.models.neighbours import prepare_in_background
from nextbest.models.scoring import LinearScorer, Scorer
from nextbest.models.served import CACHE_DIR, served_version
from nextbest.models.store import list_versions
from nextbest.recommend.rules.purchase_rules import PurchaseRules
from nextbest.serving.state.codec import StateCodec, codec_for

logger = logging.getLogger(__name__)

NO_MODEL_TAG = bytes(8)
NEIGHBOURS = 250  # item neighbours kept per item (the product placement's 200 and a spare)
ModelClasses = Mapping[str, type[SessionModel[Any, Any]]]


def default_classes() -> dict[str, type[SessionModel[Any, Any]]]:
    """Every model nextbest can train (`nextbest.models.registry.MODELS`) and the two-stage
    pipeline (`nextbest train --pipeline`)."""
    from nextbest.models.registry import MODELS
    from nextbest.twostage.model import NAME, PipelineModel

    return {**MODELS, NAME: PipelineModel}


@dataclass(frozen=True, eq=False)
class LoadedModel:
    version: str
    model: SessionModel[Any, Any]
    codec: StateCodec
    score: Scorer
    tag: bytes  # 8 bytes naming this version in session states
    index: dict[str, int]  # item id -> score column
    initial_row: bytes  # the state row of a session that has seen nothing
    loaded_at: float
    embeddings: np.ndarray | None = None  # [N, d] float32 item vectors, if the model has them
    purchase_rules: PurchaseRules | None = None  # learned at training, if it had purchases
    query_graph: QueryGraph | None = None  # learned at training, if it had searches
    keyword_ranker: KeywordRanker | None = None  # fitted at training on shown keyword cards
    # values the stages derive from this version (similar items' neighbours), kept while it
    # serves
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def n_items(self) -> int:
        return len(self.index)


def version_tag(version: str) -> bytes:
    return hashlib.sha256(version.encode()).digest()[:8]


def load_model(folder: Path, classes: ModelClasses, cache: Path | None = None) -> LoadedModel:
    """Load one version folder and everything serving derives from it (`cache`: a folder for
    derived arrays that worker processes share; version folders stay as training wrote them)."""
    name = json.loads((folder / MODEL_FILE).read_text()).get("model")
    if name not in classes:
        raise ValueError(
            f"{folder} holds model {name!r}, which this server cannot load; "
            f"it knows: {', '.join(sorted(classes))}"
        )
    started = time.perf_counter()
    model = classes[name].load(folder)
    loaded = serve_model(
        model, folder.name, cache, PurchaseRules.load(folder), load_version_graph(folder),
        KeywordRanker.load(folder),
    )  # fmt: skip
    logger.info(
        "loaded model %s (%s, %d items) in %.2f s",
        folder.name, name, loaded.n_items, time.perf_counter() - started,
    )  # fmt: skip
    return loaded


def serve_model(
    model: SessionModel[Any, Any],
    version: str,
    cache: Path | None = None,
    purchase_rules: PurchaseRules | None = None,
    query_graph: QueryGraph | None = None,
    keyword_ranker: KeywordRanker | None = None,
) -> LoadedModel:
    """A fitted model with everything serving derives from it (also for offline runs of the
    pipeline, which serve a model fitted in memory)."""
    codec = codec_for(model)
    item_ids = np.asarray(model.item_ids, dtype=object)
    score = model.scorer(cache)
    if isinstance(score, LinearScorer):
        _keep_the_faster_scoring(model, score, version)
    return LoadedModel(
        version=version,
        model=model,
        codec=codec,
        score=score,
        tag=version_tag(version),
        index={str(item): column for column, item in enumerate(item_ids)},
        initial_row=codec.split(model.initial_state(1))[0],
        loaded_at=time.time(),
        embeddings=_embeddings(model),
        purchase_rules=purchase_rules,
        query_graph=query_graph,
        keyword_ranker=keyword_ranker if query_graph is not None else None,
    )


def _keep_the_faster_scoring(
    model: SessionModel[Any, Any], score: LinearScorer, version: str, states: int = 8
) -> None:
    """Serve with or without the int8 prescreen, whichever this machine runs faster, timed
    on a few states the model reaches by stepping through random items."""
    n_items = 0 if model.item_ids is None else len(model.item_ids)
    if score.prescreen is None or n_items == 0:
        return
    rng = np.random.default_rng(0)
    state, sampled = model.initial_state(1), []
    for column in rng.integers(0, n_items, states):
        state = model.step(state, np.array([column]), np.zeros(1))
        sampled.append(state)
    timings = score.keep_the_faster_path(sampled)
    logger.info(
        "model %s scores with %s (top-10: int8 prescreen %.3f ms, float32 %.3f ms here)",
        version, "the int8 prescreen" if score.prescreen is not None else "float32",
        timings["int8"], timings["float32"],
    )  # fmt: skip


def _embeddings(model: SessionModel[Any, Any]) -> np.ndarray | None:
    vectors = model.item_embeddings()
    return None if vectors is None else np.ascontiguousarray(vectors, dtype=np.float32)


class ModelRegistry:
    def __init__(self, home: Path, classes: ModelClasses | None = None) -> None:
        self.home = home
        self.classes = dict(classes) if classes is not None else default_classes()
        self._current: LoadedModel | None = None
        self._loading = threading.Lock()
        self._failed: set[str] = set()
        self._pinned: dict[str, LoadedModel] = {}  # versions experiments' variants serve

    @property
    def current(self) -> LoadedModel | None:
        """The model answering now (None before the first version exists)."""
        return self._current

    def versions(self) -> list[str]:
        return [folder.name for folder in list_versions(self.home)]

    def refresh(self) -> LoadedModel | None:
        """Switch to the served version (models/served.json's, else the newest) if it is not
        the one answering; return it if switched."""
        with self._loading:  # one load at a time; requests keep using `current` meanwhile
            newest = served_version(self.home)
            if newest is None:
                return None
            current = self._current
            if current is not None and current.version == newest.name:
                return None
            if newest.name in self._failed:
                return None
            pinned = self._pinned.get(newest.name)  # an experiment's variant loaded it already
            try:
                loaded = pinned or load_model(
                    newest, self.classes, self.home / CACHE_DIR / newest.name
                )
            except Exception:
                self._failed.add(newest.name)  # tried once; a newer version is tried again
                raise
            if loaded.embeddings is not None and pinned is None:  # similar items without a scan
                prepare_in_background(
                    loaded.memo, loaded.score, loaded.embeddings, NEIGHBOURS,
                    self.home / CACHE_DIR / newest.name,
                )  # fmt: skip
            self._current = loaded  # the switch: one reference assignment
            if current is not None:
                logger.info("switched from model %s to %s", current.version, loaded.version)
            return loaded

    def pinned(self, version: str) -> LoadedModel:
        """Version `version` loaded beside the one answering (an experiment's variant serves
        it), once per process, and kept while it is pinned: the answering one itself if it
        is that version, and a pinned version that becomes the newest answers as it is.
        Raises ValueError when no such version folder exists or it cannot be loaded."""
        loaded = self._pinned.get(version)
        if loaded is not None:
            return loaded
        current = self._current
        with self._loading:
            folders = {folder.name: folder for folder in list_versions(self.home)}
            if version not in folders:
                raise ValueError(f"no model version {version!r} under {self.home / 'models'}")
            loaded = self._pinned.get(version)
            if loaded is None and current is not None and current.version == version:
                loaded = current  # kept pinned: it stays loaded when a newer one answers
            if loaded is None:
                cache = self.home / CACHE_DIR / version
                loaded = load_model(folders[version], self.classes, cache)
                if loaded.embeddings is not None:
                    prepare_in_background(
                        loaded.memo, loaded.score, loaded.embeddings, NEIGHBOURS, cache
                    )
            self._pinned[version] = loaded
            return loaded

    def unpin(self, keep: set[str]) -> None:
        """Let go of the pinned versions not in `keep` (experiments that ended)."""
        self._pinned = {v: m for v, m in self._pinned.items() if v in keep}

    def loaded(self) -> list[LoadedModel]:
        """Every version in memory: the one answering, then the pinned ones."""
        current = [self._current] if self._current is not None else []
        pinned = [m for m in self._pinned.values() if not current or m is not current[0]]
        return current + pinned
