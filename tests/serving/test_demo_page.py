"""The demo page and the browser SDK in headless Chromium (Debian's, driven by Playwright).

Chromium comes from the system (`make browser-deps`); Playwright never downloads a browser.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import polars as pl
import pytest
from server_process import Server, demo_server, free_port
from serving_helpers import (
    ADMIN,
    N_ITEMS,
    READ,
    auth,
    cyclic_sessions,
    item,
    plant_query_graph,
)

from nextbest.events.log import open_event_log, sqlite_url
from nextbest.events.schema import ITEM_SCHEMA
from nextbest.recommend.placements import DEFAULT_FILE


def recommended(page: Any, placement: str) -> list[str]:
    """The items of the page's list for `placement` (home, product or cart)."""
    return list(
        page.locator(f"#recommendations-{placement} li[data-item-id]").evaluate_all(
            "ls => ls.map(l => l.dataset.itemId)"
        )
    )


def click_and_wait(page: Any, selector: str) -> None:
    updates = int(page.locator("body").get_attribute("data-updates") or 0)
    page.click(selector)
    page.wait_for_function(f"Number(document.body.dataset.updates || 0) > {updates}")


def shop(browser: Any, demo: Server) -> tuple[Any, list[dict[str, str]]]:
    """The demo page opened at home with its first list shown, and the query of every
    recommendation request it sends (appended as they leave)."""
    page = browser.new_page()
    asked: list[dict[str, str]] = []

    def note(request: Any) -> None:
        url = urlsplit(request.url)
        if url.path == "/v1/recommendations":
            asked.append(dict(parse_qsl(url.query)))

    page.on("request", note)
    page.goto(demo.url + "/")
    page.wait_for_selector("#products li")
    page.wait_for_function("Number(document.body.dataset.updates || 0) >= 1")
    return page, asked


def explained(page: Any, placement: str) -> list[str]:
    """What each item of a list shows as the reason it is there (its reason, else its source)."""
    lines = page.locator(f"#recommendations-{placement} li[data-item-id]")
    assert lines.evaluate_all("ls => ls.every(l => 'reason' in l.dataset && 'source' in l.dataset)")
    return [text.strip() for text in lines.locator(".reason").all_text_contents()]


def session_events(page: Any, home: Path) -> list[Any]:
    session = page.locator("#session").text_content() or ""
    log = open_event_log(sqlite_url(home))
    try:
        return log.session_events([session], last=20)[session]
    finally:
        log.close()


def fill_cart(page: Any, ids: list[str]) -> None:
    """From home, open each product by its tile and add it to the cart."""
    for id_ in ids:
        click_and_wait(page, f"#products li[data-item-id='{id_}']")
        click_and_wait(page, "#add-to-cart")
        click_and_wait(page, ".shop-name")  # back to the home page


def test_recommendations_follow_every_click(browser: Any, demo: Server, demo_home: Path) -> None:
    page = browser.new_page()
    page.goto(demo.url + "/")
    page.wait_for_selector("#products li")
    page.wait_for_function("Number(document.body.dataset.updates || 0) >= 1")
    click_and_wait(page, f"#products li[data-item-id='{item(5)}']")
    assert recommended(page, "product")[0] == item(6)
    click_and_wait(page, "#buy-now")  # buying the product on screen
    assert item(5) not in recommended(page, "product")
    first = recommended(page, "product")[0]
    click_and_wait(page, "#recommendations-product li:first-child")
    # the product placement fuses what comes next with similar items: the next one is near
    # the top, not always first
    assert item(int(first[1:]) + 1) in recommended(page, "product")[:3]
    assert page.locator("#history li").count() == 3
    session = page.locator("#session").text_content()
    log = open_event_log(sqlite_url(demo_home))
    try:
        events = log.session_events([session or ""], last=10)[session or ""]
    finally:
        log.close()
    assert [(e.type, e.item_id) for e in events] == [
        ("view", item(5)),
        ("purchase", item(5)),
        ("view", first),
    ]
    assert events[2].recommendation_id and events[0].placement == "home"  # a home page tile


