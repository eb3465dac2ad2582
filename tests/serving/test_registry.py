"""The model registry: the newest version answers; a new one takes over without a pause."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import (
    ADMIN,
    CLASSES,
    N_ITEMS,
    auth,
    cyclic_sessions,
    item,
    recommend,
    send,
    top,
    view,
)

from conftest import MakeClient
from nextbest.data.sessions import Sessions
from nextbest.models.gru4rec import GRU4Rec, GRU4RecConfig
from nextbest.models.store import save_version
from nextbest.serving.registry import ModelRegistry


@pytest.fixture(scope="module")
def backwards_gru() -> GRU4Rec:
    """A GRU4Rec that learned the other direction: after item j comes j - 1."""
    forward = cyclic_sessions(seed=1)
    sessions = Sessions(**{**forward.__dict__, "items": (N_ITEMS - forward.items) % N_ITEMS})
    config = GRU4RecConfig(layers=(32,), n_epochs=3, batch_size=16, n_sample=0, learning_rate=0.1)
    return GRU4Rec(config).fit(sessions)


def test_a_new_version_takes_over_without_dropping_requests(
    make_client: MakeClient, home: Path, backwards_gru: GRU4Rec
) -> None:
    client = make_client()
    send(client, view("e1", "s1", item(10)))
    first = recommend(client, session_id="s1", n=3).json()
    assert first["items"][0]["item_id"] == item(11)
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            reply = recommend(client, session_id="s1", n=3)
            statuses.append(reply.status_code)
            versions.add(reply.json()["model_version"])

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    new = save_version(backwards_gru, home, {"model": "gru4rec"})
    reload = client.post("/v1/models/reload", headers=auth(ADMIN)).json()
    stop.set()
    for thread in threads:
        thread.join()
    assert reload["switched"] and reload["current"] == new.name
    assert statuses and set(statuses) == {200}
    assert versions <= {first["model_version"], new.name}
    # the session's state is rebuilt for the new model from the log: now 10 -> 9
    after = recommend(client, session_id="s1", n=3).json()
    assert after["model_version"] == new.name and after["items"][0]["item_id"] == item(9)
    listing = client.get("/v1/models", headers=auth(ADMIN)).json()
    assert listing["current"] == new.name and len(listing["versions"]) == 2


def test_the_server_polls_for_new_versions(
    make_client: MakeClient, home: Path, backwards_gru: GRU4Rec
) -> None:
    client = make_client(refresh_seconds=0.05, model_poll_seconds=0.05)
    send(client, view("e1", "s1", item(3)))
    new = save_version(backwards_gru, home, {"model": "gru4rec"})
    for _ in range(100):
        if recommend(client, session_id="s1", n=1).json()["model_version"] == new.name:
            break
        threading.Event().wait(0.05)
    assert top(client, session_id="s1", n=1) == item(2)


def test_a_broken_newest_version_is_skipped_and_the_current_one_kept(home: Path) -> None:
    registry = ModelRegistry(home, CLASSES)
    current = registry.refresh()
    assert current is not None and registry.refresh() is None
    broken = home / "models" / "99990101T000000-mystery"
    broken.mkdir()
    (broken / "model.json").write_text(json.dumps({"model": "mystery", "config": {}}))
    with pytest.raises(ValueError, match=r"mystery.*cannot load"):
        registry.refresh()
    assert registry.current is current
    assert registry.refresh() is None  # tried once, not again every poll


def test_serving_before_any_model_exists(make_client: MakeClient, home: Path) -> None:
    for folder in (home / "models").iterdir():
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    client = make_client()
    assert client.get("/healthz").json()["model_version"] is None
    client.put(
        "/v1/items", json={"items": [{"item_id": f"n{k}"} for k in range(5)]}, headers=auth(ADMIN)
    )
    for k in range(3):
        send(client, view(f"e{k}", f"s{k}", "n3"))
    client.app.state.services.trends.refresh()  # type: ignore[attr-defined]
    items = recommend(client, session_id="s9", n=5).json()["items"]
    assert items[0]["item_id"] == "n3" and len(items) == 5
    assert {e["source"] for e in items} == {"popularity"}
    assert np.all(np.diff([e["score"] for e in items]) <= 0)
