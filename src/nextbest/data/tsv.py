"""Write prepared event tables as GRU4Rec TSV, in the row order session-based code expects.

The format itself (`SessionId ItemId Time UserId EventType`, tab separated, a header, UserId
empty for anonymous visitors) belongs to the importer, `events.importers.gru4rec`, so that a
written file always reads back with `import_gru4rec`. This module adds what preparation needs
on top: only item events are written (the format has no row without an item, so searches are
left out instead of refused), and rows go session by session, sessions in the order of their
first event, events in time order (ties: input order), so a reader that does not sort sees the
same sequences our models see.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from nextbest.data.stats import item_events
from nextbest.events.importers.gru4rec import write_gru4rec_tsv as _write_format


def write_gru4rec_tsv(events: pl.DataFrame, path: str | Path) -> None:
    """Write the item events of `events` to `path` as GRU4Rec TSV, ordered session by session.

    Raises ValueError (from the format writer) for ids containing tabs or line breaks.
    """
    ordered = (
        events.filter(item_events())
        .with_row_index("_row")
        .with_columns(pl.col("timestamp").min().over("session_id").alias("_start"))
        .sort(["_start", "session_id", "timestamp", "_row"])
        .drop("_row", "_start")
    )
    _write_format(ordered, path)
