"""Attribution: an experiment's outcomes per shopper, from its answered lists and the event log.

Every list answered under the experiment is an impression for the unit it was assigned by
(`ServedList.unit`: the signed-in user, or the session). An event counts for a list when it
carries the list's `recommendation_id` back and names one of its items; a cart add or a
purchase without one (or naming an item the list did not show) counts for the latest list of
the experiment that showed its item to the same session or user at most `window` seconds
before it (the server's clock on both sides: `served_at`, `received_at`):

    click      a view or click carrying the id back, once per list and item
    cart       a cart add
    purchase   a purchase; its `value` is the revenue

A user's purchases and revenue in the `pre_days` before the start are the pre-period that
CUPED uses (a session has no past, so a session's are 0; the columns are left out when nobody
has one).

    attribution = attribute(log, experiment, until=time.time())
    outcomes = attribution.outcomes()          # one row per unit, for `report.analyse`
    outcomes = attribution.outcomes(until=t)   # as the experiment stood at t (a timeline)
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from nextbest.events.log import EventLog, LoggedEvent, ServedList
from nextbest.experiments.spec import Experiment

DEFAULT_WINDOW_SECONDS = 24 * 3600.0
DEFAULT_PRE_DAYS = 14.0
CLICKS = ("click", "view")
METRIC_COLUMNS = ("impressions", "clicks", "carts", "purchases", "revenue")


@dataclass
class Attribution:
    """What an experiment's shoppers saw and did: each counted thing with its time."""

    experiment: Experiment
    variants: dict[str, str] = field(default_factory=dict)  # unit -> variant
    # (unit, metric, amount, at): one row per impression, click, cart, purchase and revenue
    rows: list[tuple[str, str, float, float]] = field(default_factory=list)
    pre: dict[str, tuple[float, float]] = field(default_factory=dict)  # unit -> (buys, revenue)
    mixed_units: int = 0  # units whose lists named two variants (a broken assignment)
    lists: int = 0

    def outcomes(self, until: float | None = None) -> pl.DataFrame:
        """One row per unit that had an impression before `until` (None: all): user_id (the
        unit), variant, impressions, clicks, carts, purchases, revenue, and pre_purchases,
        pre_revenue where some unit has a pre-period."""
        totals: dict[str, dict[str, float]] = defaultdict(
            lambda: dict.fromkeys(METRIC_COLUMNS, 0.0)
        )
        for unit, metric, amount, at in self.rows:
            if until is None or at < until:
                totals[unit][metric] += amount
        units = [u for u, t in totals.items() if t["impressions"] > 0]
        table: dict[str, list[Any]] = {
            "user_id": units,
            "variant": [self.variants[u] for u in units],
            **{m: [totals[u][m] for u in units] for m in METRIC_COLUMNS},
        }
        if any(any(self.pre.get(u, (0.0, 0.0))) for u in units):
            table["pre_purchases"] = [self.pre.get(u, (0.0, 0.0))[0] for u in units]
            table["pre_revenue"] = [self.pre.get(u, (0.0, 0.0))[1] for u in units]
        schema = {c: pl.Float64 for c in table} | {"user_id": pl.String, "variant": pl.String}
        return pl.DataFrame(table, schema=schema)

    def totals(self, until: float | None = None) -> dict[str, dict[str, float]]:
        """Per variant: users and the sums of each metric."""
        return totals_of(self.outcomes(until), [v.name for v in self.experiment.variants])

    @property
    def first_at(self) -> float | None:
        return min((at for _, metric, _, at in self.rows if metric == "impressions"), default=None)


def totals_of(outcomes: pl.DataFrame, variants: list[str]) -> dict[str, dict[str, float]]:
    """Per variant of an outcome table: users and the sums of each metric."""
    out: dict[str, dict[str, float]] = {}
    for variant in variants:
        arm = outcomes.filter(pl.col("variant") == variant)
        out[variant] = {"users": float(arm.height)} | {
            m: float(arm[m].sum()) for m in METRIC_COLUMNS
        }
    return out


