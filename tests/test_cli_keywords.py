"""`nextbest train` saves the query graph of a log with searches; `nextbest keywords show`
prints it; a log without searches says why there is none."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from event_tables import event_table
from nextbest.cli.main import app
from nextbest.keywords.graph import KEYWORDS_DIR, load_version_graph
from nextbest.models.store import META_FILE, latest_version

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "160")
    return tmp_path / "home"


def write_log(folder: Path, with_searches: bool = True) -> tuple[Path, Path]:
    """Shoppers search "running shoes" and view shoe s1 or s2; others search "kettle" and
    view kettle k1; every session also views its item a second time."""
    rows = []
    for k in range(12):
        query, item = ("running shoes", f"s{1 + k % 2}") if k < 8 else ("kettle", "k1")
        session = f"v{k}"
        if with_searches:
            rows.append((session, 100.0 * k, "search", None, query))
        rows += [(session, 100.0 * k + 1, "view", item, None)] * 2
    events = event_table(rows, ("session_id", "timestamp", "type", "item_id", "query"))
    log, items = folder / "log.parquet", folder / "items.csv"
    events.write_parquet(log)
    pl.DataFrame(
        {
            "item_id": ["s1", "s2", "k1"],
            "title": ["Shoe one", "Shoe two", "Kettle"],
            "category_path": ["Sports > Running shoes"] * 2 + ["Home > Kettles"],
        }
    ).write_csv(items)
    return log, items


def test_train_saves_the_query_graph_and_show_prints_its_lookups(
    home: Path, tmp_path: Path
) -> None:
    log, items = write_log(tmp_path)
    trained = runner.invoke(
        app, ["train", "--model", "pop", "--train", str(log), "--items", str(items)]
    )
    assert trained.exit_code == 0, trained.output
    assert "query graph: 2 queries" in trained.output
    folder = latest_version(home)
    assert folder is not None and (folder / KEYWORDS_DIR).is_dir()
    graph = load_version_graph(folder)
    assert graph is not None and graph.queries_of_item("k1")[0][0] == "kettle"
    assert '"query_graph"' in (folder / META_FILE).read_text()

    shown = runner.invoke(app, ["keywords", "show"])
    assert shown.exit_code == 0, shown.output
    assert "most searched queries" in shown.output and "running shoes" in shown.output
    lookups = runner.invoke(
        app, ["keywords", "show", "--item", "s1", "--query", "KETTLE", "--category", "Home"]
    )
    assert lookups.exit_code == 0, lookups.output
    assert "queries of item s1" in lookups.output and "running shoes" in lookups.output
    assert "k1" in lookups.output and "queries of Home" in lookups.output


def test_without_searches_train_says_why_and_show_says_what_is_missing(
    home: Path, tmp_path: Path
) -> None:
    log, _ = write_log(tmp_path, with_searches=False)
    trained = runner.invoke(app, ["train", "--model", "pop", "--train", str(log)])
    assert trained.exit_code == 0, trained.output
    assert "no query graph built" in trained.output and "no search events" in trained.output
    shown = runner.invoke(app, ["keywords", "show"])
    assert shown.exit_code != 0
    assert "has no query graph" in shown.output


def test_show_names_an_unknown_item_and_a_bad_limit(home: Path, tmp_path: Path) -> None:
    log, items = write_log(tmp_path)
    runner.invoke(app, ["train", "--model", "pop", "--train", str(log), "--items", str(items)])
    unknown = runner.invoke(app, ["keywords", "show", "--item", "nope"])
    assert unknown.exit_code != 0 and "knows nothing of 'nope'" in unknown.output
    bad = runner.invoke(app, ["keywords", "show", "--limit", "0"])
    assert bad.exit_code != 0 and "--limit" in bad.output


@pytest.fixture(scope="module")
def shop_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A small demo shop's event log, catalog and keyword cards."""
    from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop

    shop = generate_demo_shop(DemoShopConfig(n_events=60_000, n_items=500, n_users=600, days=10))
    folder = tmp_path_factory.mktemp("shop")
    log, items, cards = folder / "log.parquet", folder / "items.csv", folder / "cards.parquet"
    shop.events.write_parquet(log)
    shop.items.write_csv(items)
    shop.cards.write_parquet(cards)
    return log, items, cards


