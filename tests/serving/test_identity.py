"""Users in serving: login stitching, and HGRU4Rec's user state moving once per finished session.

The model is a small HGRU4Rec trained on planted users: every session opens on the neutral
item p00, then even users browse p01-p10 and odd users p11-p20. Runs against both state
stores (in-process and Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_helpers import ADMIN, READ, WRITE, TestClient, auth, settings_for

from nextbest.data.sessions import Sessions
from nextbest.events.log import EventLog
from nextbest.events.schema import Event
from nextbest.models.hgru4rec import HGRU4Rec, HGRU4RecConfig
from nextbest.models.store import latest_version, save_version
from nextbest.serving.app import create_app
from nextbest.serving.live import USER_KEY, LiveState, OwnedByAnother
from nextbest.serving.registry import LoadedModel, load_model
from nextbest.serving.state import StateStore, open_state_store
from nextbest.serving.state.records import decode_user

N_USERS, N_ITEMS = 40, 21
CLASSES: dict[str, Any] = {HGRU4Rec.name: HGRU4Rec}


def pid(j: int) -> str:
    return f"p{j:02d}"


def planted_sessions(n_sessions: int = 6, seed: int = 0) -> Sessions:
    rng = np.random.default_rng(seed)
    walks, users = [], []
    for _ in range(n_sessions):
        for u in range(N_USERS):
            group = 1 + 10 * (u % 2)
            walks.append([0, *rng.integers(group, group + 10, size=3).tolist()])
            users.append(f"u{u}")
    items = np.concatenate(walks).astype(np.int64)
    return Sessions(
        item_ids=np.array([pid(j) for j in range(N_ITEMS)], dtype=object),
        session_ids=np.array([f"train-{k}" for k in range(len(walks))], dtype=object),
        offsets=np.concatenate([[0], np.cumsum([len(w) for w in walks])]),
        items=items,
        times=np.arange(len(items), dtype=np.float64),
        user_ids=np.array(users, dtype=object),
    )


@pytest.fixture(scope="module")
def hgru_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = HGRU4RecConfig(
        layers=(16,), user_layer=16, batch_size=8, n_sample=0, n_epochs=10, learning_rate=0.1
    )
    home = tmp_path_factory.mktemp("hgru-home")
    save_version(HGRU4Rec(config).fit(planted_sessions()), home, {"model": "hgru4rec"})
    return home


@pytest.fixture
def model(hgru_home: Path) -> LoadedModel:
    folder = latest_version(hgru_home)
    assert folder is not None
    return load_model(folder, CLASSES)


def ev(event_id: str, session: str, j: int, kind: str = "view", **extra: Any) -> Event:
    return Event(
        event_id=event_id, type=kind, session_id=session, item_id=pid(j), timestamp=1.0, **extra
    )


def log_and_apply(live: LiveState, model: LoadedModel, events: list[Event]) -> None:
    seqs = live.log.append(events).seqs
    live.apply(model, [e for e, s in zip(events, seqs, strict=True) if s], [s for s in seqs if s])


def user_row(live: LiveState, user: str) -> tuple[bytes, str | None]:
    record = decode_user(live.store.get_many([USER_KEY + user])[0] or b"")
    assert record is not None
    return record.state, record.open_session


def replay(model: LoadedModel, start: bytes, items: list[int]) -> Any:
    state = model.codec.join([start])
    for j in items:
        state = model.model.step(state, np.array([j]), np.array([1.0]))
    return state


def test_the_user_state_moves_only_when_a_session_of_the_user_ends(
    model: LoadedModel, store: StateStore, log: EventLog
) -> None:
    live = LiveState(store, log)
    hgru = model.model
    assert isinstance(hgru, HGRU4Rec)
    log_and_apply(live, model, [ev("a1", "A", 0, user_id="u0")])
    first = user_row(live, "u0")
    assert first == (model.initial_row, "A")  # a first session starts from zeros
    log_and_apply(live, model, [ev("a2", "A", 3), ev("a3", "A", 5, user_id="u0")])
    assert user_row(live, "u0") == first  # events inside a session leave the user alone
    # session B of the same user starts: A ends, and the user GRU takes A's final state
    log_and_apply(live, model, [ev("b1", "B", 0, user_id="u0")])
    after_a = hgru.end_session(replay(model, model.initial_row, [0, 3, 5]))
    start, open_session = user_row(live, "u0")
    assert open_session == "B"
    assert np.allclose(model.codec.join([start]).user, after_a.user, atol=1e-6)
    assert int(model.codec.join([start]).sessions[0]) == 1
    expected = hgru.step(after_a, np.array([0]), np.array([1.0]))
    got = live.state_of(model, live.session(model, "B"))
    assert np.allclose(got.session, expected.session, atol=1e-6)  # type: ignore[attr-defined]
    log_and_apply(live, model, [ev("b2", "B", 4)])
    assert user_row(live, "u0")[0] == start  # and again: nothing moves within B


def test_login_stitches_the_session_to_the_user_exactly_once(
    model: LoadedModel, store: StateStore, log: EventLog
) -> None:
    live = LiveState(store, log)
    hgru = model.model
    assert isinstance(hgru, HGRU4Rec)
    log_and_apply(live, model, [ev("a1", "A", 0, user_id="u0"), ev("a2", "A", 2)])
    # an anonymous session: a view and a purchase, then the login
    log_and_apply(live, model, [ev("s1", "S", 0), ev("s2", "S", 7, kind="purchase")])
    assert live.session(model, "S").user_id is None
    record = live.identify(model, "S", "u0")
    assert record.user_id == "u0" and record.n_events == 2
    assert log.user_purchases(["u0"], last=10) == {"u0": [pid(7)]}
    assert pid(7) in live.user("u0").bought
    # the session continues from the user's state: A closed, then S's events replayed
    expected = replay(
        model,
        model.codec.split(hgru.end_session(replay(model, model.initial_row, [0, 2])))[0],
        [0, 7],
    )
    assert np.allclose(live.state_of(model, record).session, expected.session, atol=1e-6)  # type: ignore[attr-defined]
    user_before = user_row(live, "u0")
    again = live.identify(model, "S", "u0")  # a repeated login moves nothing
    assert again == live.session(model, "S")
    assert user_row(live, "u0") == user_before
    assert log.user_purchases(["u0"], last=10) == {"u0": [pid(7)]}
    assert log.count() == 4
    with pytest.raises(OwnedByAnother, match="another user"):
        live.identify(model, "S", "u1")


def test_an_unknown_user_is_served_as_anonymous(
    model: LoadedModel, store: StateStore, log: EventLog
) -> None:
    live = LiveState(store, log)
    assert live.user_start(model, "never-seen") == model.initial_row


def test_a_lost_user_state_is_rebuilt_from_the_log(
    model: LoadedModel, store: StateStore, log: EventLog
) -> None:
    live = LiveState(store, log)
    for number, items in enumerate([[0, 1, 2], [0, 4], [0, 9, 3]]):
        session = f"S{number}"
        log_and_apply(
            live,
            model,
            [ev(f"{session}-{k}", session, j, user_id="u0") for k, j in enumerate(items)],
        )
    kept = live.user_start(model, "u0")
    fresh = LiveState(open_state_store(None, 60.0), log)  # a restart: nothing in the store
    rebuilt = fresh.user_start(model, "u0")
    assert user_row(fresh, "u0")[1] is None  # stored: the next request does not replay the log
    log_reads = log.user_sessions
    log.user_sessions = lambda *args: pytest.fail("read the log again")  # type: ignore[method-assign]
    assert fresh.user_start(model, "u0") == rebuilt
    log.user_sessions = log_reads  # type: ignore[method-assign]
    assert np.allclose(model.codec.join([rebuilt]).user, model.codec.join([kept]).user, atol=1e-6)
    assert int(model.codec.join([rebuilt]).sessions[0]) == 3


# -- through the API --------------------------------------------------------------------------
@pytest.fixture
def api(tmp_path: Path, hgru_home: Path) -> Iterator[TestClient]:
    import shutil

    home = tmp_path / "home"
    shutil.copytree(hgru_home, home)
    client = TestClient(create_app(settings_for(home), CLASSES))
    client.__enter__()
    yield client
    client.__exit__(None, None, None)


def send(client: TestClient, *events: dict[str, Any]) -> None:
    reply = client.post("/v1/events", json={"events": list(events)}, headers=auth(WRITE))
    assert reply.status_code == 200, reply.json()


def view(event_id: str, session: str, j: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": "view", "session_id": session, "item_id": pid(j)} | extra


def group_share(items: list[dict[str, Any]], first: int) -> float:
    ids = {pid(j) for j in range(first, first + 10)}
    return sum(item["item_id"] in ids for item in items) / len(items)


def test_two_visitors_with_the_same_clicks_but_different_pasts_get_different_lists(
    api: TestClient,
) -> None:
    for user, group in (("u0", 1), ("u1", 11)):  # an even and an odd user, three visits each
        for visit in range(3):
            session = f"{user}-visit-{visit}"
            send(api, *[view(f"{session}-{k}", session, group + k, user_id=user) for k in range(3)])
    lists = {}
    for user in ("u0", "u1"):  # a new visit of each, and a login after the neutral item
        session = f"{user}-now"
        send(api, view(f"{session}-0", session, 0))
        reply = api.post(
            "/v1/identify", json={"session_id": session, "user_id": user}, headers=auth(WRITE)
        )
        assert reply.status_code == 200 and reply.json()["events"] == 1
        lists[user] = api.get(
            "/v1/recommendations", params={"session_id": session, "n": 10}, headers=auth(READ)
        ).json()["items"]
    assert group_share(lists["u0"], 1) > 0.5 and group_share(lists["u1"], 11) > 0.5
    # a returning user's new session with no event yet already gets their own group
    home_page = api.get(
        "/v1/recommendations", params={"session_id": "fresh", "user_id": "u1", "n": 10},
        headers=auth(READ),
    ).json()["items"]  # fmt: skip
    assert group_share(home_page, 11) > 0.5
    # an unknown user is anonymous: the same list as no user at all
    for params in ({"user_id": "stranger"}, {}):
        send(api, view(f"anon-{len(params)}", f"anon-{len(params)}", 0))
    unknown, anonymous = (
        [i["item_id"] for i in api.get(
            "/v1/recommendations", params={"session_id": f"anon-{len(p)}", **p}, headers=auth(READ)
        ).json()["items"]]
        for p in ({"user_id": "stranger"}, {})
    )  # fmt: skip
    assert unknown == anonymous


def test_identify_answers_bad_requests_clearly(api: TestClient) -> None:
    send(api, view("e1", "s1", 0))
    ok = api.post("/v1/identify", json={"session_id": "s1", "user_id": "u5"}, headers=auth(WRITE))
    assert ok.status_code == 200
    taken = api.post(
        "/v1/identify", json={"session_id": "s1", "user_id": "u6"}, headers=auth(WRITE)
    )
    assert taken.status_code == 409 and taken.json()["detail"][0]["field"] == "session_id"
    missing = api.post("/v1/identify", json={"session_id": "s1"}, headers=auth(WRITE))
    assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "user_id"
    huge = api.post(
        "/v1/identify", json={"session_id": "s1", "user_id": "x" * 5000}, headers=auth(WRITE)
    )
    assert huge.status_code == 422 and huge.json()["detail"][0]["field"] == "user_id"
    forbidden = api.post(
        "/v1/identify", json={"session_id": "s1", "user_id": "u5"}, headers=auth(READ)
    )
    assert forbidden.status_code == 403
    assert api.post("/v1/identify", json={"session_id": "s1", "user_id": "u5"}).status_code == 401
    # the admin key may do everything the write key may
    assert (
        api.post(
            "/v1/identify", json={"session_id": "s1", "user_id": "u5"}, headers=auth(ADMIN)
        ).status_code
        == 200
    )
