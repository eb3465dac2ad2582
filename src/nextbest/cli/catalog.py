"""`nextbest catalog check FILE`: what a catalog feed lacks, before the engine reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nextbest.cli.common import console, friendly_errors, results_table

catalog_app = typer.Typer(no_args_is_help=True, help="Check the catalog a shop feeds in.")


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
