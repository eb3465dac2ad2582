"""Live state: one model step per event, batches stepped together, rebuilt from the log once.

Runs against both state stores (in-process and Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from serving_helpers import CLASSES, item

from nextbest.events.log import EventLog, open_event_log, sqlite_url
from nextbest.events.schema import Event
from nextbest.models.store import latest_version
from nextbest.serving.live import LiveState
from nextbest.serving.registry import LoadedModel, load_model
from nextbest.serving.state import StateStore
from nextbest.serving.state.records import SessionRecord, encode_session


@pytest.fixture
def model(model_home: Path) -> LoadedModel:
    folder = latest_version(model_home)
    assert folder is not None
    return load_model(folder, CLASSES)


@pytest.fixture
def steps(model: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batch size of every `model.step` call."""
    sizes: list[int] = []
    original = model.model.step

    def counted(state: Any, items: np.ndarray, times: np.ndarray) -> Any:
        sizes.append(len(items))
        return original(state, items, times)

    monkeypatch.setattr(model.model, "step", counted)
    return sizes


def event(event_id: str, session: str, j: int, kind: str = "view", **extra: Any) -> Event:
    return Event(
        event_id=event_id, type=kind, session_id=session, item_id=item(j), timestamp=1.0, **extra
    )


def log_and_apply(
    live: LiveState, model: LoadedModel | None, events: list[Event], tell_new: bool = True
) -> None:
    """As the server does (`tell_new=False`: as if the log could not name new sessions)."""
    stored = live.stored_records(event.session_id for event in events)
    probe = [session for session, value in stored.items() if value is None] if tell_new else []
    result = live.log.append(events, probe=probe)
    seqs = result.seqs
    live.apply(
        model,
        [e for e, s in zip(events, seqs, strict=True) if s],
        [s for s in seqs if s],
        result.new_sessions,
        stored,
    )


def reference_state(model: LoadedModel, items: list[int]) -> torch.Tensor:
    state = model.model.initial_state(1)
    for j in items:
        state = model.model.step(state, np.array([j]), np.array([1.0]))
    return state


def test_each_event_moves_its_session_one_step(
    store: StateStore, log: EventLog, model: LoadedModel, steps: list[int]
) -> None:
    live = LiveState(store, log)
    for k in range(5):
        log_and_apply(live, model, [event(f"e{k}", "s1", k)])
    assert steps == [1, 1, 1, 1, 1]  # never a replay of the session
    record = live.session(model, "s1")
    assert (record.n_steps, record.n_events, record.last_item) == (5, 5, item(4))
    state = live.state_of(model, record)
    torch.testing.assert_close(state, reference_state(model, [0, 1, 2, 3, 4]))


