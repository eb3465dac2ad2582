"""Versioned model folders under `$NEXTBEST_HOME/models/`: train writes, serving reads.

A version is a folder named by its UTC creation time (sortable), written under a temporary
name and renamed into place, so a reader never sees half a model.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from nextbest.models.base import MODEL_FILE, SessionModel

META_FILE = "meta.json"


def nextbest_home() -> Path:
    return Path(os.environ.get("NEXTBEST_HOME", ".nextbest"))


def save_version(model: SessionModel[Any, Any], home: Path, meta: dict[str, Any]) -> Path:
    """Write `model` as a new version folder and return its path."""
    root = home / "models"
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    version = f"{stamp}-{model.name}"
    suffix = 0
    while (root / version).exists():
        suffix += 1
        version = f"{stamp}.{suffix}-{model.name}"
    staging = root / f".{version}.tmp"
    model.save(staging)
    (staging / META_FILE).write_text(json.dumps({"version": version, **meta}, indent=2))
    staging.rename(root / version)
    return root / version


def list_versions(home: Path) -> list[Path]:
    root = home / "models"
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if (p / MODEL_FILE).exists() and p.name[0] != ".")


def latest_version(home: Path) -> Path | None:
    versions = list_versions(home)
    return versions[-1] if versions else None
