"""The learned order of the served keyword card: a keyword ranker fitted on shown cards and
their clicks, saved with the model version, scoring the recalled keywords of each request.

Training (`nextbest train --keyword-cards FILE`, and the demo) fits FTRL or the attention-GRU
on every card of the file (`keyword_ranking_data`); the latest `valid_share` of them chooses
the epoch. Serving builds the same rows for one card (`ranking_cases`, the same feature
definitions), from what the server knows at request time: the session's latest item events,
a signed-in user's purchases, and the product on screen. The card then shows the recalled
keywords in the ranker's order, diversity and campaigns applied after it as before.

The show model (whether to show the card at all, `show_model.py`) is fitted on the same cards
and travels with the ranker.

Saved in the version's `keywords/ranker/` folder: the ranker's own files, the vocabulary
(leaf categories, items' words and brands), `keyword-ranker.json` (kind, cards, fit) and
`show/` (the show model).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from nextbest.keywords.graph import KEYWORDS_DIR, QueryGraph
from nextbest.keywords.ranking import (
    HISTORY_WIDTH,
    Vocabulary,
    conform_cards,
    keyword_ranking_data,
    ranking_cases,
)
from nextbest.keywords.show_model import (
    SESSION_WIDTH,
    SHOW_DIR,
    ShowModel,
    card_intents,
    fit_show_model,
    intent_features,
)
from nextbest.twostage.rankers.attention_gru import AttentionGRUConfig, AttentionGRURanker
from nextbest.twostage.rankers.ftrl import FTRLConfig, FTRLRanker

RankerKind = Literal["ftrl", "attention-gru"]
RANKER_KINDS: tuple[RankerKind, ...] = ("ftrl", "attention-gru")
RANKER_DIR = "ranker"  # in the version's keywords folder
META_FILE = "keyword-ranker.json"
VOCABULARY_FILE = "vocabulary.json"
VALID_SHARE = 0.1


@dataclass
class KeywordRanker:
    kind: RankerKind
    ranker: FTRLRanker | AttentionGRURanker
    vocabulary: Vocabulary
    meta: dict[str, object]
    show: ShowModel | None = None  # whether to show the card at all, fitted on the same cards

    def show_chance(
        self,
        session: Sequence[tuple[str, str, float]],
        purchases: Sequence[tuple[str, str, float]],
        now: float,
        on_screen: str | None,
        signed_in: bool,
    ) -> float | None:
        """The show model's chance that a card shown now gets a click (None without one)."""
        if self.show is None:
            return None
        features = intent_features(
            session[-SESSION_WIDTH:], purchases, now, on_screen, self.vocabulary.item_leaf,
            signed_in,
        )  # fmt: skip
        return self.show.chance(features)

    def scores(
        self,
        graph: QueryGraph,
        queries: Sequence[str],
        recent: list[tuple[str, str, float]],
        now: float,
        on_screen: str | None,
    ) -> np.ndarray:
        """[len(queries)] the ranker's scores (higher: likelier clicked) of one card's
        keywords, for a shopper with `recent` item events (oldest first) at `now`."""
        if not queries:
            return np.zeros(0)
        data = ranking_cases(
            list(queries),
            np.zeros(len(queries), dtype=np.int64),
            [recent[-HISTORY_WIDTH:]],
            np.array([now]),
            [on_screen],
            graph,
            self.vocabulary,
        )
        return np.asarray(self.ranker.predict(data), dtype=np.float64)

    def save(self, version: Path) -> None:
        folder = version / KEYWORDS_DIR / RANKER_DIR
        self.ranker.save(folder)
        self.vocabulary.save(folder / VOCABULARY_FILE)
        if self.show is not None:
            self.show.save(folder / SHOW_DIR)
        (folder / META_FILE).write_text(json.dumps({"kind": self.kind, **self.meta}, indent=1))

    @classmethod
    def load(cls, version: Path) -> KeywordRanker | None:
        """The ranker saved with a version, None when it has none; a damaged one is a
        ValueError naming the file."""
        folder = version / KEYWORDS_DIR / RANKER_DIR
        if not (folder / META_FILE).is_file():
            return None
        try:
            meta = json.loads((folder / META_FILE).read_text())
            kind = meta.pop("kind")
        except (OSError, ValueError, KeyError, AttributeError) as error:
            raise ValueError(f"{folder / META_FILE}: not a keyword ranker ({error})") from None
        if kind not in RANKER_KINDS:
            raise ValueError(f"{folder / META_FILE}: unknown ranker kind {kind!r}")
        ranker = (FTRLRanker if kind == "ftrl" else AttentionGRURanker).load(folder)
        vocabulary = Vocabulary.load(folder / VOCABULARY_FILE)
        return cls(kind, ranker, vocabulary, meta, ShowModel.load(folder / SHOW_DIR))


