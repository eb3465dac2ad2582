"""The demo shop: a seeded, realistic synthetic shop, nextbest's embedded default dataset.

    from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop, write_demo_shop

    shop = generate_demo_shop(DemoShopConfig(seed=7, n_events=1_000_000))
    write_demo_shop(shop, "demo-shop/")

What it plants (category tree, complements, durables and consumables, users' tastes, session
intents, searches, a day/night rhythm, and returning users who come back to what they compared)
is described in docs/demo-shop.md; the fixed world is in `taxonomy.py`.
"""

from nextbest.data.demo_shop.config import DemoShopConfig
from nextbest.data.demo_shop.generator import DemoShop, generate_demo_shop
from nextbest.data.demo_shop.writer import split_demo_shop, write_demo_shop

__all__ = [
    "DemoShop",
    "DemoShopConfig",
    "generate_demo_shop",
    "split_demo_shop",
    "write_demo_shop",
]
