"""Durations as people write them in options and files: '90s', '30m', '6h', '7d'."""

from __future__ import annotations

import re

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str, what: str, minimum: float = 0.0) -> float:
    """`text` in seconds; ValueError naming `what` (an option or a key) otherwise."""
    match = DURATION.match(str(text))
    if match is None:
        raise ValueError(
            f"{what} takes a number and a unit (s, m, h or d), such as 6h, not {text!r}"
        )
    seconds = float(match[1]) * UNITS[match[2]]
    if seconds < minimum:
        raise ValueError(f"{what} must be at least {minimum:g}s, not {text!r}")
    return seconds
