"""`nextbest experiments ...`: read an A/B test's per-user outcomes into its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from nextbest.cli.common import console, friendly_errors, results_table

experiments_app = typer.Typer(no_args_is_help=True, help="A/B tests: their statistics.")


def parse_shares(text: str) -> dict[str, float]:
    """ "control=0.5,b=0.5" -> {"control": 0.5, "b": 0.5}; a ValueError naming --shares."""
    shares: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--shares: {part!r} is not NAME=SHARE") from None
        if not name.strip():
            raise ValueError(f"--shares: {part!r} has no variant name")
    if len(shares) < 2:
        raise ValueError("--shares: an experiment has two variants or more")
    return shares


@experiments_app.command("analyse")
@friendly_errors
def analyse_command(
    outcomes: Annotated[
        Path,
        typer.Option(
            help="per-user outcomes (.parquet or .csv): user_id, variant, impressions, clicks, "
            "carts, purchases, revenue, and optional pre_<column> for CUPED"
        ),
    ],
    shares: Annotated[str, typer.Option(help="the design: NAME=SHARE,... e.g. a=0.5,b=0.5")],
    control: Annotated[str, typer.Option(help="the control variant's name")],
) -> None:
    """The report: each metric of each variant against the control, with 95% intervals, the
    lift, the fixed-horizon and the always-valid p-value, and the sample-ratio check."""
    from nextbest.experiments.report import analyse

    design = parse_shares(shares)
    table = _read_outcomes(outcomes, "--outcomes")
    report = analyse(table, design, control)
    counts = ", ".join(f"{v} {n:,}" for v, n in report.users.items())
    ratio = report.sample_ratio
    console.print(
        f"users: {counts}; sample ratio p = {ratio.p_value:.3g}"
        + (" - MISMATCH: the split is broken, do not trust the rest" if ratio.mismatch else ""),
        highlight=False,
    )
    rows = [
        [
            r.variant, r.metric + (" (CUPED)" if r.cuped else ""), f"{r.difference.a:.4g}",
            f"{r.difference.b:.4g}", f"{r.difference.lift:+.1%}",
            f"[{r.difference.low:.4g}, {r.difference.high:.4g}]",
            f"{r.difference.p_value:.3g}", f"{r.always_valid_p:.3g}",
        ]
        for r in report.results
    ]  # fmt: skip
    header = ["variant", "metric", control, "variant's", "lift", "95% interval of the difference",
              "p (fixed)", "p (always valid)"]  # fmt: skip
    console.print(results_table(header, rows))


@experiments_app.command("plan")
@friendly_errors
def plan_command(
    pilot: Annotated[
        Path,
        typer.Option(
            help="per-user outcomes of a pilot (.parquet or .csv), as `analyse` reads them: "
            "one arm's users, or an A/A test's"
        ),
    ],
    lift: Annotated[float, typer.Option(help="the relative change to find, e.g. 0.05")],
    power: Annotated[float, typer.Option(help="the chance to find it")] = 0.8,
    alpha: Annotated[float, typer.Option(help="the false-positive rate")] = 0.05,
) -> None:
    """How many users each arm needs to find LIFT, per metric, from a pilot's variance."""
    from nextbest.experiments.report import plan

    table = _read_outcomes(pilot, "--pilot")
    rows = [
        [p.metric, f"{p.base:.4g}", f"{p.users_per_arm:,}"] for p in plan(table, lift, power, alpha)
    ]
    console.print(
        f"to find a {lift:+.1%} change with power {power:.0%} at alpha {alpha:g} "
        f"({table.height:,} pilot users):",
        highlight=False,
    )
    console.print(results_table(["metric", "pilot's value", "users per arm"], rows))


def _read_outcomes(path: Path, option: str) -> pl.DataFrame:
    if not path.is_file():
        raise ValueError(f"{option} {path}: no such file")
    try:
        return pl.read_csv(path) if path.suffix == ".csv" else pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise ValueError(f"{option} {path}: not a readable table ({error})") from error
