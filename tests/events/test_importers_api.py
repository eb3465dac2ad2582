"""The shared parts: the dispatcher, the report types and the on_error policy."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from nextbest.events.importers import (
    FORMATS,
    ImportReport,
    MalformedRowError,
    import_file,
    import_gru4rec,
)
from nextbest.events.schema import EVENT_SCHEMA


def test_import_file_dispatches_with_options(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("s,i,t\n1,01,5\n")
    result = import_file(
        "generic", path, columns={"session_id": "s", "item_id": "i", "timestamp": "t"}
    )
    assert result.events.select("item_id", "timestamp").rows() == [("01", 5.0)]
    assert dict(result.events.schema) == EVENT_SCHEMA


def test_formats_are_all_dispatchable() -> None:
    assert FORMATS == (
        "gru4rec",
        "diginetica",
        "retailrocket",
        "rees46",
        "otto",
        "movielens",
        "generic",
    )
    with pytest.raises(ValueError, match="unknown format 'csv'; use one of gru4rec, "):
        import_file("csv", "x.csv")


def test_unknown_on_error_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("SessionId\tItemId\tTime\n1\t2\t3\n")
    with pytest.raises(ValueError, match="on_error='ignore' is not allowed"):
        import_gru4rec(path, on_error="ignore")  # type: ignore[arg-type]


def test_error_survives_pickling() -> None:
    error = MalformedRowError("train.tsv", 17, "column 'Time' is not a number: 'abc'", "1\t2\tabc")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == "train.tsv line 17: column 'Time' is not a number: 'abc'"
    assert (copy.line, copy.text) == (17, "1\t2\tabc")
    assert isinstance(copy, ValueError)


def test_empty_file_needs_a_header(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("")
    with pytest.raises(MalformedRowError, match=r"t\.tsv line 1: expected a header line"):
        import_gru4rec(path)


def test_header_only_file_gives_an_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("SessionId\tItemId\tTime\n")
    result = import_gru4rec(path)
    assert result.events.height == 0 and dict(result.events.schema) == EVENT_SCHEMA
    assert result.report == ImportReport(path, 0, 0, [], 0)
