"""`nextbest train --from-log`: retrain on the server's own event log, behind a promotion gate.

1. One retrain at a time: a lock file in the data folder (`retrain.lock`).
2. The log (SQLite or PostgreSQL, as the server is configured) is exported and prepared as
   `nextbest data prepare` prepares files; the catalog comes from the server's catalog.
3. The candidate is trained, with the recipe of the served version (or the one given), on
   every event before the last `holdout_days`, into `$NEXTBEST_HOME/candidates/`, where no
   server looks.
4. The gate: the candidate and the served version answer the same held-out sessions through
   the same placement (what a shop would see), on the items both know; the candidate passes
   when its MRR@20 is at least the served version's less `margin` (a share).
5. A candidate that passes is trained again on every event (held-out days included) and
   promoted; one that fails stays in `candidates/` with why, and the served version stays.
   With `incremental`, a served GRU4Rec goes on training instead, on the events since it was
   trained (the candidate), then on the held-out days. Either way the oldest versions beyond
   `NEXTBEST_KEEP_VERSIONS` are pruned.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from nextbest.cli.common import console, progress_bar, server_settings
from nextbest.models.served import promote as promote_version
from nextbest.models.served import prune, served_version
from nextbest.models.store import META_FILE, list_versions

LOCK_FILE = "retrain.lock"
CANDIDATES = "candidates"
GATE_METRIC = "mrr@20"


@dataclass(frozen=True)
class Recipe:
    """How a version was trained, so that a retrain can train the same thing again."""

    model: str | None = None
    params: tuple[str, ...] = ()
    pipeline: str | None = None

    def to_meta(self) -> dict[str, Any]:
        return {"model": self.model, "params": list(self.params), "pipeline": self.pipeline}

    @classmethod
    def of_version(cls, folder: Path) -> Recipe:
        meta = json.loads((folder / META_FILE).read_text())
        raw = meta.get("recipe")
        if not isinstance(raw, dict):
            raise ValueError(
                f"the served version {folder.name} does not say how it was trained (it "
                "predates recipes): name --model NAME [--param ...] or --pipeline FILE"
            )
        return cls(raw.get("model"), tuple(raw.get("params") or ()), raw.get("pipeline"))

    def describe(self) -> str:
        if self.pipeline is not None:
            return f"the pipeline {self.pipeline}"
        params = " ".join(f"--param {p}" for p in self.params)
        return f"{self.model} {params}".strip()


@dataclass(frozen=True)
class Gate:
    placement: str
    cases: int
    candidate: float
    served: float | None  # None: nothing served yet, nothing to compare with
    served_version: str | None
    margin: float
    passed: bool
    reason: str


@contextmanager
def retrain_lock(home: Path) -> Iterator[None]:
    """Hold the data folder's retrain lock, or fail at once naming who holds it."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_FILE
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ValueError(
                f"another retrain holds {path} ({holder}): one retrain at a time"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def log_events(database: str, schema: str | None) -> pl.DataFrame:
    """Every event of the server's log as the training table (EVENT_SCHEMA); a log that cannot
    be read, or holds no item event, is a ValueError that says so."""
    from sqlalchemy.exc import SQLAlchemyError

    from nextbest.events.log import open_event_log
    from nextbest.events.schema import conform_events

    where = database.split("@")[-1]  # no password in a message
    try:
        log = open_event_log(database, schema)
        try:
            with console.status(f"exporting the event log ({where})"):
                raw = log.export()
        finally:
            log.close()
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"cannot read the event log at {where}: {first}") from None
    events = conform_events(raw)
    if events.filter(pl.col("item_id").is_not_null()).height == 0:
        raise ValueError(
            f"the event log at {where} holds no item events: nothing to train on (send "
            "events to the server first)"
        )
    return events


def catalog_table(database: str, schema: str | None) -> pl.DataFrame | None:
    """The server's catalog as an ITEM_SCHEMA table (None when it is empty)."""
    from nextbest.events.catalog import SqlCatalog
    from nextbest.events.log.database import open_engine
    from nextbest.events.schema import table_of_items

    engine = open_engine(database)
    try:
        catalog = SqlCatalog(engine, schema)
        count = catalog.count()
        return table_of_items(catalog.items(count)) if count else None
    finally:
        engine.dispose()


