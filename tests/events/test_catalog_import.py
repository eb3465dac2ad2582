"""`nextbest catalog import FILE`: mapped columns, bad rows skipped and named by line and
column, idempotent upserts, JSON lines and Parquet, into SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.events.catalog import SqlCatalog
from nextbest.events.catalog_import import import_catalog, parse_mapping
from nextbest.events.log.database import open_engine, sqlite_url

FEED = """sku,name,category,price,colour
A1,Red shoe,Shoes > Running,59.90,red
A2,Blue hat,Hats,abc,blue
A3,Green sock,Socks,4.5,green
A1,Red shoe again,Shoes,61,red
A4,Grey coat,Coats,120,grey
"""
MAPPING = ["item_id=sku", "title=name", "category_path=category"]


def stored(home: Path) -> dict[str, object]:
    engine = open_engine(sqlite_url(home))
    try:
        catalog = SqlCatalog(engine)
        return dict(catalog.get(["A1", "A2", "A3", "A4", "x"]))
    finally:
        engine.dispose()


def run_import(home: Path, *args: str) -> object:
    return CliRunner().invoke(
        app, ["catalog", "import", *args], env={"NEXTBEST_HOME": str(home)}, terminal_width=200
    )


def test_import_writes_good_rows_names_bad_ones_and_is_idempotent(tmp_path: Path) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text(FEED)
    maps = [part for pair in MAPPING for part in ("--map", pair)]
    result = run_import(tmp_path / "home", str(feed), *maps)
    output = " ".join(result.output.split())  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert "line 3" in output and "price" in output  # A2's price "abc"
    assert "line 5" in output and "item_id" in output  # A1 again
    assert "2 bad row(s) skipped" in output and "3 items written (3 new, 0 updated)" in output
    assert "colour" in output  # a column the engine does not read is named
    items = stored(tmp_path / "home")
    assert sorted(items) == ["A1", "A3", "A4"]
    a1 = items["A1"]
    assert a1.title == "Red shoe" and a1.category_path == ("Shoes", "Running")  # type: ignore[attr-defined]
    assert a1.price == pytest.approx(59.9)  # type: ignore[attr-defined]
    again = run_import(tmp_path / "home", str(feed), *maps)
    assert "3 items written (0 new, 3 updated)" in " ".join(again.output.split())  # type: ignore[attr-defined]
    assert stored(tmp_path / "home") == items


def test_json_lines_and_parquet_import_with_their_own_line_numbers(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {"item_id": "A1", "title": "Shoe", "attributes": {"size": 42}, "in_stock": False}
        ),
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"item_id": "A2", "price": 3}),
    ]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(lines) + "\n")
    home = tmp_path / "home"
    result = run_import(home, str(feed))
    output = " ".join(result.output.split())  # type: ignore[attr-defined]
    assert result.exit_code == 1 and "line 2" in output and "line 3" in output, output  # type: ignore[attr-defined]
    items = stored(home)
    assert items["A1"].attributes == {"size": 42} and items["A1"].in_stock is False  # type: ignore[attr-defined]
    assert items["A2"].price == 3.0  # type: ignore[attr-defined]
    table = tmp_path / "feed.parquet"
    pl.DataFrame({"item_id": ["A3"], "price": [7.5], "brand": ["Acme"]}).write_parquet(table)
    assert run_import(home, str(table)).exit_code == 0  # type: ignore[attr-defined]
    assert stored(home)["A3"].brand == "Acme"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--map", "sku"], "write FIELD=COLUMN"),
        (["--map", "colour=sku"], "'colour' is no item field"),
        (["--map", "item_id=code"], "no column 'code'"),
        ([], "no item_id column: map one with --map item_id=COLUMN"),
    ],
)
def test_bad_mappings_and_files_end_with_a_clear_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text(FEED)
    result = run_import(tmp_path / "home", str(feed), *args)
    output = " ".join(result.output.split())  # type: ignore[attr-defined]
    assert result.exit_code == 2 and message in output and "Traceback" not in output, output  # type: ignore[attr-defined]
    missing = run_import(tmp_path / "home", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and "no such file" in missing.output  # type: ignore[attr-defined]


def test_import_into_postgresql(tmp_path: Path, pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    feed = tmp_path / "feed.csv"
    feed.write_text(FEED)
    engine = open_engine(url)
    try:
        catalog = SqlCatalog(engine, schema)
        report = import_catalog(feed, catalog, parse_mapping(MAPPING))
        assert (report.written, report.new, report.skipped) == (3, 3, 2)
        assert import_catalog(feed, catalog, parse_mapping(MAPPING)).new == 0
        assert sorted(catalog.get(["A1", "A2", "A3", "A4"])) == ["A1", "A3", "A4"]
    finally:
        engine.dispose()
