"""`nextbest batch`: an email campaign's lists, one per user of a file, as the placement would
answer each user coming back now, kept for attribution."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from serving_helpers import ADMIN, N_ITEMS, WRITE, MakeClient, auth, item
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.events.log import open_event_log, sqlite_url

runner = CliRunner()


def batch(home: Path, *args: str) -> object:
    return runner.invoke(app, ["batch", *args], env={"NEXTBEST_HOME": str(home)})


def visit(user: str, session: str, items: list[int], bought: int | None = None) -> list[dict]:
    events = [
        {"event_id": f"{session}-{k}", "type": "view", "session_id": session, "user_id": user,
         "item_id": item(j), "timestamp": 1_790_000_000.0 + k}
        for k, j in enumerate(items)
    ]  # fmt: skip
    if bought is not None:
        events.append(
            {"event_id": f"{session}-buy", "type": "purchase", "session_id": session,
             "user_id": user, "item_id": item(bought), "timestamp": 1_790_000_100.0}
        )  # fmt: skip
    return events


def test_each_user_gets_the_list_their_last_visit_leads_to(
    make_client: MakeClient, home: Path, tmp_path: Path
) -> None:
    client = make_client()
    catalog = [{"item_id": item(j), "title": f"Product {j}", "category_path": [f"C{j % 10}"]}
               for j in range(N_ITEMS)]  # fmt: skip
    reply = client.put("/v1/items", json={"items": catalog}, headers=auth(ADMIN))
    assert reply.status_code == 200, reply.text
    events = visit("u-1", "s-old", [20, 21]) + visit("u-1", "s-1", [3, 4, 5])
    events += visit("u-2", "s-2", [10, 11, 12], bought=13)
    reply = client.post("/v1/events", json={"events": events}, headers=auth(WRITE))
    assert reply.status_code == 200, reply.text
    users = tmp_path / "users.csv"
    users.write_text("user_id,email\nu-1,a@x\n,b@x\nu-2,c@x\nu-1,a@x\nnobody,d@x\n")
    out = tmp_path / "email.parquet"

    result = batch(home, "--users", str(users), "--out", str(out), "--n", "5")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "skipped line 3: an empty user id" in result.output  # type: ignore[attr-defined]
    lists = pl.read_parquet(out)
    assert lists["user_id"].unique(maintain_order=True).to_list() == ["u-1", "u-2", "nobody"]
    of = {user: lists.filter(pl.col("user_id") == user) for user in ("u-1", "u-2", "nobody")}
    # the model goes on from the last visit (3, 4, 5) where the session model answers
    u1 = of["u-1"].filter(pl.col("source") == "gru4rec")["item_id"].to_list()
    assert u1 and of["u-1"]["item_id"].to_list() != of["nobody"]["item_id"].to_list()
    long = batch(home, "--users", str(users), "--out", str(out), "--n", "20", "--no-record")
    assert long.exit_code == 0, long.output  # type: ignore[attr-defined]
    twenty = pl.read_parquet(out).filter(pl.col("user_id") == "u-1")
    model_order = twenty.filter(pl.col("source") == "gru4rec")["item_id"].to_list()
    assert model_order.index(item(6)) < model_order.index(item(22))  # not the visit before
    out = tmp_path / "email.parquet"
    result = batch(home, "--users", str(users), "--out", str(out), "--n", "5")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lists = pl.read_parquet(out)
    of = {user: lists.filter(pl.col("user_id") == user) for user in ("u-1", "u-2", "nobody")}
    assert item(13) not in of["u-2"]["item_id"].to_list()  # bought: left out
    assert set(of["nobody"]["source"]) == {"popularity"}  # unknown: the popular items
    assert lists.group_by("user_id").len()["len"].to_list() == [5, 5, 5]
    ids = lists.unique("user_id", keep="first", maintain_order=True)["recommendation_id"]
    assert ids.n_unique() == 3

    log = open_event_log(sqlite_url(home))  # kept for attribution, as a served list
    try:
        kept = log.served(str(ids[0]))
    finally:
        log.close()
    assert kept is not None and kept.user_id == "u-1" and kept.placement == "email"
    assert [i for i, _, _ in kept.items] == lists.filter(pl.col("user_id") == "u-1")[
        "item_id"
    ].to_list()
    assert client.get(f"/v1/recommendations/{ids[0]}", headers=auth(ADMIN)).status_code == 200


def test_bad_input_is_named(home: Path, tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("user_id\nu-1\n")
    out = str(tmp_path / "o.parquet")
    cases = [
        (["--users", str(tmp_path / "none.csv"), "--out", out], "no such file"),
        (["--users", str(users), "--out", str(tmp_path / "o.csv")], "writes Parquet"),
        (["--users", str(users), "--out", out, "--n", "0"], "--n must be between"),
        (["--users", str(users), "--out", out, "--placement", "nowhere"], "unknown placement"),
        (["--users", str(users), "--out", out, "--placement", "product"], "needs item_id"),
    ]
    no_column = tmp_path / "ids.csv"
    no_column.write_text("id\nu-1\n")
    cases.append((["--users", str(no_column), "--out", out], "has no user_id column"))
    for args, message in cases:
        result = batch(home, *args)
        assert result.exit_code == 2, (args, result.output)  # type: ignore[attr-defined]
        assert message in result.output, (args, result.output)  # type: ignore[attr-defined]
