"""Reading and writing event tables by file type: Parquet as ours, TSV as GRU4Rec's format."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl

from nextbest.events.schema import conform_events


def read_events(path: Path, on_error: Literal["raise", "skip"] = "raise") -> pl.DataFrame:
    """An event table from `.parquet` (our columns) or `.tsv` (GRU4Rec format)."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix == ".parquet":
        return conform_events(pl.read_parquet(path))
    if path.suffix in (".tsv", ".txt"):
        from nextbest.events.importers import import_file

        return import_file("gru4rec", path, on_error=on_error).events
    raise ValueError(
        f"cannot tell the format of {path.name}: use .parquet (event table) or .tsv (GRU4Rec), "
        "or convert it first with `nextbest data import`"
    )
