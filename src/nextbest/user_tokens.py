"""User tokens: the shop's backend vouches for who is logged in, so a page cannot claim to be
someone else.

A page holds a browser key, which anyone can read. With it alone a request is anonymous: it may
send events for its session and ask for that session's list, but not name a user. To act for a
logged-in user, the page also sends a token that the shop's backend made with a secret the
server knows (NEXTBEST_IDENTITY_SECRETS or "identity_secrets" in the keys file):

    token = sign_user_token("u-42", secret, ttl_seconds=3600)   # on the shop's server
    # the page sends it as the X-User-Token header (the SDK's `userToken` option)

A token is `nbu1.<user id, base64url>.<expiry, unix seconds>.<HMAC-SHA256, base64url>`: the
user id and its expiry, signed. It is not encrypted (the user id is readable by whoever holds
the token) and it is a bearer token until it expires, so keep its lifetime short (minutes to
hours) and make a new one with each page that needs it. Several secrets may be valid at once,
so a secret can be rotated: add the new one first, sign with it, drop the old one after the
longest token lifetime.

Only the standard library: the client and the server share this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence

VERSION = "nbu1"
MIN_SECRET_CHARS = 32


class BadUserToken(ValueError):
    """A token the server does not accept; the message says why (expired, not signed by a
    known secret, malformed)."""


def sign_user_token(
    user_id: str, secret: str, ttl_seconds: float = 3600, now: float | None = None
) -> str:
    """A token that says `user_id` is logged in, valid for `ttl_seconds`."""
    if not user_id:
        raise ValueError("a user token needs a user id")
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be > 0, not {ttl_seconds}")
    check_secret(secret)
    expiry = int((time.time() if now is None else now) + ttl_seconds)
    payload = f"{VERSION}.{_encode(user_id.encode())}.{expiry}"
    return f"{payload}.{_signature(payload, secret)}"


def verify_user_token(token: str, secrets: Sequence[str], now: float | None = None) -> str:
    """The user id `token` vouches for, or BadUserToken."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != VERSION:
        raise BadUserToken(f"not a user token (expected {VERSION}.<user>.<expiry>.<signature>)")
    payload = ".".join(parts[:3])
    # every secret is tried, in constant time each: a mismatch says nothing of which was near
    if not any(hmac.compare_digest(_signature(payload, s), parts[3]) for s in secrets):
        raise BadUserToken("the user token is not signed by a secret this server knows")
    try:
        user_id = _decode(parts[1]).decode()
        expiry = int(parts[2])
    except (ValueError, binascii.Error):
        raise BadUserToken("the user token is malformed") from None
    if expiry <= (time.time() if now is None else now):
        raise BadUserToken("the user token has expired: ask the shop's server for a new one")
    return user_id


def check_secret(secret: str) -> None:
    if len(secret) < MIN_SECRET_CHARS or any(c.isspace() for c in secret):
        raise ValueError(
            f"an identity secret needs {MIN_SECRET_CHARS} or more characters and no spaces "
            "(make one with `openssl rand -hex 32`)"
        )


def _signature(payload: str, secret: str) -> str:
    return _encode(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
