"""Experiments in the server: each variant answers with its own model, live state and
placements; the reply and the kept list name the variant; assignment holds across workers,
restarts and a login; the admin API refuses a definition that cannot run, and the running
experiments keep serving."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from serving_helpers import (
    ADMIN,
    N_ITEMS,
    READ,
    WRITE,
    MakeClient,
    TestClient,
    auth,
    item,
    recommend,
    send,
    started_clients,
    view,
)
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.experiments.assignment import assign
from nextbest.models.gru4rec import GRU4Rec
from nextbest.models.store import list_versions, save_version
from nextbest.serving.registry import version_tag
from nextbest.serving.state.records import decode_session

SALT = "home-test-1"


@pytest.fixture(scope="module")
def two_version_home(
    tmp_path_factory: pytest.TempPathFactory, model_home: Path, backwards_gru: GRU4Rec
) -> Path:
    """The forward GRU4Rec (the older version) and a backward one (the newest, answering)."""
    home = tmp_path_factory.mktemp("two-versions")
    shutil.copytree(model_home, home, dirs_exist_ok=True)
    save_version(backwards_gru, home, {"model": "gru4rec"})
    return home


@pytest.fixture
def home2(tmp_path: Path, two_version_home: Path) -> Path:
    folder = tmp_path / "home"
    shutil.copytree(two_version_home, folder)
    return folder


def forward_version(home: Path) -> str:
    return list_versions(home)[0].name


def definition(home: Path, **variant_b: Any) -> dict[str, Any]:
    """control: the answering (backward) model; forward: the older, forward one."""
    return {
        "experiments": {
            "home-test": {
                "placement": "home",
                "salt": SALT,
                "start": "2026-01-01T00:00:00Z",
                "variants": [
                    {"name": "control", "control": True, "share": 0.5},
                    {"name": "forward", "model": forward_version(home), "share": 0.5, **variant_b},
                ],
            }
        }
    }


def variant_of(unit: str) -> str:
    return ("control", "forward")[assign(unit, SALT, (0.5, 0.5))]


@pytest.fixture
def make(home2: Path) -> Any:
    with started_clients(home2) as make_client:
        yield make_client


def define(client: TestClient, body: dict[str, Any]) -> Any:
    return client.put("/v1/experiments", json=body, headers=auth(ADMIN))


def walk(client: TestClient, session: str, *items: int, **extra: Any) -> None:
    events = [view(uuid.uuid4().hex, session, item(j), **extra) for j in items]
    assert send(client, *events).status_code == 200


def test_each_variant_answers_with_its_own_model_and_names_itself(
    make: MakeClient, home2: Path
) -> None:
    client = make()
    reply = define(client, definition(home2))
    assert reply.status_code == 200, reply.text
    assert reply.json()["experiments"][0]["running"] is True
    seen = set()
    for k in range(16):
        session = f"s{k}"
        walk(client, session, 3, 4, 5)
        answer = recommend(client, session_id=session, placement="home", n=5).json()
        expected = variant_of(f"session:{session}")
        assert (answer["experiment"], answer["variant"]) == ("home-test", expected)
        # the session's next item by each model: forward 6 after 5, backward 4
        first = answer["items"][0]["item_id"]
        assert first == (item(6) if expected == "forward" else item(4))
        seen.add(expected)
    assert seen == {"control", "forward"}
    # another placement is not in the experiment
    other = recommend(client, session_id="s0", placement="product", item_id=item(5)).json()
    assert other["experiment"] is None and other["variant"] is None


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_pinned_version_keeps_its_own_live_state_and_never_rebuilds_on_requests(
    make: MakeClient, home2: Path, store: str, request: pytest.FixtureRequest
) -> None:
    settings: dict[str, Any] = {}
    if store == "redis":  # the variant's prefix under the server's own Redis prefix
        url, prefix = request.getfixturevalue("redis_prefix")
        settings = {"redis_url": url, "redis_prefix": prefix}
    client = make(**settings)
    define(client, definition(home2))
    services = client.app.state.services  # type: ignore[attr-defined]
    session = next(f"p{k}" for k in range(100) if variant_of(f"session:p{k}") == "forward")
    rebuilds: list[object] = []
    read = services.log.session_events
    services.log.session_events = lambda *a, **k: rebuilds.append(a) or read(*a, **k)
    for step in range(4):
        walk(client, session, step * 2, step * 2 + 1)  # a new session, then more of it
        answer = recommend(client, session_id=session, placement="home", n=3).json()
        assert answer["variant"] == "forward"
    assert rebuilds == []
    tag = version_tag(forward_version(home2)).hex()
    stored = services.store.get_many([f"v{tag}:s:{session}"])[0]
    record = decode_session(stored)
    assert record.model_tag == version_tag(forward_version(home2)) and record.n_events == 8


def test_the_served_list_names_its_variant(make: MakeClient, home2: Path) -> None:
    client = make()
    define(client, definition(home2))
    answer = recommend(client, session_id="kept-1", placement="home").json()
    kept = client.get(f"/v1/recommendations/{answer['recommendation_id']}", headers=auth(ADMIN))
    assert kept.status_code == 200
    assert (kept.json()["experiment"], kept.json()["variant"]) == (
        "home-test", variant_of("session:kept-1"),
    )  # fmt: skip


def test_the_same_variant_on_a_second_worker_and_after_a_restart(
    make: MakeClient, home2: Path
) -> None:
    first = make()
    define(first, definition(home2))
    second = make()  # another worker over the same folder: it reads the file the first wrote
    sessions = [f"w{k}" for k in range(20)]
    here = [recommend(first, session_id=s, placement="home").json()["variant"] for s in sessions]
    there = [recommend(second, session_id=s, placement="home").json()["variant"] for s in sessions]
    assert here == there == [variant_of(f"session:{s}") for s in sessions]
    with started_clients(home2) as restart:
        again = restart()
        after = [
            recommend(again, session_id=s, placement="home").json()["variant"] for s in sessions
        ]
    assert after == here


def test_an_anonymous_session_keeps_its_variant_after_a_login(
    make: MakeClient, home2: Path
) -> None:
    client = make()
    define(client, definition(home2))
    # a session and a user whose own draws differ
    session, user = next(
        (f"anon-{k}", f"u-{k}")
        for k in range(200)
        if variant_of(f"session:anon-{k}") != variant_of(f"user:u-{k}")
    )
    walk(client, session, 1, 2)
    before = recommend(client, session_id=session, placement="home").json()["variant"]
    login = client.post(
        "/v1/identify", json={"session_id": session, "user_id": user}, headers=auth(WRITE)
    )
    assert login.status_code == 200
    walk(client, session, 3, user_id=user)  # the SDK names the user on events after a login
    after = recommend(client, session_id=session, user_id=user, placement="home").json()
    assert before == after["variant"] == variant_of(f"session:{session}")
    # the user's next session, signed in from its first event, is the user's
    walk(client, f"{session}-next", 7, user_id=user)
    later = recommend(client, session_id=f"{session}-next", user_id=user, placement="home").json()
    assert later["variant"] == variant_of(f"user:{user}")


def test_a_variant_serves_its_own_placements(make: MakeClient, home2: Path, tmp_path: Path) -> None:
    client = make()
    own = tmp_path / "popular-home.toml"
    own.write_text('[placements.home]\ngenerators = [{ source = "popular", k = 30 }]\n')
    assert define(client, definition(home2, placements=str(own))).status_code == 200
    for k in range(3):
        walk(client, f"warm-{k}", 1, 2, 3)
    client.app.state.services.trends.refresh()  # type: ignore[attr-defined]
    firsts = {}
    for variant in ("control", "forward"):
        session = next(f"q{k}" for k in range(100) if variant_of(f"session:q{k}") == variant)
        walk(client, session, 10, 11)
        answer = recommend(client, session_id=session, placement="home").json()
        assert answer["variant"] == variant
        firsts[variant] = answer["items"][0]["source"]
    # the shipped home shows the session's next items first; the variant's, popular ones
    assert firsts == {"control": "gru4rec", "forward": "popularity"}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda d: d["variants"][1].update(share=0.6), "experiments.home-test.variants",
         "sum to 1.1"),
        (lambda d: d.update(placement="checkout"), "experiments.home-test.placement",
         "unknown placement 'checkout'"),
        (lambda d: d["variants"][1].update(model="no-such-version"),
         "experiments.home-test.variants[1].model", "no-such-version"),
        (lambda d: d["variants"][0].update(control=False), "experiments.home-test.variants",
         "exactly one variant must be the control"),
    ],
)  # fmt: skip
def test_a_definition_that_cannot_run_is_refused_and_the_running_one_stays(
    make: MakeClient, home2: Path, change: Any, field: str, words: str
) -> None:
    client = make()
    assert define(client, definition(home2)).status_code == 200
    file = client.app.state.services.experiments.path  # type: ignore[attr-defined]
    written = file.read_text()
    bad = definition(home2)
    change(bad["experiments"]["home-test"])
    reply = define(client, bad)
    assert reply.status_code == 422
    detail = reply.json()["detail"][0]
    assert detail["field"] == field and words in detail["message"]
    assert file.read_text() == written  # nothing written
    assert recommend(client, session_id="still", placement="home").json()["variant"] in (
        "control", "forward",
    )  # fmt: skip


def test_overlapping_experiments_on_one_placement_are_refused(
    make: MakeClient, home2: Path
) -> None:
    client = make()
    body = definition(home2)
    body["experiments"]["second"] = {**body["experiments"]["home-test"], "salt": "other"}
    reply = define(client, body)
    assert reply.status_code == 422
    assert "overlaps experiments.home-test" in reply.json()["detail"][0]["message"]
    assert reply.json()["detail"][0]["field"] == "experiments.second"


def test_a_bad_file_on_disk_is_refused_while_the_running_experiments_keep_serving(
    make: MakeClient, home2: Path
) -> None:
    client = make()
    define(client, definition(home2))
    services = client.app.state.services  # type: ignore[attr-defined]
    services.experiments.path.write_text(
        services.experiments.path.read_text().replace("share = 0.5", "share = 0.7", 1)
    )
    reload = client.post("/v1/experiments/reload", headers=auth(ADMIN))
    assert reload.status_code == 422 and "sum to 1.2" in reload.json()["detail"][0]["message"]
    assert services.experiments.refresh() is False  # the refresher: logged, kept
    listed = client.get("/v1/experiments", headers=auth(ADMIN)).json()
    assert listed["error"] and "sum to 1.2" in listed["error"]
    assert [e["name"] for e in listed["experiments"]] == ["home-test"]
    assert recommend(client, session_id="on", placement="home").json()["experiment"] == "home-test"


def test_the_experiments_api_takes_the_admin_key_only(make: MakeClient, home2: Path) -> None:
    client = make()
    assert client.get("/v1/experiments", headers=auth(WRITE)).status_code == 403
    assert define_with(client, WRITE, definition(home2)).status_code == 403
    assert client.get("/v1/experiments").status_code == 401


def define_with(client: TestClient, key: str, body: dict[str, Any]) -> Any:
    return client.put("/v1/experiments", json=body, headers=auth(key))


def test_an_experiment_outside_its_window_does_not_run(make: MakeClient, home2: Path) -> None:
    client = make()
    body = definition(home2)
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    body["experiments"]["home-test"]["start"] = future
    assert define(client, body).json()["experiments"][0]["running"] is False
    assert recommend(client, session_id="early", placement="home").json()["variant"] is None


def test_the_report_attributes_outcomes_to_each_variant(make: MakeClient, home2: Path) -> None:
    shop_and_report(make, home2)


def shop_and_report(make: MakeClient, home2: Path) -> dict[str, Any]:
    """12 shoppers, a third of whom click and buy; the report must count each for its
    variant."""
    client = make()
    define(client, definition(home2))
    expected: dict[str, dict[str, float]] = {
        v: {"users": 0, "impressions": 0, "clicks": 0, "purchases": 0, "revenue": 0}
        for v in ("control", "forward")
    }
    for k in range(12):
        session = f"r{k}"
        walk(client, session, k % N_ITEMS)
        answer = recommend(client, session_id=session, placement="home", n=4).json()
        counts = expected[answer["variant"]]
        counts["users"] += 1
        counts["impressions"] += 1
        if k % 3 == 0:  # a click on the second item, then its purchase by the id
            shown = answer["items"][1]["item_id"]
            rid = answer["recommendation_id"]
            click = view(uuid.uuid4().hex, session, shown, recommendation_id=rid)
            buy = {**view(uuid.uuid4().hex, session, shown), "type": "purchase", "value": 10.0 + k}
            assert send(client, click, buy).status_code == 200
            counts["clicks"] += 1
            counts["purchases"] += 1
            counts["revenue"] += 10.0 + k  # within the window after its impression
    reply = client.get("/v1/experiments/home-test/report", headers=auth(ADMIN))
    assert reply.status_code == 200, reply.text
    report = reply.json()
    for variant, counts in expected.items():
        got = report["totals"][variant]
        assert {m: got[m] for m in counts} == counts
    metrics = {(r["metric"], r["variant"]) for r in report["results"]}
    assert metrics == {(m, "forward") for m in ("click-through", "conversion", "revenue per user")}
    assert report["timeline"] and report["timeline"][-1]["totals"] == report["totals"]
    assert client.get("/v1/experiments/nope/report", headers=auth(ADMIN)).status_code == 404
    return report  # type: ignore[no-any-return]


def test_the_cli_report_reads_the_servers_log_and_agrees_with_the_api(
    make: MakeClient, home2: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    report = shop_and_report(make, home2)
    client = make()
    client.app.state.services.served.flush()  # type: ignore[attr-defined]
    monkeypatch.setenv("NEXTBEST_HOME", str(home2))
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "outcomes.parquet"
    result = CliRunner().invoke(
        app, ["experiments", "report", "home-test", "--out", str(out)], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    for variant, totals in report["totals"].items():
        assert f"{variant}: {totals['users']:,.0f} shoppers" in result.output
    assert "click-through" in result.output and "verdict" in result.output
    outcomes = pl.read_parquet(out)
    assert outcomes.height == sum(t["users"] for t in report["totals"].values())
    unknown = CliRunner().invoke(app, ["experiments", "report", "nope"], terminal_width=200)
    assert unknown.exit_code == 2 and "no experiment 'nope'" in unknown.output


def test_a_version_that_cannot_be_loaded_is_refused_before_the_file_is_written(
    make: MakeClient, home2: Path
) -> None:
    client = make()
    assert define(client, definition(home2)).status_code == 200
    file = client.app.state.services.experiments.path  # type: ignore[attr-defined]
    written = file.read_text()
    broken = home2 / "models" / "20260101T000000.000000-broken"
    shutil.copytree(list_versions(home2)[0], broken)
    (broken / "model.json").write_text('{"model": "no-such-model"}')
    body = definition(home2)
    body["experiments"]["home-test"]["variants"][1]["model"] = broken.name
    reply = define(client, body)
    assert reply.status_code == 422 and "cannot be loaded" in reply.json()["detail"][0]["message"]
    assert file.read_text() == written
    assert recommend(client, session_id="still", placement="home").json()["experiment"]


def test_a_variant_of_the_answering_version_reads_the_session_once(
    make: MakeClient, home2: Path
) -> None:
    """The assignment reads the session's record; the list is made from that same record."""
    client = make()
    define(client, definition(home2))
    services = client.app.state.services  # type: ignore[attr-defined]
    session = next(f"o{k}" for k in range(100) if variant_of(f"session:o{k}") == "control")
    walk(client, session, 4, 5)
    reads: list[list[str]] = []
    read = services.store.get_many
    services.store.get_many = lambda keys: reads.append(list(keys)) or read(keys)
    assert recommend(client, session_id=session, placement="home").json()["variant"] == "control"
    assert sum(f"s:{session}" in keys for keys in reads) == 1


