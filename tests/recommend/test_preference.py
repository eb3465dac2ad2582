"""The preference generator: the brands and categories the shopper's profiles lean to, in the
price band around the item on screen (or their usual band), deals raised for shoppers who
take them; and the offline walk feeding it profiles without look-ahead."""

from __future__ import annotations

from dataclasses import replace

import pytest

from event_tables import event_table
from nextbest.evaluation.placement import StaticCounts, UserProfiles, facets_of_table, walk
from nextbest.events.schema import Item
from nextbest.recommend.affinity import USER_HALF_LIFE, Affinity, ItemFacets, encode
from nextbest.recommend.context import Context, Query
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import PlacementsError, parse_placements
from nextbest.recommend.retrieval.preference import Preference
from nextbest.serving.live import fresh_record


def item(
    item_id: str, brand: str, price: float, leaf: str = "Shoes", discount: float = 0.0
) -> Item:
    top = {"Pans": "Home", "Hoses": "Garden"}.get(leaf, "Sports")
    return Item(
        item_id=item_id,
        title=item_id,
        category_path=(top, leaf),
        brand=brand,
        price=price,
        discount=discount,
    )


# five shoes per brand so that each shoe's price band is its own category's fifth
CATALOG = [
    *(item(f"peak-{p}", "Peak", p) for p in (20, 40, 60, 80, 100)),
    *(item(f"stride-{p}", "Stride", p) for p in (20, 40, 60, 80, 100)),
    item("stride-60-deal", "Stride", 60, discount=0.3),
    *(item(f"sock-{n}", "Stride", 5.0 + n, leaf="Socks") for n in range(5)),
    *(item(f"pan-{n}", "Cookware", 30.0 + n, leaf="Pans") for n in range(5)),
    item("hose-1", "Hoseco", 25.0, leaf="Hoses"),
    item("hose-2", "Hoseco", 26.0, leaf="Hoses"),
]
ITEMS = {i.item_id: i for i in CATALOG}
TABLE = ItemTable.build(None, ITEMS)
FACETS = ItemFacets.build(CATALOG)
NO_EVENTS = StaticCounts(event_table([], ("session_id", "item_id", "type", "timestamp")))


def profile_of(*events: tuple[str, str]) -> Affinity:
    profile = Affinity()
    for time, (item_id, kind) in enumerate(events):
        facets = FACETS.get(item_id)
        assert facets is not None
        profile.add(facets, kind, float(time), USER_HALF_LIFE)
    return profile


def generate(
    session: Affinity | None = None,
    user: Affinity | None = None,
    on_screen: str | None = None,
    k: int = 30,
    bought: tuple[str, ...] = (),
) -> list[tuple[str, str]]:
    record = fresh_record(None)
    record = replace(record, affinity=encode(session) if session else b"", bought=bought)
    ctx = Context(
        Query(placement="home", item_id=on_screen), None, TABLE, record, NO_EVENTS, now=0.0,
        facets=FACETS, user_affinity_of=(lambda: user) if user is not None else None,
    )  # fmt: skip
    found = Preference().generate(ctx, k)
    return [(str(TABLE.ids[r]), str(why)) for r, why in zip(found.rows, found.reasons, strict=True)]


def scores(session: Affinity, on_screen: str) -> dict[str, float]:
    record = replace(fresh_record(None), affinity=encode(session))
    ctx = Context(
        Query(placement="home", item_id=on_screen), None, TABLE, record, NO_EVENTS, now=0.0,
        facets=FACETS,
    )  # fmt: skip
    found = Preference().generate(ctx, 50)
    return {str(TABLE.ids[r]): float(s) for r, s in zip(found.rows, found.scores, strict=True)}


def ids(found: list[tuple[str, str]]) -> list[str]:
    return [item_id for item_id, _ in found]