def test_keywords_evaluate_reports_recall_and_search_on_a_time_split(
    home: Path, shop_files: tuple[Path, Path, Path]
) -> None:
    log, items, cards = shop_files
    result = runner.invoke(
        app,
        ["keywords", "evaluate", "--log", str(log), "--items", str(items), "--n", "20",
         "--cards", str(cards)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for line in ("keyword recall:", "recall@20", "combined", "popular", "personal w=8",
                 "clicks on test cards", "clicked keyword"):  # fmt: skip
        assert line in result.output
    bad = runner.invoke(
        app, ["keywords", "evaluate", "--log", str(log), "--items", str(items), "--weight", "-1"]
    )
    assert bad.exit_code == 2 and "--weight must be >= 0" in bad.output


def test_keywords_evaluate_without_searches_says_so(home: Path, tmp_path: Path) -> None:
    log, items = write_log(tmp_path, with_searches=False)
    result = runner.invoke(app, ["keywords", "evaluate", "--log", str(log), "--items", str(items)])
    assert result.exit_code == 2 and "no search events" in result.output


def test_keywords_rankers_reports_every_step_and_history_beats_the_category_alone(
    home: Path, tmp_path: Path, shop_files: tuple[Path, Path, Path]
) -> None:
    log, items, cards = shop_files
    out = tmp_path / "rankers.json"
    args = ["keywords", "rankers", "--log", str(log), "--items", str(items), "--cards", str(cards)]
    result = runner.invoke(app, [*args, "--seeds", "1", "--epochs", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    for line in ("keyword popularity", "+ history", "+ text", "all features", "+ time and types"):
        assert line in result.output
    rows = {(r["ranker"], r["step"]): r["auc"][0] for r in json.loads(out.read_text())["rows"]}
    assert len(rows) == 11
    # the click follows the shopper's next leaf: the history says much, the category little
    for ranker in ("ftrl", "attention-gru"):
        assert rows[(ranker, "+ history")] > rows[(ranker, "category")] + 0.1
    assert rows[("attention-gru", "all features")] > rows[("popularity", "category")] + 0.1
    missing = runner.invoke(app, [*args[:-1], str(tmp_path / "nope.parquet")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    (tmp_path / "cards.csv").write_text("card_id,query\nk1,tent\n")
    not_parquet = runner.invoke(app, [*args[:-1], str(tmp_path / "cards.csv")])
    assert not_parquet.exit_code == 2 and "not a readable Parquet file" in not_parquet.output


def test_train_fits_the_keyword_ranker_of_the_cards_and_names_bad_options(
    home: Path, tmp_path: Path, shop_files: tuple[Path, Path, Path]
) -> None:
    from nextbest.keywords.card_ranker import KeywordRanker

    log, items, cards = shop_files
    args = ["train", "--model", "pop", "--train", str(log), "--keyword-cards", str(cards)]
    trained = runner.invoke(app, [*args, "--items", str(items)])
    assert trained.exit_code == 0, trained.output
    assert "keyword ranker: ftrl on" in trained.output
    folder = latest_version(home)
    assert folder is not None
    ranker = KeywordRanker.load(folder)
    assert ranker is not None and ranker.kind == "ftrl"
    assert json.loads((folder / META_FILE).read_text())["keyword_ranker"]["kind"] == "ftrl"
    no_items = runner.invoke(app, args)
    assert no_items.exit_code == 2 and "--keyword-cards needs --items" in no_items.output
    bad_kind = runner.invoke(app, [*args, "--items", str(items), "--keyword-ranker", "svm"])
    assert bad_kind.exit_code == 2 and "--keyword-ranker must be one of" in bad_kind.output


def test_update_ranker_writes_a_new_version_and_keeps_the_old(
    home: Path, tmp_path: Path, shop_files: tuple[Path, Path, Path]
) -> None:
    log, items, cards = shop_files
    none_yet = runner.invoke(app, ["keywords", "update-ranker", "--cards", str(cards),
                                   "--log", str(log)])  # fmt: skip
    assert none_yet.exit_code == 2 and "no model versions" in none_yet.output
    runner.invoke(app, ["train", "--model", "pop", "--train", str(log), "--items", str(items)])
    no_ranker = runner.invoke(
        app, ["keywords", "update-ranker", "--cards", str(cards), "--log", str(log)]
    )
    assert no_ranker.exit_code == 2 and "has no keyword ranker to update" in no_ranker.output
    trained = runner.invoke(
        app, ["train", "--model", "pop", "--train", str(log), "--items", str(items),
              "--keyword-cards", str(cards)],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    old = latest_version(home)
    assert old is not None
    saved = (old / "keywords" / "ranker" / "keyword-ranker.json").read_text()
    updated = runner.invoke(
        app, ["keywords", "update-ranker", "--cards", str(cards), "--log", str(log)]
    )
    assert updated.exit_code == 0, updated.output
    new = latest_version(home)
    assert (
        new is not None and new != old and f"keyword ranker of {old.name} updated" in updated.output
    )
    meta = json.loads((new / META_FILE).read_text())
    assert meta["derived_from"] == old.name and meta["keyword_ranker"]["updated_cards"] > 0
    assert (old / "keywords" / "ranker" / "keyword-ranker.json").read_text() == saved


def test_train_adds_curated_scenarios_and_show_lists_them(home: Path, tmp_path: Path) -> None:
    log, items = write_log(tmp_path)
    scenarios = tmp_path / "scenarios.toml"
    scenarios.write_text(
        '[scenarios.kitchen]\ntitle = "A new kitchen"\ncategories = ["Home > Kettles"]\n'
        'queries = ["kettle", "toaster"]\n'
    )
    args = ["train", "--model", "pop", "--train", str(log), "--scenarios", str(scenarios)]
    trained = runner.invoke(app, [*args, "--items", str(items)])
    assert trained.exit_code == 0, trained.output
    assert "1 scenarios (1 curated)" in trained.output
    assert "curated queries nobody searched, left out: toaster" in trained.output
    shown = runner.invoke(app, ["keywords", "show", "--scenarios"])
    assert shown.exit_code == 0, shown.output
    assert "A new kitchen" in shown.output and "curated" in shown.output
    no_items = runner.invoke(app, args)
    assert no_items.exit_code == 2 and "--scenarios needs --items" in no_items.output
    scenarios.write_text(
        '[scenarios.kitchen]\ntitle = "A new kitchen"\ncategories = ["Home > Ovens"]\n'
    )
    unknown = runner.invoke(app, [*args, "--items", str(items)])
    assert unknown.exit_code == 2 and "'Home > Ovens' is not a category" in unknown.output


def test_keywords_evaluate_weighs_the_paths_and_measures_on_validation_days(
    home: Path, shop_files: tuple[Path, Path, Path]
) -> None:
    log, items, cards = shop_files
    args = ["keywords", "evaluate", "--log", str(log), "--items", str(items), "--cards",
            str(cards), "--recall-only", "--n", "10"]  # fmt: skip

    def combined(*extra: str) -> str:
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        assert "personal w=" not in result.output  # --recall-only: no search measured
        return next(line for line in result.output.splitlines() if "combined" in line)

    assert combined() != combined("--path-weight", "i2q=0", "--path-weight", "c2q=0")
    assert combined() != combined("--validation")
    bad = runner.invoke(app, [*args, "--path-weight", "tree=1"])
    assert bad.exit_code == 2 and "path weight tree=1.0" in bad.output
    worse = runner.invoke(app, [*args, "--path-weight", "scene"])
    assert worse.exit_code == 2 and "'scene' is not PATH=WEIGHT" in worse.output
