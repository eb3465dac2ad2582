"""REES46 events and the items table they describe."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nextbest.events.importers import MalformedRowError, import_rees46

HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
)
ROWS = (
    "2019-10-01 00:00:00 UTC,view,044600062,2103807459595387724,,shiseido,35.79,541312140,s1\n"
    "2019-10-01 00:00:01 UTC,cart,3900821,2053013552326770905,appliances.heater,aqua,33.20,5,s2\n"
    '2019-10-01 00:01:00 UTC,purchase,3900821,2053013552326770905,,"aqua, inc",30.00,5,s2\n'
    "2019-10-01 00:02:00 UTC,remove_from_cart,3900821,2053013552326770905,,,,5,s2\n"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "2019-Oct.csv"
    path.write_text(text)
    return path


def test_events_and_items(tmp_path: Path) -> None:
    result = import_rees46(write(tmp_path, HEADER + ROWS))
    assert result.events.select(
        "event_id", "type", "session_id", "item_id", "user_id", "timestamp", "value"
    ).rows() == [
        ("2019-Oct:2", "view", "s1", "044600062", "541312140", 1569888000.0, None),
        ("2019-Oct:3", "cart", "s2", "3900821", "5", 1569888001.0, None),
        ("2019-Oct:4", "purchase", "s2", "3900821", "5", 1569888060.0, 30.0),
        ("2019-Oct:5", "remove-from-cart", "s2", "3900821", "5", 1569888120.0, None),
    ]
    assert result.items is not None
    items = result.items.select("item_id", "category_path", "brand", "price").rows()
    assert items == [
        ("044600062", None, "shiseido", 35.79),
        ("3900821", "appliances > heater", "aqua, inc", 30.0),  # the last price seen
    ]
    attributes = json.loads(result.items["attributes"][0])
    assert attributes == {"category_id": "2103807459595387724"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("2019-10-01 25:00:00 UTC,view,1,2,,,1.0,3,s", "column 'event_time' is not a time"),
        ("2019-10-01 00:00:00 UTC,click,1,2,,,1.0,3,s", "column 'event_type' has unknown value"),
        ("2019-10-01 00:00:00 UTC,view,1,2,,,1.0.0,3,s", "column 'price' is not a number: '1.0.0'"),
        ("2019-10-01 00:00:00 UTC,view,1,2,,,-1,3,s", "column 'price' is negative"),
        ("2019-10-01 00:00:00 UTC,view,1,2,,,1.0,3,", "column 'user_session' is empty"),
        ("2019-10-01 00:00:00 UTC,view,,2,,,1.0,3,s", "column 'product_id' is empty"),
        ("2019-10-01 00:00:00 UTC,view,1,2,,,1.0,3", "expected 9 fields, found 8"),
        ('2019-10-01 00:00:00 UTC,view,1,2,,"x,1.0,3,s', "unbalanced quote"),
    ],
)
def test_malformed_row(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path, HEADER + line + "\n" + ROWS)
    with pytest.raises(MalformedRowError, match=f"^2019-Oct.csv line 2: {re.escape(reason)}"):
        import_rees46(path)
    result = import_rees46(path, on_error="skip")
    assert result.events.height == 4
    assert result.events["event_id"][0] == "2019-Oct:3"
    assert result.report.n_bad == 1
