"""What `nextbest demo` needs before it serves: the demo's keys file and its catalog."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import polars as pl

from nextbest.events.catalog import SqlCatalog
from nextbest.events.log.database import open_engine
from nextbest.events.schema import ITEM_SCHEMA
from nextbest.serving.auth import Scope
from nextbest.serving.demo import load_demo_catalog, write_demo_keys
from nextbest.serving.settings import ServingSettings


def test_demo_keys_are_written_once_as_one_key_per_scope(tmp_path: Path) -> None:
    keys = write_demo_keys(tmp_path)
    path = tmp_path / "demo-keys.json"
    stored = json.loads(path.read_text())
    assert set(stored) == {"write", "read", "admin", "browser", "identity_secrets"} and all(
        isinstance(v, str) for v in stored.values()
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert write_demo_keys(tmp_path) == keys  # read back, not made again
    assert keys.scopes(stored["write"]) == {Scope.WRITE}
    assert keys.scopes(stored["browser"]) == {Scope.BROWSER}
    assert keys.scopes(stored["admin"]) == {Scope.WRITE, Scope.READ, Scope.ADMIN}


def test_demo_keys_from_before_browser_keys_get_one_and_keep_theirs(tmp_path: Path) -> None:
    old = {"write": "w" * 20, "read": "r" * 20, "admin": "a" * 20}
    (tmp_path / "demo-keys.json").write_text(json.dumps(old))
    keys = write_demo_keys(tmp_path)
    assert (keys.write, keys.read, keys.admin) == (("w" * 20,), ("r" * 20,), ("a" * 20,))
    assert keys.browser and keys.identity_secrets
    assert write_demo_keys(tmp_path) == keys


def test_the_demo_catalog_is_loaded_once(tmp_path: Path) -> None:
    shop = tmp_path / "demo-shop"
    shop.mkdir()
    rows = {
        "item_id": ["a1", "a2"],
        "title": ["Red shoe", "Blue hat"],
        "category_path": ["Shoes > Red", "Hats"],
        "brand": ["Acme", None],
        "price": [10.0, None],
        "discount": [None, 0.1],
        "attributes": ['{"size": 42}', None],
        "in_stock": [True, False],
    }
    pl.DataFrame(rows, schema=ITEM_SCHEMA).write_csv(shop / "items.csv")
    settings = ServingSettings(home=tmp_path)
    assert load_demo_catalog(tmp_path, settings) == 2
    assert load_demo_catalog(tmp_path, settings) == 0
    engine = open_engine(settings.database)
    items = SqlCatalog(engine).get(["a1", "a2"])
    engine.dispose()
    assert items["a1"].category_path == ("Shoes", "Red") and items["a1"].attributes == {"size": 42}
    assert items["a2"].in_stock is False and items["a2"].discount == 0.1
