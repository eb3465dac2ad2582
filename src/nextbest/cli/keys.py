"""`nextbest keys new`: the server's API keys, made once by the operator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nextbest.cli.common import console, friendly_errors, server_settings

keys_app = typer.Typer(no_args_is_help=True, help="Make the server's API keys.")


@keys_app.command()
@friendly_errors
def new(
    path: Annotated[
        Path | None,
        typer.Option("--file", help="where to write them; default: $NEXTBEST_HOME/api-keys.json"),
    ] = None,
    force: Annotated[bool, typer.Option(help="replace an existing keys file")] = False,
) -> None:
    """Make one write, one read and one admin key and write them to a file only its owner can
    read. `nextbest serve` reads $NEXTBEST_HOME/api-keys.json (or NEXTBEST_KEYS_FILE)."""
    from nextbest.serving.auth import KEYS_FILE, new_keys, write_keys_file

    target = path if path is not None else server_settings().home / KEYS_FILE
    if target.exists() and not force:
        raise ValueError(
            f"{target} exists: its keys may be in use; pass --force to replace them (every "
            "client holding the old ones is then refused)"
        )
    write_keys_file(new_keys(), target)
    console.print(f"wrote new write, read and admin keys to {target} (readable by you only)")
    if path is not None:
        console.print(f"serve with NEXTBEST_KEYS_FILE={target}")
