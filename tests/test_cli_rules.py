"""`nextbest train --items` saves the purchase rules with the version; `nextbest rules show`
prints them; `nextbest demo` saves them with every model. Errors are one line, exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextbest.cli import demo as demo_cli
from nextbest.cli.main import app
from nextbest.models.store import META_FILE, latest_version, list_versions
from nextbest.recommend.rules.purchase_rules import RULES_FILE, PurchaseRules

runner = CliRunner()
DAY = 86_400.0
START = 1_709_510_400.0  # 2024-03-04, a Monday
TREADMILL = "Sports > Fitness > Treadmills"
SHOES = "Sports > Running > Running shoes"
ITEMS = (
    "item_id,title,category_path,price\n"
    f"t1,Strideon Treadmill,{TREADMILL},749.99\n"
    f"s1,Strideon Running Shoe,{SHOES},109.99\n"
    "k1,Voltra Kettle,Home > Kitchen > Kettles,44.99\n"
)


def write_shop(folder: Path) -> tuple[Path, Path]:
    """30 users buy a treadmill, then running shoes two days later, and come back 20 days on
    to look at kettles; 60 other users buy only kettles and never come back. So treadmills
    (and running shoes) are durable: nobody bought or looked at one again. Running shoes are
    the treadmill's complement with lift (30/30) / (30/90) = 3; kettles are unknown."""
    rows = ["SessionId\tItemId\tTime\tUserId\tEventType"]

    def session(name: str, user: str, day: float, events: list[tuple[str, str]]) -> None:
        for k, (item, kind) in enumerate(events):
            rows.append(f"{name}\t{item}\t{START + day * DAY + 60 * k}\t{user}\t{kind}")

    for u in range(30):
        user = f"u{u}"
        buy = [("view", "view"), ("cart", "cart"), ("purchase", "purchase")]
        session(f"{user}a", user, 0.0, [("t1", kind) for _, kind in buy])
        session(f"{user}b", user, 2.0, [("s1", kind) for _, kind in buy])
        session(f"{user}c", user, 20.0, [("k1", "view"), ("k1", "view")])
    for u in range(60):
        session(f"o{u}", f"o{u}", 1.0 + u % 5, [("k1", "view"), ("k1", "purchase")])
    train, items = folder / "train.tsv", folder / "items.csv"
    train.write_text("\n".join(rows) + "\n")
    items.write_text(ITEMS)
    return train, items


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Path, Path]:
    return write_shop(tmp_path)


def train(train_path: Path, *extra: str) -> list[str]:
    return ["train", "--model", "pop", "--train", str(train_path), *extra]


def one_error_line(output: str) -> str:
    """The one error message printed, re-joined where the 80-column test console wrapped it."""
    assert output.startswith("error: ") and output.count("error:") == 1, output
    assert "Traceback" not in output
    return " ".join(line.strip() for line in output.strip().splitlines())


def test_train_with_items_saves_the_rules_into_the_new_version(
    home: Path, shop: tuple[Path, Path]
) -> None:
    train_path, items = shop
    result = runner.invoke(app, train(train_path, "--items", str(items)))
    assert result.exit_code == 0, result.output
    assert "purchase rules: 2 durable, 0 consumable, 0 regular, 1 unknown" in result.output
    assert "1 complement pairs (from 120 purchases by 90 buyers)" in result.output
    folder = latest_version(home)
    assert folder is not None and (folder / RULES_FILE).exists()
    rules = PurchaseRules.load(folder)
    assert rules is not None
    treadmill = rules.category(TREADMILL)
    assert treadmill is not None and treadmill.kind == "durable"
    assert treadmill.complements == ((SHOES, 3.0),)
    meta = json.loads((folder / META_FILE).read_text())
    assert (meta["purchase_rules"]["durable"], meta["purchase_rules"]["complement_pairs"]) == (2, 1)
    assert not list((home / "models").glob(".*"))  # no staging folder left behind


