"""The browser SDK in headless Chromium: retries, logins with user tokens, consent and Global
Privacy Control, the ES module build, a page change mid-queue, the page-hide flush's split,
offline then online, read timeouts. (The demo page's own tests are in test_demo_page.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from server_process import Server
from serving_helpers import BROWSER, WRITE

from nextbest.events.log import open_event_log, sqlite_url


# conftest's module-scoped demo server serves every test here (each test has its own browser
# context, so its own session and storage); `home` is its data folder.
@pytest.fixture(scope="module")
def home(demo_home: Path) -> Path:
    return demo_home


def sdk_page(browser: Any, demo: Server) -> Any:
    """A new page (its own context: cookies and storage) of the server's origin, with the
    classic SDK build loaded."""
    page = browser.new_page()
    page.goto(demo.url + "/demo/config.json")
    page.add_script_tag(url="/sdk/nextbest.js")
    return page


def test_the_sdk_retries_with_the_same_ids_and_flushes_on_page_hide(
    browser: Any, demo: Server, home: Path
) -> None:
    page = sdk_page(browser, demo)
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


def test_the_sdk_logs_in_and_out_with_a_user_token(browser: Any, demo: Server, home: Path) -> None:
    page = sdk_page(browser, demo)
    reply = page.evaluate(
        """async key => {
            window.errors = [];
            window.nb = Nextbest.init({key, flushInterval: 50, maxRetries: 0,
                                       onError: e => errors.push(e.error)});
            nb.track("view", {item_id: "i03"});  // anonymous, then the login
            let unproven = null;
            try { await nb.identify("u-browser"); } catch (e) { unproven = e.error; }
            const login = await (await fetch("/demo/login?user_id=u-browser",
                                              {method: "POST"})).json();
            const answer = await nb.identify(login.user_id, login.token);
            nb.track("view", {item_id: "i04"});
            await nb.drain();
            const mine = await nb.recommend({n: 2});  // the session is the user's: token sent
            window.before = nb.sessionId();
            await nb.logout();
            nb.track("view", {item_id: "i05"});
            await nb.drain();
            return {answer, unproven, listed: mine.items.length};
        }""",
        BROWSER,
    )
    assert reply["unproven"] == "user not proven"  # a browser key names no user by itself
    assert reply["listed"] == 2
    assert reply["answer"] == {
        "session_id": page.evaluate("before"), "user_id": "u-browser", "events": 1,
    }  # fmt: skip
    before, after = page.evaluate("before"), page.evaluate("nb.sessionId()")
    assert before != after  # a logout starts a new session
    assert page.evaluate("nb.options.userToken") == ""  # and forgets the token
    log = open_event_log(sqlite_url(home))
    try:
        owners = log.session_owners([before, after])
        events = log.session_events([before, after], last=10)
    finally:
        log.close()
    assert owners == {before: "u-browser"}  # the new session is anonymous
    assert [(e.item_id, e.user_id) for e in events[before]] == [("i03", None), ("i04", "u-browser")]
    assert [(e.item_id, e.user_id) for e in events[after]] == [("i05", None)]


def test_the_sdk_waits_for_consent_and_then_sends_what_waited(
    browser: Any, demo: Server, home: Path
) -> None:
    page = sdk_page(browser, demo)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    listed = page.evaluate(
        """async key => {
            window.nb = Nextbest.init({key, consent: "pending", flushInterval: 50,
                                       cookieSameSite: "Strict"});
            nb.track("view", {item_id: "i03"});
            window.dispatchEvent(new Event("pagehide"));  // the page-hide flush waits too
            await new Promise(done => setTimeout(done, 300));
            await nb.drain();
            return (await nb.recommend({n: 2})).items.length;  // lists work meanwhile
        }""",
        BROWSER,
    )
    assert listed == 2
    assert not [url for url in asked if "/v1/events" in url]  # nothing sent
    assert not [url for url in asked if "session_id" in url]  # nor the session named
    assert "nb_sid" not in {cookie["name"] for cookie in page.context.cookies()}
    page.evaluate("nb.grantConsent()")
    page.wait_for_function("nb.queue.length === 0 && !nb.sending", timeout=10_000)
    cookie = next(c for c in page.context.cookies() if c["name"] == "nb_sid")
    assert cookie["sameSite"] == "Strict"
    session = cookie["value"]
    log = open_event_log(sqlite_url(home))
    try:
        assert [(e.type, e.item_id) for e in log.session_events([session], 10)[session]] == [
            ("view", "i03")
        ]
    finally:
        log.close()
    sent_before = len([url for url in asked if "/v1/events" in url])
    page.evaluate(
        """async () => { nb.revokeConsent(); nb.track("view", {item_id: "i04"});
                          await nb.drain(); }"""
    )
    assert len([url for url in asked if "/v1/events" in url]) == sent_before
    assert "nb_sid" not in {cookie["name"] for cookie in page.context.cookies()}


def test_the_sdk_honours_global_privacy_control(browser: Any, demo: Server) -> None:
    context = browser.new_context()
    context.add_init_script(
        "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})"
    )
    page = context.new_page()
    page.goto(demo.url + "/demo/config.json")
    page.add_script_tag(url="/sdk/nextbest.js")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.evaluate(
        """async key => {
            window.nb = Nextbest.init({key, flushInterval: 50});
            nb.track("view", {item_id: "i03"});
            await nb.drain();
            window.told = Nextbest.init({key, flushInterval: 50,
                                         respectGlobalPrivacyControl: false});
        }""",
        BROWSER,
    )
    assert not [url for url in asked if "/v1/events" in url]
    assert "nb_sid" not in {cookie["name"] for cookie in context.cookies()}
    page.evaluate("""async () => { told.track("view", {item_id: "i04"}); await told.drain(); }""")
    assert len([url for url in asked if "/v1/events" in url]) == 1  # the shop overrode it
    context.close()


def logged(home: Path, session: str) -> list[tuple[str, str | None]]:
    log = open_event_log(sqlite_url(home))
    try:
        return [(e.event_id, e.item_id) for e in log.session_events([session], 1000)[session]]
    finally:
        log.close()


def test_the_es_module_build_works_as_the_classic_one(
    browser: Any, demo: Server, home: Path
) -> None:
    page = browser.new_page()
    page.goto(demo.url + "/demo/config.json")
    page.add_script_tag(
        type="module",
        content="""import Nextbest, { init, version } from "/sdk/nextbest.mjs";
            window.esm = { init, version, same: Nextbest.init === init };""",
    )
    page.wait_for_function("window.esm !== undefined")
    reply = page.evaluate(
        """async key => {
            const nb = esm.init({key, flushInterval: 50});
            const id = nb.track("view", {item_id: "i03"});
            const list = await nb.recommend({n: 3});  // after the queued event is sent
            return {id, session: nb.sessionId(), version: esm.version, same: esm.same,
                    list};
        }""",
        BROWSER,
    )
    assert reply["same"] and reply["version"] == "0.1.0"
    assert logged(home, reply["session"]) == [(reply["id"], "i03")]
    items = reply["list"]["items"]
    assert reply["list"]["recommendation_id"] and len(items) == 3
    assert all(entry["item_id"] and entry["reason"] for entry in items)


def test_a_page_change_mid_queue_loses_nothing(browser: Any, demo: Server, home: Path) -> None:
    page = browser.new_page()
    page.goto(demo.url + "/demo/config.json")
    page.route("**/v1/events", lambda route: route.abort())  # even the page-hide flush fails
    page.add_script_tag(url="/sdk/nextbest.js")
    ids = page.evaluate(
        """key => {
            window.nb = Nextbest.init({key, flushInterval: 600000, batchSize: 1000});
            return [1, 2, 3].map(k => nb.track("view", {item_id: "i0" + k}));
        }""",
        BROWSER,
    )
    session = page.evaluate("nb.sessionId()")
    page.goto(demo.url + "/demo/catalog.json")  # the next page: pagehide, then a new document
    page.unroute("**/v1/events")
    page.add_script_tag(url="/sdk/nextbest.js")
    page.evaluate("key => { window.nb = Nextbest.init({key, flushInterval: 50}); }", BROWSER)
    page.wait_for_function("nb.queue.length === 0 && !nb.sending", timeout=10_000)
    assert logged(home, session) == [(i, f"i0{k}") for k, i in enumerate(ids, start=1)]
    assert page.evaluate("localStorage.length") == 0  # nothing left behind


def test_the_page_hide_flush_splits_what_it_holds_into_requests_that_fit(
    browser: Any, demo: Server, home: Path
) -> None:
    page = sdk_page(browser, demo)
    bodies: list[int] = []
    page.on(
        "request",
        lambda r: bodies.append(len(r.post_data or "")) if r.url.endswith("/v1/events") else None,
    )
    session = page.evaluate(
        """key => {
            window.errors = [];
            window.nb = Nextbest.init({key, flushInterval: 600000, batchSize: 1000,
                                       onError: e => errors.push(e.error)});
            const note = "x".repeat(100);  // about 600 bytes an event: 240 KB in all
            const context = {a: note, b: note, c: note, d: note};
            for (let k = 0; k < 400; k++) nb.track("view", {item_id: "i0" + (k % 10), context});
            window.dispatchEvent(new Event("pagehide"));
            return nb.sessionId();
        }""",
        BROWSER,
    )
    page.wait_for_function("nb.queue.length === 0 || errors.length", timeout=10_000)
    assert page.evaluate("errors") == []
    assert len(bodies) >= 4 and max(bodies) < 64_000  # the keepalive budget, per request
    assert len(logged(home, session)) == 400


def test_offline_then_online_resends(browser: Any, demo: Server, home: Path) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(demo.url + "/demo/config.json")
    page.add_script_tag(url="/sdk/nextbest.js")
    context.set_offline(True)
    page.evaluate(
        """key => {
            window.errors = [];
            window.nb = Nextbest.init({key, flushInterval: 50, retryBase: 100,
                                       onError: e => errors.push(e.error)});
            window.id = nb.track("view", {item_id: "i04"});
        }""",
        BROWSER,
    )
    page.wait_for_function("nb.attempt >= 1", timeout=10_000)  # it tried, and failed
    context.set_offline(False)
    page.wait_for_function("nb.queue.length === 0 && !nb.sending", timeout=20_000)
    session, event_id = page.evaluate("nb.sessionId()"), page.evaluate("id")
    assert logged(home, session) == [(event_id, "i04")]
    assert page.evaluate("errors") == []  # retried, not given up
    context.close()


def test_a_read_gives_up_after_its_timeout_and_reports_once(browser: Any, demo: Server) -> None:
    page = sdk_page(browser, demo)
    page.route("**/v1/recommendations*", lambda route: None)  # never answered
    reply = page.evaluate(
        """async key => {
            const errors = [];
            const nb = Nextbest.init({key, timeout: 300, onError: e => errors.push(e.error)});
            const started = Date.now();
            let failed = null;
            try { await nb.recommend({n: 2}); } catch (e) { failed = e.error; }
            await new Promise(done => setTimeout(done, 200));
            return {failed, errors, waited: Date.now() - started};
        }""",
        BROWSER,
    )
    assert reply["failed"] == "no answer in 300 ms"
    assert reply["errors"] == ["no answer in 300 ms"]  # onError heard it once
    assert 300 <= reply["waited"] < 3000
