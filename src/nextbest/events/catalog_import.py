"""A catalog file into the engine's catalog table: `nextbest catalog import FILE`.

CSV, TSV, JSON lines or Parquet; a column mapping renames the shop's columns to the item
fields (`--map item_id=sku`). Every row is checked as `nextbest catalog check` checks it; a
bad row is skipped and reported by its line (or Parquet row) and column, and the good rows are
written, so one bad row never stops a feed. Writing is an upsert by `item_id`: importing the
same file twice leaves the catalog as once. A running server sees the change within its
refresh interval.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from nextbest.events.catalog import Catalog
from nextbest.events.catalog_quality import (
    LISTED_PROBLEMS,
    cast_checked_items,
    check_rows,
    read_text_table,
)
from nextbest.events.schema import ITEM_SCHEMA, item_of_row

CHUNK = 5_000  # items per transaction
JSON_LINES = (".jsonl", ".ndjson")


@dataclass
class ImportReport:
    rows: int = 0
    written: int = 0
    new: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)  # the first; `skipped` counts all
    unmapped: list[str] = field(default_factory=list)  # columns the engine does not read


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """`FIELD=COLUMN` pairs as {column: field}; ValueError names a bad pair."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        target, sep, column = pair.partition("=")
        if not sep or not target.strip() or not column.strip():
            raise ValueError(f"--map {pair!r}: write FIELD=COLUMN, e.g. item_id=sku")
        if target.strip() not in ITEM_SCHEMA:
            fields = ", ".join(ITEM_SCHEMA)
            raise ValueError(f"--map {pair!r}: {target.strip()!r} is no item field ({fields})")
        mapping[column.strip()] = target.strip()
    return mapping


Problem = tuple[str, str, str]  # where in the file, column, what is wrong


def read_catalog(path: Path) -> tuple[pl.DataFrame, Callable[[int], str], list[Problem]]:
    """The file as a table of texts, where its row N (1 = the first item) is in the file, and
    the lines that could not be read as rows (JSON lines only; they are skipped)."""
    if path.suffix in JSON_LINES:
        return _read_json_lines(path)
    frame = read_text_table(path)
    if path.suffix == ".parquet":
        return frame, lambda row: f"row {row}", []
    return frame, lambda row: f"line {row + 1}", []  # after the header line


def import_catalog(
    path: Path,
    catalog: Catalog,
    mapping: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    frame, where, unreadable = read_catalog(path)
    mapping = mapping or {}
    missing = [column for column in mapping if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} has no column {', '.join(map(repr, missing))} (it has "
            f"{', '.join(frame.columns[:12])})"
        )
    frame = frame.rename(mapping)
    if "item_id" not in frame.columns:
        raise ValueError(
            f"{path} has no item_id column: map one with --map item_id=COLUMN (it has "
            f"{', '.join(frame.columns[:12])})"
        )
    report = ImportReport(rows=frame.height)
    report.unmapped = [c for c in frame.columns if c not in ITEM_SCHEMA]
    frame = frame.select([c for c in frame.columns if c in ITEM_SCHEMA])
    checked = check_rows(frame.iter_rows(named=True))
    listed = [(where(p.row), p.column, p.message) for p in checked.problems]
    report.problems = (unreadable + listed)[:LISTED_PROBLEMS]
    report.skipped = len(unreadable) + len(checked.bad_rows)
    good = frame.with_row_index("_row", offset=1).filter(
        ~pl.col("_row").is_in(sorted(checked.bad_rows))
    )
    typed = cast_checked_items(good.drop("_row"))  # checked above: not again
    items = [item_of_row(row) for row in typed.iter_rows(named=True)]
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        known = catalog.get([item.item_id for item in chunk])
        report.written += catalog.upsert(chunk)
        report.new += sum(1 for item in chunk if item.item_id not in known)
        if progress is not None:
            progress(start + len(chunk), len(items))
    return report


def _read_json_lines(
    path: Path,
) -> tuple[pl.DataFrame, Callable[[int], str], list[Problem]]:
    """One JSON object per line; values become texts (an object as its JSON). A line that is
    no JSON object is skipped and named: its fields cannot be told apart."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    unreadable: list[Problem] = []
    with path.open(encoding="utf-8") as source:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                unreadable.append((f"line {number}", "(line)", f"not JSON: {exc.msg}"))
                continue
            if not isinstance(value, dict):
                unreadable.append((f"line {number}", "(line)", "not a JSON object"))
                continue
            rows.append({k: _text(v) for k, v in value.items()})
            lines.append(number)
    columns = sorted({key for row in rows for key in row})
    frame = pl.DataFrame(
        {c: [row.get(c) for row in rows] for c in columns}, schema=dict.fromkeys(columns, pl.String)
    )
    return frame, lambda row: f"line {lines[row - 1]}", unreadable


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
