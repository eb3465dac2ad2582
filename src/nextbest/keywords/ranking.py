"""The keyword rankers' training data: shown keyword cards and their clicks, as `RankingData`.

A *card* is a case; its rows are the keywords it showed, labelled 1 when clicked. The card
table (`CARD_SCHEMA`, one row per keyword shown) comes from the demo shop's planted cards or
from a server's own log (`cards_from_log`).

The learned rankers of the two-stage issue read `RankingData`, whose candidates and history
share one vocabulary. A keyword and a product do not; their categories do. So the keyword's
side is its category (the leaf category its searches led to, from the query graph) and the
shopper's side is the categories of their latest item events (`History`, with action types
and ages), and the attention matches the two. The feature groups, in the order the ranking
table adds them:

    history   how much of the shopper's history and the product on screen is in the
              keyword's category (leaf) or under its parent
    text      the keyword's words: how many, whether it names a brand, whether that brand
              is among the history's, and how many of its words the product on screen shares
    path      the meta-path recall's scores of the keyword for this shopper (i2q, c2q) and how
              often it was searched

The category alone (`item`) needs no column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from nextbest.events.schema import CATEGORY_SEPARATOR
from nextbest.keywords.graph import QueryGraph, normalise_text
from nextbest.keywords.recall import RecallConfig, history_matrix, path_scores
from nextbest.twostage.data import ACTION_CODES, OTHER, PAD, History, RankingData

CARD_SCHEMA = {
    "card_id": pl.String,
    "session_id": pl.String,
    "user_id": pl.String,
    "timestamp": pl.Float64,
    "item_id": pl.String,  # the product on screen when the card was shown (null: none)
    "position": pl.Int32,
    "query": pl.String,
    "clicked": pl.Boolean,
}
HISTORY_WIDTH = 50  # the shopper's latest item events a card's case keeps (as the card's recall)
GROUPS = ("history", "text", "path")
CHUNK = 2_000  # cards whose path scores are computed at once ([CHUNK, Q] dense)
_WORD = re.compile(r"[^\W_]+")


def conform_cards(cards: pl.DataFrame) -> pl.DataFrame:
    """`cards` with CARD_SCHEMA's columns and types; a missing or mistyped column is a
    ValueError naming it."""
    missing = [name for name in CARD_SCHEMA if name not in cards.columns]
    if missing:
        raise ValueError(f"keyword cards lack the columns {missing}")
    try:
        return cards.select(pl.col(n).cast(t, strict=True) for n, t in CARD_SCHEMA.items())
    except pl.exceptions.InvalidOperationError as error:
        raise ValueError(f"keyword cards: a column has the wrong type ({error})") from error


@dataclass(frozen=True)
class Vocabulary:
    """The categories that keywords and products share, and what the features read."""

    leaves: list[str]  # the catalog's leaf category paths: the rankers' "item" vocabulary
    item_leaf: dict[str, int]
    item_words: dict[str, frozenset[str]]  # title and category words of each item
    item_brand: dict[str, str]
    brands: frozenset[str]  # lower-case brand names
    query_leaf: np.ndarray  # [Q] the leaf each graph query led to most (-1: unknown)
    parent: np.ndarray  # [leaves] index of each leaf's parent path

    @classmethod
    def of(cls, graph: QueryGraph, items: pl.DataFrame) -> Vocabulary:
        rows = items.select("item_id", "title", "category_path", "brand").iter_rows()
        item_leaf, item_words, item_brand = {}, {}, {}
        leaf_of: dict[str, int] = {}
        for item_id, title, path, brand in rows:
            if path:
                item_leaf[item_id] = leaf_of.setdefault(path, len(leaf_of))
            item_words[item_id] = frozenset(_words(f"{title or ''} {path or ''}"))
            if brand:
                item_brand[item_id] = brand.lower()
        leaves = list(leaf_of)
        parents: dict[str, int] = {}
        parent = np.array(
            [parents.setdefault(p.rsplit(CATEGORY_SEPARATOR, 1)[0], len(parents)) for p in leaves],
            dtype=np.int64,
        )
        # each query's leaf: the leaf whose items its searches led to most (graph counts)
        query_leaf = np.full(len(graph.queries), -1, dtype=np.int64)
        item_rows = np.array([item_leaf.get(i, -1) for i in graph.item_ids], dtype=np.int64)
        counts = graph.counts.tocoo()
        if counts.nnz:
            known = item_rows[counts.col] >= 0
            mass = np.zeros((len(graph.queries), max(len(leaves), 1)))
            np.add.at(mass, (counts.row[known], item_rows[counts.col[known]]), counts.data[known])
            found = mass.max(axis=1) > 0
            query_leaf[found] = mass[found].argmax(axis=1)
        return cls(
            leaves=leaves,
            item_leaf=item_leaf,
            item_words=item_words,
            item_brand=item_brand,
            brands=frozenset(item_brand.values()),
            query_leaf=query_leaf,
            parent=parent,
        )


def keyword_ranking_data(
    cards: pl.DataFrame,
    events: pl.DataFrame,
    graph: QueryGraph,
    vocabulary: Vocabulary,
    width: int = HISTORY_WIDTH,
    recall: RecallConfig | None = None,
) -> RankingData:
    """One case per card (in time order), one row per keyword shown, every feature group.

    The history of a card is the shopper's latest `width` item events at or before it: a
    signed-in user's across sessions, an anonymous visitor's within the session; `events`
    must hold them (EVENT_SCHEMA, any period before the cards)."""
    cards = conform_cards(cards).sort("timestamp", "card_id", "position")
    card_ids = cards["card_id"].to_numpy()
    first = np.r_[True, card_ids[1:] != card_ids[:-1]]
    case = np.cumsum(first) - 1
    heads = cards.filter(pl.Series(first))
    history, item_ids, kinds, times = card_histories(heads, events, vocabulary.item_leaf, width)
    query_index = graph.query_index()
    query = np.array([query_index.get(normalise_text(q), -1) for q in cards["query"]], np.int64)
    leaf = np.where(query >= 0, vocabulary.query_leaf[np.maximum(query, 0)], -1)
    features: dict[str, np.ndarray] = {}
    features |= _history_features(leaf, case, history, heads["item_id"].to_list(), vocabulary)
    features |= _text_features(cards["query"].to_list(), case, item_ids, heads, vocabulary)
    features |= _path_features(query, case, item_ids, kinds, times, heads, graph, recall)
    names = tuple(features)
    groups = {g: tuple(n for n in names if n.startswith(f"{g}.")) for g in GROUPS}
    return RankingData(
        case=case.astype(np.int64),
        item=leaf,
        features=np.stack([features[n] for n in names], axis=1).astype(np.float32),
        names=names,
        groups=groups,
        label=cards["clicked"].to_numpy().astype(np.float32),
        session=np.unique(heads["session_id"].to_numpy(), return_inverse=True)[1].astype(np.int64),
        history=history,
        n_items=len(vocabulary.leaves),
    )


def card_histories(
    heads: pl.DataFrame, events: pl.DataFrame, item_leaf: dict[str, int], width: int
) -> tuple[History, list[list[str]], list[list[str]], list[list[float]]]:
    """Each card's (one row per card: session_id, user_id, timestamp) latest `width` item
    events, as categories (`item_leaf`; left-padded) for the rankers and as item ids, types
    and timestamps (oldest first) for the meta-paths."""
    item_events = events.filter(pl.col("item_id").is_not_null()).select(
        pl.coalesce("user_id", "session_id").alias("shopper"), "timestamp", "item_id", "type"
    )
    card_shoppers = heads.select(pl.coalesce("user_id", "session_id").alias("shopper"))
    shoppers = pl.concat([item_events["shopper"], card_shoppers["shopper"]])
    codes = shoppers.cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    event_code, card_code = codes[: item_events.height], codes[item_events.height :]
    origin = min(item_events["timestamp"].min() or 0.0, heads["timestamp"].min() or 0.0)
    # one sortable key per (shopper, millisecond): a card sees its shopper's events up to it
    event_key = (event_code << 40) + ((item_events["timestamp"].to_numpy() - origin) * 1000).astype(
        np.int64
    )
    card_key = (card_code << 40) + ((heads["timestamp"].to_numpy() - origin) * 1000).astype(
        np.int64
    )
    order = np.argsort(event_key, kind="stable")
    sorted_keys = event_key[order]
    end = np.searchsorted(sorted_keys, card_key, side="right")
    begin = np.searchsorted(sorted_keys, card_code << 40, side="left")
    slots = end[:, None] - width + np.arange(width)[None, :]  # [K, width]
    valid = slots >= begin[:, None]
    rows = order[np.where(valid, slots, 0)]
    ids = item_events["item_id"].to_numpy()[rows]
    types = item_events["type"].to_numpy()[rows]
    stamps = item_events["timestamp"].to_numpy()[rows]
    leaf_of = item_leaf
    leaves = np.array([[leaf_of.get(i, -1) for i in row] for row in ids.tolist()], dtype=np.int64)
    codes_of = np.array([[ACTION_CODES.get(t, OTHER) for t in row] for row in types.tolist()])
    history = History(
        items=np.where(valid, leaves, -1),
        types=np.where(valid, codes_of, PAD).astype(np.int8),
        age=np.where(valid, heads["timestamp"].to_numpy()[:, None] - stamps, 0.0).astype(
            np.float32
        ),
    )
    first = (~valid).sum(axis=1).tolist()  # the padding is on the left
    item_ids = [row[k:] for row, k in zip(ids.tolist(), first, strict=True)]
    kinds = [row[k:] for row, k in zip(types.tolist(), first, strict=True)]
    times = [row[k:] for row, k in zip(stamps.tolist(), first, strict=True)]
    return history, item_ids, kinds, times


def _history_features(
    leaf: np.ndarray,
    case: np.ndarray,
    history: History,
    on_screen: list[str | None],
    vocabulary: Vocabulary,
) -> dict[str, np.ndarray]:
    parent = np.where(leaf >= 0, vocabulary.parent[np.maximum(leaf, 0)], -1)
    items = history.items[case]  # [N, width]
    seen = items >= 0
    count = np.maximum(seen.sum(axis=1), 1)
    item_parent = np.where(seen, vocabulary.parent[np.maximum(items, 0)], -2)
    screen = np.array([vocabulary.item_leaf.get(i or "", -1) for i in on_screen])[case]
    screen_parent = np.where(screen >= 0, vocabulary.parent[np.maximum(screen, 0)], -2)
    known = leaf >= 0
    return {
        "history.leaf_share": np.where(known, (items == leaf[:, None]).sum(axis=1) / count, np.nan),
        "history.parent_share": np.where(
            known, (item_parent == parent[:, None]).sum(axis=1) / count, np.nan
        ),
        "history.screen_leaf": np.where(known, screen == leaf, np.nan),
        "history.screen_parent": np.where(known, screen_parent == parent, np.nan),
    }


def _text_features(
    queries: list[str],
    case: np.ndarray,
    item_ids: list[list[str]],
    heads: pl.DataFrame,
    vocabulary: Vocabulary,
) -> dict[str, np.ndarray]:
    history_brands = [
        {vocabulary.item_brand[i] for i in row if i in vocabulary.item_brand} for row in item_ids
    ]
    screen_words = [vocabulary.item_words.get(i or "", frozenset()) for i in heads["item_id"]]
    words, names_brand, brand_seen, overlap = [], [], [], []
    for query, c in zip(queries, case.tolist(), strict=True):
        text = normalise_text(query)
        tokens = set(_words(text))
        brand = next((b for b in vocabulary.brands if text.startswith(b + " ")), None)
        words.append(len(tokens))
        names_brand.append(brand is not None)
        brand_seen.append(brand is not None and brand in history_brands[c])
        overlap.append(len(tokens & screen_words[c]) / max(len(tokens), 1))
    return {
        "text.words": np.array(words, dtype=np.float64),
        "text.names_brand": np.array(names_brand, dtype=np.float64),
        "text.brand_in_history": np.array(brand_seen, dtype=np.float64),
        "text.screen_overlap": np.array(overlap, dtype=np.float64),
    }


def _path_features(
    query: np.ndarray,
    case: np.ndarray,
    item_ids: list[list[str]],
    kinds: list[list[str]],
    times: list[list[float]],
    heads: pl.DataFrame,
    graph: QueryGraph,
    recall: RecallConfig | None,
) -> dict[str, np.ndarray]:
    recall = recall or RecallConfig()
    now = heads["timestamp"].to_list()
    i2q, c2q = np.full(len(query), np.nan), np.full(len(query), np.nan)
    rows_of_case = np.searchsorted(case, np.arange(len(now) + 1))
    for start in range(0, len(now), CHUNK):
        stop = min(start + CHUNK, len(now))
        histories = [
            list(zip(item_ids[c], kinds[c], times[c], strict=True)) for c in range(start, stop)
        ]
        scores = path_scores(graph, history_matrix(graph, histories, now[start:stop], recall))
        rows = np.arange(rows_of_case[start], rows_of_case[stop])
        known = query[rows] >= 0
        local = case[rows] - start
        for name, out in (("i2q", i2q), ("c2q", c2q)):
            out[rows[known]] = scores[name][local[known], query[rows][known]]
    searches = np.where(query >= 0, np.log1p(graph.searches[np.maximum(query, 0)]), np.nan)
    return {"path.i2q": i2q, "path.c2q": c2q, "path.searches": searches}


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())
