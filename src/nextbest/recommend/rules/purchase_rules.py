"""The treadmill rule: what a purchase says about what to show next, learned from purchases.

Someone who just bought a treadmill will not buy a second one: showing them treadmills wastes
the slot. They may well buy running shoes. Someone who bought coffee beans will buy them again,
but not tomorrow: about when the last bag runs out. nextbest learns both from the purchases in
the event log when a model is trained (`nextbest train --items ...`), per leaf category, and
writes them as `purchase_rules.json` into the model version. `nextbest rules show` prints them.

How a category is judged. A buyer is a registered user, or for an anonymous purchase the
session. The *returning* buyers of a category are those we saw again (any event) at least
`min_follow_days` after their first purchase there. Only they can show what happens after a
purchase: anonymous buyers never return, and buyers never seen again would otherwise count as
not having re-bought. Of the returning buyers we take two shares: the *re-buy share*, who
bought it again (purchases less than `min_rebuy_gap_days` apart count as one, so a second order
the same day is no re-buy), and the *revisit share*, who came back to the category (any event
there in a later session, a view will do). With fewer than `min_buyers` returning buyers the
category is *unknown* and no rule applies. Otherwise it is

* *consumable* when the re-buy share is at least `rebuy_share` (coffee beans, cat litter): its
  cycle is the median gap between a buyer's consecutive purchases. It is held back for the
  first `consumable_hold_share` of the cycle, then boosted ("time to re-buy") until
  `consumable_boost_until` cycles after the purchase;
* *durable* when the re-buy share is at most `durable_max_share` and the revisit share at
  most `durable_max_revisit` (treadmills, sofas, phones): bought once, and its buyers stop
  looking at it. After a purchase the category is held back from that shopper for
  `durable_hold_days`;
* *regular* otherwise (running shoes: sometimes bought again, with no rhythm): no rule.

The revisit share is what keeps a category from being called durable on too little evidence.
A regular category re-bought by 5% of its buyers shows no re-buy at all among 30 returning
buyers one time in five, but its buyers keep browsing it. Likewise a consumable whose cycle is
longer than the log (sunscreen every 60 days, in 45 days of events) cannot show its re-buys,
but its buyers come back to look: it comes out regular, not durable, so it is not held back
for half a year. A log of purchases only still works: there, a revisit is a re-buy.

Complements. For each pair of categories A != B we count the buyers who bought B within
`complement_window_days` after buying A (strictly later: items of one checkout share a time and
say nothing about which led to which). P(B after A) is that count over A's buyers, P(B) is B's
share of all buyers, and lift is their ratio: how much more likely a buyer of A is to buy B
next than anybody is to buy B at all. A category everybody buys has a lift near 1, however
often it follows. Order matters too: shoppers who simply like both A and B (two kinds of
headphones) buy them in either order, while a treadmill leads to running shoes and not the
other way round. So a pair is kept only if B after A is at least `min_direction` times as
common as B before A (within the same window; each count + 1) and more common by at least
`min_direction_z` standard errors (a sign test: (after - before) / sqrt(after + before)), its
lift is at least `min_lift` and it has at least `min_pair_count` buyers; of those, the
`max_complements` with the highest lift per category. For `complement_window_days` after
buying A, A's complements are boosted with weight 1 - 1/lift (0 for no association, towards 1
for a strong one).

At request time `PurchaseRules.after_purchases` turns the shopper's purchases (this session's
and their history's) into the categories to hold back and the ones to boost, with the category
bought that causes each, in O(purchases) dictionary lookups.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl

logger = logging.getLogger(__name__)

RULES_FILE = "purchase_rules.json"
FILE_FORMAT = "nextbest-purchase-rules"
FILE_VERSION = 1
DAY = 86_400.0

Kind = Literal["durable", "consumable", "regular", "unknown"]
KINDS: tuple[Kind, ...] = get_args(Kind)

# A consumable whose cycle has come round is the strongest hint there is: the shopper came
# back for it. Complement weights (1 - 1/lift) stay below it.
REBUY_WEIGHT = 1.0

# Pairs are counted by joining each buyer's purchases with themselves: quadratic per buyer.
# A reseller account with thousands of orders would blow that up and say little about
# shoppers, so only a buyer's latest purchase visits count for complements.
MAX_VISITS_PER_BUYER = 500

_DIGITS = 4  # learned shares, days and lifts are rounded: the file is read by people too


@dataclass(frozen=True)
class PurchaseRulesConfig:
    """How categories are judged and how long rules last. See the module docstring."""

    min_buyers: int = 20  # returning buyers a category needs to be judged at all
    min_follow_days: float = 14.0  # a buyer seen again this long after buying is "returning"
    rebuy_share: float = 0.25  # re-buy share at or above which a category is consumable
    durable_max_share: float = 0.02  # re-buy share at or below which it is durable ...
    durable_max_revisit: float = 0.25  # ... if at most this share came back to the category
    min_rebuy_gap_days: float = 1.0  # purchases closer than this are one purchase
    durable_hold_days: float = 180.0  # a durable's category is held back this long
    consumable_hold_share: float = 0.8  # a consumable is held back for this share of its cycle
    consumable_boost_until: float = 1.5  # ... and boosted from then until this many cycles
    complement_window_days: float = 30.0  # B within this many days after A counts A -> B
    min_lift: float = 2.0
    min_direction: float = 1.5  # B after A must be this many times as common as B before A
    min_direction_z: float = 1.64  # ... and more common by this many standard errors
    min_pair_count: int = 5  # buyers who bought B after A
    max_complements: int = 5  # per category, highest lift first

    def __post_init__(self) -> None:
        _check_int("min_buyers", self.min_buyers, 1, 10**9)
        _check_number("min_follow_days", self.min_follow_days, 0.0, 3650.0)
        _check_number("rebuy_share", self.rebuy_share, 0.0, 1.0)
        _check_number("durable_max_share", self.durable_max_share, 0.0, 1.0)
        if self.durable_max_share >= self.rebuy_share:
            raise ValueError(
                f"PurchaseRulesConfig.durable_max_share={self.durable_max_share!r}: must be "
                f"below rebuy_share={self.rebuy_share!r}"
            )
        _check_number("durable_max_revisit", self.durable_max_revisit, 0.0, 1.0)
        _check_number("min_rebuy_gap_days", self.min_rebuy_gap_days, 0.0, 365.0)
        _check_number("durable_hold_days", self.durable_hold_days, 0.0, 3650.0)
        _check_number("consumable_hold_share", self.consumable_hold_share, 0.0, 1.0)
        _check_number(
            "consumable_boost_until", self.consumable_boost_until, self.consumable_hold_share, 10.0
        )
        _check_number("complement_window_days", self.complement_window_days, 0.0, 3650.0)
        _check_number("min_lift", self.min_lift, 1.0, 1e6)
        _check_number("min_direction", self.min_direction, 0.0, 1e6)
        _check_number("min_direction_z", self.min_direction_z, -1e6, 1e6)
        _check_int("min_pair_count", self.min_pair_count, 1, 10**9)
        _check_int("max_complements", self.max_complements, 0, 1000)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(
            f"PurchaseRulesConfig.{name}={value!r}: must be an integer in [{low}, {high}]"
        )


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ValueError(
            f"PurchaseRulesConfig.{name}={value!r}: must be a number in [{low}, {high}]"
        )


@dataclass(frozen=True)
class CategoryRule:
    """What was learned about one leaf category."""

    category: str  # the path, joined by " > "
    kind: Kind
    buyers: int  # distinct buyers (registered users, or sessions for anonymous purchases)
    purchases: int  # purchase events
    returning: int  # buyers seen again at least min_follow_days after their first purchase
    rebuy_share: float  # of the returning buyers, the share who bought it again
    revisit_share: float  # of the returning buyers, the share with an event there later
    cycle_days: float | None  # consumables: median days between a buyer's purchases
    hold_days: float  # how long it is held back after a purchase (0: never)
    complements: tuple[tuple[str, float], ...]  # (category, lift), highest lift first


@dataclass(frozen=True)
class AfterPurchase:
    """What a shopper's purchases mean now.

    `held`: category -> the bought category that holds it back (for now, itself: the treadmill
    bought holds back treadmills). `boosted`: category -> (weight in (0, 1], the bought
    category that causes it), for complements of recent purchases and consumables due again.
    A category held back is never boosted.
    """

    held: dict[str, str] = field(default_factory=dict)
    boosted: dict[str, tuple[float, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class PurchaseRules:
    """The learned table, and the per-request lookups the pipeline calls."""

    categories: Mapping[str, CategoryRule]
    config: PurchaseRulesConfig = field(default_factory=PurchaseRulesConfig)
    buyers: int = 0  # distinct buyers in the events learned from
    purchases: int = 0  # purchases of items with a known category

    def category(self, path: str) -> CategoryRule | None:
        return self.categories.get(path)

    def __iter__(self) -> Iterator[CategoryRule]:
        return iter(self.categories.values())

    def __len__(self) -> int:
        return len(self.categories)

    def counts(self) -> dict[str, int]:
        """Categories per kind, and `complement_pairs`: the learned A -> B pairs."""
        out: dict[str, int] = dict.fromkeys(KINDS, 0)
        for rule in self.categories.values():
            out[rule.kind] += 1
        out["complement_pairs"] = sum(len(r.complements) for r in self.categories.values())
        return out

    def summary(self) -> str:
        """One line for people: what was learned from how much."""
        n = self.counts()
        return (
            f"purchase rules: {n['durable']} durable, {n['consumable']} consumable, "
            f"{n['regular']} regular, {n['unknown']} unknown categories, "
            f"{n['complement_pairs']} complement pairs "
            f"(from {self.purchases:,} purchases by {self.buyers:,} buyers)"
        )

    def after_purchases(self, purchases: Sequence[tuple[str, float]], now: float) -> AfterPurchase:
        """Held and boosted categories for a shopper with `purchases` (path, Unix time) at `now`.

        Only the latest purchase of each category counts: a treadmill bought twice is held
        from the second purchase on. A purchase time after `now` (clocks differ) counts as now.
        """
        latest: dict[str, float] = {}
        for path, when in purchases:
            if when > latest.get(path, -math.inf):
                latest[path] = when
        held: dict[str, str] = {}
        boosted: dict[str, tuple[float, str]] = {}
        window = self.config.complement_window_days * DAY
        boost_until = self.config.consumable_boost_until
        for path, when in latest.items():
            rule = self.categories.get(path)
            if rule is None:
                continue
            age = max(now - when, 0.0)
            if rule.kind == "durable":
                if age < rule.hold_days * DAY:
                    held[path] = path
            elif rule.kind == "consumable" and rule.cycle_days:
                if age < rule.hold_days * DAY:
                    held[path] = path
                elif age < boost_until * rule.cycle_days * DAY:
                    _boost(boosted, path, REBUY_WEIGHT, path)
            if age <= window:
                for other, lift in rule.complements:
                    _boost(boosted, other, 1.0 - 1.0 / lift, path)
        for path in held:
            boosted.pop(path, None)
        return AfterPurchase(held=held, boosted=boosted)

    def save(self, folder: Path) -> Path:
        """Write `purchase_rules.json` into `folder` (a model version); returns its path."""
        folder.mkdir(parents=True, exist_ok=True)
        document = {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "config": asdict(self.config),
            "buyers": self.buyers,
            "purchases": self.purchases,
            "categories": [_rule_record(rule) for rule in self.categories.values()],
        }
        path = folder / RULES_FILE
        # Written beside and renamed over: a server reloading the folder never reads half.
        staging = folder / f".{RULES_FILE}.tmp"
        staging.write_text(json.dumps(document, indent=1, ensure_ascii=False))
        os.replace(staging, path)
        return path

    @classmethod
    def load(cls, folder: Path) -> PurchaseRules | None:
        """The rules saved in `folder`, or None when it has none; ValueError if unreadable."""
        path = folder / RULES_FILE
        if not path.exists():
            return None
        try:
            document = json.loads(path.read_text())
            if document.get("format") != FILE_FORMAT:
                raise ValueError(f"format is {document.get('format')!r}, not {FILE_FORMAT!r}")
            if document.get("version") != FILE_VERSION:
                raise ValueError(f"version {document.get('version')!r} is not {FILE_VERSION}")
            known = {f.name for f in fields(PurchaseRulesConfig)}
            config = PurchaseRulesConfig(
                **{k: v for k, v in document["config"].items() if k in known}
            )
            rules = [_rule_from_record(record) for record in document["categories"]]
            return cls(
                categories={rule.category: rule for rule in rules},
                config=config,
                buyers=int(document["buyers"]),
                purchases=int(document["purchases"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path} is not a readable purchase rules file: {exc}") from exc


def _boost(boosted: dict[str, tuple[float, str]], path: str, weight: float, cause: str) -> None:
    if weight > boosted.get(path, (-1.0, ""))[0]:
        boosted[path] = (weight, cause)


def _rule_record(rule: CategoryRule) -> dict[str, Any]:
    record = asdict(rule)
    record["complements"] = [[other, lift] for other, lift in rule.complements]
    return record


def _rule_from_record(record: dict[str, Any]) -> CategoryRule:
    kind = record["kind"]
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} of {record.get('category')!r}")
    cycle = record["cycle_days"]
    return CategoryRule(
        category=str(record["category"]),
        kind=kind,
        buyers=int(record["buyers"]),
        purchases=int(record["purchases"]),
        returning=int(record["returning"]),
        rebuy_share=float(record["rebuy_share"]),
        revisit_share=float(record["revisit_share"]),
        cycle_days=None if cycle is None else float(cycle),
        hold_days=float(record["hold_days"]),
        complements=tuple((str(other), float(lift)) for other, lift in record["complements"]),
    )


EVENT_COLUMNS = ("type", "session_id", "item_id", "user_id", "timestamp")
ITEM_COLUMNS = ("item_id", "category_path")


def learn_purchase_rules(
    events: pl.DataFrame, items: pl.DataFrame, config: PurchaseRulesConfig | None = None
) -> PurchaseRules:
    """Learn the per-category rules from `events` (EVENT_SCHEMA) and `items` (ITEM_SCHEMA).

    Purchases of items with a category make the rules; the other events tell when a buyer was
    seen again and whether they came back to the category. ValueError when a needed column is
    missing.
    """
    config = config or PurchaseRulesConfig()
    _require(events, EVENT_COLUMNS, "event")
    _require(items, ITEM_COLUMNS, "item")
    started = time.perf_counter()
    visits, last_seen = _category_sessions(events, items)
    bought = visits.filter(pl.col("n") > 0)
    n_purchases = int(bought["n"].sum()) if bought.height else 0
    n_buyers = bought["buyer"].n_unique()
    table = _category_table(visits, bought, last_seen, config)
    complements = _complements(bought, table, n_buyers, config)
    rules: dict[str, CategoryRule] = {}
    for row in table.sort("category").iter_rows(named=True):
        path = row["category"]
        rules[path] = CategoryRule(
            category=path,
            kind=row["kind"],
            buyers=row["buyers"],
            purchases=row["purchases"],
            returning=row["returning"],
            rebuy_share=row["rebuy_share"],
            revisit_share=row["revisit_share"],
            cycle_days=row["cycle_days"],
            hold_days=row["hold_days"],
            complements=complements.get(path, ()),
        )
    learned = PurchaseRules(rules, config, buyers=n_buyers, purchases=n_purchases)
    logger.debug("%s in %.2f s", learned.summary(), time.perf_counter() - started)
    return learned


def _require(frame: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the {what} table lacks column(s) {missing} (it has {frame.columns[:12]})"
        )


def _category_sessions(
    events: pl.DataFrame, items: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(visits, last_seen).

    visits: one row per (buyer, category, session) with an item event in the category: `t` the
    first purchase there (null if none), `n` the purchases, `end` the last event there.
    last_seen: each buyer's last event time, of any kind.
    """
    # A session that names a user anywhere (a login mid-session) belongs to that user: the
    # purchases before the login are theirs too.
    sessions = (
        events.lazy()
        .group_by("session_id")
        .agg(
            pl.col("user_id").drop_nulls().min().alias("user"),
            pl.col("timestamp").max().alias("end"),
        )
        .with_columns(
            pl.when(pl.col("user").is_null())
            .then(pl.lit("s:") + pl.col("session_id"))
            .otherwise(pl.lit("u:") + pl.col("user"))
            .alias("buyer")
        )
    )
    catalog = (
        items.lazy()
        .select("item_id", pl.col("category_path").str.strip_chars().alias("category"))
        .filter(pl.col("item_id").is_not_null() & (pl.col("category").str.len_chars() > 0))
        .unique("item_id", keep="last", maintain_order=True)
    )
    purchase = pl.col("type") == "purchase"
    visits = (
        events.lazy()
        .filter(pl.col("item_id").is_not_null())
        .select("session_id", "item_id", "timestamp", purchase.alias("bought"))
        .join(catalog, on="item_id", how="inner")
        .join(sessions.select("session_id", "buyer"), on="session_id", how="inner")
        .group_by("buyer", "category", "session_id")
        .agg(
            pl.col("timestamp").filter(pl.col("bought")).min().alias("t"),
            pl.col("bought").sum().cast(pl.Int64).alias("n"),
            pl.col("timestamp").max().alias("end"),
        )
        .sort("buyer", "category", "t", "session_id", nulls_last=True)
    )
    last_seen = sessions.group_by("buyer").agg(pl.col("end").max().alias("last"))
    visits_frame, last_frame = pl.collect_all([visits, last_seen])
    return visits_frame, last_frame


