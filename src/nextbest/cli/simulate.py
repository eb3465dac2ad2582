"""`nextbest simulate`: rehearse an experiment offline, with simulated shoppers on a real server.

It starts `nextbest serve` over the data folder's model versions, with the experiment file
and a database of its own (so the shop's real log is never touched), loads the demo shop's
catalog into it, sends the shoppers (`experiments/simulator.py`), stops the server, and
reports the experiment from what the server logged, as `nextbest experiments report` would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer

from nextbest.cli.common import console, friendly_errors, progress_bar, setup_logging
from nextbest.cli.experiments import print_report, print_totals
from nextbest.data.demo_shop.config import DemoShopConfig
from nextbest.events.log import open_event_log
from nextbest.experiments.attribution import Attribution, attribute
from nextbest.experiments.report import analyse, snapshot
from nextbest.experiments.shoppers import Reactions, ShopTruth
from nextbest.experiments.simulator import SimulationStats, run_shoppers
from nextbest.experiments.spec import Experiment, load_experiments
from nextbest.models.store import nextbest_home
from nextbest.recommend.placements import load_placements
from nextbest.serving.auth import new_keys
from nextbest.serving.demo import load_demo_catalog
from nextbest.serving.settings import ServingSettings

SERVER_START_SECONDS = 180.0  # loading the versions of a demo home takes a while on 2 cores


@friendly_errors
def simulate(
    experiment: Annotated[
        Path, typer.Option(help="the experiments file to rehearse (TOML, as NEXTBEST_EXPERIMENTS)")
    ],
    shoppers: Annotated[int, typer.Option(help="how many simulated shoppers visit")] = 1_000,
    home: Annotated[
        Path | None,
        typer.Option(help="the data folder (model versions, demo-shop/); default: NEXTBEST_HOME"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="folder for the run's database, server log and outcomes; default: HOME/simulation"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="the shoppers' seed")] = 0,
    concurrency: Annotated[int, typer.Option(help="shoppers visiting at once")] = 4,
    window_hours: Annotated[
        float, typer.Option(help="a cart add or purchase counts this long after an impression")
    ] = 24.0,
) -> None:
    """Simulated shoppers from the demo shop's planted tastes visit a real server running the
    experiment, click, cart and buy with position bias; then the experiment's report."""
    setup_logging()
    if not experiment.is_file():
        raise ValueError(f"--experiment {experiment}: no such file")
    print_rehearsal(rehearse(experiment, shoppers, home, out, seed, concurrency, window_hours))


def print_rehearsal(rehearsal: Rehearsal) -> None:
    """What the shoppers did, then each experiment's report (and, for 3+ arms, each pair)."""
    stats, c = rehearsal.stats, rehearsal.stats.counts
    console.print(
        f"{stats.visits:,} visits in {stats.seconds:.0f} s: {stats.requests:,} requests "
        f"({stats.errors:,} failed), {c['lists']:,} lists, {c['clicks']:,} clicks, "
        f"{c['cards']:,} keyword cards, {c['keyword_clicks']:,} keyword clicks, "
        f"{c['carts']:,} carts, {c['purchases']:,} purchases",
        highlight=False,
    )
    for e, attribution in rehearsal.results:
        now = snapshot(attribution)
        console.print(f"\noutcomes: {rehearsal.out / f'outcomes-{e.name}.parquet'}")
        print_totals(e, attribution, now)
        if now.report is None:
            console.print("  too few shoppers in a variant for statistics")
            continue
        print_report(now.report)
        control = now.report.control
        shares = {v.name: v.share for v in e.variants}
        for other in [v.name for v in e.variants if v.name != control][: len(e.variants) - 2]:
            console.print(f"\nagainst {other}:", highlight=False)  # every pair, for 3+ arms
            print_report(analyse(attribution.outcomes(), shares, other))


@dataclass(frozen=True)
class Rehearsal:
    stats: SimulationStats
    results: list[tuple[Experiment, Attribution]]
    out: Path


