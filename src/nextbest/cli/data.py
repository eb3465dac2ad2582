"""`nextbest data ...`: import public formats, prepare splits, inspect, make the demo shop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nextbest.cli.common import console, friendly_errors, results_table, setup_logging

data_app = typer.Typer(no_args_is_help=True, help="Import, prepare and inspect datasets.")


@data_app.command("import")
@friendly_errors
def import_(
    path: Annotated[Path, typer.Argument(help="the file to import")],
    format: Annotated[str, typer.Option("--format", "-f", help="the file's format")],
    out: Annotated[Path, typer.Option(help="where to write the event table (.parquet)")],
    skip_bad: Annotated[bool, typer.Option(help="skip malformed rows and count them")] = False,
    column: Annotated[
        list[str] | None,
        typer.Option(help="generic format: OUR_COLUMN=FILE_COLUMN (repeatable)"),
    ] = None,
    null_value: Annotated[
        list[str] | None,
        typer.Option(help='generic format: a cell text meaning "missing", e.g. NA (repeatable)'),
    ] = None,
    separator: Annotated[
        str | None, typer.Option(help="generic format: the CSV separator (default ,)")
    ] = None,
    time_format: Annotated[
        str | None,
        typer.Option(help="generic format: s, ms, iso or a strftime pattern (default s)"),
    ] = None,
) -> None:
    """Import a public dataset file into nextbest's event table."""
    from nextbest.events.importers import FORMATS, import_file

    setup_logging()
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}")
    options: dict[str, object] = {}
    if column:
        mapping = dict(pair.split("=", 1) for pair in column if "=" in pair)
        if len(mapping) != len(column):
            raise ValueError("--column takes OUR_COLUMN=FILE_COLUMN")
        options["columns"] = mapping
    generic_only = {"null_values": null_value, "separator": separator, "time_format": time_format}
    given = {key: value for key, value in generic_only.items() if value}
    if given and format != "generic":
        names = ", ".join("--" + key.replace("_", "-").removesuffix("s") for key in given)
        raise ValueError(f"{names} only apply to --format generic")
    options.update(given)
    with console.status(f"importing {path}"):
        result = import_file(format, path, on_error="skip" if skip_bad else "raise", **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.events.write_parquet(out)
    console.print(f"{result.events.height:,} events -> {out}")
    if result.items is not None:
        items_path = out.with_name(out.stem + ".items.parquet")
        result.items.write_parquet(items_path)
        console.print(f"{result.items.height:,} items -> {items_path}")
    if result.report.n_bad:
        console.print(f"[yellow]skipped {result.report.n_bad:,} malformed row(s)[/], e.g.:")
        for bad in result.report.bad_rows[:5]:
            console.print(f"  line {bad.line}: {bad.reason}", highlight=False)


@data_app.command()
@friendly_errors
def prepare(
    path: Annotated[Path, typer.Argument(help="events (.parquet or GRU4Rec .tsv)")],
    out: Annotated[Path, typer.Option(help="folder for train.tsv / test.tsv (/ valid.tsv)")],
    gap_minutes: Annotated[float, typer.Option(help="inactivity gap that ends a session")] = 30.0,
    min_item_support: Annotated[int, typer.Option(help="drop rarer items")] = 5,
    min_session_length: Annotated[int, typer.Option(help="drop shorter sessions")] = 2,
    test_days: Annotated[float, typer.Option(help="last days that form the test set")] = 1.0,
    valid_days: Annotated[float | None, typer.Option(help="last training days for tuning")] = None,
    remove_repeats: Annotated[bool, typer.Option(help="drop consecutive repeats")] = False,
    sessionize: Annotated[bool, typer.Option(help="re-split sessions by the gap")] = True,
    bot_events_per_minute: Annotated[
        float | None, typer.Option(help="drop sessions of >= 10 events faster than this")
    ] = None,
    accidental_seconds: Annotated[
        float | None, typer.Option(help="drop views followed by the next event this soon")
    ] = None,
    max_session_events: Annotated[
        int | None, typer.Option(help="drop sessions with more events than this")
    ] = None,
    by_partitions: Annotated[
        bool,
        typer.Option(
            help="a .parquet log larger than memory: prepare it a partition of visitors at a "
            "time, writing OUT/train/ and OUT/test/ as Parquet files"
        ),
    ] = False,
) -> None:
    """Sessionize, remove noise (when asked), filter and split events by time, writing
    GRU4Rec TSV files."""
    from nextbest.data.noise import NoiseConfig
    from nextbest.data.prepare import PrepareConfig, write_prepared
    from nextbest.data.prepare import prepare as run_prepare
    from nextbest.events.io import read_events

    setup_logging()
    if not gap_minutes > 0:
        raise ValueError(f"--gap-minutes must be a positive number of minutes, not {gap_minutes}")
    config = PrepareConfig(
        gap_seconds=gap_minutes * 60,
        remove_repeats=remove_repeats,
        min_item_support=min_item_support,
        min_session_length=min_session_length,
        test_days=test_days,
        valid_days=valid_days,
        sessionize=sessionize,
        noise=NoiseConfig(
            bot_events_per_minute=bot_events_per_minute,
            accidental_seconds=accidental_seconds,
            max_session_events=max_session_events,
        ),
    )
    if by_partitions:
        from nextbest.data.prepare_stream import prepare_parquet

        if path.suffix != ".parquet":
            raise ValueError(f"--by-partitions reads a .parquet log, not {path.name}")
        with console.status("preparing by partitions"):
            done = prepare_parquet(path, out, config)
        console.print(
            f"{done.train_events:,} training and {done.test_events:,} test events written to "
            f"{done.train} and {done.test} ({done.rounds} filter passes removed something)"
        )
        return
    events = read_events(path)
    with console.status("preparing"):
        prepared = run_prepare(events, config)
    for removed in prepared.noise_removed:
        whole = f"{removed.sessions:,} sessions, " if removed.rule != "accidental clicks" else ""
        console.print(f"{removed.rule}: {whole}{removed.events:,} events removed")
    write_prepared(prepared, out)
    console.print(f"prepared data written to {out}")


@data_app.command()
@friendly_errors
def stats(path: Annotated[Path, typer.Argument(help="events (.parquet or GRU4Rec .tsv)")]) -> None:
    """Print what a dataset holds, and how much of it each noise rule would remove."""
    from nextbest.data.noise import noise_report, report_rules
    from nextbest.data.stats import dataset_stats
    from nextbest.events.io import read_events

    events = read_events(path)
    console.print(dataset_stats(events).to_rich_table())
    rules = report_rules()
    rows = [
        [
            r.rule,
            rules[r.rule],
            f"{r.sessions:,}",
            f"{r.events:,}",
            f"{r.events / max(events.height, 1):.2%}",
        ]
        for r in noise_report(events)
    ]
    header = ["noise rule", "at", "sessions", "events", "of all events"]
    console.print(results_table(header, rows))


@data_app.command("demo-shop")
@friendly_errors
def demo_shop(
    out: Annotated[Path, typer.Option(help="folder to write the demo shop into")],
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    events: Annotated[int, typer.Option(help="number of events")] = 1_000_000,
    cold_items: Annotated[
        float,
        typer.Option(help="share of the catalog held out of training (new items in the test)"),
    ] = 0.0,
    season_share: Annotated[
        float,
        typer.Option(
            help="plant a seasonal need (a summer trip: tents, backpacks, power banks, "
            "sunscreen, speakers): this share of the sessions of the last --season-days starts "
            "on one of its leaves (0: none, the default shop)"
        ),
    ] = 0.0,
    season_days: Annotated[int, typer.Option(help="the season: the period's last days")] = 7,
) -> None:
    """Generate the demo shop: train.tsv, test.tsv, items.csv, queries.tsv, events.parquet,
    keyword_cards.parquet.

    `--cold-items 0.1` holds 10% of the items out of train.tsv and keeps their test events,
    listing them in cold_items.txt: the cold-start test of `nextbest evaluate --items`.
    `--season-share 0.3` plants a seasonal need in the last `--season-days` (a different
    log from the default shop's)."""
    import polars as pl

    from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop, write_demo_shop

    if not 0.0 <= cold_items < 1.0:
        raise ValueError(f"--cold-items must be a share in [0, 1), not {cold_items}")
    config = DemoShopConfig(
        seed=seed, n_events=events, season_share=season_share, season_days=season_days
    )
    with console.status(f"generating {events:,} events"):
        shop = generate_demo_shop(config)
        paths = write_demo_shop(shop, out, cold_items)
    console.print(f"demo shop ({shop.events.height:,} events) written to {out}")
    cards = shop.cards.group_by("card_id").agg(pl.col("clicked").any())
    clicked = cards["clicked"].sum() / max(cards.height, 1)
    console.print(
        f"{cards.height:,} keyword cards ({clicked:.0%} with a click) in keyword_cards.parquet"
    )
    if config.season_share > 0:
        from nextbest.data.demo_shop.generator import seasonal_shares

        before, during = seasonal_shares(shop)
        console.print(
            f"seasonal need: {during:.1%} of item events on its leaves in the last "
            f"{config.season_days} days, {before:.1%} before"
        )
    if "cold_items.txt" in paths:
        count = len(paths["cold_items.txt"].read_text().split())
        console.print(f"{count:,} items held out of training, listed in {paths['cold_items.txt']}")
