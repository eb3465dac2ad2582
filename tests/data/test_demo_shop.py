"""The demo shop plants what it promises, measured on what it writes.

Each structure (intent-driven sessions, durables and complements, consumables, the day/night
rhythm, the long tail, users' tastes, searches) is checked with a number against a baseline
that would pass if the structure were missing only by chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextbest.data.demo_shop import (
    DemoShop,
    DemoShopConfig,
    generate_demo_shop,
    split_demo_shop,
    write_demo_shop,
)
from nextbest.events.schema import conform_events, conform_items

DAY = 86_400.0
SMALL = DemoShopConfig(n_events=100_000, n_users=1_000)  # ~9 sessions per user, as the default


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return generate_demo_shop(SMALL)


@pytest.fixture(scope="module")
def folder(shop: DemoShop, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo_shop")
    write_demo_shop(shop, out)
    return out


@pytest.fixture(scope="module")
def purchases(shop: DemoShop) -> pl.DataFrame:
    """Registered users' purchases with the item's leaf category and its kind."""
    return (
        shop.events.filter((pl.col("type") == "purchase") & pl.col("user_id").is_not_null())
        .join(shop.items.select("item_id", "category_path"), on="item_id")
        .join(shop.categories, on="category_path")
        .select(
            "event_id", "user_id", "timestamp", "category_path", "kind", "cycle_days", "complements"
        )
    )


def read_tsv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, separator="\t", infer_schema=False)


def recall_at_20(train: pl.DataFrame, test: pl.DataFrame) -> tuple[float, float]:
    """Recall@20 on the next item of `test` of (popularity, first-order transitions)."""
    vocabulary = {item: j for j, item in enumerate(train["ItemId"].unique().sort().to_list())}
    n = len(vocabulary)

    def coded(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        items = np.array([vocabulary[i] for i in frame["ItemId"].to_list()])  # [E]
        sessions = frame["SessionId"].to_numpy()
        same = sessions[1:] == sessions[:-1]  # [E - 1] consecutive events of one session
        return items[:-1][same], items[1:][same]

    train_prev, train_next = coded(train)
    popular = np.argsort(-np.bincount(train_next, minlength=n), kind="stable")[:20]
    pairs, counts = np.unique(train_prev * n + train_next, return_counts=True)
    prev, nxt = pairs // n, pairs % n
    order = np.lexsort((-counts, prev))  # by previous item, most frequent follower first
    prev, nxt = prev[order], nxt[order]
    rank = np.arange(len(prev)) - np.searchsorted(prev, prev)  # rank within the previous item
    followers = np.full((n, 20), -1)  # [n, 20]
    top = rank < 20
    followers[prev[top], rank[top]] = nxt[top]
    test_prev, test_next = coded(test)
    pop_hits = np.isin(test_next, popular)
    transition_hits = (followers[test_prev] == test_next[:, None]).any(axis=1)
    return float(pop_hits.mean()), float(transition_hits.mean())


# --- configuration and schema ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", -1),
        ("n_events", 10),
        ("n_items", 20),
        ("n_users", 0),
        ("days", 1),
        ("test_days", 45),
        ("anonymous_share", 1.5),
        ("n_events", 2.5),
        ("n_users", True),
    ],
)
def test_bad_config_raises_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        DemoShopConfig(**{field: value})  # type: ignore[arg-type]


def test_tables_conform_and_hold_exactly_n_events(shop: DemoShop) -> None:
    assert shop.events.height == SMALL.n_events
    assert shop.events.equals(conform_events(shop.events))
    assert shop.items.equals(conform_items(shop.items))
    assert shop.items.height == SMALL.n_items
    assert shop.events["event_id"].n_unique() == SMALL.n_events
    assert shop.events["timestamp"].is_sorted()
    assert shop.events["item_id"].drop_nulls().is_in(shop.items["item_id"].implode()).all()
    types = set(shop.events["type"].unique().to_list())
    assert {"view", "click", "cart", "remove-from-cart", "purchase", "search"} <= types
    searches = shop.events.filter(pl.col("type") == "search")
    assert searches["item_id"].null_count() == searches.height
    assert searches["query"].null_count() == 0
    anonymous = shop.events.group_by("session_id").agg(pl.col("user_id").is_null().all())
    assert 0.3 < anonymous["user_id"].to_numpy().mean() < 0.5
    lengths = shop.events.group_by("session_id").len()["len"].to_numpy()
    assert 5.0 <= lengths.mean() <= 8.0
    assert np.quantile(lengths, 0.95) > 3 * np.median(lengths)  # long-tailed
    items = shop.items
    assert items.select(
        (pl.col("price") > 0).all() & pl.col("discount").is_between(0, 1).all()
    ).item()
    assert 0.1 < (items["discount"].to_numpy() > 0).mean() < 0.3
    assert (items["category_path"].str.split(" > ").list.len() == 3).all()
    assert 40 <= items["category_path"].n_unique() <= 80


def test_purchases_follow_a_cart_of_the_same_item(shop: DemoShop) -> None:
    events = shop.events
    bought = events.filter(pl.col("type") == "purchase").select(
        "event_id", "session_id", "item_id", "timestamp"
    )
    carts = events.filter(pl.col("type") == "cart").select(
        "session_id", "item_id", pl.col("timestamp").alias("cart_time")
    )
    matched = (
        bought.join(carts, on=["session_id", "item_id"])
        .filter(pl.col("cart_time") < pl.col("timestamp"))
        .select("event_id")
        .unique()
    )
    assert bought.height > 1_000
    assert matched.height == bought.height


def test_result_clicks_carry_the_query_of_the_search_before(shop: DemoShop) -> None:
    events = shop.events.sort("session_id", "timestamp").with_columns(
        pl.when(pl.col("type") == "search")
        .then(pl.col("query"))
        .forward_fill()
        .over("session_id")
        .alias("last_search")
    )
    clicks = events.filter(pl.col("type") == "click")
    assert clicks.height > 1_000
    assert (clicks["query"] == clicks["last_search"]).all()
    assert shop.queries.height == clicks.height


# --- determinism ----------------------------------------------------------------------


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    config = DemoShopConfig(n_events=20_000, n_items=600, n_users=200)
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        write_demo_shop(
            generate_demo_shop(DemoShopConfig(**{**config.__dict__, "seed": seed})), tmp_path / name
        )
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 8  # shop.json included: the config the truth comes back from
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "train.tsv").read_bytes() != (
        tmp_path / "c" / "train.tsv"
    ).read_bytes()
    assert (tmp_path / "a" / "items.csv").read_bytes() != (
        tmp_path / "c" / "items.csv"
    ).read_bytes()


# --- the written files ----------------------------------------------------------------


def test_written_split_follows_the_protocol(shop: DemoShop, folder: Path) -> None:
    train, test = read_tsv(folder / "train.tsv"), read_tsv(folder / "test.tsv")
    for frame in (train, test):
        assert frame.columns == ["SessionId", "ItemId", "Time", "UserId", "EventType"]
        assert frame["ItemId"].null_count() == 0
        assert "search" not in frame["EventType"].to_list()
        times = frame["Time"].cast(pl.Float64)
        starts = frame.group_by("SessionId", maintain_order=True).agg(pl.col("Time").first())
        assert starts["Time"].cast(pl.Float64).is_sorted()
        within = (
            frame.with_columns(times.alias("t")).group_by("SessionId").agg(pl.col("t").is_sorted())
        )
        assert within["t"].all()
    cut = SMALL.start + (SMALL.days - SMALL.test_days) * DAY
    starts = shop.events.group_by("session_id").agg(pl.col("timestamp").min().alias("start"))
    for frame, in_test in ((train, False), (test, True)):
        ours = starts.filter(pl.col("session_id").is_in(frame["SessionId"].implode()))
        assert ours.height == frame["SessionId"].n_unique()
        assert ours.select((pl.col("start") >= cut) == in_test).to_series().all()
    assert test["ItemId"].is_in(train["ItemId"].implode()).all()
    assert test.group_by("SessionId").len()["len"].to_numpy().min() >= 2
    assert 0.02 < test.height / train.height < 0.08  # 2 of 45 days
    assert train["UserId"].null_count() > 0  # anonymous sessions: empty UserId
    _, expected_test = split_demo_shop(shop)
    assert expected_test.height == test.height
    items = pl.read_csv(folder / "items.csv")
    assert items.columns == list(shop.items.columns)
    queries = read_tsv(folder / "queries.tsv")
    assert queries.columns == ["SessionId", "Time", "UserId", "Query", "ClickedItemId"]
    assert queries.height == shop.queries.height
    assert pl.read_parquet(folder / "events.parquet").equals(shop.events)


# --- planted structure ----------------------------------------------------------------


def test_transition_model_beats_popularity(folder: Path) -> None:
    pop, transition = recall_at_20(read_tsv(folder / "train.tsv"), read_tsv(folder / "test.tsv"))
    assert transition >= 1.5 * pop
    assert transition > 0.3


@pytest.mark.slow
def test_default_shop_transition_model_beats_popularity(tmp_path: Path) -> None:
    shop = generate_demo_shop()
    assert shop.events.height == 1_000_000
    write_demo_shop(shop, tmp_path)
    pop, transition = recall_at_20(
        read_tsv(tmp_path / "train.tsv"), read_tsv(tmp_path / "test.tsv")
    )
    assert transition >= 3 * pop


def test_durables_are_not_bought_twice_but_lead_to_complements(purchases: pl.DataFrame) -> None:
    durable = purchases.filter(pl.col("kind") == "durable")
    assert durable.height > 100
    again = (
        durable.join(purchases, on=["user_id", "category_path"], suffix="_2")
        .filter(pl.col("event_id") != pl.col("event_id_2"))
        .filter((pl.col("timestamp_2") - pl.col("timestamp")).abs() < 30 * DAY)
    )
    assert again.height == 0
    # After a durable, the same user's purchases in the next 30 days vs all purchases.
    later = durable.join(purchases, on="user_id", suffix="_2").filter(
        (pl.col("timestamp_2") > pl.col("timestamp"))
        & (pl.col("timestamp_2") - pl.col("timestamp") < 30 * DAY)
    )
    in_complements = later.select(
        pl.col("category_path_2").is_in(pl.col("complements"))
    ).to_series()
    share_of = (
        purchases.group_by("category_path")
        .len()
        .with_columns((pl.col("len") / purchases.height).alias("share"))
    )
    share = dict(zip(share_of["category_path"].to_list(), share_of["share"].to_list(), strict=True))
    chance = np.mean(
        [sum(share.get(c, 0.0) for c in comps) for comps in later["complements"].to_list()]
    )
    assert later.height > 100
    assert in_complements.to_numpy().mean() > 3 * chance


def test_consumables_are_bought_again_on_their_cycle(purchases: pl.DataFrame) -> None:
    per_leaf = purchases.group_by("user_id", "category_path", "kind").len()
    repeat = per_leaf.group_by("kind").agg((pl.col("len") >= 2).mean().alias("rate"))
    rate = dict(zip(repeat["kind"].to_list(), repeat["rate"].to_list(), strict=True))
    assert per_leaf.filter(pl.col("kind") == "consumable").height > 100
    assert rate["consumable"] > 2.5 * rate["regular"]
    assert rate["consumable"] > 0.2
    # The pause between two purchases of a consumable is about its cycle.
    gaps = (
        purchases.filter(pl.col("kind") == "consumable")
        .sort("user_id", "category_path", "timestamp")
        .select(
            pl.col("timestamp").diff().over("user_id", "category_path") / DAY / pl.col("cycle_days")
        )
        .to_series()
        .drop_nulls()
    )
    assert gaps.len() > 50
    assert 0.7 < np.median(gaps.to_numpy()) < 1.5


def test_evenings_are_busier_than_nights(shop: DemoShop) -> None:
    hour = ((shop.events["timestamp"] % DAY) // 3_600).cast(pl.Int64)
    per_hour = np.bincount(hour.to_numpy(), minlength=24)
    assert per_hour[18:22].mean() > 4 * per_hour[1:5].mean()


def test_item_popularity_is_long_tailed(shop: DemoShop) -> None:
    counts = np.sort(shop.events["item_id"].drop_nulls().value_counts()["count"].to_numpy())[::-1]
    counts = np.concatenate([counts, np.zeros(SMALL.n_items - len(counts))])
    top = counts[: SMALL.n_items // 10].sum() / counts.sum()
    assert top > 0.45


def test_users_stick_to_their_favourite_categories(shop: DemoShop) -> None:
    """The top-3 leaves of a user's first half of sessions hold much of their second half."""
    sessions = (
        shop.events.filter(pl.col("user_id").is_not_null() & pl.col("item_id").is_not_null())
        .join(shop.items.select("item_id", "category_path"), on="item_id")
        .with_columns(pl.col("timestamp").min().over("session_id").alias("start"))
        .with_columns(
            (
                pl.col("start").rank("dense").over("user_id")
                / pl.col("start").n_unique().over("user_id")
            ).alias("position")
        )
        .filter(pl.col("start").n_unique().over("user_id") >= 4)
    )
    first = sessions.filter(pl.col("position") <= 0.5)
    second = sessions.filter(pl.col("position") > 0.5)
    top3 = (
        first.group_by("user_id", "category_path")
        .len()
        .sort("len", "category_path", descending=[True, False])
        .group_by("user_id", maintain_order=True)
        .head(3)
    )
    users = sorted(top3["user_id"].unique().to_list())
    shifted = dict(zip(users, users[1:] + users[:1], strict=True))  # someone else's top 3
    hit = second.join(top3.select("user_id", "category_path"), on=["user_id", "category_path"])
    chance_top3 = top3.with_columns(pl.col("user_id").replace_strict(shifted))
    chance = second.join(
        chance_top3.select("user_id", "category_path"), on=["user_id", "category_path"]
    )
    assert len(users) > 300
    assert hit.height / second.height > 0.25
    assert hit.height > 3 * chance.height


def test_queries_name_the_clicked_items_category_and_brand(shop: DemoShop) -> None:
    clicks = shop.queries.join(
        shop.items.select(
            pl.col("item_id").alias("clicked_item_id"),
            pl.col("category_path").str.split(" > ").list.last().str.to_lowercase().alias("leaf"),
            pl.col("brand").str.to_lowercase().alias("brand"),
        ),
        on="clicked_item_id",
    )
    assert clicks.height == shop.queries.height > 1_000
    assert clicks.select(pl.col("query").str.contains(pl.col("leaf"), literal=True).all()).item()
    branded = clicks.filter(
        pl.col("query")
        .str.split(" ")
        .list.first()
        .is_in(shop.items["brand"].str.to_lowercase().unique().implode())
    )
    assert branded.height > 200
    assert branded.select(pl.col("query").str.starts_with(pl.col("brand")).mean()).item() > 0.7
