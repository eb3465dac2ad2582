"""Experiments in the server: which variant answers a request, with which model, placements
and live state.

    experiments = ServedExperiments(path, home, registry, live, recommender)
    experiments.load()                  # ExperimentsError: refused, the running ones stay
    choice = experiments.choose(query)  # None: no experiment runs on the query's placement
    experiments.apply(events, seqs, new_sessions, moved)   # after the main live state moved
    experiments.refresh()               # the refresher: load the file again if it changed

A variant serves the answering model ("latest") or a pinned version, which the registry loads
once beside it. A pinned version keeps its own live state (its session and user records under
a key prefix in the same store), moved by the events of the sessions assigned to it, so its
requests find their states ready instead of rebuilding them. The assignment needs the session's
record in the main live state (its user, whether it began anonymous), which every event moves.

The file is the truth: the admin API writes it (`define`) and every worker loads it again when
it changes. A file that cannot run is refused with its problem named, and the experiments
loaded before keep running.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import tomli_w

from nextbest.events.schema import Event
from nextbest.experiments.assignment import assign, assignment_unit
from nextbest.experiments.spec import (
    LATEST,
    Experiment,
    ExperimentsError,
    ExperimentsFile,
    Variant,
    load_experiments,
    parse_experiments,
)
from nextbest.recommend.context import Query
from nextbest.serving.live import LiveState
from nextbest.serving.recommend import Recommender
from nextbest.serving.registry import LoadedModel, ModelRegistry
from nextbest.serving.state.prefixed import PrefixedStore
from nextbest.serving.state.records import SessionRecord
from nextbest.toml_files import read_toml

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Choice:
    """The variant a request is answered by."""

    experiment: str
    variant: str
    unit: str  # the id it was assigned by
    model: LoadedModel | None
    recommender: Recommender
    # the session's record the assignment read, when the variant's state is that one (the
    # answering version's): the request need not read it again
    record: SessionRecord | None = None


class ServedExperiments:
    def __init__(
        self,
        path: Path,
        home: Path,
        registry: ModelRegistry,
        live: LiveState,
        recommender: Recommender,
    ) -> None:
        """`live`, `recommender`: the server's own (the answering model's live state and the
        placements file's pipelines), which a variant without its own uses."""
        self.path, self.home = path, home
        self.registry, self.live, self.main = registry, live, recommender
        self.experiments: tuple[Experiment, ...] = ()
        self.error: str | None = None  # why the file's latest version was refused
        self.loaded_at: float | None = None
        self._stamp: tuple[int, int] | None = None  # the file's (mtime, size) when read
        self._namespaces: dict[str, LiveState] = {}  # pinned version -> its live state
        # (name, window, points) -> (monotonic time, report): recent reports, for a while
        self._reports: dict[tuple[str, float, int], tuple[float, Any]] = {}

    # -- the definition ------------------------------------------------------------------
    def load(self) -> tuple[Experiment, ...]:
        """Read the file (none: no experiments) and serve what it defines; ExperimentsError
        names the problem, and what ran before keeps running."""
        self._stamp = _stamp(self.path)
        try:
            experiments = (
                load_experiments(self.path, self.main.placements, self.home)
                if self._stamp is not None
                else []
            )
            versions = self._pin(experiments)
        except ExperimentsError as exc:
            self.error = str(exc)
            raise
        self.experiments = tuple(experiments)
        self._reports = {}  # a new definition: reports of the old one go
        self.registry.unpin(versions)
        self._namespaces = {v: live for v, live in self._namespaces.items() if v in versions}
        self.error, self.loaded_at = None, time.time()
        logger.info("experiments from %s: %s", self.path, [e.name for e in experiments] or "none")
        return self.experiments

    def _pin(self, experiments: Sequence[Experiment]) -> set[str]:
        """Load the versions the variants pin; their names. ExperimentsError if one fails."""
        versions = {v.model for e in experiments for v in e.variants if v.model != LATEST}
        for version in sorted(versions):
            try:
                self.registry.pinned(version)
            except Exception as exc:
                raise ExperimentsError(
                    f"{self.path}: model version {version!r} cannot be loaded: {exc}"
                ) from None
        return versions

    def refresh(self) -> bool:
        """Load the file again if it changed since it was read; True if it was loaded. A bad
        file is logged (and kept in `error`); the experiments running stay."""
        if _stamp(self.path) == self._stamp:
            return False
        try:
            self.load()
        except ExperimentsError:
            logger.error("experiments file refused, the running experiments stay: %s", self.error)
            return False
        return True

    def define(self, raw: Mapping[str, Any]) -> tuple[Experiment, ...]:
        """Check `raw` (the file's tables, as the admin API sends them), then write it as the
        experiments file and serve it. ExperimentsError: nothing is written."""
        checked = parse_experiments(
            dict(raw), "the request", self.main.placements, self.home, self.path.parent
        )
        self._pin(checked)  # a version that cannot be loaded is refused before any write
        spec = ExperimentsFile.model_validate(raw).model_dump(mode="python", exclude_none=True)
        for experiment in spec["experiments"].values():
            for variant in experiment["variants"]:
                if "placements" in variant:
                    variant["placements"] = str(variant["placements"])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        draft = self.path.with_name(self.path.name + ".draft")
        draft.write_text(tomli_w.dumps(spec))
        os.replace(draft, self.path)  # whole or not at all, for the workers reading it
        return self.load()

    def stop(self, name: str, now: float | None = None) -> tuple[Experiment, ...]:
        """End experiment `name` now (its `end` set in the file): its shoppers see what the
        server serves outside experiments from then on, and its report stays. KeyError if
        no experiment has that name."""
        if name not in {e.name for e in self.experiments}:
            raise KeyError(name)
        raw = read_toml(self.path, "experiments", ExperimentsError)
        at = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
        spec = raw["experiments"][name]
        start = spec.get("start")
        if isinstance(start, datetime) and start.timestamp() >= at.timestamp():
            spec["end"] = start + timedelta(microseconds=1)  # never began: over at its start
        else:
            spec["end"] = at
        return self.define(raw)

    def kept_report(
        self, key: tuple[str, float, int], compute: Callable[[], T], keep_seconds: float
    ) -> T:
        """The report under `key` computed in the last `keep_seconds`, else `compute()`'s,
        kept: a report reads every list and outcome of its experiment, and a dashboard left
        open asks for it again and again."""
        kept = self._reports.get(key)
        if kept is not None and time.monotonic() - kept[0] < keep_seconds:
            return cast(T, kept[1])
        report = compute()
        self._reports[key] = (time.monotonic(), report)
        return report

    def running(self, now: float | None = None) -> list[Experiment]:
        at = time.time() if now is None else now
        return [e for e in self.experiments if e.running(at)]

    # -- requests ------------------------------------------------------------------------
    def choose(self, query: Query, now: float | None = None) -> Choice | None:
        """The variant answering `query`: None when no experiment runs on its placement, or
        the request names neither a session nor a user (nothing to assign by)."""
        experiment = self._on(query.placement, time.time() if now is None else now)
        if experiment is None or not (query.session_id or query.user_id):
            return None
        current = self.registry.current
        record = self.live.session(current, query.session_id) if query.session_id else None
        unit = _unit(query, record)
        variant = experiment.variants[assign(unit, experiment.salt, experiment.shares)]
        model = self._model(variant)
        live = self._live_for(model)
        placements = variant.placement_config or self.main.placements
        recommender = Recommender(live, self.main.trends, self.main.catalog, placements)
        same = live is self.live and model is current
        return Choice(experiment.name, variant.name, unit, model, recommender,
                      record if same else None)  # fmt: skip

    def _on(self, placement: str, now: float) -> Experiment | None:
        for experiment in self.experiments:
            if experiment.placement == placement and experiment.running(now):
                return experiment
        return None

    def _model(self, variant: Variant) -> LoadedModel | None:
        if variant.model == LATEST:
            return self.registry.current
        return self.registry.pinned(variant.model)

    def live_states(self) -> list[LiveState]:
        """The server's live state and every pinned version's (each loaded version gets one:
        a pinned version this worker has not served yet may have states another worker wrote)."""
        return [self.live, *(self._live_for(model) for model in self.registry.loaded())]

    def _live_for(self, model: LoadedModel | None) -> LiveState:
        """The live state of `model`'s sessions: the server's for the answering version, a
        prefixed one of the same store for a pinned version."""
        if model is None or model is self.registry.current:
            return self.live
        live = self._namespaces.get(model.version)
        if live is None:
            store = PrefixedStore(self.live.store, f"v{model.tag.hex()}:")
            live = LiveState(store, self.live.log, self.live.rebuild_events, self.live.facets)
            self._namespaces[model.version] = live
        return live

    # -- events --------------------------------------------------------------------------
    def apply(
        self,
        events: Sequence[Event],
        seqs: Sequence[int],
        new_sessions: Collection[str],
        moved: Mapping[str, SessionRecord],
    ) -> None:
        """Move the live states of pinned versions by the events of the sessions assigned to
        them (`moved`: the sessions' records in the main live state, after these events)."""
        targets = self._pinned_sessions(moved)
        for version, sessions in targets.items():
            model = self.registry.pinned(version)
            live = self._live_for(model)
            if live is self.live:
                continue  # the version answers now: the main state has moved already
            chosen = [(e, s) for e, s in zip(events, seqs, strict=True) if e.session_id in sessions]
            try:
                live.apply(
                    model, [e for e, _ in chosen], [s for _, s in chosen],
                    set(new_sessions) & sessions,
                )  # fmt: skip
            except Exception:  # the events are committed; these states are rebuilt when used
                logger.exception("variant state update failed for model %s", version)
                live.forget(sessions)

    def _pinned_sessions(self, moved: Mapping[str, SessionRecord]) -> dict[str, set[str]]:
        """Pinned version -> the sessions among `moved` that a running experiment assigns to
        a variant serving it."""
        targets: dict[str, set[str]] = defaultdict(set)
        current = self.registry.current
        for experiment in self.running():
            pinned = {
                k for k, v in enumerate(experiment.variants)
                if v.model != LATEST and (current is None or v.model != current.version)
            }  # fmt: skip
            if not pinned:
                continue
            for session, record in moved.items():
                unit = assignment_unit(session, record.user_id, record.started_anonymous)
                k = assign(unit, experiment.salt, experiment.shares)
                if k in pinned:
                    targets[experiment.variants[k].model].add(session)
        return targets


def _unit(query: Query, record: SessionRecord | None) -> str:
    """The id the request is assigned by (`assignment_unit`), with what the session's record
    knows: its user, and whether its first event named none."""
    if record is None:
        return assignment_unit(None, query.user_id)
    began_anonymous = record.n_events > 0 and record.started_anonymous
    return assignment_unit(query.session_id, record.user_id or query.user_id, began_anonymous)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size
