"""`nextbest models list|promote|rollback|prune`: the trained versions, and which one serves.

A running server switches within NEXTBEST_MODEL_POLL_SECONDS (or at once on
`POST /v1/models/reload`), without dropping a request.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from nextbest.cli.common import console, friendly_errors, results_table, server_settings

models_app = typer.Typer(
    no_args_is_help=True, help="The trained model versions: list, promote, roll back, prune."
)


def _meta(folder: Path) -> dict[str, Any]:
    try:
        meta: dict[str, Any] = json.loads((folder / "meta.json").read_text())
        return meta
    except (OSError, ValueError):
        return {}


def _gate_cell(meta: dict[str, Any]) -> str:
    gate = meta.get("gate")
    if not isinstance(gate, dict):
        return ""
    served = gate.get("served")
    against = f" vs {served:.4f}" if isinstance(served, float) else ""
    verdict = "passed" if gate.get("passed") else "failed"
    return f"{verdict}: {gate.get('candidate', 0.0):.4f}{against}"


@models_app.command("list")
@friendly_errors
def list_versions_cli(
    candidates: Annotated[
        bool, typer.Option(help="also the retrain candidates a gate kept out")
    ] = False,
) -> None:
    """Every version under $NEXTBEST_HOME/models, oldest first; `*` marks the served one."""
    from nextbest.cli.retrain import candidates as rejected
    from nextbest.models.served import read_served, served_version
    from nextbest.models.store import list_versions

    home = server_settings().home
    folders = list_versions(home)
    served = served_version(home)
    header = ["", "version", "model", "events", "fit s", "gate (MRR@20)"]
    rows = []
    for folder in folders:
        meta = _meta(folder)
        mark = "*" if served is not None and folder == served else ""
        fit = meta.get("fit_seconds")
        rows.append(
            [mark, folder.name, str(meta.get("model", "")), f"{meta.get('events', 0):,}",
             f"{fit:.1f}" if isinstance(fit, (int, float)) else "", _gate_cell(meta)]
        )  # fmt: skip
    if candidates:
        for folder in rejected(home):
            meta = _meta(folder)
            rows.append(["x", folder.name, str(meta.get("model", "")),
                         f"{meta.get('events', 0):,}", "", _gate_cell(meta)])  # fmt: skip
    if not rows:
        console.print(f"no model version under {home / 'models'} yet (`nextbest train`)")
        return
    console.print(results_table(header, rows))
    choice = read_served(home)
    if choice is not None and served is not None and choice.version == served.name:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(choice.changed_at))
        console.print(f"served by choice since {when} UTC: {choice.reason}", highlight=False)
    elif served is not None:
        console.print("served: the newest version", highlight=False)


@models_app.command()
@friendly_errors
def promote(
    version: Annotated[str, typer.Argument(help="the version to serve (`nextbest models list`)")],
) -> None:
    """Serve VERSION from now on (an older one too); the one served until now can be rolled
    back to."""
    from nextbest.models.served import promote as promote_version

    choice = promote_version(server_settings().home, version, "promoted by hand")
    console.print(f"serving {choice.version} (servers switch within a few seconds)")


@models_app.command()
@friendly_errors
def rollback() -> None:
    """Serve the version served before the current one."""
    from nextbest.models.served import rollback as roll_back

    choice = roll_back(server_settings().home)
    console.print(f"serving {choice.version} again ({choice.reason})")


@models_app.command()
@friendly_errors
def prune(
    keep: Annotated[
        int | None, typer.Option(help="versions to keep (default: NEXTBEST_KEEP_VERSIONS)")
    ] = None,
) -> None:
    """Delete the oldest versions beyond the newest KEEP, never the served one, the one a
    rollback returns to, or one an experiment pins."""
    from nextbest.models.served import prune as prune_versions

    settings = server_settings()
    count = settings.keep_versions if keep is None else keep
    if count < 1:
        raise ValueError(f"--keep must be >= 1, not {count} (NEXTBEST_KEEP_VERSIONS=0 keeps all)")
    removed = prune_versions(settings.home, count)
    console.print(
        f"deleted {len(removed)} version(s)" + (f": {', '.join(removed)}" if removed else "")
    )