def test_the_brand_and_category_leaned_to_come_first_with_the_reason() -> None:
    found = generate(profile_of(("peak-60", "view"), ("peak-80", "cart")))
    # Peak shoes first: the usual band (high: the cart add), then the one next to it
    assert ids(found)[:2] == ["peak-80", "peak-100"]
    assert {i for i, _ in found[:5]} == {f"peak-{p}" for p in (20, 40, 60, 80, 100)}
    assert {why for _, why in found[:5]} == {"because you like Peak"}
    # then the other shoes (the category), then the socks (only the top level, Sports)
    assert {i for i, _ in found[5:11]} == {i for i in ITEMS if i.startswith("stride")}
    assert {why for _, why in found[5:11]} == {"because you like Shoes"}
    assert {why for i, why in found[11:]} == {"because you like Sports"}
    assert all(not i.startswith("pan") for i in ids(found))  # nothing leans to the kitchen


def test_the_price_band_of_the_item_on_screen_orders_what_the_profile_leaves_level() -> None:
    shopper = profile_of(("stride-20", "view"), ("peak-100", "view"))  # both brands alike
    cheap = ids(generate(shopper, on_screen="peak-20"))
    dear = ids(generate(shopper, on_screen="peak-100"))
    assert cheap.index("stride-40") < cheap.index("stride-80")
    assert dear.index("stride-80") < dear.index("stride-40")
    assert "peak-20" not in cheap and "peak-100" not in dear  # never the item on screen


def test_without_an_item_on_screen_the_usual_band_counts() -> None:
    budget = profile_of(("pan-0", "view"), ("pan-1", "view"), ("stride-20", "cart"))
    ranked = ids(generate(budget))
    assert ranked.index("stride-20") < ranked.index("stride-100")
    assert ranked.index("peak-20") < ranked.index("peak-100")


def test_discounted_items_are_raised_for_a_discount_sensitive_shopper_only() -> None:
    deal_hunter = profile_of(*[("stride-60-deal", "cart")] * 6, ("stride-60", "view"))
    assert deal_hunter.discount_sensitivity(FACETS.discount_base) > 0.9
    found = generate(deal_hunter, on_screen="stride-40")
    assert found[0] == ("stride-60-deal", "because you like Stride")
    indifferent = profile_of(("stride-60", "cart"), ("stride-40", "cart"), ("stride-80", "view"))
    assert indifferent.discount_sensitivity(FACETS.discount_base) < 0.5
    plain = scores(indifferent, on_screen="stride-20")
    assert plain["stride-60"] == plain["stride-60-deal"]  # same brand, category and band
    raised = scores(deal_hunter, on_screen="stride-20")
    assert raised["stride-60-deal"] > raised["stride-60"]


def test_the_user_profile_serves_a_session_without_one_and_both_are_blended() -> None:
    user = profile_of(("pan-2", "purchase"))
    found = generate(user=user, bought=("pan-2",))
    assert {i for i, _ in found} == {"pan-0", "pan-1", "pan-3", "pan-4"}  # bought: left out
    # the usual band is mid (pan-2's): the neighbouring bands first
    assert {i for i, _ in found[:2]} == {"pan-1", "pan-3"}
    assert found[0][1] == "because you like Cookware"
    both = ids(generate(session=profile_of(("peak-40", "view")), user=user, k=50))
    assert {"pan-0", "peak-20"} <= set(both)


def test_no_profile_no_candidates_and_exclusions_hold() -> None:
    assert generate() == []
    assert generate(session=Affinity(), user=Affinity()) == []
    taste = profile_of(("peak-40", "view"))
    assert "peak-20" not in ids(generate(taste, bought=("peak-20",)))
    # an item on screen the catalog does not know: the usual band instead
    assert ids(generate(taste, on_screen="nowhere"))[0].startswith("peak")
    assert generate(taste, k=0) == []