def fit_keyword_ranker(
    cards: pl.DataFrame,
    events: pl.DataFrame,
    graph: QueryGraph,
    items: pl.DataFrame,
    kind: RankerKind = "ftrl",
    seed: int = 0,
    keep_clicks: float = 0.9,
) -> KeywordRanker:
    """Fit a ranker on `cards` (CARD_SCHEMA) whose shoppers' item events are in `events`; the
    latest tenth of the cards chooses the epoch. The show model (`show_model.py`) is fitted
    on the same cards, its threshold keeping `keep_clicks` of the latest tenth's clicks."""
    if kind not in RANKER_KINDS:
        raise ValueError(f"keyword ranker must be one of {', '.join(RANKER_KINDS)}, not {kind!r}")
    cards = conform_cards(cards)
    n_cards = cards["card_id"].n_unique()
    if n_cards < 10 or not cards["clicked"].any():
        raise ValueError(
            f"the keyword cards hold {n_cards} cards and {int(cards['clicked'].sum())} clicks: "
            "a ranker needs at least 10 cards and a click"
        )
    started = time.perf_counter()
    vocabulary = Vocabulary.of(graph, items)
    data = keyword_ranking_data(cards, events, graph, vocabulary)
    n_valid = max(1, round(VALID_SHARE * data.n_cases))
    train = data.cases(np.arange(data.n_cases - n_valid))
    valid = data.cases(np.arange(data.n_cases - n_valid, data.n_cases))
    ranker: FTRLRanker | AttentionGRURanker
    if kind == "ftrl":
        ranker = FTRLRanker(FTRLConfig(epochs=3, seed=seed))
    else:
        ranker = AttentionGRURanker(AttentionGRUConfig(epochs=4, seed=seed))
    ranker.fit(train, valid)
    features, clicked, _ = card_intents(cards, events, vocabulary.item_leaf)
    try:
        show: ShowModel | None = fit_show_model(features, clicked, keep_clicks, seed)
    except ValueError:
        show = None  # too few cards or clicks to learn when to show: the rules decide
    meta: dict[str, object] = {
        "cards": n_cards,
        "keywords": cards.height,
        "click_share": round(float(np.mean(cards["clicked"].to_numpy())), 4),
        "fit_seconds": round(time.perf_counter() - started, 2),
        "seed": seed,
        "show_model": None if show is None else {"threshold": show.threshold, **show.meta},
    }
    return KeywordRanker(kind, ranker, vocabulary, meta, show)


def update_keyword_ranker(
    keyword_ranker: KeywordRanker, cards: pl.DataFrame, events: pl.DataFrame, graph: QueryGraph
) -> int:
    """Online learning between retrains: one FTRL pass over `cards` in time order (the
    server's own cards and clicks, `nextbest keywords export-cards`), their shoppers' item
    events in `events`. Returns the cards learned from. The attention-GRU has no online
    update: retrain it with `nextbest train --keyword-cards`."""
    if not isinstance(keyword_ranker.ranker, FTRLRanker):
        raise ValueError(
            f"the version's keyword ranker is {keyword_ranker.kind}, which learns only at "
            "training: retrain it with nextbest train --keyword-cards (online updates are FTRL's)"
        )
    cards = conform_cards(cards)
    if cards.height == 0:
        raise ValueError("there are no keyword cards to learn from")
    data = keyword_ranking_data(cards, events, graph, keyword_ranker.vocabulary)
    keyword_ranker.ranker.update(data)
    n_cards = data.n_cases
    updates = keyword_ranker.meta.get("updated_cards", 0)
    keyword_ranker.meta["updated_cards"] = int(updates) + n_cards  # type: ignore[call-overload]
    return n_cards