def test_the_home_page_shows_the_home_list(browser: Any, demo: Server) -> None:
    page, asked = shop(browser, demo)
    assert recommended(page, "home") and all(explained(page, "home"))
    assert asked[0]["placement"] == "home" and "item_id" not in asked[0]
    assert page.locator("#categories a").all_text_contents() == ["All", "Things"]
    tile = page.locator(f"#products li[data-item-id='{item(5)}']")
    assert tile.locator(".brand").text_content() == "Acme"
    assert tile.locator(".now").text_content() == "€12.00"  # 15.00 less 20 %


def test_a_product_page_recommends_other_items_and_says_why(
    browser: Any, demo: Server, demo_home: Path
) -> None:
    page, asked = shop(browser, demo)
    click_and_wait(page, f"#products li[data-item-id='{item(5)}']")
    assert page.url.endswith(f"#/product/{item(5)}")
    assert page.locator("#product-title").text_content() == f"Product {item(5)}"
    assert page.locator("#product-path a").all_text_contents() == ["Things", "Odd"]
    assert page.locator("#product-price").text_content() == "€12.00 €15.00 −20%"
    assert page.locator("#product-stock").text_content() == "In stock"
    shown = recommended(page, "product")
    assert shown and item(5) not in shown
    assert all(explained(page, "product"))  # a reason, or at least the source
    # the product list and, beside it, the two-stage pipeline's (here a single model's)
    last = {query["placement"]: query for query in asked[-2:]}
    assert set(last) == {"product", "next"}
    assert last["product"]["item_id"] == item(5) and last["next"]["item_id"] == item(5)
    assert last["next"]["explain"] == "true"
    assert recommended(page, "next") and item(5) not in recommended(page, "next")
    assert [(e.type, e.item_id, e.placement) for e in session_events(page, demo_home)] == [
        ("view", item(5), "home")
    ]


def test_the_side_panel_shows_what_the_session_leans_to(browser: Any, demo: Server) -> None:
    page, _ = shop(browser, demo)
    assert page.locator("#affinity dd[data-attribute]").count() == 0  # no item events yet
    assert "Nothing yet" in (page.locator("#affinity").text_content() or "")
    click_and_wait(page, f"#products li[data-item-id='{item(5)}']")  # discounted (j % 5 == 0)
    brand = page.locator("#affinity dd[data-attribute='brand']")
    assert brand.evaluate_all("ls => ls.map(l => l.dataset.value)") == ["Acme"]
    assert "100%" in (brand.text_content() or "")
    category = page.locator("#affinity dd[data-attribute='category']")
    assert category.evaluate_all("ls => ls.map(l => l.dataset.value)") == ["Things > Odd"]
    drawn = float(page.locator("#affinity .discounts").get_attribute("data-sensitivity") or 0)
    assert drawn > 0.5  # its one event is on a discounted item
    click_and_wait(page, "#add-to-cart")  # a cart add of it: more weight, more trust
    carted = float(page.locator("#affinity .discounts").get_attribute("data-sensitivity") or 0)
    assert carted > drawn
    click_and_wait(page, ".shop-name")
    click_and_wait(page, f"#products li[data-item-id='{item(6)}']")  # a full-price item
    after = float(page.locator("#affinity .discounts").get_attribute("data-sensitivity") or 0)
    assert after < carted


def test_the_cart_list_leaves_out_what_is_in_the_cart(
    browser: Any, demo: Server, demo_home: Path
) -> None:
    page, asked = shop(browser, demo)
    fill_cart(page, [item(3), item(20)])
    assert page.locator("#cart-count").text_content() == "2"
    click_and_wait(page, "#cart-link")
    assert page.url.endswith("#/cart")
    in_cart = page.locator("#cart-items li[data-item-id]").evaluate_all(
        "ls => ls.map(l => l.dataset.itemId)"
    )
    assert in_cart == [item(3), item(20)]
    shown = recommended(page, "cart")
    # the page drops what the engine should have left out (data-dropped names it), so this
    # holds with an engine that ignores placements too
    assert shown and not set(shown) & set(in_cart)
    assert asked[-1]["placement"] == "cart"
    carts = [(e.type, e.item_id) for e in session_events(page, demo_home) if e.type == "cart"]
    assert carts == [("cart", item(3)), ("cart", item(20))]
    click_and_wait(page, f"#cart-items li[data-item-id='{item(3)}'] .remove")
    assert page.locator("#cart-count").text_content() == "1"
    assert session_events(page, demo_home)[-1].type == "remove-from-cart"


