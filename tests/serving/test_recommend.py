"""Items new since training: served by live co-visitation and popularity until retraining."""

from __future__ import annotations

from pathlib import Path

import pytest
from serving_helpers import ADMIN, TestClient, auth, item, model_scores, recommend, send, view

from nextbest.events.log import open_event_log, sqlite_url
from nextbest.events.schema import Event
from nextbest.models.gru4rec import GRU4Rec
from nextbest.serving.trends import LOOKBACK, Trends


def add_new_items(client: TestClient, *ids: str) -> None:
    reply = client.put(
        "/v1/items", json={"items": [{"item_id": i} for i in ids]}, headers=auth(ADMIN)
    )
    assert reply.status_code == 200


def refresh(client: TestClient) -> None:
    client.app.state.services.trends.refresh()  # type: ignore[attr-defined]


def test_a_new_item_that_follows_the_last_item_gets_a_slot(client: TestClient) -> None:
    add_new_items(client, "new-boot")
    for k in range(3):  # live sessions go from i05 to the new boot
        send(client, view(f"a{k}", f"live-{k}", item(5)), view(f"b{k}", f"live-{k}", "new-boot"))
    refresh(client)
    send(client, view("e1", "s1", item(5)))
    items = recommend(client, session_id="s1", n=5).json()["items"]
    assert [e["source"] for e in items] == ["gru4rec"] * 4 + ["covisit"]
    assert items[0]["item_id"] == item(6) and items[4]["item_id"] == "new-boot"
    assert len(recommend(client, session_id="s1", n=4).json()["items"]) == 4


def test_after_a_new_item_its_followers_come_in(client: TestClient, trained_gru: GRU4Rec) -> None:
    add_new_items(client, "new-hat")
    for k in range(3):
        send(client, view(f"a{k}", f"live-{k}", "new-hat"), view(f"b{k}", f"live-{k}", item(20)))
    refresh(client)
    send(client, view("e1", "s1", item(2)), view("e2", "s1", "new-hat"))
    items = recommend(client, session_id="s1", n=5).json()["items"]
    # the model's state still follows the session's known items (after i02: i03, with the
    # score the model gives it after i02 alone: the new hat moved nothing)...
    assert items[0] == {
        "item_id": item(3),
        "score": pytest.approx(model_scores(trained_gru, 2)[item(3)], rel=1e-5, abs=1e-5),
        "source": "gru4rec",
        "reason": "next after new-hat",
    }
    # ...and live co-visitation says what people look at after the new hat
    assert {
        "item_id": item(20),
        "score": 3.0,
        "source": "covisit",
        "reason": "often viewed after new-hat",
    } in items


def test_popular_new_items_need_a_few_events(client: TestClient) -> None:
    add_new_items(client, "hot", "lukewarm")
    events = [view(f"h{k}", f"x{k}", "hot") for k in range(3)] + [view("l0", "y", "lukewarm")]
    send(client, *events)
    refresh(client)
    send(client, view("e1", "s1", item(0)))
    items = recommend(client, session_id="s1", n=10).json()["items"]
    sources = {e["item_id"]: e["source"] for e in items}
    assert sources.get("hot") == "popularity" and "lukewarm" not in sources


def test_trends_forget_what_left_the_window(tmp_path: Path) -> None:
    log = open_event_log(sqlite_url(tmp_path))
    trends = Trends(log, window_events=2)
    events = [("s1", "a"), ("s1", "b"), ("s2", "a"), ("s2", "b"), ("s3", "c"), ("s3", "d")]
    log.append(
        [Event(event_id=f"e{k}", type="view", session_id=s, item_id=i, timestamp=1.0)
         for k, (s, i) in enumerate(events)]
    )  # fmt: skip
    assert trends.refresh(page=2) == 6
    assert trends.popular(10, lambda i: False) == [("c", 1.0), ("d", 1.0)]  # the last two
    assert trends.followers("a", 5, lambda i: False) == [("b", 1.0)]  # s1's a -> b has left
    assert trends.followers("c", 5, lambda i: i == "d") == []
    trends.start_at_recent()
    assert trends.seq == 4
    log.close()


def test_trends_count_an_event_that_commits_after_a_later_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL can make seq 2 visible after seq 3: the next refresh still counts it."""
    log = open_event_log(sqlite_url(tmp_path))
    assert Trends(log).lookback == 0  # SQLite commits in order: no need to look back
    trends = Trends(log, lookback=LOOKBACK)
    log.append(
        [Event(event_id=f"e{k}", type="view", session_id=f"s{k}", item_id=i, timestamp=1.0)
         for k, i in enumerate(["a", "late", "b"])]
    )  # fmt: skip
    read_items_after = log.read_items_after
    monkeypatch.setattr(
        log,
        "read_items_after",
        lambda seq, limit: [e for e in read_items_after(seq, limit) if e[0] != 2],
    )
    assert trends.refresh() == 2  # "late" is not visible yet
    monkeypatch.setattr(log, "read_items_after", read_items_after)
    assert trends.refresh() == 1  # now it is; nothing else is counted twice
    assert dict(trends.popular(10, lambda i: False)) == {"a": 1.0, "late": 1.0, "b": 1.0}
    assert trends.refresh() == 0
    log.close()
