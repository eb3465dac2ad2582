"""What every CLI command shares: the console, friendly errors, progress bars, logging."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

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

if TYPE_CHECKING:
    from nextbest.events.log import EventLog
    from nextbest.serving.settings import ServingSettings

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
            # one unbroken line: a path or a setting in it stays whole for a reader to copy
            errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
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


def server_settings() -> ServingSettings:
    """The server's settings (NEXTBEST_* variables), a bad one named."""
    from pydantic import ValidationError

    from nextbest.serving.settings import ServingSettings

    try:
        settings = ServingSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"NEXTBEST_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise ValueError(f"bad setting: {problems}") from None
    # NEXTBEST_TENANT=shop-b: the command works on that tenant's data folder, log and keys
    return settings.for_tenant(settings.tenant) if settings.tenant else settings


def open_server_log() -> tuple[EventLog, str]:
    """The event log the server writes (its settings: NEXTBEST_DATABASE_URL, or the SQLite
    file in NEXTBEST_HOME), and where it is (without a password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from nextbest.events.log import open_event_log

    settings = server_settings()
    url = settings.database
    where = make_url(url).render_as_string(hide_password=True)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if not path or not Path(path).is_file():
            raise ValueError(
                f"no event log at {path}: set NEXTBEST_HOME to the server's data folder, or "
                "NEXTBEST_DATABASE_URL to its database"
            )
        where = path
    try:
        log = open_event_log(url, settings.database_schema, settings.sqlite_synchronous)
    except SQLAlchemyError as error:
        raise ValueError(f"could not open the event log at {where}: {error}") from None
    return log, where
