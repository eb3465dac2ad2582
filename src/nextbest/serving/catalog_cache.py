"""The server's view of the catalog: the items, which exist, and which are out of stock.

An item exists when the model answering knows it or the shop put it in the catalog
(`PUT /v1/items`). The cache holds every catalog item, follows the catalog's changes
(`refresh`, every few seconds, so other workers' upserts arrive), and asks the database
before calling an id unknown, so an item added through one worker is accepted by every
worker at once. `table(model)` is the pipeline's `ItemTable` over the model's items and the
catalog's, built once per change (the refresher builds it ahead of the requests), and
`facets()` what the affinity profiles take of each catalog item, likewise. `search(q, n)`
asks the catalog's full-text index (in memory, SQLite FTS5), which takes in the changed items
before it answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence

from nextbest.events.catalog import Catalog
from nextbest.events.schema import Item
from nextbest.keywords.search import ProductSearch
from nextbest.recommend.affinity import ItemFacets
from nextbest.recommend.items import ItemTable
from nextbest.serving.registry import LoadedModel

# Changes are read again from this far back: clocks of several workers differ a little.
CLOCK_SLACK_SECONDS = 5.0


class CatalogCache:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._items: dict[str, Item] = {}
        # per model tag (an experiment's variants may serve several versions at once)
        self._tables: dict[bytes, tuple[int, ItemTable]] = {}
        self._facets: tuple[int, ItemFacets] | None = None
        self._since = 0.0
        self._generation = 0  # grows with every change; keys the item table
        self._lock = threading.Lock()
        self._search = ProductSearch()
        self._unindexed: dict[str, Item] = {}  # changed since the index last took them in

    def refresh(self) -> int:
        """Read the catalog's changes since the last refresh; returns how many."""
        # Everything written before the previous read began was in it (or is stamped less than
        # the slack before it, on a worker whose clock is behind): read from there on. Reading
        # from the newest change instead would read a bulk upload again at every refresh.
        started = time.time()
        changes = self.catalog.changed_items_since(max(0.0, self._since - CLOCK_SLACK_SECONDS))
        with self._lock:
            changed = self._note(item for item, _ in changes)
            self._since = started
        return changed

    def upserted(self, items: Sequence[Item]) -> None:
        """Note items this worker just wrote (before the next refresh sees them)."""
        with self._lock:
            self._note(items)

    def _note(self, changes: Iterable[Item]) -> int:
        changed = 0
        for item in changes:
            if self._items.get(item.item_id) == item:
                continue
            self._items[item.item_id] = item
            self._unindexed[item.item_id] = item
            changed += 1
        if changed:
            self._generation += 1
        return changed

    def unknown(self, item_ids: Iterable[str], model: LoadedModel | None) -> set[str]:
        """The ids among `item_ids` that neither the model nor the catalog knows."""
        index = model.index if model is not None else {}
        missing = {i for i in item_ids if i not in index and i not in self._items}
        if missing:
            found = self.catalog.get(sorted(missing))
            if found:
                self.upserted(list(found.values()))
            missing -= set(found)
        return missing

    def table(self, model: LoadedModel | None) -> ItemTable:
        """The items as the pipeline's columns: the model's first, then the catalog's."""
        tag = model.tag if model is not None else b""
        cached = self._tables.get(tag)
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        with self._lock:
            generation, items = self._generation, dict(self._items)
        table = ItemTable.build(model.model.item_ids if model is not None else None, items)
        tables = {t: c for t, c in self._tables.items() if c[0] == generation}  # drop stale
        tables[tag] = (generation, table)
        self._tables = tables  # one assignment: readers see the old dict or the new
        return table

    def forget_tables(self, keep: set[bytes]) -> None:
        """Drop the item tables of model tags no longer served (keep: the tags that are)."""
        self._tables = {t: c for t, c in self._tables.items() if t in keep}

    def facets(self) -> ItemFacets:
        """The catalog items' affinity facets (brand, category levels, price band, discount)."""
        cached = self._facets
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        with self._lock:
            generation, items = self._generation, list(self._items.values())
        facets = ItemFacets.build(items)
        self._facets = (generation, facets)
        return facets

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        """The catalog items matching `query`, best first (`ProductSearch.search`)."""
        self.index_changes()
        return self._search.search(query, n)

    def index_changes(self) -> int:
        """Take the changed items into the full-text index (the refresher does it ahead of
        the requests); returns how many."""
        if not self._unindexed:
            return 0
        with self._lock:
            changed, self._unindexed = list(self._unindexed.values()), {}
        return self._search.upsert_items(changed)

    def items(self) -> list[Item]:
        """Every catalog item this worker knows (a snapshot)."""
        with self._lock:
            return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)
