"""`prepare` for an event log larger than memory, by partitions.

    prepare_parquet(Path("events.parquet"), Path("prepared/"), PrepareConfig(test_days=1))

Every step of `prepare` that needs a whole session (sessionizing, session lengths, the time
split) needs only that visitor's events, so the log is first cut into `partitions` Parquet
files by a hash of the visitor's stream (the session's user, else the session). Each
partition is then prepared in memory on its own, and what needs the whole log is small and
global: the items' event counts (for the support filter, summed over the partitions each
pass), the latest time (for the split) and the training items (for the test's unseen
items). Peak memory is about one partition's; the output is the same rows, with the same
session ids, as `prepare` makes, in partition order rather than input order.

The noise rules, consecutive-repeat removal, user bounds and the validation split are left
to `prepare` (in memory).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from nextbest.data.prepare import PrepareConfig, sessionize
from nextbest.data.splits import SECONDS_PER_DAY
from nextbest.data.stats import item_events

ROWS_PER_PARTITION = 1_000_000


@dataclass(frozen=True)
class StreamedPrep:
    train: Path  # a folder of Parquet files, one per partition
    test: Path
    train_events: int
    test_events: int
    rounds: int  # filter passes that removed something


def _refuse_unstreamed(config: PrepareConfig) -> None:
    unsupported = []
    if config.remove_repeats:
        unsupported.append("remove_repeats")
    if config.min_user_sessions is not None or config.max_user_sessions is not None:
        unsupported.append("user bounds")
    if config.valid_days is not None:
        unsupported.append("valid_days")
    if config.noise != type(config.noise)():
        unsupported.append("noise rules")
    if unsupported:
        raise ValueError(
            f"preparing by partitions does not do {', '.join(unsupported)}: prepare in memory"
        )


def prepare_parquet(
    source: Path, out: Path, config: PrepareConfig | None = None, partitions: int | None = None
) -> StreamedPrep:
    """Prepare the Parquet events at `source` into `out`/train/ and `out`/test/ (Parquet
    files, one per partition)."""
    config = config or PrepareConfig()
    _refuse_unstreamed(config)
    scan = pl.scan_parquet(source)
    rows = int(scan.select(pl.len()).collect(engine="streaming").item())
    parts = partitions or max(1, -(-rows // ROWS_PER_PARTITION))
    work = out / ".work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        files = _partition(scan, parts, work)
        if config.sessionize:
            for file in files:
                sessionize(pl.read_parquet(file), config.gap_seconds).write_parquet(file)
        rounds = _filter(files, config)
        return _split(files, config, out, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _partition(scan: pl.LazyFrame, parts: int, work: Path) -> list[Path]:
    """Cut the log by a hash of each event's stream: the user of its session's earliest
    event naming one, else its session (`sessionize`'s streams). Only a table of the sessions
    (id and partition) is held whole; each partition is a streamed semi-join of the log with
    its sessions, so the log itself never is."""
    owners = (
        scan.filter(pl.col("user_id").is_not_null())
        .group_by("session_id")
        .agg(pl.col("user_id").sort_by("timestamp").first().alias("_user"))
    )
    stream = pl.coalesce(pl.lit("u:") + pl.col("_user"), pl.lit("s:") + pl.col("session_id"))
    sessions = (
        scan.select("session_id")
        .unique()
        .join(owners, on="session_id", how="left")
        .select("session_id", (stream.hash(seed=7) % parts).alias("_part"))
        .collect(engine="streaming")
    )
    files = []
    for part in range(parts):
        file = work / f"part-{part:04d}.parquet"
        mine = sessions.filter(pl.col("_part") == part).select("session_id")
        scan.join(mine.lazy(), on="session_id", how="semi").sink_parquet(file)
        files.append(file)
    del sessions
    return files


def _filter(files: list[Path], config: PrepareConfig) -> int:
    """The iterative filters over every partition until a pass removes nothing: the item
    support counts summed over partitions (a table of items), session lengths in each."""
    rounds = 0
    while True:
        counts = pl.concat(
            [
                pl.scan_parquet(f).filter(item_events()).group_by("item_id").agg(pl.len())
                for f in files
            ]
        )
        supported = (
            counts.group_by("item_id")
            .agg(pl.col("len").sum())
            .filter(pl.col("len") >= config.min_item_support)
            .select("item_id")
            .collect(engine="streaming")
        )
        removed = 0
        for file in files:
            frame = pl.read_parquet(file)
            kept = frame.filter(
                ~item_events() | pl.col("item_id").is_in(supported["item_id"].implode())
            )
            kept = kept.filter(item_events().sum().over("session_id") >= config.min_session_length)
            removed += frame.height - kept.height
            if kept.height != frame.height:
                kept.write_parquet(file)
        if removed == 0:
            return rounds
        rounds += 1


def _split(files: list[Path], config: PrepareConfig, out: Path, rounds: int) -> StreamedPrep:
    latest = max(
        (pl.scan_parquet(f).select(pl.col("timestamp").max()).collect().item() for f in files),
        key=lambda value: float("-inf") if value is None else float(value),
    )
    cutoff = (float(latest) if latest is not None else 0.0) - config.test_days * SECONDS_PER_DAY
    train_dir, test_dir = out / "train", out / "test"
    for folder in (train_dir, test_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    is_test = pl.col("timestamp").max().over("session_id") >= cutoff
    n_train = 0
    for file in files:
        frame = pl.read_parquet(file)
        train = frame.filter(~is_test)
        train.write_parquet(train_dir / file.name)
        n_train += train.height
    seen = (
        pl.scan_parquet(list(train_dir.glob("*.parquet")))
        .filter(item_events())
        .select("item_id")
        .unique()
        .collect(engine="streaming")["item_id"]
        .implode()
    )
    n_test = 0
    for file in files:
        test = pl.read_parquet(file).filter(is_test)
        test = test.filter(~item_events() | pl.col("item_id").is_in(seen))
        test = test.filter(item_events().sum().over("session_id") >= 2)
        test.write_parquet(test_dir / file.name)
        n_test += test.height
    return StreamedPrep(train_dir, test_dir, n_train, n_test, rounds)
