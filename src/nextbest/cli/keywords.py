"""`nextbest keywords ...`: the query graph a version learned from the search log, and how
`nextbest train` builds it (beside the purchase rules, in the version's `keywords/` folder)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from nextbest.cli.common import (
    console,
    friendly_errors,
    open_server_log,
    progress_bar,
    results_table,
)
from nextbest.cli.rules import version_folder
from nextbest.data.sessions import Sessions
from nextbest.data.splits import split_by_time, train_valid_split
from nextbest.evaluation.keyword_recall import evaluate_card_recall, evaluate_keyword_recall
from nextbest.evaluation.search_eval import SearchResult, best_weight, evaluate_search, mrr_rows
from nextbest.events.io import read_events
from nextbest.events.schema import items_of_table
from nextbest.keywords.card_ranker import RANKER_KINDS, KeywordRanker, fit_keyword_ranker
from nextbest.keywords.graph import (
    KEYWORDS_DIR,
    QueryGraph,
    build_query_graph,
    load_version_graph,
)
from nextbest.keywords.ranking import read_cards
from nextbest.keywords.recall import PATHS, RecallConfig
from nextbest.keywords.scenarios import read_scenarios
from nextbest.keywords.search import ProductSearch
from nextbest.models.store import nextbest_home
from nextbest.recommend.items import ItemTable
from nextbest.recommend.rules.purchase_rules import PurchaseRules
from nextbest.serving.registry import serve_model

keywords_app = typer.Typer(
    no_args_is_help=True, help="Look at the query graph learned from the search log."
)


def learn_query_graph(
    events: pl.DataFrame,
    events_path: Path,
    items: pl.DataFrame | None,
    scenarios: Path | None = None,
) -> tuple[QueryGraph | None, str]:
    """The query graph of `events` (categories from `items` when given, curated scenarios
    from the `scenarios` file), when they hold searches, and a line saying what was built,
    or why nothing was."""
    curated = read_scenarios(scenarios) if scenarios is not None else []
    if curated and items is None:
        raise ValueError("--scenarios needs --items: a scenario's categories are the catalog's")
    searches = events.filter(pl.col("type") == "search").height
    if searches == 0:
        if curated:
            raise ValueError(
                f"--scenarios: {events_path} has no search events, so there is no query graph "
                "to add scenarios to"
            )
        return None, f"no query graph built: {events_path} has no search events"
    graph = build_query_graph(events, items, curated=curated)
    summary = graph.summary()
    if summary["query_item_pairs"] == 0 and summary["categories_with_queries"] == 0:
        return None, (
            f"no query graph built: none of the {searches:,} searches in {events_path} was "
            "followed by an item event often enough"
        )
    unsearched = (
        f"; curated queries nobody searched, left out: {', '.join(graph.unsearched)}"
        if graph.unsearched
        else ""
    )
    return graph, (
        f"query graph: {summary['queries']:,} queries, {summary['query_item_pairs']:,} "
        f"query-item pairs, {summary['items_with_queries']:,} items and "
        f"{summary['categories_with_queries']:,} categories with queries, "
        f"{summary['scenarios']:,} scenarios ({summary['curated_scenarios']:,} curated)"
        f"{unsearched}"
    )


def learn_keyword_ranker(
    cards_path: Path | None,
    events: pl.DataFrame,
    graph: QueryGraph | None,
    items: pl.DataFrame | None,
    kind: str,
    sessions: pl.Series | None = None,
) -> tuple[KeywordRanker | None, str | None]:
    """The keyword ranker of `--keyword-cards` (None without it; only the cards of
    `sessions` when given), and a line saying what was fitted; a ValueError naming the
    option when it cannot be."""
    if cards_path is None:
        return None, None
    if kind not in RANKER_KINDS:
        raise ValueError(f"--keyword-ranker must be one of {', '.join(RANKER_KINDS)}, not {kind!r}")
    if items is None:
        raise ValueError("--keyword-cards needs --items: the ranker reads the keywords' categories")
    if graph is None:
        raise ValueError(
            "--keyword-cards needs a query graph, and the training events built none (they "
            "need search events)"
        )
    cards = read_cards(cards_path)
    if sessions is not None:
        cards = cards.filter(pl.col("session_id").is_in(sessions.implode()))
    with console.status(f"fitting the {kind} keyword ranker on {cards_path}"):
        ranker = fit_keyword_ranker(cards, events, graph, items, kind)  # type: ignore[arg-type]
    meta = ranker.meta
    show = (
        f"; show model: threshold {ranker.show.threshold:.3f} (keeps "
        f"{ranker.show.meta['keep_clicks']:.0%} of the latest cards' clicks)"
        if ranker.show is not None
        else "; no show model (too few cards or clicks): the rules decide"
    )
    return ranker, (
        f"keyword ranker: {kind} on {meta['cards']:,} cards ({meta['keywords']:,} keywords, "
        f"{float(meta['click_share']):.1%} clicked) in {meta['fit_seconds']} s{show}"  # type: ignore[arg-type]
    )


def version_extra(
    rules: PurchaseRules | None,
    graph: QueryGraph | None,
    keyword_ranker: KeywordRanker | None = None,
) -> Callable[[Path], None] | None:
    """What `save_version` writes beside the model: the purchase rules, the query graph and
    the keyword ranker."""
    if rules is None and graph is None:
        return None

    def write(folder: Path) -> None:
        if rules is not None:
            rules.save(folder)
        if graph is not None:
            graph.save(folder / KEYWORDS_DIR)
            if keyword_ranker is not None:
                keyword_ranker.save(folder)

    return write


@keywords_app.command()
@friendly_errors
def show(
    version: Annotated[
        str | None, typer.Option(help="the model version (folder name); default: the newest")
    ] = None,
    item: Annotated[str | None, typer.Option(help="the queries of this item id")] = None,
    query: Annotated[str | None, typer.Option(help="the items of this query")] = None,
    category: Annotated[
        str | None, typer.Option(help='the queries of this category path ("A > B")')
    ] = None,
    limit: Annotated[int, typer.Option(help="rows per lookup")] = 10,
    scenarios: Annotated[
        bool, typer.Option("--scenarios", help="list the scenarios and their top queries")
    ] = False,
) -> None:
    """Print a version's query graph: its size, the most searched queries, and lookups."""
    if limit < 1:
        raise ValueError(f"--limit must be >= 1, not {limit}")
    folder = version_folder(nextbest_home(), version)
    graph = load_version_graph(folder)
    if graph is None:
        raise ValueError(
            f"version {folder.name} has no query graph: it was trained on events without "
            "searches (train on a log with search events to build one)"
        )
    console.print(f"version {folder.name}", highlight=False)
    console.print(
        ", ".join(f"{name.replace('_', ' ')} {value:,}" for name, value in graph.summary().items()),
        highlight=False,
    )
    lookups: list[tuple[str, list[tuple[str, float]], str]] = []
    if item is not None:
        lookups.append((f"queries of item {item}", graph.queries_of_item(item, limit), item))
    if query is not None:
        lookups.append((f"items of query {query!r}", graph.items_of_query(query, limit), query))
    if category is not None:
        lookups.append(
            (f"queries of {category}", graph.queries_of_category(category, limit), category)
        )
    if scenarios:
        _print_scenarios(graph, limit)
        if not lookups:
            return
    if not lookups:
        order = graph.searches.argsort(kind="stable")[::-1][:limit]
        searched = [(graph.queries[k], float(graph.searches[k])) for k in order]
        lookups.append(("most searched queries", searched, ""))
    for title, rows, asked in lookups:
        if not rows:
            raise ValueError(
                f"the query graph of {folder.name} knows nothing of {asked!r}: no search led "
                "to it in training"
            )
        table = Table(title=title, show_edge=False, header_style="bold", title_justify="left")
        table.add_column("")
        table.add_column("strength" if asked else "searches", justify="right")
        for name, value in rows:
            table.add_row(name, f"{value:.3f}" if asked else f"{value:,.0f}")
        console.print(table)


