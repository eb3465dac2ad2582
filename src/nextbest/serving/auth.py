"""API keys: `Authorization: Bearer KEY`, four scopes.

* browser: the key a shop's pages hold, public by nature. It sends events and asks for lists,
  but acts only for its session: it names a user only with a user token that the shop's
  backend signed (`nextbest.user_tokens`), and a session that belongs to a user only with that
  user's token;
* write: send events and logins for any session and user (the shop's server);
* read: recommendations, search, affinity for any session and user (the shop's server);
* admin: everything, including the catalog (`PUT /v1/items`) and models.

A missing or unknown key is 401; a known key without the scope is 403. Keys come from
NEXTBEST_*_KEYS and/or a keys file (NEXTBEST_KEYS_FILE, else `$NEXTBEST_HOME/api-keys.json`
when it exists; `nextbest keys new` writes one, readable by its owner only). The keys file is
read again when it changes, so keys and identity secrets rotate without a restart. With no keys
the server refuses to start, except in demo mode (NEXTBEST_DEMO=1), where it makes a set
itself: a server that quietly invents keys is one whose operator never chose them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Generic, TypeVar

from nextbest.serving.errors import ApiError
from nextbest.user_tokens import check_secret

logger = logging.getLogger(__name__)

KEYS_FILE = "api-keys.json"


class Scope(StrEnum):
    WRITE = "write"
    READ = "read"
    ADMIN = "admin"
    BROWSER = "browser"


SERVER_SCOPES = (Scope.WRITE, Scope.READ, Scope.ADMIN)
NO_SCOPES: frozenset[Scope] = frozenset()
CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    """Who sent a request: its key, and whether that is a browser key (then `user` is the
    user its token vouches for, None when it sent none)."""

    key: str
    browser: bool = False
    user: str | None = None


def key_digest(key: str) -> bytes:
    """What a key is looked up by: its SHA-256. A presented key is never compared with the
    configured ones, whose comparison time could tell how much of one it got right: its digest
    is looked up in a dict of theirs, and that lookup's time tells only about digests, which
    give nothing of the keys away."""
    return hashlib.sha256(key.encode()).digest()


def bearer_key(authorization: str | None) -> str:
    """The key of an `Authorization: Bearer KEY` header; a missing or malformed header is 401."""
    if not authorization:
        raise ApiError(
            401, "missing API key", "Authorization", "send Authorization: Bearer KEY", CHALLENGE
        )
    kind, _, key = authorization.partition(" ")
    if kind.lower() != "bearer" or not key.strip():
        raise ApiError(
            401,
            "malformed Authorization header",
            "Authorization",
            "use Authorization: Bearer KEY",
            CHALLENGE,
        )
    return key.strip()


def caller_of(key: str, granted: frozenset[Scope], needed: Scope, browser: bool) -> Caller:
    """The caller of `key`, which grants `granted`, if that holds `needed` (or, when `browser`,
    the browser scope); else the 401/403 ApiError."""
    if not granted:
        raise ApiError(
            401, "unknown API key", "Authorization", "this key is not configured", CHALLENGE
        )
    if needed in granted:
        return Caller(key)
    if browser and Scope.BROWSER in granted:
        return Caller(key, browser=True)
    if Scope.BROWSER in granted:
        raise ApiError(
            403,
            "a browser key may not call this",
            "Authorization",
            f"needs a {needed.value} key, which belongs on the shop's server, not in a page",
        )
    raise ApiError(
        403, f"this key may not {needed.value}", "Authorization", f"needs a {needed.value} key"
    )


@dataclass(frozen=True)
class ApiKeys:
    write: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()
    browser: tuple[str, ...] = ()
    # what the shop's backend signs user tokens with (the first signs, all verify)
    identity_secrets: tuple[str, ...] = field(default=(), repr=False)
    # each key's scopes by its digest (see `key_digest`)
    grants: dict[bytes, frozenset[Scope]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        grants: dict[bytes, set[Scope]] = {}
        for scope in Scope:
            for key in getattr(self, scope.value):
                if len(key) < 16 or any(c.isspace() for c in key):
                    raise ValueError(
                        f"an API key of scope {scope.value!r} is too short or has spaces: keys "
                        "need 16 or more characters (make one with `openssl rand -hex 24`)"
                    )
                grants.setdefault(key_digest(key), set()).add(scope)
        for secret in self.identity_secrets:
            check_secret(secret)
        # an admin key has every server scope
        granted = {
            digest: frozenset(SERVER_SCOPES) if Scope.ADMIN in scopes else frozenset(scopes)
            for digest, scopes in grants.items()
        }
        object.__setattr__(self, "grants", granted)

    @property
    def configured(self) -> bool:
        return any(getattr(self, scope.value) for scope in Scope)

    def __add__(self, other: ApiKeys) -> ApiKeys:
        return ApiKeys(
            **{name: getattr(self, name) + getattr(other, name) for name in KEY_FILE_FIELDS}
        )

    def scopes(self, key: str) -> frozenset[Scope]:
        """The scopes `key` grants (empty when it is no key of ours)."""
        return self.granted(key_digest(key))

    def granted(self, digest: bytes) -> frozenset[Scope]:
        """The scopes of the key whose `key_digest` this is (empty when it is none of ours)."""
        return self.grants.get(digest, NO_SCOPES)

    def check(self, authorization: str | None, needed: Scope, browser: bool = False) -> Caller:
        """The caller, if the header's key has `needed` (or, when `browser`, is a browser
        key); else the 401/403 ApiError. A browser caller's user is for `access` to prove."""
        key = bearer_key(authorization)
        return caller_of(key, self.scopes(key), needed, browser)

    def as_json(self) -> dict[str, list[str]]:
        return {name: list(getattr(self, name)) for name in KEY_FILE_FIELDS}


