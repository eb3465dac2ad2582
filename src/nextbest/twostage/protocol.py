"""The two-stage pipeline's spec (a TOML file) and its honest offline protocol.

    [pipeline]
    ranker = "gbdt"                     # gbdt, ftrl, attention_gru or popularity
    ranker_params = { num_leaves = 63 }
    ranker_share = 0.15                 # the latest share of training sessions the ranker learns on
    generators = [
      { model = "vstan", k = 100 },
      { model = "gru4rec", k = 100, params = { layers = "100", n_epochs = "3" } },
    ]

The protocol (`run_pipeline`): the generators are fitted on the training sessions before the
cut; the ranker learns on the candidates of the sessions after it (still training data);
the generators are refitted on all training data, and the test cases are ranked by the
ranker. A target outside the candidate set ranks after every candidate, among the other
items in order of training popularity, so the figures at every cutoff are those of a full
ranking. Nothing is chosen on the test split.
"""

from __future__ import annotations

import hashlib
import itertools
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from nextbest.data.sessions import Sessions
from nextbest.evaluation.metrics import TiePolicy
from nextbest.events.schema import Item
from nextbest.models.base import SessionModel
from nextbest.models.registry import MODELS, build_model
from nextbest.twostage.data import LearnedRanker, RankingData, concat_ranking_data
from nextbest.twostage.features import CaseInputs, ItemStats, ranking_data
from nextbest.twostage.generate import Cases, Merged, merge_proposals, propose

RANKERS = ("gbdt", "ftrl", "attention_gru", "popularity")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class GeneratorSpec:
    model: str
    k: int = 100
    params: Mapping[str, str] = field(default_factory=dict)
    label: str = ""  # its name in the features (default: the model's name)

    @property
    def name(self) -> str:
        return self.label or self.model


@dataclass(frozen=True)
class PipelineSpec:
    generators: tuple[GeneratorSpec, ...]
    ranker: str = "gbdt"
    ranker_params: Mapping[str, Any] = field(default_factory=dict)
    ranker_share: float = 0.15
    ranker_folds: int = 1  # the ranker's share in this many slices, each with its own cut
    max_ranker_cases: int = 200_000  # the latest ones, when the share holds more
    # features of the feature store (twostage/store/definitions.py) the ranker adds, of the
    # candidate (item.*), the case's user (user.*) or the pair of the session's latest item
    # and the candidate (pair.*): as of each case's day in training, from Redis when serving
    store_features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "store_features", tuple(str(n) for n in self.store_features))
        if not self.generators:
            raise ValueError("pipeline: name at least one generator")
        check_store_features(self.store_features)
        if self.ranker not in RANKERS:
            raise ValueError(
                f"pipeline: ranker must be one of {', '.join(RANKERS)}, not {self.ranker!r}"
            )
        if not 0 < self.ranker_share < 1:
            raise ValueError(f"pipeline: ranker_share must be in (0, 1), not {self.ranker_share}")
        if self.ranker_folds < 1:
            raise ValueError(f"pipeline: ranker_folds must be >= 1, not {self.ranker_folds}")
        names = [g.name for g in self.generators]
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline: generator names repeat ({names}); give each a label")

    @property
    def candidate_depth(self) -> int:
        return sum(g.k for g in self.generators)