def test_a_report_is_kept_for_a_while_then_computed_again(
    make: MakeClient, home2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nextbest.serving.routes import experiments as experiments_route

    client = make()
    define(client, definition(home2))

    def lists() -> float:
        reply = client.get("/v1/experiments/home-test/report", headers=auth(ADMIN)).json()
        return float(sum(t["impressions"] for t in reply["totals"].values()))

    recommend(client, session_id="k1", placement="home")
    assert lists() == 1
    recommend(client, session_id="k2", placement="home")
    assert lists() == 1  # the same report, within REPORT_SECONDS
    monkeypatch.setattr(experiments_route, "REPORT_SECONDS", 0.0)
    assert lists() == 2  # computed again


def test_stopping_an_experiment_ends_it_now_and_keeps_its_report(
    make: MakeClient, home2: Path
) -> None:
    client = make()
    define(client, definition(home2))
    assert recommend(client, session_id="st-1", placement="home").json()["experiment"]
    stopped = client.post("/v1/experiments/home-test/stop", headers=auth(ADMIN))
    assert stopped.status_code == 200, stopped.text
    [experiment] = stopped.json()["experiments"]
    assert experiment["running"] is False and experiment["end"] <= time.time()
    assert recommend(client, session_id="st-2", placement="home").json()["experiment"] is None
    report = client.get("/v1/experiments/home-test/report", headers=auth(ADMIN)).json()
    assert sum(t["impressions"] for t in report["totals"].values()) == 1  # its list stays
    file = client.app.state.services.experiments.path  # type: ignore[attr-defined]
    assert "end = " in file.read_text()  # every worker reads the end from the file
    missing = client.post("/v1/experiments/nope/stop", headers=auth(ADMIN))
    assert missing.status_code == 404 and "nope" in missing.json()["detail"][0]["message"]
    assert client.post("/v1/experiments/home-test/stop", headers=auth(READ)).status_code == 403
