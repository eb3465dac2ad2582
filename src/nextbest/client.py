"""A small Python client for a nextbest server (for a shop's backend, scripts and tests).

    from nextbest.client import NextbestClient, new_event_id

    with NextbestClient("http://127.0.0.1:8000", key="...") as nb:
        nb.send_events([{"event_id": new_event_id(), "type": "view", "session_id": "s1",
                         "item_id": "sku-1"}])
        reply = nb.recommendations(session_id="s1", n=5)
        reply["items"][0]["item_id"]

A shop's server that hands a logged-in user's page a user token (for the browser SDK with a
browser key) makes it with `sign_user_token(user_id, identity_secret, ttl_seconds)`.

Sending is retried with exponential backoff on network errors, 429 and 5xx: events carry
their own ids, so a retry never logs an event twice. A 4xx reply raises `NextbestError` with
the fields at fault (a partly rejected batch raises too, after its good events were logged).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from nextbest.user_tokens import sign_user_token

__all__ = ["NextbestClient", "NextbestError", "new_event_id", "sign_user_token"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def new_event_id() -> str:
    return uuid.uuid4().hex


class NextbestError(Exception):
    """A reply the server refused: its status, summary and the fields at fault."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        self.status = status
        self.body = dict(body)
        fields = "; ".join(f"{d['field']}: {d['message']}" for d in body.get("detail", []))
        super().__init__(f"{status} {body.get('error', '')}" + (f" ({fields})" if fields else ""))


class NextbestClient:
    def __init__(
        self,
        url: str,
        key: str,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.2,
        http: httpx.Client | None = None,
    ) -> None:
        if retries < 0 or backoff < 0:
            raise ValueError(f"retries and backoff must be >= 0, not {retries}, {backoff}")
        self.retries, self.backoff = retries, backoff
        self.http = http or httpx.Client(base_url=url, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {key}"}

    def send_events(self, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Log events (at most 500 per call); the reply counts accepted and duplicate ones."""
        return self._call("POST", "/v1/events", json={"events": list(events)})

    def identify(self, session_id: str, user_id: str) -> dict[str, Any]:
        """Log in: the session belongs to the user from now on (its earlier events too)."""
        return self._call(
            "POST", "/v1/identify", json={"session_id": session_id, "user_id": user_id}
        )

    def recommendations(
        self,
        session_id: str | None = None,
        user_id: str | None = None,
        item_id: str | None = None,
        placement: str | None = None,
        n: int = 10,
        filter: str | None = None,
        filter_params: Mapping[str, Any] | None = None,
        candidates: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """The placement's list (`home` when none); `filter` and `filter_params` add a
        filter expression for this request; `candidates` are items to re-rank (`search`)."""
        body: dict[str, Any] = {"session_id": session_id, "user_id": user_id, "n": n}
        body |= {"item_id": item_id, "placement": placement, "filter": filter}
        body |= {"filter_params": dict(filter_params) if filter_params else None}
        body |= {"candidates": list(candidates) if candidates else None}
        return self._call("POST", "/v1/recommendations", json=_present(body))

    def keywords(
        self,
        session_id: str | None = None,
        user_id: str | None = None,
        item_id: str | None = None,
        n: int = 4,
    ) -> dict[str, Any]:
        """The keyword card (a read key): whether to show it, its title and keywords, and
        the `recommendation_id` a `keyword-click` event carries back."""
        params = {"session_id": session_id, "user_id": user_id, "item_id": item_id, "n": n}
        return self._call("GET", "/v1/keywords", params=_present(params))

    def search(
        self,
        q: str,
        session_id: str | None = None,
        user_id: str | None = None,
        item_id: str | None = None,
        n: int = 10,
    ) -> dict[str, Any]:
        """The catalog items matching `q`, ordered for the session (a read key)."""
        params = {"q": q, "session_id": session_id, "user_id": user_id, "item_id": item_id}
        return self._call("GET", "/v1/search", params=_present(params | {"n": n}))

    def similar(self, item_id: str, n: int = 10) -> dict[str, Any]:
        return self._call("GET", f"/v1/items/{item_id}/similar", params={"n": n})

    def served(self, recommendation_id: str, outcomes: int = 100) -> dict[str, Any]:
        """The list answered under this id and the events that carried it back (admin key)."""
        return self._call(
            "GET", f"/v1/recommendations/{recommendation_id}", params={"outcomes": outcomes}
        )

    def put_items(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Insert or replace catalog items (an admin key; at most 1000 per call)."""
        return self._call("PUT", "/v1/items", json={"items": list(items)})

    def user_affinity(self, user_id: str, n: int = 5) -> dict[str, Any]:
        """What the user leans to: the top `n` brands, categories, price bands and the
        discount sensitivity (a read key)."""
        return self._call("GET", f"/v1/users/{quote(user_id, safe='')}/affinity", params={"n": n})

    def session_affinity(self, session_id: str, n: int = 5) -> dict[str, Any]:
        """The same for one session (a read key)."""
        path = f"/v1/sessions/{quote(session_id, safe='')}/affinity"
        return self._call("GET", path, params={"n": n})

    def catalog_report(self) -> dict[str, Any]:
        """What the catalog lacks (an admin key)."""
        return self._call("GET", "/v1/catalog/report")

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/healthz")

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                reply = self.http.request(method, path, headers=self.headers, **kwargs)
            except httpx.TransportError:
                if last:
                    raise
            else:
                if reply.status_code < 400:
                    body: dict[str, Any] = reply.json()
                    return body
                if reply.status_code not in RETRY_STATUSES or last:
                    raise NextbestError(reply.status_code, _json(reply))
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def _present(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _json(reply: httpx.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        return {"error": reply.text[:200]}
    return body if isinstance(body, dict) else {"error": str(body)[:200]}
