"""The query graph: which searched keywords go with which items and categories.

Built from the search log. A `search` event names a query; the item events that follow it in
the same session (at most `follow_events` of them, until the next search) are what the query
led to, each counted by its action's weight (a purchase says more than a view). An item event
that carries a `query` of its own (a click on a search result) is credited to that query
directly. That gives co-occurrence counts query x item.

Raw counts attach a popular query to every item it ever preceded, so the strengths are
positive pointwise mutual information (PPMI: how much more often the pair occurs than the
query's and the item's frequencies predict), with the item side's frequencies smoothed by
`alpha` (Levy, Goldberg and Dagan, TACL 2015) so that a rare item does not win every query.
Pairs seen fewer than `min_count` times are left out: one stray click is not an association.

    q2i [Q, I]: each query's items, rows normalised to sum 1
    i2q [I, Q]: each item's queries, its `per_item` strongest, rows normalised to sum 1
    c2q [C, Q]: each category's queries (counts summed over the category's items, every level
                of the category path a category of its own), PPMI, rows normalised to sum 1
    c2s [C, S], s2q [S, Q]: the scenarios (`scenarios.py`): groups of categories serving one
                need, mined from the log and curated in a file

The normalised rows are transition probabilities, so a walk (item -> query, item -> category
-> query) is a product of sparse matrices.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from nextbest.events.schema import CATEGORY_SEPARATOR
from nextbest.keywords.scenarios import (
    CuratedScenario,
    Scenario,
    check_curated,
    mine_scenarios,
    scenario_matrices,
)

MATRICES = ("counts", "q2i", "i2q", "c2q", "item_categories", "c2s", "s2q")
GRAPH_FILE = "query-graph.npz"
GRAPH_META = "query-graph.json"
KEYWORDS_DIR = "keywords"  # in a model version folder, beside the model

# How much each action after a search says about the query (a search result's click counts
# like a view that came from it).
DEFAULT_WEIGHTS = {"view": 1.0, "click": 1.0, "favorite": 2.0, "cart": 3.0, "purchase": 5.0}


@dataclass(frozen=True)
class QueryGraphConfig:
    follow_events: int = 10  # item events after a search that it is credited with
    min_count: float = 2.0  # weighted co-occurrences a pair needs to be kept
    alpha: float = 0.75  # smoothing of the item side's frequencies in PMI (1: none)
    per_item: int = 20  # queries kept per item in i2q
    max_query_length: int = 100  # longer queries (pasted text, not keywords) are left out
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    # Scenarios: two leaves form one when they share at least `scenario_min_count` need
    # baskets with a PMI of at least `scenario_min_pmi` (0.7: twice as often as chance); a
    # scenario has at most `scenario_members` categories.
    scenario_min_count: float = 5.0
    scenario_min_pmi: float = 0.7
    scenario_members: int = 4

    def __post_init__(self) -> None:
        _check(self.follow_events >= 1, "follow_events", self.follow_events, "an integer >= 1")
        _check(self.min_count > 0, "min_count", self.min_count, "a number > 0")
        _check(0 < self.alpha <= 1, "alpha", self.alpha, "a number in (0, 1]")
        _check(self.per_item >= 1, "per_item", self.per_item, "an integer >= 1")
        _check(
            self.max_query_length >= 1, "max_query_length", self.max_query_length, "an integer >= 1"
        )
        _check(self.scenario_min_count > 0, "scenario_min_count", self.scenario_min_count,
               "a number > 0")  # fmt: skip
        _check(self.scenario_members >= 2, "scenario_members", self.scenario_members,
               "an integer >= 2")  # fmt: skip
        for action, weight in self.weights.items():
            _check(weight >= 0, f"weights.{action}", weight, "a number >= 0")


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}, not {value!r}")


def normalise_query(column: pl.Expr) -> pl.Expr:
    """Lower case, inner whitespace collapsed, ends trimmed ("Running  Shoes " -> "running
    shoes")."""
    return column.str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


def normalise_text(query: str) -> str:
    """`normalise_query` for one string."""
    return " ".join(query.lower().split())


@dataclass
class QueryGraph:
    config: QueryGraphConfig
    queries: list[str]  # [Q]
    searches: np.ndarray  # [Q] times each query was searched
    item_ids: list[str]  # [I]
    categories: list[str]  # [C] every level of every item's category path
    counts: sp.csr_matrix  # [Q, I] weighted co-occurrences (pairs kept)
    q2i: sp.csr_matrix  # [Q, I]
    i2q: sp.csr_matrix  # [I, Q]
    c2q: sp.csr_matrix  # [C, Q]
    item_categories: sp.csr_matrix  # [I, C] 1 where the item is under the category
    scenarios: list[Scenario] = field(default_factory=list)  # [S]
    c2s: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))  # [C, S]
    s2q: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))  # [S, Q]
    unsearched: list[str] = field(default_factory=list)  # curated queries nobody searched

    # -- lookups (built once: a request must not pay a pass over every query) --------------
    def query_index(self) -> dict[str, int]:
        return self.lookups.query_of

    def item_index(self) -> dict[str, int]:
        return self.lookups.item_of

    def category_spread(self) -> sp.csr_matrix:
        """[I, C] each item's category levels, its row summing to 1 (0 without categories):
        the item -> category step of a walk."""
        return self.lookups.spread

    @property
    def lookups(self) -> GraphLookups:
        cached = self.__dict__.get("_lookups")
        if cached is None:
            cached = self.__dict__["_lookups"] = GraphLookups.of(self)
        return cached  # type: ignore[no-any-return]

    def queries_of_item(self, item_id: str, n: int = 10) -> list[tuple[str, float]]:
        row = self.item_index().get(item_id)
        return [] if row is None else self._top(self.i2q, row, self.queries, n)

    def items_of_query(self, query: str, n: int = 10) -> list[tuple[str, float]]:
        row = self.query_index().get(normalise_text(query))
        return [] if row is None else self._top(self.q2i, row, self.item_ids, n)

    def queries_of_category(self, category: str, n: int = 10) -> list[tuple[str, float]]:
        row = {c: k for k, c in enumerate(self.categories)}.get(category)
        return [] if row is None else self._top(self.c2q, row, self.queries, n)

    @staticmethod
    def _top(matrix: sp.csr_matrix, row: int, names: list[str], n: int) -> list[tuple[str, float]]:
        begin, end = matrix.indptr[row], matrix.indptr[row + 1]
        columns, values = matrix.indices[begin:end], matrix.data[begin:end]
        order = np.lexsort((columns, -values))[:n]  # strongest first, ties by index
        return [(names[int(columns[k])], float(values[k])) for k in order]

    def summary(self) -> dict[str, int]:
        return {
            "queries": len(self.queries),
            "items": len(self.item_ids),
            "categories": len(self.categories),
            "query_item_pairs": int(self.counts.nnz),
            "items_with_queries": int(np.count_nonzero(np.diff(self.i2q.indptr))),
            "categories_with_queries": int(np.count_nonzero(np.diff(self.c2q.indptr))),
            "scenarios": len(self.scenarios),
            "curated_scenarios": sum(s.source == "curated" for s in self.scenarios),
        }

    def query_scenarios(self) -> sp.csr_matrix:
        """[Q, S] s2q transposed: each query's scenarios, by row (built once)."""
        cached = self.__dict__.get("_q2s")
        if cached is None:
            cached = self.__dict__["_q2s"] = sp.csr_matrix(self.s2q.T)
        return cached  # type: ignore[no-any-return]

    def scenario_walk(self) -> sp.csr_matrix:
        """[C, Q] category -> scenario -> query, for the `scene` path (zero without
        scenarios)."""
        cached = self.__dict__.get("_scene")
        if cached is None:
            if self.scenarios:
                cached = sp.csr_matrix(self.c2s @ self.s2q)
            else:
                cached = sp.csr_matrix((len(self.categories), len(self.queries)))
            self.__dict__["_scene"] = cached
        return cached  # type: ignore[no-any-return]

    # -- storage -----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {"searches": self.searches}
        for name in MATRICES:
            matrix: sp.csr_matrix = getattr(self, name)
            arrays |= {
                f"{name}_data": matrix.data,
                f"{name}_indices": matrix.indices,
                f"{name}_indptr": matrix.indptr,
                f"{name}_shape": np.array(matrix.shape),
            }
        np.savez(folder / GRAPH_FILE, **arrays)  # type: ignore[arg-type]
        meta = {
            "config": asdict(self.config),
            "queries": self.queries,
            "item_ids": self.item_ids,
            "categories": self.categories,
            "scenarios": [asdict(s) for s in self.scenarios],
            "unsearched": self.unsearched,
        }
        (folder / GRAPH_META).write_text(json.dumps(meta))

    @classmethod
    def load(cls, folder: Path) -> QueryGraph:
        meta = json.loads((folder / GRAPH_META).read_text())
        with np.load(folder / GRAPH_FILE) as arrays:
            matrices = {
                name: sp.csr_matrix(
                    (
                        arrays[f"{name}_data"],
                        arrays[f"{name}_indices"],
                        arrays[f"{name}_indptr"],
                    ),
                    shape=tuple(arrays[f"{name}_shape"]),
                )
                for name in MATRICES
                if f"{name}_data" in arrays  # versions before scenarios have no c2s, s2q
            }
            searches = arrays["searches"]
        return cls(
            config=QueryGraphConfig(**meta["config"]),
            queries=meta["queries"],
            searches=searches,
            item_ids=meta["item_ids"],
            categories=meta["categories"],
            scenarios=[Scenario.of_json(s) for s in meta.get("scenarios", [])],
            unsearched=meta.get("unsearched", []),
            **matrices,
        )


