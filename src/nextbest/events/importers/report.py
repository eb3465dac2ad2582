"""What every importer returns, and how it reports rows it could not read.

An import either stops at the first malformed row (`on_error="raise"`) or drops malformed rows
and counts them (`on_error="skip"`). Either way a row never turns into a null, a NaN or a
different id without anyone being told: the report says how many rows were dropped and shows
the first few, each with its 1-based line number so a person can open the file at that line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import polars as pl

OnError = Literal["raise", "skip"]

# A report keeps this many bad rows as examples; `n_bad` counts all of them.
MAX_BAD_EXAMPLES = 100


def check_on_error(on_error: str) -> OnError:
    """Return `on_error` if it is a known policy, else raise ValueError naming the choices."""
    if on_error == "raise":
        return "raise"
    if on_error == "skip":
        return "skip"
    raise ValueError(f"on_error={on_error!r} is not allowed; use one of {get_args(OnError)}")


@dataclass(frozen=True)
class BadRow:
    """One row that could not be imported.

    `line` is the 1-based line number in the file (the header is line 1), or the 1-based row
    number for Parquet; `file` names the file, which matters when one import reads several.
    """

    line: int
    reason: str
    text: str
    file: str = ""


class MalformedRowError(ValueError):
    """A row that cannot be imported, e.g. `train.tsv line 17: column 'Time' is not a number`."""

    def __init__(self, file: str, line: int, reason: str, text: str = "", unit: str = "line"):
        super().__init__(f"{file} {unit} {line}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason
        self.text = text
        self.unit = unit

    def __reduce__(self) -> tuple[type[MalformedRowError], tuple[str, int, str, str, str]]:
        # Exceptions pickle by their args; ours has more than the message.
        return (type(self), (self.file, self.line, self.reason, self.text, self.unit))


@dataclass(frozen=True)
class ImportReport:
    """How an import went: rows read, rows imported, and the malformed rows dropped."""

    path: Path
    rows_read: int
    rows_imported: int
    bad_rows: list[BadRow] = field(default_factory=list)  # the first MAX_BAD_EXAMPLES
    n_bad: int = 0

    @classmethod
    def combine(cls, path: Path, reports: list[ImportReport]) -> ImportReport:
        """One report for an import that read several files (each bad row names its file)."""
        examples = [bad for report in reports for bad in report.bad_rows]
        return cls(
            path=path,
            rows_read=sum(r.rows_read for r in reports),
            rows_imported=sum(r.rows_imported for r in reports),
            bad_rows=examples[:MAX_BAD_EXAMPLES],
            n_bad=sum(r.n_bad for r in reports),
        )


@dataclass(frozen=True)
class ImportResult:
    """An imported file: events in `EVENT_SCHEMA`, items in `ITEM_SCHEMA` when the format has
    them, user attributes when the format has them, and the report."""

    events: pl.DataFrame
    items: pl.DataFrame | None
    report: ImportReport
    users: pl.DataFrame | None = None