def _path_weights(texts: list[str]) -> tuple[tuple[str, float], ...]:
    """--path-weight PATH=WEIGHT options over the default of 1 per path."""
    weights = dict.fromkeys(PATHS, 1.0)
    for text in texts:
        path, _, value = text.partition("=")
        try:
            weights[path.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--path-weight: {text!r} is not PATH=WEIGHT") from None
    return tuple(weights.items())  # RecallConfig names an unknown path or a negative weight


def _print_scenarios(graph: QueryGraph, limit: int) -> None:
    if not graph.scenarios:
        console.print("no scenarios: none mined (train with --items) and none curated")
        return
    table = Table(title="scenarios", show_edge=False, header_style="bold", title_justify="left")
    for column in ("name", "source", "title", "categories", "top queries"):
        table.add_column(column)
    s2q = graph.s2q.tocsr()
    for row, scenario in enumerate(graph.scenarios):
        top = QueryGraph._top(s2q, row, graph.queries, min(limit, 5))
        table.add_row(
            scenario.name, scenario.source, scenario.title,
            "\n".join(c.split(" > ")[-1] for c in scenario.categories),
            ", ".join(q for q, _ in top),
        )  # fmt: skip
    console.print(table)


DEFAULT_WEIGHTS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # the shipped search placement has 2


@keywords_app.command("evaluate")
@friendly_errors
def evaluate_keywords(
    log: Annotated[
        Path, typer.Option("--log", help="event table (.parquet) with the searches and clicks")
    ],
    items_path: Annotated[Path, typer.Option("--items", help="the catalog (.csv or .parquet)")],
    test_days: Annotated[float, typer.Option(help="the last days of the log are the test")] = 2.0,
    model_name: Annotated[
        str, typer.Option("--model", help="the session model that personalises the search")
    ] = "covisit",
    n: Annotated[int, typer.Option(help="keywords recalled per shopper")] = 50,
    cards_path: Annotated[
        Path | None,
        typer.Option(
            "--cards",
            help="keyword cards shown and clicked (.parquet): also the recall of the clicked "
            "keywords",
        ),
    ] = None,
    weight: Annotated[
        list[float] | None,
        typer.Option(
            help="personal weights to choose from on the validation day (repeatable; BM25 "
            "alone, weight 0, is always measured)"
        ),
    ] = None,
    path_weight: Annotated[
        list[str] | None,
        typer.Option(
            help="a meta-path's share of the combined recall, PATH=WEIGHT (repeatable; "
            "default 1 each), e.g. scene=0"
        ),
    ] = None,
    validation: Annotated[
        bool,
        typer.Option(
            "--validation", help="measure on the last --test-days of the training days instead"
        ),
    ] = False,
    recall_only: Annotated[
        bool, typer.Option("--recall-only", help="skip the search measurement")
    ] = False,
) -> None:
    """Measure the keyword recall and the personalised search on a time split of a log.

    Recall: would the meta-paths have offered the query a shopper searched next (top N)?
    With --cards, also: would they have offered the keyword a shopper clicked on a test card?
    Search: MRR of the clicked result through the search placement, BM25's order alone against
    it fused with MODEL's order for the session, the weight chosen on the last training day.
    """
    from nextbest.cli.evaluate import read_items

    weights = tuple(weight or DEFAULT_WEIGHTS)
    if any(w < 0 for w in weights):
        raise ValueError(f"--weight must be >= 0, not {min(weights)}")
    config = RecallConfig(path_weights=_path_weights(path_weight or []))
    events, items = read_events(log), read_items(items_path)
    if events.filter(pl.col("type") == "search").height == 0:
        raise ValueError(f"{log} has no search events: nothing to evaluate")
    split = split_by_time(events, test_days)
    if validation:  # the test days are left out; the last training days are the test
        events = split.train
        split = split_by_time(events, test_days)
    with console.status("building the query graph of the training days"):
        graph = build_query_graph(split.train, items)
    with console.status("recalling keywords for every test search"):
        recall = evaluate_keyword_recall(graph, split.train, split.test, n=n, config=config)
    console.print(
        f"keyword recall: {recall.cases:,} test searches ({recall.known_queries:,} of queries "
        f"the graph knows, {recall.with_history:,} with a history before them)",
        highlight=False,
    )
    clicked = None
    if cards_path is not None:
        cards = read_cards(cards_path)
        test_cards = cards.filter(pl.col("session_id").is_in(split.test["session_id"].implode()))
        clicked = evaluate_card_recall(graph, events, test_cards, n=n, config=config)
        console.print(
            f"clicked card keywords: {clicked.cases:,} clicks on test cards "
            f"({clicked.known_queries:,} of keywords the graph knows)",
            highlight=False,
        )
    table = Table(show_edge=False, header_style="bold")
    table.add_column("path")
    table.add_column(f"recall@{n}, next search", justify="right")
    if clicked is not None:
        table.add_column(f"recall@{n}, clicked keyword", justify="right")
    for path, value in recall.recall().items():
        cells = [f"{value:.3f}"]
        if clicked is not None:
            cells.append(f"{clicked.recall()[path]:.3f}")
        table.add_row(path, *cells)
    console.print(table)
    if recall_only:
        return

    index = ProductSearch.of_items(items)
    choices = (0.0, *weights)
    inner = train_valid_split(split.train, 1.0)
    valid = _search_mrr(index, model_name, items, inner.train, inner.test, choices, "validation")
    chosen = best_weight(valid)
    test = _search_mrr(index, model_name, items, split.train, split.test, (0.0, chosen), "test")
    console.print(
        f"search, MRR of the clicked result through the search placement: {test.cases:,} test "
        f"searches with a click ({test.found:,} found by BM25 in the top 100); {model_name}'s "
        f"personal weight {chosen:g} chosen on {valid.cases:,} searches of the last training "
        "day (0: BM25 alone)",
        highlight=False,
    )
    console.print(results_table(["method", "validation MRR", "test MRR"], mrr_rows(valid, test)))


@keywords_app.command("rankers")
@friendly_errors
def rank_keywords(
    log: Annotated[
        Path, typer.Option("--log", help="event table (.parquet): searches, item events")
    ],
    items_path: Annotated[Path, typer.Option("--items", help="the catalog (.csv or .parquet)")],
    cards_path: Annotated[
        Path,
        typer.Option(
            "--cards", help="keyword cards shown and clicked (.parquet), e.g. keyword_cards.parquet"
        ),
    ],
    test_days: Annotated[float, typer.Option(help="the last days of the log are the test")] = 2.0,
    seeds: Annotated[int, typer.Option(min=1, max=10, help="fits per learned ranker")] = 3,
    epochs: Annotated[
        int, typer.Option(min=1, max=50, help="attention-GRU epochs (the best on validation kept)")
    ] = 4,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the results here")
    ] = None,
) -> None:
    """Which keyword of a card is clicked? AUC of the keyword rankers on a time split.

    Keyword popularity, FTRL and the attention-GRU, the feature groups added one at a time
    (category; history; text; all; time and action types), each learned row fitted SEEDS
    times. The query graph is learned from the training days only.
    """
    from nextbest.cli.evaluate import read_items
    from nextbest.evaluation.keyword_rankers import (
        evaluate_keyword_rankers,
        fits_of,
        keyword_ranking_split,
        table_rows,
    )
    from nextbest.twostage.rankers.attention_gru import AttentionGRUConfig

    cards = read_cards(cards_path)
    events, items = read_events(log), read_items(items_path)
    with console.status("building the cases: histories, query graph, features"):
        split = keyword_ranking_split(events, items, cards, test_days)
    console.print(
        f"{split.train.n_cases:,} training cards, {split.valid.n_cases:,} validation (the "
        f"latest training cards choose the epochs), {split.test.n_cases:,} test cards with "
        f"{len(split.test):,} keywords shown ({split.test_click_share:.1%} clicked)",
        highlight=False,
    )
    chosen = tuple(range(seeds))
    with progress_bar() as bar:
        task = bar.add_task("fitting", total=fits_of(chosen))

        def advance(what: str) -> None:
            bar.update(task, description=what)
            bar.advance(task)

        results = evaluate_keyword_rankers(
            split, chosen, AttentionGRUConfig(epochs=epochs), progress=advance
        )
    header = ["features", "FTRL AUC", "attention-GRU AUC", "attention-GRU gAUC"]
    console.print(results_table(header, table_rows(results)))
    if json_path is not None:
        rows = [{"ranker": r.ranker, "step": r.step, "auc": r.auc, "gauc": r.gauc} for r in results]
        json_path.write_text(json.dumps({"test_cards": split.test.n_cases, "rows": rows}))


