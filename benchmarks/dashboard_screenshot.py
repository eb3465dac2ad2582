"""The dashboard's picture in docs/images/dashboard.png: the demo's A/B test rehearsed with
simulated shoppers (`nextbest simulate`), then, before its server stops, the dashboard
opened in headless Chromium and photographed.

    NEXTBEST_HOME=.nextbest .venv/bin/python benchmarks/dashboard_screenshot.py \
        --experiment src/nextbest/data/demo_shop/experiments/models-on-product.toml \
        --shoppers 1500 --out docs/images/dashboard.png

Needs a trained demo home (`make demo` or `nextbest demo --no-serve`) and Debian's Chromium
(`make browser-deps`). The page shows the last hour of the server: the shoppers' visits.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nextbest.cli.simulate import rehearse

CHROMIUM = "/usr/bin/chromium"


def photograph(url: str, admin_key: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(url + "/dashboard/")
        page.fill("#admin-key", admin_key)
        page.click("#key-form button")
        page.wait_for_selector("section.experiment table.results tbody tr", timeout=60_000)
        page.wait_for_function("document.body.dataset.loaded")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", type=Path, required=True)
    parser.add_argument("--shoppers", type=int, default=1500)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/images/dashboard.png"))
    args = parser.parse_args()
    rehearse(args.experiment, args.shoppers, args.home,
             before_stop=lambda url, key: photograph(url, key, args.out))  # fmt: skip
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
