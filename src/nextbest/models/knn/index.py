"""The training index every session-kNN model answers from, plus the neighbour search.

Training only indexes (nothing is learned). Sessions are relabelled by *recency*: session r is
the r-th oldest by the timestamp of its last event (equal timestamps keep the training order,
i.e. the later-starting session counts as more recent). With that labelling "the most recent
candidates" are simply the largest labels, and every per-item session list, kept ascending, has
its most recent sessions at its end.

    session_items[session_offsets[r]:session_offsets[r + 1]]   distinct items of session r
    session_last_pos[...]                                      1-based position of each one's
                                                               last occurrence in session r
    item_sessions[item_offsets[i]:item_offsets[i + 1]]         sessions containing item i,
                                                               ascending (oldest first)
    item_session_pos[...]                                      position of i's last occurrence
                                                               in each of those sessions
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np

from nextbest.data.sessions import Sessions


@dataclass(frozen=True)
class SessionIndex:
    session_offsets: np.ndarray  # [n_sessions + 1] int64
    session_items: np.ndarray  # [n_pairs] int64
    session_last_pos: np.ndarray  # [n_pairs] int64, 1-based
    session_lengths: np.ndarray  # [n_sessions] int64, events including repeats
    session_times: np.ndarray  # [n_sessions] float64, last timestamp, non-decreasing
    item_offsets: np.ndarray  # [n_items + 1] int64
    item_sessions: np.ndarray  # [n_pairs] int64
    item_session_pos: np.ndarray  # [n_pairs] int64, 1-based
    idf: np.ndarray  # [n_items] float64, ln(#sessions / #events of the item)

    @property
    def n_sessions(self) -> int:
        return len(self.session_lengths)

    @cached_property
    def n_distinct(self) -> np.ndarray:
        """[n_sessions] number of distinct items of each session."""
        return np.diff(self.session_offsets)

    @classmethod
    def build(cls, train: Sessions) -> SessionIndex:
        lengths = train.lengths
        kept = np.flatnonzero(lengths > 0)  # empty sessions can never be neighbours
        n_sessions, n_items = len(kept), train.n_items
        event_session = np.repeat(np.arange(train.n_sessions), lengths)  # [n_events]
        positions = np.arange(train.n_events) - train.offsets[event_session] + 1  # 1-based
        last_times = (  # [n_sessions]
            np.maximum.reduceat(train.times, train.offsets[kept]) if len(kept) else np.zeros(0)
        )
        order = np.argsort(last_times, kind="stable")  # oldest first, ties: training order
        recency = np.full(train.n_sessions, -1, dtype=np.int64)
        recency[kept[order]] = np.arange(n_sessions)
        event_rank = recency[event_session]  # [n_events] recency label of each event's session

        # One row per distinct (session, item): the last event of each group after sorting by
        # (session, item, position) carries the item's last position.
        by_pair = np.lexsort((positions, train.items, event_rank))
        pair_session, pair_item = event_rank[by_pair], train.items[by_pair]
        last = np.ones(len(by_pair), dtype=bool)
        last[:-1] = (pair_session[1:] != pair_session[:-1]) | (pair_item[1:] != pair_item[:-1])
        pair_session, pair_item = pair_session[last], pair_item[last]
        pair_pos = positions[by_pair][last]

        by_item = np.argsort(pair_item, kind="stable")  # sessions stay ascending per item
        support = np.bincount(train.items, minlength=n_items).astype(np.float64)
        with np.errstate(divide="ignore"):
            idf = np.where(support > 0, np.log(n_sessions / np.maximum(support, 1.0)), 0.0)
        return cls(
            session_offsets=_offsets(np.bincount(pair_session, minlength=n_sessions)),
            session_items=pair_item,
            session_last_pos=pair_pos,
            session_lengths=lengths[kept][order].astype(np.int64),
            session_times=last_times[order].astype(np.float64),
            item_offsets=_offsets(np.bincount(pair_item, minlength=n_items)),
            item_sessions=pair_session[by_item],
            item_session_pos=pair_pos[by_item],
            idf=idf,
        )

    def arrays(self, prefix: str = "index_") -> dict[str, np.ndarray]:
        return {prefix + f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "index_") -> SessionIndex:
        return cls(**{f.name: arrays[prefix + f.name] for f in fields(cls)})


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def gather_ranges(
    offsets: np.ndarray, rows: np.ndarray, tail: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the CSR entries of `rows` (each row's last `tail` only, when tail > 0).

    Returns (entries [m], group [m]): group[e] is the index into `rows` that entry e belongs to.
    """
    starts, ends = offsets[rows], offsets[rows + 1]  # [r]
    if tail > 0:
        starts = np.maximum(starts, ends - tail)
    sizes = ends - starts  # [r]
    group = np.repeat(np.arange(len(rows)), sizes)  # [m]
    shift = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)  # [m]
    return np.arange(len(group)) + shift, group


@dataclass
class Candidates:
    """The most recent candidate neighbours of one session and how each overlaps it.

    The session is described by its distinct items (`items` [u]); every (candidate, item)
    co-occurrence is one entry: `row` [m] is the candidate (index into `sessions`), `group` [m]
    the distinct item of the session (index into `items`), `pos` [m] that item's last position
    in the candidate.
    """

    sessions: np.ndarray  # [S] recency labels, ascending (most recent last)
    row: np.ndarray  # [m]
    group: np.ndarray  # [m]
    pos: np.ndarray  # [m]


def candidates(index: SessionIndex, items: np.ndarray, sample_size: int) -> Candidates:
    """The union of the sessions of `items` [u], cut to the `sample_size` most recent.

    sample_size = 0 keeps the whole union. Only each item's `sample_size` most recent sessions
    can be among the union's most recent ones, so longer lists are cut before merging.
    """
    entries, group = gather_ranges(index.item_offsets, items, tail=sample_size)  # [m]
    found = index.item_sessions[entries]  # [m] with repeats across items
    union, inverse = np.unique(found, return_inverse=True)  # [U] ascending = oldest first
    cut = max(len(union) - sample_size, 0) if sample_size > 0 else 0
    row = inverse - cut  # [m] index into the sample; < 0 for the older sessions cut off
    keep = row >= 0
    return Candidates(
        sessions=union[cut:],
        row=row[keep],
        group=group[keep],
        pos=index.item_session_pos[entries[keep]],
    )


def top_k(similarity: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest positive entries of `similarity` [S], ascending.

    Ties at the cut go to the larger index, i.e. the more recent candidate, so the choice is
    deterministic.
    """
    positive = np.flatnonzero(similarity > 0)
    if len(positive) <= k:
        return positive
    values = similarity[positive]
    kth = np.partition(values, len(values) - k)[len(values) - k]  # the k-th largest
    above = positive[values > kth]
    tied = positive[values == kth]
    return np.sort(np.concatenate([above, tied[len(tied) - (k - len(above)) :]]))


def last_positions(sequence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct items of `sequence` [n] and the 1-based position of each one's last occurrence.

    This is how a repeated item keeps the weight of its later position.
    """
    n = len(sequence)
    items, first_from_end = np.unique(sequence[::-1], return_index=True)
    return items, n - first_from_end