def rehearse(
    experiment: Path,
    shoppers: int,
    home: Path | None = None,
    out: Path | None = None,
    seed: int = 0,
    concurrency: int = 4,
    window_hours: float = 24.0,
    reactions: Reactions | None = None,
    before_stop: Callable[[str, str], object] | None = None,
) -> Rehearsal:
    """Start the server with `experiment`, send `shoppers`, stop it, and attribute each
    running experiment from the log it wrote (also written as outcomes-NAME.parquet).
    `before_stop(url, admin_key)` is called once the shoppers are done, while the server
    still runs (to look at it: benchmarks/dashboard_screenshot.py)."""
    if shoppers < 1 or concurrency < 1:
        raise ValueError("--shoppers and --concurrency must be >= 1")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per shopper's request
    if window_hours <= 0:
        raise ValueError(f"--window-hours must be > 0, not {window_hours:g}")
    home = (home or nextbest_home()).resolve()
    experiment = experiment.resolve()
    placements = os.environ.get("NEXTBEST_PLACEMENTS")
    running = [
        e for e in load_experiments(
            experiment, load_placements(Path(placements) if placements else None), home
        ) if e.running(time.time())
    ]  # fmt: skip
    if not running:
        raise ValueError(f"--experiment {experiment}: no experiment in it runs now")
    truth = demo_truth(home)
    out = (out or home / "simulation").resolve()
    out.mkdir(parents=True, exist_ok=True)
    database = out / "simulation.db"
    for stale in out.glob("simulation.db*"):  # each run starts from an empty log
        stale.unlink()
    keys = new_keys()
    env = {
        **os.environ,
        "NEXTBEST_HOME": str(home),
        "NEXTBEST_DATABASE_URL": f"sqlite:///{database}",
        "NEXTBEST_EXPERIMENTS": str(experiment),
        "NEXTBEST_WRITE_KEYS": keys.write[0],
        "NEXTBEST_READ_KEYS": keys.read[0],
        "NEXTBEST_ADMIN_KEYS": keys.admin[0],
        "NEXTBEST_ONLINE_LEARNING": "0",  # the versions as trained; the home stays untouched
        "NEXTBEST_SQLITE_SYNCHRONOUS": "NORMAL",
    }
    env.pop("NEXTBEST_KEYS_FILE", None)
    settings = ServingSettings(home=home, database_url=env["NEXTBEST_DATABASE_URL"])
    loaded = load_demo_catalog(home, settings)
    console.print(f"catalog: {loaded:,} items from {home / 'demo-shop' / 'items.csv'}")
    with _server(env, out / "server.log") as url:
        console.print(f"server: {url} (log: {out / 'server.log'})")
        with progress_bar() as bar:
            task = bar.add_task("shoppers visiting", total=shoppers)
            stats = run_shoppers(
                url, {"read": keys.read[0], "write": keys.write[0]}, truth, shoppers, seed,
                reactions, concurrency, progress=lambda n: bar.advance(task, n),
            )  # fmt: skip
        if before_stop is not None:
            before_stop(url, keys.admin[0])
    log = open_event_log(f"sqlite:///{database}")
    results = []
    try:
        for e in running:
            attribution = attribute(log, e, time.time(), window_hours * 3600.0)
            attribution.outcomes().write_parquet(out / f"outcomes-{e.name}.parquet")
            results.append((e, attribution))
    finally:
        log.close()
    return Rehearsal(stats, results, out)


def demo_truth(home: Path) -> ShopTruth:
    """The planted truth of the demo shop in `home`, from the config it was generated with
    (its shop.json), checked against its items.csv: the simulation's truth must be that
    shop's."""
    import polars as pl

    from nextbest.serving.demo import DEMO_SHOP

    folder = home / DEMO_SHOP
    items = folder / "items.csv"
    if not items.is_file():
        raise ValueError(
            f"no demo shop in {folder}: the simulator's shoppers come from the demo shop's "
            "planted tastes (run `make demo` or `nextbest demo --no-serve` first)"
        )
    saved = folder / "shop.json"
    config = DemoShopConfig(**json.loads(saved.read_text())) if saved.exists() else DemoShopConfig()
    truth = ShopTruth(config)
    listed = set(pl.read_csv(items, columns=["item_id"])["item_id"].to_list())
    if listed != set(truth.item_ids):
        raise ValueError(
            f"{items} is not the shop of {saved if saved.exists() else 'the default config'}: "
            "generate the demo shop again"
        )
    return truth


@contextlib.contextmanager
def _server(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`nextbest serve` on a free port, until the block ends; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [sys.executable, "-c", "from nextbest.cli.main import app; app()", "serve",
               "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with log_path.open("w") as log:
        child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(child, url, log_path)
            yield url
        finally:
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()


def _wait_ready(child: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise ValueError(f"the server stopped at start: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ValueError(f"the server did not answer within {SERVER_START_SECONDS:.0f} s: {log_path}")