def attribute(
    log: EventLog,
    experiment: Experiment,
    until: float | None = None,
    window: float = DEFAULT_WINDOW_SECONDS,
    pre_days: float = DEFAULT_PRE_DAYS,
) -> Attribution:
    """The experiment's impressions and outcomes up to `until` (default: now): its lists
    served before its end, and what followed them, up to `window` after the end too."""
    if window < 0 or pre_days < 0:
        raise ValueError("the attribution window and the pre-period must be >= 0")
    now = until if until is not None else time.time()
    served_until = min(now, experiment.end) if experiment.end is not None else now
    events_until = min(now, experiment.end + window) if experiment.end is not None else now
    result = Attribution(experiment)
    lists = list(
        log.served_lists(
            experiment.placement, experiment.start, served_until, experiment=experiment.name
        )
    )
    index = _Shown()
    for served in lists:
        if served.unit is None or served.variant is None:
            continue
        known = result.variants.setdefault(served.unit, served.variant)
        if known != served.variant:
            result.mixed_units += 1
            continue
        result.lists += 1
        result.rows.append((served.unit, "impressions", 1.0, served.served_at))
        index.add(served)
    clicked: set[tuple[str, str]] = set()
    for kind in (*CLICKS, "cart", "purchase"):
        for event in log.events_of_type(kind, experiment.start, events_until):
            if kind in CLICKS:
                carried = index.by_id.get(event.recommendation_id or "")
                if carried is None or event.item_id not in carried[1]:
                    continue
                key = (carried[0].recommendation_id, event.item_id or "")
                if key not in clicked:
                    clicked.add(key)
                    result.rows.append((carried[0].unit or "", "clicks", 1.0, event.received_at))
                continue
            unit = index.unit_of(event, window)
            if unit is None:
                continue
            metric = "carts" if kind == "cart" else "purchases"
            result.rows.append((unit, metric, 1.0, event.received_at))
            if kind == "purchase" and event.value:
                result.rows.append((unit, "revenue", float(event.value), event.received_at))
    if pre_days > 0:
        result.pre = _pre_period(log, result.variants, experiment.start, pre_days)
    return result


class _Shown:
    """The experiment's lists by id, and by session and by user in time order."""

    def __init__(self) -> None:
        self.by_id: dict[str, tuple[ServedList, frozenset[str]]] = {}
        self._by_owner: dict[str, list[tuple[ServedList, frozenset[str]]]] = defaultdict(list)
        self._times: dict[str, list[float]] = defaultdict(list)  # served_at, as _by_owner

    def add(self, served: ServedList) -> None:
        items = frozenset(item for item, _, _ in served.items)
        self.by_id[served.recommendation_id] = (served, items)
        for owner in _owners(served.session_id, served.user_id):
            self._by_owner[owner].append((served, items))  # lists come in time order
            self._times[owner].append(served.served_at)

    def unit_of(self, event: LoggedEvent, window: float) -> str | None:
        """The unit a cart add or purchase counts for, if a list of the experiment led to it."""
        carried = self.by_id.get(event.recommendation_id or "")
        if carried is not None and event.item_id in carried[1]:
            return carried[0].unit
        best: tuple[float, ServedList] | None = None
        for owner in _owners(event.session_id, event.user_id):
            shown, times = self._by_owner.get(owner, []), self._times.get(owner, [])
            for k in range(bisect_right(times, event.received_at) - 1, -1, -1):  # latest first
                served, items = shown[k]
                at = times[k]
                if event.received_at - at > window:
                    break
                if event.item_id in items:
                    if best is None or at > best[0]:
                        best = (at, served)
                    break
        return best[1].unit if best is not None else None


def _owners(session_id: str | None, user_id: str | None) -> list[str]:
    return [f"session:{session_id}"] * bool(session_id) + [f"user:{user_id}"] * bool(user_id)


def _pre_period(
    log: EventLog, variants: dict[str, str], start: float, pre_days: float
) -> dict[str, tuple[float, float]]:
    """Per user unit, its purchases and revenue in the `pre_days` before `start`."""
    users = {unit for unit in variants if unit.startswith("user:")}
    pre: dict[str, tuple[float, float]] = {}
    if not users:
        return pre
    for event in log.events_of_type("purchase", start - pre_days * 86_400, start):
        unit = f"user:{event.user_id}" if event.user_id else None
        if unit in users:
            assert unit is not None
            buys, revenue = pre.get(unit, (0.0, 0.0))
            pre[unit] = (buys + 1, revenue + float(event.value or 0.0))
    return pre
