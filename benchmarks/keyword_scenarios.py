"""How many of the mined scenarios' pairs are what the demo shop planted? For docs/keywords.md.

    .venv/bin/python benchmarks/keyword_scenarios.py --shop shop/

The query graph (and its mined scenarios) is built from the shop's whole `events.parquet`.
A scenario's pairs are its seed with each partner; a pair is a planted complement when
`categories.tsv` lists either leaf as a complement of the other, and siblings when both
leaves share a parent.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from nextbest.events.schema import CATEGORY_SEPARATOR
from nextbest.keywords.graph import build_query_graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shop", type=Path, required=True, help="a `nextbest data demo-shop` folder"
    )
    args = parser.parse_args()
    graph = build_query_graph(
        pl.read_parquet(args.shop / "events.parquet"), pl.read_csv(args.shop / "items.csv")
    )
    planted = pl.read_csv(args.shop / "categories.tsv", separator="\t")
    complements = {
        (path, other)
        for path, listed in planted.select("CategoryPath", "Complements").iter_rows()
        if listed
        for other in listed.split("|")
    }
    pairs = [(s.categories[0], p) for s in graph.scenarios for p in s.categories[1:]]
    planted_pairs = sum((a, b) in complements or (b, a) in complements for a, b in pairs)

    def parent(path: str) -> str:
        return path.rsplit(CATEGORY_SEPARATOR, 1)[0]

    siblings = sum(parent(a) == parent(b) for a, b in pairs)
    print(
        f"{len(graph.scenarios)} mined scenarios, {len(pairs)} member pairs: {planted_pairs} "
        f"planted complements, {siblings} siblings"
    )


if __name__ == "__main__":
    main()