def _category_table(
    visits: pl.DataFrame,
    bought: pl.DataFrame,
    last_seen: pl.DataFrame,
    config: PurchaseRulesConfig,
) -> pl.DataFrame:
    """One row per category bought: the counts and shares, kind, cycle and hold."""
    min_gap = config.min_rebuy_gap_days * DAY
    by_pair = ["buyer", "category"]
    # Purchase visits closer than min_gap to the previous one merge into one purchase: a
    # second order the same day is no re-buy, and a cycle is measured between purchases.
    episodes = (
        bought.lazy()
        .with_columns(pl.col("t").diff().over(by_pair).alias("gap"))
        .filter(pl.col("gap").is_null() | (pl.col("gap") >= min_gap))
        .with_columns(pl.col("t").diff().over(by_pair).alias("gap"))
    )
    per_buyer = (
        episodes.group_by(by_pair)
        .agg(
            pl.col("t").min().alias("first"),
            pl.col("session_id").sort_by("t").first().alias("first_session"),
            pl.len().alias("episodes"),
        )
        .join(last_seen.lazy(), on="buyer", how="left")
        .with_columns(
            ((pl.col("last") - pl.col("first")) >= config.min_follow_days * DAY).alias("back")
        )
    )
    # Came back to the category: any event there in a later session than the first purchase.
    revisited = (
        per_buyer.select(*by_pair, "first", "first_session")
        .join(visits.lazy().select(*by_pair, "session_id", "end"), on=by_pair, how="inner")
        .filter(
            (pl.col("session_id") != pl.col("first_session")) & (pl.col("end") > pl.col("first"))
        )
        .select(by_pair)
        .unique()
        .with_columns(pl.lit(True).alias("revisited"))
    )
    counts = (
        per_buyer.join(revisited, on=by_pair, how="left")
        .with_columns(pl.col("revisited").fill_null(False))
        .group_by("category")
        .agg(
            pl.len().alias("buyers"),
            pl.col("back").sum().alias("returning"),
            (pl.col("back") & (pl.col("episodes") > 1)).sum().alias("rebuyers"),
            (pl.col("back") & pl.col("revisited")).sum().alias("revisitors"),
        )
    )
    cycles = episodes.group_by("category").agg((pl.col("gap").median() / DAY).alias("median_gap"))
    purchases = bought.lazy().group_by("category").agg(pl.col("n").sum().alias("purchases"))
    returning = pl.col("returning")

    def share(column: str) -> pl.Expr:
        return pl.when(returning > 0).then(pl.col(column) / returning).otherwise(0.0)

    table = (
        counts.join(cycles, on="category", how="left")
        .join(purchases, on="category", how="left")
        .with_columns(
            share("rebuyers").round(_DIGITS).alias("rebuy_share"),
            share("revisitors").round(_DIGITS).alias("revisit_share"),
        )
        .with_columns(
            pl.when(returning < config.min_buyers)
            .then(pl.lit("unknown"))
            .when(
                (pl.col("rebuy_share") >= config.rebuy_share) & pl.col("median_gap").is_not_null()
            )
            .then(pl.lit("consumable"))
            .when(
                (pl.col("rebuy_share") <= config.durable_max_share)
                & (pl.col("revisit_share") <= config.durable_max_revisit)
            )
            .then(pl.lit("durable"))
            .otherwise(pl.lit("regular"))
            .alias("kind")
        )
        .with_columns(
            pl.when(pl.col("kind") == "consumable")
            .then(pl.col("median_gap").round(_DIGITS))
            .alias("cycle_days")
        )
        .with_columns(
            pl.when(pl.col("kind") == "durable")
            .then(pl.lit(config.durable_hold_days))
            .when(pl.col("kind") == "consumable")
            .then((pl.col("cycle_days") * config.consumable_hold_share).round(_DIGITS))
            .otherwise(pl.lit(0.0))
            .alias("hold_days")
        )
        .select(
            "category",
            "kind",
            pl.col("buyers").cast(pl.Int64),
            pl.col("purchases").cast(pl.Int64),
            pl.col("returning").cast(pl.Int64),
            "rebuy_share",
            "revisit_share",
            "cycle_days",
            pl.col("hold_days").cast(pl.Float64),
        )
    )
    return table.collect()


