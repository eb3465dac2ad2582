"""What an event table holds: sizes, time span, session lengths, the long tail, users.

`dataset_stats` answers the questions one asks before choosing preparation settings (how long
are sessions, how rare are most items, how many visitors are known users), and after them (what
the filters left). The two helpers `item_events` and `session_users` define, once for the whole
`nextbest.data` package, which events count as item events and who a session belongs to.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
from rich.table import Table

from nextbest.events.schema import ITEMLESS_EVENT_TYPES

# Timestamps in this range are shown as dates too; smaller ones are running order numbers.
_EPOCH_2000 = 946_684_800.0
_EPOCH_2100 = 4_102_444_800.0
_SECONDS_PER_DAY = 86_400.0


def item_events() -> pl.Expr:
    """True for events that carry an item (not searches, not null items).

    Only these count for item support, session length and repeats: they are what models train
    on (`Sessions.from_events` skips the others too).
    """
    return pl.col("item_id").is_not_null() & ~pl.col("type").is_in(sorted(ITEMLESS_EVENT_TYPES))


def session_users(events: pl.DataFrame) -> pl.DataFrame:
    """One row per session: `session_id` and the `user_id` it belongs to (null if anonymous).

    A session's user is the user_id of its earliest event that has one, so a visitor who logs
    in halfway through a session owns the whole session. Row order is not meaningful.
    """
    named = (
        events.filter(pl.col("user_id").is_not_null())
        .group_by("session_id")
        .agg(pl.col("user_id").get(pl.col("timestamp").arg_min()))  # ties: the first row
    )
    return events.select("session_id").unique().join(named, on="session_id", how="left")


@dataclass(frozen=True)
class DatasetStats:
    """Summary numbers of one event table; distributions of nothing are reported as 0.

    Session length counts item events (searches do not count), as the filters do. Quantiles
    interpolate linearly between neighbours (numpy's default).
    """

    n_events: int
    n_sessions: int
    n_items: int
    n_users: int
    anonymous_session_share: float  # sessions without any user_id / all sessions
    events_per_type: dict[str, int]
    first_timestamp: float | None
    last_timestamp: float | None
    span_days: float
    session_length_mean: float
    session_length_median: float
    session_length_p90: float
    session_length_max: int
    item_support_min: int
    item_support_median: float
    item_support_max: int
    top1pct_items_event_share: float  # share of item events on the 1% most frequent items
    sessions_per_user_mean: float
    sessions_per_user_median: float
    sessions_per_user_max: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values only, ready for JSON."""
        return asdict(self)

    def to_rich_table(self, title: str = "Dataset statistics") -> Table:
        """Two columns (statistic, value) for `nextbest data stats`."""
        table = Table(title=title)
        table.add_column("statistic")
        table.add_column("value", justify="right")
        for name, value in self._rows():
            table.add_row(name, value)
        return table

    def _rows(self) -> list[tuple[str, str]]:
        rows = [
            ("events", f"{self.n_events:,}"),
            ("sessions", f"{self.n_sessions:,}"),
            ("items", f"{self.n_items:,}"),
            ("users", f"{self.n_users:,}"),
            ("anonymous sessions", f"{self.anonymous_session_share:.1%}"),
        ]
        rows += [(f"events: {kind}", f"{n:,}") for kind, n in self.events_per_type.items()]
        rows += [
            ("first event", _format_time(self.first_timestamp)),
            ("last event", _format_time(self.last_timestamp)),
            ("time span (days)", f"{self.span_days:,.2f}"),
            (
                "session length mean / median",
                _pair(self.session_length_mean, self.session_length_median),
            ),
            ("session length p90 / max", _pair(self.session_length_p90, self.session_length_max)),
            (
                "item support min / median / max",
                f"{self.item_support_min:,} / {self.item_support_median:,.1f} / "
                f"{self.item_support_max:,}",
            ),
            ("events on top 1% items", f"{self.top1pct_items_event_share:.1%}"),
            (
                "sessions per user mean / median",
                _pair(self.sessions_per_user_mean, self.sessions_per_user_median),
            ),
            ("sessions per user max", f"{self.sessions_per_user_max:,}"),
        ]
        return rows


def dataset_stats(events: pl.DataFrame) -> DatasetStats:
    """Describe an event table with the EVENT_SCHEMA columns."""
    items = events.filter(item_events())
    lengths = events.group_by("session_id").agg(item_events().sum().alias("n"))["n"]
    support = items.group_by("item_id").len()["len"]
    users = session_users(events)
    per_user = users.drop_nulls("user_id").group_by("user_id").len()["len"]
    first, last = events["timestamp"].min(), events["timestamp"].max()
    n_sessions = users.height
    return DatasetStats(
        n_events=events.height,
        n_sessions=n_sessions,
        n_items=support.len(),
        n_users=per_user.len(),
        anonymous_session_share=_share(users["user_id"].null_count(), n_sessions),
        events_per_type=_type_counts(events),
        first_timestamp=_optional_float(first),
        last_timestamp=_optional_float(last),
        span_days=_span_days(first, last),
        session_length_mean=_mean(lengths),
        session_length_median=_quantile(lengths, 0.5),
        session_length_p90=_quantile(lengths, 0.9),
        session_length_max=_max(lengths),
        item_support_min=_min(support),
        item_support_median=_quantile(support, 0.5),
        item_support_max=_max(support),
        top1pct_items_event_share=_top_share(support, items.height),
        sessions_per_user_mean=_mean(per_user),
        sessions_per_user_median=_quantile(per_user, 0.5),
        sessions_per_user_max=_max(per_user),
    )


def _type_counts(events: pl.DataFrame) -> dict[str, int]:
    """Event counts per type, most frequent first (ties by name, so the order is stable)."""
    counts = events.group_by("type").len().sort(["len", "type"], descending=[True, False])
    return {str(kind): int(n) for kind, n in counts.iter_rows()}


def _top_share(support: pl.Series, n_item_events: int) -> float:
    """Share of item events that fall on the ceil(1%) most frequent items (at least one)."""
    if support.len() == 0:
        return 0.0
    k = max(1, math.ceil(support.len() / 100))
    return _share(int(support.top_k(k).sum()), n_item_events)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _mean(values: pl.Series) -> float:
    return float(np.mean(values.to_numpy())) if values.len() else 0.0


def _quantile(values: pl.Series, q: float) -> float:
    return float(np.quantile(values.to_numpy(), q)) if values.len() else 0.0


def _min(values: pl.Series) -> int:
    return int(np.min(values.to_numpy())) if values.len() else 0


def _max(values: pl.Series) -> int:
    return int(np.max(values.to_numpy())) if values.len() else 0


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _span_days(first: Any, last: Any) -> float:
    if first is None or last is None:
        return 0.0
    return (float(last) - float(first)) / _SECONDS_PER_DAY


def _format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    if _EPOCH_2000 <= timestamp <= _EPOCH_2100:
        when = datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{timestamp:.0f} ({when})"
    return f"{timestamp:g}"


def _pair(first: float, second: float) -> str:
    return f"{first:,.2f} / {second:,.2f}"
