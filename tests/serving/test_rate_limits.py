"""Rate limits: token buckets per client address and per key, 429 with Retry-After, nothing
written for a refused batch."""

from __future__ import annotations

from serving_helpers import (
    READ,
    MakeClient,
    auth,
    item,
    recommend,
    send,
    view,
)

from nextbest.serving.rate_limits import RateLimiter, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, capacity=4.0, clock=clock)
    assert [buckets.take("a") for _ in range(4)] == [0.0] * 4
    assert buckets.take("a") == 0.5  # one token at 2 a second
    assert buckets.take("b") == 0.0  # names are apart
    clock.now += 1.0  # two tokens back
    assert buckets.take("a", 2) == 0.0 and buckets.take("a") > 0.0
    clock.now += 100.0  # never more than the capacity
    assert buckets.take("a", 4) == 0.0 and buckets.take("a") > 0.0


def test_a_bucket_forgets_the_least_recently_seen_names_beyond_its_bound() -> None:
    buckets = TokenBuckets(rate=1.0, capacity=1.0, max_names=3, clock=Clock())
    for name in "abcd":
        assert buckets.take(name) == 0.0
    assert len(buckets._buckets) == 3 and "a" not in buckets._buckets


def test_an_event_bucket_always_holds_one_whole_batch() -> None:
    limiter = RateLimiter(events_per_key=1.0, largest_batch=500, clock=Clock())
    limiter.events("1.2.3.4", "key", 500)  # a burst of 2 s at 1 a second would refuse it
    assert limiter.key_events is not None and limiter.key_events.capacity == 500


def test_a_flood_from_one_address_gets_429_with_retry_after(make_client: MakeClient) -> None:
    client = make_client(rate_limit_requests_per_address=1.0, rate_limit_burst_seconds=3.0)
    codes = [recommend(client, session_id="s1").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    refused = recommend(client, session_id="s1")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    body = refused.json()
    assert body["error"] == "too many requests"
    assert "per client address" in body["detail"][0]["message"]
    # wrong keys count too: a flood of guesses is limited before the key is checked
    guess = client.get("/v1/recommendations", params={"session_id": "s"}, headers=auth("x" * 20))
    assert guess.status_code == 429


def test_a_key_over_its_event_rate_is_refused_and_nothing_of_the_batch_is_written(
    make_client: MakeClient,
) -> None:
    client = make_client(rate_limit_events_per_key=1.0)
    first = [view(f"e{k}", "s1", item(k % 30)) for k in range(500)]
    assert send(client, *first).json()["accepted"] == 500
    extra = [view("late-1", "victim", item(3)), view("late-2", "victim", item(4))]
    refused = send(client, *extra)
    assert refused.status_code == 429 and "per API key" in refused.text
    assert "Retry-After" in refused.headers
    log = client.app.state.services.log  # type: ignore[attr-defined]
    assert log.count() == 500  # the refused batch left no trace
    other = client.get("/v1/recommendations", params={"session_id": "victim"}, headers=auth(READ))
    assert other.status_code == 200  # the read key has its own buckets (none are set here)


def test_without_limits_nothing_is_refused(make_client: MakeClient) -> None:
    client = make_client()
    assert all(recommend(client, session_id="s").status_code == 200 for _ in range(50))
