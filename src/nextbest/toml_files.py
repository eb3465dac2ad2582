"""Reading a settings file of TOML (placements, scenarios, experiments, triggers) with errors
that name the file and what is wrong with it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def read_toml(path: Path, kind: str, error: type[ValueError] = ValueError) -> dict[str, Any]:
    """The TOML document of `path`, a `kind` file ("placements"); a missing, unreadable or
    invalid file raises `error` naming it."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: no such {kind} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


def first_problem(error: ValidationError, source: object) -> str:
    """The first thing pydantic found wrong with a file's tables, as "FILE: key.path: what"."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{source}: {where}: {first['msg']}"
