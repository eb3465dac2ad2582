"""`nextbest features materialize`: the feature store's offline days and its online copy;
`nextbest features status`: what the online store serves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nextbest.cli.common import console, friendly_errors, progress_bar, results_table

features_app = typer.Typer(
    no_args_is_help=True, help="The ranker features' store: offline by day, online in Redis."
)


@features_app.command("materialize")
@friendly_errors
def materialize(
    out: Annotated[Path, typer.Option(help="folder of the offline store (Parquet by day)")],
    online: Annotated[
        str | None,
        typer.Option(help="also write the latest day to this Redis, e.g. redis://127.0.0.1:6379/0"),
    ] = None,
    prefix: Annotated[str, typer.Option(help="the online store's key prefix")] = "nextbest:",
    last_days: Annotated[
        int | None,
        typer.Option(
            help="write only the latest this many days, keeping the earlier days of the store "
            "(default: every day)"
        ),
    ] = None,
    events: Annotated[
        Path | None, typer.Option(help="the event log (.parquet or GRU4Rec .tsv)")
    ] = None,
    entity: Annotated[
        list[str] | None,
        typer.Option(
            help="compute only these kinds (repeat: --entity item --entity user); default "
            "item, user and pair (pairs are the large kind: skip them when no ranker reads them)"
        ),
    ] = None,
    from_log: Annotated[
        bool,
        typer.Option(
            "--from-log", help="read the server's own event log (NEXTBEST_DATABASE_URL or SQLite)"
        ),
    ] = False,
) -> None:
    """Compute every feature of the store for each day of the log (a day's values count only
    the events before it), write them as Parquet partitions, and with --online serve the
    latest day from Redis (the server reads it there under its NEXTBEST_REDIS_PREFIX)."""
    from nextbest.events.io import read_events
    from nextbest.twostage.store.definitions import ENTITY_KEYS, FEATURES
    from nextbest.twostage.store.offline import day_name, materialize_offline, plan_days
    from nextbest.twostage.store.online import connect, where, write_online

    if last_days is not None and last_days < 1:
        raise ValueError(f"--last-days must be at least 1, not {last_days}")
    kinds = entity or list(ENTITY_KEYS)
    unknown = sorted(set(kinds) - set(ENTITY_KEYS))
    if unknown:
        raise ValueError(f"--entity {unknown[0]!r} is not a kind of the store: {list(ENTITY_KEYS)}")
    features = [f for f in FEATURES if f.entity in kinds]
    if (events is None) == (not from_log):
        raise ValueError("give either --events FILE or --from-log (one of them)")
    client = connect(online) if online else None  # unreachable: say so before any work
    if events is not None:
        with console.status(f"reading {events}"):
            table = read_events(events)
    else:
        from nextbest.cli.retrain import log_events
        from nextbest.serving.settings import ServingSettings

        settings = ServingSettings()
        table = log_events(settings.database, settings.database_schema)
    if table.is_empty():
        raise ValueError("the event log is empty: there is nothing to compute features of")
    days, _ = plan_days(table, out, features, last_days)
    with progress_bar() as progress:
        task = progress.add_task("days", total=len(days))
        done = materialize_offline(
            table, out, features, last_days, on_day=lambda _: progress.advance(task)
        )
    latest = day_name(done.days[-1])
    rows = [[entity, f"{n:,}"] for entity, n in done.rows.items()]
    kept = f", {len(done.kept)} earlier days kept" if done.kept else ""
    console.print(
        f"{len(done.days)} days ({day_name(done.days[0])} to {latest}) of {table.height:,} "
        f"events -> {out}{kept}"
    )
    console.print(results_table(["entity", f"rows on {latest}"], rows))
    if client is not None and online is not None:
        with console.status(f"writing {latest} to {where(online)}"):
            version = write_online(client, prefix, done.as_of, done.online_tables())
        console.print(f"online: version {version} ({latest}) served from {where(online)}")


@features_app.command("status")
@friendly_errors
def status_command(
    online: Annotated[
        str | None,
        typer.Option(help="the Redis to ask (default: NEXTBEST_REDIS_URL, the server's)"),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(help="the online store's key prefix (default: NEXTBEST_REDIS_PREFIX)"),
    ] = None,
) -> None:
    """What the online store serves the rankers: its version, the day its values are of, and
    its rows per kind (what the dashboard's Operations card shows)."""
    from nextbest.serving.settings import ServingSettings
    from nextbest.twostage.store.definitions import SECONDS_PER_DAY
    from nextbest.twostage.store.offline import day_name
    from nextbest.twostage.store.online import connect, status, where

    settings = ServingSettings()
    url = online or settings.redis_url
    if not url:
        raise ValueError("no Redis to ask: give --online URL or set NEXTBEST_REDIS_URL")
    key_prefix = settings.redis_prefix if prefix is None else prefix
    found = status(connect(url), key_prefix)
    if found is None:
        raise ValueError(
            f"no features under {key_prefix!r} at {where(url)}: run `nextbest features "
            "materialize --online` first"
        )
    day = day_name(int(found.as_of // SECONDS_PER_DAY))
    console.print(f"version {found.version}: values of the events before {day} (UTC)")
    rows = [[kind, f"{n:,}"] for kind, n in found.rows.items()]
    console.print(results_table(["kind", "rows"], rows))
