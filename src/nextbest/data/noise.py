"""Noise in behaviour logs, found and removed before training: bots, accidental clicks, and
sessions too long to be one person's visit.

    report = noise_report(events)                      # what each rule would remove
    cleaned, removed = remove_noise(events, NoiseConfig(bot_events_per_minute=60,
                                                        accidental_seconds=2,
                                                        max_session_events=200))

The rules, each off unless its threshold is given:

* **bot-like sessions**: at least `bot_min_events` events at more than `bot_events_per_minute`
  (events after the first, over the minutes from the first to the last). A person reads a
  page before the next; a crawler does not. The whole session goes.
* **accidental clicks**: an item view followed within `accidental_seconds` by the session's
  next event. Nobody looks at a product for a second: the click missed, or the visitor went
  straight back. Only that view goes; carts and purchases always stay.
* **over-long sessions**: more than `max_session_events` events. A shared terminal, a tab left
  open for days, a test account: no one visitor's intent. The whole session goes.

Sessions are the table's `session_id`s (after sessionizing, when `prepare` runs these).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

# Thresholds `nextbest data stats` reports with: a shop's own may be tighter or looser.
REPORT_BOT_EVENTS_PER_MINUTE = 60.0
REPORT_BOT_MIN_EVENTS = 10
REPORT_ACCIDENTAL_SECONDS = 2.0
REPORT_MAX_SESSION_EVENTS = 200


@dataclass(frozen=True)
class NoiseConfig:
    bot_events_per_minute: float | None = None
    bot_min_events: int = REPORT_BOT_MIN_EVENTS
    accidental_seconds: float | None = None
    max_session_events: int | None = None

    def __post_init__(self) -> None:
        for name in ("bot_events_per_minute", "accidental_seconds"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value <= 0
            ):  # fmt: skip
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        for name in ("bot_min_events", "max_session_events"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 2
            ):
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (self.bot_events_per_minute, self.accidental_seconds, self.max_session_events)
        )


@dataclass(frozen=True)
class Removed:
    """What one rule removed: whole sessions (with their events), or single events."""

    rule: str
    sessions: int
    events: int


def bot_sessions(events: pl.DataFrame, per_minute: float, min_events: int) -> pl.Series:
    """The session ids of bot-like sessions."""
    spans = events.group_by("session_id").agg(
        pl.len().alias("n"),
        ((pl.col("timestamp").max() - pl.col("timestamp").min()) / 60.0).alias("minutes"),
    )
    fast = (pl.col("n") >= min_events) & (
        (pl.col("minutes") <= 0) | ((pl.col("n") - 1) / pl.col("minutes") > per_minute)
    )
    return spans.filter(fast)["session_id"]


def long_sessions(events: pl.DataFrame, max_events: int) -> pl.Series:
    sizes = events.group_by("session_id").len()
    return sizes.filter(pl.col("len") > max_events)["session_id"]


def accidental_clicks(events: pl.DataFrame, seconds: float) -> pl.Series:
    """Per row, whether it is an accidental click: a view whose session's next event (in time,
    ties in table order) comes within `seconds`."""
    order = events.select("session_id", "timestamp", "type").with_row_index("_row")
    ranked = order.sort(["session_id", "timestamp", "_row"])
    next_time = pl.col("timestamp").shift(-1).over("session_id")
    flagged = ranked.select(
        "_row",
        ((pl.col("type") == "view") & ((next_time - pl.col("timestamp")) <= seconds))
        .fill_null(False)
        .alias("_accidental"),
    )
    return flagged.sort("_row")["_accidental"]


def remove_noise(events: pl.DataFrame, config: NoiseConfig) -> tuple[pl.DataFrame, list[Removed]]:
    """`events` without what the configured rules find, and what each removed, in the order
    they run (bots, then over-long sessions, then accidental clicks)."""
    removed: list[Removed] = []
    frame = events
    if config.bot_events_per_minute is not None:
        bots = bot_sessions(frame, config.bot_events_per_minute, config.bot_min_events)
        frame, gone = _drop_sessions(frame, bots)
        removed.append(Removed("bot-like sessions", bots.len(), gone))
    if config.max_session_events is not None:
        long = long_sessions(frame, config.max_session_events)
        frame, gone = _drop_sessions(frame, long)
        removed.append(Removed("over-long sessions", long.len(), gone))
    if config.accidental_seconds is not None:
        mask = accidental_clicks(frame, config.accidental_seconds)
        before = frame.height
        frame = frame.filter(~mask)
        removed.append(Removed("accidental clicks", 0, before - frame.height))
    return frame, removed


def noise_report(events: pl.DataFrame) -> list[Removed]:
    """What each rule would remove at the report thresholds, each on the whole table."""
    rules = (
        NoiseConfig(bot_events_per_minute=REPORT_BOT_EVENTS_PER_MINUTE),
        NoiseConfig(max_session_events=REPORT_MAX_SESSION_EVENTS),
        NoiseConfig(accidental_seconds=REPORT_ACCIDENTAL_SECONDS),
    )
    return [removed for rule in rules for removed in remove_noise(events, rule)[1]]


def report_rules() -> dict[str, str]:
    """The report thresholds, as `nextbest data stats` names them."""
    return {
        "bot-like sessions": (
            f">= {REPORT_BOT_MIN_EVENTS} events at > {REPORT_BOT_EVENTS_PER_MINUTE:g}/minute "
            "(--bot-events-per-minute)"
        ),
        "over-long sessions": f"> {REPORT_MAX_SESSION_EVENTS} events (--max-session-events)",
        "accidental clicks": (
            f"a view followed within {REPORT_ACCIDENTAL_SECONDS:g} s (--accidental-seconds)"
        ),
    }


def _drop_sessions(frame: pl.DataFrame, sessions: pl.Series) -> tuple[pl.DataFrame, int]:
    kept = frame.filter(~pl.col("session_id").is_in(sessions.implode()))
    return kept, frame.height - kept.height
