"""Affinity profiles: shares in [0, 1], decay, action weights, eviction, price bands, discount
sensitivity, and the bytes they are stored as."""

from __future__ import annotations

import pytest

from nextbest.events.schema import Item
from nextbest.recommend.affinity import (
    ATTRIBUTES,
    MAX_VALUES,
    RESCALE_EXPONENT,
    SESSION_HALF_LIFE,
    Affinity,
    Facets,
    ItemFacets,
    decode,
    describe,
    encode,
    price_bands,
)

DAY = 86_400.0


def facets(
    brand: str,
    category: str = "Sports > Running > Shoes",
    band: str = "mid",
    discounted: bool = False,
) -> Facets:
    parts = category.split(" > ")
    return Facets((brand, parts[0], " > ".join(parts[:2]), category, band), discounted)


def test_scores_are_shares_and_a_purchase_outweighs_views() -> None:
    profile = Affinity()
    for t in range(3):
        profile.add(facets("Viewed"), "view", 100.0 + t, DAY)
    profile.add(facets("Bought"), "purchase", 104.0, DAY)
    brands = dict(profile.top("brand"))
    assert brands["Bought"] > brands["Viewed"]  # 5 against 3 views
    assert sum(brands.values()) == pytest.approx(1.0)
    assert all(0.0 <= s <= 1.0 for a in ATTRIBUTES for s in profile.scores(a).values())
    assert profile.top("category_1") == [("Sports", pytest.approx(1.0))]
    assert not profile.add(facets("Removed"), "remove-from-cart", 105.0, DAY)
    assert "Removed" not in dict(profile.top("brand"))


def test_older_events_weigh_less_by_the_half_life() -> None:
    profile = Affinity()
    profile.add(facets("Old"), "view", 0.0, DAY)
    profile.add(facets("New"), "view", DAY, DAY)  # one half-life later: twice the weight
    brands = dict(profile.top("brand"))
    assert brands["New"] == pytest.approx(2 / 3) and brands["Old"] == pytest.approx(1 / 3)


def test_the_weights_are_rescaled_before_they_overflow_and_keep_their_shares() -> None:
    profile = Affinity()
    profile.add(facets("A"), "view", 0.0, 1.0)
    profile.add(facets("B"), "view", 1.0, 1.0)
    profile.add(facets("C"), "view", 1.0 + 2 * RESCALE_EXPONENT, 1.0)  # far later
    assert profile.anchor == 1.0 + 2 * RESCALE_EXPONENT
    assert max(profile.totals) < 2.0  # back near one event's weight
    brands = dict(profile.top("brand"))
    assert brands["C"] == pytest.approx(1.0, abs=1e-9) and brands["B"] < 1e-15


def test_each_attribute_keeps_its_heaviest_values_and_the_shares_stay_honest() -> None:
    profile = Affinity()
    profile.add(facets("Heavy"), "purchase", 0.0, DAY)
    for k in range(MAX_VALUES + 5):
        profile.add(facets(f"Light{k}"), "view", 1.0, DAY)
    kept = dict(profile.top("brand", 100))
    assert len(kept) == MAX_VALUES and "Heavy" in kept
    # the values pushed out still count in the total: the kept shares sum below one
    assert sum(kept.values()) < 1.0
    assert kept["Heavy"] == pytest.approx(5 / (5 + MAX_VALUES + 5), rel=1e-4)  # 1 s of decay


def test_discount_sensitivity_is_neutral_at_the_catalogs_share_and_moves_with_behaviour() -> None:
    base = 0.2
    assert Affinity().discount_sensitivity(base) == pytest.approx(0.5)
    hunter, avoider = Affinity(), Affinity()
    for t in range(20):
        hunter.add(facets("X", discounted=True), "view", float(t), DAY)
        avoider.add(facets("X", discounted=False), "view", float(t), DAY)
    assert hunter.discount_sensitivity(base) > 0.9
    assert avoider.discount_sensitivity(base) < 0.1
    one_click = Affinity()
    one_click.add(facets("X", discounted=True), "view", 0.0, DAY)
    assert 0.5 < one_click.discount_sensitivity(base) < hunter.discount_sensitivity(base)
    mixed = Affinity()
    for t in range(50):  # discounted exactly as often as the catalog
        mixed.add(facets("X", discounted=t % 5 == 0), "view", 0.0, DAY)
    assert mixed.discount_sensitivity(base) == pytest.approx(0.5, abs=0.01)


def test_a_profile_survives_its_bytes() -> None:
    profile = Affinity()
    for t, brand in enumerate(["Ä-brand", "B", "C", "B"]):
        profile.add(facets(brand, discounted=t % 2 == 0), "cart", float(t), SESSION_HALF_LIFE)
    profile.rebuilt_through = 42
    back = decode(encode(profile))
    assert back.rebuilt_through == 42 and back.events == 4
    for attribute in ATTRIBUTES:
        assert back.top(attribute) == [
            (v, pytest.approx(s, rel=1e-6)) for v, s in profile.top(attribute)
        ]
    assert back.discount_sensitivity(0.3) == pytest.approx(profile.discount_sensitivity(0.3))
    assert decode(b"").empty and decode(None).empty and decode(b"XYZ-other").empty
    answer = describe(back, 0.3, n=2)
    assert [entry["value"] for entry in answer["brand"]] == ["B", "C"]  # type: ignore[index]


def test_price_bands_are_fifths_of_the_items_category() -> None:
    shoes = [
        Item(item_id=f"s{k}", category_path=("Shoes",), price=10.0 * (k + 1)) for k in range(10)
    ]
    rare = [Item(item_id="r0", category_path=("Rare",), price=55.0)]  # too few: banded catalog-wide
    bands = price_bands([*shoes, *rare])
    assert [bands[f"s{k}"] for k in range(10)] == [
        "budget", "budget", "low", "low", "mid", "mid", "high", "high", "premium", "premium"
    ]  # fmt: skip
    assert bands["r0"] == "mid"
    table = ItemFacets.build(
        [*shoes, Item(item_id="d", category_path=("A", "B"), price=1.0, discount=0.3)]
    )
    assert table.discount_base == pytest.approx(1 / 11)
    found = table.get("d")
    assert found is not None and found.values[:4] == (None, "A", "A > B", "A > B")
    assert found.discounted is True
    assert table.get("nope") is None
    no_price = ItemFacets.build([Item(item_id="n", brand="Z")]).get("n")
    assert no_price is not None and no_price.discounted is None and no_price.values[4] is None
