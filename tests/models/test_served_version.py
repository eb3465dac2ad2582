"""Which version serves: the newest unless an operator chose since it was saved; promote,
rollback (walking the history back) and prune (never the served or the rollback target)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from nextbest.data.sessions import Sessions
from nextbest.models.popularity import MostPopular
from nextbest.models.served import (
    CACHE_DIR,
    SERVED_FILE,
    promote,
    prune,
    read_served,
    rollback,
    served_version,
)
from nextbest.models.store import list_versions, save_version


def versions(home: Path, n: int) -> list[str]:
    data = Sessions.from_events(
        pl.DataFrame(
            {"session_id": ["a", "a", "b"], "item_id": ["x", "y", "x"], "timestamp": [1.0, 2, 3]}
        )
    )
    return [save_version(MostPopular().fit(data), home, {}).name for _ in range(n)]


def test_the_newest_serves_until_one_is_chosen(tmp_path: Path) -> None:
    assert served_version(tmp_path) is None
    v1, _, v3 = versions(tmp_path, 3)
    assert served_version(tmp_path).name == v3  # type: ignore[union-attr]
    promote(tmp_path, v1, "by hand")
    assert served_version(tmp_path).name == v1  # type: ignore[union-attr]
    (v4,) = versions(tmp_path, 1)  # trained after the choice: it serves
    assert served_version(tmp_path).name == v4  # type: ignore[union-attr]


def test_rollback_walks_back_what_served(tmp_path: Path) -> None:
    v1, v2, v3 = versions(tmp_path, 3)
    promote(tmp_path, v1, "by hand")  # v3 served until now
    promote(tmp_path, v2, "by hand")
    assert rollback(tmp_path).version == v1
    assert served_version(tmp_path).name == v1  # type: ignore[union-attr]
    assert rollback(tmp_path).version == v3
    with pytest.raises(ValueError, match="no earlier served version"):
        rollback(tmp_path)


def test_promoting_a_new_version_remembers_the_one_it_replaces(tmp_path: Path) -> None:
    (v1,) = versions(tmp_path, 1)
    (v2,) = versions(tmp_path, 1)  # already the newest, so already served
    choice = promote(tmp_path, v2, "passed the gate")
    assert choice.previous == (v1,)
    assert rollback(tmp_path).version == v1


def test_unknown_versions_and_damaged_files(tmp_path: Path) -> None:
    _, v2 = versions(tmp_path, 2)
    with pytest.raises(ValueError, match="no model version 'nope'"):
        promote(tmp_path, "nope", "by hand")
    (tmp_path / "models" / SERVED_FILE).write_text("{not json")
    assert read_served(tmp_path) is None
    assert served_version(tmp_path).name == v2  # type: ignore[union-attr]
    (tmp_path / "models" / SERVED_FILE).write_text(
        json.dumps({"version": "gone", "changed_at": 9e9})
    )
    assert served_version(tmp_path).name == v2  # type: ignore[union-attr]


def test_prune_keeps_the_served_the_rollback_target_and_pinned_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = versions(tmp_path, 7)
    promote(tmp_path, names[1], "by hand")  # serves names[1]; rollback would return to [6]
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(
        f'[experiments.x]\nplacement = "home"\nsalt = "s"\nstart = 2026-01-01T00:00:00Z\n'
        f'[[experiments.x.variants]]\nname = "a"\nmodel = "{names[2]}"\nshare = 1.0\n'
    )
    monkeypatch.delenv("NEXTBEST_EXPERIMENTS", raising=False)
    (tmp_path / CACHE_DIR / names[0]).mkdir(parents=True)
    removed = prune(tmp_path, keep=2)
    assert removed == [names[0], names[3], names[4]]
    left = [f.name for f in list_versions(tmp_path)]
    assert left == [names[1], names[2], names[5], names[6]]
    assert not (tmp_path / CACHE_DIR / names[0]).exists()
    assert served_version(tmp_path).name == names[1]  # type: ignore[union-attr]
    assert prune(tmp_path, keep=0) == []
