"""`nextbest catalog check FILE`: what a catalog feed lacks, before the engine reads it;
`nextbest catalog import FILE`: the feed into the server's catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nextbest.cli.common import (
    console,
    friendly_errors,
    progress_bar,
    results_table,
    server_settings,
)

catalog_app = typer.Typer(no_args_is_help=True, help="Check and import the shop's catalog.")


@catalog_app.command()
@friendly_errors
def check(
    path: Annotated[Path, typer.Argument(help="the catalog (.csv, .tsv or .parquet)")],
    categories: Annotated[
        Path | None,
        typer.Option(help="the known category paths (first column of a .tsv/.csv, or .txt)"),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the report as JSON here")
    ] = None,
) -> None:
    """Report missing values per key attribute, impossible values by row and column, and
    attributes that never vary. Exits with 1 when a row has an impossible value."""
    from nextbest.events.catalog_quality import check_file, read_categories

    known = read_categories(categories) if categories is not None else None
    with console.status(f"checking {path}"):
        report = check_file(path, known)
    console.print(f"[bold]{report.items:,} items[/] in {path}")
    rows = [[name, f"{1 - share:.1%}", f"{share:.1%}"] for name, share in report.missing.items()]
    console.print(results_table(["key attribute", "items with it", "without"], rows))
    if report.attributes:
        free = [
            [
                key,
                f"{use['share']:.1%}",
                f"{use['share_where_used']:.1%}",
                f"{use['categories']:.0f}",
            ]
            for key, use in report.attributes.items()
        ]
        header = ["free attribute", "of all items", "where used", "categories using it"]
        console.print(results_table(header, free))
    if report.problems:
        listed = [[str(p.row), p.column, p.message] for p in report.problems]
        console.print(results_table(["row", "column", "impossible value"], listed))
        if report.n_problems > len(report.problems):
            console.print(f"... {report.n_problems - len(report.problems):,} more")
    for line in report.advice() or ["nothing to fix: every key attribute is on every item"]:
        console.print(f"- {line}")
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        console.print(f"report written to {json_path}")
    if report.n_problems:
        raise typer.Exit(1)


@catalog_app.command("import")
@friendly_errors
def import_(
    path: Annotated[Path, typer.Argument(help="the catalog (.csv, .tsv, .jsonl or .parquet)")],
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map", help="FIELD=COLUMN: the file's column for an item field, e.g. item_id=sku"
        ),
    ] = None,
) -> None:
    """Upsert the items of a catalog file into the server's catalog (NEXTBEST_DATABASE_URL,
    or the SQLite file in NEXTBEST_HOME), by item_id: importing a file twice changes nothing.
    Bad rows are skipped and listed by line and column; exits with 1 when there were any."""
    from nextbest.events.catalog import SqlCatalog
    from nextbest.events.catalog_import import import_catalog, parse_mapping
    from nextbest.events.log.database import open_engine

    columns = parse_mapping(mapping or [])
    settings = server_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = open_engine(settings.database, settings.sqlite_synchronous)
    try:
        catalog = SqlCatalog(engine, settings.database_schema)
        with progress_bar() as progress:
            task = progress.add_task(f"importing {path.name}", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = import_catalog(path, catalog, columns, advance)
    finally:
        engine.dispose()
    console.print(
        f"[bold]{report.written:,} items written[/] ({report.new:,} new, "
        f"{report.written - report.new:,} updated) of {report.rows:,} rows in {path}"
    )
    if report.unmapped:
        console.print(f"columns the engine does not read: {', '.join(report.unmapped)}")
    if report.skipped:
        listed = [list(problem) for problem in report.problems]
        console.print(results_table(["where", "column", "problem"], listed))
        more = report.skipped - len({where for where, _, _ in report.problems})
        if more > 0:
            console.print(f"... and {more:,} more bad row(s)")
        console.print(f"[bold]{report.skipped:,} bad row(s) skipped[/]: fix them and import again")
        raise typer.Exit(1)