def test_buying_the_cart_empties_it_and_sends_a_purchase_per_item(
    browser: Any, demo: Server, demo_home: Path
) -> None:
    page, _ = shop(browser, demo)
    fill_cart(page, [item(3), item(20)])
    click_and_wait(page, "#cart-link")
    click_and_wait(page, "#buy-cart")
    assert page.locator("#cart-items li").count() == 0
    assert page.locator("#cart-count").text_content() == "0"
    assert page.locator("#cart-empty").is_visible()
    assert (
        (page.locator("#notice").text_content() or "")
        .strip()
        .startswith(f"Bought Product {item(3)} and Product {item(20)}")
    )
    purchases = [e for e in session_events(page, demo_home) if e.type == "purchase"]
    assert [(e.item_id, e.placement, e.value) for e in purchases] == [
        (item(3), "cart", 13.0),
        (item(20), "cart", 24.0),  # 30.00 less 20 %
    ]
    assert page.locator("#history li[data-type='purchase']").count() == 2


def test_the_back_button_returns_from_a_product_page_to_home(browser: Any, demo: Server) -> None:
    page, asked = shop(browser, demo)
    click_and_wait(page, f"#products li[data-item-id='{item(5)}']")
    assert page.locator("#page-product").is_visible()
    updates = int(page.locator("body").get_attribute("data-updates") or 0)
    page.go_back()
    page.wait_for_function(f"Number(document.body.dataset.updates || 0) > {updates}")
    assert (
        page.locator("#page-home").is_visible() and not page.locator("#page-product").is_visible()
    )
    assert recommended(page, "home")
    placements = [query["placement"] for query in asked]
    assert placements[0] == "home" and sorted(placements[1:3]) == ["next", "product"]
    assert placements[3:] == ["home"]


def test_the_demo_page_signs_in_and_out(browser: Any, demo: Server, demo_home: Path) -> None:
    page = browser.new_page()
    page.goto(demo.url + "/demo/")
    page.wait_for_function("Number(document.body.dataset.updates || 0) >= 1")
    session = page.locator("#session").text_content() or ""
    click_and_wait(page, f"#products li[data-item-id='{item(5)}']")
    page.click("#sign-in")
    page.wait_for_selector("#user:not([hidden])")
    assert page.locator("#user-id").text_content() == "demo-shopper"
    assert page.locator("#sign-in").text_content() == "Sign out"
    page.reload()  # the login outlives the page, as a shop's does
    page.wait_for_selector("#user:not([hidden])")
    log = open_event_log(sqlite_url(demo_home))
    try:
        assert log.session_owners([session]) == {session: "demo-shopper"}
    finally:
        log.close()
    page.click("#sign-in")
    page.wait_for_selector("#user", state="hidden")
    assert page.locator("#session").text_content() != session


# what `nextbest demo` runs once the models are trained (tests/test_demo.py checks that it does)
SERVE_DEMO = (
    "import sys, pathlib, nextbest.serving.demo as demo; "
    "demo.serve_demo(pathlib.Path(sys.argv[1]), int(sys.argv[2]))"
)
KEY_SETTINGS = {
    "NEXTBEST_WRITE_KEYS",
    "NEXTBEST_READ_KEYS",
    "NEXTBEST_ADMIN_KEYS",
    "NEXTBEST_BROWSER_KEYS",
    "NEXTBEST_IDENTITY_SECRETS",
    "NEXTBEST_KEYS_FILE",
}


