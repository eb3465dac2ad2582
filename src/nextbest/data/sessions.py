"""Integer-coded sessions: the form every model trains on and evaluation walks.

An event table (see `nextbest.events.schema`) has string ids. Models want dense item indices
and sessions as contiguous runs, so `Sessions` holds them CSR-style:

    items[offsets[s]:offsets[s + 1]]   the item indices of session s, in time order
    times[offsets[s]:offsets[s + 1]]   their timestamps

Sessions are ordered by the time of their first event (GRU4Rec's session-parallel batches and
the kNN "most recent" sampling both rely on time order). `item_ids[j]` is the string id of item
index j; a model's score column j is that item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from nextbest.events.schema import ITEMLESS_EVENT_TYPES


@dataclass(frozen=True)
class Sessions:
    item_ids: np.ndarray  # [n_items] object (str): the vocabulary; index j <-> item_ids[j]
    session_ids: np.ndarray  # [n_sessions] object (str)
    offsets: np.ndarray  # [n_sessions + 1] int64
    items: np.ndarray  # [n_events] int64, indices into item_ids
    times: np.ndarray  # [n_events] float64
    user_ids: np.ndarray | None = None  # [n_sessions] object (str or None), when known
    event_types: np.ndarray | None = None  # [n_events] object (str), when known

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_sessions(self) -> int:
        return len(self.session_ids)

    @property
    def n_events(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def session(self, s: int) -> np.ndarray:
        return self.items[self.offsets[s] : self.offsets[s + 1]]

    def item_index(self) -> dict[str, int]:
        return {str(item): j for j, item in enumerate(self.item_ids)}

    def item_support(self) -> np.ndarray:
        """[n_items] number of events of each item."""
        return np.bincount(self.items, minlength=self.n_items)

    def take(self, rows: np.ndarray, keep: np.ndarray | None = None) -> Sessions:
        """The sessions `rows` (in that order), with the same vocabulary, and only the events
        where `keep` [n_events] is True when it is given (sessions may become shorter or
        empty)."""
        lengths = self.lengths[rows]
        starts = self.offsets[rows]
        events = np.repeat(starts - np.cumsum(np.r_[0, lengths[:-1]]), lengths)
        events = events + np.arange(int(lengths.sum()))  # [n] event indices, in order
        if keep is not None:
            mask = keep[events]
            owner = np.repeat(np.arange(len(rows)), lengths)
            lengths = np.bincount(owner[mask], minlength=len(rows))
            events = events[mask]
        return Sessions(
            item_ids=self.item_ids,
            session_ids=self.session_ids[rows],
            offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
            items=self.items[events],
            times=self.times[events],
            user_ids=None if self.user_ids is None else self.user_ids[rows],
            event_types=None if self.event_types is None else self.event_types[events],
        )

    @classmethod
    def from_events(
        cls,
        events: pl.DataFrame,
        item_ids: np.ndarray | None = None,
        min_session_length: int = 1,
    ) -> Sessions:
        """Code an event table (needs session_id, item_id, timestamp).

        With `item_ids` given (a training vocabulary), events of other items are dropped, as the
        evaluation protocol requires for test data; sessions shorter than `min_session_length`
        after that are dropped. Item-less events (searches) are ignored here.
        """
        for column in ("session_id", "item_id", "timestamp"):
            if column not in events.columns:
                raise ValueError(f"event table lacks column {column!r}")
        frame = events
        if "type" in frame.columns:
            frame = frame.filter(~pl.col("type").is_in(list(ITEMLESS_EVENT_TYPES)))
        frame = frame.filter(pl.col("item_id").is_not_null())
        if item_ids is not None:
            frame = frame.filter(pl.col("item_id").is_in(np.asarray(item_ids).tolist()))
        frame = frame.filter(pl.len().over("session_id") >= min_session_length)
        if item_ids is None:
            vocabulary = np.array(sorted(frame["item_id"].unique().to_list()), dtype=object)
        else:
            vocabulary = np.asarray(item_ids, dtype=object)
        index = pl.DataFrame(
            {"item_id": vocabulary.tolist(), "item_idx": np.arange(len(vocabulary))},
            schema={"item_id": pl.String, "item_idx": pl.Int64},
        )
        frame = frame.with_row_index("_row").join(index, on="item_id", how="left")
        # Order sessions by their first event; events inside a session by time, then by
        # their position in the input (stable for equal timestamps).
        frame = frame.with_columns(pl.col("timestamp").min().over("session_id").alias("_start"))
        frame = frame.sort(["_start", "session_id", "timestamp", "_row"])
        session_col = frame["session_id"]
        starts = (
            np.flatnonzero(
                np.concatenate([[True], (session_col[1:] != session_col[:-1]).to_numpy()])
            )
            if frame.height
            else np.zeros(0, dtype=np.int64)
        )
        offsets = np.append(starts, frame.height).astype(np.int64)
        session_ids = (
            session_col.gather(starts).to_numpy().astype(object)
            if frame.height
            else (np.zeros(0, dtype=object))
        )
        user_ids = None
        if "user_id" in frame.columns and frame["user_id"].null_count() < frame.height:
            user_ids = frame["user_id"].gather(starts).to_numpy().astype(object)
        event_types = frame["type"].to_numpy().astype(object) if "type" in frame.columns else None
        return cls(
            item_ids=vocabulary,
            session_ids=session_ids,
            offsets=offsets,
            items=frame["item_idx"].to_numpy().astype(np.int64),
            times=frame["timestamp"].cast(pl.Float64).to_numpy(),
            user_ids=user_ids,
            event_types=event_types,
        )
