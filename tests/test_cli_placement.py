"""`nextbest evaluate --placement`: a whole placement through the next-event protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextbest.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shop")
    result = runner.invoke(
        app, ["data", "demo-shop", "--out", str(folder), "--events", "30000", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    return folder


def evaluate(shop: Path, placement: str, out: Path) -> dict[str, float]:
    args = [
        "evaluate", "--model", "covisit", "--train", str(shop / "train.tsv"),
        "--test", str(shop / "test.tsv"), "--items", str(shop / "items.csv"),
        "--placement", placement, "--max-sessions", "150", "--json", str(out),
    ]  # fmt: skip
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    record: dict[str, float] = json.loads(out.read_text())
    return record


def test_a_shipped_placement_is_measured_with_its_rules(shop: Path, tmp_path: Path) -> None:
    product = evaluate(shop, "product", tmp_path / "product.json")
    assert product["cases"] > 100
    assert 0 < product["recall@5"] <= product["recall@10"] <= product["recall@20"] <= 1
    assert 0 <= product["intra_list_diversity"] <= 1 and 0 < product["category_coverage"] <= 1
    # a placement whose filter lets nothing through recommends nothing: the rules do run
    nothing = tmp_path / "nothing.toml"
    nothing.write_text(
        "[filters]\nnone = 'INCLUDE WHERE item.price < 0'\n"
        "[placements.product]\ngenerators = [{ source = 'session', k = 100 }]\n"
        "filters = ['none']\nfill = []\n"
    )
    empty = evaluate(shop, f"{nothing}:product", tmp_path / "empty.json")
    assert empty["cases"] == product["cases"] and empty["recall@20"] == 0.0


def test_a_bad_placement_is_one_line_and_exit_2(shop: Path, tmp_path: Path) -> None:
    base = ["evaluate", "--model", "pop", "--train", str(shop / "train.tsv"),
            "--test", str(shop / "test.tsv")]  # fmt: skip
    unknown = runner.invoke(app, [*base, "--placement", "checkout"], terminal_width=200)
    assert unknown.exit_code == 2 and "no placement 'checkout'" in unknown.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[placements.product]\ngenerators = [{ source = 'session', k = 0 }]\n")
    broken = runner.invoke(app, [*base, "--placement", f"{bad}:product"], terminal_width=200)
    assert broken.exit_code == 2 and "generators[0].k" in broken.output


def test_an_attribute_model_reads_the_placements_catalog(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "attributes.json"
    args = [
        "evaluate", "--model", "gru4rec", "--param", "layers=16", "--param", "n_epochs=1",
        "--param", "attributes=category,brand", "--train", str(shop / "train.tsv"),
        "--test", str(shop / "test.tsv"), "--items", str(shop / "items.csv"),
        "--placement", "product", "--max-sessions", "50", "--json", str(out),
    ]  # fmt: skip
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["params"]["attributes"] == ["category", "brand"]
    missing = runner.invoke(
        app, [a for a in args if a != str(shop / "items.csv") and a != "--items"]
    )
    assert missing.exit_code == 2 and "needs the catalog: add --items FILE" in missing.output
