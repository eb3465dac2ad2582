"""A two-stage version served: several generators' states per session, the learned ranker,
its explanations, and the FTRL ranker learning online from the outcomes of its lists."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_helpers import (
    ADMIN,
    CLASSES,
    N_ITEMS,
    READ,
    TestClient,
    auth,
    cyclic_sessions,
    item,
    send,
    started_clients,
    stop,
    view,
)

from nextbest.models.store import save_version
from nextbest.serving.state.codec import codec_for
from nextbest.twostage.model import ONLINE_DIR, PipelineModel, train_pipeline
from nextbest.twostage.protocol import GeneratorSpec, PipelineSpec

SPEC = PipelineSpec(
    generators=(GeneratorSpec("covisit", 10), GeneratorSpec("pop", N_ITEMS)),
    ranker="ftrl",
    ranker_share=0.3,
)


@pytest.fixture(scope="module")
def pipeline_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, _ = train_pipeline(SPEC, cyclic_sessions())
    home = tmp_path_factory.mktemp("pipeline-home")
    save_version(model, home, {"model": "pipeline"})
    return home


@pytest.fixture
def start(tmp_path: Path, pipeline_home: Path) -> Iterator[Callable[..., TestClient]]:
    folder = tmp_path / "home"
    shutil.copytree(pipeline_home, folder)
    with started_clients(folder, {**CLASSES, "pipeline": PipelineModel}) as make:
        yield make


def version_folder(client: TestClient) -> Path:
    models = client.get("/v1/models", headers=auth(ADMIN)).json()
    home: Path = client.app.state.services.settings.home  # type: ignore[attr-defined]
    return home / "models" / models["current"]


def ranker_of(client: TestClient) -> Any:
    return client.app.state.services.model.model.ranker  # type: ignore[attr-defined]


def next_list(client: TestClient, session: str, **params: Any) -> dict[str, Any]:
    reply = client.get(
        "/v1/recommendations",
        params={"session_id": session, "placement": "next", "n": 10, **params},
        headers=auth(READ),
    )
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


def position(reply: dict[str, Any], item_id: str) -> int:
    ids = [i["item_id"] for i in reply["items"]]
    return ids.index(item_id) if item_id in ids else len(ids)


def test_the_pipelines_state_is_every_generators_state_as_one_row(pipeline_home: Path) -> None:
    folder = next((pipeline_home / "models").iterdir())
    model = PipelineModel.load(folder)
    codec = codec_for(model)
    state = model.initial_state(2)
    state = model.step(state, np.array([3, 7]), np.array([1.0, 2.0]))
    rows = codec.split(state)
    assert len(rows) == 2
    back = codec.join(rows[1:])
    # the second session's scores, member by member, survive the bytes
    for member, before, after in zip(model.members, state.parts, back.parts, strict=True):
        want = member.score(member.select(before, np.array([1])))
        assert np.allclose(member.score(after), want)
    assert model.ranker is not None and model.ranker_error is None


def test_next_is_ranked_by_the_learned_ranker_over_every_generator(
    start: Callable[..., TestClient],
) -> None:
    client = start()
    assert send(client, view("e1", "s1", item(3)), view("e2", "s1", item(4))).status_code == 200
    reply = next_list(client, "s1", explain="true")
    assert reply["items"][0]["item_id"] == item(5)  # the walk goes on: after 4 comes 5
    sources = {i["source"] for i in reply["items"]}
    assert sources <= {"covisit", "pop"} and "pop" in sources
    reasons = {i["source"]: i["reason"] for i in reply["items"]}  # a text a shopper can read
    assert reasons["pop"] == "popular" and reasons["covisit"] == f"often viewed after {item(4)}"
    because = reply["items"][0]["because"]
    assert because and len(because) == 3
    assert all(isinstance(v, float) for v in because.values())
    ranker = client.get("/v1/ranker", headers=auth(ADMIN)).json()
    assert ranker["ranker"] == "ftrl" and ranker["state"] == "ranker"
    metrics = client.get("/metrics").text
    assert 'nextbest_ranked_lists_total{outcome="learned"}' in metrics


def teach(client: TestClient, rounds: int, planted: int) -> None:
    """Sessions after item j whose shoppers click item j + `planted` on the served list."""
    for k in range(rounds):
        j = k % N_ITEMS
        session = f"teach-{k}"
        assert send(client, view(f"t{k}", session, item(j))).status_code == 200
        reply = next_list(client, session, n=N_ITEMS)
        clicked = item(j + planted)
        assert any(i["item_id"] == clicked for i in reply["items"])
        event = view(f"c{k}", session, clicked) | {
            "type": "click",
            "recommendation_id": reply["recommendation_id"],
        }
        assert send(client, event).status_code == 200
    services = client.app.state.services  # type: ignore[attr-defined]
    assert services.online.flush()


def planted_position(client: TestClient, session: str, j: int, planted: int) -> int:
    send(client, view(f"probe-{session}", session, item(j)))
    return position(next_list(client, session, n=N_ITEMS), item(j + planted))


def test_outcomes_move_the_ftrl_ranking_a_restart_keeps_it_reset_forgets_it(
    start: Callable[..., TestClient],
) -> None:
    planted = 7  # never the next item of the walk: only the clicks can put it first
    client = start(online_save_seconds=3600.0)
    before = planted_position(client, "probe-a", 11, planted)
    assert before > 0
    teach(client, 240, planted)
    after = planted_position(client, "probe-b", 11, planted)
    assert after < before and after == 0, (before, after)
    metrics = client.get("/metrics").text
    assert 'nextbest_ranker_online_total{outcome="learned"} 240.0' in metrics
    folder = version_folder(client)
    learned = ranker_of(client).zn.copy()
    stop(client)  # saves the learned state at shutdown
    assert (folder / ONLINE_DIR).is_dir()

    again = start()  # a restart loads the learned state
    assert again.get("/v1/ranker", headers=auth(ADMIN)).json()["state"] == ONLINE_DIR
    assert np.array_equal(ranker_of(again).zn, learned)
    # (the live counts now hold the teaching sessions, so the list is not quite the same)
    assert planted_position(again, "probe-c", 11, planted) < before

    reset = again.post("/v1/ranker/reset", headers=auth(ADMIN))
    assert reset.status_code == 200 and reset.json()["state"] == "ranker"
    assert not (folder / ONLINE_DIR).exists()
    trained = PipelineModel.load(folder).ranker
    assert trained is not None and np.array_equal(ranker_of(again).zn, trained.zn)  # type: ignore[attr-defined]
    assert not np.array_equal(trained.zn, learned)  # type: ignore[attr-defined]
    assert planted_position(again, "probe-d", 11, planted) > 0


def test_a_corrupt_ranker_state_is_refused_and_the_generators_order_serves(
    start: Callable[..., TestClient],
) -> None:
    client = start()
    teach(client, 30, 7)
    folder = version_folder(client)
    stop(client)
    state = folder / ONLINE_DIR / "ftrl_state.npz"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    state.write_bytes(bytes(data))

    again = start()
    ranker = again.get("/v1/ranker", headers=auth(ADMIN)).json()
    assert ranker["state"] == "refused"
    assert "ftrl_state.npz" in ranker["error"] and "refused" in ranker["error"]
    assert send(again, view("x1", "s9", item(3)), view("x2", "s9", item(4))).status_code == 200
    reply = next_list(again, "s9")
    assert reply["items"][0]["item_id"] == item(5)  # covisit's first, by rank fusion
    metrics = again.get("/metrics").text
    assert "nextbest_ranker_refused 1.0" in metrics
    assert 'nextbest_ranked_lists_total{outcome="fallback"}' in metrics
    # resetting goes back to the trained ranker, which is intact
    assert again.post("/v1/ranker/reset", headers=auth(ADMIN)).json()["state"] == "ranker"
    assert "nextbest_ranker_refused 0.0" in again.get("/metrics").text


def test_a_reset_on_one_worker_resets_the_others(start: Callable[..., TestClient]) -> None:
    import time

    first, second = start(online_save_seconds=0.1), start(online_save_seconds=0.1)
    teach(first, 30, 7)
    folder = version_folder(first)
    deadline = time.monotonic() + 10
    while not (folder / ONLINE_DIR).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (folder / ONLINE_DIR).exists()  # the first worker saved what it learned
    reset = second.post("/v1/ranker/reset", headers=auth(ADMIN))
    assert reset.status_code == 200 and reset.json()["state"] == "ranker"
    deadline = time.monotonic() + 10
    while ranker_of(first).rows_seen != ranker_of(second).rows_seen and time.monotonic() < deadline:
        time.sleep(0.1)
    assert np.array_equal(ranker_of(first).zn, ranker_of(second).zn)  # the first followed
    time.sleep(0.5)  # several save intervals: the forgotten state is not saved again
    assert not (folder / ONLINE_DIR).exists()


def test_the_pipelines_sessions_live_in_redis_across_workers(
    start: Callable[..., TestClient], redis_prefix: tuple[str, str]
) -> None:
    """Two apps (two workers) sharing Redis: the session the first stepped (every generator's
    state in one row) is the one the second ranks from."""
    url, prefix = redis_prefix
    first = start(redis_url=url, redis_prefix=prefix)
    second = start(redis_url=url, redis_prefix=prefix)
    assert send(first, view("r1", "sr", item(20)), view("r2", "sr", item(21))).status_code == 200
    reply = next_list(second, "sr")
    assert reply["items"][0]["item_id"] == item(22)
    assert next_list(first, "sr")["items"] == reply["items"]
    # the row in Redis holds both generators' states after the two events
    import redis

    from nextbest.serving.state.records import decode_session

    client = redis.Redis.from_url(url)
    stored = client.get(f"{prefix}s:sr")
    client.close()
    assert stored is not None
    record = decode_session(stored)
    assert record.n_events == 2 and record.last_item == item(21)
    model = first.app.state.services.model  # type: ignore[attr-defined]
    assert len(model.codec.join([record.state]).parts) == 2


def test_a_pipeline_version_orders_search_results_for_the_session(
    start: Callable[..., TestClient],
) -> None:
    """The demo serves the two-stage pipeline: its search box must work over it too."""
    client = start()
    items = [{"item_id": item(j), "title": f"Gadget {j}"} for j in range(N_ITEMS)]
    assert client.put("/v1/items", json={"items": items}, headers=auth(ADMIN)).status_code == 200
    send(client, view("e1", "s1", item(3)), view("e2", "s1", item(4)))
    reply = client.get(
        "/v1/search", params={"q": "gadget", "session_id": "s1", "n": 5}, headers=auth(READ)
    )
    assert reply.status_code == 200, reply.text
    found = [entry["item_id"] for entry in reply.json()["items"]]
    assert len(found) == 5 and found[0] == item(5)  # the walk goes on: after 4 comes 5
