"""RecBole atomic files (.inter / .item / .user)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nextbest.events.importers import MalformedRowError, import_movielens

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "196\t0242\t3\t881250949\n"
    "22\t377\t4.5\t878887116\n"
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "0242\tToy Story\t1995\tAnimation Children's Comedy\n"
    "377\tunkonwn\tunkonwn\t\n"
)
USER = "user_id:token\tage:token\tgender:token\n196\t024\tM\n22\t53\tF\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "ml-tiny.inter").write_text(INTER)
    (tmp_path / "ml-tiny.item").write_text(ITEM)
    (tmp_path / "ml-tiny.user").write_text(USER)
    return tmp_path


def test_interactions_items_and_users(folder: Path) -> None:
    result = import_movielens(folder)
    assert result.events.select(
        "event_id", "type", "session_id", "item_id", "user_id", "timestamp", "value"
    ).rows() == [
        ("ml-tiny:2", "view", "196", "0242", "196", 881250949.0, 3.0),
        ("ml-tiny:3", "view", "22", "377", "22", 878887116.0, 4.5),
    ]
    assert result.items is not None
    assert result.items.select("item_id", "title", "category_path").rows() == [
        ("0242", "Toy Story", "Animation"),
        ("377", "unkonwn", None),
    ]
    assert [json.loads(a) for a in result.items["attributes"]] == [
        {"year": "1995", "genres": ["Animation", "Children's", "Comedy"]},
        {"year": "unkonwn", "genres": []},
    ]
    assert result.users is not None
    assert result.users.rows() == [("196", "024", "M"), ("22", "53", "F")]
    assert result.report.rows_read == 6


def test_inter_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "x.inter"
    path.write_text(INTER)
    result = import_movielens(path)
    assert result.items is None and result.users is None and result.events.height == 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1\t2\tgood\t3", "column 'rating' is not a number: 'good'"),
        ("1\t2\t3\t", "column 'timestamp' is not a number: ''"),
        ("\t2\t3\t4", "column 'user_id' is empty"),
        ("1\t2\t3", "expected 4 fields, found 3"),
    ],
)
def test_malformed_interaction(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "x.inter"
    path.write_text(INTER + line + "\n")
    with pytest.raises(MalformedRowError, match=f"^x.inter line 4: {re.escape(reason)}$"):
        import_movielens(path)
    result = import_movielens(path, on_error="skip")
    assert result.events.height == 2 and result.report.n_bad == 1


def test_untyped_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.inter"
    path.write_text("user_id\titem_id\ttimestamp\n1\t2\t3\n")
    with pytest.raises(
        MalformedRowError, match="line 1: header field 'user_id' is not 'name:type'"
    ):
        import_movielens(path)
