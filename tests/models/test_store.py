"""Model versions: the newest saved is the newest listed, whatever the clock does."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from nextbest.data.sessions import Sessions
from nextbest.models.popularity import MostPopular, SessionPopular
from nextbest.models.store import latest_version, list_versions, save_version


def tiny_sessions() -> Sessions:
    return Sessions.from_events(
        pl.DataFrame(
            {
                "session_id": ["a", "a", "b"],
                "item_id": ["x", "y", "x"],
                "timestamp": [1.0, 2.0, 3.0],
            }
        )
    )


def test_each_version_saved_is_the_newest_even_within_one_second(tmp_path: Path) -> None:
    data = tiny_sessions()
    models = [MostPopular().fit(data), SessionPopular().fit(data)]
    saved = [save_version(models[k % 2], tmp_path, {"k": k}) for k in range(6)]
    assert list_versions(tmp_path) == saved  # in the order saved, not by model name
    assert latest_version(tmp_path) == saved[-1]


def test_a_version_after_a_clock_step_back_still_sorts_last(tmp_path: Path) -> None:
    data = tiny_sessions()
    future = save_version(SessionPopular().fit(data), tmp_path, {})
    future = future.rename(future.with_name("20991231T235959.999999-spop"))
    older_format = save_version(MostPopular().fit(data), tmp_path, {})
    assert older_format.name > future.name and latest_version(tmp_path) == older_format
    (tmp_path / "models" / "20991231T235959.999999-spop").rename(
        tmp_path / "models" / "21000101T000000-spop"  # a name from before microseconds
    )
    newest = save_version(MostPopular().fit(data), tmp_path, {})
    assert latest_version(tmp_path) == newest
