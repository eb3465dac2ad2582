"""The context generator: what others viewed with the session's items (the latest counting
most), what is bought with them (the learned complements), and what is popular in the
session's current category now; each with its reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from event_tables import event_table
from nextbest.evaluation.placement import StaticCounts
from nextbest.events.schema import Item
from nextbest.recommend.context import Context, Query
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import PlacementsError, parse_placements
from nextbest.recommend.retrieval.session_context import SessionContext
from nextbest.recommend.rules.purchase_rules import CategoryRule, PurchaseRules
from nextbest.serving.live import fresh_record
from nextbest.serving.state.records import Interaction

SHOES, SOCKS, PANS = ("Sports", "Shoes"), ("Sports", "Socks"), ("Home", "Pans")
CATALOG = {
    i.item_id: i
    for i in [
        *(Item(item_id=f"shoe-{n}", title=f"Shoe {n}", category_path=SHOES) for n in range(5)),
        *(Item(item_id=f"sock-{n}", title=f"Sock {n}", category_path=SOCKS) for n in range(3)),
        Item(item_id="pan", title="Pan", category_path=PANS),
    ]
}
TABLE = ItemTable.build(None, CATALOG)
# sessions of other shoppers: shoe-1 follows shoe-0 three times, shoe-2 once; sock-0 follows
# pan twice; shoe-4 is the most viewed shoe
OTHERS = [
    *[(f"o{n}", ["shoe-0", "shoe-1"]) for n in range(3)],
    ("o3", ["shoe-0", "shoe-2"]),
    *[(f"p{n}", ["pan", "sock-0"]) for n in range(2)],
    *[(f"v{n}", ["shoe-4"]) for n in range(6)],
]
LIVE = StaticCounts(
    event_table(
        [(s, i, "view", float(t)) for s, items in OTHERS for t, i in enumerate(items)],
        ("session_id", "item_id", "type", "timestamp"),
    )
)


def rule(category: str, complements: tuple[tuple[str, float], ...] = ()) -> CategoryRule:
    return CategoryRule(
        category=category, kind="regular", buyers=50, purchases=60, returning=40,
        rebuy_share=0.0, revisit_share=0.2, cycle_days=None, hold_days=0.0,
        complements=complements,
    )  # fmt: skip


RULES = PurchaseRules({"Sports > Shoes": rule("Sports > Shoes", (("Sports > Socks", 4.0),))})


def generate(
    viewed: tuple[str, ...] = (),
    on_screen: str | None = None,
    rules: PurchaseRules | None = None,
    k: int = 20,
) -> list[tuple[str, str]]:
    recent = tuple(Interaction(i, "view", float(t)) for t, i in enumerate(viewed))
    record = replace(
        fresh_record(None), recent=recent, last_item=viewed[-1] if viewed else None,
        n_events=len(viewed),
    )  # fmt: skip
    ctx = Context(
        Query(placement="product", item_id=on_screen), None, TABLE, record, LIVE, now=10.0,
        purchase_rules=rules,
    )  # fmt: skip
    found = SessionContext().generate(ctx, k)
    assert len(set(found.rows.tolist())) == len(found)  # each item once
    return [(str(TABLE.ids[r]), str(why)) for r, why in zip(found.rows, found.reasons, strict=True)]


def test_co_viewed_with_the_latest_item_first_then_popular_in_its_category() -> None:
    found = dict(generate(("pan", "shoe-0")))
    ranked = [i for i, _ in generate(("pan", "shoe-0"))]
    assert ranked[0] == "shoe-1" and found["shoe-1"] == "often viewed with Shoe 0"
    assert found["sock-0"] == "often viewed with Pan"  # the earlier item counts, for less
    assert ranked.index("shoe-1") < ranked.index("sock-0")
    assert found["shoe-4"] == "popular in Shoes now"  # never viewed after either
    assert "pan" not in found and "sock-1" not in found  # nothing says so


def test_the_item_on_screen_is_the_first_anchor_and_never_proposed() -> None:
    found = dict(generate(("pan",), on_screen="shoe-0"))
    assert "shoe-0" not in found
    assert found["shoe-1"] == "often viewed with Shoe 0"
    assert found["sock-0"] == "often viewed with Pan"


def test_co_bought_comes_from_the_learned_complements() -> None:
    without = dict(generate(on_screen="shoe-3"))
    assert "sock-1" not in without
    found = dict(generate(on_screen="shoe-3", rules=RULES))
    assert found["sock-1"] == "goes with Shoe 3"
    assert found["sock-0"] == "goes with Shoe 3"


def test_no_session_and_nothing_on_screen_gives_nothing() -> None:
    assert generate() == []
    assert generate(("shoe-0",), k=0) == []
    # an item on screen the shop does not know: the session's own items still count
    assert dict(generate(("shoe-0",), on_screen="unknown"))["shoe-1"] == "often viewed with Shoe 0"
    assert generate(on_screen="unknown") == []


def test_the_placements_file_names_it_and_rejects_a_bad_spec() -> None:
    raw = {"placements": {"p": {"generators": [{"source": "context", "k": 50}]}}}
    assert [s.label for s in parse_placements(raw, "shop.toml")["p"].pipeline.retrieval] == [
        "context"
    ]
    bad = {"placements": {"p": {"generators": [{"source": "context", "weight": 2}]}}}
    with pytest.raises(PlacementsError, match=r"shop.toml: placements.p.generators\[0\].weight"):
        parse_placements(bad, "shop.toml")
    twice = {"placements": {"p": {"generators": [{"source": "context"}, {"source": "context"}]}}}
    with pytest.raises(PlacementsError, match="each source may appear once"):
        parse_placements(twice, "shop.toml")