def load_spec(path: Path) -> PipelineSpec:
    """The `[pipeline]` table of a TOML file; ValueError names what is wrong."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read pipeline file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    table = raw.get("pipeline")
    if not isinstance(table, dict):
        raise ValueError(f"{path} has no [pipeline] table")
    known = {
        "generators",
        "ranker",
        "ranker_params",
        "ranker_share",
        "ranker_folds",
        "max_ranker_cases",
        "store_features",
    }
    unknown = set(table) - known
    if unknown:
        raise ValueError(
            f"{path}: unknown [pipeline] keys {sorted(unknown)}; known: {sorted(known)}"
        )
    generators = []
    for index, entry in enumerate(table.get("generators", [])):
        if not isinstance(entry, dict) or "model" not in entry:
            raise ValueError(f'{path}: generator {index + 1} needs a model (e.g. model = "vstan")')
        extra = set(entry) - {"model", "k", "params", "label"}
        if extra:
            raise ValueError(f"{path}: generator {index + 1} has unknown keys {sorted(extra)}")
        if entry["model"] not in MODELS:
            raise ValueError(
                f"{path}: generator {index + 1}: unknown model {entry['model']!r}; "
                f"choose one of {', '.join(MODELS)}"
            )
        k = entry.get("k", 100)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"{path}: generator {index + 1}: k must be a positive integer")
        params = {str(key): str(value) for key, value in entry.get("params", {}).items()}
        build_model(entry["model"], params)  # a bad parameter fails here, before any data
        generators.append(GeneratorSpec(entry["model"], k, params, str(entry.get("label", ""))))
    try:
        spec = PipelineSpec(
            generators=tuple(generators),
            ranker=str(table.get("ranker", "gbdt")),
            ranker_params=dict(table.get("ranker_params", {})),
            ranker_share=float(table.get("ranker_share", 0.15)),
            ranker_folds=int(table.get("ranker_folds", 1)),
            max_ranker_cases=int(table.get("max_ranker_cases", 200_000)),
            store_features=tuple(table.get("store_features", ())),
        )
        make_ranker(spec.ranker, spec.ranker_params)  # a bad ranker parameter fails here
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return spec


def check_store_features(names: Sequence[str]) -> None:
    """ValueError unless every name is a feature of the store."""
    from nextbest.twostage.store.definitions import by_name

    try:
        by_name(names)
    except ValueError as exc:
        raise ValueError(f"pipeline: store_features: {exc}") from None


def make_ranker(name: str, params: Mapping[str, Any]) -> LearnedRanker:
    try:
        return _make_ranker(name, params)
    except TypeError as exc:  # an unknown parameter name
        raise ValueError(f"ranker {name}: {exc}") from exc


def _make_ranker(name: str, params: Mapping[str, Any]) -> LearnedRanker:
    kind = ranker_class(name)
    if name == "popularity":
        return kind()  # type: ignore[no-any-return]
    if name == "gbdt":
        from nextbest.twostage.rankers.gbdt import GBDTConfig

        return kind(GBDTConfig(**params))  # type: ignore[no-any-return]
    if name == "ftrl":
        from nextbest.twostage.rankers.ftrl import FTRLConfig

        return kind(FTRLConfig.from_dict(dict(params)))  # type: ignore[no-any-return]
    from nextbest.twostage.rankers.attention_gru import AttentionGRUConfig

    return kind(AttentionGRUConfig(**params))  # type: ignore[no-any-return]


def ranker_class(name: str) -> Any:
    """The class of ranker `name` (its `load` reads a saved one), imported when asked."""
    if name == "gbdt":
        from nextbest.twostage.rankers.gbdt import GBDTRanker

        return GBDTRanker
    if name == "popularity":
        from nextbest.twostage.rankers.popularity import PopularityRanker

        return PopularityRanker
    if name == "ftrl":
        from nextbest.twostage.rankers.ftrl import FTRLRanker

        return FTRLRanker
    if name == "attention_gru":
        from nextbest.twostage.rankers.attention_gru import AttentionGRURanker

        return AttentionGRURanker
    raise ValueError(f"unknown ranker {name!r}; choose one of {', '.join(RANKERS)}")


@dataclass
class Generators:
    """The fitted generators of a pipeline and the statistics of their training data."""

    specs: tuple[GeneratorSpec, ...]
    models: list[SessionModel[Any, Any]]
    train: Sessions
    stats: ItemStats
    fit_seconds: dict[str, float]

    @classmethod
    def fit(
        cls,
        specs: Sequence[GeneratorSpec],
        train: Sessions,
        catalog: Mapping[str, Item] | None = None,
        say: Progress | None = None,
        cache: Path | None = None,
    ) -> Generators:
        """Fit every generator on `train`. `cache`: a folder of fitted models by a hash of
        (model, parameters, training data): a model fitted before on the same data is loaded
        instead (the benchmarks' repeated runs)."""
        models, seconds = [], {}
        for spec in specs:
            folder = cache / _fit_key(spec, train) if cache is not None else None
            started = time.perf_counter()
            if folder is not None and (folder / "done").exists():
                model = MODELS[spec.model].load(folder)
                seconds[spec.name] = float((folder / "done").read_text())
                if say:
                    say(f"loaded {spec.name} fitted earlier on the same data from {folder}")
                models.append(model)
                continue
            model = build_model(spec.model, dict(spec.params))
            if catalog is not None:
                model.use_catalog(catalog)
            model.fit(train)
            seconds[spec.name] = time.perf_counter() - started
            if folder is not None:
                model.save(folder)
                (folder / "done").write_text(str(seconds[spec.name]))
            if say:
                say(
                    f"fitted {spec.name} on {train.n_events:,} events in {seconds[spec.name]:.1f} s"
                )
            models.append(model)
        return cls(tuple(specs), models, train, ItemStats.build(train, catalog), seconds)

    def candidates(
        self,
        cases: Cases,
        say: Progress | None = None,
        stream: Sequence[Sessions] = (),
        store_features: Sequence[str] = (),
    ) -> tuple[RankingData, dict[str, float]]:
        """The ranking data of `cases` (coded in the generators' vocabulary), labelled with
        each case's next item, and the seconds each generator took to walk them. `stream`:
        the sessions whose events live popularity counts (those before each case's moment:
        what a server has seen by then); default the generators' training data and the
        cases' sessions. `store_features`: the feature store's values of each candidate as
        of its case's day, computed from the same events (the days before the case's)."""
        support = self.train.item_support()
        proposals, seconds = [], {}
        for spec, model in zip(self.specs, self.models, strict=True):
            started = time.perf_counter()
            proposals.append(propose(model, cases, spec.k, spec.name, support))
            seconds[spec.name] = time.perf_counter() - started
            if say:
                took = seconds[spec.name]
                say(f"{spec.name}: top-{spec.k} of {cases.n_cases:,} cases in {took:.1f} s")
        started = time.perf_counter()
        merged = merge_proposals(proposals)
        parts = list(stream) or [self.train, cases.sessions]
        stats = self.stats.with_stream(parts, self.train.n_events)
        inputs = CaseInputs.of(cases)
        store = None
        if store_features:
            store = store_values(parts, self.train.item_ids, merged, cases, inputs, store_features)
        data = ranking_data(merged, inputs, stats, cases.target_item, cases.session, store=store)
        seconds["features"] = time.perf_counter() - started
        return data, seconds


def _fit_key(spec: GeneratorSpec, train: Sessions) -> str:
    digest = hashlib.sha256(f"{spec.model}|{sorted(spec.params.items())}".encode())
    for array in (train.items, train.times, train.offsets):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("|".join(map(str, train.item_ids[:1000])).encode())
    return f"{spec.model}-{digest.hexdigest()[:20]}"


def latest_cases(cases: Cases, limit: int) -> Cases:
    if cases.n_cases <= limit:
        return cases
    moments = cases.moment
    keep = np.sort(np.argsort(moments, kind="stable")[-limit:])
    return Cases(cases.sessions, cases.target[keep])


def pipeline_ranks(
    data: RankingData,
    scores: np.ndarray,
    target_items: np.ndarray,
    fallback_rank: np.ndarray,
    ties: TiePolicy = "conservative",
) -> np.ndarray:
    """[n_cases] the rank of each case's target in the pipeline's full ranking: among the
    candidates by `scores` (ties by policy), else after all candidates in `fallback_rank`
    order ([n_items] 1 = first) among the items that are not candidates."""
    assert data.label is not None
    n_cases = len(target_items)
    bounds = np.searchsorted(data.case, np.arange(n_cases + 1))
    sizes = np.diff(bounds)
    is_target = data.label > 0.5
    target_score = np.full(n_cases, np.nan)
    target_score[data.case[is_target]] = scores[is_target]
    found = ~np.isnan(target_score)
    relative = scores - target_score[data.case]
    higher = np.bincount(data.case, weights=relative > 0, minlength=n_cases)
    equal = np.bincount(data.case, weights=relative == 0, minlength=n_cases) - found
    share = {"conservative": 1.0, "median": 0.5, "standard": 0.0}[ties]
    ranks = higher + share * equal + 1
    # outside the set: after the candidates, in fallback order among the rest
    below = np.bincount(
        data.case,
        weights=fallback_rank[data.item] < fallback_rank[target_items[data.case]],
        minlength=n_cases,
    )
    outside = sizes + fallback_rank[target_items] - below
    out: np.ndarray = np.where(found, ranks, outside)
    return out


@dataclass
class PipelineRun:
    ranks: np.ndarray  # [test cases]
    positions: np.ndarray  # [test cases] events seen before each
    scores: np.ndarray  # [rows of test_data] the ranker's
    candidate_recall: dict[int, float]  # k -> share of cases with the target among the first k
    recall_of_generators: dict[str, float]  # per generator: target in its top-k
    seconds: dict[str, float]
    test_data: RankingData
    ranker: LearnedRanker
    ranker_train_cases: int
    ranker_data: RankingData  # what the ranker learned on (the ablations reuse it)
    target_items: np.ndarray  # [test cases]
    fallback_rank: np.ndarray  # [n_items] the order after the candidates
    generators: Generators | None = None  # fitted on all training data (what a version serves)

    def ranks_of(self, scores: np.ndarray, data: RankingData | None = None) -> np.ndarray:
        """The test cases' ranks under other scores of the same candidates."""
        return pipeline_ranks(
            data if data is not None else self.test_data, scores, self.target_items,
            self.fallback_rank,
        )  # fmt: skip


def run_pipeline(
    spec: PipelineSpec,
    train: Sessions,
    test: Sessions,
    catalog: Mapping[str, Item] | None = None,
    ties: TiePolicy = "conservative",
    say: Progress | None = None,
    ranker_data: RankingData | None = None,
    cache: Path | None = None,
) -> PipelineRun:
    """Fit and evaluate the whole pipeline with the protocol above (`test` coded in `train`'s
    vocabulary). `ranker_data`: reuse the ranker's training candidates of an earlier run."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    ranker, full, ranker_data = fit_pipeline(spec, train, catalog, seconds, say, cache, ranker_data)
    cases = Cases.of(test)
    test_data, walk = full.candidates(cases, say, store_features=spec.store_features)
    for name, value in walk.items():
        seconds[f"candidates for the test: {name}"] = value
    tick = time.perf_counter()
    scores = ranker.predict(test_data)
    seconds["ranker predict"] = time.perf_counter() - tick
    fallback = popularity_order(train)
    ranks = pipeline_ranks(test_data, scores, cases.target_item, fallback, ties)
    seconds["total"] = time.perf_counter() - started
    return PipelineRun(
        ranks=ranks,
        positions=cases.position,
        scores=scores,
        candidate_recall=candidate_recall(test_data, cases.n_cases),
        recall_of_generators=generator_recall(test_data, cases.n_cases),
        seconds=seconds,
        test_data=test_data,
        ranker=ranker,
        ranker_train_cases=ranker_data.n_cases,
        ranker_data=ranker_data,
        target_items=cases.target_item,
        fallback_rank=fallback,
        generators=full,
    )


def fit_pipeline(
    spec: PipelineSpec,
    train: Sessions,
    catalog: Mapping[str, Item] | None,
    seconds: dict[str, float],
    say: Progress | None = None,
    cache: Path | None = None,
    ranker_data: RankingData | None = None,
) -> tuple[LearnedRanker, Generators, RankingData]:
    """The protocol's training half: the ranker fitted on the candidates of the latest
    training sessions (`ranker_data`, when given, instead of walking them), then every
    generator on all of `train`; the seconds of each part are added to `seconds`."""
    if ranker_data is None:
        ranker_data = ranker_training_data(spec, train, catalog, seconds, say, cache)
    ranker = make_ranker(spec.ranker, spec.ranker_params)
    tick = time.perf_counter()
    ranker.fit(ranker_data)
    seconds["ranker fit"] = time.perf_counter() - tick
    if say:
        took = seconds["ranker fit"]
        say(f"ranker {spec.ranker} fitted on {ranker_data.n_cases:,} cases in {took:.1f} s")
    full = Generators.fit(spec.generators, train, catalog, say, cache)
    for name, value in full.fit_seconds.items():
        seconds[f"fit on all: {name}"] = value
    return ranker, full, ranker_data


def ranker_training_data(
    spec: PipelineSpec,
    train: Sessions,
    catalog: Mapping[str, Item] | None,
    seconds: dict[str, float],
    say: Progress | None = None,
    cache: Path | None = None,
) -> RankingData:
    """The ranker's candidates: the latest `ranker_share` of the training sessions in
    `ranker_folds` consecutive slices, each walked by generators fitted on every session
    before it; at most `max_ranker_cases`, the latest."""
    starts = train.times[train.offsets[:-1]]
    order = np.argsort(starts, kind="stable")
    n_after = max(spec.ranker_folds, round(train.n_sessions * spec.ranker_share))
    first = train.n_sessions - n_after
    edges = [first + (n_after * j) // spec.ranker_folds for j in range(spec.ranker_folds + 1)]
    per_fold = spec.max_ranker_cases // spec.ranker_folds
    parts = []
    for fold, (low, high) in enumerate(itertools.pairwise(edges)):
        before = train.take(np.sort(order[:low]))
        after = train.take(np.sort(order[low:high]))
        if say:
            say(
                f"fold {fold + 1}/{spec.ranker_folds}: generators on {before.n_sessions:,} "
                f"sessions, the ranker's candidates from the next {after.n_sessions:,}"
            )
        early = Generators.fit(spec.generators, before, catalog, say, cache)
        for name, value in early.fit_seconds.items():
            key = f"fit before cut: {name}"
            seconds[key] = seconds.get(key, 0.0) + value
        cases = latest_cases(Cases.of(after), per_fold)
        part, walk = early.candidates(cases, say, store_features=spec.store_features)
        for name, value in walk.items():
            key = f"candidates for the ranker: {name}"
            seconds[key] = seconds.get(key, 0.0) + value
        parts.append(part)
    return concat_ranking_data(parts)


def popularity_order(train: Sessions) -> np.ndarray:
    """[n_items] each item's place (1 = first) by training events, ties by index."""
    support = train.item_support()
    order = np.lexsort((np.arange(train.n_items), -support))
    place = np.empty(train.n_items, np.float64)
    place[order] = np.arange(1, train.n_items + 1)
    return place


def candidate_recall(data: RankingData, n_cases: int) -> dict[int, float]:
    """At each depth k: the share of the cases whose target is in the union of every
    generator's first k (k beyond a generator's over-fetch: all it proposed)."""
    assert data.label is not None
    ranks = np.column_stack([data.column(n) for n in data.names if n.endswith(".rank")])
    best = np.nanmin(np.where(np.isnan(ranks), np.inf, ranks), axis=1)
    out = {}
    is_target = data.label > 0.5
    n_cases = max(n_cases, 1)
    for k in (5, 10, 20, 50, 100, 200, 500):
        out[k] = float(is_target[best <= k].sum()) / n_cases
    return out


def generator_recall(data: RankingData, n_cases: int) -> dict[str, float]:
    """Per generator: the share of the cases whose target is in its list."""
    assert data.label is not None
    is_target = data.label > 0.5
    n_cases = max(n_cases, 1)
    return {
        name.removesuffix(".rank"): float((is_target & ~np.isnan(data.column(name))).sum())
        / n_cases
        for name in data.names
        if name.endswith(".rank") and name != "generators.count"
    }


def list_figures(
    data: RankingData, scores: np.ndarray, support: np.ndarray, cutoffs: Sequence[int]
) -> tuple[dict[int, float], dict[int, float]]:
    """Coverage (share of items in any top-K list) and popularity bias (mean of pop / max
    pop over the top-K lists) of the pipeline's candidate lists, as the evaluator reports."""
    order = np.lexsort((-scores, data.case))
    case = data.case[order]
    starts = np.searchsorted(case, np.arange(data.n_cases))
    place = np.arange(len(case)) - starts[case]
    relative = support / max(int(support.max()), 1)
    coverage, popularity = {}, {}
    n_lists = max(data.n_cases, 1)
    for k in cutoffs:
        top = order[place < k]
        coverage[k] = float(len(np.unique(data.item[top]))) / len(support)
        sizes = np.maximum(np.bincount(data.case[top], minlength=data.n_cases), 1)
        per_list = np.bincount(
            data.case[top], weights=relative[data.item[top]], minlength=data.n_cases
        )
        popularity[k] = float((per_list / sizes).sum()) / n_lists
    return coverage, popularity


def store_values(
    parts: Sequence[Sessions],
    item_ids: np.ndarray,
    merged: Merged,
    cases: Cases,
    inputs: CaseInputs,
    names: Sequence[str],
) -> dict[str, np.ndarray]:
    """Per store feature, each candidate's value as of its case's moment (the partition of
    that day: events of the days before it in `parts`), as a server reads it that day: an
    item feature of the candidate, a user feature of the case's user, a pair feature of the
    case's latest item (the anchor) and the candidate."""
    from nextbest.twostage.store.definitions import by_name, entities, entity_ids, of_entities_of
    from nextbest.twostage.store.offline import EventsAsOf

    wanted = by_name(names)
    store = EventsAsOf(typed_events(parts), of_entities_of(names))
    items = item_ids[merged.item]
    users = np.full(cases.n_cases, None, dtype=object)
    if cases.sessions.user_ids is not None:
        users = cases.sessions.user_ids[cases.session]
    last = inputs.history.items[:, -1]  # the case's latest item (-1: none)
    anchors = item_ids[np.maximum(last, 0)].astype(object)
    anchors[last < 0] = None
    moments = cases.moment[merged.case]
    values: dict[str, np.ndarray] = {}
    for kind in entities(wanted):
        columns = [f.name for f in wanted if f.entity == kind]
        ids = entity_ids(kind, items, list(users[merged.case]), list(anchors[merged.case]))
        table = store.as_of_rows(kind, ids, moments, columns)
        values |= {name: table[:, k] for k, name in enumerate(columns)}
    return {name: values[name] for name in names}


def typed_events(parts: Sequence[Sessions]) -> pl.DataFrame:
    """The events of `parts` as the store reads a log: item_id, type, timestamp, user_id,
    session_id."""
    frames = []
    for sessions in parts:
        if sessions.event_types is None:
            raise ValueError(
                "the feature store counts views, carts and purchases: the training events "
                "have no type column"
            )
        users = None
        if sessions.user_ids is not None:  # object arrays with None: polars takes a list
            users = [None if u is None else str(u) for u in sessions.user_ids]
            users = list(np.repeat(np.array(users, dtype=object), sessions.lengths))
        frames.append(
            pl.DataFrame(
                {
                    "item_id": sessions.item_ids[sessions.items].astype(str),
                    "type": sessions.event_types.astype(str),
                    "timestamp": sessions.times,
                    "user_id": users,
                    "session_id": np.repeat(sessions.session_ids.astype(str), sessions.lengths),
                },
                schema={
                    "item_id": pl.String,
                    "type": pl.String,
                    "timestamp": pl.Float64,
                    "user_id": pl.String,
                    "session_id": pl.String,
                },
            )
        )
    return pl.concat(frames)
