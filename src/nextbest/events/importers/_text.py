"""Reading delimited text files as strings, with exact line numbers and without Python loops.

Files are read in chunks of whole lines, each chunk split into lines and fields by Polars string
kernels, so every row keeps its physical line number, a line with too few or too many fields is
seen as such (instead of being padded or truncated by a CSV reader), and memory stays bounded on
files larger than RAM. Quoted fields are parsed with the `csv` module, but only on the lines that
contain the quote character; a quoted field may not span lines.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import polars as pl

from nextbest.events.importers._rows import LINE, NFIELDS, TEXT, RowFilter, field_count

CHUNK_BYTES = 64 * 1024 * 1024
_BOM = "\ufeff"


def split_line(text: str, separator: str, quote_char: str | None) -> list[str]:
    """Split one line in Python (headers, and the rare lines with quotes)."""
    if quote_char is None or quote_char not in text:
        return text.split(separator)
    return next(csv.reader([text], delimiter=separator, quotechar=quote_char, strict=True))


def read_header(path: Path, rows: RowFilter, separator: str, quote_char: str | None) -> list[str]:
    """Return the fields of line 1. A missing or unreadable header stops any import."""
    with path.open("rb") as file:
        raw = file.readline()
    try:
        text = raw.decode("utf-8").removeprefix(_BOM).rstrip("\r\n")
    except UnicodeDecodeError:
        raise rows.error(1, "header is not valid UTF-8") from None
    if not text:
        raise rows.error(1, "expected a header line, found an empty line or an empty file")
    try:
        return split_line(text, separator, quote_char)
    except csv.Error as exc:
        raise rows.error(1, f"cannot split the header: {exc}", text) from None


def locate_columns(
    rows: RowFilter,
    header: Sequence[str],
    required: Mapping[str, str],
    optional: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Map our names to field positions, from a header; `required`/`optional` map our names
    to the file's column names. Missing or repeated columns raise at line 1."""
    wanted = {**required, **(optional or {})}
    for name in wanted.values():
        if header.count(name) > 1:
            raise rows.error(1, f"header names column {name!r} more than once")
    missing = [name for name in required.values() if name not in header]
    if missing:
        raise rows.error(1, f"header lacks column(s) {missing}; found {list(header)}")
    return {ours: header.index(theirs) for ours, theirs in wanted.items() if theirs in header}


def _decode(chunk: bytes, first_line: int, rows: RowFilter) -> pl.DataFrame:
    try:
        lines = pl.Series(TEXT, [chunk.decode("utf-8")]).str.split("\n").explode()
    except UnicodeDecodeError:
        texts: list[str] = []
        for raw in chunk.split(b"\n"):  # rare path: find the undecodable lines one by one
            try:
                texts.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                bad = raw.decode("utf-8", errors="replace").rstrip("\r")
                rows.defer(first_line + len(texts), "line is not valid UTF-8", bad)
                texts.append("")  # blank, so it is not read as a row
        lines = pl.Series(TEXT, texts, dtype=pl.String)
    frame = pl.DataFrame([lines.str.strip_suffix("\r")])
    return frame.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))


def iter_lines(
    path: Path, rows: RowFilter, *, after_line: int = 0, chunk_bytes: int | None = None
) -> Iterator[pl.DataFrame]:
    """Yield the non-blank lines after `after_line` as frames of `_line` and `_text`.

    Blank lines carry no row and are not counted; every other line counts as a row read.
    """
    first_line = 1
    rest = b""
    with path.open("rb") as file:
        while True:
            block = file.read(chunk_bytes or CHUNK_BYTES)
            data = rest + block
            cut = len(data) if not block else data.rfind(b"\n") + 1
            chunk, rest = data[:cut], data[cut:]
            if chunk:
                if first_line == 1 and chunk.startswith(_BOM.encode()):
                    chunk = chunk[len(_BOM.encode()) :]
                n_deferred = rows.n_deferred
                frame = _decode(chunk, first_line, rows)
                first_line += chunk.count(b"\n")
                frame = frame.filter((pl.col(LINE) > after_line) & (pl.col(TEXT) != ""))
                rows.rows_read += frame.height + rows.n_deferred - n_deferred
                yield frame
            if not block:
                return


def split_fields(
    lines: pl.DataFrame,
    fields: Mapping[str, int],
    rows: RowFilter,
    separator: str,
    quote_char: str | None = None,
) -> pl.DataFrame:
    """Add `_nfields` and one String column per `fields` entry (name -> position; null where
    the line is too short)."""
    parts = pl.col(TEXT).str.split(separator, literal=True)
    columns = [parts.list.get(i, null_on_oob=True).alias(name) for name, i in fields.items()]
    plain = lines.with_columns(parts.list.len().cast(pl.Int64).alias(NFIELDS), *columns)
    if quote_char is None:
        return plain
    quoted = pl.col(TEXT).str.contains(quote_char, literal=True)
    with_quotes = lines.filter(quoted)
    if with_quotes.height == 0:
        return plain
    records = []
    for line, text in with_quotes.iter_rows():
        try:
            values = split_line(text, separator, quote_char)
        except csv.Error:
            rows.defer(line, "unbalanced quote (a quoted field must end on its own line)", text)
            continue
        picked = {name: values[i] if i < len(values) else None for name, i in fields.items()}
        records.append({LINE: line, TEXT: text, NFIELDS: len(values), **picked})
    parsed = pl.DataFrame(records, schema=plain.schema)
    return pl.concat([plain.filter(~quoted), parsed]).sort(LINE)


def read_table(
    path: Path,
    rows: RowFilter,
    *,
    separator: str,
    fields: Mapping[str, int],
    n_fields: int,
    checks: Sequence[pl.Expr],
    select: Sequence[pl.Expr],
    header: bool = True,
    quote_char: str | None = None,
) -> pl.DataFrame:
    """Read, check and transform a delimited file chunk by chunk; return `select` of the
    rows that passed (the field-count check comes first, so its reason wins)."""
    checks = [field_count(n_fields), *checks]
    parts = []
    for lines in iter_lines(path, rows, after_line=1 if header else 0):
        table = split_fields(lines, fields, rows, separator, quote_char)
        parts.append(rows.keep(table, checks).select(select))
    if not parts:  # an empty file: the same expressions give the right column types
        empty = {LINE: pl.Int64, TEXT: pl.String, NFIELDS: pl.Int64} | dict.fromkeys(
            fields, pl.String
        )
        parts.append(pl.DataFrame(schema=empty).select(select))
    return pl.concat(parts)