def test_a_new_session_starts_without_reading_the_log(
    store: StateStore, log: EventLog, model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    for name in ("session_events", "session_owners"):
        original = getattr(log, name)

        def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            reads.append(_name)
            return _original(*args)

        monkeypatch.setattr(log, name, counted)
    live = LiveState(store, log)
    batch = [event("a1", "new", 1), event("a2", "new", 2), event("b1", "old", 3)]
    log.append([event("b0", "old", 4)])  # "old" has a past in the log, but no state
    log_and_apply(live, model, batch)
    assert reads == ["session_events", "session_owners"]  # for "old" only
    assert live.session(model, "new").n_events == 2
    # the same as rebuilding the new session from the log
    rebuilt = LiveState(store, log)
    rebuilt.forget(["new"])
    assert reads == ["session_events", "session_owners"]
    reference = rebuilt.session(model, "new")
    assert len(reads) == 4
    log_and_apply(live, model, [event("a3", "new", 5)])
    log_and_apply(rebuilt, model, [event("c1", "twin", 1), event("c2", "twin", 2)], False)
    log_and_apply(rebuilt, model, [event("c3", "twin", 5)])
    assert reference.n_events == 2
    torch.testing.assert_close(
        live.state_of(model, live.session(model, "new")),
        live.state_of(model, live.session(model, "twin")),
    )


@pytest.mark.parametrize("tell_new", [True, False])
def test_a_batch_steps_its_sessions_together(
    store: StateStore, log: EventLog, model: LoadedModel, steps: list[int], tell_new: bool
) -> None:
    live = LiveState(store, log)
    log_and_apply(live, model, [event("warm", "c", 9)])  # "c" has a state before the batch
    steps.clear()
    batch = [event("a1", "a", 1), event("c1", "c", 10), event("a2", "a", 2), event("c2", "c", 11)]
    batch += [event("b1", "b", 5), event("c3", "c", 12)]
    log_and_apply(live, model, batch, tell_new)
    if tell_new:  # "a" and "b" are new: they start fresh and step in rounds with "c"
        assert steps == [3, 2, 1]
    else:  # "a" and "b" are rebuilt from the log (which holds them) in rounds, then "c" steps
        assert sum(steps) == 3 + 3 and max(steps) <= 2
    for session, items in (("a", [1, 2]), ("b", [5]), ("c", [9, 10, 11, 12])):
        state = live.state_of(model, live.session(model, session))
        torch.testing.assert_close(state, reference_state(model, items))


def test_a_lost_state_is_rebuilt_from_the_log_on_first_use(
    store: StateStore, log: EventLog, model: LoadedModel
) -> None:
    live = LiveState(store, log)
    log_and_apply(live, model, [event(f"e{k}", "s1", 3 + k) for k in range(4)])
    before = live.session(model, "s1")
    store.delete(["s:s1"])  # a restart of the in-process store, an expiry...
    after = LiveState(store, log).session(model, "s1")
    assert after == before
    short = LiveState(store, log, rebuild_events=2)
    store.delete(["s:s1"])
    torch.testing.assert_close(
        short.state_of(model, short.session(model, "s1")), reference_state(model, [5, 6])
    )


def test_a_state_left_behind_by_a_crash_is_repaired_at_startup(
    store: StateStore, log: EventLog, model: LoadedModel
) -> None:
    live = LiveState(store, log)
    log_and_apply(live, model, [event("e1", "s1", 3), event("e2", "s2", 7)])
    log.append([event("e3", "s1", 4)])  # committed, then the server died before the state
    assert live.session(model, "s1").n_events == 1  # behind the log
    restarted = LiveState(store, log)
    assert restarted.repair() == 1  # only s1 missed an event
    repaired = restarted.session(model, "s1")
    assert repaired.n_events == 2
    torch.testing.assert_close(restarted.state_of(model, repaired), reference_state(model, [3, 4]))
    assert restarted.repair() == 0


def test_an_event_is_never_applied_twice(
    store: StateStore, log: EventLog, model: LoadedModel
) -> None:
    live = LiveState(store, log)
    events = [event("e1", "s1", 1), event("e2", "s1", 2)]
    seqs = log.append(events).seqs
    live.apply(model, events, seqs)
    once = live.session(model, "s1")
    live.apply(model, events, seqs)  # a retry of the same, already-applied events
    assert live.session(model, "s1") == once and once.n_events == 2


def test_a_state_of_another_model_version_is_rebuilt(
    store: StateStore, log: EventLog, model: LoadedModel
) -> None:
    live = LiveState(store, log)
    log_and_apply(live, model, [event("e1", "s1", 7)])
    stale = SessionRecord(b"oldmodel", b"garbage", last_seq=999, n_steps=40)
    store.update(["s:s1"], lambda current: [encode_session(stale)])
    record = live.session(model, "s1")
    assert record.model_tag == model.tag and record.n_steps == 1
    without_model = live.session(None, "s1")  # no model yet: metadata only, from the log
    assert without_model.state == b"" and without_model.last_item == item(7)


def test_purchases_are_remembered_per_session_and_user(
    store: StateStore, log: EventLog, model: LoadedModel
) -> None:
    live = LiveState(store, log)
    log_and_apply(live, model, [event("p1", "s1", 4, "purchase", user_id="u1")])
    log_and_apply(live, model, [event("p2", "s2", 5, "purchase", user_id="u1")])
    assert live.session(model, "s1").bought == (item(4),)
    assert live.user("u1").bought == (item(4), item(5))
    store.delete(["u:u1"])
    assert live.user("u1").bought == (item(4), item(5))  # rebuilt from the log
    assert live.user("nobody").bought == ()


def test_trends_count_each_asked_window_of_the_latest_item_events(tmp_path: Path) -> None:
    from nextbest.serving.trends import Trends

    log = open_event_log(sqlite_url(tmp_path))
    try:
        sequence = ["a", "b", "a", "c", "a", "b"]
        log.append([Event(event_id=f"w{k}", type="view", session_id=f"s{k % 2}", item_id=i,
                          timestamp=1_000.0 + k) for k, i in enumerate(sequence)])  # fmt: skip
        trends = Trends(log, window_events=100)
        trends.refresh()
        assert trends.recent_counts(["a", "b", "c"], 3).tolist() == [1.0, 1.0, 1.0]  # c a b
        assert trends.recent_counts(["a", "b", "c"], 100).tolist() == [3.0, 2.0, 1.0]
        log.append([Event(event_id="w9", type="view", session_id="s9", item_id="c",
                          timestamp=2_000.0)])  # fmt: skip
        trends.refresh()  # a window asked before is kept up to date: a b c now
        assert trends.recent_counts(["a", "b", "c"], 3).tolist() == [1.0, 1.0, 1.0]
        assert trends.recent_counts(["a", "b", "c"], 2).tolist() == [0.0, 1.0, 1.0]
    finally:
        log.close()
