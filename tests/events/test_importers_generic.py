"""The generic CSV / Parquet importer with a column mapping."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from nextbest.events.importers import MalformedRowError, import_generic

CSV = (
    "ts;customer;product;kind;price;sess\n"
    "1569888000000;007;0042;buy;19.5;s1\n"
    "1569888005000;007;0043;look;;s1\n"
    '1569888009000;;"00;44";look;;s2\n'
)
MAPPING = {
    "session_id": "sess",
    "user_id": "customer",
    "item_id": "product",
    "timestamp": "ts",
    "type": "kind",
    "value": "price",
}
TYPES = {"buy": "purchase", "look": "view"}


def write(tmp_path: Path, text: str, name: str = "shop.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_mapped_csv(tmp_path: Path) -> None:
    path = write(tmp_path, CSV)
    result = import_generic(path, columns=MAPPING, time_format="ms", type_map=TYPES, separator=";")
    assert result.events.select(
        "event_id", "type", "session_id", "item_id", "user_id", "timestamp", "value"
    ).rows() == [
        ("shop:2", "purchase", "s1", "0042", "007", 1569888000.0, 19.5),
        ("shop:3", "view", "s1", "0043", "007", 1569888005.0, None),
        ("shop:4", "view", "s2", "00;44", None, 1569888009.0, None),
    ]


def test_user_column_without_sessions(tmp_path: Path) -> None:
    path = write(
        tmp_path, "when,who,what\n2019-10-01T00:00:00Z,u1,01\n2019-10-01T02:00:00+02:00,u1,02\n"
    )
    result = import_generic(
        path, columns={"user_id": "who", "item_id": "what", "timestamp": "when"}, time_format="iso"
    )
    assert result.events.select("type", "session_id", "user_id", "timestamp").rows() == [
        ("view", "u1", "u1", 1569888000.0),
        ("view", "u1", "u1", 1569888000.0),
    ]


def test_null_values_mean_missing(tmp_path: Path) -> None:
    """`NA` for an anonymous visitor is a null user; in a required column it is malformed."""
    path = write(tmp_path, "s;u;i;t;p\n1;NA;7;10;NA\n1; NA ;8;11;2.5\n2;u9;NA;12;1\n3;NAB;9;13;1\n")
    columns = {"session_id": "s", "user_id": "u", "item_id": "i", "timestamp": "t", "value": "p"}
    result = import_generic(
        path, columns=columns, separator=";", null_values=["NA"], on_error="skip"
    )
    assert result.events.select("session_id", "user_id", "item_id", "value").rows() == [
        ("1", None, "7", None),
        ("1", None, "8", 2.5),
        ("3", "NAB", "9", 1.0),
    ]
    assert [bad.reason for bad in result.report.bad_rows] == ["column 'i' is empty"]
    # Without the option "NA" is a user id like any other, and a value that is not a number.
    plain = import_generic(path, columns=columns, separator=";", on_error="skip")
    assert plain.events["user_id"].to_list() == [" NA ", "u9", "NAB"]
    # A single string is one null value, not a set of characters.
    one = import_generic(path, columns=columns, separator=";", null_values="NA", on_error="skip")
    assert one.events.equals(result.events)


def test_strptime_format_and_constant_type(tmp_path: Path) -> None:
    path = write(tmp_path, "s,i,t\n1,2,01/10/2019 00:00:10\n")
    columns = {"session_id": "s", "item_id": "i", "timestamp": "t"}
    result = import_generic(
        path, columns=columns, time_format="%d/%m/%Y %H:%M:%S", event_type="cart"
    )
    assert result.events.select("type", "timestamp").rows() == [("cart", 1569888010.0)]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("soon;007;1;look;;s1", "column 'ts' is not a time (ms): 'soon'"),
        ("1;007;1;peek;;s1", "column 'kind' has unknown value 'peek' (allowed: buy, look)"),
        ("1;007;1;look;free;s1", "column 'price' is not a number: 'free'"),
        ("1;007;;look;;s1", "column 'product' is empty"),
        ("1;007;1;look;;", "column 'sess' is empty"),
        ("1;007;1;look;s1", "expected 6 fields, found 5"),
        ("1;007;1;look;;s1;x", "expected 6 fields, found 7"),
    ],
)
def test_malformed_row(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path, CSV + line + "\n")
    options = {"columns": MAPPING, "time_format": "ms", "type_map": TYPES, "separator": ";"}
    with pytest.raises(MalformedRowError, match=f"^shop.csv line 5: {re.escape(reason)}$"):
        import_generic(path, **options)  # type: ignore[arg-type]
    result = import_generic(path, on_error="skip", **options)  # type: ignore[arg-type]
    assert result.events.height == 3 and result.report.n_bad == 1


def test_parquet_with_integer_ids_and_datetimes(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame(
        {
            "s": ["a", "a", ""],
            "i": [1, 20, 3],
            "t": pl.Series(
                ["2019-10-01 00:00:00", "2019-10-01 00:00:01.5", "2019-10-01"]
            ).str.to_datetime(),
        }
    ).write_parquet(path)
    columns = {"session_id": "s", "item_id": "i", "timestamp": "t"}
    with pytest.raises(MalformedRowError, match=r"^log\.parquet row 3: column 's' is empty$"):
        import_generic(path, columns=columns)
    result = import_generic(path, columns=columns, on_error="skip")
    assert result.events.select("event_id", "item_id", "timestamp").rows() == [
        ("log:1", "1", 1569888000.0),
        ("log:2", "20", 1569888001.5),
    ]
    assert result.report.bad_rows[0].text == '{"s":"","i":3,"t":"2019-10-01 00:00:00"}'


def test_parquet_float_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame({"s": ["a"], "i": [1.0], "t": [1.0]}).write_parquet(path)
    with pytest.raises(ValueError, match=r"'i' .* is Float64"):
        import_generic(path, columns={"session_id": "s", "item_id": "i", "timestamp": "t"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"columns": {"item_id": "i", "timestamp": "t"}}, "'session_id' or 'user_id'"),
        ({"columns": {"session_id": "s", "timestamp": "t"}}, "'item_id'"),
        ({"columns": {"session_id": "s", "item_id": "i", "timestamp": "t", "sku": "x"}}, "sku"),
        (
            {
                "columns": {"session_id": "s", "item_id": "i", "timestamp": "t"},
                "time_format": "days",
            },
            "days",
        ),
        (
            {"columns": {"session_id": "s", "item_id": "i", "timestamp": "t"}, "event_type": "buy"},
            "buy",
        ),
        (
            {
                "columns": {"session_id": "s", "item_id": "i", "timestamp": "t"},
                "on_error": "ignore",
            },
            "ignore",
        ),
        (
            {"columns": {"session_id": "s", "item_id": "i", "timestamp": "t"}, "separator": ";;"},
            ";;",
        ),
    ],
)
def test_bad_options_name_the_problem(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    path = write(tmp_path, "s,i,t\n1,2,3\n")
    with pytest.raises(ValueError, match=re.escape(message)):
        import_generic(path, **options)  # type: ignore[arg-type]
