"""Where one event + recommendation pair's CPU goes, part by part, in one process.

    .venv/bin/python benchmarks/bench_serving_parts.py                # print the table
    .venv/bin/python benchmarks/bench_serving_parts.py --write-docs   # and update benchmarks.md

The same model as `bench_serving.py` (GRU4Rec, 100 units, the 43k Diginetica items), the app
in this process over a fresh SQLite log and Redis, requests sent straight to the ASGI app
(no sockets, no uvicorn). Each part is timed with `time.process_time` (all threads of the
process: the log's writer thread counts) over many calls, after a warm-up. The scoring
alternatives the server does not use are measured beside the one it does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench_serving import (
    KEY,
    _clear_redis,
    machine,
    save_result,
    train_model,
    wait_for_neighbours,
)
from docs_section import replace_section
from nextbest.events.log import open_event_log, sqlite_url
from nextbest.events.schema import Event
from nextbest.models.gru4rec import GRU4Rec
from nextbest.recommend.context import Query
from nextbest.serving.app import create_app
from nextbest.serving.registry import load_model
from nextbest.serving.scoring import GRU4RecScorer, Int8Prescreen
from nextbest.serving.services import init_database
from nextbest.serving.settings import ServingSettings

BEGIN, END = "<!-- serving-parts:begin -->", "<!-- serving-parts:end -->"


def cpu_ms(
    function: Callable[[int], Any], calls: int, settle: Callable[[], Any] = lambda: None
) -> float:
    """CPU per call. `settle()` finishes the background work the calls leave (written
    within the timing, so it counts for them and not for the next part)."""
    for k in range(min(200, calls)):
        function(k)
    settle()
    started = time.process_time()
    for k in range(calls):
        function(k)
    settle()
    return 1000 * (time.process_time() - started) / calls


async def cpu_ms_async(
    function: Callable[[int], Awaitable[Any]], calls: int, settle: Callable[[], Any] = lambda: None
) -> float:
    for k in range(min(200, calls)):
        await function(k)
    settle()
    started = time.process_time()
    for k in range(calls):
        await function(k)
    settle()
    return 1000 * (time.process_time() - started) / calls


def scoring_parts(served: GRU4RecScorer, states: list[torch.Tensor]) -> dict[str, Any]:
    """Both exact top-10 paths; `served` is the scorer the server uses (with the int8
    prescreen only where it timed faster at load)."""
    scorer = GRU4RecScorer(served.model)  # type: ignore[arg-type]
    assert scorer.prescreen is not None
    plain = GRU4RecScorer(served.model, prescreen=False)  # type: ignore[arg-type]
    banned = np.arange(5)
    last = scorer.query(states[0])[:1]
    candidates = []
    for state in states:
        approx, bounds = (rows[0] for rows in scorer.prescreen(scorer.query(state)[:1]))
        nth = np.sort(approx - bounds)[-10]
        candidates.append(int((approx + bounds >= nth).sum()))
    weights_t, bias = scorer.weights_t, scorer.bias
    parts = {
        "exact top-10 with the int8 prescreen": cpu_ms(
            lambda k: scorer.top(states[k % len(states)], 10, banned), 3000
        ),
        "exact top-10 from float32 scores of every item": cpu_ms(
            lambda k: plain.top(states[k % len(states)], 10, banned), 3000
        ),
        "the int8 layer alone (fbgemm)": cpu_ms(lambda k: scorer.prescreen.linear(last), 3000),  # type: ignore[union-attr]
        "float32 scores of every item alone": cpu_ms(
            lambda k: torch.addmm(bias, last, weights_t), 3000
        ),
        "bfloat16 scores of every item alone": _half(last, weights_t, torch.bfloat16),
        "float16 scores of every item alone": _half(last, weights_t, torch.float16),
    }
    for engine in ("onednn", "qnnpack"):
        if engine in torch.backends.quantized.supported_engines:
            parts[f"the int8 layer alone ({engine})"] = _engine(scorer, last, engine)
    chosen = "the int8 prescreen" if served.prescreen is not None else "float32 scores"
    return {"parts": parts, "candidates": candidates, "served": chosen}


def _half(last: torch.Tensor, weights_t: torch.Tensor, dtype: torch.dtype) -> float:
    x, w = last.to(dtype), weights_t.to(dtype)
    return cpu_ms(lambda k: torch.mm(x, w), 2000)


def _engine(scorer: GRU4RecScorer, last: torch.Tensor, engine: str) -> float:
    before = torch.backends.quantized.engine
    try:
        torch.backends.quantized.engine = engine
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = Int8Prescreen(scorer.weights, scorer.bias)
            return cpu_ms(lambda k: other.linear(last), 1000)
    finally:
        torch.backends.quantized.engine = before


class InProcess:
    """The app, called as an ASGI application."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers = [(b"authorization", f"Bearer {KEY}".encode()), (b"host", b"bench")]

    async def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        path, _, query = path.partition("?")
        headers = list(self.headers)
        if body:
            headers += [(b"content-type", b"application/json")]
            headers += [(b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "root_path": "",
        }
        sent, reply = False, {"body": b""}

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                reply["status"] = message["status"]
            else:
                reply["body"] += message.get("body", b"")

        await self.app(scope, receive, send)
        return int(reply["status"]), bytes(reply["body"])


async def request_parts(home: Path, items: list[str], redis_url: str) -> dict[str, float]:
    prefix = f"bench-parts-{uuid.uuid4().hex[:8]}:"
    settings = ServingSettings(
        home=home, admin_keys=(KEY,), redis_url=redis_url, redis_prefix=prefix
    )
    init_database(settings)
    app = create_app(settings)
    client = InProcess(app)
    rng = random.Random(0)
    sessions = [f"parts-{k}" for k in range(500)]

    def event_body(name: str, k: int) -> bytes:
        event = {"event_id": f"{name}-{k}", "type": "view", "session_id": sessions[k % 500],
                 "item_id": rng.choice(items)}  # fmt: skip
        return json.dumps({"events": [event]}).encode()

    async with app.router.lifespan_context(app):
        services = app.state.services
        model = services.model
        # The server builds the item neighbour table in a background thread at start (tens
        # of seconds of a core): `process_time` counts every thread, so parts timed during
        # the build carried it (recommend() read 4.2 ms of CPU instead of 1.4 ms).
        wait_for_neighbours(home)

        def settle() -> None:  # the kept lists written (the served-list writer's thread)
            services.served.flush()

        for k in range(500):  # every session has a state
            await client.call("POST", "/v1/events", event_body("warm", k))
        seq = [10**12]

        def apply(k: int) -> None:
            seq[0] += 1
            event = Event(event_id=f"a{k}", type="view", session_id=sessions[k % 500],
                          item_id=rng.choice(items), timestamp=1.0)  # fmt: skip
            services.live.apply(model, [event], [seq[0]])

        appended = open_event_log(sqlite_url(home / "append-only"))
        events = [Event(event_id=f"c{k}", type="view", session_id=sessions[k % 500],
                        item_id=items[k % 100], timestamp=1.0) for k in range(3200)]  # fmt: skip
        parts = {
            "GET /v1/recommendations (in process, with the served list kept)": await cpu_ms_async(
                lambda k: client.call(
                    "GET", f"/v1/recommendations?session_id={sessions[k % 500]}&n=10"
                ),
                3000,
                settle,
            ),
            "of which `recommend()` for a session with a state": cpu_ms(
                lambda k: services.recommender.recommend(
                    model, Query(n=10, session_id=sessions[k % 500])
                ),
                3000,
            ),
            "of which reading the session's state (Redis)": cpu_ms(
                lambda k: services.live.session(model, sessions[k % 500]), 3000
            ),
            "POST /v1/events with one event (in process, commit included)": await cpu_ms_async(
                lambda k: client.call("POST", "/v1/events", event_body("post", k)), 3000, settle
            ),
            "of which `live.apply` (one GRU step, Redis compare-and-set)": cpu_ms(apply, 3000),
            "of which committing one event to SQLite (synchronous=FULL)": cpu_ms(
                lambda k: appended.append([events[k]]), 3000
            ),
        }
        appended.close()
    _clear_redis(redis_url, prefix)
    return parts


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    rows = [f"| {name} | {value:.3f} ms |" for name, value in result["requests"].items()]
    rows += [f"| {name} | {value:.3f} ms |" for name, value in result["scoring"].items()]
    candidates = np.array(result["candidates"])
    return "\n".join(
        [
            f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
            f"torch {m['torch']}, by",
            "",
            f"    {result['command']}",
            "",
            "CPU per call, one process, `time.process_time` (all its threads): measured after "
            "the server's item neighbour table is built, each part's kept lists written within "
            "its own timing. Items the "
            "int8 prescreen leaves to rescore in float32, over "
            f"{len(candidates)} session states: median {int(np.median(candidates))}, "
            f"max {int(candidates.max())}, of {result['items']:,}. The server timed both exact "
            f"paths when it loaded the model and serves with {result['served_path']}.",
            "",
            "| part | CPU per call |",
            "|---|---|",
            *rows,
        ]
    )


def write_docs(text: str) -> None:
    replace_section(text, BEGIN, END, "Where a pair's CPU goes", level="###")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample-sessions", type=int, default=20_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    home = Path(tempfile.mkdtemp(prefix="nextbest-parts-"))
    folder, items = train_model(home, args.sample_sessions)
    loaded = load_model(folder, {GRU4Rec.name: GRU4Rec})
    rng = np.random.default_rng(0)
    states = []
    for _ in range(300):
        state = loaded.model.initial_state(1)
        for column in rng.integers(0, loaded.n_items, rng.integers(1, 8)):
            state = loaded.model.step(state, np.array([column]), np.array([0.0]))
        states.append(state)
    assert isinstance(loaded.score, GRU4RecScorer)
    scoring = scoring_parts(loaded.score, states)
    result = {
        "machine": machine(),
        "items": len(items),
        "command": "python benchmarks/bench_serving_parts.py"
        + (" --write-docs" if args.write_docs else ""),
        "scoring": scoring["parts"],
        "candidates": scoring["candidates"],
        "served_path": scoring["served"],
        "requests": asyncio.run(request_parts(home, items, args.redis_url)),
    }
    text = markdown(result)
    print(text)
    save_result("serving_parts", result)
    if args.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
