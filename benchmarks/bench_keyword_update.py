"""Does an online update of the keyword ranker keep up with a refit? On the demo shop's cards.

    .venv/bin/python benchmarks/bench_keyword_update.py --shop shop/ [--version-days 36]

The shop's time split (`nextbest keywords rankers`): the cards of the last 2 days' sessions
are the test. A version is trained on the cards of the first `--version-days` days (FTRL, as
`nextbest train --keyword-cards`, with the query graph of those days); then the cards served
since, up to the test, are learned three ways, each scored by AUC on the test cards: not at
all, by one online pass (`nextbest keywords update-ranker`), and by a refit on all of them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from nextbest.data.splits import split_by_time
from nextbest.keywords.card_ranker import fit_keyword_ranker, update_keyword_ranker
from nextbest.keywords.graph import build_query_graph
from nextbest.keywords.ranking import keyword_ranking_data, ordered_cards, read_cards
from nextbest.twostage.metrics import auc

DAY = 86_400.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shop", type=Path, required=True, help="a `nextbest data demo-shop` folder"
    )
    parser.add_argument("--version-days", type=float, default=36.0)
    args = parser.parse_args()
    events = pl.read_parquet(args.shop / "events.parquet")
    items = pl.read_csv(args.shop / "items.csv")
    cards = ordered_cards(read_cards(args.shop / "keyword_cards.parquet"))
    split = split_by_time(events, 2.0)
    tested = split.test["session_id"].unique().implode()
    test = cards.filter(pl.col("session_id").is_in(tested))
    learn = cards.filter(~pl.col("session_id").is_in(tested))
    cut = float(events["timestamp"].min()) + args.version_days * DAY  # type: ignore[arg-type]
    early, since = learn.filter(pl.col("timestamp") < cut), learn.filter(pl.col("timestamp") >= cut)
    graph = build_query_graph(split.train.filter(pl.col("timestamp") < cut), items)
    ranker = fit_keyword_ranker(early, events, graph, items, "ftrl")
    data = keyword_ranking_data(test, events, graph, ranker.vocabulary)
    assert data.label is not None
    before = auc(data.label, ranker.ranker.predict(data))
    started = time.perf_counter()
    update_keyword_ranker(ranker, since, events, graph)
    seconds = time.perf_counter() - started
    updated = auc(data.label, ranker.ranker.predict(data))
    refit = fit_keyword_ranker(learn, events, graph, items, "ftrl")
    refitted = auc(data.label, refit.ranker.predict(data))
    print(
        f"cards: {early['card_id'].n_unique():,} for the version, {since['card_id'].n_unique():,} "
        f"served since, {test['card_id'].n_unique():,} test"
    )
    print("| ranker | test AUC |\n|---|---|")
    print(f"| the version's (first {args.version_days:g} days) | {before:.4f} |")
    print(f"| + one online pass over the cards since ({seconds:.1f} s) | {updated:.4f} |")
    print(f"| refitted on all the cards | {refitted:.4f} |")


if __name__ == "__main__":
    main()
