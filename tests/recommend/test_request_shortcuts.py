"""The shortcuts a request's pipeline takes must give exactly what the long way gives: the
top-k by partition, the banned rows as a mask, one complements answer per request, and a
campaign's catalog items passed through the rules a few at a time."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from event_tables import event_table
from nextbest.evaluation.placement import StaticCounts
from nextbest.events.schema import Item
from nextbest.recommend.candidates import PARTITION_FROM, Candidates, best_first
from nextbest.recommend.context import Context, Query
from nextbest.recommend.items import ItemTable
from nextbest.recommend.retrieval import complements as complements_module
from nextbest.recommend.retrieval.complements import Complements
from nextbest.recommend.retrieval.session_context import SessionContext
from nextbest.recommend.rules.exclusions import Exclusions
from nextbest.recommend.rules.filters import compile_filter
from nextbest.recommend.rules.promotions import CATALOG_STEP, Campaign, _campaign_items
from nextbest.recommend.rules.purchase_rules import CategoryRule, PurchaseRules
from nextbest.serving.live import fresh_record
from nextbest.serving.state.records import Interaction


@pytest.mark.parametrize("n", [0, 7, PARTITION_FROM - 1, PARTITION_FROM, 3000])
@pytest.mark.parametrize("k", [1, 10, 200, 5000])
def test_best_first_is_the_stable_sort_cut_to_k(n: int, k: int) -> None:
    rng = np.random.default_rng(n + k)
    for values in (rng.integers(0, 5, n), rng.integers(0, 1000, n), rng.normal(size=n)):
        scores = values.astype(np.float64)  # few distinct values: ties at every cut
        assert best_first(scores, k).tolist() == np.argsort(-scores, kind="stable")[:k].tolist()


# a catalog of 120 items: "d-j" discounted (a campaign's), "p-j" at full price, two
# categories; the live counts make d-0 the most viewed discounted item, then d-1, ...
CATALOG = {
    i.item_id: i
    for i in [
        *(Item(item_id=f"d-{j}", title=f"D {j}", category_path=("Shoes",), discount=0.5,
               price=10.0, in_stock=j != 45) for j in range(60)),
        *(Item(item_id=f"p-{j}", title=f"P {j}", category_path=("Socks",), price=5.0)
          for j in range(60)),
    ]
}  # fmt: skip
TABLE = ItemTable.build(None, CATALOG)
LIVE = StaticCounts(
    event_table(
        [(f"s{j}-{n}", f"d-{j}", "view", 0.0) for j in range(60) for n in range(100 - j)]
        + [(f"t{j}", f"p-{j}", "view", 0.0) for j in range(60)],
        ("session_id", "item_id", "type", "timestamp"),
    )
)
RULES = PurchaseRules(
    {
        "Shoes": CategoryRule(
            category="Shoes", kind="regular", buyers=50, purchases=60, returning=40,
            rebuy_share=0.0, revisit_share=0.2, cycle_days=None, hold_days=0.0,
            complements=(("Socks", 4.0),),
        )
    }
)  # fmt: skip


def context(bought: tuple[str, ...] = (), on_screen: str | None = None) -> Context:
    viewed = ("d-3", "p-2")
    record = replace(
        fresh_record(None), bought=bought, last_item=viewed[-1], n_events=len(viewed),
        recent=tuple(Interaction(i, "view", float(t)) for t, i in enumerate(viewed)),
    )  # fmt: skip
    query = Query(placement="product", item_id=on_screen)
    return Context(query, None, TABLE, record, LIVE, now=10.0, purchase_rules=RULES)


def test_the_banned_mask_marks_exactly_the_hard_banned_rows() -> None:
    ctx = context(bought=("d-1", "p-7"), on_screen="d-2")
    assert np.flatnonzero(ctx.hard_banned_mask).tolist() == ctx.hard_banned.tolist()
    assert set(TABLE.ids[ctx.hard_banned].tolist()) == {"d-1", "p-7", "d-2", "d-45"}
    assert TABLE.in_stock.sum() == len(TABLE) - 1  # building the mask left the table alone


def test_complements_are_computed_once_per_request_and_the_context_generator_reuses_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alone = SessionContext().generate(context(on_screen="d-5"), 200)  # computes its own
    calls: list[int] = []
    original = complements_module.Complements._generate

    def counted(self: Complements, ctx: Context, k: int) -> Candidates:
        calls.append(k)
        return original(self, ctx, k)

    monkeypatch.setattr(complements_module.Complements, "_generate", counted)
    ctx = context(on_screen="d-5")
    own = Complements().generate(ctx, 200)
    shared = SessionContext().generate(ctx, 200)
    assert calls == [200] and len(own) and "goes with D 5" in own.reasons.tolist()
    assert shared.rows.tolist() == alone.rows.tolist()
    assert shared.reasons.tolist() == alone.reasons.tolist()
    assert "goes with D 5" in shared.reasons.tolist()


def test_a_campaign_finds_its_first_allowed_item_beyond_the_first_few_it_tries() -> None:
    # the 2 * CATALOG_STEP most viewed discounted items are bought (banned by the rules):
    # the campaign's first allowed item lies beyond the first few rows it passes through them
    banned = tuple(f"d-{j}" for j in range(min(2 * CATALOG_STEP, 50)))
    ctx = context(bought=banned)
    campaign = Campaign("deals", "Deals", compile_filter("INCLUDE WHERE item.discount >= 0.3"))

    def allowed(found: Candidates) -> Candidates:
        return Exclusions().apply(ctx, found)

    picked = _campaign_items(ctx, campaign, Candidates.empty(), set(), 3, allowed)
    # the most viewed discounted items not bought and in stock (d-45 is out of stock)
    expected = [j for j in range(60) if f"d-{j}" not in banned and j != 45][:3]
    assert TABLE.ids[picked.rows].tolist() == [f"d-{j}" for j in expected]
    assert picked.reasons.tolist() == ["promoted: Deals"] * 3
