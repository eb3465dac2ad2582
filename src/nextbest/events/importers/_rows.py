"""Vectorised row checks, and the filter that raises at or drops the rows that fail them.

A check is a Polars expression that evaluates to a reason (a string) for a bad row and to null
for a good one. Importers read every field as a string, run their checks over a whole chunk of
rows at once, and only then cast: a cast can no longer fail, and nothing becomes null or NaN
behind the importer's back. Each frame carries `_line` (the 1-based line number) and `_text`
(the raw line) so a failure can be reported where a person can find it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import polars as pl

from nextbest.events.importers.report import (
    MAX_BAD_EXAMPLES,
    BadRow,
    ImportReport,
    MalformedRowError,
    check_on_error,
)

LINE = "_line"
TEXT = "_text"
NFIELDS = "_nfields"
_REASON = "_reason"


def _quoted(col: str) -> pl.Expr:
    return pl.concat_str([pl.lit("'"), pl.col(col), pl.lit("'")])


def field_count(expected: int) -> pl.Expr:
    found = pl.col(NFIELDS)
    message = pl.concat_str([pl.lit(f"expected {expected} fields, found "), found.cast(pl.String)])
    return pl.when(found != expected).then(message)


def blank(col: str) -> pl.Expr:
    """True where a field is missing or only whitespace."""
    return pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")


def non_empty(col: str, label: str) -> pl.Expr:
    return pl.when(blank(col)).then(pl.lit(f"column {label!r} is empty"))


def number(col: str, label: str, *, optional: bool = False) -> pl.Expr:
    """A finite decimal number ('nan' and 'inf' are refused: they would poison training)."""
    value = pl.col(col).cast(pl.Float64, strict=False)
    bad = value.is_null() | ~value.is_finite()
    if optional:
        bad = bad & ~blank(col)
    message = pl.concat_str([pl.lit(f"column {label!r} is not a number: "), _quoted(col)])
    return pl.when(bad).then(message)


def digits(col: str, label: str) -> pl.Expr:
    """A non-negative integer of at most 15 digits (so it fits exactly in an Int64 and a float)."""
    bad = ~pl.col(col).str.contains(r"^[0-9]{1,15}$").fill_null(False)
    message = pl.concat_str([pl.lit(f"column {label!r} is not a whole number: "), _quoted(col)])
    return pl.when(bad).then(message)


def one_of(col: str, label: str, allowed: Collection[str]) -> pl.Expr:
    choices = ", ".join(sorted(allowed))
    message = pl.concat_str(
        [
            pl.lit(f"column {label!r} has unknown value "),
            _quoted(col),
            pl.lit(f" (allowed: {choices})"),
        ]
    )
    return pl.when(~pl.col(col).is_in(list(allowed)).fill_null(False)).then(message)


def parsed_date(col: str, fmt: str) -> pl.Expr:
    return pl.col(col).str.strptime(pl.Date, fmt, strict=False)


def date(col: str, label: str, fmt: str = "%Y-%m-%d") -> pl.Expr:
    message = pl.concat_str([pl.lit(f"column {label!r} is not a date ({fmt}): "), _quoted(col)])
    return pl.when(parsed_date(col, fmt).is_null()).then(message)


def seconds(value: pl.Expr, per_second: int) -> pl.Expr:
    """`value / per_second` (e.g. milliseconds to seconds) as a Float64, rounded correctly.

    Polars divides by a constant by multiplying with its reciprocal, which is one ulp off for
    times such as 1659369893840 ms (giving ...893.8400002). Splitting off whole seconds keeps the
    result equal to true division for any epoch-scale time below 2**53 units.
    """
    value = value.cast(pl.Float64)
    whole = (value / per_second).floor()
    return whole + (value - whole * per_second) / per_second


def event_ids(stem: str) -> pl.Expr:
    """Deterministic event ids, `<file stem>:<line>`: re-importing a file gives the same ids."""
    return (pl.lit(f"{stem}:") + pl.col(LINE).cast(pl.String)).alias("event_id")


class RowFilter:
    """Applies checks to the rows of one file and keeps the count for its report.

    With `on_error="raise"` the first malformed row (by line number) raises MalformedRowError;
    with "skip" malformed rows are dropped, counted, and the first MAX_BAD_EXAMPLES kept.
    """

    def __init__(self, path: Path, on_error: str, unit: str = "line") -> None:
        self.path = path
        self.on_error = check_on_error(on_error)
        self.unit = unit
        self.rows_read = 0
        self.n_bad = 0
        self.examples: list[BadRow] = []
        self._deferred: list[BadRow] = []

    def error(self, line: int, reason: str, text: str = "") -> MalformedRowError:
        return MalformedRowError(self.path.name, line, reason, text, self.unit)

    @property
    def n_deferred(self) -> int:
        return len(self._deferred)

    def defer(self, line: int, reason: str, text: str) -> None:
        """Note a row found bad before any check ran (e.g. undecodable bytes).

        It is reported with the next `keep` call, so "raise" still stops at the earliest line.
        """
        self._deferred.append(BadRow(line, reason, text, self.path.name))

    def keep(self, frame: pl.DataFrame, checks: Sequence[pl.Expr]) -> pl.DataFrame:
        """Return the rows of `frame` that pass every check; raise for or record the others."""
        reason = pl.coalesce(checks) if checks else pl.lit(None, dtype=pl.String)
        reasons = frame.select(pl.col(LINE), pl.col(TEXT), reason.alias(_REASON))
        bad = reasons.filter(pl.col(_REASON).is_not_null()).sort(LINE)
        deferred, self._deferred = self._deferred, []
        if bad.height == 0 and not deferred:
            return frame
        rows = [
            BadRow(line, reason, text, self.path.name)
            for line, text, reason in bad.head(MAX_BAD_EXAMPLES).iter_rows()
        ]
        rows = sorted(rows + deferred, key=lambda row: row.line)
        if self.on_error == "raise":
            first = rows[0]
            raise self.error(first.line, first.reason, first.text)
        self.n_bad += bad.height + len(deferred)
        self.examples.extend(rows[: MAX_BAD_EXAMPLES - len(self.examples)])
        return frame.filter(reasons[_REASON].is_null())

    def report(self) -> ImportReport:
        if self._deferred:  # bad rows seen after the last check: count them too
            self.keep(pl.DataFrame(schema={LINE: pl.Int64, TEXT: pl.String}), [])
        return ImportReport(
            path=self.path,
            rows_read=self.rows_read,
            rows_imported=self.rows_read - self.n_bad,
            bad_rows=list(self.examples),
            n_bad=self.n_bad,
        )
