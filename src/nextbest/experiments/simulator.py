"""The shopper simulator: simulated shoppers visit a real nextbest server over HTTP.

Each visit is a new session. The shopper lands on an item of their intent (found on their
own: an event without a recommendation id), and then, page after page, asks the server for
the product page's list (`POST /v1/recommendations`, placement "product") and its keyword
card (`GET /v1/keywords`), reacts as `shoppers.py` says, and sends what they did as events
(`POST /v1/events`), all through the Python client (`nextbest.client`). A click carries the
list's recommendation id back, as do the cart add and the purchase of a clicked item; a
keyword click runs the server's personalised search (`GET /v1/search`), whose list is read
like any other. Nothing between the simulator and the server is faked: the server's
experiments assign, answer and attribute as for real shoppers.

    stats = run_shoppers(url, keys, truth, shoppers=1_000, seed=0)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from nextbest.client import NextbestClient, NextbestError
from nextbest.experiments.shoppers import Reactions, Shopper, ShopTruth, pick

PLACEMENT = "product"
LIST_SIZE = 10


@dataclass
class SimulationStats:
    """What the simulator saw and did, summed over the visits."""

    visits: int = 0
    requests: int = 0
    errors: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # lists, clicks, carts, purchases...
    by_variant: Counter[str] = field(default_factory=Counter)  # lists answered per variant
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, visit: Counter[str], variants: Counter[str], requests: int, errors: int) -> None:
        with self._lock:
            self.visits += 1
            self.counts.update(visit)
            self.by_variant.update(variants)
            self.requests += requests
            self.errors += errors


@dataclass(frozen=True)
class _Clients:
    """The Python client with the read key and with the write key, over one connection
    pool, without retries: a failed call is counted, not hidden."""

    read: NextbestClient
    write: NextbestClient

    @classmethod
    def open(cls, url: str, keys: dict[str, str]) -> _Clients:
        http = httpx.Client(base_url=url, timeout=30.0)
        return cls(*(NextbestClient(url, keys[k], retries=0, http=http) for k in ("read", "write")))

    def close(self) -> None:
        self.read.close()


class _Visit:
    """One shopper's visit: their session and their calls to the server."""

    def __init__(
        self, clients: _Clients, truth: ShopTruth, shopper: Shopper, reactions: Reactions,
        rng: np.random.Generator, session: str,
    ) -> None:  # fmt: skip
        self.clients, self.truth, self.shopper = clients, truth, shopper
        self.reactions, self.rng = reactions, rng
        self.session = session  # from the seed: a rerun assigns every visit alike
        self.counts: Counter[str] = Counter()
        self.variants: Counter[str] = Counter()
        self.requests = self.errors = 0

    def run(self) -> None:
        truth, shopper, reactions = self.truth, self.shopper, self.reactions
        row = truth.find(shopper, self.rng)
        self.event("view", row)  # the landing: found on their own
        for _ in range(reactions.max_pages):
            clicked, rid = self.product_page(row)
            if clicked is None:
                if self.rng.random() < reactions.leave_after_miss:
                    break
                clicked, rid = truth.find(shopper, self.rng), None  # browses on their own
                self.event("view", clicked)
            row = clicked
            if self.consider(row, rid) and self.rng.random() < reactions.leave_after_buy:
                break

    def product_page(self, row: int) -> tuple[int | None, str | None]:
        """The product page of `row`: its list and keyword card; what the shopper clicked
        (an item, and the recommendation id of the list it came from)."""
        self.shopper.on_screen = row
        answer = self.call(
            self.clients.read.recommendations, session_id=self.session,
            user_id=self.shopper.user_id, item_id=self.truth.item_ids[row], placement=PLACEMENT,
            n=LIST_SIZE,
        )  # fmt: skip
        if answer is None:
            return None, None
        self.counts["lists"] += 1
        if answer.get("variant"):
            self.variants[str(answer["variant"])] += 1
        clicked = self.react(answer)
        if clicked is not None:
            return clicked, answer["recommendation_id"]
        return self.keyword_card(row)

    def react(self, answer: dict[str, Any]) -> int | None:
        """The item clicked in a list (a view event carrying its id back), if any."""
        rows = [self.truth.row_of.get(i["item_id"]) for i in answer["items"]]
        fits = [self.truth.fit(self.shopper, r) if r is not None else 0.0 for r in rows]
        position = pick(fits, self.reactions.click, self.rng)
        if position is None:
            return None
        row = rows[position]
        assert row is not None
        self.counts["clicks"] += 1
        self.event("click", row, answer["recommendation_id"])
        return row

    def keyword_card(self, row: int) -> tuple[int | None, str | None]:
        """The product page's keyword card; a keyword clicked runs the search."""
        card = self.call(
            self.clients.read.keywords, session_id=self.session, item_id=self.truth.item_ids[row]
        )
        if card is None or not card.get("show") or not card.get("keywords"):
            return None, None
        self.counts["cards"] += 1
        queries = [k["query"] for k in card["keywords"]]
        fits = [self.truth.query_fit(self.shopper, self.truth.query_of[q])
                if q in self.truth.query_of else 0.0 for q in queries]  # fmt: skip
        position = pick(fits, self.reactions.keyword_click, self.rng)
        if position is None:
            return None, None
        self.counts["keyword_clicks"] += 1
        query = queries[position]
        self.send({"type": "keyword-click", "query": query,
                   "recommendation_id": card["recommendation_id"]})  # fmt: skip
        results = self.call(
            self.clients.read.search, query, session_id=self.session,
            user_id=self.shopper.user_id, item_id=self.truth.item_ids[row], n=LIST_SIZE,
        )  # fmt: skip
        if results is None or not results.get("items"):
            return None, None
        self.counts["searches"] += 1
        clicked = self.react(results)
        return (clicked, results["recommendation_id"]) if clicked is not None else (None, None)

    def consider(self, row: int, rid: str | None) -> bool:
        """Cart, then maybe buy, the item on screen; True if bought."""
        truth, shopper, rng = self.truth, self.shopper, self.rng
        shopper.seen.add(row)
        fit = truth.fit(shopper, row)
        if not bool(truth.catalog.item_in_stock[row]) or rng.random() >= self.reactions.cart * fit:
            return False
        self.counts["carts"] += 1
        self.event("cart", row, rid)
        if rng.random() >= self.reactions.buy:
            return False
        self.counts["purchases"] += 1
        price = float(truth.catalog.item_price[row])
        self.counts["revenue_cents"] += round(price * 100)
        self.event("purchase", row, rid, value=price)
        shopper.bought.add(row)
        shopper.intent = truth.complement(shopper, rng)
        return True

    def event(self, kind: str, row: int, rid: str | None = None, **extra: Any) -> None:
        self.send({"type": kind, "item_id": self.truth.item_ids[row], "recommendation_id": rid,
                   "placement": PLACEMENT if rid else None, **extra})  # fmt: skip

    def send(self, fields: dict[str, Any]) -> None:
        event = {"event_id": uuid.uuid4().hex, "session_id": self.session,
                 "user_id": self.shopper.user_id, "timestamp": time.time(), **fields}  # fmt: skip
        self.call(
            self.clients.write.send_events,
            [{key: value for key, value in event.items() if value is not None}],
        )

    def call(self, method: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        """The client's answer, or None for a failed call (counted)."""
        self.requests += 1
        try:
            return method(*args, **kwargs)
        except (httpx.HTTPError, NextbestError):
            self.errors += 1
            return None


def run_shoppers(
    url: str,
    keys: dict[str, str],
    truth: ShopTruth,
    shoppers: int,
    seed: int = 0,
    reactions: Reactions | None = None,
    concurrency: int = 4,
    progress: Callable[[int], None] | None = None,
) -> SimulationStats:
    """`shoppers` visits to the server at `url` (`keys`: its "read" and "write" keys),
    `concurrency` at a time; each visit's draws come from its own seed, so a run is the same
    shoppers whatever the order the visits finish in."""
    if shoppers < 1 or concurrency < 1:
        raise ValueError("shoppers and concurrency must be >= 1")
    reactions = reactions or Reactions()
    stats = SimulationStats()
    started = time.perf_counter()
    local = threading.local()

    opened: list[_Clients] = []

    def one(k: int) -> None:
        clients = getattr(local, "clients", None)
        if clients is None:  # one pool of connections per thread
            clients = local.clients = _Clients.open(url, keys)
            opened.append(clients)
        rng = np.random.default_rng([seed, k])
        shopper = truth.shopper(rng, reactions.anonymous_share)
        visit = _Visit(clients, truth, shopper, reactions, rng, f"sim-{seed}-{k:07d}")
        visit.run()
        stats.add(visit.counts, visit.variants, visit.requests, visit.errors)
        if progress is not None:
            progress(1)

    try:
        with ThreadPoolExecutor(concurrency, thread_name_prefix="shopper") as pool:
            for future in [pool.submit(one, k) for k in range(shoppers)]:
                future.result()
    finally:
        for clients in opened:
            clients.close()
    stats.seconds = time.perf_counter() - started
    return stats
