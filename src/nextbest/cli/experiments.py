"""`nextbest experiments ...`: read an A/B test's per-user outcomes into its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from nextbest.cli.common import (
    console,
    friendly_errors,
    open_server_log,
    results_table,
    server_settings,
)
from nextbest.experiments.attribution import Attribution
from nextbest.experiments.report import Report, Snapshot, result_rows
from nextbest.experiments.spec import Experiment

experiments_app = typer.Typer(
    no_args_is_help=True, help="A/B tests: reports from the server's log, statistics, sizes."
)


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
    print_report(analyse(table, design, control))


def print_report(report: Report) -> None:
    """The sample-ratio check, then each metric of each variant against the control."""
    counts = ", ".join(f"{v} {n:,}" for v, n in report.users.items())
    ratio = report.sample_ratio
    console.print(
        f"users: {counts}; sample ratio p = {ratio.p_value:.3g}"
        + (" - MISMATCH: the split is broken, do not trust the rest" if ratio.mismatch else ""),
        highlight=False,
    )
    rows = [
        [
            str(r["variant"]), str(r["metric"]) + (" (CUPED)" if r["cuped"] else ""),
            f"{r['control_value']:.4g}", f"{r['variant_value']:.4g}",
            "-" if r["lift"] is None else f"{r['lift']:+.1%}",
            f"[{r['low']:.4g}, {r['high']:.4g}]", f"{r['p_fixed']:.3g}",
            f"{r['p_always_valid']:.3g}", str(r["verdict"]),
        ]
        for r in result_rows(report)
    ]  # fmt: skip
    header = ["variant", "metric", report.control, "variant's", "lift",
              "95% interval of the difference", "p (fixed)", "p (always valid)",
              "verdict"]  # fmt: skip
    console.print(results_table(header, rows))


@experiments_app.command("report")
@friendly_errors
def report_command(
    name: Annotated[str, typer.Argument(help="the experiment's name in the experiments file")],
    window_hours: Annotated[
        float, typer.Option(help="a cart add or purchase counts this long after an impression")
    ] = 24.0,
    out: Annotated[
        Path | None,
        typer.Option(help="also write the per-shopper outcomes (.parquet) for analyse and plan"),
    ] = None,
) -> None:
    """A running (or ended) experiment's report from the server's event log: the lists it
    answered, what they led to per variant, and the statistics.

    Reads the server's settings: NEXTBEST_EXPERIMENTS (or experiments.toml in NEXTBEST_HOME),
    NEXTBEST_PLACEMENTS, and the event log (NEXTBEST_DATABASE_URL, or the SQLite file in
    NEXTBEST_HOME)."""
    import time

    from nextbest.experiments.attribution import attribute
    from nextbest.experiments.report import snapshot
    from nextbest.experiments.spec import load_experiments
    from nextbest.recommend.placements import load_placements

    if window_hours <= 0:
        raise ValueError(f"--window-hours must be > 0, not {window_hours:g}")
    settings = server_settings()
    path = settings.experiments_file
    if not path.is_file():
        raise ValueError(f"no experiments file at {path}: set NEXTBEST_EXPERIMENTS")
    experiments = load_experiments(path, load_placements(settings.placements), settings.home)
    experiment = next((e for e in experiments if e.name == name), None)
    if experiment is None:
        known = ", ".join(e.name for e in experiments)
        raise ValueError(f"no experiment {name!r} in {path}; it has: {known}")
    log, where = open_server_log()
    try:
        with console.status(f"attributing the outcomes of {name} in {where}"):
            started = time.perf_counter()
            until = time.time()  # an ended experiment: its lists, and the window after its end
            attribution = attribute(log, experiment, until, window_hours * 3600.0)
            now = snapshot(attribution, until)
            seconds = time.perf_counter() - started
    finally:
        log.close()
    console.print(f"attributed and analysed in {seconds:.2f} s", highlight=False)
    print_totals(experiment, attribution, now)
    if out is not None:
        now.outcomes.write_parquet(out)
        console.print(f"per-shopper outcomes written to {out}", highlight=False)
    if now.report is None:
        raise ValueError(f"{name}: too few shoppers in a variant for statistics yet")
    print_report(now.report)


def print_totals(experiment: Experiment, attribution: Attribution, now: Snapshot) -> None:
    """Each variant's shoppers, lists, clicks, purchases and revenue."""
    console.print(
        f"experiment {experiment.name} on {experiment.placement}: {attribution.lists:,} lists "
        "answered",
        highlight=False,
    )
    for variant, t in now.totals.items():
        console.print(
            f"  {variant}: {t['users']:,.0f} shoppers, {t['impressions']:,.0f} lists, "
            f"{t['clicks']:,.0f} clicks, {t['purchases']:,.0f} purchases, "
            f"revenue {t['revenue']:,.2f}",
            highlight=False,
        )
    if attribution.mixed_units:
        console.print(f"[red]{attribution.mixed_units} shopper(s) saw two variants[/red]")


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
    variant: Annotated[
        str | None,
        typer.Option(help="take only this variant's users as the pilot (one arm of a test)"),
    ] = None,
) -> None:
    """How many users each arm needs to find LIFT, per metric, from a pilot's variance."""
    from nextbest.experiments.report import plan

    table = _read_outcomes(pilot, "--pilot")
    if variant is not None:
        if "variant" not in table.columns:
            raise ValueError(f"--pilot {pilot}: no variant column to take --variant from")
        found = sorted(set(table["variant"].cast(pl.String).to_list()))
        table = table.filter(pl.col("variant") == variant)
        if table.height == 0:
            raise ValueError(f"--variant {variant!r}: no such variant in {pilot}; it has: "
                             f"{', '.join(found)}")  # fmt: skip
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
