"""Cold start from the command line: `demo-shop --cold-items`, `evaluate --items` with the
cold figures, catpop and GRU4Rec's attributes, and the errors a user meets on the way."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop
from nextbest.data.demo_shop.writer import held_out_items, split_demo_shop

runner = CliRunner()


@pytest.fixture(scope="module")
def cold_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cold_shop")
    args = ["data", "demo-shop", "--out", str(out), "--events", "30000", "--seed", "3"]
    result = runner.invoke(app, [*args, "--cold-items", "0.1"])
    assert result.exit_code == 0, result.output
    assert "items held out of training" in result.output
    return out


def read_tsv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, separator="\t", infer_schema=False)


def test_cold_items_are_out_of_training_and_in_the_test(cold_shop: Path) -> None:
    cold = set((cold_shop / "cold_items.txt").read_text().split())
    catalog = pl.read_csv(cold_shop / "items.csv", infer_schema=False)
    assert len(cold) == round(0.1 * catalog.height)
    assert cold <= set(catalog["item_id"].to_list())
    train, test = read_tsv(cold_shop / "train.tsv"), read_tsv(cold_shop / "test.tsv")
    assert not cold & set(train["ItemId"].to_list())
    assert cold & set(test["ItemId"].to_list())  # new items of the test period are targets
    # every other test item was seen in training, as the next-event protocol wants
    assert set(test["ItemId"].to_list()) - cold <= set(train["ItemId"].to_list())


def test_no_cold_items_leaves_the_split_as_it_was() -> None:
    shop = generate_demo_shop(DemoShopConfig(n_events=20_000, n_users=200, seed=5))
    before, after = split_demo_shop(shop), split_demo_shop(shop, 0.0)
    assert before[0].equals(after[0]) and before[1].equals(after[1])
    assert held_out_items(shop, 0.1) == held_out_items(shop, 0.1)  # drawn from the seed
    with pytest.raises(ValueError, match=r"share of cold items must be in \[0, 1\)"):
        held_out_items(shop, 1.0)


def test_bad_cold_share_is_named(tmp_path: Path) -> None:
    args = ["data", "demo-shop", "--out", str(tmp_path / "x"), "--cold-items", "1.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--cold-items must be a share in [0, 1)" in result.output


def evaluate(shop: Path, out: Path, *extra: str) -> dict[str, float]:
    args = ["evaluate", "--train", str(shop / "train.tsv"), "--test", str(shop / "test.tsv"),
            "--items", str(shop / "items.csv"), "--cutoff", "20", "--json", str(out),
            *extra]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "cold items (" in result.output
    record: dict[str, float] = json.loads(out.read_text())
    return record


def test_evaluate_with_items_reports_cold_cases(cold_shop: Path, tmp_path: Path) -> None:
    catpop = evaluate(cold_shop, tmp_path / "catpop.json", "--model", "catpop")
    cold = set((cold_shop / "cold_items.txt").read_text().split())
    test = read_tsv(cold_shop / "test.tsv").with_columns(
        (pl.int_range(pl.len()).over("SessionId") > 0).alias("target")
    )
    targets = test.filter(pl.col("target"))
    assert catpop["cases"] == targets.height
    assert catpop["cold_cases"] == targets.filter(pl.col("ItemId").is_in(list(cold))).height > 0
    # catpop knows nothing of a new item: it ranks it below every trained item of its category
    assert catpop["cold_recall@20"] == 0.0
    gru = evaluate(
        cold_shop, tmp_path / "gru.json", "--model", "gru4rec", "--param", "layers=32",
        "--param", "n_epochs=2", "--param", "attributes=category,brand,price",
        "--param", "learning_rate=0.2",  # the demo's (the authors' RSC15) rate: 2 epochs learn
    )  # fmt: skip
    assert gru["cold_cases"] == catpop["cold_cases"]
    assert gru["cold_recall@20"] > 0.1  # its attributes put new items in the lists
    assert gru["params"]["attributes"] == ["category", "brand", "price"]  # type: ignore[index]


def test_without_items_the_protocol_is_unchanged(cold_shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "pop.json"
    args = ["evaluate", "--model", "pop", "--train", str(cold_shop / "train.tsv"),
            "--test", str(cold_shop / "test.tsv"), "--json", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert "cold_cases" not in record and "cold items" not in result.output


@pytest.mark.parametrize(
    ("model", "param", "message"),
    [
        ("gru4rec", "attributes=category", "needs the catalog: add --items FILE"),
        ("catpop", None, "catpop needs the catalog"),
    ],
)
def test_models_that_read_the_catalog_refuse_to_run_without_it(
    cold_shop: Path, model: str, param: str | None, message: str
) -> None:
    args = ["evaluate", "--model", model, "--train", str(cold_shop / "train.tsv"),
            "--test", str(cold_shop / "test.tsv")]  # fmt: skip
    result = runner.invoke(app, [*args, *(["--param", param] if param else [])])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_train_with_attributes_ranks_the_whole_catalog(
    cold_shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nextbest.models.gru4rec import GRU4Rec
    from nextbest.models.store import latest_version

    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "home"))
    args = ["train", "--model", "gru4rec", "--train", str(cold_shop / "train.tsv"),
            "--items", str(cold_shop / "items.csv"), "--param", "layers=16",
            "--param", "n_epochs=1", "--param", "attributes=category,brand"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = latest_version(tmp_path / "home")
    assert folder is not None
    model = GRU4Rec.load(folder)
    catalog = pl.read_csv(cold_shop / "items.csv", infer_schema=False)["item_id"].to_list()
    assert set(catalog) <= set(model.item_ids.tolist())  # type: ignore[union-attr]
