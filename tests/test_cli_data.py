"""`nextbest data ...`: import, prepare, stats and demo-shop from the command line."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.events.importers import import_gru4rec

runner = CliRunner()

# Two visitors; visitor 1 comes back after two hours (a new session by the 30-minute gap).
HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)
REES46 = f"""{HEADER}
2019-10-01 00:00:00 UTC,view,1,10,sports.shoes,acme,10.5,100,s1
2019-10-01 00:01:00 UTC,view,2,10,sports.shoes,acme,12.0,100,s1
2019-10-01 00:02:00 UTC,cart,2,10,sports.shoes,acme,12.0,100,s1
2019-10-01 02:30:00 UTC,view,1,10,sports.shoes,acme,10.5,100,s1
2019-10-01 02:31:00 UTC,view,2,10,sports.shoes,acme,12.0,100,s1
2019-10-01 00:05:00 UTC,view,2,10,sports.shoes,acme,12.0,200,s2
2019-10-01 00:06:00 UTC,view,1,10,sports.shoes,acme,10.5,200,s2
2019-10-01 00:07:00 UTC,view,BAD-PRICE-ROW,10,sports.shoes,acme,notaprice,200,s2
"""


def test_import_reports_the_bad_line_or_skips_it(tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    source.write_text(REES46)
    out = tmp_path / "events.parquet"
    refused = runner.invoke(app, ["data", "import", str(source), "-f", "rees46", "--out", str(out)])
    assert refused.exit_code == 2
    assert "line 9" in refused.output
    assert not out.exists()
    result = runner.invoke(
        app, ["data", "import", str(source), "-f", "rees46", "--out", str(out), "--skip-bad"]
    )
    assert result.exit_code == 0, result.output
    assert "skipped 1 malformed row" in result.output
    assert pl.read_parquet(out).height == 7


def test_prepare_sessionizes_and_splits(tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    source.write_text(REES46)
    events = tmp_path / "events.parquet"
    imported = ["data", "import", str(source), "-f", "rees46", "--out", str(events), "--skip-bad"]
    assert runner.invoke(app, imported).exit_code == 0
    out = tmp_path / "prepared"
    args = ["data", "prepare", str(events), "--out", str(out), "--min-item-support", "1"]
    result = runner.invoke(app, [*args, "--test-days", str(1 / 24)])
    assert result.exit_code == 0, result.output
    train = import_gru4rec(out / "train.tsv").events
    test = import_gru4rec(out / "test.tsv").events
    # visitor 1's return after two hours is its own session, the only one in the last hour
    assert test["session_id"].n_unique() == 1
    assert test.height == 2
    assert train["session_id"].n_unique() == 2
    assert train.height == 5


def test_prepare_refuses_a_bad_gap(tmp_path: Path) -> None:
    events = tmp_path / "e.parquet"
    result = runner.invoke(
        app, ["data", "prepare", str(events), "--out", "x", "--gap-minutes", "-1"]
    )
    assert result.exit_code == 2
    assert "--gap-minutes" in result.output


def test_stats_prints_counts(tmp_path: Path) -> None:
    tsv = tmp_path / "train.tsv"
    tsv.write_text("SessionId\tItemId\tTime\n1\ta\t1\n1\tb\t2\n2\ta\t3\n")
    result = runner.invoke(app, ["data", "stats", str(tsv)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "events" in result.output
    assert "sessions" in result.output


def test_stats_reports_noise_and_prepare_removes_it_when_asked(tmp_path: Path) -> None:
    # session 1: a person, one page a minute; session 2: twelve pages in six seconds
    rows = [f"1\ti{k}\t{60 * k}" for k in range(4)] + [f"2\ti{k}\t{0.5 * k}" for k in range(12)]
    tsv = tmp_path / "train.tsv"
    tsv.write_text("SessionId\tItemId\tTime\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["data", "stats", str(tsv)], terminal_width=200)
    assert result.exit_code == 0, result.output
    bots = next(line for line in result.output.splitlines() if "bot-like sessions" in line)
    assert "│ 1 " in bots and "12" in bots  # one session, its twelve events
    out = tmp_path / "prepared"
    args = ["data", "prepare", str(tsv), "--out", str(out), "--min-item-support", "1"]
    cleaned = runner.invoke(app, [*args, "--bot-events-per-minute", "60", "--no-sessionize"])
    assert cleaned.exit_code == 0, cleaned.output
    assert "bot-like sessions: 1 sessions, 12 events removed" in cleaned.output
    kept = import_gru4rec(out / "train.tsv").events["session_id"].unique().to_list()
    assert "2" not in kept
    bad = runner.invoke(app, [*args, "--accidental-seconds", "-1"])
    assert bad.exit_code == 2 and "accidental_seconds must be a positive" in bad.output


def test_demo_shop_writes_the_documented_files(tmp_path: Path) -> None:
    out = tmp_path / "shop"
    args = ["data", "demo-shop", "--out", str(out), "--events", "30000", "--seed", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("train.tsv", "test.tsv", "items.csv", "queries.tsv", "events.parquet",
                 "keyword_cards.parquet"):  # fmt: skip
        assert (out / name).exists(), name
    assert "keyword cards (" in result.output
    header = (out / "train.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["SessionId", "ItemId", "Time", "UserId", "EventType"]


def test_generic_import_with_a_separator_and_a_null_value(tmp_path: Path) -> None:
    source = tmp_path / "views.csv"
    source.write_text(
        "session_id;user_id;item_id;timeframe\n1;NA;81766;526\n1;NA;31331;1031\n2;u7;81766;40\n"
    )
    out = tmp_path / "events.parquet"
    args = ["data", "import", str(source), "-f", "generic", "--out", str(out), "--separator", ";",
            "--null-value", "NA", "--time-format", "ms", "--column", "session_id=session_id",
            "--column", "user_id=user_id", "--column", "item_id=item_id",
            "--column", "timestamp=timeframe"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    events = pl.read_parquet(out).sort("timestamp")
    assert events["user_id"].to_list() == ["u7", None, None]  # "NA" is an anonymous visitor
    assert events["timestamp"].to_list() == [0.04, 0.526, 1.031]
    refused = runner.invoke(
        app,
        ["data", "import", str(source), "-f", "rees46", "--out", str(out), "--null-value", "NA"],
    )
    assert (
        refused.exit_code == 2 and "--null-value only apply to --format generic" in refused.output
    )