@dataclass(frozen=True)
class GraphLookups:
    """What a request reads from a graph, derived once."""

    query_of: dict[str, int]
    item_of: dict[str, int]
    spread: sp.csr_matrix  # [I, C] item -> its category levels, rows summing to 1
    q2c: sp.csr_matrix  # [Q, C] c2q transposed: a query's categories, by row
    q2i_norms: np.ndarray  # [Q] the L2 norm of each q2i row
    top_categories: np.ndarray  # indices of the top-level categories
    query_leaf: np.ndarray  # [Q] the deepest category holding most of a query's items, or -1
    item_leaf: np.ndarray  # [I] each item's deepest category, or -1

    @classmethod
    def of(cls, graph: QueryGraph) -> GraphLookups:
        levels = graph.item_categories
        per_item = np.asarray(levels.sum(axis=1)).ravel()
        scale = np.divide(1.0, per_item, out=np.zeros_like(per_item), where=per_item > 0)
        q2i = graph.q2i.tocsr()
        spread = sp.csr_matrix(sp.diags(scale) @ levels)
        return cls(
            query_of={q: k for k, q in enumerate(graph.queries)},
            item_of={i: k for k, i in enumerate(graph.item_ids)},
            spread=spread,
            q2c=graph.c2q.T.tocsr(),
            q2i_norms=np.sqrt(np.asarray(q2i.multiply(q2i).sum(axis=1)).ravel()),
            top_categories=np.array(
                [k for k, c in enumerate(graph.categories) if CATEGORY_SEPARATOR not in c],
                dtype=np.int64,
            ),
            # by the items a query led to (raw counts: PPMI favours the rare stray item); a
            # query without kept pairs, by its c2q categories
            query_leaf=np.where(
                np.diff(graph.counts.tocsr().indptr) > 0,
                _deepest(sp.csr_matrix(graph.counts @ spread), graph.categories),
                _deepest(graph.c2q.T.tocsr(), graph.categories),
            ),
            item_leaf=_deepest(graph.item_categories.tocsr(), graph.categories),
        )


