"""The raw CIKM Cup 2016 (DIGINETICA) files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from nextbest.events.importers import MalformedRowError, import_diginetica

VIEWS = (
    "session_id;user_id;item_id;timeframe;eventdate\n"
    "1;NA;081766;526309;2016-05-09\n"
    "1;NA;31331;1031018;2016-05-09\n"
    "2;0042;32118;86400123;2016-05-10\n"
)
PURCHASES = (
    "sessionId;userId;timeframe;eventdate;ordernumber;itemId\n"
    "150;18278;17100868;2016-05-06;16421;025911\n"
)
CATEGORIES = "itemId;categoryId\n081766;1096\n31331;0007\n"


def at(date: str, timeframe_ms: int) -> float:
    """Midnight UTC of `date` plus `timeframe_ms`, in seconds (exact integer arithmetic)."""
    midnight = int(datetime.fromisoformat(date).replace(tzinfo=UTC).timestamp())
    return (midnight * 1000 + timeframe_ms) / 1000


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "sample_train-item-views.csv").write_text(VIEWS)
    (tmp_path / "train-purchases.csv").write_text(PURCHASES)
    (tmp_path / "product-categories.csv").write_text(CATEGORIES)
    return tmp_path


def test_folder_gives_views_purchases_and_items(folder: Path) -> None:
    result = import_diginetica(folder)
    assert result.events.select(
        "event_id", "type", "session_id", "item_id", "user_id", "timestamp"
    ).rows() == [
        ("sample_train-item-views:2", "view", "1", "081766", None, at("2016-05-09", 526309)),
        ("sample_train-item-views:3", "view", "1", "31331", None, at("2016-05-09", 1031018)),
        ("sample_train-item-views:4", "view", "2", "32118", "0042", at("2016-05-10", 86400123)),
        ("train-purchases:2", "purchase", "150", "025911", "18278", at("2016-05-06", 17100868)),
    ]
    assert result.items is not None
    assert result.items.select("item_id", "category_path").rows() == [
        ("081766", "1096"),
        ("31331", "0007"),
    ]
    assert (result.report.rows_read, result.report.rows_imported) == (3 + 1 + 2, 6)


def test_views_file_alone(folder: Path) -> None:
    result = import_diginetica(folder / "sample_train-item-views.csv")
    assert result.events.height == 3 and result.items is None
    assert result.report.path == folder / "sample_train-item-views.csv"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1;NA;5;12.5;2016-05-09", "column 'timeframe' is not a whole number: '12.5'"),
        ("1;NA;5;abc;2016-05-09", "column 'timeframe' is not a whole number: 'abc'"),
        ("1;NA;5;1;2016-13-01", "column 'eventdate' is not a date (%Y-%m-%d): '2016-13-01'"),
        ("1;NA;;1;2016-05-09", "column 'item_id' is empty"),
        ("1;;5;1;2016-05-09", "column 'user_id' is empty"),
        ("1;NA;5;1", "expected 5 fields, found 4"),
        ("1;NA;5;1;2016-05-09;x", "expected 5 fields, found 6"),
    ],
)
def test_malformed_view(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "train-item-views.csv"
    path.write_text(VIEWS + line + "\n" + "3;NA;6;1;2016-05-11\n")
    with pytest.raises(MalformedRowError) as caught:
        import_diginetica(path)
    assert str(caught.value) == f"train-item-views.csv line 5: {reason}"
    result = import_diginetica(path, on_error="skip")
    assert result.events["item_id"].to_list() == ["081766", "31331", "32118", "6"]
    assert (result.report.n_bad, result.report.bad_rows[0].line) == (1, 5)


def test_bad_rows_in_several_files_name_their_file(folder: Path) -> None:
    (folder / "train-purchases.csv").write_text(PURCHASES + "151;NA;x;2016-05-06;1;2\n")
    with pytest.raises(
        MalformedRowError, match=r"^train-purchases\.csv line 3: column 'timeframe'"
    ):
        import_diginetica(folder)
    report = import_diginetica(folder, on_error="skip").report
    assert [(b.file, b.line) for b in report.bad_rows] == [("train-purchases.csv", 3)]
    assert (report.rows_read, report.rows_imported, report.n_bad) == (7, 6, 1)


def test_folder_without_views_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"train-item-views\.csv"):
        import_diginetica(tmp_path)
