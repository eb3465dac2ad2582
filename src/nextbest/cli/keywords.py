"""`nextbest keywords ...`: the query graph a version learned from the search log, and how
`nextbest train` builds it (beside the purchase rules, in the version's `keywords/` folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.table import Table

from nextbest.cli.common import console, friendly_errors
from nextbest.cli.rules import _version_folder
from nextbest.keywords.graph import GRAPH_FILE, QueryGraph, build_query_graph
from nextbest.models.store import nextbest_home
from nextbest.recommend.rules.purchase_rules import PurchaseRules

KEYWORDS_DIR = "keywords"  # in a version folder

keywords_app = typer.Typer(
    no_args_is_help=True, help="Look at the query graph learned from the search log."
)


def learn_query_graph(
    events: pl.DataFrame, events_path: Path, items: pl.DataFrame | None
) -> tuple[QueryGraph | None, str]:
    """The query graph of `events` (categories from `items` when given), when they hold
    searches, and one line saying what was built, or why nothing was."""
    searches = events.filter(pl.col("type") == "search").height
    if searches == 0:
        return None, f"no query graph built: {events_path} has no search events"
    graph = build_query_graph(events, items)
    summary = graph.summary()
    if summary["query_item_pairs"] == 0 and summary["categories_with_queries"] == 0:
        return None, (
            f"no query graph built: none of the {searches:,} searches in {events_path} was "
            "followed by an item event often enough"
        )
    return graph, (
        f"query graph: {summary['queries']:,} queries, {summary['query_item_pairs']:,} "
        f"query-item pairs, {summary['items_with_queries']:,} items and "
        f"{summary['categories_with_queries']:,} categories with queries"
    )


def version_extra(
    rules: PurchaseRules | None, graph: QueryGraph | None
) -> Callable[[Path], None] | None:
    """What `save_version` writes beside the model: the purchase rules and the query graph."""
    if rules is None and graph is None:
        return None

    def write(folder: Path) -> None:
        if rules is not None:
            rules.save(folder)
        if graph is not None:
            graph.save(folder / KEYWORDS_DIR)

    return write


def load_query_graph(folder: Path) -> QueryGraph | None:
    """The query graph saved with the version in `folder`, None when it has none."""
    where = folder / KEYWORDS_DIR
    return QueryGraph.load(where) if (where / GRAPH_FILE).exists() else None


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
) -> None:
    """Print a version's query graph: its size, the most searched queries, and lookups."""
    if limit < 1:
        raise ValueError(f"--limit must be >= 1, not {limit}")
    folder = _version_folder(nextbest_home(), version)
    graph = load_query_graph(folder)
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


DEFAULT_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


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
    weight: Annotated[
        list[float] | None,
        typer.Option(help="model weights to choose from on the validation day (repeatable)"),
    ] = None,
) -> None:
    """Measure the keyword recall and the personalised search on a time split of a log.

    Recall: would the meta-paths have offered the query a shopper searched next (top N)?
    Search: MRR of the clicked result, BM25 against BM25 re-ranked by MODEL's session scores,
    its weight chosen on the last training day, then refitted on all training days.
    """
    from nextbest.cli.evaluate import fit_model, read_items
    from nextbest.data.sessions import Sessions
    from nextbest.data.splits import split_by_time, train_valid_split
    from nextbest.evaluation.keyword_recall import evaluate_keyword_recall
    from nextbest.evaluation.search_eval import evaluate_search, search_cases
    from nextbest.events.io import read_events
    from nextbest.keywords.search import ProductSearch

    weights = tuple(weight or DEFAULT_WEIGHTS)
    if any(w < 0 for w in weights):
        raise ValueError(f"--weight must be >= 0, not {min(weights)}")
    events, items = read_events(log), read_items(items_path)
    if events.filter(pl.col("type") == "search").height == 0:
        raise ValueError(f"{log} has no search events: nothing to evaluate")
    split = split_by_time(events, test_days)
    with console.status("building the query graph of the training days"):
        graph = build_query_graph(split.train, items)
    with console.status("recalling keywords for every test search"):
        recall = evaluate_keyword_recall(graph, split.train, split.test, n=n)
    console.print(
        f"keyword recall: {recall.cases:,} test searches ({recall.known_queries:,} of queries "
        f"the graph knows, {recall.with_history:,} with a history before them)",
        highlight=False,
    )
    table = Table(show_edge=False, header_style="bold")
    table.add_column("path")
    table.add_column(f"recall@{n}", justify="right")
    for path, value in recall.recall().items():
        table.add_row(path, f"{value:.3f}")
    console.print(table)

    index = ProductSearch.of_items(items)
    inner = train_valid_split(split.train, 1.0)
    valid_model, _ = fit_model(model_name, {}, Sessions.from_events(inner.train))
    with console.status("choosing the model's weight on the validation day"):
        valid = evaluate_search(index, search_cases(inner.test), valid_model, weights)
    chosen = max(weights, key=lambda w: (valid.mrr[f"model w={w:g}"], -w))
    model, _ = fit_model(model_name, {}, Sessions.from_events(split.train))
    with console.status("searching for every test search with a click"):
        test = evaluate_search(index, search_cases(split.test), model, (chosen,))
    console.print(
        f"search, MRR of the clicked result: {test.cases:,} test searches with a click "
        f"({test.found:,} found in the top 100); {model_name}'s weight {chosen:g} chosen on "
        f"{valid.cases:,} searches of the last training day",
        highlight=False,
    )
    table = Table(show_edge=False, header_style="bold")
    table.add_column("method")
    table.add_column("validation MRR", justify="right")
    table.add_column("test MRR", justify="right")
    table.add_row("bm25", f"{valid.mrr['bm25']:.4f}", f"{test.mrr['bm25']:.4f}")
    for w in weights:
        method = f"model w={w:g}"
        shown = f"{test.mrr[method]:.4f}" if w == chosen else ""
        table.add_row(f"bm25 + {model_name} w={w:g}", f"{valid.mrr[method]:.4f}", shown)
    console.print(table)