def _deepest(mass: sp.csr_matrix, categories: list[str]) -> np.ndarray:
    """[rows] per row of `mass` [rows, C], the deepest category with mass, the one with most
    of it among equally deep ones; -1 for empty rows."""
    depth = np.array([c.count(CATEGORY_SEPARATOR) for c in categories], dtype=np.float64)
    out = np.full(mass.shape[0], -1, dtype=np.int64)
    for row in range(mass.shape[0]):
        begin, end = mass.indptr[row], mass.indptr[row + 1]
        if begin == end:
            continue
        columns, values = mass.indices[begin:end], mass.data[begin:end]
        deepest = depth[columns] == depth[columns].max()
        chosen, weights = columns[deepest], values[deepest]
        out[row] = int(chosen[np.lexsort((chosen, -weights))[0]])
    return out


def walk(matrix: sp.csr_matrix, weights: dict[int, float], width: int) -> np.ndarray:
    """sum over `weights` (row -> weight) of weight x that row of `matrix`, dense [width]: one
    shopper's step of a walk, in one gather and one bincount (no sparse matrix per request)."""
    if not weights:
        return np.zeros(width, dtype=np.float64)
    rows = np.fromiter(weights.keys(), dtype=np.int64, count=len(weights))
    factors = np.fromiter(weights.values(), dtype=np.float64, count=len(weights))
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    lengths = ends - starts
    # the positions of every chosen row's entries in indices/data, row after row
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    positions = np.arange(int(lengths.sum())) + offsets
    values = matrix.data[positions] * np.repeat(factors, lengths)
    return np.bincount(matrix.indices[positions], weights=values, minlength=width)


