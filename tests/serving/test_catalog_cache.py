"""The server's catalog cache follows the catalog's changes without reading old ones again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nextbest.events.catalog import SqlCatalog
from nextbest.events.log.database import open_engine, sqlite_url
from nextbest.events.schema import Item
from nextbest.serving import catalog_cache
from nextbest.serving.catalog_cache import CLOCK_SLACK_SECONDS, CatalogCache


def test_a_bulk_upload_is_read_once_then_only_new_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = SqlCatalog(open_engine(sqlite_url(tmp_path)))
    catalog.upsert([Item(item_id=f"i{k}", price=float(k)) for k in range(500)])
    cache = CatalogCache(catalog)
    read: list[int] = []
    original = catalog.changed_items_since

    def counted(when: float) -> list[tuple[Item, float]]:
        found = original(when)
        read.append(len(found))
        return found

    monkeypatch.setattr(catalog, "changed_items_since", counted)
    assert cache.refresh() == 500 and len(cache) == 500
    later = time.time() + CLOCK_SLACK_SECONDS + 1
    monkeypatch.setattr(catalog_cache.time, "time", lambda: later)  # every clock here
    cache.refresh()  # from the first read's start, less the slack: the upload once more
    cache.refresh()  # from the second read's start: nothing
    assert read[-1] == 0
    catalog.upsert([Item(item_id="i7", price=70.0, in_stock=False)])
    cache.refresh()
    table = cache.table(None)
    assert not table.in_stock[table.row_of["i7"]] and table.price[table.row_of["i7"]] == 70
