"""The served card's learned order: a keyword ranker fitted on shown cards beats the recall's
order on later cards, scores one served card exactly as training saw it, survives saving,
and orders the card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextbest.data.demo_shop import DemoShop, DemoShopConfig, generate_demo_shop
from nextbest.evaluation.keyword_rankers import recall_scores
from nextbest.keywords.card import keyword_card
from nextbest.keywords.card_ranker import KeywordRanker, fit_keyword_ranker, update_keyword_ranker
from nextbest.keywords.graph import QueryGraph, build_query_graph
from nextbest.keywords.ranking import keyword_ranking_data, ordered_cards, recent_item_events
from nextbest.keywords.recall import Keyword
from nextbest.twostage.metrics import auc
from nextbest.twostage.rankers.attention_gru import AttentionGRURanker


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return generate_demo_shop(DemoShopConfig(n_events=60_000, n_items=500, n_users=600, days=10))


@pytest.fixture(scope="module")
def split(shop: DemoShop) -> tuple[pl.DataFrame, pl.DataFrame, QueryGraph]:
    """The first 80% of the cards by time, the rest, and the graph of the events before."""
    cards = ordered_cards(shop.cards)
    cut = cards["timestamp"].quantile(0.8)
    assert cut is not None
    graph = build_query_graph(shop.events.filter(pl.col("timestamp") < cut), shop.items)
    return cards.filter(pl.col("timestamp") < cut), cards.filter(pl.col("timestamp") >= cut), graph


@pytest.fixture(scope="module")
def ranker(shop: DemoShop, split: tuple[pl.DataFrame, pl.DataFrame, QueryGraph]) -> KeywordRanker:
    train, _, graph = split
    return fit_keyword_ranker(train, shop.events, graph, shop.items, "ftrl")


def test_the_learned_order_beats_the_recall_order_on_later_cards(
    shop: DemoShop, split: tuple[pl.DataFrame, pl.DataFrame, QueryGraph], ranker: KeywordRanker
) -> None:
    _, later, graph = split
    data = keyword_ranking_data(later, shop.events, graph, ranker.vocabulary)
    assert data.label is not None
    learned, recalled = (
        auc(data.label, ranker.ranker.predict(data)),
        auc(data.label, recall_scores(data)),
    )
    assert learned > recalled + 0.03 and learned > 0.7


def test_a_served_card_is_scored_as_training_saw_it(
    shop: DemoShop, split: tuple[pl.DataFrame, pl.DataFrame, QueryGraph], ranker: KeywordRanker
) -> None:
    _, later, graph = split
    first = later["card_id"].unique(maintain_order=True).to_list()[:5]
    cards = later.filter(pl.col("card_id").is_in(first))
    # the training table of five cards at once (the batched path features) ...
    batch = ranker.ranker.predict(
        keyword_ranking_data(cards, shop.events, graph, ranker.vocabulary)
    )
    offset = 0
    for card_id in first:
        card = ordered_cards(cards).filter(pl.col("card_id") == card_id)
        head = card.head(1)
        recent = recent_item_events(head, shop.events, 50)[0]
        # ... and each card as a request scores it (one shopper's walks)
        served = ranker.scores(
            graph, card["query"].to_list(), recent, head["timestamp"][0], head["item_id"][0]
        )
        np.testing.assert_allclose(served, batch[offset : offset + card.height], rtol=1e-5)
        offset += card.height


def test_a_saved_ranker_loads_with_the_same_scores(
    tmp_path: Path, split: tuple[pl.DataFrame, pl.DataFrame, QueryGraph], ranker: KeywordRanker
) -> None:
    _, later, graph = split
    queries = later["query"].head(8).to_list()
    history = [("no-such-item", "view", 0.0)]
    ranker.save(tmp_path)
    loaded = KeywordRanker.load(tmp_path)
    assert loaded is not None and loaded.kind == "ftrl" and loaded.meta == ranker.meta
    np.testing.assert_array_equal(
        loaded.scores(graph, queries, history, 1.0, None),
        ranker.scores(graph, queries, history, 1.0, None),
    )
    assert KeywordRanker.load(tmp_path / "elsewhere") is None
    (tmp_path / "keywords" / "ranker" / "keyword-ranker.json").write_text('{"kind": "svm"}')
    with pytest.raises(ValueError, match="unknown ranker kind 'svm'"):
        KeywordRanker.load(tmp_path)


def test_the_card_shows_the_recalled_keywords_in_the_rankers_order(
    split: tuple[pl.DataFrame, pl.DataFrame, QueryGraph], shop: DemoShop
) -> None:
    _, _, graph = split
    on_screen = shop.items["item_id"][0]
    plain = keyword_card(graph, [], 0.0, n=4, item_on_screen=on_screen)

    def backwards(keywords: list[Keyword]) -> np.ndarray:  # the recall's order reversed
        return np.arange(len(keywords), dtype=np.float64)

    ranked = keyword_card(graph, [], 0.0, n=4, item_on_screen=on_screen, rank=backwards)
    assert plain.show and ranked.show
    assert [k.query for k in ranked.keywords] != [k.query for k in plain.keywords]
    scores = [k.score for k in ranked.keywords]
    assert scores == sorted(scores, reverse=True)  # the ranker's scores, best first


def test_a_ranker_needs_cards_with_clicks_and_a_known_kind(
    shop: DemoShop, split: tuple[pl.DataFrame, pl.DataFrame, QueryGraph]
) -> None:
    train, _, graph = split
    with pytest.raises(ValueError, match="at least 10 cards and a click"):
        fit_keyword_ranker(train.head(8), shop.events, graph, shop.items)
    unclicked = train.with_columns(pl.lit(False).alias("clicked"))
    with pytest.raises(ValueError, match="at least 10 cards and a click"):
        fit_keyword_ranker(unclicked, shop.events, graph, shop.items)
    with pytest.raises(ValueError, match="must be one of ftrl, attention-gru"):
        fit_keyword_ranker(train, shop.events, graph, shop.items, "svm")  # type: ignore[arg-type]


def test_an_online_update_learns_from_the_cards_shown_since(
    shop: DemoShop, split: tuple[pl.DataFrame, pl.DataFrame, QueryGraph], tmp_path: Path
) -> None:
    train, later, graph = split
    ranker = fit_keyword_ranker(train, shop.events, graph, shop.items, "ftrl")
    card = later.filter(pl.col("card_id") == later["card_id"][0])
    head = card.head(1)
    recent = recent_item_events(head, shop.events, 50)[0]
    queries = card["query"].to_list()

    def scores() -> np.ndarray:
        return ranker.scores(graph, queries, recent, head["timestamp"][0], head["item_id"][0])

    before = scores()
    least = int(np.argmin(before))
    # shoppers keep clicking the keyword the ranker liked least on this very card
    repeated = pl.concat(
        [
            card.with_columns(
                pl.lit(f"again{k}").alias("card_id"),
                (pl.col("query") == queries[least]).alias("clicked"),
            )
            for k in range(60)
        ]
    )
    assert update_keyword_ranker(ranker, repeated, shop.events, graph) == 60
    after = scores()
    assert int(np.argmax(after)) == least and ranker.meta["updated_cards"] == 60
    attention = KeywordRanker("attention-gru", AttentionGRURanker(), ranker.vocabulary, {})
    with pytest.raises(ValueError, match="learns only at training"):
        update_keyword_ranker(attention, repeated, shop.events, graph)
