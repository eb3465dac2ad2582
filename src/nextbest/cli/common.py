"""What every CLI command shares: the console, friendly errors, progress bars, logging."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from nextbest.models.base import NotFittedError

# Piped output (CI logs, `| tee`) gets room for the results table instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=errors, show_path=False)],
        force=True,
    )


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Bad input ends with one clear line and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (ValueError, FileNotFoundError, NotFittedError, KeyError) as exc:
            message = str(exc).strip("'\"")
            errors.print(f"[bold red]error:[/] {message}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=True,
    )


def results_table(header: list[str], rows: list[list[str]]) -> Table:
    table = Table(*header, show_edge=False, header_style="bold")
    for cells in rows:
        table.add_row(*cells)
    return table
