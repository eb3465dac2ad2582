"""HGRU4Rec: the user level as the paper defines it, and GRU4Rec exactly when there is no user."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from session_builders import make_sessions

from nextbest.data.sessions import Sessions
from nextbest.models.base import parse_config
from nextbest.models.gru4rec import GRU4Rec
from nextbest.models.gru4rec.batching import plan
from nextbest.models.hgru4rec import HGRU4Rec, HGRU4RecConfig, HState
from nextbest.models.hgru4rec.batching import plan_users

TINY = dict(layers=(8,), user_layer=6, batch_size=4, n_sample=6, n_epochs=2)
FULL = dict(user_propagation="all", user_to_output=True, dropout_p_user=0.1, dropout_p_init=0.1)


def random_sessions(n_sessions: int, n_items: int, seed: int, anonymous: float = 0.3) -> Sessions:
    rng = np.random.default_rng(seed)
    sessions = [list(rng.integers(0, n_items, size=rng.integers(1, 8))) for _ in range(n_sessions)]
    users = [None if rng.random() < anonymous else f"u{rng.integers(0, 8)}" for _ in sessions]
    return make_sessions(sessions, n_items, users)


def planted(n_users: int = 40, n_sessions: int = 6, seed: int = 0) -> Sessions:
    """Every session opens on the neutral item 0, then stays in its user's group: even users
    browse items 1-10, odd users items 11-20. Item 0 alone says nothing about the group."""
    rng = np.random.default_rng(seed)
    sessions, users = [], []
    for _ in range(n_sessions):
        for u in range(n_users):
            group = 1 + 10 * (u % 2)
            sessions.append([0, *rng.integers(group, group + 10, size=3).tolist()])
            users.append(f"u{u}")
    return make_sessions(sessions, 21, users)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fitted() -> tuple[HGRU4Rec, Sessions]:
    data = random_sessions(60, 30, seed=0)
    return HGRU4Rec(HGRU4RecConfig(**TINY, **FULL)).fit(data), data  # type: ignore[arg-type]


# -- user-parallel mini-batches ---------------------------------------------------------------
def test_user_walk_feeds_each_users_events_once_in_order() -> None:
    data = random_sessions(50, 20, seed=1)
    walk = plan_users(data, batch_size=3)
    owner = {s: (u if u is not None else f"anon{s}") for s, u in enumerate(data.user_ids)}  # type: ignore[arg-type]
    session_of = np.repeat(np.arange(data.n_sessions), data.lengths)
    # Expected per user: all their events in time order, up to the last one that has a next
    # event in its session (nothing after it could be a target or reach a later session).
    expected: dict[str, list[int]] = {}
    for s in range(data.n_sessions):
        expected.setdefault(owner[s], []).extend(range(data.offsets[s], data.offsets[s + 1]))
    has_next = np.r_[session_of[1:] == session_of[:-1], False]  # [n_events]
    for user, events in list(expected.items()):
        useful = [k for k, e in enumerate(events) if has_next[e]]
        expected[user] = events[: useful[-1] + 1] if useful else []
    # Replay the slots as the trainer does and collect each slot's inputs.
    slots: list[list[int]] = [[int(p)] for p in walk.positions[: walk.offsets[1]]]
    finished: list[list[int]] = []
    for b in range(1, walk.n_batches):
        chunk = walk.positions[walk.offsets[b] : walk.offsets[b + 1]].tolist()
        keep, reset = walk.keeps[b], walk.resets[b]
        if keep is not None:
            finished += [s for k, s in enumerate(slots) if k not in set(keep.tolist())]
            slots = [slots[k] for k in keep]
        fresh = set() if reset is None else set(reset.tolist())
        for k, p in enumerate(chunk):
            if k in fresh:
                finished.append(slots[k])
                slots[k] = []
            slots[k].append(p)
    finished += slots
    fed = {owner[int(session_of[t[0]])]: t for t in finished}
    assert len(fed) == len(finished)  # one slot run per user
    assert fed == {u: e for u, e in expected.items() if e}
    # Targets: the next event of the same session, or none (-1) after a session's last event.
    targets = walk.feed_targets[walk.order]
    positions = walk.positions
    same = (positions + 1 < data.n_events) & (
        session_of[np.minimum(positions + 1, data.n_events - 1)] == session_of[positions]
    )
    assert np.array_equal(targets >= 0, same)
    assert np.array_equal(targets[same], positions[same] + 1)


def test_without_user_ids_the_walk_is_gru4recs() -> None:
    data = random_sessions(40, 20, seed=2, anonymous=1.0)
    mine, theirs = plan_users(data, 5), plan(data, 5)
    assert np.array_equal(mine.positions, theirs.positions)
    assert np.array_equal(mine.offsets, theirs.offsets)
    assert not mine.opens_session.any()


# -- the user state ---------------------------------------------------------------------------
def test_user_state_changes_only_at_session_ends(fitted: tuple[HGRU4Rec, Sessions]) -> None:
    model, _ = fitted
    state = model.end_session(model.initial_state(2))  # a returning user: nonzero start
    user, sessions = state.user.clone(), state.sessions.clone()
    for item in (3, 7, 1):
        before = state.session.clone()
        state = model.step(state, np.array([item, item]), np.zeros(2))
        assert not torch.equal(state.session, before)
        assert torch.equal(state.user, user) and torch.equal(state.sessions, sessions)
    ended = model.end_session(state)
    assert not torch.equal(ended.user, user)
    assert ended.sessions.tolist() == [2, 2]
    # The next session starts from the new user state, not from the finished session.
    assert torch.equal(ended.session, model.start_session(ended).session)


def test_warm_up_equals_replaying_the_sessions(fitted: tuple[HGRU4Rec, Sessions]) -> None:
    model, data = fitted
    owned = [np.array([0, 4, 9]), np.array([], dtype=np.int64), np.array([2])]
    warm = model.warm_up(data, owned)
    for row, sessions in enumerate(owned):
        state = model.initial_state(1)
        for s in sessions:
            for e in range(data.offsets[s], data.offsets[s + 1]):
                state = model.step(state, data.items[e : e + 1], data.times[e : e + 1])
            state = model.end_session(state)
        assert torch.allclose(warm.session[row], state.session[0], atol=1e-6)
        assert torch.allclose(warm.user[row], state.user[0], atol=1e-6)
        assert int(warm.sessions[row]) == len(sessions)


def test_a_planted_user_preference_is_recovered_by_hgru4rec_not_gru4rec() -> None:
    data = planted()
    config = HGRU4RecConfig(
        layers=(16,), user_layer=16, batch_size=8, n_sample=0, n_epochs=10, learning_rate=0.1
    )
    model = HGRU4Rec(config).fit(data)
    plain = GRU4Rec(config.session_config()).fit(data)
    owned = [np.flatnonzero(data.user_ids == f"u{u}") for u in range(40)]
    opening = np.zeros(40, dtype=np.int64)  # a new session, item 0: the group does not show
    scores = model.score(model.step(model.warm_up(data, owned), opening, np.zeros(40)))
    plain_scores = plain.score(plain.step(plain.initial_state(40), opening, np.zeros(40)))
    even = np.arange(40) % 2 == 0

    def prefers_own_group(s: np.ndarray) -> np.ndarray:
        own: np.ndarray = (s[:, 1:11].mean(axis=1) > s[:, 11:21].mean(axis=1)) == even
        return own

    assert prefers_own_group(scores).mean() >= 0.95
    assert prefers_own_group(plain_scores).mean() == 0.5  # same answer for every user
    # The preference is the user's: a first-time user is served exactly as by GRU4Rec.
    first = model.score(model.step(model.initial_state(40), opening, np.zeros(40)))
    session_path = model.as_gru4rec()
    plain_first = session_path.step(session_path.initial_state(40), opening, np.zeros(40))
    assert np.array_equal(first, session_path.score(plain_first))


# -- no user: exactly GRU4Rec -----------------------------------------------------------------
def test_without_a_user_the_scores_are_exactly_gru4recs(fitted: tuple[HGRU4Rec, Sessions]) -> None:
    model, data = fitted
    plain = model.as_gru4rec()
    unknown = model.warm_up(data, [np.array([], dtype=np.int64)] * 3)  # no past sessions
    mine, theirs = unknown, plain.initial_state(3)
    for items in ([1, 2, 3], [4, 4, 0], [9, 8, 7]):
        mine = model.step(mine, np.array(items), np.zeros(3))
        theirs = plain.step(theirs, np.array(items), np.zeros(3))
        assert np.array_equal(model.score(mine), plain.score(theirs))
    assert not np.array_equal(  # a returning user's scores do differ
        model.score(model.step(model.end_session(mine), np.array([1, 2, 3]), np.zeros(3))),
        plain.score(plain.step(plain.initial_state(3), np.array([1, 2, 3]), np.zeros(3))),
    )


@pytest.mark.parametrize(
    "extra", [{}, {"momentum": 0.3, "dropout_p_hidden": 0.2, "loss": "bpr-max"}]
)
def test_trained_without_user_ids_it_is_gru4rec_weight_for_weight(extra: dict[str, object]) -> None:
    data = random_sessions(60, 30, seed=3, anonymous=1.0)
    config = HGRU4RecConfig(**TINY, **FULL, **extra)  # type: ignore[arg-type]
    model = HGRU4Rec(config).fit(data).as_gru4rec()
    plain = GRU4Rec(config.session_config()).fit(data)
    for key, value in plain.arrays().items():
        if not key.startswith("optimizer."):  # the weights (GRU4Rec also keeps Adagrad's)
            assert np.array_equal(model.arrays()[key], value), key


# -- persistence and configuration ------------------------------------------------------------
def test_save_load_round_trips_scores_and_states(
    fitted: tuple[HGRU4Rec, Sessions], tmp_path: Path
) -> None:
    model, data = fitted
    model.save(tmp_path / "m")
    loaded = HGRU4Rec.load(tmp_path / "m")
    assert loaded.config == model.config
    state = model.warm_up(data, [np.array([0, 3]), np.array([5])])
    stored = HState.from_arrays({k: v.copy() for k, v in state.to_arrays().items()})
    a = model.step(state, np.array([1, 2]), np.zeros(2))
    b = loaded.step(stored, np.array([1, 2]), np.zeros(2))
    assert np.array_equal(model.score(a), loaded.score(b))
    assert np.array_equal(model.score(model.end_session(a)), loaded.score(loaded.end_session(b)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user_layer", 0),
        ("user_propagation", "sometimes"),
        ("user_to_output", "yes"),
        ("dropout_p_user", 1.0),
        ("dropout_p_init", -0.1),
        ("layers", ()),
        ("loss", "mse"),
    ],
)
def test_bad_config_values_raise_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"HGRU4Rec parameter {field}="):
        HGRU4RecConfig(**{field: value})  # type: ignore[arg-type]


def test_parameters_parse_from_the_command_line() -> None:
    config = parse_config(
        HGRU4RecConfig,
        {"user_propagation": "all", "user_to_output": "true", "layers": "50", "user_layer": "20"},
    )
    assert (config.user_propagation, config.user_to_output) == ("all", True)
    assert config.session_config().layers == (50,)
    with pytest.raises(ValueError, match="user_propagation"):
        parse_config(HGRU4RecConfig, {"user_propagation": "every"})
