"""GRU4Rec TSV: exact tables, malformed rows with their line numbers, and the writer."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from nextbest.events.importers import MalformedRowError, _text, import_gru4rec, write_gru4rec_tsv

GOOD = (
    "SessionId\tItemId\tTime\tUserId\tEventType\tTargetTime\n"
    "01\t007\t1396437466.94\t\tview\t9\n"
    "01\t0008\t1396437467\tu-1\tcart\t9\n"
    "2\t007\t12\t\tpurchase\t9\n"
)


def write(tmp_path: Path, text: str, name: str = "train.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_good_file_gives_exact_table(tmp_path: Path) -> None:
    result = import_gru4rec(write(tmp_path, GOOD))
    assert result.events.select(
        "event_id", "type", "session_id", "item_id", "user_id", "timestamp"
    ).rows() == [
        ("train:2", "view", "01", "007", None, 1396437466.94),
        ("train:3", "cart", "01", "0008", "u-1", 1396437467.0),
        ("train:4", "purchase", "2", "007", None, 12.0),
    ]
    assert result.items is None
    assert (result.report.rows_read, result.report.rows_imported, result.report.n_bad) == (3, 3, 0)


def test_without_optional_columns_rows_are_anonymous_views(tmp_path: Path) -> None:
    path = write(tmp_path, "SessionId\tItemId\tTime\n1\t2\t3\n")
    events = import_gru4rec(path).events
    assert events.select("type", "user_id").rows() == [("view", None)]
    assert import_gru4rec(path, default_type="click").events["type"].to_list() == ["click"]


MALFORMED = [
    ("1\t2\tabc", "column 'Time' is not a number: 'abc'"),
    ("1\t2\tnan", "column 'Time' is not a number: 'nan'"),
    ("1\t2", "expected 3 fields, found 2"),
    ("1\t2\t3\t4", "expected 3 fields, found 4"),
    ("1\t\t3", "column 'ItemId' is empty"),
    (" \t2\t3", "column 'SessionId' is empty"),
]


@pytest.mark.parametrize(("line", "reason"), MALFORMED)
def test_malformed_row_raises_with_line_number(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path, f"SessionId\tItemId\tTime\n1\t01\t1\n{line}\n1\t02\t2\n")
    with pytest.raises(MalformedRowError) as caught:
        import_gru4rec(path)
    assert str(caught.value) == f"train.tsv line 3: {reason}"
    assert (caught.value.line, caught.value.text) == (3, line)


@pytest.mark.parametrize(("line", "reason"), MALFORMED)
def test_malformed_row_is_skipped_and_counted(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path, f"SessionId\tItemId\tTime\n1\t01\t1\n{line}\n1\t02\t2\n")
    result = import_gru4rec(path, on_error="skip")
    assert result.events["item_id"].to_list() == ["01", "02"]
    assert result.events["event_id"].to_list() == ["train:2", "train:4"]
    assert (result.report.rows_read, result.report.rows_imported, result.report.n_bad) == (3, 2, 1)
    assert [(b.line, b.reason, b.text, b.file) for b in result.report.bad_rows] == [
        (3, reason, line, "train.tsv")
    ]


def test_unknown_event_type_is_a_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path, "SessionId\tItemId\tTime\tEventType\n1\t2\t3\tbuy\n1\t2\t4\tview\n")
    with pytest.raises(
        MalformedRowError, match=r"line 2: column 'EventType' has unknown value 'buy'"
    ):
        import_gru4rec(path)
    assert import_gru4rec(path, on_error="skip").events["timestamp"].to_list() == [4.0]


def test_raise_names_the_first_bad_line(tmp_path: Path) -> None:
    path = write(tmp_path, "SessionId\tItemId\tTime\n1\t2\t3\n1\t2\n1\t2\tx\n")
    with pytest.raises(MalformedRowError, match="line 3: expected 3 fields"):
        import_gru4rec(path)


def test_missing_header_column_stops_even_when_skipping(tmp_path: Path) -> None:
    path = write(tmp_path, "SessionId\tItemId\n1\t2\n")
    with pytest.raises(MalformedRowError, match=r"line 1: header lacks column\(s\) \['Time'\]"):
        import_gru4rec(path, on_error="skip")


def test_report_keeps_100_examples_but_counts_all(tmp_path: Path) -> None:
    path = write(tmp_path, "SessionId\tItemId\tTime\n" + "1\t2\tx\n" * 250 + "1\t2\t3\n")
    report = import_gru4rec(path, on_error="skip").report
    assert (report.n_bad, report.rows_imported, len(report.bad_rows)) == (250, 1, 100)
    assert [b.line for b in report.bad_rows[:2]] == [2, 3]


def test_crlf_bom_and_blank_lines_keep_physical_line_numbers(tmp_path: Path) -> None:
    text = "\ufeffSessionId\tItemId\tTime\r\n1\t2\t3\r\n\r\n1\t2\tx\r\n"
    with pytest.raises(MalformedRowError, match="line 4: column 'Time' is not a number: 'x'"):
        import_gru4rec(write(tmp_path, text))
    result = import_gru4rec(write(tmp_path, text), on_error="skip")
    assert result.events.select("item_id", "timestamp").rows() == [("2", 3.0)]
    assert result.report.rows_read == 2


def test_invalid_utf8_line_is_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_bytes(b"SessionId\tItemId\tTime\n1\t2\tx\n1\t\xff\t3\n1\t4\t5\n")
    with pytest.raises(MalformedRowError, match="line 2: column 'Time'"):
        import_gru4rec(path)
    result = import_gru4rec(path, on_error="skip")
    assert result.events["item_id"].to_list() == ["4"]
    assert [(b.line, b.reason) for b in result.report.bad_rows] == [
        (2, "column 'Time' is not a number: 'x'"),
        (3, "line is not valid UTF-8"),
    ]


def test_chunk_boundaries_do_not_shift_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [f"s{i // 3}\t{i:04d}\t{i}" for i in range(200)]
    lines[150] = "s50\t0150"
    path = write(tmp_path, "SessionId\tItemId\tTime\n" + "\n".join(lines))  # no final newline
    whole = import_gru4rec(path, on_error="skip")
    monkeypatch.setattr(_text, "CHUNK_BYTES", 37)
    chunked = import_gru4rec(path, on_error="skip")
    assert chunked.events.equals(whole.events)
    assert chunked.events.height == 199
    assert chunked.events["item_id"][-1] == "0199"
    assert [b.line for b in chunked.report.bad_rows] == [152]


def test_writer_round_trips(tmp_path: Path) -> None:
    original = import_gru4rec(write(tmp_path, GOOD)).events
    out = tmp_path / "out" / "train.tsv"
    out.parent.mkdir()
    write_gru4rec_tsv(original, out)
    assert out.read_text().splitlines()[0] == "SessionId\tItemId\tTime\tUserId\tEventType"
    assert import_gru4rec(out).events.equals(original)


def test_writer_refuses_what_the_format_cannot_hold(tmp_path: Path) -> None:
    events = import_gru4rec(write(tmp_path, GOOD)).events
    search = events.with_columns(
        pl.lit("search").alias("type"), pl.lit(None, dtype=pl.String).alias("item_id")
    )
    with pytest.raises(ValueError, match="no item_id"):
        write_gru4rec_tsv(search, tmp_path / "x.tsv")
    tabbed = events.with_columns(pl.lit("a\tb").alias("session_id"))
    with pytest.raises(ValueError, match="session_id"):
        write_gru4rec_tsv(tabbed, tmp_path / "x.tsv")
