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

import httpx
import polars as pl
import pytest
from server_process import Server, free_port
from serving_helpers import ADMIN, N_ITEMS, READ, WRITE, auth, item

from nextbest.events.log import open_event_log, sqlite_url
from nextbest.events.schema import ITEM_SCHEMA

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def browser() -> Iterator[Any]:
    reason = None
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM}: run `make browser-deps`"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "the playwright package is not installed"
    if reason:
        if os.environ.get("NEXTBEST_REQUIRE_BACKENDS") == "1":
            pytest.fail(f"{reason} (NEXTBEST_REQUIRE_BACKENDS=1 forbids skipping)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=FLAGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def demo(home: Path) -> Iterator[Server]:
    server = Server(home, free_port(), {"NEXTBEST_DEMO": "1"}, "demo.log")
    items = [{"item_id": item(j), "title": f"Product {item(j)}", "category_path": ["Things"]}
             for j in range(N_ITEMS)]  # fmt: skip
    server.client.put("/v1/items", json={"items": items}, headers=auth(ADMIN)).raise_for_status()
    yield server
    server.stop()


def recommended(page: Any) -> list[str]:
    return list(
        page.locator("#recommendations li").evaluate_all("ls => ls.map(l => l.dataset.itemId)")
    )


def click_and_wait(page: Any, selector: str) -> None:
    updates = int(page.locator("body").get_attribute("data-updates") or 0)
    page.click(selector)
    page.wait_for_function(f"Number(document.body.dataset.updates || 0) > {updates}")


def test_recommendations_follow_every_click(browser: Any, demo: Server, home: Path) -> None:
    page = browser.new_page()
    page.goto(demo.url + "/")
    page.wait_for_selector("#products li")
    page.wait_for_function("Number(document.body.dataset.updates || 0) >= 1")
    click_and_wait(page, f"#products li[data-item-id='{item(5)}']")
    assert recommended(page)[0] == item(6)
    click_and_wait(page, "#buy")  # buying the product on screen
    assert item(5) not in recommended(page)
    first = recommended(page)[0]
    click_and_wait(page, "#recommendations li:first-child")
    assert recommended(page)[0] == item(int(first[1:]) + 1)
    assert page.locator("#history li").count() == 3
    session = page.locator("#session").text_content()
    log = open_event_log(sqlite_url(home))
    try:
        events = log.session_events([session or ""], last=10)[session or ""]
    finally:
        log.close()
    assert [(e.type, e.item_id) for e in events] == [
        ("view", item(5)),
        ("purchase", item(5)),
        ("view", first),
    ]
    assert events[2].recommendation_id and events[0].placement == "demo"


def test_the_sdk_retries_with_the_same_ids_and_flushes_on_page_hide(
    browser: Any, demo: Server, home: Path
) -> None:
    page = browser.new_page()
    page.goto(demo.url + "/demo/config.json")
    page.add_script_tag(url="/sdk/nextbest.js")
    sent: list[str] = []

    def flaky(route: Any) -> None:
        sent.append(route.request.post_data)
        if len(sent) < 3:
            route.fulfill(status=503, body="{}")
        else:
            route.continue_()

    page.route("**/v1/events", flaky)
    page.evaluate(
        """key => {
            window.nb = Nextbest.init({writeKey: key, flushInterval: 50, retryBase: 20});
            nb.track("view", {item_id: "i03"});
            nb.track("cart", {item_id: "i03"});
        }""",
        WRITE,
    )
    page.wait_for_function("nb.queue.length === 0 && !nb.sending", timeout=10_000)
    assert len(sent) == 3 and sent[0] == sent[1] == sent[2]  # the same events, ids and all
    page.unroute("**/v1/events")
    page.evaluate(
        """() => {
            window.later = Nextbest.init({writeKey: nb.options.writeKey, flushInterval: 600000});
            later.track("view", {item_id: "i07"});
            window.dispatchEvent(new Event("pagehide"));
        }"""
    )
    page.wait_for_function("later.queue.length === 0 && !later.sending", timeout=10_000)
    session = page.evaluate("nb.sessionId()")
    log = open_event_log(sqlite_url(home))
    try:
        events = log.session_events([session], last=10)[session]
    finally:
        log.close()
    assert [(e.type, e.item_id) for e in events] == [
        ("view", "i03"),
        ("cart", "i03"),
        ("view", "i07"),
    ]


def test_the_sdk_logs_in_and_out(browser: Any, demo: Server, home: Path) -> None:
    page = browser.new_page()
    page.goto(demo.url + "/demo/config.json")
    page.add_script_tag(url="/sdk/nextbest.js")
    reply = page.evaluate(
        """async key => {
            window.nb = Nextbest.init({writeKey: key, flushInterval: 50});
            nb.track("view", {item_id: "i03"});  // anonymous, then the login
            const answer = await nb.identify("u-browser");
            nb.track("view", {item_id: "i04"});
            await nb.drain();
            window.before = nb.sessionId();
            await nb.logout();
            nb.track("view", {item_id: "i05"});
            await nb.drain();
            return answer;
        }""",
        WRITE,
    )
    assert reply == {"session_id": page.evaluate("before"), "user_id": "u-browser", "events": 1}
    before, after = page.evaluate("before"), page.evaluate("nb.sessionId()")
    assert before != after  # a logout starts a new session
    log = open_event_log(sqlite_url(home))
    try:
        owners = log.session_owners([before, after])
        events = log.session_events([before, after], last=10)
    finally:
        log.close()
    assert owners == {before: "u-browser"}  # the new session is anonymous
    assert [(e.item_id, e.user_id) for e in events[before]] == [("i03", None), ("i04", "u-browser")]
    assert [(e.item_id, e.user_id) for e in events[after]] == [("i05", None)]


# what `nextbest demo` runs once the models are trained (tests/test_demo.py checks that it does)
SERVE_DEMO = (
    "import sys, pathlib, nextbest.serving.demo as demo; "
    "demo.serve_demo(pathlib.Path(sys.argv[1]), int(sys.argv[2]))"
)
KEY_SETTINGS = {
    "NEXTBEST_WRITE_KEYS",
    "NEXTBEST_READ_KEYS",
    "NEXTBEST_ADMIN_KEYS",
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
    assert config == {"writeKey": keys["write"], "readKey": keys["read"]}
    page = browser.new_page()
    page.goto(served_demo + "/")  # redirected to /demo/
    assert page.url == served_demo + "/demo/"
    page.wait_for_selector("#products li")
    page.wait_for_function("Number(document.body.dataset.updates || 0) >= 1")
    assert page.locator(f"#products li[data-item-id='{item(5)}']").text_content() == (
        f"Demo product {item(5)}"
    )  # the catalog comes from the demo shop's items.csv
    click_and_wait(page, f"#products li[data-item-id='{item(5)}']")
    assert recommended(page)[0] == item(6)
    session = page.locator("#session").text_content() or ""
    params = {"session_id": session, "n": 3}
    reply = httpx.get(
        served_demo + "/v1/recommendations", params=params, headers=auth(keys["read"])
    )
    assert reply.status_code == 200 and reply.json()["items"][0]["item_id"] == item(6)
    refused = httpx.get(served_demo + "/v1/recommendations", params=params, headers=auth(READ))
    assert refused.status_code == 401  # only the demo's own keys are served
