"""The demo shop's keyword cards: shown where the served card would be, clicked by the planted
truth, and without any effect on the event log."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from nextbest.data.demo_shop import DemoShop, DemoShopConfig, generate_demo_shop, keyword_cards
from nextbest.data.demo_shop.keyword_cards import CARD_SIZE, _latest_before
from nextbest.keywords.ranking import CARD_SCHEMA

SMALL = DemoShopConfig(n_events=100_000, n_users=1_000)
DAY = 86_400.0


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return generate_demo_shop(SMALL)


@pytest.fixture(scope="module")
def shown(shop: DemoShop) -> pl.DataFrame:
    """Every keyword shown, with its leaf (from the demo's queries: a query's words are its
    leaf's name), the session's next browsed leaf and the event that showed it."""
    leaf_of_item = dict(shop.items.select("item_id", "category_path").iter_rows())
    names = {path.rsplit(" > ", 1)[-1].lower(): path for path in set(leaf_of_item.values())}
    events = shop.events.with_columns(
        pl.col("item_id").replace_strict(leaf_of_item, default=None).alias("leaf"),
        pl.int_range(pl.len()).over("session_id").alias("step"),
    )
    browsed = events.filter(pl.col("type").is_in(["view", "click", "cart", "purchase"]))
    following = (
        events.join(browsed.select("session_id", "step", pl.col("leaf").alias("next")),
                    on="session_id", suffix="_b")
        .filter(pl.col("step_b") > pl.col("step"))
        .sort("step_b")
        .group_by("event_id", maintain_order=True)
        .first()
        .select("event_id", "next")
    )  # fmt: skip
    cards = shop.cards.join(
        events.select("session_id", "timestamp", "item_id", "type", "step", "event_id"),
        on=["session_id", "timestamp", "item_id"],
        how="left",
    )

    def leaf_of_query(query: str) -> str | None:
        return next((path for name, path in names.items() if query.endswith(name)), None)

    return cards.join(following, on="event_id", how="left").with_columns(
        pl.col("query").map_elements(leaf_of_query, return_dtype=pl.String).alias("query_leaf")
    )


def test_cards_conform_and_show_distinct_keywords_with_at_most_one_click(shop: DemoShop) -> None:
    cards = shop.cards
    assert dict(cards.schema) == CARD_SCHEMA
    assert cards.height > 1_000
    per_card = cards.group_by("card_id").agg(
        pl.len().alias("shown"),
        pl.col("query").n_unique().alias("distinct"),
        pl.col("clicked").sum().alias("clicks"),
        pl.col("position").sort().alias("positions"),
    )
    assert (per_card["shown"] == CARD_SIZE).all()
    assert (per_card["distinct"] == CARD_SIZE).all()
    assert per_card["clicks"].max() == 1
    assert 0.1 < (per_card["clicks"] == 1).mean() < 0.9
    assert all(p == list(range(CARD_SIZE)) for p in per_card["positions"].to_list())


def test_a_card_is_shown_on_a_product_view_outside_the_purchase_funnel(
    shop: DemoShop, shown: pl.DataFrame
) -> None:
    assert shown["event_id"].null_count() == 0
    assert (shown["type"] == "view").all()
    funnel = (
        shop.events.with_columns(pl.int_range(pl.len()).over("session_id").alias("step"))
        .filter(pl.col("type").is_in(["cart", "purchase"]))
        .select("session_id", pl.col("step").alias("funnel_step"))
    )
    near = (
        shown.unique("card_id")
        .join(funnel, on="session_id")
        .filter(
            (pl.col("funnel_step") <= pl.col("step")) & (pl.col("funnel_step") > pl.col("step") - 3)
        )
    )
    assert near.height == 0


def test_the_keyword_of_the_leaf_browsed_next_is_clicked_far_more(shown: pl.DataFrame) -> None:
    known = shown.filter(pl.col("query_leaf").is_not_null() & pl.col("next").is_not_null())
    wanted = known.filter(pl.col("query_leaf") == pl.col("next"))["clicked"].mean()
    other = known.filter(pl.col("query_leaf") != pl.col("next"))["clicked"].mean()
    assert isinstance(wanted, float) and isinstance(other, float)
    assert wanted > 0.25
    assert wanted > 5 * other


def test_a_durables_complements_are_clicked_for_weeks_after_its_purchase(
    shop: DemoShop, shown: pl.DataFrame
) -> None:
    """A card whose shopper bought a durable 1-21 days before: its complements are clicked
    more than other keywords not about the leaf browsed next."""
    leaf_of_item = dict(shop.items.select("item_id", "category_path").iter_rows())
    durable = shop.categories.filter(pl.col("kind") == "durable")
    complements = dict(durable.select("category_path", "complements").iter_rows())
    bought = shop.events.filter(
        (pl.col("type") == "purchase") & pl.col("user_id").is_not_null()
    ).with_columns(pl.col("item_id").replace_strict(leaf_of_item).alias("bought_leaf"))
    bought = bought.filter(pl.col("bought_leaf").is_in(list(complements)))
    pairs = (
        shown.filter(pl.col("user_id").is_not_null() & (pl.col("query_leaf") != pl.col("next")))
        .join(bought.select("user_id", pl.col("timestamp").alias("bought_at"), "bought_leaf"),
              on="user_id")
        .filter((pl.col("timestamp") - pl.col("bought_at")).is_between(DAY, 21 * DAY))
    )  # fmt: skip
    needed = pairs.with_columns(
        pl.struct("bought_leaf", "query_leaf")
        .map_elements(lambda r: r["query_leaf"] in complements[r["bought_leaf"]],
                      return_dtype=pl.Boolean)
        .alias("needed")
    ).unique(["card_id", "position"])  # fmt: skip
    rate_needed = needed.filter(pl.col("needed"))["clicked"].mean()
    rate_other = needed.filter(~pl.col("needed"))["clicked"].mean()
    assert needed.filter(pl.col("needed")).height > 50
    assert isinstance(rate_needed, float) and isinstance(rate_other, float)
    assert rate_needed > 3 * rate_other


def test_the_cards_leave_the_event_log_as_it_was(
    shop: DemoShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keyword_cards, "P_CARD", 0.5)
    more = generate_demo_shop(SMALL)
    assert more.cards["card_id"].n_unique() > 2 * shop.cards["card_id"].n_unique()
    assert more.events.equals(shop.events)


def test_latest_before_is_the_same_shoppers_and_strictly_earlier() -> None:
    shopper = np.array([0, 0, 1, 1, 0, 2])
    times = np.array([1.0, 5.0, 2.0, 9.0, 7.0, 3.0])
    chosen = np.array([True, True, True, False, False, True])
    at = np.array([4, 3, 5, 1, 0])
    assert _latest_before(shopper, times, chosen, at, np.inf).tolist() == [1, 2, -1, 0, -1]
    assert _latest_before(shopper, times, chosen, at, 2.5).tolist() == [1, -1, -1, -1, -1]


def test_a_focused_shopper_clicks_less_and_a_wandering_one_more(shop: DemoShop) -> None:
    """The planted intent: three item events in one leaf make a card's click rarer, four
    events over three leaves or more make it likelier (keyword_cards.FOCUSED_FACTOR, ...)."""
    leaf_of_item = dict(shop.items.select("item_id", "category_path").iter_rows())
    item_events = shop.events.filter(pl.col("item_id").is_not_null())
    heads = shop.cards.group_by("card_id").agg(
        pl.col("session_id", "timestamp").first(), pl.col("clicked").any()
    )
    latest = (
        heads.join(item_events.select("session_id", "timestamp", "item_id"), on="session_id",
                   suffix="_e")
        .filter(pl.col("timestamp_e") <= pl.col("timestamp"))
        .sort("timestamp_e")
        .group_by("card_id")
        .agg(pl.col("item_id").tail(4), pl.col("clicked").first())
    )  # fmt: skip
    kinds = []
    for items, clicked in latest.select("item_id", "clicked").iter_rows():
        leaves = [leaf_of_item[i] for i in items][::-1]  # latest first
        focused = len(leaves) >= 3 and len(set(leaves[:3])) == 1
        wandering = not focused and len(set(leaves)) >= 3
        kinds.append(("focused" if focused else "wandering" if wandering else "other", clicked))
    rates = (
        pl.DataFrame(kinds, schema=["kind", "clicked"], orient="row")
        .group_by("kind")
        .agg(pl.col("clicked").mean(), pl.len())
    )
    rate = dict(rates.select("kind", "clicked").iter_rows())
    assert min(rates["len"]) > 200  # every kind is common enough to learn from
    assert rate["focused"] < 0.7 * rate["other"] and rate["wandering"] > 1.2 * rate["other"]
