"""User tokens: what the shop's server signs, the nextbest server verifies, nothing else."""

from __future__ import annotations

import pytest

from nextbest.user_tokens import BadUserToken, sign_user_token, verify_user_token

SECRET, OLD = "s" * 40, "o" * 40
NOW = 1_800_000_000.0


def test_a_token_names_its_user_until_it_expires() -> None:
    token = sign_user_token("u-42 é/.", SECRET, ttl_seconds=60, now=NOW)
    assert verify_user_token(token, [SECRET], now=NOW + 59) == "u-42 é/."  # any id survives
    with pytest.raises(BadUserToken, match="expired"):
        verify_user_token(token, [SECRET], now=NOW + 60)


def test_any_listed_secret_verifies_so_a_secret_can_rotate() -> None:
    old = sign_user_token("u1", OLD, now=NOW)
    new = sign_user_token("u1", SECRET, now=NOW)
    assert verify_user_token(old, [SECRET, OLD], now=NOW) == "u1"
    assert verify_user_token(new, [SECRET, OLD], now=NOW) == "u1"
    with pytest.raises(BadUserToken, match="not signed"):
        verify_user_token(old, [SECRET], now=NOW)  # the old secret was dropped


@pytest.mark.parametrize("part", [1, 2, 3])
def test_changing_any_part_breaks_the_signature(part: int) -> None:
    parts = sign_user_token("u1", SECRET, now=NOW).split(".")
    parts[part] = parts[part][:-1] + ("A" if parts[part][-1] != "A" else "B")
    with pytest.raises(BadUserToken):
        verify_user_token(".".join(parts), [SECRET], now=NOW)


@pytest.mark.parametrize("text", ["", "a.b.c", "nbu2.dTE.1.x", "nbu1.dTE.1.x.y", "x" * 300])
def test_malformed_tokens_are_refused(text: str) -> None:
    with pytest.raises(BadUserToken):
        verify_user_token(text, [SECRET], now=NOW)


def test_weak_secrets_and_empty_users_are_refused_when_signing() -> None:
    with pytest.raises(ValueError, match="32 or more"):
        sign_user_token("u1", "short")
    with pytest.raises(ValueError, match="user id"):
        sign_user_token("", SECRET)
    with pytest.raises(ValueError, match="ttl"):
        sign_user_token("u1", SECRET, ttl_seconds=0)
