"""The affinity evaluation: predictions from what was known when each test session began."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from event_tables import event_table
from nextbest.cli.main import app
from nextbest.evaluation.affinity import evaluate_affinity
from nextbest.events.schema import Item
from nextbest.recommend.affinity import ItemFacets

ITEMS = [
    Item(item_id="a1", category_path=("Shoes",), brand="A", price=10.0),
    Item(item_id="a2", category_path=("Shoes",), brand="A", price=12.0),
    Item(item_id="b1", category_path=("Bags",), brand="B", price=30.0),
    Item(item_id="c1", category_path=("Hats",), brand="C", price=5.0),
]


def events(rows: list[tuple[str, str, str, str | None, float]]) -> pl.DataFrame:
    return event_table(rows, ("session_id", "type", "item_id", "user_id", "timestamp"))


TRAIN = events(
    [
        ("s1", "view", "a1", "u1", 0.0),
        ("s1", "purchase", "a1", "u1", 10.0),
        ("s2", "view", "b1", "u1", 100.0),  # the last item u1 viewed before the test: a bag
        ("x1", "purchase", "c1", "u9", 5.0),  # hats are the most bought
        ("x2", "purchase", "c1", "u8", 6.0),
    ]
)
# u1's test session looks at bags for a while, then buys shoes: the bag views come after the
# session began, so they must not reach the prediction
TEST = events(
    [("t1", "view", "b1", "u1", 200.0 + k) for k in range(10)]
    + [("t1", "purchase", "a2", "u1", 300.0), ("t2", "purchase", "a1", None, 400.0)]
)


def test_the_profile_at_the_sessions_start_predicts_and_nothing_leaks() -> None:
    result = evaluate_affinity(TRAIN, TEST, ItemFacets.build(ITEMS), cutoffs=(1, 2))
    assert result.cases == 1 and result.users == 1  # the anonymous purchase is no case
    brand = result.accuracy["brand"]
    assert brand["profile"][1] == 1.0  # a purchase of A outweighs one bag view
    assert brand["last viewed"][1] == 0.0  # B
    assert brand["popular"][1] == 0.0 and brand["popular"][2] == 1.0  # C, then A
    assert result.accuracy["category"]["profile"][1] == 1.0


def test_the_cli_prints_and_writes_the_table(tmp_path: Path) -> None:
    train, test = tmp_path / "train.parquet", tmp_path / "test.parquet"
    TRAIN.write_parquet(train)
    TEST.write_parquet(test)
    items = tmp_path / "items.csv"
    items.write_text(
        "item_id,category_path,brand,price\na1,Shoes,A,10\na2,Shoes,A,12\nb1,Bags,B,30\nc1,Hats,C,5\n"
    )
    runner = CliRunner()
    args = [
        "affinity",
        "evaluate",
        "--train",
        str(train),
        "--test",
        str(test),
        "--items",
        str(items),
    ]
    result = runner.invoke(app, [*args, "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "accuracy@5" in result.output and "last viewed" in result.output
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["cases"] == 1 and saved["accuracy"]["brand"]["profile"]["1"] == 1.0
    bad = runner.invoke(app, [*args, "--cutoff", "0"])
    assert bad.exit_code == 2 and "--cutoff must be at least 1" in bad.output
    nothing = tmp_path / "none.parquet"
    TEST.filter(pl.col("type") != "purchase").write_parquet(nothing)
    empty = runner.invoke(
        app,
        [
            "affinity",
            "evaluate",
            "--train",
            str(train),
            "--test",
            str(nothing),
            "--items",
            str(items),
        ],
    )
    # the console wraps a long message at its width (here after a long temporary path)
    assert empty.exit_code == 2 and "nothing to predict" in " ".join(empty.output.split())
