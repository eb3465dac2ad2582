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
    path      the meta-path recall's scores of the keyword for this shopper (i2q, c2q,
              scene) and how often it was searched

The category alone (`item`) needs no column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from nextbest.events.schema import CATEGORY_SEPARATOR
from nextbest.keywords.graph import QueryGraph, category_levels, normalise_text
from nextbest.keywords.recall import (
    PATHS,
    RecallConfig,
    history_matrix,
    path_scores,
    shopper_path_scores,
)
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
MAX_BRAND_MEMO = 100_000  # keywords whose brand a vocabulary remembers
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


def ordered_cards(cards: pl.DataFrame) -> pl.DataFrame:
    """The cards in the order of `keyword_ranking_data`'s rows: by time, then card, then
    position."""
    return conform_cards(cards).sort("timestamp", "card_id", "position")


def read_cards(path: Path) -> pl.DataFrame:
    """The card table of a Parquet file; a missing or unreadable file, or a missing column, is
    a ValueError that names it."""
    if not path.is_file():
        raise ValueError(f"keyword cards {path}: no such file")
    try:
        cards = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise ValueError(f"keyword cards {path}: not a readable Parquet file ({error})") from error
    return conform_cards(cards)


@dataclass(frozen=True)
class Vocabulary:
    """The categories that keywords and products share, and what the features read."""

    leaves: list[str]  # the catalog's leaf category paths: the rankers' "item" vocabulary
    item_leaf: dict[str, int]
    item_words: dict[str, frozenset[str]]  # title and category words of each item
    item_brand: dict[str, str]
    query_leaf: np.ndarray  # [Q] the leaf each graph query led to most (-1: unknown)
    parent: np.ndarray  # [leaves] index of each leaf's parent path

    @cached_property
    def brands_longest_first(self) -> list[str]:
        """Lower-case brand names, longest first (a keyword names the longest that fits)."""
        return sorted(set(self.item_brand.values()), key=lambda b: (-len(b), b))

    def brand_named(self, text: str) -> str | None:
        """The brand a normalised keyword starts with, the longest that fits ("acme pro
        tents", not "acme"); remembered, since a server asks about the same keywords again."""
        memo: dict[str, str | None] = self.__dict__.setdefault("_brand_memo", {})
        if text not in memo:
            if len(memo) > MAX_BRAND_MEMO:
                memo.clear()
            memo[text] = next(
                (b for b in self.brands_longest_first if text.startswith(b + " ")), None
            )
        return memo[text]

    @staticmethod
    def leaves_of(items: pl.DataFrame) -> dict[str, int]:
        """Each item's leaf category (its full path) as a number, in catalog order."""
        leaf_of: dict[str, int] = {}
        return {
            item_id: leaf_of.setdefault(path, len(leaf_of))
            for item_id, path in items.select("item_id", "category_path").iter_rows()
            if path
        }

    @classmethod
    def of(cls, graph: QueryGraph, items: pl.DataFrame) -> Vocabulary:
        item_leaf = Vocabulary.leaves_of(items)
        item_words, item_brand = {}, {}
        rows = items.select("item_id", "title", "category_path", "brand").iter_rows()
        for item_id, title, path, brand in rows:
            item_words[item_id] = frozenset(_words(f"{title or ''} {path or ''}"))
            if brand:
                item_brand[item_id] = brand.lower()
        paths = dict(items.select("item_id", "category_path").drop_nulls().iter_rows())
        leaves = [""] * (max(item_leaf.values(), default=-1) + 1)
        for item_id, leaf in item_leaf.items():
            leaves[leaf] = paths[item_id]
        parents: dict[str, int] = {}
        parent = np.array(
            [parents.setdefault(p.rsplit(CATEGORY_SEPARATOR, 1)[0], len(parents)) for p in leaves],
            dtype=np.int64,
        )
        # each query's leaf: the graph's (the deepest category its searches led to most), in
        # the catalog's spelling of the path
        by_level = {
            level: k for k, path in enumerate(leaves) for level in category_levels(path)[-1:]
        }
        graph_leaf = graph.lookups.query_leaf
        query_leaf = np.array(
            [by_level.get(graph.categories[c], -1) if c >= 0 else -1 for c in graph_leaf.tolist()],
            dtype=np.int64,
        )
        return cls(leaves, item_leaf, item_words, item_brand, query_leaf, parent)

    # -- storage (beside a served keyword ranker) ------------------------------------------
    def save(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "leaves": self.leaves,
                    "item_leaf": self.item_leaf,
                    "item_words": {i: sorted(w) for i, w in self.item_words.items()},
                    "item_brand": self.item_brand,
                    "query_leaf": self.query_leaf.tolist(),
                    "parent": self.parent.tolist(),
                }
            )
        )

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        try:
            saved = json.loads(path.read_text())
            return cls(
                leaves=list(saved["leaves"]),
                item_leaf={str(k): int(v) for k, v in saved["item_leaf"].items()},
                item_words={str(k): frozenset(v) for k, v in saved["item_words"].items()},
                item_brand={str(k): str(v) for k, v in saved["item_brand"].items()},
                query_leaf=np.array(saved["query_leaf"], dtype=np.int64),
                parent=np.array(saved["parent"], dtype=np.int64),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: not a saved keyword vocabulary ({error})") from None


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
    cards = ordered_cards(cards)
    card_ids = cards["card_id"].to_numpy()
    first = np.r_[True, card_ids[1:] != card_ids[:-1]]
    case = np.cumsum(first) - 1
    heads = cards.filter(pl.Series(first))
    data = ranking_cases(
        cards["query"].to_list(),
        case,
        recent_item_events(heads, events, width),
        heads["timestamp"].to_numpy(),
        heads["item_id"].to_list(),
        graph,
        vocabulary,
        width,
        recall,
    )
    return replace(
        data,
        label=cards["clicked"].to_numpy().astype(np.float32),
        session=np.unique(heads["session_id"].to_numpy(), return_inverse=True)[1].astype(np.int64),
    )


def ranking_cases(
    queries: Sequence[str],
    case: np.ndarray,
    recent: list[list[tuple[str, str, float]]],
    now: np.ndarray,
    on_screen: Sequence[str | None],
    graph: QueryGraph,
    vocabulary: Vocabulary,
    width: int = HISTORY_WIDTH,
    recall: RecallConfig | None = None,
) -> RankingData:
    """The rankers' rows of keyword `queries` [N], row r a keyword of case `case[r]` (cases
    numbered 0.. in order), each case's shopper with their `recent` item events (item_id,
    type, timestamp; oldest first), at time `now`, looking at `on_screen`. Unlabelled: the
    training cards add their clicks; a served card is one case."""
    history = category_history(recent, now, vocabulary.item_leaf, width)
    query_index = graph.query_index()
    query = np.array([query_index.get(normalise_text(q), -1) for q in queries], np.int64)
    leaf = np.where(query >= 0, vocabulary.query_leaf[np.maximum(query, 0)], -1)
    features: dict[str, np.ndarray] = {}
    features |= _history_features(leaf, case, history, on_screen, vocabulary)
    features |= _text_features(queries, case, recent, on_screen, vocabulary)
    features |= _path_features(query, case, recent, now, graph, recall)
    names = tuple(features)
    groups = {g: tuple(n for n in names if n.startswith(f"{g}.")) for g in GROUPS}
    return RankingData(
        case=case.astype(np.int64),
        item=leaf,
        features=np.stack([features[n] for n in names], axis=1).astype(np.float32),
        names=names,
        groups=groups,
        history=history,
        n_items=len(vocabulary.leaves),
    )


def recent_item_events(
    heads: pl.DataFrame, events: pl.DataFrame, width: int
) -> list[list[tuple[str, str, float]]]:
    """Each card's (one row per card: session_id, user_id, timestamp) latest `width` item
    events at or before it, oldest first, as (item_id, type, timestamp): the meta-paths'
    history. A signed-in user's span sessions; an anonymous visitor's stay in the session."""
    item_events = events.filter(pl.col("item_id").is_not_null()).select(
        pl.coalesce("user_id", "session_id").alias("shopper"), "timestamp", "item_id", "type"
    )
    card_shoppers = heads.select(pl.coalesce("user_id", "session_id").alias("shopper"))
    shoppers = pl.concat([item_events["shopper"], card_shoppers["shopper"]])
    codes = shoppers.cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    event_code, card_code = codes[: item_events.height], codes[item_events.height :]
    origin = min(item_events["timestamp"].min() or 0.0, heads["timestamp"].min() or 0.0)

    def key(code: np.ndarray, stamps: pl.Series) -> np.ndarray:
        """One sortable key per (shopper, millisecond)."""
        return (code << 40) + ((stamps.to_numpy() - origin) * 1000).astype(np.int64)

    event_keys = key(event_code, item_events["timestamp"])
    order = np.argsort(event_keys, kind="stable")
    sorted_keys = event_keys[order]
    end = np.searchsorted(sorted_keys, key(card_code, heads["timestamp"]), side="right")
    begin = np.maximum(np.searchsorted(sorted_keys, card_code << 40, side="left"), end - width)
    ids = item_events["item_id"].to_list()
    types = item_events["type"].to_list()
    stamps = item_events["timestamp"].to_list()
    return [
        [(ids[r], types[r], stamps[r]) for r in order[b:e].tolist()]
        for b, e in zip(begin.tolist(), end.tolist(), strict=True)
    ]


def category_history(
    recent: list[list[tuple[str, str, float]]],
    now: np.ndarray,
    item_leaf: dict[str, int],
    width: int,
) -> History:
    """The rankers' view of `recent`: leaf categories, action codes and ages at `now`,
    left-padded to `width`."""
    items = np.full((len(recent), width), -1, dtype=np.int64)
    types = np.full((len(recent), width), PAD, dtype=np.int8)
    age = np.zeros((len(recent), width), dtype=np.float32)
    for row, events in enumerate(recent):
        pad = width - len(events)
        for k, (item_id, kind, timestamp) in enumerate(events, start=pad):
            items[row, k] = item_leaf.get(item_id, -1)
            types[row, k] = ACTION_CODES.get(kind, OTHER)
            age[row, k] = now[row] - timestamp
    return History(items=items, types=types, age=age)


def _history_features(
    leaf: np.ndarray,
    case: np.ndarray,
    history: History,
    on_screen: Sequence[str | None],
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
    queries: Sequence[str],
    case: np.ndarray,
    recent: list[list[tuple[str, str, float]]],
    on_screen: Sequence[str | None],
    vocabulary: Vocabulary,
) -> dict[str, np.ndarray]:
    brand_of = vocabulary.item_brand
    history_brands = [{brand_of[i] for i, _, _ in row if i in brand_of} for row in recent]
    screen_words = [vocabulary.item_words.get(i or "", frozenset()) for i in on_screen]
    texts = {q: normalise_text(q) for q in set(queries)}
    brand_in = {t: vocabulary.brand_named(t) for t in texts.values()}
    words, names_brand, brand_seen, overlap = [], [], [], []
    for query, c in zip(queries, case.tolist(), strict=True):
        text = texts[query]
        tokens = set(_words(text))
        brand = brand_in[text]
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
    recent: list[list[tuple[str, str, float]]],
    stamps: np.ndarray,
    graph: QueryGraph,
    recall: RecallConfig | None,
) -> dict[str, np.ndarray]:
    recall = recall or RecallConfig()
    now = stamps.tolist()
    found = {path: np.full(len(query), np.nan) for path in PATHS}
    rows_of_case = np.searchsorted(case, np.arange(len(now) + 1))
    if len(now) == 1:  # a served card: one shopper's walks, not a [1, Q] matrix product
        scores = {
            name: values[None, :]
            for name, values in shopper_path_scores(graph, recent[0], now[0], recall).items()
        }
        known = query >= 0
        for name, out in found.items():
            out[known] = scores[name][0, query[known]]
    for start in range(0, len(now) if len(now) > 1 else 0, CHUNK):
        stop = min(start + CHUNK, len(now))
        history = history_matrix(graph, recent[start:stop], now[start:stop], recall)
        scores = path_scores(graph, history)
        rows = np.arange(rows_of_case[start], rows_of_case[stop])
        known = query[rows] >= 0
        local = case[rows] - start
        for name, out in found.items():
            out[rows[known]] = scores[name][local[known], query[rows][known]]
    searches = np.where(query >= 0, np.log1p(graph.searches[np.maximum(query, 0)]), np.nan)
    return {f"path.{name}": out for name, out in found.items()} | {"path.searches": searches}


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())
