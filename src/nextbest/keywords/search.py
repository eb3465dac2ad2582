"""Product search: SQLite FTS5 with BM25 over the catalog, re-ranked for the shopper.

The index holds one row per item: its title, category path, brand and attribute values, in
an FTS5 table (stemmed by FTS5's Porter tokenizer, so "shoe" finds "shoes"). BM25 weighs a
match in the title above one in the category, brand or attributes (`COLUMN_WEIGHTS`).

A shopper's text never reaches FTS5's query syntax: it is cut into words (letters and digits),
each word quoted as a phrase, so `NEAR`, `OR`, `*`, `^`, `:` or quotes in a query are only
words or nothing. All words must match; when no item holds them all, any word may (so a
long query still finds something), ranked by BM25 as before.

The shopper's re-rank is not here: the matches go to the `search` placement as its
candidates, whose `personal` ranker fuses their order with the session model's
(`GET /v1/search`, `evaluation/search_eval.py`).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from nextbest.events.schema import CATEGORY_SEPARATOR, Item

MAX_WORDS = 16  # words of a query used; the rest are ignored
COLUMN_WEIGHTS = (2.0, 1.0, 1.0, 0.5)  # title, category, brand, attributes
_WORD = re.compile(r"\w+", re.UNICODE)


def match_expression(query: str, any_word: bool = False) -> str | None:
    """The FTS5 MATCH text of a shopper's query (None when it holds no word)."""
    words = [w for w in _WORD.findall(query.lower()) if w.strip("_")][:MAX_WORDS]
    if not words:
        return None
    quoted = [f'"{word}"' for word in words]  # a quoted phrase: no operator inside
    return (" OR " if any_word else " ").join(quoted)


def _attribute_text(attributes: str | None) -> str:
    if not attributes:
        return ""
    try:
        values = json.loads(attributes)
    except json.JSONDecodeError:
        return ""
    if not isinstance(values, dict):
        return ""
    words: list[str] = []
    for value in values.values():
        for part in value if isinstance(value, list) else [value]:
            if isinstance(part, str | int | float) and not isinstance(part, bool):
                words.append(str(part))
    return " ".join(words)


class ProductSearch:
    """A BM25 index of a catalog; `path` None keeps it in memory."""

    def __init__(self, path: Path | None = None) -> None:
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), check_same_thread=False
        )
        self._lock = threading.Lock()
        self._db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS products USING fts5("
            "item_id UNINDEXED, title, category, brand, attributes, "
            "tokenize = 'porter unicode61 remove_diacritics 2')"
        )
        # item_id -> its row: FTS5 finds a row fast only by rowid (a DELETE by the unindexed
        # item_id scans every row, which made indexing a 43k catalog take minutes of a core)
        self._rows: dict[str, int] = {
            str(item): int(row)
            for row, item in self._db.execute("SELECT rowid, item_id FROM products")
        }
        self._next_row = max(self._rows.values(), default=0) + 1

    @classmethod
    def of_items(cls, items: pl.DataFrame, path: Path | None = None) -> ProductSearch:
        index = cls(path)
        index.upsert(items)
        return index

    def upsert(self, items: pl.DataFrame) -> int:
        """Index these items (ITEM_SCHEMA columns), replacing earlier rows of the same ids."""
        return self._write(
            (
                row["item_id"],
                row.get("title") or "",
                row.get("category_path") or "",
                row.get("brand") or "",
                _attribute_text(row.get("attributes")),
            )
            for row in items.iter_rows(named=True)
        )

    def upsert_items(self, items: Iterable[Item]) -> int:
        """The same for catalog items as the server holds them."""
        return self._write(
            (
                item.item_id,
                item.title,
                CATEGORY_SEPARATOR.join(item.category_path),
                item.brand or "",
                _attribute_text(json.dumps(item.attributes)),
            )
            for item in items
        )

    def _write(self, rows: Iterable[tuple[str, str, str, str, str]]) -> int:
        latest = {row[0]: row for row in rows}  # an item listed twice: its last text
        with self._lock, self._db:
            self._db.executemany(
                "DELETE FROM products WHERE rowid = ?",
                [(self._rows[item],) for item in latest if item in self._rows],
            )
            numbered = []
            for item, row in latest.items():
                if item not in self._rows:
                    self._rows[item], self._next_row = self._next_row, self._next_row + 1
                numbered.append((self._rows[item], *row))
            self._db.executemany(
                "INSERT INTO products (rowid, item_id, title, category, brand, attributes) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                numbered,
            )
        return len(latest)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM products").fetchone()[0])

    def search(self, query: str, n: int = 100) -> list[tuple[str, float]]:
        """(item_id, relevance) of the best `n` matches, most relevant first (relevance is
        minus FTS5's BM25: higher is better)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, not {n}")
        weights = ", ".join(str(w) for w in (0.0, *COLUMN_WEIGHTS))  # item_id is unindexed
        sql = (
            f"SELECT item_id, -bm25(products, {weights}) AS relevance FROM products "
            "WHERE products MATCH ? ORDER BY relevance DESC, item_id LIMIT ?"
        )
        for any_word in (False, True):
            expression = match_expression(query, any_word)
            if expression is None:
                return []
            with self._lock:
                found = self._db.execute(sql, (expression, n)).fetchall()
            if found:
                return [(str(item), float(relevance)) for item, relevance in found]
        return []

    def close(self) -> None:
        self._db.close()
