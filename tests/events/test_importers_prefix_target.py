"""The GNN papers' prefix/target test cases, in both layouts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nextbest.events.importers import MalformedRowError, import_prefix_target


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "test_prefix_target.tsv"
    path.write_text(text)
    return path


def test_diginetica_layout(tmp_path: Path) -> None:
    cases = import_prefix_target(write(tmp_path, "01 2 03\t4\n01\t2\n"))
    assert cases.prefixes == [["01", "2", "03"], ["01"]]
    assert cases.targets == ["4", "2"]
    assert cases.users is None and cases.times is None
    assert len(cases) == 2


def test_retailrocket_layout(tmp_path: Path) -> None:
    cases = import_prefix_target(
        write(tmp_path, "u1\t5 5\t5\t1441940543\n\t6\t007\t1441940603.5\n")
    )
    assert cases.prefixes == [["5", "5"], ["6"]]
    assert cases.targets == ["5", "007"]
    assert cases.users == ["u1", None]
    assert cases.times is not None and cases.times.tolist() == [1441940543.0, 1441940603.5]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1 2", "expected 2 fields, found 1"),
        ("1 2\t3\t4", "expected 2 fields, found 3"),
        ("1  2\t3", "column 'prefix' has an empty item id: '1  2'"),
        ("\t3", "column 'prefix' is empty"),
        ("1 2\t", "column 'target' is empty"),
    ],
)
def test_malformed_case(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path, f"1\t2\n{line}\n3\t4\n")
    with pytest.raises(
        MalformedRowError, match=f"^test_prefix_target.tsv line 2: {re.escape(reason)}$"
    ):
        import_prefix_target(path)
    cases = import_prefix_target(path, on_error="skip")
    assert cases.targets == ["2", "4"]
    assert [(b.line, b.reason) for b in cases.report.bad_rows] == [(2, reason)]
    assert cases.report.n_bad == 1


def test_bad_time_in_retailrocket_layout(tmp_path: Path) -> None:
    path = write(tmp_path, "u\t1\t2\t10\nu\t1\t2\tsoon\n")
    with pytest.raises(MalformedRowError, match="line 2: column 'time' is not a number: 'soon'"):
        import_prefix_target(path)


def test_unknown_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MalformedRowError, match="line 1: expected 2 or 4 tab-separated fields"):
        import_prefix_target(write(tmp_path, "a\tb\tc\n"), on_error="skip")
