"""Importers for public recommendation datasets and for any CSV/Parquet event file.

Each importer reads one format into the event table of `nextbest.events.schema` (and an items
table where the format describes items) and reports the rows it could not read. Import the
function you mean; `import_file` picks one by name for the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nextbest.events.importers.diginetica import import_diginetica
from nextbest.events.importers.generic import import_generic
from nextbest.events.importers.gru4rec import import_gru4rec, write_gru4rec_tsv
from nextbest.events.importers.movielens import import_movielens
from nextbest.events.importers.otto import import_otto
from nextbest.events.importers.prefix_target import PrefixTargetCases, import_prefix_target
from nextbest.events.importers.rees46 import import_rees46
from nextbest.events.importers.report import (
    BadRow,
    ImportReport,
    ImportResult,
    MalformedRowError,
    OnError,
)
from nextbest.events.importers.retailrocket import import_retailrocket

_IMPORTERS: dict[str, Callable[..., ImportResult]] = {
    "gru4rec": import_gru4rec,
    "diginetica": import_diginetica,
    "retailrocket": import_retailrocket,
    "rees46": import_rees46,
    "otto": import_otto,
    "movielens": import_movielens,
    "generic": import_generic,
}
FORMATS: tuple[str, ...] = tuple(_IMPORTERS)


def import_file(
    format: str, path: str | Path, on_error: OnError = "raise", **options: Any
) -> ImportResult:
    """Import `path` with the importer of `format` (one of FORMATS); `options` are passed on."""
    if format not in _IMPORTERS:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    return _IMPORTERS[format](path, on_error=on_error, **options)


__all__ = [
    "FORMATS",
    "BadRow",
    "ImportReport",
    "ImportResult",
    "MalformedRowError",
    "OnError",
    "PrefixTargetCases",
    "import_diginetica",
    "import_file",
    "import_generic",
    "import_gru4rec",
    "import_movielens",
    "import_otto",
    "import_prefix_target",
    "import_rees46",
    "import_retailrocket",
    "write_gru4rec_tsv",
]
