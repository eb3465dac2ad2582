"""Which variant a shopper sees: a deterministic draw from the hashed id and the experiment's
salt.

The draw is SHA-256 of "salt:id", its first 8 bytes read as a number in [0, 1), placed on the
variants' cumulative shares. It needs no state and no coordination: every worker and host,
before and after a restart, gives an id the same variant, and a new salt reshuffles everyone
(an experiment's users are not carried into the next one's). The id is the user's when the
shopper is signed in, else the session's (`assignment_unit`).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

SCALE = float(2**64)


def draw(unit: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by the unit's id and the salt."""
    digest = hashlib.sha256(f"{salt}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / SCALE


def assign(unit: str, salt: str, shares: Sequence[float]) -> int:
    """The index of the variant `unit` belongs to, with the variants' `shares` (summing
    to 1)."""
    if not shares or any(s < 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-9:
        raise ValueError(f"shares must be >= 0 and sum to 1, not {list(shares)}")
    bounds = list(accumulate(shares))
    return min(bisect_right(bounds, draw(unit, salt)), len(shares) - 1)


def assignment_unit(
    session_id: str | None, user_id: str | None, started_anonymous: bool = False
) -> str:
    """The id a shopper is assigned by: the user's when signed in, else the session's. A
    session that began anonymous (its first event named no user) keeps its session's variant
    after a login, until it ends: the shopper's page does not change under them."""
    if session_id and started_anonymous:
        return f"session:{session_id}"
    if user_id:
        return f"user:{user_id}"
    if session_id:
        return f"session:{session_id}"
    raise ValueError("an assignment needs a session_id or a user_id")
