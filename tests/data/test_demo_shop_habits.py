"""The demo shop's cross-session habits show in its data, and vanish when turned off.

Each habit (research journeys, brand loyalty, home-page teasers) is measured on the default
shop and on the same shop with every habit off (`PLAIN`, brand loyalty at 0.8, below the
same-brand carry-over); the default must be far above.
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest

from nextbest.data.demo_shop import DemoShop, DemoShopConfig, generate_demo_shop

SMALL = DemoShopConfig(n_events=100_000, n_users=1_000)
PLAIN = DemoShopConfig(
    n_events=100_000, n_users=1_000, research_share=0.0, brand_loyalty=0.8, teaser_share=0.0
)


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return generate_demo_shop(SMALL)


@pytest.fixture(scope="module")
def plain() -> DemoShop:
    return generate_demo_shop(PLAIN)


@pytest.fixture(scope="module")
def loyal() -> DemoShop:
    """`PLAIN` with the default brand loyalty: the brand habit alone."""
    return generate_demo_shop(replace(PLAIN, brand_loyalty=SMALL.brand_loyalty))


def item_events(shop: DemoShop) -> pl.DataFrame:
    items = shop.items.select("item_id", pl.col("category_path").alias("leaf"), "brand")
    return shop.events.filter(pl.col("item_id").is_not_null()).join(items, on="item_id")


def returning_sessions(shop: DemoShop) -> pl.DataFrame:
    """Registered users' sessions after their first, with the previous session's main leaf
    (the leaf most of its item events are in) and items."""
    events = item_events(shop).filter(pl.col("user_id").is_not_null())
    return (
        events.group_by("user_id", "session_id")
        .agg(
            pl.col("timestamp").min().alias("start"),
            pl.col("leaf").mode().sort().first().alias("main"),
            pl.col("item_id").unique().alias("items"),
        )
        .sort("user_id", "start")
        .with_columns(
            pl.col("main").shift(1).over("user_id").alias("previous_main"),
            pl.col("items").shift(1).over("user_id").alias("previous_items"),
        )
        .drop_nulls("previous_main")
    )


def test_bad_habit_settings_raise_naming_the_field() -> None:
    for field, value in (
        ("research_share", 1.5),
        ("research_revisit", -0.1),
        ("brand_loyalty", 11.0),
        ("teaser_share", 2),
    ):
        with pytest.raises(ValueError, match=field):
            DemoShopConfig(**{field: value})  # type: ignore[arg-type]


def test_returning_users_go_back_to_what_they_researched(shop: DemoShop, plain: DemoShop) -> None:
    """A returning user's session is about the previous session's leaf, and reopens its
    items, far more often than favourite leaves alone make happen."""

    def shares(shop: DemoShop) -> tuple[float, float]:
        sessions = returning_sessions(shop)
        same_leaf = (sessions["main"] == sessions["previous_main"]).mean()
        reopened = sessions.select(
            pl.col("items").list.set_intersection("previous_items").list.len() > 0
        ).to_series()
        assert sessions.height > 5_000
        return float(same_leaf), float(reopened.mean())  # type: ignore[arg-type]

    same_leaf, reopened = shares(shop)
    plain_same_leaf, plain_reopened = shares(plain)
    assert same_leaf > 0.3
    assert same_leaf > 1.6 * plain_same_leaf
    assert reopened > 0.3
    assert reopened > 2.2 * plain_reopened
    recent = shop.events.filter(pl.col("placement") == "recently-viewed")
    assert recent.height > 2_000
    assert recent["user_id"].null_count() == 0  # only registered users have a history
    assert plain.events.filter(pl.col("placement") == "recently-viewed").height == 0


def test_research_journeys_end_in_buying_a_compared_item(shop: DemoShop, plain: DemoShop) -> None:
    """More purchases are of an item the buyer first opened on an earlier visit."""

    def share(shop: DemoShop) -> float:
        events = shop.events.filter(pl.col("user_id").is_not_null())
        first_seen = (
            events.filter(pl.col("type").is_in(["view", "click"]))
            .sort("timestamp")
            .group_by("user_id", "item_id")
            .agg(pl.col("session_id").first().alias("first_session"))
        )
        bought = events.filter(pl.col("type") == "purchase").join(
            first_seen, on=["user_id", "item_id"]
        )
        assert bought.height > 1_000
        return float((bought["first_session"] != bought["session_id"]).mean())  # type: ignore[arg-type]

    assert share(shop) > 1.4 * share(plain)


def test_favourite_brands_outlast_the_session(loyal: DemoShop, plain: DemoShop) -> None:
    """Among a user's views in a leaf, the brand they viewed most in the first half of their
    history (in other sessions) holds more of the second half when loyalty is high."""

    def share(shop: DemoShop) -> float:
        events = item_events(shop).filter(pl.col("user_id").is_not_null())
        events = events.with_columns(
            (pl.col("timestamp").rank().over("user_id") / pl.len().over("user_id")).alias("pos")
        )
        top = (
            events.filter(pl.col("pos") <= 0.5)
            .group_by("user_id", "brand")
            .len()
            .sort("len", "brand", descending=[True, False])
            .group_by("user_id", maintain_order=True)
            .first()
            .select("user_id", pl.col("brand").alias("top"))
        )
        later = events.filter(pl.col("pos") > 0.5).join(top, on="user_id")
        return float((later["brand"] == later["top"]).mean())  # type: ignore[arg-type]

    assert share(loyal) > share(plain) + 0.03


def test_teasers_open_sessions_away_from_their_intent(shop: DemoShop, plain: DemoShop) -> None:
    """With teasers, a session's first item is more often in a leaf the rest of it never
    visits, and it is a handful of home-page items."""

    def shares(shop: DemoShop) -> tuple[float, float]:
        sessions = (
            item_events(shop)
            .sort("session_id", "timestamp")
            .group_by("session_id", maintain_order=True)
            .agg(
                pl.col("leaf").first().alias("first_leaf"),
                pl.col("item_id").first().alias("first_item"),
                pl.col("leaf").slice(1).alias("rest"),
            )
            .filter(pl.col("rest").list.len() > 0)
        )
        apart = sessions.select(~pl.col("first_leaf").is_in(pl.col("rest"))).to_series().mean()
        top = sessions["first_item"].value_counts().sort("count", descending=True)["count"]
        return float(apart), float(top.head(50).sum() / sessions.height)  # type: ignore[arg-type]

    apart, top_items = shares(shop)
    plain_apart, plain_top_items = shares(plain)
    assert apart > plain_apart + 0.05
    assert top_items > plain_top_items + 0.05
