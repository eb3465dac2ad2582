"""`nextbest backup DIR` and `nextbest restore DIR`: the data folder's event log, model versions
and keys, copied while the server runs, and put back into an empty data folder.

The SQLite log is copied with SQLite's online backup API (a consistent snapshot, while the
server's writers go on); a PostgreSQL log is left to `pg_dump`, which the command names. Model
version folders never change once saved, so a copy of `models/` is consistent too; the serving
cache and the retrain candidates are left out (they are made again).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from nextbest.cli.common import console, friendly_errors, server_settings

MANIFEST = "backup.json"
LOG_FILE = "events.db"
COPIED_FILES = ("api-keys.json", "experiments.toml", "triggers.toml")


def _sqlite_path(database: str) -> Path | None:
    prefix = "sqlite+pysqlite:///"
    return Path(database[len(prefix) :]) if database.startswith(prefix) else None


@friendly_errors
def backup(
    out: Annotated[Path, typer.Argument(help="an empty or new folder for the backup")],
) -> None:
    """Copy the event log (SQLite, online), the model versions and the keys file of
    $NEXTBEST_HOME into OUT, while the server may keep running."""
    settings = server_settings()
    home = settings.home
    database = _sqlite_path(settings.database)
    if database is None:
        raise ValueError(
            "the event log is in PostgreSQL: back it up with `pg_dump -Fc` (see "
            "docs/operations.md); this command copies a SQLite log"
        )
    if not database.exists():
        raise ValueError(f"no event log at {database}: nothing to back up")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with console.status(f"copying the event log {database}"):
        source = sqlite3.connect(database)
        target = sqlite3.connect(out / LOG_FILE)
        try:
            # one step: in WAL mode the copy reads a snapshot while writers go on (copied in
            # several steps, a write from another process would restart it, maybe forever)
            source.backup(target)
            events = target.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            target.close()
            source.close()
    versions = 0
    if (home / "models").exists():
        shutil.copytree(
            home / "models", out / "models", ignore=shutil.ignore_patterns(".*.tmp", ".*")
        )
        versions = sum(1 for p in (out / "models").iterdir() if p.is_dir())
    copied = [name for name in COPIED_FILES if (home / name).exists()]
    for name in copied:
        shutil.copy2(home / name, out / name)
    manifest: dict[str, Any] = {
        "made_at": started, "home": str(home), "events": events, "versions": versions,
        "files": copied,
    }  # fmt: skip
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    console.print(
        f"backed up {events:,} events, {versions} model version(s) and {len(copied)} file(s) "
        f"of {home} to {out} in {time.time() - started:.1f} s"
    )


@friendly_errors
def restore(
    source: Annotated[Path, typer.Argument(help="a folder `nextbest backup` wrote")],
) -> None:
    """Put a backup into $NEXTBEST_HOME, which must hold no event log and no models yet
    (stop the server, move the damaged folder aside, then restore)."""
    settings = server_settings()
    home = settings.home
    if not (source / MANIFEST).exists():
        raise ValueError(f"{source} holds no {MANIFEST}: not a folder `nextbest backup` wrote")
    database = _sqlite_path(settings.database)
    if database is None:
        raise ValueError("the event log is in PostgreSQL: restore it with `pg_restore`")
    if database.exists() or (home / "models").exists():
        raise ValueError(
            f"{home} already holds an event log or models: restore into an empty data folder"
        )
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / LOG_FILE, database)
    if (source / "models").exists():
        shutil.copytree(source / "models", home / "models")
    manifest = json.loads((source / MANIFEST).read_text())
    for name in manifest.get("files", []):
        shutil.copy2(source / name, home / name)
    console.print(
        f"restored {manifest['events']:,} events and {manifest['versions']} model version(s) "
        f"into {home}"
    )
