"""The catalog check: missing values, impossible values by row and column, constant attributes;
the CLI's exit code and the catalog reader that training and evaluation use."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from nextbest.cli.evaluate import read_items
from nextbest.cli.main import app
from nextbest.events.catalog_quality import check_file, check_items, read_categories
from nextbest.events.schema import Item

HEADER = "item_id,title,category_path,brand,price,discount,attributes,in_stock\n"


def write_catalog(path: Path, *rows: str) -> Path:
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


GOOD = [
    'a1,Shoe A,Sports > Running > Shoes,Peak,89.9,0.2,"{""colour"": ""red"", ""size"": 42}",true',
    'a2,Shoe B,Sports > Running > Shoes,Peak,99.0,0,"{""colour"": ""blue"", ""size"": 43}",false',
    'a3,Mat,Sports > Fitness > Mats,,19.5,0,"{""colour"": ""blue""}",true',
]


def test_a_clean_feed_has_no_problems_and_its_gaps_are_measured(tmp_path: Path) -> None:
    report = check_file(write_catalog(tmp_path / "items.csv", *GOOD))
    assert report.items == 3 and report.n_problems == 0
    assert report.missing["brand"] == pytest.approx(1 / 3, abs=1e-4)  # a3 has no brand
    assert report.missing["price"] == 0.0
    # size is on 2 of 3 items, but on every item of the one category that uses it
    assert report.attributes["size"] == {
        "share": pytest.approx(2 / 3, abs=1e-4),
        "share_where_used": 1.0,
        "categories": 1,
    }
    assert any("brand" in line for line in report.advice())


def test_impossible_values_are_named_by_row_and_column(tmp_path: Path) -> None:
    path = write_catalog(
        tmp_path / "items.csv",
        GOOD[0],
        "b2,X,Sports > Running > Shoes,Peak,-3,0,,true",
        "b3,X,Sports > Running > Shoes,Peak,10,25,,true",
        'b4,X,Sports > Running > Shoes,Peak,10,0,"{""colour"": {""r"": 1}}",true',
        "b5,X,Sports >  > Shoes,Peak,ten,0,,maybe",
        "a1,X,Sports > Running > Shoes,Peak,10,0,,true",
        "b7,X,Garden > Hoses,Peak,10,0,{broken,true",
    )
    report = check_file(path, known_categories={"Sports > Running > Shoes"})
    found = {(p.row, p.column): p.message for p in report.problems}
    assert "negative price" in found[(2, "price")]
    assert "outside 0..1" in found[(3, "discount")] and "0.25" in found[(3, "discount")]
    assert "an object" in found[(4, "attributes.colour")]
    assert "empty level" in found[(5, "category_path")]
    assert "not a number" in found[(5, "price")]
    assert "not true or false" in found[(5, "in_stock")]
    assert "repeats" in found[(6, "item_id")]
    assert "unknown category" in found[(7, "category_path")]
    assert "not JSON" in found[(7, "attributes")]
    assert report.n_problems == len(found) == 9


def test_an_attribute_with_one_value_everywhere_is_named(tmp_path: Path) -> None:
    rows = [f'c{i},T,Home > Lamps,Lux,{10 + i},0,"{{""voltage"": 230}}",true' for i in range(4)]
    report = check_file(write_catalog(tmp_path / "items.csv", *rows))
    assert report.constant == {
        "brand": "Lux",
        "category_path": "Home > Lamps",
        "discount": 0.0,
        "voltage": 230,
    }
    assert "price" not in report.constant
    assert any("voltage" in line for line in report.advice())


def test_stored_items_are_reported_like_a_file() -> None:
    items = [
        Item(item_id="x", category_path=("A", "B"), brand="Z", price=5.0, attributes={"c": "r"}),
        Item(item_id="y", category_path=("A", "C"), price=7.0),
    ]
    report = check_items(items)
    assert report.n_problems == 0
    assert report.missing["brand"] == 0.5 and report.missing["discount"] == 1.0
    assert report.attributes["c"]["share_where_used"] == 1.0


def test_the_reader_names_the_first_bad_row_and_column(tmp_path: Path) -> None:
    path = write_catalog(tmp_path / "items.csv", GOOD[0], "b2,X,Sports > Shoes,Peak,cheap,0,,true")
    with pytest.raises(ValueError, match=r"row 2, column price: 'cheap' is not a number"):
        read_items(path)
    table = read_items(write_catalog(tmp_path / "good.csv", *GOOD))
    assert table["price"].to_list() == [89.9, 99.0, 19.5]
    assert table["in_stock"].to_list() == [True, False, True]
    assert table.schema["discount"] == pl.Float64


def test_item_attributes_of_an_unknown_type_are_refused_by_name() -> None:
    Item(item_id="ok", attributes={"colours": ["red", "blue"], "size": 42, "eco": True, "x": None})
    with pytest.raises(ValidationError) as caught:
        Item(item_id="bad", attributes={"colour": "red", "spec": {"w": 3}})
    [error] = caught.value.errors()
    assert error["loc"] == ("attributes", "spec") and "an object" in error["msg"]
    with pytest.raises(ValidationError):
        Item(item_id="bad", attributes={"sizes": [[1, 2]]})


def test_the_cli_exits_1_on_impossible_values_and_writes_json(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write_catalog(tmp_path / "good.csv", *GOOD)
    result = runner.invoke(app, ["catalog", "check", str(good), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["items"] == 3
    bad = write_catalog(tmp_path / "bad.csv", "b1,X,A > B,Peak,-1,0,,true")
    result = runner.invoke(app, ["catalog", "check", str(bad)])
    assert result.exit_code == 1 and "negative price" in result.output
    missing = runner.invoke(app, ["catalog", "check", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_known_categories_come_from_the_demo_shop_file(tmp_path: Path) -> None:
    path = tmp_path / "categories.tsv"
    path.write_text(
        "CategoryPath\tKind\nSports > Running > Shoes\tregular\nHome > Lamps\tdurable\n"
    )
    assert read_categories(path) == {"Sports > Running > Shoes", "Home > Lamps"}
