"""Serving the demo shop: its API keys, its catalog in the database, then the server.

`nextbest demo` trains, saves the model to serve last (the server serves the newest version),
then calls `serve_demo(home, port, host)`; the keys it serves with are in
`$NEXTBEST_HOME/demo-keys.json` as {"write": ..., "read": ..., "admin": ...}, and the page is
at http://HOST:PORT/demo/ (`/` redirects there).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import replace
from pathlib import Path

import polars as pl

from nextbest.events.catalog import SqlCatalog
from nextbest.events.log.database import open_engine
from nextbest.events.schema import ITEM_SCHEMA, item_of_row
from nextbest.serving.auth import ApiKeys, new_keys, read_keys_file, write_keys_file
from nextbest.serving.settings import ServingSettings

logger = logging.getLogger(__name__)

DEMO_KEYS = "demo-keys.json"
DEMO_SHOP = "demo-shop"


def write_demo_keys(home: Path) -> ApiKeys:
    """The demo's keys: read from `home/demo-keys.json`, made and written there if missing
    (a file from before browser keys gets one, and an identity secret, added)."""
    path = home / DEMO_KEYS
    made = new_keys()
    if path.exists():
        keys = read_keys_file(path)
        if keys.browser and keys.identity_secrets:
            return keys
        made = replace(keys, browser=made.browser, identity_secrets=made.identity_secrets)
    write_keys_file(made, path, single=True)
    return made


def load_demo_catalog(home: Path, settings: ServingSettings) -> int:
    """Put the demo shop's items.csv into the catalog table (once); returns the items added."""
    source = home / DEMO_SHOP / "items.csv"
    if not source.exists():
        return 0
    engine = open_engine(settings.database, settings.sqlite_synchronous)
    try:
        catalog = SqlCatalog(engine, settings.database_schema)
        if catalog.count():
            return 0
        table = pl.read_csv(source, schema_overrides=ITEM_SCHEMA)
        items = [item_of_row(row) for row in table.iter_rows(named=True)]
        for start in range(0, len(items), 5_000):
            catalog.upsert(items[start : start + 5_000])
        logger.info("demo catalog: %d items from %s", len(items), source)
        return len(items)
    finally:
        engine.dispose()


def check_port(host: str, port: int) -> None:
    """ValueError, saying what to do, unless `host:port` can be listened on now."""
    if not 0 < port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, not {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValueError(
                f"cannot serve on {host}:{port} ({exc.strerror}): pass another --port or --host, "
                "or --no-serve to train and report only"
            ) from None


def serve_demo(home: Path, port: int = 8000, host: str = "127.0.0.1") -> None:
    """Serve the demo shop in `home` (after training) at http://HOST:PORT until interrupted."""
    from nextbest.serving.server import run

    write_demo_keys(home)
    os.environ["NEXTBEST_HOME"] = str(home)
    os.environ["NEXTBEST_KEYS_FILE"] = str(home / DEMO_KEYS)
    os.environ["NEXTBEST_DEMO"] = "1"
    load_demo_catalog(home, ServingSettings())
    logger.info("demo: http://%s:%d (API keys in %s)", host, port, home / DEMO_KEYS)
    run(host, port, workers=1)