def retrain_from_log(
    recipe: Recipe | None,
    holdout_days: float,
    margin: float,
    placement_name: str,
    max_sessions: int,
    refit: bool,
    incremental: bool = False,
) -> Path | None:
    """The whole loop (module docstring); the promoted version's folder, or None when the
    candidate did not pass."""
    from nextbest.data.prepare import PrepareConfig, prepare

    if not 0 <= margin < 1:
        raise ValueError(f"--margin is a share of the served MRR@20 in [0, 1), not {margin}")
    settings = server_settings()
    home = settings.home
    with retrain_lock(home):
        served = served_version(home)
        if recipe is None:
            if served is None:
                raise ValueError(
                    "no version is served yet to take the recipe from: name --model NAME "
                    "[--param ...] or --pipeline FILE"
                )
            recipe = Recipe.of_version(served)
        placement = _gate_placement(placement_name)  # a bad name fails before any training
        events = log_events(settings.database, settings.database_schema)
        items = catalog_table(settings.database, settings.database_schema)
        end = float(events["timestamp"].max())  # type: ignore[arg-type]
        # Held out: the last days, but never an event the served version was trained on (it
        # would have seen the answers); nothing new since then means nothing to retrain on.
        cutoff = end - holdout_days * 86400
        trained_until = _trained_until(served)
        if trained_until is not None and trained_until >= end:
            assert served is not None
            console.print(f"kept {served.name}: no event in the log since it was trained")
            return None
        if trained_until is not None:
            cutoff = max(cutoff, trained_until)
        prepared = prepare(events, PrepareConfig(test_days=(end - cutoff) / 86400))
        console.print(
            f"log: {events.height:,} events -> {prepared.train.height:,} to train on, "
            f"{prepared.test.height:,} held out (after "
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(cutoff))} UTC)"
        )
        with tempfile.TemporaryDirectory(prefix="nextbest-retrain-") as scratch:
            folder = Path(scratch)
            items_path = None
            if items is not None:
                items_path = folder / "items.parquet"
                items.write_parquet(items_path)
            train_path = folder / "train.parquet"
            prepared.train.write_parquet(train_path)
            staging = home / CANDIDATES
            warm = incremental and _warm_start(served, recipe, trained_until)
            if warm:
                assert served is not None and trained_until is not None
                since = prepared.train.filter(pl.col("timestamp") > trained_until)
                candidate = _update(served, since, staging)
            else:
                candidate = _train(recipe, train_path, items_path, staging)
            gate = _gate(
                candidate, served, prepared.train, prepared.test, items, placement,
                max_sessions, margin,
            )  # fmt: skip
            _record_gate(candidate, gate)
            if not gate.passed:
                console.print(
                    f"[bold]kept {served.name if served else 'nothing'}[/]: {gate.reason}"
                )
                _prune(home, settings.keep_versions)
                return None
            final = candidate
            if refit and prepared.test.height:
                every = folder / "all.parquet"
                pl.concat([prepared.train, prepared.test]).write_parquet(every)
                if warm:  # the held-out days too, from where the candidate stopped
                    final = _update(candidate, prepared.test, staging)
                else:
                    final = _train(recipe, every, items_path, staging)
                _record_gate(final, gate)
                shutil.rmtree(candidate)
            promoted = home / "models" / final.name
            promoted.parent.mkdir(parents=True, exist_ok=True)
            final.rename(promoted)
        promote_version(home, promoted.name, f"retrained from the log: {gate.reason}")
        console.print(f"[bold]promoted {promoted.name}[/]: {gate.reason}")
        _prune(home, settings.keep_versions)
        return promoted


QUICK_MODELS = {"pop", "spop", "catpop", "covisit", "sknn", "vsknn", "stan", "vstan"}


def _warm_start(served: Path | None, recipe: Recipe, trained_until: float | None) -> bool:
    """Whether `--incremental` can go on from the served version: GRU4Rec can; the kNN
    family and co-visitation refit on everything in seconds (a full retrain, said so);
    anything else is refused."""
    model = json.loads((served / META_FILE).read_text()).get("model") if served else None
    if recipe.model in QUICK_MODELS:
        console.print(f"{recipe.model} refits on every event in seconds: a full retrain")
        return False
    if served is None or model != "gru4rec" or recipe.model != "gru4rec":
        raise ValueError(
            "--incremental goes on from a served GRU4Rec version (the kNN family and "
            "co-visitation refit in full in seconds); retrain this one in full"
        )
    if trained_until is None:
        raise ValueError(
            f"{served.name} does not say when its training data ends: retrain it in full once"
        )
    return True


def _update(folder: Path, events: pl.DataFrame, staging: Path) -> Path:
    """Version `folder` (GRU4Rec) trained on from where it stopped, on `events` only, as a
    new version in `staging` (its purchase rules, query graph and keyword ranker kept)."""
    from nextbest.cli.evaluate import last_event_time
    from nextbest.data.sessions import Sessions
    from nextbest.models.gru4rec import GRU4Rec
    from nextbest.models.gru4rec.model import warm_start_vocabulary
    from nextbest.models.store import derive_version

    model = GRU4Rec.load(folder)
    started = time.perf_counter()
    items = events["item_id"].drop_nulls().unique().to_list()
    vocabulary = warm_start_vocabulary(np.asarray(model.item_ids, dtype=object), items)
    sessions = Sessions.from_events(events, item_ids=vocabulary)
    learned = bool((sessions.lengths >= 2).any())
    if learned:
        with console.status(f"updating {folder.name} on {sessions.n_events:,} new events"):
            model.update(sessions)
    seconds = time.perf_counter() - started
    until = last_event_time(events)
    meta = {
        "updated_from": folder.name,
        "update_events": sessions.n_events if learned else 0,
        "fit_seconds": round(seconds, 3),
        **({"trained_until": until} if until is not None else {}),
    }
    updated = derive_version(folder, staging, model.save, meta)
    console.print(
        f"updated {folder.name} on {meta['update_events']:,} new events in {seconds:.1f} s "
        f"-> {updated}"
    )
    return updated


