"""The shopper simulator: shoppers from the demo shop's planted truth, reacting with position
bias, and a rehearsed A/B test end to end against a real server (a child `nextbest serve`)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.cli.simulate import rehearse
from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop, write_demo_shop
from nextbest.data.sessions import Sessions
from nextbest.events.io import read_events
from nextbest.experiments.report import snapshot
from nextbest.experiments.shoppers import FIT_INTENT, FIT_OTHER, ShopTruth, looks_at, pick
from nextbest.models.covisit import CoVisitation
from nextbest.models.popularity import MostPopular
from nextbest.models.store import save_version

SMALL = DemoShopConfig(seed=3, n_events=30_000, n_items=600, n_users=400, days=10)
EXPERIMENTS = Path(__file__).parents[2] / "src/nextbest/data/demo_shop/experiments"
TWO_ARMS = """
[experiments.covisit-vs-pop]
placement = "product"
salt = "t1"
start = 2026-01-01T00:00:00Z

[[experiments.covisit-vs-pop.variants]]
name = "popularity"
control = true
model = "latest:pop"
placements = "product-model-only.toml"
share = 0.5

[[experiments.covisit-vs-pop.variants]]
name = "covisit"
model = "latest:covisit"
placements = "product-model-only.toml"
share = 0.5
"""


@pytest.fixture(scope="module")
def shop_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo shop with two model versions: popularity and co-visitation."""
    home = tmp_path_factory.mktemp("simulated-shop")
    write_demo_shop(generate_demo_shop(SMALL), home / "demo-shop")
    train = Sessions.from_events(read_events(home / "demo-shop" / "train.tsv"))
    save_version(MostPopular().fit(train), home, {"model": "pop"})
    save_version(CoVisitation().fit(train), home, {"model": "covisit"})
    return home


def test_the_truth_is_the_generated_shops(shop_home: Path) -> None:
    truth = ShopTruth(SMALL)
    items = pl.read_csv(shop_home / "demo-shop" / "items.csv")
    assert set(items["item_id"]) == set(truth.item_ids)
    paths = dict(zip(items["item_id"], items["category_path"], strict=True))
    leaves = truth.catalog.leaves
    for row in (0, 17, 311):  # the truth's leaf of an item is the one its catalog row names
        assert paths[truth.item_ids[row]] == leaves[int(truth.catalog.item_leaf[row])].path


def test_an_item_of_the_intent_fits_better_than_an_unrelated_one() -> None:
    truth = ShopTruth(SMALL)
    rng = np.random.default_rng(0)
    shopper = truth.shopper(rng, anonymous_share=0.0)
    c = truth.catalog
    own = [r for r in range(c.n_items) if c.item_leaf[r] == shopper.intent]
    unrelated = [r for r in range(c.n_items)
                 if truth.leaf_fit(shopper, int(c.item_leaf[r])) == FIT_OTHER]  # fmt: skip
    assert np.mean([truth.fit(shopper, r) for r in own]) > 5 * np.mean(
        [truth.fit(shopper, r) for r in unrelated]
    )
    assert truth.leaf_fit(shopper, shopper.intent) == FIT_INTENT
    shopper.bought.add(own[0])
    assert truth.fit(shopper, own[0]) == 0.0  # what was bought is not wanted again


def test_clicks_fall_with_position_as_the_bias_says() -> None:
    rng = np.random.default_rng(1)
    fits = [0.4] * 10
    clicks = Counter(pick(fits, 0.5, rng) for _ in range(40_000))
    # with a cascade, position k is clicked when it is looked at and nothing above was
    expected, above = [], 1.0
    for k in range(10):
        p = looks_at(k) * 0.5 * 0.4
        expected.append(above * p)
        above *= 1 - p
    for k in (0, 1, 4, 9):
        assert clicks[k] / 40_000 == pytest.approx(expected[k], abs=0.006)
    assert clicks[0] > clicks[4] > clicks[9]


