"""Versioned model folders under `$NEXTBEST_HOME/models/`: train writes, serving reads.

A version is a folder named by its UTC creation time to the microsecond, then the model name
("20261122T141503.207114-gru4rec"), written under a temporary name and renamed into place, so
a reader never sees half a model. A new version always sorts after every existing one, even
when two are saved within one clock tick or the clock stepped back: the newest saved is the
one the server serves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nextbest.models.base import MODEL_FILE, SessionModel

META_FILE = "meta.json"


def nextbest_home() -> Path:
    return Path(os.environ.get("NEXTBEST_HOME", ".nextbest"))


def save_version(
    model: SessionModel[Any, Any],
    home: Path,
    meta: dict[str, Any],
    extra: Callable[[Path], object] | None = None,
) -> Path:
    """Write `model` as a new version folder and return its path.

    `extra`, if given, is called with the staging folder to add files of its own (the purchase
    rules) before the folder is renamed into place, so they appear together with the model.
    """
    root = home / "models"
    root.mkdir(parents=True, exist_ok=True)
    version = f"{_next_stamp(root)}-{model.name}"
    staging = root / f".{version}.tmp"
    model.save(staging)
    if extra is not None:
        extra(staging)
    (staging / META_FILE).write_text(json.dumps({"version": version, **meta}, indent=2))
    staging.rename(root / version)
    return root / version


def derive_version(
    folder: Path, home: Path, change: Callable[[Path], object], meta: dict[str, Any]
) -> Path:
    """A new version: a copy of version `folder` that `change` alters (called with the
    staging copy), its meta updated with `meta` and `derived_from`; renamed into place whole,
    as `save_version` does. The old version stays as it was."""
    root = home / "models"
    model_name = folder.name.split("-", 1)[1] if "-" in folder.name else "model"
    version = f"{_next_stamp(root)}-{model_name}"
    staging = root / f".{version}.tmp"
    shutil.copytree(folder, staging)
    change(staging)
    old = json.loads((staging / META_FILE).read_text()) if (staging / META_FILE).exists() else {}
    updated = {**old, **meta, "version": version, "derived_from": folder.name}
    (staging / META_FILE).write_text(json.dumps(updated, indent=2))
    staging.rename(root / version)
    return root / version


STAMP = "%Y%m%dT%H%M%S.%f"
_STAMP_PATTERN = re.compile(r"^(\d{8}T\d{6})(?:\.(\d+))?-")


def _next_stamp(root: Path) -> str:
    """Now, or just after the newest existing version if that is not earlier."""
    now = datetime.now(UTC)
    newest = max((_stamp_of(p.name) for p in root.iterdir()), default=None, key=_key)
    if newest is not None and newest >= now:
        now = newest + timedelta(microseconds=1)
    return now.strftime(STAMP)


def _stamp_of(name: str) -> datetime | None:
    match = _STAMP_PATTERN.match(name)
    if match is None:
        return None
    when = datetime.strptime(match[1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    fraction = match[2]
    if fraction is None:
        return when
    if len(fraction) == 6:
        return when + timedelta(microseconds=int(fraction))
    return when + timedelta(seconds=1)  # an older ".N" suffix: N-th version of that second


def created_at(name: str) -> float | None:
    """When version `name` was saved (Unix time, from its name), None for a foreign name."""
    stamp = _stamp_of(name)
    return None if stamp is None else stamp.timestamp()


def _key(stamp: datetime | None) -> datetime:
    return stamp or datetime.min.replace(tzinfo=UTC)


def list_versions(home: Path) -> list[Path]:
    root = home / "models"
    if not root.exists():
        return []
    folders = [p for p in root.iterdir() if (p / MODEL_FILE).exists() and p.name[0] != "."]
    return sorted(folders, key=lambda p: (_key(_stamp_of(p.name)), p.name))


def latest_version(home: Path) -> Path | None:
    versions = list_versions(home)
    return versions[-1] if versions else None
