"""Placements as named, over HTTP: each shipped placement on planted data, filters, purchase
rules, promotions, pins, diversity, reloads and bad input.

The planted shop: the test GRU4Rec learned "after item j comes j + 1" over 30 items; i00-i09
are treadmills (a durable: held for 180 days after a purchase; running shoes go with them),
i10-i19 running shoes, i20-i29 coffee (a consumable with a 30-day cycle). Prices are 10 + j.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_helpers import ADMIN, READ, TestClient, auth, item, recommend, send, view

from nextbest.models.neighbours import NeighbourTable
from nextbest.models.store import latest_version
from nextbest.recommend.placements import DEFAULT_FILE, PlacementsError, load_placements
from nextbest.recommend.rules.purchase_rules import CategoryRule, PurchaseRules

TREADMILLS, SHOES, COFFEE = (
    "Sports > Fitness > Treadmills",
    "Sports > Running > Shoes",
    "Home > Kitchen > Coffee",
)
DAY = 86_400.0


def category_of(j: int) -> str:
    return TREADMILLS if j < 10 else SHOES if j < 20 else COFFEE


def rule(category: str, kind: str, hold: float, complements: Any = (), cycle: Any = None) -> Any:
    return CategoryRule(
        category=category, kind=kind, buyers=50, purchases=60, returning=40,  # type: ignore[arg-type]
        rebuy_share=0.5 if kind == "consumable" else 0.0, revisit_share=0.2,
        cycle_days=cycle, hold_days=hold, complements=tuple(complements),
    )  # fmt: skip


@pytest.fixture
def shop(home: Path, make_client: Callable[..., TestClient]) -> Callable[..., TestClient]:
    """A client over the planted shop: its rules in the model version, its catalog loaded."""
    PurchaseRules(
        {
            TREADMILLS: rule(TREADMILLS, "durable", 180.0, [(SHOES, 6.0)]),
            SHOES: rule(SHOES, "regular", 0.0),
            COFFEE: rule(COFFEE, "consumable", 24.0, cycle=30.0),
        }
    ).save(latest_version(home))  # type: ignore[arg-type]

    def make(**overrides: Any) -> TestClient:
        client = make_client(**overrides)
        items = [
            {"item_id": item(j), "title": f"Item {j}", "category_path": category_of(j).split(" > "),
             "brand": "Promo" if j in (12, 27) else f"brand-{j % 4}", "price": 10.0 + j,
             "discount": 0.5 if j == 27 else 0.0}
            for j in range(30)
        ]  # fmt: skip
        reply = client.put("/v1/items", json={"items": items}, headers=auth(ADMIN))
        assert reply.status_code == 200, reply.text
        return client

    return make


def ids(reply: Any) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [entry["item_id"] for entry in reply.json()["items"]]


def event(event_id: str, session: str, item_id: str, kind: str, **extra: Any) -> dict[str, Any]:
    return view(event_id, session, item_id, **extra) | {"type": kind}


def placements_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "placements.toml"
    path.write_text(text)
    return path


# -- the shipped placements --------------------------------------------------------------------
def test_no_placement_means_home_and_each_item_says_why(shop: Callable[..., TestClient]) -> None:
    client = shop()
    send(client, view("e1", "s1", item(2)))
    body = recommend(client, session_id="s1", n=5).json()
    assert body["placement"] == "home"
    assert body["items"][0] == {
        "item_id": item(3), "score": body["items"][0]["score"], "source": "gru4rec",
        "reason": "next after Item 2",
    }  # fmt: skip
    assert all(entry["reason"] for entry in body["items"])


def test_the_product_placement_never_returns_the_item_on_screen(
    shop: Callable[..., TestClient],
) -> None:
    client = shop()
    send(client, view("e1", "s1", item(14)))
    for j in (14, 15, 3, 25):
        shown = ids(recommend(client, session_id="s1", placement="product", item_id=item(j)))
        assert len(shown) == 10 and item(j) not in shown
    # the item on screen drives the list: what comes after i25 in the planted sessions
    shown = ids(recommend(client, session_id="s1", placement="product", item_id=item(25), n=3))
    assert item(26) in shown
    reply = recommend(client, session_id="s1", placement="product")
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["field"] == "item_id"


def test_the_cart_placement_leaves_out_the_cart_and_puts_the_planted_complement_first(
    shop: Callable[..., TestClient],
) -> None:
    client = shop()
    send(
        client,
        view("e1", "s1", item(3)),
        event("e2", "s1", item(3), "cart"),
        event("e3", "s1", item(16), "cart"),
        event("e4", "s1", item(16), "remove-from-cart"),
        event("e5", "s1", item(4), "cart"),
    )
    body = recommend(client, session_id="s1", placement="cart", n=8).json()
    shown = [entry["item_id"] for entry in body["items"]]
    assert item(3) not in shown and item(4) not in shown and len(shown) == 8
    first = body["items"][0]
    assert category_of(int(first["item_id"][1:])) == SHOES  # what goes with treadmills
    assert first["source"] == "complements" and first["reason"].startswith("goes with Item")


def test_the_search_placement_reranks_the_callers_items_for_the_session(
    shop: Callable[..., TestClient],
) -> None:
    client = shop()
    send(client, view("e1", "s1", item(2)))
    given_order = [item(20), item(11), item(3), item(7)]
    shown = ids(recommend(client, session_id="s1", placement="search",
                          candidates=",".join(given_order)))  # fmt: skip
    assert sorted(shown) == sorted(given_order)
    assert shown[0] == item(3)  # what the session goes on to: first, though passed third
    posted = client.post(
        "/v1/recommendations",
        json={"session_id": "s1", "placement": "search", "candidates": given_order, "n": 2},
        headers=auth(READ),
    )
    assert ids(posted)[0] == item(3) and len(ids(posted)) == 2
    missing = recommend(client, session_id="s1", placement="search")
    assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "candidates"


def test_an_unknown_placement_is_a_422_naming_it(shop: Callable[..., TestClient]) -> None:
    reply = recommend(shop(), session_id="s1", placement="checkout")
    assert reply.status_code == 422
    detail = reply.json()["detail"][0]
    assert detail["field"] == "placement" and "'checkout'" in detail["message"]
    assert "product" in detail["message"]  # and it says which exist


# -- the treadmill rule --------------------------------------------------------------------------
def test_after_buying_a_treadmill_no_treadmill_is_shown_and_shoes_come_up(
    shop: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = shop()
    send(client, view("e1", "s1", item(5)), event("e2", "s1", item(5), "purchase"))
    shown = ids(recommend(client, session_id="s1", n=10))
    assert not [i for i in shown if category_of(int(i[1:])) == TREADMILLS]
    assert category_of(int(shown[0][1:])) == SHOES
    # the same pipeline without the learned rule shows the next treadmill first
    text = DEFAULT_FILE.read_text().replace(
        "[placements.home]\n", "[placements.home]\npurchase_rules = false\n"
    )
    plain = shop(placements=placements_file(tmp_path, text))
    send(plain, view("f1", "s2", item(5)), event("f2", "s2", item(5), "purchase"))
    assert ids(recommend(plain, session_id="s2", n=10))[0] == item(6)


def test_a_consumable_is_held_until_its_cycle_comes_round(shop: Callable[..., TestClient]) -> None:
    client = shop()
    now = time.time()
    send(client, event("p1", "old", item(22), "purchase", user_id="u1", timestamp=now - 40 * DAY))
    send(client, view("e1", "s1", item(21), user_id="u1", timestamp=now - 60))
    # bought 40 days ago, cycle 30: due again, so coffee is boosted (i22 itself was bought)
    shown = ids(recommend(client, session_id="s1", n=5))
    assert [i for i in shown if category_of(int(i[1:])) == COFFEE]
    client2 = shop()
    send(client2, event("q1", "old2", item(22), "purchase", user_id="u2", timestamp=now - DAY))
    send(client2, view("q2", "s2", item(21), user_id="u2", timestamp=now - 60))
    held = ids(recommend(client2, session_id="s2", n=10))
    assert not [i for i in held if category_of(int(i[1:])) == COFFEE]  # bought yesterday


# -- filters -------------------------------------------------------------------------------------
def test_a_request_filter_with_parameters(shop: Callable[..., TestClient]) -> None:
    client = shop()
    send(client, view("e1", "s1", item(2)))
    reply = recommend(
        client, session_id="s1", n=10,
        filter="INCLUDE WHERE item.price <= $max_price AND item.brand IN $brands",
        filter_params=json.dumps({"max_price": 25, "brands": ["brand-1", "brand-2"]}),
    )  # fmt: skip
    shown = ids(reply)
    assert shown and all(10 + int(i[1:]) <= 25 and int(i[1:]) % 4 in (1, 2) for i in shown)
    bought = recommend(
        client,
        session_id="s1",
        n=30,
        filter='EXCLUDE WHERE interaction.type = "view" AND interaction.age < 1h',
    )
    assert item(2) not in ids(bought)  # fmt: skip


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"filter": "INCLUDE WHERE item.price <= "}, "filter", "character"),
        ({"filter": "INCLUDE WHERE item.colour = 'red'"}, "filter", "colour"),
        ({"filter": "INCLUDE WHERE item.price = 'red'"}, "filter", "price"),
        ({"filter": "INCLUDE WHERE item.price <= " + "1 + " * 600}, "filter", ""),
        ({"filter": "INCLUDE WHERE item.price <= $p"}, "filter_params.p", "p"),
        ({"filter": "INCLUDE WHERE item.price <= $p", "filter_params": '{"p": "x"}'},
         "filter_params.p", "p"),
        ({"filter_params": '{"unused": 1}'}, "filter_params.unused", "unused"),
        ({"filter_params": "{not json"}, "filter_params", "JSON"),
        ({"filter_params": "[1, 2]"}, "filter_params", "object"),
    ],
)  # fmt: skip
def test_a_bad_filter_or_parameter_is_a_422_naming_it(
    shop: Callable[..., TestClient], params: dict[str, str], field: str, words: str
) -> None:
    client = shop()
    reply = recommend(client, session_id="s1", **params)
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"][0]
    assert detail["field"] == field and words in detail["message"]
    assert recommend(client, session_id="s1").status_code == 200  # and it keeps serving


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.one_of(
        st.text(max_size=80),
        st.builds(lambda a, b: f"INCLUDE WHERE {a} {b}", st.sampled_from(
            ["item.price", "item.brand", "interaction.age", "$x", "(", "NOT", "item.attributes.k"]
        ), st.text(max_size=20)),
    ),
    params=st.dictionaries(
        st.sampled_from(["x", "max_price", "brands"]),
        st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none(),
                  st.lists(st.integers(), max_size=3), st.floats(allow_nan=False)),
        max_size=2,
    ),
)  # fmt: skip
def test_fuzzed_filters_and_parameters_never_give_a_5xx(
    fuzz_client: TestClient, text: str, params: dict[str, Any]
) -> None:
    reply = recommend(
        fuzz_client, session_id="fuzz", filter=text or None, filter_params=json.dumps(params)
    )
    assert reply.status_code in (200, 422), reply.text


@pytest.fixture
def fuzz_client(shop: Callable[..., TestClient]) -> TestClient:
    client = shop()
    send(client, view("e1", "fuzz", item(2)))
    return client


# -- promotions, pins, diversity -----------------------------------------------------------------
PROMOTED = """
[campaigns.promo]
title = "Promo week"
filter = 'INCLUDE WHERE item.brand = "Promo"'

