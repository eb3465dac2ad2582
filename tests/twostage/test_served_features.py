"""One code path: a served request's features are those of the same moment offline.

A session is walked offline (the protocol's candidates and features) and, beside it, served
through the placement pipeline (`generators` source, `learned` ranker) from a session record
holding the same events: every feature of every candidate must agree, live popularity
included (the server's counts of the latest events against the offline event stream)."""

from __future__ import annotations

from collections import Counter, deque

import numpy as np

from nextbest.data.sessions import Sessions
from nextbest.events.schema import Item
from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context, Query
from nextbest.recommend.items import ItemTable
from nextbest.recommend.placements import load_placements
from nextbest.recommend.ranking.learned import Ranked
from nextbest.serving.live import Applied, advance, fresh_record
from nextbest.serving.registry import serve_model
from nextbest.twostage.features import CaseInputs, ranking_data
from nextbest.twostage.generate import Cases, merge_proposals, propose
from nextbest.twostage.model import train_pipeline
from nextbest.twostage.protocol import GeneratorSpec, PipelineSpec

N_ITEMS = 40


def shop_sessions(n_sessions: int, seed: int) -> Sessions:
    """Sessions that mostly walk forward through the items, with views and carts."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 9, n_sessions)
    items = np.concatenate(
        [(s + np.cumsum(rng.integers(1, 3, n))) % N_ITEMS
         for s, n in zip(rng.integers(0, N_ITEMS, n_sessions), lengths, strict=True)]
    )  # fmt: skip
    types = np.where(rng.random(len(items)) < 0.2, "cart", "view").astype(object)
    return Sessions(
        item_ids=np.array([f"p{j:02d}" for j in range(N_ITEMS)], dtype=object),
        session_ids=np.array([f"s{k}" for k in range(n_sessions)], dtype=object),
        offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
        items=items.astype(np.int64),
        times=1_000.0 + np.cumsum(rng.integers(5, 90, len(items))).astype(np.float64),
        event_types=types,
    )


CATALOG = {
    f"p{j:02d}": Item(
        item_id=f"p{j:02d}",
        title=f"P{j}",
        category_path=["Shop", f"C{j % 4}"],
        brand=f"B{j % 3}",
        price=5.0 + j,
        discount=0.1 if j % 6 == 0 else None,
    )
    for j in range(N_ITEMS)
}


class StreamCounts:
    """The server's live counts (`Trends.recent_counts`) over a given event stream."""

    def __init__(self, stream: list[str]) -> None:
        self.stream = stream

    def recent_counts(self, item_ids: list[str], window: int) -> np.ndarray:
        latest = Counter(deque(self.stream, maxlen=window))
        return np.array([latest.get(i, 0) for i in item_ids], np.float32)

    def popular(self, k, skip, min_count=1, unknown_to=None):  # type: ignore[no-untyped-def]
        return []

    def followers(self, item_id, k, skip):  # type: ignore[no-untyped-def]
        return []

    def count_rows(self, items):  # type: ignore[no-untyped-def]
        return np.zeros(len(items))


def test_a_served_request_has_the_features_of_its_offline_case() -> None:
    train = shop_sessions(300, seed=1)
    spec = PipelineSpec(
        (GeneratorSpec("covisit", 8), GeneratorSpec("vsknn", 8), GeneratorSpec("pop", 6)),
        ranker="ftrl",
        ranker_share=0.3,
    )
    pipeline, _ = train_pipeline(spec, train, CATALOG)
    test = shop_sessions(1, seed=9)  # one session: its last case is the served request
    cases = Cases(test, np.array([test.n_events - 1]))

    # offline: the protocol's walk, merge and features
    support = train.item_support()
    proposals = [
        propose(m, cases, g.k, g.name, support)
        for m, g in zip(pipeline.members, spec.generators, strict=True)
    ]
    stream = [str(train.item_ids[i]) for i in train.items[np.argsort(train.times, kind="stable")]]
    stream += [str(test.item_ids[i]) for i in test.items[: test.n_events - 1]]
    assert pipeline.stats is not None
    windows = pipeline.stats.live_windows
    offline_inputs = CaseInputs.of(cases)
    merged = merge_proposals(proposals)
    ids = [str(train.item_ids[i]) for i in merged.item]
    live = [StreamCounts(stream).recent_counts(ids, w) for w in windows]
    offline = ranking_data(merged, offline_inputs, pipeline.stats, live=live)

    # served: the record the live state keeps after those events, then the placement
    model = serve_model(pipeline, "v1")
    seen = range(test.n_events - 1)
    events = [
        Applied(k + 1, str(test.event_types[k]), str(test.item_ids[test.items[k]]),  # type: ignore[index]
                float(test.times[k]), None)
        for k in seen
    ]  # fmt: skip
    record = advance(model, [fresh_record(model)], [events])[0]
    ctx = Context(
        query=Query(n=10, placement="next", session_id="s"),
        model=model,
        items=ItemTable.build(model.model.item_ids, CATALOG),
        record=record,
        live=StreamCounts(stream),
        now=float(test.times[test.n_events - 2]) + 3.0,
    )
    shown: Candidates = load_placements()["next"].pipeline.recommend(ctx)
    ranked = ctx.ranked
    assert isinstance(ranked, Ranked) and len(shown) == 10

    order = np.argsort(offline.item)
    served_order = np.argsort(ranked.data.item)
    assert ranked.data.item[served_order].tolist() == offline.item[order].tolist()
    assert ranked.data.names == offline.names
    for j, name in enumerate(offline.names):
        a = offline.features[order, j]
        b = ranked.data.features[served_order, j]
        assert np.allclose(a, b, equal_nan=True), name
    # and the list is the ranker's order of them
    scores = pipeline.ranker.predict(offline)  # type: ignore[union-attr]
    best = offline.item[np.argsort(-scores, kind="stable")]
    assert [int(r) for r in shown.rows[:3]] == best[:3].tolist()