def _complements(
    visits: pl.DataFrame, table: pl.DataFrame, n_buyers: int, config: PurchaseRulesConfig
) -> dict[str, tuple[tuple[str, float], ...]]:
    """category A -> its complements ((B, lift), ...), highest lift first."""
    if config.max_complements == 0 or visits.height == 0:
        return {}
    window = config.complement_window_days * DAY
    recent = (
        visits.lazy()
        .select("buyer", "category", "t")
        .filter(pl.col("t").rank("ordinal", descending=True).over("buyer") <= MAX_VISITS_PER_BUYER)
    )
    other = recent.rename({"category": "next", "t": "t_next"})
    delay = pl.col("t_next") - pl.col("t")
    near = (
        recent.join(other, on="buyer", how="inner")
        .filter((pl.col("next") != pl.col("category")) & (delay.abs() <= window) & (delay != 0))
        .select("buyer", "category", "next", (delay > 0).alias("after"))
        .unique()
        .group_by("category", "next")
        .agg(
            pl.col("after").sum().cast(pl.Int64).alias("count"),
            (~pl.col("after")).sum().cast(pl.Int64).alias("before"),
        )
    )
    buyers = table.lazy().select("category", "buyers")
    p_next_after = pl.col("count") / pl.col("buyers")
    p_next = pl.col("next_buyers") / n_buyers
    pairs = (
        near.filter(pl.col("count") >= config.min_pair_count)
        .join(buyers, on="category", how="inner")
        .join(buyers.rename({"category": "next", "buyers": "next_buyers"}), on="next", how="inner")
        .with_columns((p_next_after / p_next).alias("lift"))
        # Buyers who like both A and B buy them in either order; a purchase of A that leads to
        # B shows as B after A more often than B before A: by a margin (the ratio), and by more
        # than chance (a sign test's z: with 5 after and 1 before, the ratio alone is noise).
        .filter(
            (pl.col("lift") >= config.min_lift)
            & ((pl.col("count") + 1) / (pl.col("before") + 1) >= config.min_direction)
            & (
                (pl.col("count") - pl.col("before")) / (pl.col("count") + pl.col("before")).sqrt()
                >= config.min_direction_z
            )
        )
        .sort(["category", "lift", "count", "next"], descending=[False, True, True, False])
        .group_by("category", maintain_order=True)
        .head(config.max_complements)
        .with_columns(pl.col("lift").round(_DIGITS))
        .collect()
    )
    out: dict[str, list[tuple[str, float]]] = {}
    for path, following, lift in pairs.select("category", "next", "lift").iter_rows():
        out.setdefault(path, []).append((following, lift))
    return {path: tuple(found) for path, found in out.items()}
