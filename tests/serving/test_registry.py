"""The model registry: the newest version answers; a new one takes over without a pause."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_helpers import (
    ADMIN,
    CLASSES,
    MakeClient,
    auth,
    item,
    recommend,
    send,
    top,
    view,
)

from nextbest.models.gru4rec import GRU4Rec
from nextbest.models.store import save_version
from nextbest.serving import registry as registry_module
from nextbest.serving.registry import LoadedModel, ModelRegistry


@dataclass(frozen=True)
class Request:
    started: float
    ended: float
    status: int
    version: str | None
    first: str | None  # the first item answered


def test_a_new_version_takes_over_without_dropping_requests(
    make_client: MakeClient, home: Path, backwards_gru: GRU4Rec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads request all along; loading the new version is made to take 0.3 s (a
    full-size model takes seconds). Requests in flight when the switch begins, and those
    made while the new version loads, are answered by the old version; none fails; every
    request made after the switch is answered by the new version (a session's state
    rebuilt for it), and no thread sees the old version again once it saw the new."""
    client = make_client()
    send(client, view("e1", "s1", item(10)))
    first = recommend(client, session_id="s1", n=3).json()
    old = first["model_version"]
    assert first["items"][0]["item_id"] == item(11)

    lock = threading.Lock()
    in_flight = 0
    moments: dict[str, float] = {}
    real_load = registry_module.load_model

    def slow_load(*args: Any, **kwargs: Any) -> LoadedModel:
        while True:  # begin while a request is in flight (it cannot end while we look)
            with lock:
                if in_flight:
                    moments["began"] = time.monotonic()
                    break
            time.sleep(0.0002)
        loaded = real_load(*args, **kwargs)
        time.sleep(0.3)
        moments["loaded"] = time.monotonic()  # the reference switches right after this
        return loaded

    monkeypatch.setattr(registry_module, "load_model", slow_load)
    done: list[list[Request]] = [[], []]
    stop = threading.Event()

    def hammer(out: list[Request]) -> None:
        nonlocal in_flight
        while not stop.is_set():
            with lock:
                in_flight += 1
                started = time.monotonic()
            reply = recommend(client, session_id="s1", n=3)
            with lock:
                ended = time.monotonic()
                in_flight -= 1
            body = reply.json() if reply.status_code == 200 else {}
            items = body.get("items") or [{}]
            out.append(
                Request(started, ended, reply.status_code, body.get("model_version"),
                        items[0].get("item_id"))
            )  # fmt: skip

    def wait_for(count: int, after: float) -> None:
        deadline = time.monotonic() + 30
        while any(sum(r.started > after for r in list(out)) < count for out in done):
            assert time.monotonic() < deadline, "the requesting threads stalled"
            time.sleep(0.005)

    threads = [threading.Thread(target=hammer, args=(out,)) for out in done]
    for thread in threads:
        thread.start()
    try:
        wait_for(3, after=0.0)
        new = save_version(backwards_gru, home, {"model": "gru4rec"})
        reload = client.post("/v1/models/reload", headers=auth(ADMIN)).json()
        switched = time.monotonic()
        wait_for(3, after=switched)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert reload["switched"] and reload["current"] == new.name
    requests = [r for out in done for r in out]
    assert {r.status for r in requests} == {200}  # none failed
    began, loaded = moments["began"], moments["loaded"]
    assert any(r.started < began < r.ended for r in requests)  # in flight as it began
    during = [r for r in requests if began < r.started and r.ended < loaded]
    assert len(during) >= 5  # requests kept being answered while the new version loaded...
    assert {(r.version, r.first) for r in during} == {(old, item(11))}  # ...by the old one
    after = [r for r in requests if r.started > switched]
    assert len(after) >= 6
    # the session's state is rebuilt for the new model from the log: now 10 -> 9
    assert {(r.version, r.first) for r in after} == {(new.name, item(9))}
    for out in done:  # in each thread: the old version, then the new one, never back
        versions = [r.version == new.name for r in out]
        assert versions == sorted(versions)
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


def test_a_pinned_version_stays_loaded_as_newer_ones_come_and_go(
    home: Path, backwards_gru: GRU4Rec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An experiment pins the answering version; a newer one takes over, the pinned one is
    the same object still, never loaded again (a load on a request's path would stall it)."""
    loads: list[str] = []
    real = registry_module.load_model
    monkeypatch.setattr(
        registry_module, "load_model",
        lambda folder, *a, **k: loads.append(folder.name) or real(folder, *a, **k),
    )  # fmt: skip
    registry = ModelRegistry(home)
    first = registry.refresh()
    assert first is not None and registry.pinned(first.version) is first
    save_version(backwards_gru, home, {"model": "gru4rec"})
    newer = registry.refresh()
    assert newer is not None and registry.current is newer and newer is not first
    assert registry.pinned(first.version) is first  # still loaded, not again
    assert loads == [first.version, newer.version]
    assert registry.loaded() == [newer, first]
    registry.unpin(set())
    assert registry.loaded() == [newer]