def load_version_graph(version: Path) -> QueryGraph | None:
    """The query graph saved with a model version (`nextbest train`), None when it has none."""
    where = version / KEYWORDS_DIR
    return QueryGraph.load(where) if (where / GRAPH_FILE).exists() else None


def build_query_graph(
    events: pl.DataFrame,
    items: pl.DataFrame | None = None,
    config: QueryGraphConfig | None = None,
    curated: Sequence[CuratedScenario] = (),
) -> QueryGraph:
    """The query graph of an event table (EVENT_SCHEMA); `items` (ITEM_SCHEMA) gives the
    categories of c2q and of the scenarios (without it, both are empty, and `curated`
    scenarios can name queries only)."""
    config = config or QueryGraphConfig()
    credited = credited_pairs(events, config)
    searched = (
        events.lazy()
        .filter(pl.col("type") == "search")
        .select(normalise_query(pl.col("query")).alias("query"))
        .filter(pl.col("query").str.len_chars().is_between(1, config.max_query_length))
        .group_by("query")
        .agg(pl.len().alias("searches"))
        .collect()
    )
    queries = sorted(set(searched["query"].to_list()) | set(credited["query"].to_list()))
    query_of = {q: k for k, q in enumerate(queries)}
    searches = np.zeros(len(queries), dtype=np.int64)
    for query, times in searched.iter_rows():
        searches[query_of[query]] = times
    item_ids = sorted(set(credited["item_id"].to_list()))
    item_of = {i: k for k, i in enumerate(item_ids)}
    counts = sp.csr_matrix(
        (
            credited["weight"].to_numpy(),
            (
                np.array([query_of[q] for q in credited["query"]], dtype=np.int64),
                np.array([item_of[i] for i in credited["item_id"]], dtype=np.int64),
            ),
        ),
        shape=(len(queries), len(item_ids)),
    )
    categories, item_categories = _categories(item_ids, items)
    # Categories sum every pair, the weak ones too: many single clicks on a category's items
    # after one query are an association of the category even when no one item's is.
    category_counts = (item_categories.T @ counts.T).tocsr()  # [C, Q]
    counts.data[counts.data < config.min_count] = 0
    counts.eliminate_zeros()
    strengths = ppmi(counts, config.alpha)
    graph = QueryGraph(
        config=config,
        queries=queries,
        searches=searches,
        item_ids=item_ids,
        categories=categories,
        counts=counts,
        q2i=_rows_normalised(strengths),
        i2q=_rows_normalised(_keep_top(strengths.T.tocsr(), config.per_item)),
        c2q=_rows_normalised(ppmi(category_counts, config.alpha)),
        item_categories=item_categories,
    )
    mined = []
    if items is not None:
        check_curated(curated, _catalog_categories(items))
        mined = mine_scenarios(
            events, items, config.scenario_min_count, config.scenario_min_pmi,
            config.scenario_members,
        )  # fmt: skip
    graph.scenarios, graph.c2s, graph.s2q, graph.unsearched = scenario_matrices(
        graph, mined, curated
    )
    return graph


