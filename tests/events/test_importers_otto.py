"""OTTO JSON lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextbest.events.importers import MalformedRowError, import_otto

GOOD = (
    '{"session": 7, "events": [{"aid": 1517085, "ts": 1659304800025, "type": "clicks"},'
    ' {"aid": 12, "ts": 1659304904511, "type": "carts"}]}\n'
    '{"session": 8, "events": [{"aid": "0012", "ts": 1659304800000, "type": "orders"}]}\n'
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text(text)
    return path


def test_sessions_become_events(tmp_path: Path) -> None:
    result = import_otto(write(tmp_path, GOOD))
    assert result.events.select(
        "event_id", "type", "session_id", "item_id", "user_id", "timestamp"
    ).rows() == [
        ("train:1:0", "click", "7", "1517085", None, 1659304800.025),
        ("train:1:1", "cart", "7", "12", None, 1659304904.511),
        ("train:2:0", "purchase", "8", "0012", None, 1659304800.0),
    ]
    assert (result.report.rows_read, result.report.rows_imported) == (2, 2)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"session": 9, "events": [', "not a JSON object with 'session' and a list of 'events'"),
        ("[1, 2]", "not a JSON object with 'session' and a list of 'events'"),
        ('{"events": [{"aid": 1, "ts": 2, "type": "clicks"}]}', "missing 'session'"),
        ('{"session": 9, "events": []}', "no 'events'"),
        (
            '{"session": 9, "events": [{"aid": 1, "ts": 2, "type": "clicks"},'
            ' {"aid": 1.5, "ts": 2, "type": "clicks"}]}',
            "event 1: 'aid' is not a whole number: 1.5",
        ),
        (
            '{"session": 9, "events": [{"aid": 1, "type": "clicks"}]}',
            "event 0: 'ts' is not a whole number: null",
        ),
        (
            '{"session": 9, "events": [{"aid": 1, "ts": 2, "type": "buys"}]}',
            "event 0: unknown 'type' buys",
        ),
    ],
)
def test_malformed_session(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path, GOOD + line + "\n" + GOOD)
    with pytest.raises(MalformedRowError) as caught:
        import_otto(path)
    assert str(caught.value) == f"train.jsonl line 3: {reason}"
    result = import_otto(path, on_error="skip")
    assert result.events.height == 6  # the whole bad session is dropped, the others kept
    assert result.events["event_id"][-1] == "train:5:0"
    assert (result.report.rows_read, result.report.n_bad) == (5, 1)
