"""The dashboard in headless Chromium: it asks for an admin key, draws the server's rates and
latency and an experiment's metrics with Plotly, and every number it shows is the report's."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from server_process import Server, free_port
from serving_helpers import ADMIN, READ, WRITE, auth, item

from nextbest.serving.dashboard import quantile

EXPERIMENT = """
[experiments.home-test]
placement = "home"
salt = "dash-1"
start = 2026-01-01T00:00:00Z

[[experiments.home-test.variants]]
name = "control"
control = true
share = 0.5

[[experiments.home-test.variants]]
name = "b"
share = 0.5
"""


def shop(server: Server, shoppers: int) -> None:
    """Shoppers who view, get the home list, and (every third) click and buy from it."""
    for k in range(shoppers):
        session = f"dash-{k}"
        server.events({"event_id": uuid.uuid4().hex, "type": "view", "session_id": session,
                       "item_id": item(k)})  # fmt: skip
        reply = server.client.get("/v1/recommendations", headers=auth(READ),
                                  params={"session_id": session, "placement": "home"})  # fmt: skip
        answer = reply.json()
        if k % 3 == 0:
            shown = answer["items"][0]["item_id"]
            server.events(
                {"event_id": uuid.uuid4().hex, "type": "click", "session_id": session,
                 "item_id": shown, "recommendation_id": answer["recommendation_id"]},
                {"event_id": uuid.uuid4().hex, "type": "purchase", "session_id": session,
                 "item_id": shown, "value": 20.0 + k},
            )  # fmt: skip


def test_the_dashboard_draws_live_data_and_shows_the_reports_numbers(
    browser: Any, home: Path, tmp_path: Path
) -> None:
    (home / "experiments.toml").write_text(EXPERIMENT)
    server = Server(home, free_port(), {"NEXTBEST_REFRESH_SECONDS": "0.5"}, "dashboard.log")
    try:
        shop(server, 40)
        time.sleep(1.5)  # a few samples of the rates after the traffic
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.goto(f"{server.url}/dashboard/")
        page.fill("#admin-key", WRITE)  # not an admin key: asked again, and told why
        page.click("#key-form button")
        page.wait_for_selector("#status:has-text('not an admin key')")
        page.fill("#admin-key", ADMIN)
        page.click("#key-form button")
        page.wait_for_selector("#experiment-home-test table.results tbody tr")
        page.wait_for_function("document.body.dataset.loaded")
        report = server.client.get("/v1/experiments/home-test/report", headers=auth(ADMIN)).json()
        shown = page.locator("#experiment-home-test table.results tbody tr").evaluate_all(
            "rows => rows.map(r => ({metric: r.dataset.metric, variant: r.dataset.variant,"
            " values: Array.from(r.cells).map(c => c.dataset.value),"
            " texts: Array.from(r.cells).map(c => c.textContent)}))"
        )
        assert len(shown) == len(report["results"]) == 3
        for row, result in zip(shown, report["results"], strict=True):
            assert (row["metric"], row["variant"]) == (result["metric"], result["variant"])
            values = row["values"]
            assert float(values[2]) == result["control_value"]
            assert float(values[3]) == result["variant_value"]
            assert values[5] == f"{result['low']},{result['high']}"
            assert float(values[6]) == result["p_always_valid"] and values[7] == result["verdict"]
            # ... and the text shown says the same, to its 3 or 4 digits
            texts = row["texts"]
            assert float(texts[2]) == pytest.approx(result["control_value"], rel=1e-3)
            assert float(texts[6]) == pytest.approx(result["p_always_valid"], rel=5e-3)
        totals = page.locator("#experiment-home-test table.totals tbody tr").evaluate_all(
            "rows => rows.map(r => Array.from(r.cells).map(c => c.dataset.value || c.textContent))"
        )
        assert {r[0]: [float(v) for v in r[1:]] for r in totals} == {
            v: [t[m] for m in ("users", "impressions", "clicks", "carts", "purchases", "revenue")]
            for v, t in report["totals"].items()
        }
        assert sum(t["users"] for t in report["totals"].values()) == 40
        # the charts hold the live series: Plotly keeps each chart's data on its element
        rates = page.evaluate("document.getElementById('rates').data[1].y")
        assert max(v for v in rates if v is not None) > 0  # lists per second
        latency = page.evaluate("document.getElementById('latency').data[2].y")
        assert any(v is not None and v > 0 for v in latency)  # a p99
        charts = page.locator("#experiment-home-test .chart .main-svg").count()
        assert charts >= 3  # one per metric
        overflow = page.evaluate(
            "Array.from(document.querySelectorAll('.charts .chart')).map(c =>"
            " c.querySelector('.main-svg').getBoundingClientRect().width"
            " - c.parentElement.getBoundingClientRect().width)"
        )
        assert max(overflow) <= 1  # each chart fits its cell (none drawn past the next one)
        assert page.locator("#models tbody tr").count() == 1
        operations = page.locator("#operations tbody tr").evaluate_all(
            "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))"
        )
        assert [r[:2] for r in operations] == [
            ["learned ranker", "no lists yet"],  # this server's model has no learned ranker
            ["feature store", "not configured"],  # and it has no Redis
            ["event bus", "off"],
        ]
        formatted = page.evaluate(
            "[7.12e-10, 0.25, 100, 4.64e-104, 0.0343].map(v => nextbestDashboard.number(v, 3))"
        )
        assert formatted == ["7.12e-10", "0.25", "100", "4.64e-104", "0.0343"]
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 30_000  # charts and tables, not a blank page
    finally:
        server.stop()


def test_the_dashboard_data_takes_the_admin_key_only(client: Any) -> None:
    assert client.get("/v1/dashboard", headers=auth(READ)).status_code == 403
    reply = client.get("/v1/dashboard", headers=auth(ADMIN))
    assert reply.status_code == 200
    assert reply.json()["models"][0]["serves"] == "answering"
    assert client.get("/dashboard/plotly.min.js").status_code == 200  # the page needs no key


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        ([(0.001, 0.0), (0.002, 10.0), (float("inf"), 10.0)], 0.5, 0.0015),
        ([(0.001, 5.0), (0.002, 10.0), (float("inf"), 10.0)], 0.99, 0.00198),
        ([(0.001, 0.0), (0.002, 0.0), (float("inf"), 4.0)], 0.5, 0.002),  # past the last bound
        ([(0.001, 0.0), (float("inf"), 0.0)], 0.5, None),
    ],
)
def test_percentiles_are_read_off_the_histogram_as_prometheus_does(
    buckets: list[tuple[float, float]], q: float, expected: float | None
) -> None:
    found = quantile(buckets, q)
    assert found == (None if expected is None else pytest.approx(expected))