def credited_pairs(events: pl.DataFrame, config: QueryGraphConfig) -> pl.DataFrame:
    """(query, item_id, weight) summed: what each query led to."""
    weights = pl.DataFrame(
        {"type": list(config.weights), "weight": list(config.weights.values())},
        schema={"type": pl.String(), "weight": pl.Float64()},
    )
    ordered = (
        events.lazy()
        .with_row_index("order")  # ties in time keep the table's order
        .sort("session_id", "timestamp", "order")
        .with_columns(normalise_query(pl.col("query")).alias("query"))
        .with_columns(
            pl.when(pl.col("query").str.len_chars().is_between(1, config.max_query_length))
            .then(pl.col("query"))
            .alias("query"),
            (pl.col("type") == "search").cast(pl.Int64).cum_sum().over("session_id").alias("run"),
        )
        .with_columns(
            # the latest search of the session, and the item events since it
            pl.when(pl.col("type") == "search")
            .then(pl.col("query"))
            .forward_fill()
            .over("session_id", "run")
            .alias("searched"),
            (pl.col("type") != "search")
            .cast(pl.Int64)
            .cum_sum()
            .over("session_id", "run")
            .alias("since"),
        )
        .filter(pl.col("item_id").is_not_null() & (pl.col("type") != "search"))
        .join(weights.lazy(), on="type", how="inner")
    )
    own = ordered.filter(pl.col("query").is_not_null()).select("query", "item_id", "weight")
    following = ordered.filter(
        pl.col("query").is_null()
        & pl.col("searched").is_not_null()
        & (pl.col("run") > 0)
        & (pl.col("since") <= config.follow_events)
    ).select(pl.col("searched").alias("query"), "item_id", "weight")
    return (
        pl.concat([own, following])
        .filter(pl.col("weight") > 0)
        .group_by("query", "item_id")
        .agg(pl.col("weight").sum())
        .sort("query", "item_id")
        .collect()
    )


def ppmi(counts: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Positive PMI of a count matrix [rows, columns], the columns' frequencies ** alpha."""
    counts = counts.tocsr().astype(np.float64)
    total = counts.sum()
    if total <= 0:
        return sp.csr_matrix(counts.shape)
    row_share = np.asarray(counts.sum(axis=1)).ravel() / total
    column_mass = np.asarray(counts.sum(axis=0)).ravel() ** alpha
    column_share = column_mass / column_mass.sum()
    coo = counts.tocoo()
    pmi = np.log(coo.data / total) - np.log(row_share[coo.row]) - np.log(column_share[coo.col])
    keep = pmi > 0
    return sp.csr_matrix(
        (pmi[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape, dtype=np.float64
    )


def _rows_normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix = matrix.tocsr()
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    normalised: sp.csr_matrix = sp.diags(scale) @ matrix
    normalised = normalised.tocsr()
    normalised.sort_indices()
    return normalised


def _keep_top(matrix: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Each row's `n` largest entries."""
    rows, columns, values = [], [], []
    for row in range(matrix.shape[0]):
        begin, end = matrix.indptr[row], matrix.indptr[row + 1]
        if begin == end:
            continue
        data, index = matrix.data[begin:end], matrix.indices[begin:end]
        chosen = np.lexsort((index, -data))[:n]
        rows.append(np.full(len(chosen), row))
        columns.append(index[chosen])
        values.append(data[chosen])
    if not rows:
        return sp.csr_matrix(matrix.shape)
    return sp.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
        shape=matrix.shape,
    )


def _catalog_categories(items: pl.DataFrame) -> set[str]:
    """Every level of every category path of the catalog."""
    paths = items["category_path"].drop_nulls().unique().to_list()
    return {level for path in paths for level in category_levels(path)}


def category_levels(path: str) -> list[str]:
    """ "A > B > C" -> ["A", "A > B", "A > B > C"] (spaces around the separators trimmed)."""
    parts = [p.strip() for p in path.split(CATEGORY_SEPARATOR.strip())]
    parts = [p for p in parts if p]
    return [CATEGORY_SEPARATOR.join(parts[: k + 1]) for k in range(len(parts))]


def _categories(item_ids: list[str], items: pl.DataFrame | None) -> tuple[list[str], sp.csr_matrix]:
    """Every level of the items' category paths ("A", "A > B", ...) and item x category."""
    if items is None or not item_ids:
        return [], sp.csr_matrix((len(item_ids), 0))
    path_of = dict(items.select("item_id", "category_path").drop_nulls().iter_rows())
    levels_of: dict[str, list[str]] = {}
    for item_id in item_ids:
        levels_of[item_id] = category_levels(path_of.get(item_id) or "")
    categories = sorted({c for levels in levels_of.values() for c in levels})
    category_of = {c: k for k, c in enumerate(categories)}
    rows = [k for k, i in enumerate(item_ids) for _ in levels_of[i]]
    columns = [category_of[c] for i in item_ids for c in levels_of[i]]
    matrix = sp.csr_matrix(
        (np.ones(len(rows)), (np.array(rows, dtype=np.int64), np.array(columns, dtype=np.int64))),
        shape=(len(item_ids), len(categories)),
    )
    return categories, matrix