[placements.home]
generators = [{ source = "session", k = 100 }]
ranker = "fusion"
promotions = [{ campaign = "promo", slots = 1, positions = [2] }]
pins = [{ item = "i25", position = 1 }]
"""


def test_promotions_and_pins_take_their_slots_and_pass_the_rules(
    shop: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = shop(placements=placements_file(tmp_path, PROMOTED))
    send(client, view("e1", "s1", item(2)))
    body = recommend(client, session_id="s1", n=5).json()
    first, second = body["items"][0], body["items"][1]
    assert (first["item_id"], first["source"]) == (item(25), "pinned")
    assert second["source"] == "promoted" and second["reason"] == "promoted: Promo week"
    assert second["item_id"] in (item(12), item(27))
    assert body["items"][2]["item_id"] == item(3)  # the model's best, after the two slots
    # bought items are never promoted nor pinned
    send(client, event("b1", "s1", item(25), "purchase"), event("b2", "s1", item(12), "purchase"),
         event("b3", "s1", item(27), "purchase"))  # fmt: skip
    after = recommend(client, session_id="s1", n=5).json()["items"]
    assert {e["source"] for e in after} == {"gru4rec"}


def test_a_category_cap_keeps_a_list_diverse(
    shop: Callable[..., TestClient], tmp_path: Path
) -> None:
    capped = """