def _prune(home: Path, keep: int) -> None:
    """The oldest versions beyond `keep`, and the oldest candidates a gate kept out."""
    removed = prune(home, keep)
    if removed:
        console.print(f"pruned {len(removed)} old version(s): {', '.join(removed)}")
    prune(home / CANDIDATES, keep)


def _trained_until(folder: Path | None) -> float | None:
    """The time of the last event version `folder` was trained on (None if it does not say)."""
    if folder is None:
        return None
    value = json.loads((folder / META_FILE).read_text()).get("trained_until")
    return float(value) if isinstance(value, (int, float)) else None


def _gate_placement(name: str) -> Any:
    from nextbest.cli.placement_eval import parse_placement

    placement = parse_placement(name)
    if placement.needs:
        raise ValueError(
            f"--gate-placement {name!r} needs {', '.join(placement.needs)} on every request; "
            "gate on a placement that answers a session alone (next, home)"
        )
    return placement


def _train(recipe: Recipe, train_path: Path, items_path: Path | None, staging: Path) -> Path:
    """Train `recipe` on `train_path` into `staging`/models; the new version's folder."""
    from nextbest.cli.evaluate import train_model_version
    from nextbest.cli.pipeline_eval import train_pipeline_cli

    if recipe.pipeline is not None:
        return train_pipeline_cli(
            Path(recipe.pipeline), train_path, items_path, False, home=staging
        )
    assert recipe.model is not None
    return train_model_version(
        train_path, recipe.model, list(recipe.params), items_path, home=staging
    )


def _gate(
    candidate: Path,
    served: Path | None,
    train: pl.DataFrame,
    test: pl.DataFrame,
    items: pl.DataFrame | None,
    placement: Any,
    max_sessions: int,
    margin: float,
) -> Gate:
    """The candidate against the served version on the held-out sessions (module docstring)."""
    from nextbest.evaluation.placement import evaluate_placement
    from nextbest.events.schema import items_of_table
    from nextbest.recommend.items import ItemTable
    from nextbest.serving.registry import default_classes, load_model

    classes = default_classes()
    new = load_model(candidate, classes)
    old = load_model(served, classes) if served is not None else None
    known = set(new.index) if old is None else set(new.index) & set(old.index)
    held_out = test.filter(pl.col("item_id").is_null() | pl.col("item_id").is_in(list(known)))
    catalog = items_of_table(items) if items is not None else {}
    figures: dict[str, tuple[float, int]] = {}
    for label, loaded in (("candidate", new), ("served", old)):
        if loaded is None:
            continue
        table = ItemTable.build(loaded.model.item_ids, catalog)
        sessions = min(held_out["session_id"].n_unique(), max_sessions)
        with progress_bar() as bar:
            task = bar.add_task(f"gate: the {label} on {placement.name}", total=sessions)

            def advance(n: int, bar: Any = bar, task: Any = task) -> None:
                bar.advance(task, n)

            result = evaluate_placement(
                placement, loaded, table, train, held_out, (20,), max_sessions, advance
            )
        figures[label] = (result.metrics[GATE_METRIC], result.cases)
    score, cases = figures["candidate"]
    if old is None:
        return Gate(placement.name, cases, score, None, None, margin, True,
                    "no version was served: nothing to compare with")  # fmt: skip
    if cases == 0:
        reason = (
            "no held-out session to compare on: the log's last days hold no session of two "
            "items both versions know (raise --holdout-days, or wait for more events)"
        )
        return Gate(placement.name, 0, score, None, old.version, margin, False, reason)
    before = figures["served"][0]
    passed = score >= before * (1 - margin)
    verdict = "not worse" if passed else "worse"
    reason = (
        f"{verdict}: MRR@20 {score:.4f} against the served {old.version}'s {before:.4f} on "
        f"{cases:,} held-out cases of the {placement.name} placement (margin {margin:.1%})"
    )
    return Gate(placement.name, cases, score, before, old.version, margin, passed, reason)


def _record_gate(folder: Path, gate: Gate) -> None:
    meta_path = folder / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["gate"] = asdict(gate)
    meta_path.write_text(json.dumps(meta, indent=2))


def candidates(home: Path) -> list[Path]:
    """Candidates a gate kept out, oldest first."""
    return list_versions(home / CANDIDATES)