def _search_mrr(
    index: ProductSearch,
    model_name: str,
    items: pl.DataFrame,
    train: pl.DataFrame,
    test: pl.DataFrame,
    weights: tuple[float, ...],
    period: str,
) -> SearchResult:
    """The search placement's MRR per weight on `test`, MODEL fitted on `train`."""
    from nextbest.cli.evaluate import fit_model

    model, _ = fit_model(model_name, {}, Sessions.from_events(train))
    served = serve_model(model, f"evaluate-{model_name}")
    table = ItemTable.build(model.item_ids, items_of_table(items))
    with progress_bar() as bar:
        task = bar.add_task(f"searching the {period} sessions", total=test["session_id"].n_unique())
        return evaluate_search(
            index, served, table, train, test, weights, progress=lambda k: bar.advance(task, k)
        )


@keywords_app.command("export-cards")
@friendly_errors
def export_cards(
    out: Annotated[
        Path, typer.Option("--out", help="the card table to write (.parquet), for --cards")
    ],
    since: Annotated[
        str | None,
        typer.Option(help="cards served from this ISO date or time on (UTC unless it has a zone)"),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="cards served before this ISO date or time (UTC unless it has a zone)"),
    ] = None,
) -> None:
    """Write the keyword cards the server showed, and the keywords clicked, as a card table.

    Reads the server's event log (NEXTBEST_DATABASE_URL, or the SQLite file in
    NEXTBEST_HOME): the cards `GET /v1/keywords` kept (placement "keywords") and the
    `keyword-click` events that carry their recommendation_id. One row per keyword shown.
    """
    from nextbest.keywords.card_log import cards_from_log

    start, end = _instant(since, "--since"), _instant(until, "--until")
    if start is not None and end is not None and start >= end:
        raise ValueError(f"--since ({since}) must be before --until ({until})")
    _check_writable(out)
    log, where = open_server_log()
    try:
        with console.status("reading the keyword cards of the event log") as status:
            exported = cards_from_log(
                log,
                start,
                end,
                progress=lambda n: status.update(f"read {n:,} keyword cards; then their clicks"),
            )
    except SQLAlchemyError as error:
        raise ValueError(f"could not read the event log at {where}: {error}") from None
    finally:
        log.close()
    if exported.n_cards == 0:
        window = "" if since is None and until is None else f" (--since {since}, --until {until})"
        raise ValueError(
            f"the event log at {where} holds no keyword cards{window}: `GET /v1/keywords` keeps "
            "the cards it shows for NEXTBEST_SERVED_KEEP_DAYS days"
        )
    try:
        exported.cards.write_parquet(out)
    except OSError as error:
        raise ValueError(f"--out {out}: cannot write it ({error})") from None
    console.print(
        f"{exported.n_cards:,} keyword cards, {exported.n_keywords:,} keywords shown, "
        f"{exported.keywords_clicked:,} clicked ({exported.click_rate:.1%})",
        highlight=False,
    )
    console.print(
        f"clicks: {exported.clicks_matched:,} matched; {exported.clicks_unmatched:,} unmatched "
        f"({exported.clicks_unknown_card:,} on no kept keyword card, "
        f"{exported.clicks_off_card:,} on a keyword the card did not show)",
        highlight=False,
    )
    if exported.sessionless:
        console.print(
            f"{exported.sessionless:,} cards were served without a session_id: each is a "
            "session of its own (session_id = card_id)",
            highlight=False,
        )
    console.print(f"wrote {out}", highlight=False)


