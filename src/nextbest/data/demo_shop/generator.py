"""`generate_demo_shop`: draw the catalog, the users and the sessions, and return tables.

Everything comes from one `numpy.random.Generator` seeded with `config.seed`, used in a fixed
order, so one seed always gives the same shop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import polars as pl

from nextbest.data.demo_shop.behaviour import PLACEMENTS, TYPES, EventArrays, simulate
from nextbest.data.demo_shop.catalog import KINDS, Catalog, build_catalog
from nextbest.data.demo_shop.config import DemoShopConfig
from nextbest.data.demo_shop.keyword_cards import CARD_SEED, plant_cards
from nextbest.data.demo_shop.population import (
    DEVICES,
    SessionPlan,
    Users,
    draw_users,
    plan_sessions,
)
from nextbest.data.demo_shop.queries import Vocabulary, build_vocabulary
from nextbest.data.demo_shop.taxonomy import COMPLEMENTS
from nextbest.events.schema import EVENT_SCHEMA, conform_events, conform_items

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoShop:
    """A generated shop: its tables, and the planted truth behind them.

    `events` follows EVENT_SCHEMA (time order, searches included) and `items` ITEM_SCHEMA.
    `queries` has one row per search-result click (session_id, timestamp, user_id, query,
    clicked_item_id). `categories` is the planted structure: category_path, kind ("durable",
    "consumable", "regular"), cycle_days (consumables) and complements (a list of paths), the
    ground truth a complements rule or repurchase model can be checked against. `cards` are
    the keyword cards shown and clicked (`keyword_cards.py`), in the table form of
    `nextbest.keywords.cards`: one row per keyword shown.
    """

    config: DemoShopConfig
    events: pl.DataFrame
    items: pl.DataFrame
    queries: pl.DataFrame
    categories: pl.DataFrame
    cards: pl.DataFrame


def generate_demo_shop(config: DemoShopConfig | None = None) -> DemoShop:
    """Generate the demo shop `config` describes (the default shop without one)."""
    config = config or DemoShopConfig()
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    catalog = build_catalog(config.n_items, rng)
    vocabulary = build_vocabulary(catalog)
    users = draw_users(config.n_users, catalog, rng)
    plan = plan_sessions(config, users, rng)
    logger.info(
        "demo shop: %d items, %d sessions planned (%.1fs)",
        catalog.n_items,
        len(plan.start),
        time.perf_counter() - started,
    )
    arrays = simulate(catalog, vocabulary, users, plan, config, rng)
    logger.info(
        "demo shop: %d events simulated (%.1fs)", len(arrays.type), time.perf_counter() - started
    )
    events, row_of = _event_table(config, catalog, vocabulary, plan, arrays)
    cards = _card_table(config, catalog, vocabulary, users, plan, arrays, events, row_of)
    queries = events.filter((pl.col("type") == "click") & pl.col("query").is_not_null()).select(
        "session_id",
        "timestamp",
        "user_id",
        "query",
        pl.col("item_id").alias("clicked_item_id"),
    )
    shop = DemoShop(
        config=config,
        events=events,
        items=_item_table(catalog),
        queries=queries,
        categories=_category_table(catalog),
        cards=cards,
    )
    logger.info("demo shop: tables built (%.1fs)", time.perf_counter() - started)
    return shop


def _event_table(
    config: DemoShopConfig,
    catalog: Catalog,
    vocabulary: Vocabulary,
    plan: SessionPlan,
    arrays: EventArrays,
) -> tuple[pl.DataFrame, np.ndarray]:
    """The event table in time order, and [E] the table row of each simulated position."""
    session = np.repeat(np.arange(len(plan.start)), plan.length)  # [E] sessions in start order
    owner = plan.owner[session]  # [E]
    item_number = np.where(arrays.item >= 0, catalog.item_number[np.maximum(arrays.item, 0)], -1)
    raw = pl.DataFrame(
        {
            "_pos": np.arange(len(session)),
            "_session": session,
            "_type": arrays.type,
            "_item": item_number,
            "_owner": owner,
            "_query": arrays.query,
            "_placement": arrays.placement,
            "_device": plan.device[session],
            "timestamp": np.round(config.start + arrays.time, 3),
            "value": np.round(arrays.value, 2),
        }
    )
    width = len(str(len(plan.start)))
    ordered = raw.sort(["timestamp", "_pos"])
    row_of = np.empty(raw.height, dtype=np.int64)
    row_of[ordered["_pos"].to_numpy()] = np.arange(raw.height)
    table = ordered.select(
        pl.format(
            "e{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(len(str(raw.height)))
        ).alias("event_id"),
        _lookup("_type", TYPES).alias("type"),
        pl.format("s{}", pl.col("_session").cast(pl.String).str.zfill(width)).alias("session_id"),
        _numbered("_item", "i", catalog.id_width).alias("item_id"),
        _numbered("_owner", "u", 6).alias("user_id"),
        "timestamp",
        _lookup("_query", vocabulary.texts).alias("query"),
        pl.col("value").fill_nan(None),
        _lookup("_placement", PLACEMENTS).alias("placement"),
        _lookup("_device", DEVICES).alias("device"),
    )
    return conform_events(table.select(list(EVENT_SCHEMA))), row_of


def _card_table(
    config: DemoShopConfig,
    catalog: Catalog,
    vocabulary: Vocabulary,
    users: Users,
    plan: SessionPlan,
    arrays: EventArrays,
    events: pl.DataFrame,
    row_of: np.ndarray,
) -> pl.DataFrame:
    """The planted keyword cards, one row per keyword shown, from a generator of their own;
    `row_of` [E] is the `events` row of each simulated position."""
    rng = np.random.default_rng([config.seed, CARD_SEED])
    shown, queries, clicked = plant_cards(
        catalog,
        vocabulary,
        users,
        plan.offsets,
        plan.owner,
        arrays.type,
        arrays.item,
        arrays.time,
        rng,
    )
    k, size = queries.shape
    width = len(str(max(k - 1, 0)))
    seen = events[row_of[shown]].select("session_id", "user_id", "item_id", "timestamp")
    return (
        seen.with_columns(
            pl.format("k{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(width)).alias(
                "card_id"
            )
        )
        .select(pl.all().repeat_by(size).explode())
        .with_columns(
            pl.Series("position", np.tile(np.arange(size), k), dtype=pl.Int32),
            pl.Series("query", [vocabulary.texts[q] for q in queries.ravel().tolist()]),
            pl.Series("clicked", (np.arange(size)[None, :] == clicked[:, None]).ravel()),
        )
        .select(
            "card_id",
            "session_id",
            "user_id",
            "timestamp",
            "item_id",
            "position",
            "query",
            "clicked",
        )
    )


def _numbered(column: str, prefix: str, width: int) -> pl.Expr:
    """`prefix` + the zero-padded number in `column`, null where it is negative."""
    number = pl.col(column).cast(pl.String).str.zfill(width)
    return pl.when(pl.col(column) >= 0).then(pl.format(prefix + "{}", number))


def _lookup(column: str, names: tuple[str, ...]) -> pl.Expr:
    """names[column], null where the index is -1."""
    mapping = dict(enumerate(names))
    return pl.col(column).replace_strict(mapping, default=None, return_dtype=pl.String)


def _item_table(catalog: Catalog) -> pl.DataFrame:
    paths = [leaf.path for leaf in catalog.leaves]
    table = pl.DataFrame(
        {
            "item_id": catalog.item_ids(),
            "title": list(catalog.titles),
            "category_path": [paths[i] for i in catalog.item_leaf.tolist()],
            "brand": [catalog.brand_names[b] for b in catalog.item_brand.tolist()],
            "price": catalog.item_price,
            "discount": catalog.item_discount,
            "attributes": list(catalog.attributes),
            "in_stock": catalog.item_in_stock,
        }
    )
    return conform_items(table.sort("item_id"))


def _category_table(catalog: Catalog) -> pl.DataFrame:
    path_of = {leaf.name: leaf.path for leaf in catalog.leaves}
    return pl.DataFrame(
        {
            "category_path": [leaf.path for leaf in catalog.leaves],
            "kind": [KINDS[k] for k in catalog.leaf_kind.tolist()],
            "cycle_days": [leaf.cycle_days or None for leaf in catalog.leaves],
            "complements": [
                [path_of[c] for c in COMPLEMENTS.get(leaf.name, ())] for leaf in catalog.leaves
            ],
        },
        schema={
            "category_path": pl.String,
            "kind": pl.String,
            "cycle_days": pl.Float64,
            "complements": pl.List(pl.String),
        },
    )


def seasonal_shares(shop: DemoShop) -> tuple[float, float]:
    """The share of item events on the seasonal leaves (`taxonomy.SEASON_LEAVES`) before the
    season (the period's last `config.season_days`) and in it."""
    from nextbest.data.demo_shop.taxonomy import SEASON_LEAVES

    config = shop.config
    season_start = config.start + (config.days - config.season_days) * 86_400.0
    leaf = dict(shop.items.select("item_id", "category_path").iter_rows())
    events = shop.events.filter(pl.col("item_id").is_not_null()).select(
        pl.col("item_id").replace_strict(leaf).str.split(" > ").list.last().is_in(SEASON_LEAVES)
        .alias("seasonal"),
        (pl.col("timestamp") >= season_start).alias("in_season"),
    )  # fmt: skip
    shares = dict(events.group_by("in_season").agg(pl.col("seasonal").mean()).iter_rows())
    return float(shares.get(False, 0.0)), float(shares.get(True, 0.0))