def test_the_placements_file_names_it_and_rejects_a_bad_spec() -> None:
    raw = {"placements": {"home": {"generators": [{"source": "preference", "k": 50}]}}}
    placement = parse_placements(raw, "shop.toml")["home"]
    assert [stage.label for stage in placement.pipeline.retrieval] == ["preference"]
    bad = {"placements": {"home": {"generators": [{"source": "preferences"}]}}}
    with pytest.raises(PlacementsError, match=r"shop.toml: placements.home.generators\[0\].source"):
        parse_placements(bad, "shop.toml")
    zero = {"placements": {"home": {"generators": [{"source": "preference", "k": 0}]}}}
    with pytest.raises(PlacementsError, match=r"generators\[0\].k: .*\(got 0\)"):
        parse_placements(zero, "shop.toml")


def test_the_offline_walk_feeds_the_profiles_as_they_stood_then() -> None:
    """The user bought a pan before the test session and a hose after it: the session's lists
    know the pans and the session's own events so far, never the later hose."""
    rows = [
        ("old", "u1", "pan-1", "purchase", 10.0),
        ("s1", "u1", "stride-20", "view", 100.0),
        ("s1", "u1", "stride-40", "view", 101.0),
        ("s1", "u1", "stride-60", "view", 102.0),
        ("later", "u1", "hose-1", "purchase", 500.0),
    ]
    events = event_table(rows, ("session_id", "user_id", "item_id", "type", "timestamp"))
    test = events.filter(events["session_id"] != "old")
    facets = facets_of_table(TABLE)
    assert facets.get("pan-1") == FACETS.get("pan-1")  # as the server takes them
    profiles = UserProfiles(events, facets)
    raw = {"placements": {"p": {"generators": [{"source": "preference", "k": 40}], "fill": []}}}
    placement = parse_placements(raw, "test")["p"]
    cases = list(walk(placement, None, TABLE, NO_EVENTS, test, {}, 40, profiles=profiles))
    s1 = [case for case in cases if case.session_id == "s1"]
    assert len(cases) == len(s1) == 2  # "later" has one event: no case
    for case in s1:
        shown = {str(TABLE.ids[r]) for r in case.shown.rows}
        assert "pan-0" in shown  # the purchase before the session
        assert "hose-2" not in shown  # the later one: never
        assert case.ctx.user_affinity is not None and case.ctx.session_affinity is not None
    # the session's own events count as they happen: the second list knows two shoes
    first, second = (case.ctx.session_affinity for case in s1)
    assert first is not None and second is not None and second.events == first.events + 1


def test_the_first_page_of_a_returning_user_knows_their_tastes_only() -> None:
    rows = [
        ("old", "u1", "pan-1", "purchase", 10.0),
        ("s1", "u1", "stride-20", "view", 100.0),
        ("s1", "u1", "stride-40", "view", 101.0),
        ("s2", None, "stride-20", "view", 100.0),
    ]
    events = event_table(rows, ("session_id", "user_id", "item_id", "type", "timestamp"))
    test = events.filter(events["session_id"] != "old")
    profiles = UserProfiles(events, facets_of_table(TABLE))
    raw = {"placements": {"p": {"generators": [{"source": "preference", "k": 40}], "fill": []}}}
    placement = parse_placements(raw, "test")["p"]
    cases = list(
        walk(placement, None, TABLE, NO_EVENTS, test, {}, 40, profiles=profiles, at_start=True)
    )
    assert [(c.session_id, c.position) for c in cases] == [("s1", 0), ("s2", 0)]
    first = {str(TABLE.ids[r]) for r in cases[0].shown.rows}
    assert first == {f"pan-{n}" for n in range(5)}  # the pan bought before; nothing of s1 yet
    assert len(cases[1].shown) == 0  # an anonymous session's first page: no tastes
    product = parse_placements(
        {"placements": {"p": {"needs": ["item_id"], "generators": [{"source": "preference"}]}}},
        "test",
    )["p"]
    with pytest.raises(ValueError, match="needs an item on screen"):
        list(walk(product, None, TABLE, NO_EVENTS, test, {}, 40, at_start=True))
