"""The attribute-similar generator: same category first, then brand and price nearness, then
popularity; sibling categories when the category is small; works for an item no model knows."""

from __future__ import annotations

import polars as pl

from nextbest.evaluation.placement import StaticCounts
from nextbest.events.schema import Item, conform_events
from nextbest.recommend.context import Context, Query
from nextbest.recommend.items import ItemTable
from nextbest.recommend.retrieval.attributes import AttributeSimilar
from nextbest.serving.live import fresh_record


def shoe(item_id: str, brand: str, price: float, leaf: str = "Shoes") -> Item:
    return Item(
        item_id=item_id, title=item_id, category_path=("Sports", leaf), brand=brand, price=price
    )


CATALOG = [
    shoe("anchor", "Peak", 100.0),
    shoe("peak-near", "Peak", 105.0),
    shoe("peak-far", "Peak", 400.0),
    shoe("other-near", "Stride", 100.0),
    shoe("other-popular", "Stride", 300.0),
    shoe("twin-a", "Stride", 200.0),
    shoe("twin-b", "Stride", 200.0),
    shoe("sock", "Peak", 100.0, leaf="Socks"),  # a sibling category
    Item(item_id="pan", category_path=("Home", "Pans"), brand="Peak", price=100.0),
]


def generate(item_id: str, k: int, views: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    table = ItemTable.build(None, {item.item_id: item for item in CATALOG})  # no model at all
    events = conform_events(
        pl.DataFrame(
            {
                "event_id": [f"e{n}" for n in range(len(views))],
                "type": ["view"] * len(views),
                "session_id": ["x"] * len(views),
                "item_id": list(views),
                "timestamp": [float(n) for n in range(len(views))],
            },
            schema_overrides={"item_id": pl.String},
        )
    )
    ctx = Context(
        Query(placement="product", item_id=item_id), None, table, fresh_record(None),
        StaticCounts(events), now=0.0,
    )  # fmt: skip
    found = AttributeSimilar().generate(ctx, k)
    assert all(reason.startswith("like anchor") for reason in found.reasons)
    return [str(table.ids[row]) for row in found.rows]


def test_same_brand_near_in_price_comes_first_and_the_anchor_never() -> None:
    ranked = generate("anchor", 10)
    assert ranked[0] == "peak-near"
    assert "anchor" not in ranked and "pan" not in ranked  # another parent category
    assert ranked.index("other-near") < ranked.index("other-popular")  # nearer in price
    assert ranked[-1] == "sock"  # a sibling category fills in after the category's own


def test_popularity_orders_what_the_attributes_leave_close() -> None:
    quiet = generate("anchor", 10, views=["twin-a"] * 5)
    busy = generate("anchor", 10, views=["twin-a"] * 5 + ["twin-b"] * 50)
    assert quiet.index("twin-a") < quiet.index("twin-b")
    assert busy.index("twin-b") < busy.index("twin-a")


def test_a_full_category_needs_no_siblings_and_k_is_kept() -> None:
    assert generate("anchor", 2) == ["peak-near", "peak-far"]  # the brand outweighs the price


def test_an_item_without_a_category_gets_nothing() -> None:
    CATALOG.append(Item(item_id="loose", brand="Peak"))
    try:
        assert generate("loose", 5) == []
    finally:
        CATALOG.pop()


def test_a_placement_can_use_it_by_its_source_name() -> None:
    from nextbest.recommend.placements import parse_placements

    raw = {"placements": {"like": {"needs": ["item_id"], "generators": [{"source": "attributes"}]}}}
    placement = parse_placements(raw, "test")["like"]
    assert [stage.label for stage in placement.pipeline.retrieval] == ["attributes"]


def test_brand_codes_are_equal_exactly_where_brands_are() -> None:
    items = [shoe("a", "Asics", 90.0), shoe("b", "Nike", 90.0), shoe("c", "Asics", 80.0)]
    items += [shoe("d", "", 70.0), Item(item_id="e", title="no brand", price=10.0)]
    table = ItemTable.build(None, {item.item_id: item for item in items})
    codes = table.brand_code
    for x in range(len(table)):
        assert (codes[x] < 0) == (not table.brand[x])
        for y in range(len(table)):
            if codes[x] >= 0 and codes[y] >= 0:
                assert (codes[x] == codes[y]) == (table.brand[x] == table.brand[y])
