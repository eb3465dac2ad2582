"""Assignment: the same variant for an id on every process and after a restart, the configured
shares, a new salt reshuffling; and the experiment file's checks."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from nextbest.experiments.assignment import assign, assignment_unit, draw
from nextbest.experiments.spec import ExperimentsError, load_experiments
from nextbest.models.store import save_version
from nextbest.recommend.placements import load_placements

IDS = [f"user:{k}" for k in range(100_000)]


def test_shares_hold_within_one_percent_over_100k_ids() -> None:
    shares = (0.5, 0.3, 0.2)
    counts = Counter(assign(unit, "salt-1", shares) for unit in IDS)
    for variant, share in enumerate(shares):
        assert abs(counts[variant] / len(IDS) - share) < 0.01


def test_another_process_gives_every_id_the_same_variant() -> None:
    """As a second worker, or the server after a restart: nothing but the id and the salt."""
    here = [assign(unit, "salt-1", (0.5, 0.5)) for unit in IDS[:2_000]]
    code = (
        "from nextbest.experiments.assignment import assign\n"
        "print(''.join(str(assign(f'user:{k}', 'salt-1', (0.5, 0.5))) for k in range(2000)))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout.strip()  # fmt: skip
    assert there == "".join(map(str, here))


def test_a_new_salt_reshuffles() -> None:
    before = [assign(unit, "salt-1", (0.5, 0.5)) for unit in IDS[:20_000]]
    after = [assign(unit, "salt-2", (0.5, 0.5)) for unit in IDS[:20_000]]
    moved = sum(a != b for a, b in zip(before, after, strict=True)) / len(before)
    assert 0.47 < moved < 0.53  # independent draws: half change sides
    assert 0.0 <= draw("user:1", "salt-1") < 1.0


def test_the_unit_is_the_user_when_signed_in() -> None:
    assert assignment_unit("s1", "u1") == "user:u1"
    assert assignment_unit("s1", None) == "session:s1"
    with pytest.raises(ValueError, match="session_id or a user_id"):
        assignment_unit(None, None)
    with pytest.raises(ValueError, match="sum to 1"):
        assign("user:1", "s", (0.5, 0.6))


GOOD = """
[experiments.home-test]
placement = "home"
salt = "h1"
start = 2026-12-07T00:00:00Z
end = 2026-12-21T00:00:00Z

[[experiments.home-test.variants]]
name = "control"
control = true
share = 0.5

[[experiments.home-test.variants]]
name = "treatment"
model = "VERSION"
share = 0.5
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    from event_tables import event_table
    from nextbest.data.sessions import Sessions
    from nextbest.models.popularity import MostPopular

    events = event_table([("s1", 1.0, "view", "a"), ("s1", 2.0, "view", "b")],
                         ("session_id", "timestamp", "type", "item_id"))  # fmt: skip
    model = MostPopular().fit(Sessions.from_events(events))
    save_version(model, tmp_path / "home", {"model": "pop"})
    return tmp_path / "home"


def write(tmp_path: Path, text: str, home: Path) -> Path:
    from nextbest.models.store import latest_version

    version = latest_version(home)
    assert version is not None
    path = tmp_path / "experiments.toml"
    path.write_text(text.replace("VERSION", version.name))
    return path


def test_a_good_file_loads(tmp_path: Path, home: Path) -> None:
    [experiment] = load_experiments(write(tmp_path, GOOD, home), load_placements(), home)
    assert experiment.placement == "home" and experiment.shares == (0.5, 0.5)
    assert experiment.running(experiment.start) and not experiment.running(experiment.start - 1)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("share = 0.5\n", "share = 0.4\n", "the shares sum to 0.9, not 1"),
        ('placement = "home"', 'placement = "checkout"', "placement: unknown placement"),
        ('model = "VERSION"', 'model = "20990101T000000-gone"', "model: no model version"),
        ("control = true\n", "", "exactly one variant must be the control"),
        ('salt = "h1"', 'salt = ""', "experiments.home-test.salt"),
        ("end = 2026-12-21", "end = 2026-12-01", "experiments.home-test.end: must be after"),
    ],
)
def test_a_bad_file_is_refused_with_the_key_named(
    tmp_path: Path, home: Path, old: str, new: str, problem: str
) -> None:
    # the last occurrence: the treatment's share, the second variant
    before, _, after = GOOD.rpartition(old)
    with pytest.raises(ExperimentsError, match=problem):
        load_experiments(write(tmp_path, before + new + after, home), load_placements(), home)


def test_overlapping_experiments_on_one_placement_are_refused(tmp_path: Path, home: Path) -> None:
    second = GOOD.replace("home-test", "home-other").replace(
        "start = 2026-12-07T00:00:00Z", "start = 2026-12-14T00:00:00Z"
    )
    with pytest.raises(ExperimentsError, match=r"home-other: overlaps experiments\.home-test"):
        load_experiments(write(tmp_path, GOOD + second, home), load_placements(), home)
    later = second.replace("start = 2026-12-14T00:00:00Z", "start = 2026-12-21T00:00:00Z")
    later = later.replace("end = 2026-12-21T00:00:00Z", "end = 2027-01-04T00:00:00Z")
    assert len(load_experiments(write(tmp_path, GOOD + later, home), load_placements(), home)) == 2


def test_a_variant_may_name_the_newest_version_of_a_model(tmp_path: Path, home: Path) -> None:
    text = GOOD.replace('model = "VERSION"', 'model = "latest:pop"')
    [experiment] = load_experiments(write(tmp_path, text, home), load_placements(), home)
    from nextbest.models.store import latest_version

    newest = latest_version(home)
    assert newest is not None and experiment.variants[1].model == newest.name
    missing = GOOD.replace('model = "VERSION"', 'model = "latest:gru4rec"')
    with pytest.raises(ExperimentsError, match=r"variants\[1\]\.model: no version of model "
                                               r"'gru4rec'.*of: pop"):  # fmt: skip
        load_experiments(write(tmp_path, missing, home), load_placements(), home)