[placements.home]
generators = [{ source = "session", k = 100 }]
diversity = { mmr = 0.0, max_per_category = 1 }
fill = []
"""
    client = shop(placements=placements_file(tmp_path, capped))
    send(client, view("e1", "s1", item(2)))
    shown = ids(recommend(client, session_id="s1", n=3))
    assert len({category_of(int(i[1:])) for i in shown}) == 3


def test_the_preference_and_context_generators_read_the_live_state(
    shop: Callable[..., TestClient], tmp_path: Path
) -> None:
    strategies = """
[placements.taste]
generators = [{ source = "preference", k = 50 }]
fill = []

[placements.now]
generators = [{ source = "context", k = 50 }]
fill = []
"""
    client = shop(placements=placements_file(tmp_path, strategies))
    # a user's earlier session: coffee of brand-1 (i21, i25), bought once
    send(
        client,
        view("e1", "old", item(21), user_id="u1"),
        view("e2", "old", item(25), user_id="u1"),
        event("e3", "old", item(25), "purchase", user_id="u1"),
    )
    # a new session of theirs knows their tastes before any event of its own
    body = recommend(client, session_id="new", user_id="u1", placement="taste", n=5).json()
    first = body["items"][0]
    assert first["source"] == "preference" and first["reason"] == "because you like brand-1"
    assert item(25) not in ids(recommend(client, user_id="u1", placement="taste"))  # bought
    # an anonymous session without events: no tastes, nothing (no fill here)
    assert ids(recommend(client, session_id="anon", placement="taste")) == []
    # its own events make its profile: treadmills now
    send(client, view("e4", "anon", item(3)), view("e5", "anon", item(5)))
    shown = recommend(client, session_id="anon", placement="taste", n=3).json()["items"]
    assert shown and all(category_of(int(e["item_id"][1:])) == TREADMILLS for e in shown)
    # context: what came after the session's items in others' sessions (old: i21 -> i25)
    send(client, view("e6", "s2", item(21)))
    services = client.app.state.services  # type: ignore[attr-defined]
    services.trends.refresh()
    services.trends.update_row_counts(services.catalog.table(services.registry.current))
    found = recommend(client, session_id="s2", placement="now", n=10).json()["items"]
    reasons = {e["item_id"]: e["reason"] for e in found}
    assert reasons[item(25)] == "often viewed with Item 21"
    assert {e["source"] for e in found} == {"context"}
    assert ids(recommend(client, session_id="nobody", placement="now")) == []


# -- the placements file -------------------------------------------------------------------------
HOME = "[placements.home]\n"
ONE = HOME + "generators = [{ source = 'session' }]\n"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (HOME + "generators = [{ source = 'session', k = 0 }]", "placements.home.generators[0].k"),
        (HOME + "generators = [{ source = 'magic' }]", "placements.home.generators[0].source"),
        (HOME + "generators = []", "placements.home.generators"),
        (ONE + "filters = ['nope']", "placements.home.filters[0]"),
        (ONE + "colour = 'red'", "placements.home.colour"),
        ("[filters]\nbad = 'INCLUDE WHERE'\n" + ONE, "filters.bad"),
        (ONE + "diversity = { mmr = 2 }", "placements.home.diversity.mmr"),
        (ONE + "promotions = [{ campaign = 'x' }]", "placements.home.promotions[0].campaign"),
        ("[placements.home\n", "not valid TOML"),
        ("[filters]\n", "placements"),
    ],
)
def test_a_malformed_placements_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = placements_file(tmp_path, text)
    with pytest.raises(PlacementsError) as caught:
        load_placements(path)
    assert str(path) in str(caught.value) and key in str(caught.value)


def test_a_malformed_placements_file_stops_the_server_at_startup(
    shop: Callable[..., TestClient], tmp_path: Path
) -> None:
    path = placements_file(
        tmp_path, "[placements.home]\ngenerators = [{ source = 'session', k = -1 }]"
    )
    with pytest.raises(PlacementsError, match=r"placements\.home\.generators\[0\]\.k"):
        shop(placements=path)


def test_placements_reload_without_a_restart_and_a_bad_file_keeps_the_old(
    shop: Callable[..., TestClient], tmp_path: Path
) -> None:
    path = placements_file(tmp_path, DEFAULT_FILE.read_text())
    client = shop(placements=path)
    assert recommend(client, placement="weekly").status_code == 422
    path.write_text(
        DEFAULT_FILE.read_text() + "\n[placements.weekly]\ngenerators = [{ source = 'popular' }]\n"
    )
    reload = client.post("/v1/placements/reload", headers=auth(ADMIN))
    assert reload.status_code == 200 and "weekly" in reload.json()["placements"]
    assert recommend(client, placement="weekly").status_code == 200
    path.write_text("[placements.weekly]\ngenerators = [{ source = 'popular', k = 0 }]\n")
    broken = client.post("/v1/placements/reload", headers=auth(ADMIN))
    assert broken.status_code == 422 and "generators[0].k" in broken.json()["detail"][0]["message"]
    assert recommend(client, placement="weekly").status_code == 200  # the old ones serve on
    assert client.post("/v1/placements/reload", headers=auth(READ)).status_code == 403


def test_similar_items_come_from_the_neighbour_table_once_it_is_built(
    shop: Callable[..., TestClient],
) -> None:
    client = shop()
    model = client.app.state.services.model  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while "neighbours" not in model.memo and time.monotonic() < deadline:
        time.sleep(0.05)
    built = model.memo["neighbours"]
    anchor = model.index[item(25)]
    rows = np.array(built.rows)
    rows[anchor] = rows[anchor][::-1]  # a planted order that the live scan would not give
    table = model.memo["neighbours"] = NeighbourTable(rows, np.array(built.scores))
    send(client, view("e1", "s1", item(3)))
    reply = recommend(client, session_id="s1", placement="product", item_id=item(25), n=10)
    similar = [e["item_id"] for e in reply.json()["items"] if e["source"] == "similar"]
    order = [str(model.model.item_ids[r]) for r in table.rows[anchor]]
    assert similar and similar == [i for i in order if i in similar]


@pytest.mark.parametrize(
    ("keywords", "problem"),
    [
        ("[keywords]\nmax_per_leaf = 0\n", r"keywords\.max_per_leaf"),
        ("[keywords]\ncards = 3\n", r"keywords\.cards"),
        ("[keywords]\nshow_on = ['checkout']\n", r"keywords\.show_on"),
        ("[keywords]\nhours = [5, 5]\n", r"keywords\.hours: start and end must differ"),
        ("[keywords]\nhours = [5, 25]\n", r"keywords\.hours"),
        ("[keywords.campaigns.a]\ntitle = 'A'\nqueries = []\n", r"keywords\.campaigns\.a\.queries"),
        ("[keywords.campaigns.a]\nqueries = ['x']\n", r"keywords\.campaigns\.a\.title"),
        (
            "[keywords.campaigns.a]\ntitle = 'A'\nqueries = ['x']\n"
            "start = 2026-03-02T00:00:00Z\nend = 2026-03-01T00:00:00Z\n",
            r"keywords\.campaigns\.a: end must be after start",
        ),
    ],
)
def test_a_bad_keyword_card_table_is_named(tmp_path: Path, keywords: str, problem: str) -> None:
    text = "[placements.home]\ngenerators = [{ source = 'popular' }]\n" + keywords
    with pytest.raises(PlacementsError, match=problem):
        load_placements(placements_file(tmp_path, text))


def test_the_keyword_card_table_sets_the_card_and_its_campaigns(tmp_path: Path) -> None:
    text = (
        "[placements.home]\ngenerators = [{ source = 'popular' }]\n[keywords]\nmin_keywords = 3\n"
        "[keywords.campaigns.a]\ntitle = 'A'\nqueries = [' Running  SHOES', 'running shoes']\n"
    )
    settings = load_placements(placements_file(tmp_path, text)).keyword_card
    assert settings.config.min_keywords == 3 and settings.config.max_per_leaf == 1
    assert [(c.name, c.queries, c.slots) for c in settings.campaigns] == [
        ("a", ("running shoes",), 2)
    ]