KEY_FILE_FIELDS = (*(scope.value for scope in Scope), "identity_secrets")


def read_keys_file(path: Path) -> ApiKeys:
    """A JSON object with "write", "read", "admin", "browser" and "identity_secrets": each a
    key or a list of keys (all optional)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the API keys file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"the API keys file {path} must hold a JSON object")
    unknown = sorted(set(raw) - set(KEY_FILE_FIELDS))
    if unknown:
        raise ValueError(
            f"{path}: unknown field {unknown[0]!r} (known: {', '.join(KEY_FILE_FIELDS)})"
        )
    values: dict[str, tuple[str, ...]] = {}
    for name in KEY_FILE_FIELDS:
        entry = raw.get(name, [])
        keys = [entry] if isinstance(entry, str) else entry
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError(f"{path}: {name!r} must be a key or a list of keys")
        values[name] = tuple(keys)
    try:
        return ApiKeys(**values)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def new_keys() -> ApiKeys:
    return ApiKeys(
        write=(f"nbw_{secrets.token_urlsafe(24)}",),
        read=(f"nbr_{secrets.token_urlsafe(24)}",),
        admin=(f"nba_{secrets.token_urlsafe(24)}",),
        browser=(f"nbb_{secrets.token_urlsafe(24)}",),
        identity_secrets=(secrets.token_urlsafe(32),),
    )


class KeyRing:
    """The keys in force: the fixed ones (from the environment) and the keys file's, read
    again when the file changes (looked at once per `interval` at most), so keys and secrets
    rotate without a restart. A file that no longer reads keeps the keys it gave last (and
    says so in the log): a typo in a rotation must not lock every client out."""

    def __init__(
        self,
        fixed: ApiKeys,
        path: Path | None = None,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fixed, self.path, self.interval, self.clock = fixed, path, interval, clock
        self._next_look = clock() + interval
        self._stamp = self._file_stamp()  # before the read: a change meanwhile is read again
        self._keys = fixed if path is None else fixed + read_keys_file(path)

    @property
    def current(self) -> ApiKeys:
        if self.path is not None and self.clock() >= self._next_look:
            self._next_look = self.clock() + self.interval
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._keys = self.fixed + read_keys_file(self.path)
                    logger.info("API keys read again from %s", self.path)
                except ValueError as exc:
                    logger.error("kept the previous API keys: %s", exc)
        return self._keys

    def check(self, authorization: str | None, needed: Scope, browser: bool = False) -> Caller:
        return self.current.check(authorization, needed, browser)

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size


Owner = TypeVar("Owner")


@dataclass(frozen=True)
class Owned(Generic[Owner]):
    """A key's owner, that owner's keys in force, and what the key grants there."""

    owner: Owner
    keys: ApiKeys
    granted: frozenset[Scope]


class KeyOwners(Generic[Owner]):
    """Which of several owners (the shops of a deployment: the default first) holds a key,
    and what it grants there: one digest lookup in a table of every owner's keys, not a look
    through each owner's keys per request.

    The table holds configured keys only (a presented key that is none of them is not kept),
    so its size is the keys' whatever the requests. Every lookup asks each ring for its keys
    in force and makes the table again when any of them is another object than the table was
    made from: a ring reads its file again within its `interval` (a second) of a change, so a
    key removed from a file stops working here when its ring drops it, as without the table."""

    def __init__(self, owners: Sequence[tuple[Owner, KeyRing]]) -> None:
        if not owners:
            raise ValueError("KeyOwners needs an owner (the default shop)")
        self.owners = tuple(owners)
        self._made: tuple[tuple[ApiKeys, ...], dict[bytes, Owned[Owner] | None]] = ((), {})

    def find(self, key: str) -> Owned[Owner]:
        """The owner of `key` (the default's, granting nothing, when no owner holds it); a
        key that two owners hold (a rotation gave it to both) is 403: refused, not guessed."""
        current = tuple(ring.current for _, ring in self.owners)
        made, table = self._made
        if made != current:  # the same objects, as a rule: compared by identity first
            table = self._table(current)
            self._made = (current, table)
        try:
            found = table[key_digest(key)]
        except KeyError:
            return Owned(self.owners[0][0], current[0], NO_SCOPES)
        if found is None:
            raise ApiError(403, "ambiguous API key", "Authorization", "two tenants hold this key")
        return found

    def _table(self, current: tuple[ApiKeys, ...]) -> dict[bytes, Owned[Owner] | None]:
        table: dict[bytes, Owned[Owner] | None] = {}
        for (owner, _), keys in zip(self.owners, current, strict=True):
            for digest, granted in keys.grants.items():
                table[digest] = None if digest in table else Owned(owner, keys, granted)
        return table


def write_keys_file(keys: ApiKeys, path: Path, single: bool = False) -> None:
    """Write `keys` readable by the owner only (`single`: one string per scope)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {k: v[0] for k, v in keys.as_json().items() if v} if single else keys.as_json()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(body, out, indent=2)


class NoKeysConfigured(ValueError):
    def __init__(self, home: Path) -> None:
        super().__init__(
            "no API keys configured: run `nextbest keys new` (writes "
            f"{home / KEYS_FILE}, readable by its owner only), or set NEXTBEST_WRITE_KEYS, "
            "NEXTBEST_READ_KEYS, NEXTBEST_ADMIN_KEYS and NEXTBEST_BROWSER_KEYS, or "
            "NEXTBEST_KEYS_FILE"
        )


def resolve_keys(fixed: ApiKeys, keys_file: Path | None, home: Path, demo: bool = False) -> KeyRing:
    """The keys in force: `fixed` (the environment's) and the keys file's. With neither:
    `home`'s keys file when there is one; else, in demo mode only, a generated set written
    there; else NoKeysConfigured."""
    ring = KeyRing(fixed, keys_file)
    if ring.current.configured:
        return ring
    default = home / KEYS_FILE
    if default.exists():
        return KeyRing(fixed, default)
    if not demo:
        raise NoKeysConfigured(home)
    write_keys_file(new_keys(), default)
    logger.warning("demo mode without API keys: made new ones in %s", default)
    return KeyRing(fixed, default)
