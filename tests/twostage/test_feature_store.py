"""The feature store: each feature defined once, point-in-time correct offline, and the same
values online (real Redis, skipped with the reason when it is not reachable)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.twostage.store.definitions import (
    FEATURES,
    MAX_PAIR_ITEMS,
    SECONDS_PER_DAY,
    entity_ids,
    features_of,
    pair_key,
)
from nextbest.twostage.store.offline import (
    OfflineFeatures,
    day_name,
    materialize_offline,
    partition,
)
from nextbest.twostage.store.online import OnlineFeatures, connect, write_online

DAY = SECONDS_PER_DAY
START = 19_000  # a day number: 2022-01-08
ITEM_NAMES = [f.name for f in features_of("item")]
USER_NAMES = [f.name for f in features_of("user")]
PAIR_NAMES = [f.name for f in features_of("pair")]


def log(rows: list[tuple[str, str, str | None, float]]) -> pl.DataFrame:
    """Events from (type, item, user, seconds since START's midnight)."""
    return pl.DataFrame(
        {
            "event_id": [f"e{k}" for k in range(len(rows))],
            "type": [r[0] for r in rows],
            "session_id": [f"s-{r[2]}-{int(r[3] // DAY)}" for r in rows],
            "item_id": [r[1] for r in rows],
            "user_id": [r[2] for r in rows],
            "timestamp": [START * DAY + r[3] for r in rows],
        }
    )


def background() -> list[tuple[str, str, str | None, float]]:
    """Ten days of ordinary traffic on items a..e by users u0..u4 (and anonymous)."""
    rng = np.random.default_rng(3)
    kinds = ["view"] * 6 + ["click", "cart", "purchase"]
    return [
        (
            str(rng.choice(kinds)),
            str(rng.choice(list("abcde"))),
            None if k % 5 == 0 else f"u{k % 5}",
            float(rng.uniform(0, 10 * DAY)),
        )
        for k in range(400)
    ]


def value(store: OfflineFeatures, entity: str, day: int, entity_id: str, name: str) -> float:
    """A feature in a day's partition (its default when the entity has no row)."""
    return float(store.as_of_rows(entity, [entity_id], np.array([day * DAY]), [name])[0, 0])


def test_a_planted_event_counts_from_the_next_days_partition_only(tmp_path: Path) -> None:
    planted = 4 * DAY + 10 * 3600  # 10:00 on day START + 4
    events = log([*background(), ("purchase", "new", "buyer", planted)])
    materialize_offline(events, tmp_path)
    store = OfflineFeatures(tmp_path)
    day = START + 4
    assert value(store, "item", day, "new", "item.purchases_1d") == 0.0  # its own day: not yet
    assert value(store, "item", day + 1, "new", "item.purchases_1d") == 1.0
    assert value(store, "item", day + 2, "new", "item.purchases_1d") == 0.0  # out of 1 day
    assert value(store, "item", day + 2, "new", "item.purchases_7d") == 1.0
    assert value(store, "user", day + 1, "buyer", "user.purchases_28d") == 1.0
    assert math.isnan(value(store, "item", day, "new", "item.age_days"))  # unknown before
    assert value(store, "item", day + 1, "new", "item.age_days") == pytest.approx(14 / 24)
    # a case later on the planted day (after the event) still reads the day's start values
    moments = np.array([planted + 60, (day + 1) * DAY])
    read = store.as_of_rows("item", ["new", "new"], moments, ["item.purchases_1d"])
    assert read[:, 0].tolist() == [0.0, 1.0]
    # and no partition holds a value of an event at or after its as_of
    for d in range(START + 1, START + 11):
        table = pl.read_parquet(partition(tmp_path, "item", d))
        assert (table["as_of"] == d * DAY).all()


def test_an_event_exactly_at_midnight_belongs_to_the_day_it_starts(tmp_path: Path) -> None:
    events = log([("view", "a", "u", 0.0), ("cart", "a", "u", 2 * DAY)])
    materialize_offline(events, tmp_path)
    store = OfflineFeatures(tmp_path)
    assert value(store, "item", START + 2, "a", "item.carts_7d") == 0.0
    assert value(store, "item", START + 3, "a", "item.carts_7d") == 1.0


def test_the_values_are_the_definitions(tmp_path: Path) -> None:
    events = log(
        [
            ("view", "a", "u", 0.5 * DAY),
            ("click", "a", "u", 1.5 * DAY),
            ("view", "a", "v", 1.6 * DAY),
            ("cart", "a", "u", 1.7 * DAY),
            ("purchase", "a", "u", 1.8 * DAY),
            ("view", "b", "v", 9.0 * DAY),
            ("cart", "c", "v", 9.1 * DAY),
        ]
    )
    materialize_offline(events, tmp_path)
    latest = OfflineFeatures(tmp_path).latest("item")
    assert latest["item_id"].to_list() == ["a", "b", "c"]
    a = latest.row(0, named=True)
    assert a["as_of"] == (START + 10) * DAY
    assert (a["item.views_1d"], a["item.views_7d"], a["item.views_28d"]) == (0, 0, 3)
    assert (a["item.carts_28d"], a["item.purchases_28d"]) == (1, 1)
    assert a["item.cart_rate_28d"] == pytest.approx(1 / 3)
    assert a["item.age_days"] == pytest.approx(9.5)
    b = latest.row(1, named=True)
    assert b["item.views_1d"] == 1
    assert b["item.cart_rate_28d"] == 0.0  # no cart of one view
    assert latest.row(2, named=True)["item.cart_rate_28d"] is None  # a cart, no view: unknown
    users = OfflineFeatures(tmp_path).latest("user").rows_by_key("user_id", named=True)
    u = users["u"][0]
    assert (u["user.events_28d"], u["user.views_28d"], u["user.active_days_28d"]) == (4, 2, 2)
    assert u["user.days_since_last"] == pytest.approx(10 - 1.8)


def test_pairs_count_the_sessions_that_held_both_items(tmp_path: Path) -> None:
    # a session is a user's day (`log`): u on day 0 and day 2, v and w on day 1
    events = log(
        [
            ("view", "a", "u", 0.1 * DAY),
            ("view", "b", "u", 0.2 * DAY),
            ("cart", "b", "u", 0.3 * DAY),
            ("view", "a", "v", 1.1 * DAY),
            ("purchase", "b", "v", 1.2 * DAY),
            ("view", "b", "w", 1.3 * DAY),  # b alone: no pair
            ("view", "a", "u", 2.1 * DAY),
            ("view", "c", "u", 2.2 * DAY),
        ]
    )
    materialize_offline(events, tmp_path)
    store = OfflineFeatures(tmp_path)
    latest = store.latest("pair").rows_by_key("pair_id", named=True, unique=True)
    assert sorted(latest) == sorted(pair_key(x, y) for x, y in ["ab", "ba", "ac", "ca"])
    ab, ba = latest[pair_key("a", "b")], latest[pair_key("b", "a")]
    assert (ab["pair.sessions_28d"], ab["pair.carts_28d"], ab["pair.purchases_28d"]) == (2, 1, 1)
    assert (ba["pair.sessions_28d"], ba["pair.carts_28d"], ba["pair.purchases_28d"]) == (2, 0, 0)
    # point in time: on day 1 only day 0's session counts, on day 2 the two of days 0 and 1
    for day, expected in ((START + 1, 1.0), (START + 2, 2.0)):
        assert value(store, "pair", day, pair_key("a", "b"), "pair.sessions_7d") == expected
    assert value(store, "pair", START + 2, pair_key("a", "c"), "pair.sessions_7d") == 0.0
    assert value(store, "pair", START + 3, pair_key("b", "c"), "pair.sessions_7d") == 0.0


def test_a_long_sessions_pairs_are_of_its_latest_items(tmp_path: Path) -> None:
    n = MAX_PAIR_ITEMS + 5
    events = log([("view", f"i{k:02d}", "u", 0.1 * DAY + k) for k in range(n)])
    materialize_offline(events, tmp_path)
    pairs = OfflineFeatures(tmp_path).latest("pair")["pair_id"].to_list()
    assert len(pairs) == MAX_PAIR_ITEMS * (MAX_PAIR_ITEMS - 1)
    assert pair_key("i34", "i33") in pairs and not any("i04" in p for p in pairs)


def test_pair_keys_are_distinct_for_any_two_ids() -> None:
    assert pair_key("ab", "c") != pair_key("a", "bc")
    assert pair_key("1:a", "b") != pair_key("1", ":ab")
    assert entity_ids("pair", ["b", "c"], [None, "u"], ["a", None]) == [pair_key("a", "b"), ""]
    assert entity_ids("user", ["b"], [None], ["a"]) == [""]
    with pytest.raises(ValueError, match="unknown entity 'shop'"):
        entity_ids("shop", ["b"], [None], [None])


def test_an_unknown_entity_reads_the_defaults(tmp_path: Path) -> None:
    materialize_offline(log(background()), tmp_path)
    read = OfflineFeatures(tmp_path).as_of_rows(
        "item", ["nope"], np.array([(START + 5) * DAY]), ["item.views_7d", "item.cart_rate_28d"]
    )
    assert read[0, 0] == 0.0 and math.isnan(read[0, 1])


def test_a_second_run_leaves_no_partition_of_the_first(tmp_path: Path) -> None:
    events = log(background())
    materialize_offline(events, tmp_path)
    shorter = events.filter(pl.col("timestamp") < (START + 5) * DAY)
    materialize_offline(shorter, tmp_path)
    written = sorted(p.parent.name for p in (tmp_path / "pair").glob("*/data.parquet"))
    assert written == [f"day={day_name(START + d)}" for d in range(1, 6)]
    assert OfflineFeatures(tmp_path).manifest["days"] == [day_name(START + d) for d in range(1, 6)]


def test_an_incremental_run_writes_the_new_days_and_keeps_the_rest(tmp_path: Path) -> None:
    events = log(background())
    materialize_offline(events, tmp_path / "full")
    # the log up to noon of day 5, then the whole log with --last-days 2: the last two days
    # are written, the days between them and the store's end too, and the store's last day
    # (day 6, of half of day 5's events) again; the rest is kept as it was
    grown = tmp_path / "grown"
    materialize_offline(events.filter(pl.col("timestamp") < (START + 5.5) * DAY), grown)
    done = materialize_offline(events, grown, last_days=2)
    assert done.kept == [START + d for d in range(1, 6)]
    assert done.days == [START + d for d in range(6, 11)]  # 6..8 fill the gap, 9..10 the last
    full, incremental = OfflineFeatures(tmp_path / "full"), OfflineFeatures(grown)
    assert incremental.manifest == full.manifest
    for entity in ("item", "user", "pair"):
        for d in range(1, 11):
            assert incremental.day(entity, START + d).equals(full.day(entity, START + d))
    # a store of other features is not kept: only the latest days, of the new features
    other = tmp_path / "other"
    materialize_offline(events, other, features=features_of("item"))
    redone = materialize_offline(events, other, last_days=2)
    assert redone.kept == [] and redone.days == [START + 9, START + 10]
    assert sorted(p.parent.name for p in (other / "item").glob("*/data.parquet")) == [
        f"day={day_name(START + 9)}",
        f"day={day_name(START + 10)}",
    ]


# -- online ----------------------------------------------------------------------------------
def test_online_holds_exactly_the_latest_offline_day(
    tmp_path: Path, redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    events = log([*background(), ("purchase", "new", "buyer", 9.9 * DAY)])
    done = materialize_offline(events, tmp_path)
    client = connect(url)
    write_online(client, prefix, done.as_of, done.online_tables())
    offline = OfflineFeatures(tmp_path)
    reader = OnlineFeatures(client, prefix)
    for entity, names in (("item", ITEM_NAMES), ("user", USER_NAMES), ("pair", PAIR_NAMES)):
        latest = offline.latest(entity)
        ids = [*latest[latest.columns[0]].to_list(), "never-seen"]
        online = reader.read_rows(entity, ids, names)
        moments = np.full(len(ids), online.as_of)
        expected = offline.as_of_rows(entity, ids, moments, names)
        assert online.as_of == done.as_of
        assert expected.shape == online.values.shape == (len(ids), len(names))
        np.testing.assert_array_equal(online.values, expected)  # NaN where NaN, bit for bit
    row = reader.read_rows("item", ["new"], ["item.purchases_1d"])
    assert row.values.tolist() == [[1.0]]


def test_a_new_version_is_read_and_the_oldest_dropped(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    client = connect(url)
    reader = OnlineFeatures(client, prefix)
    names = ["item.views_7d"]
    versions = []
    for day in range(3):
        table = {"item": (["a"], names, np.array([[float(day)]]))}
        versions.append(write_online(client, prefix, (START + day) * DAY, table))
        read = reader.read_rows("item", ["a", "b"], names)  # the reader follows each new version
        assert read.values.tolist() == [[float(day)], [0.0]]
        assert read.version == versions[-1] and read.as_of == (START + day) * DAY
    assert not list(client.scan_iter(match=f"{prefix}features:{versions[0]}:*"))
    assert list(client.scan_iter(match=f"{prefix}features:{versions[1]}:*"))


def test_unknown_features_and_empty_stores_are_refused(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    reader = OnlineFeatures(connect(url), prefix)
    with pytest.raises(LookupError, match="materialize"):
        reader.read("item", ["a"], ["item.views_7d"])
    with pytest.raises(ValueError, match="unknown feature"):
        reader.read("item", ["a"], ["item.nope"])
    with pytest.raises(ValueError, match="entity 'item'"):
        reader.read("item", ["a"], ["user.events_28d"])


# -- the command -----------------------------------------------------------------------------
runner = CliRunner()


def test_materialize_command_writes_both_stores(
    tmp_path: Path, redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    path = tmp_path / "events.parquet"
    log(background()).write_parquet(path)
    out = tmp_path / "features"
    args = ["features", "materialize", "--events", str(path), "--out", str(out)]
    result = runner.invoke(app, [*args, "--online", url, "--prefix", prefix])
    assert result.exit_code == 0, result.output
    assert "10 days" in result.output and "online: version" in result.output
    latest = OfflineFeatures(out).latest("item")
    online = OnlineFeatures(connect(url), prefix).read_rows("item", ["a"], ["item.views_28d"])
    assert online.values[0, 0] == latest.filter(pl.col("item_id") == "a")["item.views_28d"][0]
    items_only = runner.invoke(app, [*args, "--entity", "item", "--out", str(tmp_path / "i")])
    assert items_only.exit_code == 0, items_only.output
    assert OfflineFeatures(tmp_path / "i").manifest["features"].keys() == {"item"}
    assert not (tmp_path / "i" / "pair").exists()
    wrong = runner.invoke(app, [*args, "--entity", "shop"])
    assert wrong.exit_code == 2 and "'shop' is not a kind of the store" in wrong.output
    shown = runner.invoke(app, ["features", "status", "--online", url, "--prefix", prefix])
    assert shown.exit_code == 0, shown.output
    assert f"values of the events before {day_name(START + 10)}" in shown.output
    assert "pair" in shown.output and "user" in shown.output
    empty = runner.invoke(app, ["features", "status", "--online", url, "--prefix", "nope:"])
    assert empty.exit_code == 2 and "no features under 'nope:'" in empty.output
    again = runner.invoke(app, [*args, "--last-days", "2"])
    assert again.exit_code == 0, again.output
    assert "2 days" in again.output and "8 earlier days kept" in again.output
    assert len(OfflineFeatures(out).manifest["days"]) == 10


def test_materialize_command_names_what_is_wrong(tmp_path: Path) -> None:
    out = tmp_path / "features"
    missing = runner.invoke(
        app,
        ["features", "materialize", "--events", str(tmp_path / "no.parquet"), "--out", str(out)],
    )
    assert missing.exit_code == 2 and "no such file" in missing.output
    bad = tmp_path / "bad.parquet"
    pl.DataFrame({"item": ["a"], "when": [1.0]}).write_parquet(bad)
    refused = runner.invoke(
        app, ["features", "materialize", "--events", str(bad), "--out", str(out)]
    )
    assert refused.exit_code == 2 and "lacks required column" in refused.output
    good = tmp_path / "events.parquet"
    log(background()).write_parquet(good)
    url = "redis://127.0.0.1:1/0"
    offline_only = ["features", "materialize", "--events", str(good), "--out", str(out)]
    unreachable = runner.invoke(app, [*offline_only, "--online", url])
    assert unreachable.exit_code == 2 and f"Redis not reachable at {url}" in unreachable.output
    assert not out.exists()  # refused before any work


def test_every_feature_has_a_unique_name_of_its_entity() -> None:
    names = [f.name for f in FEATURES]
    assert len(set(names)) == len(names)
    assert all(f.name.startswith(f.entity + ".") for f in FEATURES)
    ratios = [f for f in FEATURES if f.kind == "ratio"]
    assert all(set(f.over) <= set(names) for f in ratios)


def test_materialize_reads_the_servers_own_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nextbest.events.log import open_event_log, sqlite_url
    from nextbest.events.schema import Event

    home = tmp_path / "home"
    home.mkdir()
    table = log(background())
    event_log = open_event_log(sqlite_url(home))
    event_log.append([Event(**row) for row in table.iter_rows(named=True)])
    event_log.close()
    monkeypatch.setenv("NEXTBEST_HOME", str(home))
    monkeypatch.delenv("NEXTBEST_DATABASE_URL", raising=False)
    from_log = runner.invoke(
        app, ["features", "materialize", "--from-log", "--out", str(tmp_path / "a")]
    )
    assert from_log.exit_code == 0, from_log.output
    path = tmp_path / "events.parquet"
    table.write_parquet(path)
    args = ["features", "materialize", "--events", str(path), "--out", str(tmp_path / "b")]
    assert runner.invoke(app, args).exit_code == 0
    assert (
        OfflineFeatures(tmp_path / "a")
        .latest("item")
        .equals(OfflineFeatures(tmp_path / "b").latest("item"))
    )
    neither = runner.invoke(app, ["features", "materialize", "--out", str(tmp_path / "c")])
    assert neither.exit_code == 2 and "--events FILE or --from-log" in neither.output
