"""`nextbest serve`: the HTTP API over the newest model in $NEXTBEST_HOME."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from nextbest.cli.common import friendly_errors


@friendly_errors
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[
        int, typer.Option(help="worker processes; more than 1 needs NEXTBEST_REDIS_URL")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    placements: Annotated[
        Path | None,
        typer.Option(help="placements file (TOML); default: NEXTBEST_PLACEMENTS or the shipped"),
    ] = None,
    retrain_every: Annotated[
        str | None,
        typer.Option(
            help="run `nextbest train --from-log` this often (6h, 30m, 1d): the served "
            "version's recipe on the log, promoted only past its gate"
        ),
    ] = None,
) -> None:
    """Serve events in, recommendations out (API docs at /docs). Settings: NEXTBEST_* variables."""
    from pydantic import ValidationError

    from nextbest.serving.server import run

    if log_level not in ("debug", "info", "warning", "error"):
        raise ValueError(f"--log-level must be debug, info, warning or error, not {log_level!r}")
    if not 0 < port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, not {port}")
    if placements is not None:  # the workers read it from the environment
        os.environ["NEXTBEST_PLACEMENTS"] = str(placements)
    from nextbest.cli.common import server_settings
    from nextbest.triggers.service import start_triggers

    start_triggers(server_settings())  # a bad triggers file stops here, named
    if retrain_every is not None:
        from nextbest.serving.retrain_schedule import RetrainSchedule, parse_every

        RetrainSchedule(parse_every(retrain_every)).start()
    try:
        run(host, port, workers, log_level)
    except ValidationError as exc:
        problems = "; ".join(
            f"NEXTBEST_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise ValueError(f"bad setting: {problems}") from None


if __name__ == "__main__":  # `python -m nextbest.cli.serve`, the same command
    typer.run(serve)
