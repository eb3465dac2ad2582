"""The offline store: every feature of `definitions.py` for each day, as Parquet.

    OUT/item/day=2024-01-05/data.parquet    item_id, as_of, one column per item feature
    OUT/user/day=2024-01-05/data.parquet    user_id, as_of, ...
    OUT/pair/day=2024-01-05/data.parquet    pair_id (definitions.pair_key), as_of, ...
    OUT/manifest.json                       the days, the features, the latest as_of

The row of day D holds values of the events *before* D's start (`as_of`, epoch seconds, UTC
days) and nothing later: an event at 10:00 on the 5th is counted from the 6th's partition
on. That is what makes the store point-in-time correct for training: a ranker's case at any
moment of the 5th (`as_of_rows`) reads the 5th's partition, which a server on the 5th would
have read too (the online store holds the latest partition). Values are a day stale, the
same stale offline and online.

A partition holds the entities with an event in the longest window of their features
(`definitions.horizon`); any other entity reads every feature's default.

Each day is computed from the daily counts of all days before it (one group-by of the log,
then a filter and a sum per day and window), so a log of N days costs about N times its
number of (entity, day) pairs: seconds for months of a shop's log. A run with `last_days`
writes only the newest days and keeps the earlier ones; the daily counts are still of the
whole log (a days-since feature reads an entity's first event ever).

Pairs are the large entity: a session's day with n distinct items makes n(n-1) ordered
pairs (n capped at `MAX_PAIR_ITEMS`, its latest), and a day's partition holds every pair
seen in the 28 days before it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from nextbest.twostage.store.definitions import (
    ENTITY_KEYS,
    FEATURES,
    MAX_PAIR_ITEMS,
    SECONDS_PER_DAY,
    Feature,
    by_name,
    entities,
    features_of,
    fill_missing,
    horizon,
)

MANIFEST = "manifest.json"


def day_name(day: int) -> str:
    """A day number (days since the epoch, UTC) as its date."""
    return datetime.fromtimestamp(day * SECONDS_PER_DAY, UTC).strftime("%Y-%m-%d")


def partition(out: Path, entity: str, day: int) -> Path:
    return out / entity / f"day={day_name(day)}" / "data.parquet"


def _type_column(feature: Feature) -> str:
    return "n_" + ("_".join(feature.types) or "all")


def daily_counts(events: pl.DataFrame, entity: str, features: Sequence[Feature]) -> pl.DataFrame:
    """Per (entity id, day): the events of each type set the entity's features count, and
    its first and last event's time that day."""
    if entity == "pair":
        return pair_daily_counts(events, features)
    key = ENTITY_KEYS[entity]
    type_sets = {_type_column(f): f.types for f in features if f.kind == "count"}
    # every event: pl.len(), not a summed literal (one value per group, not per row)
    counts = [
        pl.col("type").is_in(list(types)).sum().alias(name) if types else pl.len().alias(name)
        for name, types in type_sets.items()
    ]
    return (
        events.filter(pl.col(key).is_not_null())
        .with_columns((pl.col("timestamp") // SECONDS_PER_DAY).cast(pl.Int64).alias("day"))
        .group_by(key, "day")
        .agg(
            *counts,
            pl.col("timestamp").min().alias("first"),
            pl.col("timestamp").max().alias("last"),
        )
    )


def pair_daily_counts(events: pl.DataFrame, features: Sequence[Feature]) -> pl.DataFrame:
    """Per (pair_id, day): the sessions of that day in which the anchor had an event and the
    item an event of each type set the pair features count (`first`/`last`: the day's
    latest event of the item, which no pair feature reads)."""
    if "session_id" not in events.columns:
        raise ValueError("pair features need the events' session_id column")
    type_sets = {_type_column(f): f.types for f in features if f.kind == "count"}
    seen = (
        events.filter(pl.col("item_id").is_not_null() & pl.col("session_id").is_not_null())
        .with_columns((pl.col("timestamp") // SECONDS_PER_DAY).cast(pl.Int64).alias("day"))
        .group_by("session_id", "day", "item_id")
        .agg(
            pl.col("timestamp").max().alias("last"),
            *(
                (pl.col("type").is_in(list(types)).any() if types else pl.len() > 0).alias(name)
                for name, types in type_sets.items()
            ),
        )
        # a long session's day would make n^2 pairs: its latest items only
        .filter(
            pl.col("last").rank("ordinal", descending=True).over("session_id", "day")
            <= MAX_PAIR_ITEMS
        )
    )
    anchors = seen.select("session_id", "day", pl.col("item_id").alias("anchor"))
    pairs = anchors.join(seen, on=["session_id", "day"]).filter(
        pl.col("anchor") != pl.col("item_id")
    )
    pair_id = pl.format("{}:{}{}", pl.col("anchor").str.len_chars(), "anchor", "item_id")
    return (
        pairs.with_columns(pair_id.alias("pair_id"))
        .group_by("pair_id", "day")
        .agg(
            *(pl.col(name).sum().alias(name) for name in type_sets),
            pl.col("last").min().alias("first"),
            pl.col("last").max().alias("last"),
        )
    )


def day_values(
    daily: pl.DataFrame, entity: str, day: int, features: Sequence[Feature]
) -> pl.DataFrame:
    """The features of one entity kind as of the start of `day`: one row per entity with an
    event in the `horizon` days before it, computed from the days before `day` only."""
    key = ENTITY_KEYS[entity]
    as_of = float(day * SECONDS_PER_DAY)
    before = daily.filter(pl.col("day") < day)  # the point-in-time cut: nothing of `day` on
    recent = before.filter(pl.col("day") >= day - horizon(entity, features))
    # one pass over the horizon, each window's sum a filtered sum (not a group-by per window)
    sums = []
    for f in features:
        inside = pl.col("day") >= day - (f.days or 0)
        if f.kind == "count":
            sums.append(pl.col(_type_column(f)).filter(inside).sum().alias(f.name))
        elif f.kind == "active_days":
            sums.append(inside.sum().alias(f.name))
    table = recent.group_by(key).agg(sums) if sums else recent.select(key).unique()
    if any(f.kind.startswith("days_since") for f in features):  # all days, not the horizon
        ever = before.group_by(key).agg(pl.col("first").min(), pl.col("last").max())
        table = table.join(ever, on=key, how="left")
    columns = []
    for f in features:
        if f.kind in ("count", "active_days"):
            columns.append(pl.col(f.name).fill_null(0).cast(pl.Float64))
        elif f.kind == "ratio":
            top, bottom = pl.col(f.over[0]).cast(pl.Float64), pl.col(f.over[1]).cast(pl.Float64)
            columns.append(pl.when(bottom > 0).then(top / bottom).otherwise(None).alias(f.name))
        else:
            moment = pl.col("first" if f.kind == "days_since_first" else "last")
            columns.append(((as_of - moment) / SECONDS_PER_DAY).cast(pl.Float64).alias(f.name))
    counted = table.with_columns(
        [c for c, f in zip(columns, features, strict=True) if f.kind != "ratio"]
    )
    finished = counted.with_columns(
        [c for c, f in zip(columns, features, strict=True) if f.kind == "ratio"]
    )
    return finished.select(
        pl.col(key).cast(pl.String),
        pl.lit(as_of).alias("as_of"),
        *(pl.col(f.name).cast(pl.Float64).fill_nan(None) for f in features),
    ).sort(key)


def log_days(events: pl.DataFrame) -> tuple[int, int]:
    """The day numbers of the log's first and last events."""
    times = events["timestamp"].cast(pl.Float64).to_numpy()
    return int(times.min() // SECONDS_PER_DAY), int(times.max() // SECONDS_PER_DAY)


@dataclass(frozen=True)
class Materialized:
    days: list[int]  # the partitions written, in order
    rows: dict[str, int]  # entity -> rows of the latest partition
    latest: dict[str, pl.DataFrame]  # entity -> the latest partition (what goes online)
    kept: list[int] = field(default_factory=list)  # earlier partitions left as they were

    @property
    def as_of(self) -> float:
        return float(self.days[-1] * SECONDS_PER_DAY)

    def online_tables(self) -> dict[str, tuple[list[str], list[str], np.ndarray]]:
        """The latest partition as `write_online` takes it: entity -> (ids, names, values)."""
        return {entity: as_rows(entity, table) for entity, table in self.latest.items()}


def as_rows(entity: str, table: pl.DataFrame) -> tuple[list[str], list[str], np.ndarray]:
    """A partition's ids, feature names and values (NaN where null)."""
    names = [c for c in table.columns if c not in (ENTITY_KEYS[entity], "as_of")]
    values = table.select(names).to_numpy().astype(np.float64)
    return table[ENTITY_KEYS[entity]].to_list(), names, values


def materialize_offline(
    events: pl.DataFrame,
    out: Path,
    features: Sequence[Feature] = FEATURES,
    last_days: int | None = None,
    on_day: Callable[[int], None] | None = None,
) -> Materialized:
    """Write a partition per day after the log's first, through the day after its last (the
    values a server uses from then on), and remove any other partition of `out`.

    `last_days`: write the latest that many days (and any day between them and the store's
    last), keeping the earlier partitions of a store written with the same features: a
    day's values depend only on the events before it, so a log that grows at its end leaves
    them as they were. The partitions of a store of other features (the definitions
    changed) are all removed."""
    if events.is_empty():
        raise ValueError("the event log is empty: there is nothing to compute features of")
    days, kept = plan_days(events, out, features, last_days)
    kinds = entities(features)
    names = names_by_entity(features)
    _remove_partitions_except(out, set(kept))
    daily = {e: daily_counts(events, e, features_of(e, features)) for e in kinds}
    latest: dict[str, pl.DataFrame] = {}
    for day in days:
        for entity in kinds:
            table = day_values(daily[entity], entity, day, features_of(entity, features))
            path = partition(out, entity, day)
            path.parent.mkdir(parents=True, exist_ok=True)
            table.write_parquet(path)
            latest[entity] = table
        if on_day is not None:
            on_day(day)
    written = sorted({*kept, *days})
    manifest = {
        "days": [day_name(d) for d in written],
        "as_of": float(written[-1] * SECONDS_PER_DAY),
        "features": names,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return Materialized(days, {e: t.height for e, t in latest.items()}, latest, kept)


def plan_days(
    events: pl.DataFrame, out: Path, features: Sequence[Feature], last_days: int | None
) -> tuple[list[int], list[int]]:
    """(the days `materialize_offline` writes, the days of the store at `out` it keeps)."""
    first, last = log_days(events)
    every_day = list(range(first + 1, last + 2))
    if last_days is None:
        return every_day, []
    start = every_day[-last_days:][0]
    # a store's last day counted its log's last day up to its last event, which later
    # events of that day change: written again, never kept
    kept = [d for d in stored_days(out, names_by_entity(features))[:-1] if d < start]
    # the days after the last one kept are written too: no gap before `start`
    return [d for d in every_day if d >= start or (kept and d > kept[-1])], kept


def names_by_entity(features: Sequence[Feature]) -> dict[str, list[str]]:
    """Each entity's feature names, in order: what a manifest records and compares."""
    return {e: [f.name for f in features_of(e, features)] for e in entities(features)}


def stored_days(out: Path, names: Mapping[str, list[str]]) -> list[int]:
    """The days of the store at `out`, when it was written with the features `names` (none
    when it has no manifest or other features)."""
    path = out / MANIFEST
    if not path.is_file():
        return []
    manifest = json.loads(path.read_text())
    if manifest.get("features") != dict(names):
        return []
    return sorted(_day_number(name) for name in manifest.get("days", []))


def _day_number(name: str) -> int:
    moment = datetime.strptime(name, "%Y-%m-%d").replace(tzinfo=UTC)
    return int(moment.timestamp()) // SECONDS_PER_DAY


def _remove_partitions_except(out: Path, keep: set[int]) -> None:
    """Delete every partition of `out` but those of the days `keep` (a partition of an
    earlier run must not linger beside the new ones)."""
    keep_names = {f"day={day_name(d)}" for d in keep}
    for entity in ENTITY_KEYS:
        folder = out / entity
        if not folder.exists():
            continue
        for day_folder in folder.iterdir():
            if day_folder.name not in keep_names:
                shutil.rmtree(day_folder) if day_folder.is_dir() else day_folder.unlink()


class OfflineFeatures:
    """Reads a materialized store point in time: the values each (entity, moment) had."""

    def __init__(self, folder: Path) -> None:
        if not (folder / MANIFEST).is_file():
            raise FileNotFoundError(
                f"no feature store at {folder} (no {MANIFEST}): materialize first"
            )
        self.folder = folder
        self.manifest = json.loads((folder / MANIFEST).read_text())

    def day(self, entity: str, day: int) -> pl.DataFrame:
        """The partition of `day` (empty, with the columns, when it was not written)."""
        path = partition(self.folder, entity, day)
        if path.is_file():
            return pl.read_parquet(path)
        names = self.manifest["features"].get(entity, [])
        schema = {ENTITY_KEYS[entity]: pl.String, "as_of": pl.Float64}
        return pl.DataFrame(schema=schema | dict.fromkeys(names, pl.Float64))

    def latest(self, entity: str) -> pl.DataFrame:
        return self.day(entity, int(self.manifest["as_of"] // SECONDS_PER_DAY))

    def as_of_rows(
        self, entity: str, ids: Sequence[str], moments: np.ndarray, names: Sequence[str]
    ) -> np.ndarray:
        """[len(ids), len(names)]: each id's features as a server would have read them at
        its moment (from the partition of the moment's day), defaults where none."""
        return rows_as_of(entity, ids, moments, names, lambda day: self.day(entity, day))


class EventsAsOf:
    """The store's values computed from an event table in memory, without materializing:
    what `OfflineFeatures.as_of_rows` reads from the files the same events would make (the
    ranker's training cases read their features through here)."""

    def __init__(self, events: pl.DataFrame, features: Sequence[Feature] = FEATURES) -> None:
        self.features = list(features)
        self.daily = {
            e: daily_counts(events, e, features_of(e, self.features))
            for e in entities(self.features)
        }
        self._days: dict[tuple[str, int], pl.DataFrame] = {}

    def day(self, entity: str, day: int) -> pl.DataFrame:
        key = (entity, day)
        if key not in self._days:
            features = features_of(entity, self.features)
            self._days[key] = day_values(self.daily[entity], entity, day, features)
        return self._days[key]

    def as_of_rows(
        self, entity: str, ids: Sequence[str], moments: np.ndarray, names: Sequence[str]
    ) -> np.ndarray:
        return rows_as_of(entity, ids, moments, names, lambda day: self.day(entity, day))


@dataclass(frozen=True)
class ReaderAt:
    """`OnlineFeatures.read`'s interface over values computed offline, at one moment: what
    the ranker reads in an offline evaluation of a placement (a server reads Redis)."""

    source: EventsAsOf | OfflineFeatures
    moment: float

    def read(self, entity: str, ids: Sequence[str], names: Sequence[str]) -> np.ndarray:
        moments = np.full(len(ids), self.moment)
        return self.source.as_of_rows(entity, ids, moments, names)


def rows_as_of(
    entity: str,
    ids: Sequence[str],
    moments: np.ndarray,
    names: Sequence[str],
    day_table: Callable[[int], pl.DataFrame],
) -> np.ndarray:
    """[len(ids), len(names)]: each id's features from `day_table` of its moment's day
    (UTC), defaults where the day has no row of it."""
    features = by_name(names)
    key = ENTITY_KEYS[entity]
    wanted = pl.DataFrame(
        {
            key: [str(i) for i in ids],
            "day": (np.asarray(moments, np.float64) // SECONDS_PER_DAY).astype(np.int64),
            "row": np.arange(len(ids)),
        },
        schema={key: pl.String, "day": pl.Int64, "row": pl.Int64},
    )
    parts = [
        day_table(int(day))
        .select(pl.col(key).cast(pl.String), *(pl.col(n).cast(pl.Float64) for n in names))
        .with_columns(pl.lit(int(day), pl.Int64).alias("day"))
        for day in wanted["day"].unique().to_list()
    ]
    if not parts:
        return np.zeros((0, len(names)), np.float64)
    found = wanted.join(pl.concat(parts), on=[key, "day"], how="left").sort("row")
    values = found.select(names).to_numpy().astype(np.float64)
    return fill_missing(values, features)
