"""The demo shop's seasonal need: off by default (the log unchanged), and when planted, its
leaves (across top categories) take a share of the season's sessions."""

from __future__ import annotations

import pytest

from nextbest.data.demo_shop import DemoShopConfig, generate_demo_shop
from nextbest.data.demo_shop.generator import seasonal_shares
from nextbest.data.demo_shop.taxonomy import SEASON_LEAVES

SMALL = {"n_events": 100_000, "n_users": 1_000}


def test_without_a_season_the_log_is_the_default_shops() -> None:
    default = generate_demo_shop(DemoShopConfig(**SMALL))  # type: ignore[arg-type]
    other_days = generate_demo_shop(DemoShopConfig(**SMALL, season_days=3))  # type: ignore[arg-type]
    assert default.events.equals(other_days.events)


def test_a_planted_season_draws_its_sessions_to_its_leaves() -> None:
    shop = generate_demo_shop(DemoShopConfig(**SMALL, season_share=0.4, season_days=7))  # type: ignore[arg-type]
    before, during = seasonal_shares(shop)
    assert during > 2.5 * before
    tops = {path.split(" > ")[0] for path in shop.items["category_path"].unique().to_list()
            if path.split(" > ")[-1] in SEASON_LEAVES}  # fmt: skip
    assert len(tops) >= 3  # a need across categories


@pytest.mark.parametrize(("field", "value"), [("season_share", 1.5), ("season_days", 0)])
def test_a_bad_season_is_named(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"DemoShopConfig.{field}"):
        DemoShopConfig(**{field: value})  # type: ignore[arg-type]
