"""Preparing by partitions (`prepare_parquet`, `nextbest data prepare --by-partitions`) gives
the rows `prepare` gives in memory, session ids included, however many partitions."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop
from nextbest.data.noise import NoiseConfig
from nextbest.data.prepare import PrepareConfig, prepare
from nextbest.data.prepare_stream import prepare_parquet


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("log") / "events.parquet"
    generate_demo_shop(DemoShopConfig(seed=3, n_events=40_000)).events.write_parquet(path)
    return path


def rows(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted(folder.glob("*.parquet"))).sort("event_id")


@pytest.mark.parametrize("partitions", [1, 4, 9])
def test_the_same_rows_as_in_memory(log: Path, tmp_path: Path, partitions: int) -> None:
    config = PrepareConfig(test_days=1.0, min_item_support=8, gap_seconds=900.0)
    expected = prepare(pl.read_parquet(log), config)
    done = prepare_parquet(log, tmp_path, config, partitions=partitions)
    assert rows(done.train).equals(expected.train.sort("event_id"))
    assert rows(done.test).equals(expected.test.sort("event_id"))
    assert done.rounds == expected.filter_report.rounds
    assert len(list(done.train.glob("*.parquet"))) == partitions


def test_the_command_and_what_it_leaves_to_memory(log: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["data", "prepare", str(log), "--out", str(tmp_path / "p"), "--by-partitions"]
    )
    assert result.exit_code == 0, result.output
    expected = prepare(pl.read_parquet(log), PrepareConfig())
    assert rows(tmp_path / "p" / "train").height == expected.train.height
    refused = PrepareConfig(remove_repeats=True, noise=NoiseConfig(accidental_seconds=1.0))
    with pytest.raises(ValueError, match="remove_repeats, noise rules"):
        prepare_parquet(log, tmp_path / "q", refused)
    tsv = CliRunner().invoke(
        app, ["data", "prepare", "x.tsv", "--out", str(tmp_path / "r"), "--by-partitions"]
    )
    assert tsv.exit_code == 2 and "reads a .parquet log" in tsv.output
