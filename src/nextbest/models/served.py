"""Which model version serves: promotion, rollback and pruning of version folders.

The newest version serves, as it always has, unless an operator chose another since it was
saved: `$NEXTBEST_HOME/models/served.json` names the version `nextbest models promote` or
`rollback` (or a retrain that passed its gate) chose, when, and the versions served before it
(newest last), which `rollback` walks back. A version saved after that choice serves again, so
a new training supersedes a rollback. The file is replaced atomically, so a server that reads it
mid-change sees the old choice or the new one; the server looks again every few seconds and
switches with one reference assignment (no request dropped).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from nextbest.models.store import created_at, list_versions

logger = logging.getLogger(__name__)

SERVED_FILE = "served.json"
HISTORY = 20  # earlier served versions remembered for rollback
CACHE_DIR = ".serving-cache"  # the server's arrays derived from a version (serving/registry.py)


@dataclass(frozen=True)
class ServedChoice:
    version: str
    previous: tuple[str, ...]  # served before, oldest first
    changed_at: float  # Unix time
    reason: str


def read_served(home: Path) -> ServedChoice | None:
    """The recorded choice, or None without one; a file that cannot be read is logged and
    ignored (the newest version then serves), so a damaged file never stops serving."""
    path = home / "models" / SERVED_FILE
    try:
        raw = json.loads(path.read_text())
        return ServedChoice(
            version=str(raw["version"]),
            previous=tuple(str(v) for v in raw.get("previous", [])),
            changed_at=float(raw.get("changed_at", 0.0)),
            reason=str(raw.get("reason", "")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.error("%s cannot be read (%s): the newest version serves", path, exc)
        return None


def served_version(home: Path, ignoring: str | None = None) -> Path | None:
    """The folder of the version to serve (None before any version exists): the chosen one,
    unless a version was saved after the choice or the chosen one is gone; else the newest.
    `ignoring`: as if that version were not there (what served before it arrived)."""
    folders = [f for f in list_versions(home) if f.name != ignoring]
    if not folders:
        return None
    newest = folders[-1]
    choice = read_served(home)
    if choice is None or choice.version == newest.name:
        return newest
    saved = created_at(newest.name)
    if saved is not None and saved > choice.changed_at:
        return newest  # trained after the choice: a new training supersedes a rollback
    for folder in folders:
        if folder.name == choice.version:
            return folder
    logger.error("served version %s is gone: the newest version serves", choice.version)
    return newest


def promote(home: Path, version: str, reason: str) -> ServedChoice:
    """Serve `version` from now on; the version served until now goes on the history."""
    names = [folder.name for folder in list_versions(home)]
    if version not in names:
        raise ValueError(
            f"no model version {version!r} under {home / 'models'} "
            f"(`nextbest models list` shows them)"
        )
    current = served_version(home, ignoring=version)  # what served before `version` came
    old = read_served(home)
    previous = list(old.previous) if old is not None else []
    if current is not None and current.name != version:
        previous.append(current.name)
    choice = ServedChoice(version, tuple(previous[-HISTORY:]), time.time(), reason)
    _write(home, choice)
    return choice


def rollback(home: Path) -> ServedChoice:
    """Serve the version served before the current one (the latest of the history that still
    exists); ValueError when there is none."""
    old = read_served(home)
    names = {folder.name for folder in list_versions(home)}
    history = [v for v in (old.previous if old else ()) if v in names]
    current = served_version(home)
    while history and current is not None and history[-1] == current.name:
        history.pop()
    if not history:
        raise ValueError(
            "no earlier served version to roll back to (`nextbest models promote VERSION` "
            "serves any version)"
        )
    target = history.pop()
    choice = ServedChoice(
        target, tuple(history), time.time(), f"rollback from {current.name if current else None}"
    )
    _write(home, choice)
    return choice


def prune(home: Path, keep: int) -> list[str]:
    """Delete the oldest versions beyond the newest `keep`, never the served one, the one a
    rollback would return to, or one an experiment in the home's experiments file names; with
    each, its serving cache. Returns the deleted versions' names (none when `keep` < 1)."""
    if keep < 1:
        return []
    folders = list_versions(home)
    choice = read_served(home)
    served = served_version(home)
    protected = {served.name} if served is not None else set()
    if choice is not None and choice.previous:
        protected.add(choice.previous[-1])
    protected |= _experiment_versions(home)
    candidates = [f for f in folders[:-keep] if f.name not in protected]
    for folder in candidates:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(home / CACHE_DIR / folder.name, ignore_errors=True)
    return [f.name for f in candidates]


def _experiment_versions(home: Path) -> set[str]:
    """Version names the home's experiments file pins (variants' `model`), if it has one."""
    path = Path(os.environ.get("NEXTBEST_EXPERIMENTS") or home / "experiments.toml")
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return set()
    names = set()
    for experiment in (raw.get("experiments") or {}).values():
        for variant in experiment.get("variants", []) if isinstance(experiment, dict) else []:
            if isinstance(variant, dict) and isinstance(variant.get("model"), str):
                names.add(variant["model"])
    return names


def _write(home: Path, choice: ServedChoice) -> None:
    path = home / "models" / SERVED_FILE
    staging = path.with_name(f".{SERVED_FILE}.{os.getpid()}.tmp")
    staging.write_text(
        json.dumps(
            {
                "version": choice.version,
                "previous": list(choice.previous),
                "changed_at": choice.changed_at,
                "reason": choice.reason,
            },
            indent=2,
        )
    )
    os.replace(staging, path)