def test_a_rehearsed_ab_test_counts_every_list_and_finds_the_better_model(
    shop_home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "experiment"
    folder.mkdir()
    shutil.copy(EXPERIMENTS / "product-model-only.toml", folder)
    (folder / "ab.toml").write_text(TWO_ARMS)
    seen: list[int] = []  # the server, still up once the shoppers are done

    def look(url: str, admin_key: str) -> None:
        reply = httpx.get(f"{url}/v1/dashboard", headers={"Authorization": f"Bearer {admin_key}"})
        seen.append(reply.status_code)

    rehearsal = rehearse(
        folder / "ab.toml", 120, shop_home, tmp_path / "run", seed=4, before_stop=look
    )
    assert seen == [200]
    stats = rehearsal.stats
    assert stats.visits == 120 and stats.errors == 0
    [(_, attribution)] = rehearsal.results
    totals = snapshot(attribution).totals
    # every list the simulator was answered under a variant is one impression of it
    assert {v: t["impressions"] for v, t in totals.items()} == {
        v: float(n) for v, n in stats.by_variant.items()
    }
    assert sum(t["clicks"] for t in totals.values()) <= stats.counts["clicks"]
    ctr = {v: t["clicks"] / t["impressions"] for v, t in totals.items()}
    assert ctr["covisit"] > ctr["popularity"]  # the items after this one fit the intent
    outcomes = pl.read_parquet(rehearsal.out / "outcomes-covisit-vs-pop.parquet")
    assert outcomes.height == sum(t["users"] for t in totals.values())


def test_the_cli_prints_the_report_and_names_a_missing_shop(
    shop_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    folder = tmp_path / "experiment"
    folder.mkdir()
    shutil.copy(EXPERIMENTS / "product-model-only.toml", folder)
    (folder / "ab.toml").write_text(TWO_ARMS)
    args = ["simulate", "--experiment", str(folder / "ab.toml"), "--shoppers", "30",
            "--home", str(shop_home), "--out", str(tmp_path / "run")]  # fmt: skip
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "30 visits" in result.output and "experiment covisit-vs-pop on product" in result.output
    assert "popularity:" in result.output and "covisit:" in result.output
    empty = tmp_path / "empty-home"
    shutil.copytree(shop_home / "models", empty / "models")
    args[args.index("--home") + 1] = str(empty)
    missing = CliRunner().invoke(app, args, terminal_width=200)
    assert missing.exit_code == 2 and "no demo shop in" in missing.output


def test_apply_params_sets_each_knob_and_the_file_still_parses() -> None:
    from nextbest.evaluation.placement_tuning import apply_params
    from nextbest.recommend.placements import DEFAULT_FILE, PlacementsError, parse_placements
    from nextbest.toml_files import read_toml

    raw = read_toml(DEFAULT_FILE, "placements", PlacementsError)
    params = {"k:0": 77, "weight:similar": 2.5, "mmr": 0.3, "max_per_category": 3, "boost": 1.7}
    tuned = apply_params(raw, "product", params)
    spec = tuned["placements"]["product"]
    assert spec["generators"][0]["k"] == 77 and spec["ranker_weights"]["similar"] == 2.5
    assert spec["diversity"] == {"mmr": 0.3, "max_per_category": 3}
    assert spec["purchase_rules"] == {"boost": 1.7}
    assert raw["placements"]["product"]["generators"][0]["k"] == 200  # the original is kept
    pipeline = parse_placements(tuned, "tuned")["product"].pipeline
    assert pipeline.retrieval[0].k == 77


def test_tune_pipeline_finds_no_worse_knobs_and_checks_them_with_a_simulated_ab(
    shop_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import re

    from nextbest.recommend.placements import load_placements

    monkeypatch.setenv("COLUMNS", "200")
    shop = shop_home / "demo-shop"
    out = tmp_path / "tuned.toml"
    args = ["tune", "--pipeline", f"{EXPERIMENTS / 'product-model-only.toml'}:product",
            "--train", str(shop / "train.tsv"), "--items", str(shop / "items.csv"),
            "--model", "covisit", "--trials", "4", "--max-sessions", "150", "--out", str(out),
            "--simulate", "24", "--home", str(shop_home)]  # fmt: skip
    args += ["--json", str(tmp_path / "t.json")]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    found = re.search(r"the file's ([0-9.]+), the best ([0-9.]+)", result.output)
    assert found is not None and float(found[2]) >= float(found[1])
    assert "product" in load_placements(out).names  # the tuned file is a placements file
    trials = json.loads((tmp_path / "t.json").read_text())["trials"]
    assert len(trials) == 4 and trials[0]["value"] == pytest.approx(float(found[1]), abs=1e-4)
    assert "experiment tuned-product on product" in result.output
    assert "as-is:" in result.output and "tuned:" in result.output


def test_the_first_trial_is_the_file_as_it_is() -> None:
    from nextbest.evaluation.placement_tuning import _as_is, apply_params
    from nextbest.recommend.placements import DEFAULT_FILE, PlacementsError
    from nextbest.toml_files import read_toml

    raw = read_toml(DEFAULT_FILE, "placements", PlacementsError)
    spec = raw["placements"]["product"]
    values = _as_is(spec)
    assert values["k:0"] == 200 and values["weight:session"] == 4.0
    assert values["weight:similar"] == 1.0  # the file sets no weight: fusion's default
    assert (values["mmr"], values["max_per_category"], values["boost"]) == (0.2, 0, 1.0)
    again = apply_params(raw, "product", values)["placements"]["product"]
    for key in ("generators", "diversity"):
        assert again[key] == spec[key]
