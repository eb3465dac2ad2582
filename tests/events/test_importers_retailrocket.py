"""RetailRocket: the Kaggle events.csv and the tab-separated session sample."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nextbest.events.importers import MalformedRowError, import_retailrocket

EVENTS = (
    "timestamp,visitorid,event,itemid,transactionid\n"
    "1433221332117,0257597,view,355908,\n"
    "1433221332118,0257597,addtocart,0355908,\n"
    "1433224214164,992329,transaction,248676,4000\n"
)


def test_events_csv(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(EVENTS)
    result = import_retailrocket(path)
    assert result.events.select(
        "event_id", "type", "session_id", "item_id", "user_id", "timestamp"
    ).rows() == [
        ("events:2", "view", "0257597", "355908", "0257597", 1433221332.117),
        ("events:3", "cart", "0257597", "0355908", "0257597", 1433221332.118),
        ("events:4", "purchase", "992329", "248676", "992329", 1433224214.164),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "1433221332117,1,click,2,",
            "column 'event' has unknown value 'click' (allowed: addtocart, transaction, view)",
        ),
        ("1433221332.5,1,view,2,", "column 'timestamp' is not a whole number: '1433221332.5'"),
        ("1433221332117,,view,2,", "column 'visitorid' is empty"),
        ("1433221332117,1,view,,", "column 'itemid' is empty"),
        ("1433221332117,1,view,2", "expected 5 fields, found 4"),
    ],
)
def test_malformed_event(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "events.csv"
    path.write_text(EVENTS + line + "\n")
    with pytest.raises(MalformedRowError, match=f"^events.csv line 5: {re.escape(reason)}$"):
        import_retailrocket(path)
    result = import_retailrocket(path, on_error="skip")
    assert result.events.height == 3 and result.report.n_bad == 1


def test_session_sample(tmp_path: Path) -> None:
    path = tmp_path / "sample_retailrocket.csv"
    path.write_text(
        "timestamp\tuser_id\titem_id\tsession_id\n1442004589\t0\t0285930\t00\n1442004759\t0\t3\tx\n"
    )
    result = import_retailrocket(path)
    assert result.events.select("type", "session_id", "item_id", "user_id", "timestamp").rows() == [
        ("view", "00", "0285930", "0", 1442004589.0),
        ("view", "x", "3", "0", 1442004759.0),
    ]
    path.write_text("timestamp\tuser_id\titem_id\tsession_id\n1442004589\t0\t1\n")
    with pytest.raises(MalformedRowError, match="line 2: expected 4 fields, found 3"):
        import_retailrocket(path)


def test_unknown_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("time,visitor,item\n1,2,3\n")
    with pytest.raises(MalformedRowError, match="line 1: header lacks column"):
        import_retailrocket(path)