@pytest.fixture
def served_demo(home: Path) -> Iterator[str]:
    """`serve_demo` over the test model and a demo shop catalog, in a child process; no key in
    its environment, so it serves with the ones it writes to demo-keys.json."""
    shop = home / "demo-shop"
    shop.mkdir()
    rows: dict[str, list[Any]] = {name: [None] * N_ITEMS for name in ITEM_SCHEMA}
    rows["item_id"] = [item(j) for j in range(N_ITEMS)]
    rows["title"] = [f"Demo product {item(j)}" for j in range(N_ITEMS)]
    pl.DataFrame(rows, schema=ITEM_SCHEMA).write_csv(shop / "items.csv")
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k not in KEY_SETTINGS}
    with (home / "served-demo.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE_DEMO, str(home), str(port)],
            env=environment, stdout=log, stderr=log,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError((home / "served-demo.log").read_text()[-2000:])
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_the_served_demo_page_works_with_the_keys_in_demo_keys_json(
    browser: Any, served_demo: str, home: Path
) -> None:
    keys = json.loads((home / "demo-keys.json").read_text())
    config = httpx.get(served_demo + "/demo/config.json").json()
    assert config == {"key": keys["browser"]}  # the page holds the browser key only
    page = browser.new_page()
    page.goto(served_demo + "/")  # redirected to /demo/
    assert page.url == served_demo + "/demo/"
    page.wait_for_selector("#products li")
    page.wait_for_function("Number(document.body.dataset.updates || 0) >= 1")
    assert page.locator(f"#products li[data-item-id='{item(5)}'] .title").text_content() == (
        f"Demo product {item(5)}"
    )  # the catalog comes from the demo shop's items.csv
    click_and_wait(page, f"#products li[data-item-id='{item(5)}']")
    assert recommended(page, "product")[0] == item(6)
    session = page.locator("#session").text_content() or ""
    params = {"session_id": session, "n": 3}
    reply = httpx.get(
        served_demo + "/v1/recommendations", params=params, headers=auth(keys["read"])
    )
    assert reply.status_code == 200 and reply.json()["items"][0]["item_id"] == item(6)
    refused = httpx.get(served_demo + "/v1/recommendations", params=params, headers=auth(READ))
    assert refused.status_code == 401  # only the demo's own keys are served


@pytest.fixture
def treadmill_shop(home: Path) -> Iterator[Server]:
    """The demo over a planted shop with learned purchase rules: i00-i09 treadmills (a durable
    with running shoes as its complement), i10-i19 running shoes, i20-i29 coffee."""
    from nextbest.models.store import latest_version
    from nextbest.recommend.rules.purchase_rules import CategoryRule, PurchaseRules

    paths = ["Sports > Fitness > Treadmills", "Sports > Running > Shoes", "Home > Kitchen > Coffee"]

    def rule(path: str, kind: str, hold: float, complements: tuple[tuple[str, float], ...]) -> Any:
        return CategoryRule(path, kind, 50, 60, 40, 0.0, 0.1, None, hold, complements)  # type: ignore[arg-type]

    version = latest_version(home)
    assert version is not None
    PurchaseRules(
        {
            paths[0]: rule(paths[0], "durable", 180.0, ((paths[1], 6.0),)),
            paths[1]: rule(paths[1], "regular", 0.0, ()),
            paths[2]: rule(paths[2], "regular", 0.0, ()),
        }
    ).save(version)
    server = Server(home, free_port(), {"NEXTBEST_DEMO": "1"}, "demo.log")
    items = [{"item_id": item(j), "title": f"Product {item(j)}",
              "category_path": paths[j // 10].split(" > "), "brand": "Acme", "price": 10.0 + j}
             for j in range(N_ITEMS)]  # fmt: skip
    server.client.put("/v1/items", json={"items": items}, headers=auth(ADMIN)).raise_for_status()
    yield server
    server.stop()


def test_buying_a_treadmill_swaps_treadmills_for_running_shoes(
    browser: Any, treadmill_shop: Server
) -> None:
    page, _ = shop(browser, treadmill_shop)
    click_and_wait(page, f"#products li[data-item-id='{item(4)}']")
    click_and_wait(page, ".shop-name")
    assert recommended(page, "home")[0] == item(5)  # the next treadmill, before buying one
    click_and_wait(page, f"#products li[data-item-id='{item(4)}']")
    click_and_wait(page, "#buy-now")
    assert "Bought Product i04" in (page.locator("#notice-text").text_content() or "")
    assert not [i for i in recommended(page, "product") if int(i[1:]) < 10]
    click_and_wait(page, ".shop-name")
    home = recommended(page, "home")
    assert home and not [i for i in home if int(i[1:]) < 10]  # no treadmill any more
    assert 10 <= int(home[0][1:]) < 20  # running shoes first, and the page says why
    assert "goes with Product i04" in explained(page, "home")


@pytest.fixture
def pipeline_demo(home: Path) -> Iterator[Server]:
    """The demo page over a two-stage version (co-visitation and popularity, FTRL)."""
    from nextbest.models.store import save_version
    from nextbest.twostage.model import train_pipeline
    from nextbest.twostage.protocol import GeneratorSpec, PipelineSpec

    spec = PipelineSpec(
        (GeneratorSpec("covisit", 10), GeneratorSpec("pop", N_ITEMS)), "ftrl", ranker_share=0.3
    )
    model, _ = train_pipeline(spec, cyclic_sessions())
    save_version(model, home, {"model": "pipeline"})
    items = [{"item_id": item(j), "title": f"Product {item(j)}", "category_path": ["Things"]}
             for j in range(N_ITEMS)]  # fmt: skip
    yield from demo_server(home, items)


def test_the_product_page_shows_the_pipelines_list_and_why(
    browser: Any, pipeline_demo: Server
) -> None:
    page, _ = shop(browser, pipeline_demo)
    click_and_wait(page, f"#products li[data-item-id='{item(5)}']")
    shown = recommended(page, "next")
    assert shown and shown[0] == item(6)  # the walk goes on after 5
    because = page.locator("#recommendations-next li[data-item-id]").evaluate_all(
        "ls => ls.map(l => l.dataset.because || '')"
    )
    assert all(because)  # every item says which features moved it
    assert page.locator("#recommendations-next .because").first.is_visible()


def test_the_search_box_orders_matches_for_the_session_and_a_click_carries_the_query(
    browser: Any, demo: Server, demo_home: Path
) -> None:
    page, _ = shop(browser, demo)
    click_and_wait(page, f"#products li[data-item-id='{item(5)}']")  # the session views i05
    page.fill("#search-input", "  Product ")
    updates = int(page.locator("body").get_attribute("data-updates") or 0)
    page.press("#search-input", "Enter")
    page.wait_for_function(f"Number(document.body.dataset.updates || 0) > {updates}")
    assert page.locator("#page-search").is_visible()
    assert (page.locator("#search-query").text_content() or "") == "Product"
    found = recommended(page, "search")
    assert len(found) == 24 and found[0] == item(6)  # every product matches; i06 comes next
    listed = page.locator("#recommendations-search").get_attribute("data-recommendation-id")
    click_and_wait(page, f"#recommendations-search li[data-item-id='{item(6)}']")
    events = session_events(page, demo_home)
    assert [(e.type, e.item_id, e.query) for e in events] == [
        ("view", item(5), None),
        ("search", None, "Product"),
        ("view", item(6), "Product"),  # a click on a result names its query
    ]
    assert events[2].recommendation_id == listed and events[1].placement == "search"
    assert page.locator("#history li[data-type='search']").count() == 1
    # a query that matches nothing says so
    page.fill("#search-input", "kayak")
    updates = int(page.locator("body").get_attribute("data-updates") or 0)
    page.press("#search-input", "Enter")
    page.wait_for_function(f"Number(document.body.dataset.updates || 0) > {updates}")
    assert "No product matches" in (page.locator("#recommendations-search").text_content() or "")


@pytest.fixture
def keyword_demo(home: Path) -> Iterator[Server]:
    """The demo page over a version with a query graph (running shoes lead to "running
    shoe" and "socks")."""
    plant_query_graph(home)
    kinds = ["Treadmill", "Running shoe", "Coffee"]
    items = [{"item_id": item(j), "title": f"{kinds[j // 10]} {item(j)}",
              "category_path": ["Sports" if j < 20 else "Home", kinds[j // 10]]}
             for j in range(N_ITEMS)]  # fmt: skip
    # the planted "socks" lead to a running shoe's leaf: allow two keywords of one leaf
    placements = home / "placements.toml"
    placements.write_text(DEFAULT_FILE.read_text().replace("max_per_leaf = 1", "max_per_leaf = 2"))
    yield from demo_server(home, items, {"NEXTBEST_PLACEMENTS": str(placements)})


def test_product_page_card_keyword_click_personal_results_cart_attributed(
    browser: Any, keyword_demo: Server, home: Path
) -> None:
    """Product page -> keyword card -> a keyword click -> personalised results -> add to
    cart; the click is attributed to the card's recommendation id."""
    page, _ = shop(browser, keyword_demo)
    click_and_wait(page, f"#products li[data-item-id='{item(12)}']")
    assert page.locator("#keyword-card").is_visible()
    assert page.locator("#keyword-title").text_content() == "Ideas in Sports"
    offered = page.locator("#keywords button").evaluate_all("bs => bs.map(b => b.dataset.query)")
    assert offered[0] == "running shoe" and "socks" in offered and "coffee" not in offered
    why = page.locator("#keyword-why").text_content() or ""
    assert "Ordered by the meta-path recall" in why
    card_id = page.locator("#keyword-card").get_attribute("data-recommendation-id")
    click_and_wait(page, "#keywords button[data-query='running shoe']")
    assert page.locator("#page-search").is_visible()
    found = recommended(page, "search")
    # the running shoes but the one whose card was clicked, i13 (after i12) first
    assert sorted(found) == [item(j) for j in range(10, 20) if j != 12]
    assert found[0] == item(13)
    click_and_wait(page, f"#recommendations-search li[data-item-id='{item(13)}']")
    click_and_wait(page, "#add-to-cart")
    events = session_events(page, home)
    kinds = [(e.type, e.item_id, e.query) for e in events]
    assert kinds == [
        ("view", item(12), None),
        ("keyword-click", None, "running shoe"),
        ("search", None, "running shoe"),
        ("view", item(13), "running shoe"),
        ("cart", item(13), "running shoe"),
    ]
    assert events[1].recommendation_id == card_id
    admin = keyword_demo.client.get(f"/v1/recommendations/{card_id}", headers=auth(ADMIN))
    assert [o["type"] for o in admin.json()["outcomes"]] == ["keyword-click"]


def test_no_card_while_the_shopper_is_buying(browser: Any, keyword_demo: Server) -> None:
    page, _ = shop(browser, keyword_demo)
    click_and_wait(page, f"#products li[data-item-id='{item(12)}']")
    click_and_wait(page, "#add-to-cart")
    click_and_wait(page, ".shop-name")
    click_and_wait(page, f"#products li[data-item-id='{item(14)}']")
    assert not page.locator("#keyword-card").is_visible()
    assert "funnel" in (page.locator("#keyword-card").get_attribute("data-reason") or "")


def test_the_page_says_which_variant_answered_and_links_the_dashboard(
    browser: Any, home: Path
) -> None:
    (home / "experiments.toml").write_text(
        '[experiments.home-test]\nplacement = "home"\nsalt = "page"\n'
        "start = 2026-01-01T00:00:00Z\n\n"
        '[[experiments.home-test.variants]]\nname = "a"\ncontrol = true\nshare = 0.5\n\n'
        '[[experiments.home-test.variants]]\nname = "b"\nshare = 0.5\n'
    )
    items = [{"item_id": item(j), "title": f"Product {item(j)}", "category_path": ["Things"],
              "price": 10.0 + j} for j in range(N_ITEMS)]  # fmt: skip
    for server in demo_server(home, items):
        page, _ = shop(browser, server)
        variant = page.locator("#recommendations-home").get_attribute("data-variant")
        assert variant in ("a", "b")
        assert f"experiment home-test: variant {variant}" in (
            page.locator("#rec-version").text_content() or ""
        )
        assert page.locator("a.dashboard-link").get_attribute("href") == "/dashboard/"
