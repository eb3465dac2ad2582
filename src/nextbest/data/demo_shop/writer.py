"""Write a demo shop to a folder: the GRU4Rec train/test split, the catalog, searches, events.

    DIR/train.tsv         SessionId ItemId Time UserId EventType   sessions before the cut
    DIR/test.tsv          the same columns: sessions starting in the last `test_days` days
    DIR/items.csv         the catalog (ITEM_SCHEMA columns)
    DIR/queries.tsv       SessionId Time UserId Query ClickedItemId   one row per result click
    DIR/categories.tsv    CategoryPath Kind CycleDays Complements    the planted structure
    DIR/events.parquet    the full event table, searches included
    DIR/shop.json         the config it was generated with (the simulator's truth comes from it)
    DIR/keyword_cards.parquet   the keyword cards shown and clicked, one row per keyword

The test split follows the next-event evaluation protocol: events of items never seen in
training are dropped, then sessions left with fewer than two item events.

With `cold_items` (a share of the catalog), that share of the items, drawn from the seed, is
held out of training: their training events are removed, their test events kept, so they are
new items of the test period whose only description is the catalog (`cold_items.txt` lists
them). That is the cold-start test of `nextbest evaluate --items`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl

from nextbest.data.demo_shop.generator import DemoShop
from nextbest.data.stats import item_events
from nextbest.data.tsv import write_gru4rec_tsv

DAY = 86_400.0


def held_out_items(shop: DemoShop, share: float) -> list[str]:
    """`share` of the catalog's items, drawn from the shop's seed (sorted ids)."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"the share of cold items must be in [0, 1), not {share}")
    ids = sorted(shop.items["item_id"].to_list())
    rng = np.random.default_rng([shop.config.seed, 0xC01D])
    chosen = rng.choice(len(ids), size=round(share * len(ids)), replace=False)
    return sorted(ids[i] for i in chosen)


def split_demo_shop(shop: DemoShop, cold_items: float = 0.0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, test) item-event tables: a time split on session starts, test cleaned up;
    `cold_items` of the catalog held out of training (see the module docstring)."""
    config = shop.config
    cold = held_out_items(shop, cold_items) if cold_items else []
    cut = config.start + (config.days - config.test_days) * DAY
    # A session's start is its first event of any kind: a search counts.
    events = shop.events.with_columns(
        (pl.col("timestamp").min().over("session_id") >= cut).alias("_test")
    ).filter(item_events())
    train = events.filter(~pl.col("_test") & ~pl.col("item_id").is_in(cold)).drop("_test")
    known = pl.concat([train["item_id"].unique(), pl.Series(cold, dtype=pl.String)])
    test = (
        events.filter(pl.col("_test"))
        .drop("_test")
        .filter(pl.col("item_id").is_in(known.implode()))
        .filter(pl.len().over("session_id") >= 2)
    )
    return train, test


def write_demo_shop(
    shop: DemoShop, out_dir: str | Path, cold_items: float = 0.0
) -> dict[str, Path]:
    """Write the files listed in the module docstring into `out_dir` (created if missing)."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        name: folder / name
        for name in (
            "train.tsv",
            "test.tsv",
            "items.csv",
            "queries.tsv",
            "categories.tsv",
            "events.parquet",
            "keyword_cards.parquet",
        )
    }
    train, test = split_demo_shop(shop, cold_items)
    if cold_items:
        paths["cold_items.txt"] = folder / "cold_items.txt"
        held = held_out_items(shop, cold_items)
        paths["cold_items.txt"].write_text("".join(f"{item}\n" for item in held))
    write_gru4rec_tsv(train, paths["train.tsv"])
    write_gru4rec_tsv(test, paths["test.tsv"])
    shop.items.write_csv(paths["items.csv"])
    shop.queries.select(
        pl.col("session_id").alias("SessionId"),
        pl.col("timestamp").alias("Time"),
        pl.col("user_id").alias("UserId"),
        pl.col("query").alias("Query"),
        pl.col("clicked_item_id").alias("ClickedItemId"),
    ).write_csv(paths["queries.tsv"], separator="\t", null_value="")
    shop.categories.select(
        pl.col("category_path").alias("CategoryPath"),
        pl.col("kind").alias("Kind"),
        pl.col("cycle_days").alias("CycleDays"),
        pl.col("complements").list.join("|").alias("Complements"),
    ).write_csv(paths["categories.tsv"], separator="\t", null_value="")
    shop.events.write_parquet(paths["events.parquet"])
    shop.cards.write_parquet(paths["keyword_cards.parquet"])
    paths["shop.json"] = folder / "shop.json"  # the config: the planted truth comes back from it
    paths["shop.json"].write_text(json.dumps(dataclasses.asdict(shop.config), indent=2))
    return paths
