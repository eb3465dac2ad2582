"""User-parallel mini-batches (Quadrana et al., RecSys 2017, section 3.3).

Each of `batch_size` slots walks one user's sessions in time order, one event per mini-batch:
the input is the slot's current event, the target the session's next one. Between two sessions
of the same user the slot's state passes through the user GRU, so a returning user's session
starts from their history. When a user has no event left, the next user takes the slot (both
states zeroed); when none is left the slot is removed and the mini-batch shrinks.

What a slot feeds ("a track"): every event of every session of the user, except the last event
of the user's last session. The last event of an earlier session has no target; it is fed all
the same (its row is left out of the loss) because the user GRU's input is the state *after*
the session's last event, exactly what serving has when a session ends. Tracks are handed out
in the order of their first session.

Anonymous sessions (no user id) are one-session users: trained exactly as GRU4Rec trains a
session (zero start, no user input), which is the path anonymous visitors are served by. With
no user ids at all the walk is GRU4Rec's session-parallel walk, mini-batch for mini-batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from nextbest.data.sessions import Sessions
from nextbest.models.gru4rec.batching import walk_slots


@dataclass(frozen=True)
class UserBatch:
    inputs: torch.Tensor  # [B] int64 item ids fed now
    targets: torch.Tensor  # [B] int64 the next item of the session, -1 after its last event
    keep: torch.Tensor | None  # [B] rows of the previous state still running, or None (all)
    reset: torch.Tensor | None  # [r] rows (after `keep`) whose user starts now: zero states
    session_start: torch.Tensor | None  # [s] rows opening a returning user's next session


@dataclass(frozen=True)
class UserPlan:
    """Every mini-batch of one epoch, in order."""

    feeds: np.ndarray  # [n_feeds] event index of each feed, track after track
    feed_targets: np.ndarray  # [n_feeds] event index of the target, -1 if none
    opens_session: np.ndarray  # [n_feeds] bool: first event of a returning user's next session
    order: np.ndarray  # [n_inputs] feed index of each input, mini-batch after mini-batch
    offsets: np.ndarray  # [n_batches + 1] mini-batch b is order[offsets[b]:offsets[b + 1]]
    keeps: list[np.ndarray | None]
    resets: list[np.ndarray | None]

    @property
    def n_batches(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_inputs(self) -> int:
        return len(self.order)

    @property
    def positions(self) -> np.ndarray:
        """[n_inputs] event index of each input, mini-batch after mini-batch."""
        positions: np.ndarray = self.feeds[self.order]
        return positions

    def batches(self, items: np.ndarray) -> Iterator[UserBatch]:
        """The mini-batches with item ids from `items` (the sessions' `items` array)."""
        target_events = self.feed_targets[self.order]
        inputs = torch.from_numpy(np.ascontiguousarray(items[self.feeds[self.order]]))
        targets = torch.from_numpy(
            np.where(target_events >= 0, items[np.maximum(target_events, 0)], -1)
        )
        opens = self.opens_session[self.order]
        bounds = self.offsets.tolist()
        for b in range(self.n_batches):
            first, last = bounds[b], bounds[b + 1]
            starts = np.flatnonzero(opens[first:last])
            yield UserBatch(
                inputs[first:last],
                targets[first:last],
                _tensor(self.keeps[b]),
                _tensor(self.resets[b]),
                torch.from_numpy(starts) if len(starts) else None,
            )


def _tensor(rows: np.ndarray | None) -> torch.Tensor | None:
    return None if rows is None else torch.from_numpy(rows)


def session_owners(sessions: Sessions) -> np.ndarray:
    """[n_sessions] int64 code of each session's user; anonymous sessions get codes of their own."""
    n = sessions.n_sessions
    if sessions.user_ids is None:
        return np.arange(n, dtype=np.int64)
    known = np.array([u is not None and u == u and u != "" for u in sessions.user_ids])
    codes = np.arange(n, dtype=np.int64) + n  # anonymous: unique codes
    if known.any():
        _, inverse = np.unique(sessions.user_ids[known].astype(str), return_inverse=True)
        codes[known] = inverse
    return codes


def tracks(sessions: Sessions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feeds (event, target, opens_session) of every user, and [n_tracks + 1] track bounds."""
    owner = session_owners(sessions)
    n = sessions.n_sessions
    index = np.arange(n)
    first_of_owner = np.full(owner.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first_of_owner, owner, index)
    walk = np.lexsort((index, first_of_owner[owner]))  # [S] sessions, user after user
    track_of = first_of_owner[owner[walk]]
    first = np.r_[True, track_of[1:] != track_of[:-1]] if n else np.zeros(0, dtype=bool)
    last = np.r_[track_of[1:] != track_of[:-1], True] if n else np.zeros(0, dtype=bool)
    starts, ends = sessions.offsets[walk], sessions.offsets[walk + 1]
    fed = ends - starts - last  # [S] the user's last session keeps its last event back
    feeds = np.repeat(starts - np.cumsum(np.r_[0, fed[:-1]]), fed) + np.arange(fed.sum())
    session_end = np.repeat(ends, fed)
    targets = np.where(feeds + 1 < session_end, feeds + 1, -1)
    opens = np.repeat(~first, fed) & (feeds == np.repeat(starts, fed))
    # Tracks end at their last feed with a target (nothing after it would be learned from).
    track_id = np.cumsum(first) - 1  # [S]
    feed_track = np.repeat(track_id, fed)
    n_tracks = int(first.sum())
    useful = np.full(n_tracks, -1, dtype=np.int64)
    has_target = np.flatnonzero(targets >= 0)
    np.maximum.at(useful, feed_track[has_target], has_target)
    track_start = np.searchsorted(feed_track, np.arange(n_tracks))
    keep = useful >= 0
    return feeds, targets, opens, np.stack([track_start[keep], useful[keep] + 1])


def plan_users(sessions: Sessions, batch_size: int) -> UserPlan:
    """Lay out the user-parallel walk over `sessions` (users in order of their first session)."""
    feeds, targets, opens, bounds = tracks(sessions)
    order, offsets, keeps, resets = walk_slots(bounds[0], bounds[1], batch_size)
    return UserPlan(feeds, targets, opens, order, offsets, keeps, resets)
