"""Small `Sessions` built by hand, for the GRU model tests."""

from __future__ import annotations

import numpy as np

from nextbest.data.sessions import Sessions


def make_sessions(
    sessions: list[list[int]], n_items: int, users: list[str | None] | None = None
) -> Sessions:
    """Sessions of item numbers 0..n_items-1, one time step per event, optionally with users."""
    items = np.array([i for s in sessions for i in s], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sessions])]).astype(np.int64)
    return Sessions(
        item_ids=np.array([str(i) for i in range(n_items)], dtype=object),
        session_ids=np.array([str(i) for i in range(len(sessions))], dtype=object),
        offsets=offsets,
        items=items,
        times=np.arange(len(items), dtype=np.float64),
        user_ids=None if users is None else np.array(users, dtype=object),
    )