def test_train_without_items_or_purchases_says_why_in_one_line(
    home: Path, shop: tuple[Path, Path], tmp_path: Path
) -> None:
    train_path, items = shop
    result = runner.invoke(app, train(train_path))
    assert result.exit_code == 0, result.output
    assert "no purchase rules learned: no catalog given (--items FILE learns them)" in result.output
    folder = latest_version(home)
    assert folder is not None and not (folder / RULES_FILE).exists()
    views_only = tmp_path / "views.tsv"
    views_only.write_text("SessionId\tItemId\tTime\n1\tt1\t1\n1\ts1\t2\n")
    result = runner.invoke(app, train(views_only, "--items", str(items)))
    assert result.exit_code == 0, result.output
    assert f"no purchase rules learned: {views_only} has no purchase events" in result.output
    assert len(list_versions(home)) == 2


@pytest.mark.parametrize(
    ("catalog", "message"),
    [
        (None, "no such file"),
        ("item_id,title\nt1,Treadmill\n", "lacks column(s) category_path"),
        ("item_id,category_path,price\nt1,A > B,cheap\n", "row 1, column price: 'cheap' is not"),
    ],
)
def test_a_bad_catalog_is_one_line_and_exit_2(
    home: Path, shop: tuple[Path, Path], tmp_path: Path, catalog: str | None, message: str
) -> None:
    path = tmp_path / "catalog.csv"
    if catalog is not None:
        path.write_text(catalog)
    result = runner.invoke(app, train(shop[0], "--items", str(path)))
    assert result.exit_code == 2
    assert message in one_error_line(result.output)
    assert latest_version(home) is None  # refused before any version was written


def test_rules_show_prints_the_learned_rows(home: Path, shop: tuple[Path, Path]) -> None:
    train_path, items = shop
    assert runner.invoke(app, train(train_path, "--items", str(items))).exit_code == 0
    folder = latest_version(home)
    assert folder is not None
    result = runner.invoke(app, ["rules", "show"])
    assert result.exit_code == 0, result.output
    assert f"version {folder.name}" in result.output
    row = next(line for line in result.output.splitlines() if TREADMILL in line)
    cells = [cell.strip() for cell in row.split("│")]
    # category, kind, buyers, back, re-buy, revisit, cycle, hold, complements
    assert cells == [TREADMILL, "durable", "30", "30", "0%", "0%", "-", "180", "Running shoes 3.0"]
    shoes = runner.invoke(app, ["rules", "show", "--version", folder.name, "--category", "SHOES"])
    assert shoes.exit_code == 0, shoes.output
    assert SHOES in shoes.output and TREADMILL not in shoes.output
    limited = runner.invoke(app, ["rules", "show", "--limit", "1"])
    assert "1 of 3 categories shown" in limited.output


def test_rules_show_errors_are_one_line(home: Path, shop: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["rules", "show"])
    assert result.exit_code == 2
    assert "no model versions under" in one_error_line(result.output)
    assert runner.invoke(app, train(shop[0])).exit_code == 0  # a version without rules
    folder = latest_version(home)
    assert folder is not None
    result = runner.invoke(app, ["rules", "show"])
    assert result.exit_code == 2
    assert f"version {folder.name} has no {RULES_FILE}" in one_error_line(result.output)
    result = runner.invoke(app, ["rules", "show", "--version", "20990101T000000.000000-pop"])
    assert result.exit_code == 2
    assert "no model version '20990101T000000.000000-pop'" in one_error_line(result.output)
    assert folder.name in result.output  # and it names the versions there are


def test_demo_saves_the_rules_with_every_model(
    home: Path, shop: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    train_path, _ = shop
    (train_path.parent / "test.tsv").write_text(train_path.read_text())
    monkeypatch.setattr(demo_cli, "DEMO_MODELS", (("pop", {}), ("spop", {})))
    demo_cli.train_demo_models(home, train_path.parent, "pop")
    versions = list_versions(home)
    assert len(versions) == 3  # pop, spop and the two-stage pipeline
    for folder in versions:
        rules = PurchaseRules.load(folder)
        assert rules is not None and rules.category(TREADMILL) is not None
        assert rules.category(TREADMILL).kind == "durable"  # type: ignore[union-attr]
