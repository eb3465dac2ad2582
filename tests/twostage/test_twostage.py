"""The two-stage pipeline's offline core: candidates from several generators, features, the
ranks of the protocol (targets outside the set rank after it), the spec file's errors, and
the whole protocol on a small demo shop from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.data.sessions import Sessions
from nextbest.evaluation.next_event import evaluate_next_event
from nextbest.models.registry import build_model
from nextbest.twostage.data import (
    CART,
    PAD,
    VIEW,
    RankingData,
    concat_ranking_data,
    load_ranking_data,
    save_ranking_data,
)
from nextbest.twostage.features import CaseInputs, ItemStats, ranking_data
from nextbest.twostage.generate import Cases, Proposals, merge_proposals, propose
from nextbest.twostage.protocol import load_spec, pipeline_ranks, popularity_order

runner = CliRunner()


def sessions_of(
    rows: list[list[int]], n_items: int, types: list[list[str]] | None = None
) -> Sessions:
    lengths = [len(r) for r in rows]
    flat_types = None
    if types is not None:
        flat_types = np.array([t for ts in types for t in ts], dtype=object)
    return Sessions(
        item_ids=np.array([f"i{j}" for j in range(n_items)], dtype=object),
        session_ids=np.array([f"s{s}" for s in range(len(rows))], dtype=object),
        offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
        items=np.array([i for r in rows for i in r], dtype=np.int64),
        times=np.arange(sum(lengths), dtype=np.float64) * 60.0,
        event_types=flat_types,
    )


def test_propose_keeps_each_generators_top_k_in_case_order() -> None:
    train = sessions_of([[0, 1, 2], [0, 1, 3], [0, 1, 2], [4, 5]], 6)
    test = sessions_of([[0, 1, 2], [4, 5]], 6)
    model = build_model("covisit", {}).fit(train)
    cases = Cases.of(test)
    assert cases.n_cases == 3 and cases.position.tolist() == [1, 2, 1]
    found = propose(model, cases, k=3, support=train.item_support())
    # after item 0 co-visitation proposes 1 first; after 1, 2 (twice) before 3 (once)
    assert found.items[0, 0] == 1
    assert found.items[1, :2].tolist() == [2, 3]
    assert found.items[2, 0] == 5 or found.items[2, 0] == -1
    # the same walk as the evaluator: the top-1 is the evaluator's rank-1 item
    result = evaluate_next_event(model, test)
    hits = found.items[np.arange(3), 0] == cases.target_item
    assert int(hits.sum()) == int((result.ranks == 1).sum())


def test_merge_takes_the_union_with_every_generators_rank() -> None:
    a = Proposals(
        "a",
        np.array([[3, 1, -1], [2, 0, 1]]),
        np.array([[0.9, 0.5, np.nan], [3, 2, 1]], np.float32),
    )
    b = Proposals(
        "b", np.array([[1, 4, 5], [-1, -1, -1]]), np.array([[7, 6, 5], [np.nan] * 3], np.float32)
    )
    merged = merge_proposals([a, b])
    pairs = list(zip(merged.case.tolist(), merged.item.tolist(), strict=True))
    assert pairs == [(0, 1), (0, 3), (0, 4), (0, 5), (1, 0), (1, 1), (1, 2)]
    one = pairs.index((0, 1))
    assert merged.rank[one].tolist() == [2.0, 1.0]  # second for a, first for b
    four = pairs.index((0, 4))
    assert np.isnan(merged.rank[four, 0]) and merged.rank[four, 1] == 2.0


def test_features_see_the_history_and_the_labels() -> None:
    train = sessions_of([[0, 1, 2, 3]], 5)
    test = sessions_of([[0, 1, 0, 2]], 5, types=[["view", "cart", "view", "view"]])
    cases = Cases.of(test)
    inputs = CaseInputs.of(cases, width=4)
    # the last case has seen 0 (view), 1 (cart), 0 (view): oldest first, left-padded
    assert inputs.history.items[2].tolist() == [-1, 0, 1, 0]
    assert inputs.history.types[2].tolist() == [PAD, VIEW, CART, VIEW]
    assert inputs.history.age[2].tolist() == [0.0, 120.0, 60.0, 0.0]
    a = Proposals("a", np.array([[1, 2], [0, 3], [1, 2]]), np.ones((3, 2), np.float32))
    merged = merge_proposals([a])
    data = ranking_data(merged, inputs, ItemStats.build(train), cases.target_item, cases.session)
    assert set(data.groups) == {"generators", "item", "session", "repeat", "match", "context"}
    assert data.label is not None
    assert data.label.sum() == 3  # each case's next item (1, 0, 2) is a candidate
    last = data.case == 2
    count = dict(
        zip(data.item[last].tolist(), data.column("repeat.count")[last].tolist(), strict=True)
    )
    carted = dict(
        zip(data.item[last].tolist(), data.column("repeat.carted")[last].tolist(), strict=True)
    )
    assert count == {1: 1.0, 2: 0.0} and carted == {1: 1.0, 2: 0.0}
    assert data.column("session.length")[last].tolist() == [3.0, 3.0]


def test_targets_outside_the_set_rank_after_it_in_popularity_order() -> None:
    # case 0: candidates 5 (score 2), 7 (score 1); target 7 -> rank 2
    # case 1: candidates 5 (score 1), 6 (score 1); target 6 -> conservative rank 2
    # case 2: candidates 5, 6; target 3, not a candidate
    data = RankingData(
        case=np.array([0, 0, 1, 1, 2, 2]),
        item=np.array([5, 7, 5, 6, 5, 6]),
        features=np.zeros((6, 0), np.float32),
        names=(),
        label=np.array([0, 1, 0, 1, 0, 0], np.float32),
    )
    scores = np.array([2.0, 1.0, 1.0, 1.0, 3.0, 2.0])
    train = sessions_of([[0, 0, 0, 5, 5, 3, 3, 1]], 8)  # popularity: 0, then 5 and 3, then 1
    fallback = popularity_order(train)
    targets = np.array([7, 6, 3])
    ranks = pipeline_ranks(data, scores, targets, fallback)
    # 3 is third by popularity, after 0 and 5; 5 is a candidate, so 3 is second among the rest
    assert ranks.tolist() == [2.0, 2.0, 4.0]
    assert pipeline_ranks(data, scores, targets, fallback, "standard").tolist() == [2.0, 1.0, 4.0]


def test_ranking_data_round_trips_and_joins(tmp_path: Path) -> None:
    train = sessions_of([[0, 1, 2, 3]], 5)
    test = sessions_of([[0, 1, 2]], 5)
    cases = Cases.of(test)
    merged = merge_proposals(
        [Proposals("a", np.array([[1, 2], [2, 3]]), np.ones((2, 2), np.float32))]
    )
    data = ranking_data(
        merged, CaseInputs.of(cases), ItemStats.build(train), cases.target_item, cases.session
    )
    save_ranking_data(data, tmp_path / "d.npz")
    again = load_ranking_data(tmp_path / "d.npz")
    assert again.names == data.names and np.array_equal(
        again.features, data.features, equal_nan=True
    )
    assert again.groups == dict(data.groups)
    both = concat_ranking_data([data, again])
    assert both.n_cases == 4 and both.session is not None and len(set(both.session.tolist())) == 2
    less = data.without(data.groups["repeat"])
    assert not any(name.startswith("repeat.") for name in less.names)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[other]\n", "has no \\[pipeline\\] table"),
        ("[pipeline]\ngenerators = []\n", "name at least one generator"),
        ('[pipeline]\ngenerators = [{ model = "nope" }]\n', "unknown model 'nope'"),
        (
            '[pipeline]\nranker = "magic"\ngenerators = [{ model = "pop" }]\n',
            "ranker must be one of",
        ),
        ('[pipeline]\ngenerators = [{ model = "pop", k = 0 }]\n', "k must be a positive integer"),
        ('[pipeline]\ngenerators = [{ model = "gru4rec", params = { layers = "x" } }]\n', "layers"),
        (
            '[pipeline]\ncolour = 1\ngenerators = [{ model = "pop" }]\n',
            "unknown \\[pipeline\\] keys",
        ),
        ("[pipeline\n", "not valid TOML"),
        ('[pipeline]\nranker_params = { leaves = 3 }\ngenerators = [{ model = "pop" }]', "leaves"),
    ],
)
def test_bad_pipeline_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_spec(path)


def test_the_shipped_pipeline_files_load() -> None:
    folder = Path(__file__).resolve().parents[2] / "benchmarks" / "pipelines"
    for name in ("rsc15_100k", "diginetica", "retailrocket", "demo"):
        spec = load_spec(folder / f"{name}.toml")
        assert spec.ranker == "gbdt" and len(spec.generators) >= 3


@pytest.fixture(scope="module")
def small_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    result = runner.invoke(
        app, ["data", "demo-shop", "--out", str(out), "--events", "40000", "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_evaluate_pipeline_beats_its_generators_on_a_small_shop(
    small_shop: Path, tmp_path: Path
) -> None:
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(
        "[pipeline]\nranker = 'gbdt'\nranker_share = 0.3\nranker_folds = 2\n"
        "ranker_params = { n_estimators = 60, threads = 1 }\n"
        "generators = [{ model = 'covisit', k = 30 }, { model = 'vsknn', k = 30 },"
        " { model = 'pop', k = 20 }]\n"
    )
    out = tmp_path / "out.json"
    args = ["evaluate", "--pipeline", str(pipeline), "--train", str(small_shop / "train.tsv")]
    args += ["--test", str(small_shop / "test.tsv"), "--items", str(small_shop / "items.csv")]
    result = runner.invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "candidate recall" in result.output
    assert "why the first test case's top items rank where they do" in result.output
    record = json.loads(out.read_text())
    assert record["model"] == "pipeline:gbdt" and record["cases"] > 1000
    for k in (5, 10, 20, 50):
        assert 0 < record[f"candidate_recall@{k}"] <= 1
    assert record["candidate_recall@20"] >= record["recall@20"]  # a ranker cannot pass its set
    assert set(record["generator_recall"]) == {"covisit", "vsknn", "pop"}
    assert record["feature_gain"]
    # the same split, the single models: the learned ranker does at least as well as vsknn
    single = tmp_path / "single.json"
    args_single = ["evaluate", "--model", "vsknn", "--train", str(small_shop / "train.tsv")]
    args_single += ["--test", str(small_shop / "test.tsv"), "--json", str(single)]
    assert runner.invoke(app, args_single).exit_code == 0
    vsknn = json.loads(single.read_text())
    assert record["cases"] == vsknn["cases"]
    assert record["mrr@20"] > 0.95 * vsknn["mrr@20"]


def test_train_pipeline_writes_one_servable_version(
    small_shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nextbest.models.store import latest_version
    from nextbest.recommend.rules.purchase_rules import RULES_FILE
    from nextbest.twostage.model import PipelineModel

    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "home"))
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(
        "[pipeline]\nranker = 'gbdt'\nranker_share = 0.3\n"
        "ranker_params = { n_estimators = 30, threads = 1 }\n"
        "generators = [{ model = 'covisit', k = 20 }, { model = 'pop', k = 10, label = 'top' }]\n"
    )
    args = ["train", "--pipeline", str(pipeline), "--train", str(small_shop / "train.tsv")]
    result = runner.invoke(app, [*args, "--items", str(small_shop / "items.csv")])
    assert result.exit_code == 0, result.output
    assert "trained the pipeline (gbdt over covisit, top)" in result.output
    folder = latest_version(tmp_path / "home")
    assert folder is not None and folder.name.endswith("-pipeline")
    model = PipelineModel.load(folder)
    assert model.labels == ("covisit", "top") and model.ranker is not None
    assert (folder / RULES_FILE).exists() or "no purchase rules" in result.output
    meta = json.loads((folder / "meta.json").read_text())
    assert "ranker fit" in meta["seconds"] and meta["events"] > 1000
    both = runner.invoke(app, [*args, "--model", "pop"])
    assert both.exit_code != 0 and "either --model NAME or --pipeline FILE" in both.output
    with_param = runner.invoke(app, [*args, "--param", "k=3"])
    assert with_param.exit_code != 0 and "leave out" in with_param.output


def test_evaluate_pipeline_refuses_bad_combinations(small_shop: Path, tmp_path: Path) -> None:
    base = [
        "evaluate",
        "--train",
        str(small_shop / "train.tsv"),
        "--test",
        str(small_shop / "test.tsv"),
    ]
    result = runner.invoke(app, base)
    assert result.exit_code != 0 and "either --model NAME or --pipeline FILE" in result.output
    missing = runner.invoke(app, [*base, "--pipeline", str(tmp_path / "none.toml")])
    assert missing.exit_code != 0 and "cannot read pipeline file" in missing.output


def test_live_popularity_counts_only_events_before_the_case() -> None:
    train = sessions_of([[0, 1, 0, 0, 2, 0]], 3)  # times 0, 60, ..., 300
    stats = ItemStats.build(train).with_stream([train], train_events=1000)  # windows 2 and 20
    short, long = stats.live_counts(np.array([0, 0, 0, 2]), np.array([60.0, 180.0, 300.0, 120.0]))
    # up to t=60: events 0 and 1 -> item 0 once; up to 180: 0,1,0,0 -> three times (long)
    assert long.tolist() == [1.0, 3.0, 4.0, 0.0]
    # the short window holds the last 2 events before the moment: (0, 0) at 120 and 180
    assert short.tolist() == [1.0, 2.0, 1.0, 0.0]


def test_fitted_generators_are_reused_from_the_cache(tmp_path: Path) -> None:
    from nextbest.twostage.protocol import Generators, GeneratorSpec

    train = sessions_of([[0, 1, 2], [0, 1, 3], [1, 2]], 4)
    specs = [GeneratorSpec("vsknn", 10), GeneratorSpec("covisit", 10)]
    first = Generators.fit(specs, train, cache=tmp_path)
    lines: list[str] = []
    again = Generators.fit(specs, train, cache=tmp_path, say=lines.append)
    assert sum("loaded" in line for line in lines) == 2
    state = first.models[0].step(first.models[0].initial_state(1), np.array([0]), np.array([0.0]))
    state2 = again.models[0].step(again.models[0].initial_state(1), np.array([0]), np.array([0.0]))
    assert np.allclose(first.models[0].score(state), again.models[0].score(state2))
    other = sessions_of([[0, 1, 2], [2, 3]], 4)  # other data: fitted anew
    lines.clear()
    Generators.fit(specs, other, cache=tmp_path, say=lines.append)
    assert not any("loaded" in line for line in lines)
