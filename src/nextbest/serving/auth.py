"""API keys: `Authorization: Bearer KEY`, three scopes.

* write: send events (`POST /v1/events`); safe to put in a shop's pages;
* read: ask for recommendations and similar items (the shop's server, or a page that shows them);
* admin: everything, including the catalog (`PUT /v1/items`) and models.

A missing or unknown key is 401; a known key without the scope is 403. Keys come from
NEXTBEST_*_KEYS and/or a keys file (NEXTBEST_KEYS_FILE, else `$NEXTBEST_HOME/api-keys.json`
when it exists; `nextbest keys new` writes one, readable by its owner only). With none of
these the server refuses to start, except in demo mode (NEXTBEST_DEMO=1), where it makes a set
itself: a server that quietly invents keys is one whose operator never chose them.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from nextbest.serving.errors import ApiError

logger = logging.getLogger(__name__)

KEYS_FILE = "api-keys.json"


class Scope(StrEnum):
    WRITE = "write"
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True)
class ApiKeys:
    write: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for scope in Scope:
            for key in getattr(self, scope.value):
                if len(key) < 16 or any(c.isspace() for c in key):
                    raise ValueError(
                        f"an API key of scope {scope.value!r} is too short or has spaces: keys "
                        "need 16 or more characters (make one with `openssl rand -hex 24`)"
                    )

    def scopes(self, key: str) -> set[Scope]:
        """The scopes `key` grants (empty when it is no key of ours)."""
        granted = set()
        for scope in Scope:
            # compare with every key of the scope, in constant time per key
            if any(hmac.compare_digest(key.encode(), k.encode()) for k in getattr(self, scope)):
                granted.add(scope)
        return set(Scope) if Scope.ADMIN in granted else granted

    def check(self, authorization: str | None, needed: Scope) -> str:
        """The header's key if it has `needed`; else the 401/403 ApiError."""
        challenge = {"WWW-Authenticate": "Bearer"}
        if not authorization:
            raise ApiError(
                401, "missing API key", "Authorization", "send Authorization: Bearer KEY", challenge
            )
        kind, _, key = authorization.partition(" ")
        if kind.lower() != "bearer" or not key.strip():
            raise ApiError(
                401,
                "malformed Authorization header",
                "Authorization",
                "use Authorization: Bearer KEY",
                challenge,
            )
        granted = self.scopes(key.strip())
        if not granted:
            raise ApiError(
                401, "unknown API key", "Authorization", "this key is not configured", challenge
            )
        if needed not in granted:
            raise ApiError(
                403,
                f"this key may not {needed.value}",
                "Authorization",
                f"needs a {needed.value} key",
            )
        return key.strip()

    def as_json(self) -> dict[str, list[str]]:
        return {scope.value: list(getattr(self, scope.value)) for scope in Scope}


def read_keys_file(path: Path) -> ApiKeys:
    """A JSON object with "write", "read", "admin": each a key or a list of keys."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the API keys file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"the API keys file {path} must hold a JSON object")
    values: dict[str, tuple[str, ...]] = {}
    for scope in Scope:
        entry = raw.get(scope.value, [])
        keys = [entry] if isinstance(entry, str) else entry
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError(f"{path}: {scope.value!r} must be a key or a list of keys")
        values[scope.value] = tuple(keys)
    return ApiKeys(**values)


def new_keys() -> ApiKeys:
    return ApiKeys(
        write=(f"nbw_{secrets.token_urlsafe(24)}",),
        read=(f"nbr_{secrets.token_urlsafe(24)}",),
        admin=(f"nba_{secrets.token_urlsafe(24)}",),
    )


def write_keys_file(keys: ApiKeys, path: Path, single: bool = False) -> None:
    """Write `keys` readable by the owner only (`single`: one string per scope)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {k: v[0] for k, v in keys.as_json().items()} if single else keys.as_json()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(body, out, indent=2)


class NoKeysConfigured(ValueError):
    def __init__(self, home: Path) -> None:
        super().__init__(
            "no API keys configured: run `nextbest keys new` (writes "
            f"{home / KEYS_FILE}, readable by its owner only), or set NEXTBEST_WRITE_KEYS, "
            "NEXTBEST_READ_KEYS and NEXTBEST_ADMIN_KEYS, or NEXTBEST_KEYS_FILE"
        )


def resolve_keys(
    write: tuple[str, ...],
    read: tuple[str, ...],
    admin: tuple[str, ...],
    keys_file: Path | None,
    home: Path,
    demo: bool = False,
) -> ApiKeys:
    """The configured keys. Without any: `home`'s keys file when there is one; else, in demo
    mode only, a generated set written there; else NoKeysConfigured."""
    keys = ApiKeys(write, read, admin)
    if keys_file is not None:
        from_file = read_keys_file(keys_file)
        keys = ApiKeys(
            keys.write + from_file.write, keys.read + from_file.read, keys.admin + from_file.admin
        )
    if keys.write or keys.read or keys.admin:
        return keys
    default = home / KEYS_FILE
    if default.exists():
        return read_keys_file(default)
    if not demo:
        raise NoKeysConfigured(home)
    keys = new_keys()
    write_keys_file(keys, default)
    logger.warning("demo mode without API keys: made new ones in %s", default)
    return keys