def _instant(value: str | None, option: str) -> float | None:
    """Epoch seconds of an ISO date or date-time (UTC unless it names a zone)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{option} {value!r} is not an ISO date or time: give e.g. 2024-05-01 or "
            "2024-05-01T12:00 (UTC unless it names a zone)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _check_writable(out: Path) -> None:
    """Name --out before the log is read if the file cannot be written there."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: name a file, e.g. {out / 'cards.parquet'}")
    folder = out.parent
    if not folder.is_dir():
        raise ValueError(f"--out {out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ValueError(f"--out {out}: not writable")


@keywords_app.command("update-ranker")
@friendly_errors
def update_ranker(
    cards_path: Annotated[
        Path,
        typer.Option(
            "--cards",
            help="keyword cards shown and clicked since the version was trained "
            "(.parquet, from `nextbest keywords export-cards`)",
        ),
    ],
    log: Annotated[
        Path, typer.Option(help="event table (.parquet) with the cards' shoppers' item events")
    ],
    version: Annotated[
        str | None, typer.Option(help="the model version (folder name); default: the newest")
    ] = None,
) -> None:
    """Teach a version's FTRL keyword ranker the cards shown and clicked since, as a new version.

    One online pass over the cards in time order (FTRL-Proximal's update); the query graph and
    everything else are copied unchanged. The server serves the new version when it loads the
    newest (`nextbest serve` watches the models folder). The old version stays.
    """
    from nextbest.keywords.card_ranker import update_keyword_ranker
    from nextbest.models.store import derive_version

    folder = version_folder(nextbest_home(), version)
    graph = load_version_graph(folder)
    ranker = KeywordRanker.load(folder)
    if graph is None or ranker is None:
        raise ValueError(
            f"version {folder.name} has no keyword ranker to update: train one with "
            "nextbest train --keyword-cards FILE"
        )
    cards, events = read_cards(cards_path), read_events(log)
    with console.status(f"updating the {ranker.kind} keyword ranker of {folder.name}"):
        learned = update_keyword_ranker(ranker, cards, events, graph)
    meta = {"keyword_ranker": {"kind": ranker.kind, **ranker.meta}}
    new = derive_version(folder, nextbest_home(), ranker.save, meta)
    console.print(
        f"keyword ranker of {folder.name} updated on {learned:,} cards "
        f"({int(cards['clicked'].sum()):,} clicks) -> {new}",
        highlight=False,
    )


@keywords_app.command("show-model")
@friendly_errors
def show_model_command(
    log: Annotated[Path, typer.Option(help="event table (.parquet): the cards' sessions")],
    items_path: Annotated[Path, typer.Option("--items", help="the catalog (.csv or .parquet)")],
    cards_path: Annotated[
        Path,
        typer.Option(
            "--cards", help="keyword cards shown and clicked (.parquet), e.g. keyword_cards.parquet"
        ),
    ],
    test_days: Annotated[float, typer.Option(help="the last days of the log are the test")] = 2.0,
    keep: Annotated[
        float,
        typer.Option(min=0.01, max=1.0, help="share of the validation clicks the threshold keeps"),
    ] = 0.9,
) -> None:
    """Should the card be shown? The show model against rules, on a time split of the cards.

    For each decision: the share of the test cards it shows, the share of their clicks it
    keeps, and the click rate of the shown. The model learns on the training cards (the
    latest tenth stops it and sets its threshold); the test chooses nothing.
    """
    from nextbest.cli.evaluate import read_items
    from nextbest.evaluation.keyword_show import evaluate_show_decisions

    cards = read_cards(cards_path)
    events, items = read_events(log), read_items(items_path)
    with console.status("the cards' intents, and fitting the show model"):
        result = evaluate_show_decisions(events, items, cards, test_days, keep)
    console.print(
        f"{result.train_cards:,} training cards, {result.test_cards:,} test cards "
        f"({result.test_click_share:.1%} with a click); show model AUC {result.auc:.4f}",
        highlight=False,
    )
    rows = [
        [d.name, f"{d.shown:.1%}", f"{d.clicks_kept:.1%}", f"{d.click_rate:.1%}"]
        for d in result.decisions
    ]
    header = ["decision", "cards shown", "clicks kept", "click rate of the shown"]
    console.print(results_table(header, rows))
