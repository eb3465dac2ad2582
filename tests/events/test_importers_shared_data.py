"""The importers on the real datasets in ../shared/datasets, against their published counts."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from nextbest.events.importers import (
    import_diginetica,
    import_generic,
    import_gru4rec,
    import_movielens,
    import_otto,
    import_prefix_target,
    import_rees46,
    import_retailrocket,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not SHARED.exists(), reason=f"real datasets not found at {SHARED}"),
]


def counts(path: Path) -> tuple[int, int, int]:
    events = import_gru4rec(path).events
    return events.height, events["session_id"].n_unique(), events["item_id"].n_unique()


def test_rsc15_100k() -> None:
    assert counts(SHARED / "rsc15_100k" / "train_full.tsv") == (70_278, 17_794, 2_933)
    assert counts(SHARED / "rsc15_100k" / "test.tsv")[:2] == (13_568, 3_416)


@pytest.mark.slow
def test_diginetica_and_retailrocket_splits() -> None:
    assert counts(SHARED / "diginetica" / "train.tsv") == (906_140, 186_670, 43_097)
    assert counts(SHARED / "retailrocket" / "train.tsv")[1:] == (126_168, 36_968)
    test = import_gru4rec(SHARED / "retailrocket" / "test.tsv").events  # has UserId, TargetTime
    assert test["session_id"].n_unique() == 4_735
    assert test["user_id"].null_count() == 0


def test_prefix_target_cases() -> None:
    diginetica = import_prefix_target(SHARED / "diginetica" / "test_prefix_target.tsv")
    assert len(diginetica) == 60_858 and diginetica.users is None
    assert diginetica.prefixes[0] == ["21553", "20071", "8762", "21566", "6381"]
    assert diginetica.targets[0] == "21566"
    retailrocket = import_prefix_target(SHARED / "retailrocket" / "test_prefix_target.tsv")
    assert len(retailrocket) == 15_132
    assert retailrocket.users is not None and retailrocket.users[0] == "1718489"
    assert retailrocket.times is not None and retailrocket.times[0] == 1441940543.0
    assert retailrocket.prefixes[0] == ["16156", "16156"]


def test_diginetica_raw_sample() -> None:
    result = import_diginetica(SHARED / "diginetica_raw_sample")
    types = dict(result.events.group_by("type").len().rows())
    # 12,391 view rows (the last line has no final newline; the README counts 12,390)
    assert types == {"view": 12_391, "purchase": 18_025}
    assert result.events.filter(type="view")["user_id"].null_count() > 0  # NA = anonymous
    assert result.items is not None
    assert result.items.height == 184_047
    assert result.items["category_path"].n_unique() == 1_217
    assert result.report.n_bad == 0


def test_retailrocket_raw_sample() -> None:
    events = import_retailrocket(
        SHARED / "retailrocket_raw_sample" / "sample_retailrocket.csv"
    ).events
    assert events.height == 10_080
    assert set(events["type"]) == {"view"}


def test_generic_importer_reads_the_user_samples() -> None:
    """Any file with a user column: the samples through the generic importer, with their users."""
    views = SHARED / "diginetica_raw_sample" / "sample_train-item-views.csv"
    diginetica = import_generic(
        views,
        columns={
            "session_id": "session_id",
            "user_id": "user_id",
            "item_id": "item_id",
            "timestamp": "timeframe",
        },
        time_format="ms",
        separator=";",
        null_values=["NA"],
    ).events
    expected = import_diginetica(views).events
    assert diginetica.height == expected.height == 12_391
    assert diginetica["user_id"].to_list() == expected["user_id"].to_list()
    assert 0 < diginetica["user_id"].null_count() < diginetica.height
    retailrocket = import_generic(
        SHARED / "retailrocket_raw_sample" / "sample_retailrocket.csv",
        columns={
            "session_id": "session_id",
            "user_id": "user_id",
            "item_id": "item_id",
            "timestamp": "timestamp",
        },
        separator="\t",
    ).events
    assert retailrocket.height == 10_080
    assert retailrocket["user_id"].null_count() == 0
    per_user = retailrocket.group_by("user_id").agg(pl.col("session_id").n_unique())
    assert (per_user["session_id"] >= 2).sum() > 200  # returning users for the user protocol


def test_rees46_sample() -> None:
    result = import_rees46(SHARED / "rees46_sample" / "2019-Oct-sample.csv")
    assert dict(result.events.group_by("type").len().rows()) == {
        "view": 987,
        "cart": 3,
        "purchase": 10,
    }
    assert result.items is not None
    assert result.items.height == result.events["item_id"].n_unique()
    assert result.items["category_path"].drop_nulls().str.contains(" > ").all()


def test_otto_sample() -> None:
    path = SHARED / "otto_sample" / "train.jsonl"
    result = import_otto(path)
    with path.open() as file:
        sessions = [json.loads(line) for line in file]
    expected = [
        (str(s["session"]), str(e["aid"]), e["ts"] / 1000) for s in sessions for e in s["events"]
    ]
    assert result.events.select("session_id", "item_id", "timestamp").rows() == expected
    assert result.events["session_id"].n_unique() == 20


def test_movielens_100k() -> None:
    result = import_movielens(SHARED / "ml-100k")
    assert result.events.height == 100_000
    assert result.items is not None and result.items.height == 1_682
    assert result.users is not None and result.users.height == 943
    assert result.events["value"].is_between(1, 5).all()
