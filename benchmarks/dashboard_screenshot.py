"""The dashboard's picture in docs/images/dashboard.png: a server running the demo's A/B test
with shoppers visiting, the dashboard opened in headless Chromium, and a screenshot.

    NEXTBEST_HOME=.nextbest .venv/bin/python benchmarks/dashboard_screenshot.py \
        --experiment src/nextbest/data/demo_shop/experiments/models-on-product.toml \
        --shoppers 1500 --out docs/images/dashboard.png

Needs a trained demo home (`make demo` or `nextbest demo --no-serve`) and Debian's Chromium
(`make browser-deps`). The shoppers are the simulator's; the report on the page is theirs.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from nextbest.cli.simulate import rehearse

CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--shoppers", type=int, default=1500)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/images/dashboard.png"))
    args = parser.parse_args()
    from nextbest.cli import simulate as simulate_module

    opened: dict[str, str] = {}
    original = simulate_module._server

    def watched(env: dict[str, str], log_path: Path):  # type: ignore[no-untyped-def]
        """The simulator's server, its URL and admin key noted for the browser."""
        context = original(env, log_path)
        url = context.__enter__()
        opened.update(url=url, key=env["NEXTBEST_ADMIN_KEYS"])

        class Wrapped:
            def __enter__(self) -> str:
                return url

            def __exit__(self, *exc: object) -> None:
                shot.wait(600)  # the picture first
                context.__exit__(None, None, None)

        return Wrapped()

    shot = threading.Event()
    simulate_module._server = watched  # type: ignore[assignment]
    worker = threading.Thread(
        target=rehearse, args=(args.experiment, args.shoppers, args.home), daemon=True
    )
    worker.start()
    while "url" not in opened:
        time.sleep(0.5)
    time.sleep(40)  # shoppers under way: rates, latency and an experiment to draw
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(opened["url"] + "/dashboard/")
        page.fill("#admin-key", opened["key"])
        page.click("#key-form button")
        page.wait_for_selector("section.experiment table.results tbody tr", timeout=60_000)
        page.wait_for_function("document.body.dataset.loaded")
        before = page.evaluate("document.body.dataset.loaded")
        page.wait_for_function(f"document.body.dataset.loaded !== '{before}'")  # one more
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    shot.set()
    worker.join()
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
