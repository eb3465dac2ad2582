"""Scenarios: groups of categories, and their queries, that serve one need.

"Running" is running shoes, sports watches and energy gels; "home office" a laptop, a monitor
and a keyboard. A scenario lets the keyword card ask about the next step of a need, not only
about the category on screen: after a treadmill, "running shoes".

**Mined from the log.** A "need basket" is one purchase and what the same customer put in a
cart or bought in the three weeks after it (co-purchase in sequence). Two leaf categories
that share baskets more often than their frequencies predict (positive PMI, as the query
graph) serve one need. Each leaf with such partners seeds a scenario: itself and its
`scenario_members - 1` strongest partners, titled by their names. Views and a visit's own
searches do not count: a shopper browses and searches siblings while comparing, which is not
a need.

**Curated in a file** (`nextbest train --scenarios FILE`), TOML::

    [scenarios.cold-weather]
    title = "Dressing for the cold"
    categories = ["Fashion > Accessories > Scarves", "Fashion > Outerwear"]
    queries = ["windbreaker", "wool hat"]

A curated scenario's categories must be the catalog's (any level of a path); its queries are
kept when shoppers searched them (a query nobody searched has no results to learn from) and
listed otherwise.

In the graph, as two more transition matrices of the walk:

    c2s [C, S]: each category's scenarios, rows summing to 1
    s2q [S, Q]: each scenario's queries (its members' c2q rows, weighted, and its curated
                queries), rows summing to 1
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from nextbest.events.schema import CATEGORY_SEPARATOR
from nextbest.toml_files import read_toml

if TYPE_CHECKING:
    from nextbest.keywords.graph import QueryGraph

AFTER_PURCHASE_SECONDS = 21 * 86_400.0  # what a customer takes within this after a purchase
MAX_TITLE_NAMES = 3  # a mined title names at most this many of its categories
CURATED_WEIGHT = 1.0  # a curated query's share beside one member category's queries


@dataclass(frozen=True)
class Scenario:
    name: str  # a slug: the seed leaf's name, or the curated file's key
    title: str
    source: str  # "mined" or "curated"
    categories: tuple[str, ...]  # member category paths, strongest first
    queries: tuple[str, ...] = ()  # curated queries (normalised)

    @classmethod
    def of_json(cls, saved: dict[str, Any]) -> Scenario:
        return cls(
            name=saved["name"],
            title=saved["title"],
            source=saved["source"],
            categories=tuple(saved["categories"]),
            queries=tuple(saved.get("queries", ())),
        )


@dataclass(frozen=True)
class CuratedScenario:
    name: str
    title: str
    categories: tuple[str, ...]
    queries: tuple[str, ...]


def read_scenarios(path: Path) -> list[CuratedScenario]:
    """The curated scenarios of a TOML file; ValueError naming the file and key when bad."""
    from nextbest.keywords.graph import normalise_text

    raw = read_toml(path, "scenarios")
    unknown = set(raw) - {"scenarios"}
    if unknown:
        raise ValueError(f"scenarios file {path}: unknown key {sorted(unknown)[0]!r}")
    table = raw.get("scenarios")
    if not isinstance(table, dict) or not table:
        raise ValueError(f"scenarios file {path}: no [scenarios.NAME] tables")
    curated = []
    for name, spec in table.items():
        where = f"scenarios file {path}: scenarios.{name}"
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: must be a table with title, categories and queries")
        extra = set(spec) - {"title", "categories", "queries"}
        if extra:
            raise ValueError(f"{where}: unknown key {sorted(extra)[0]!r}")
        title = spec.get("title")
        if not isinstance(title, str) or not 1 <= len(title.strip()) <= 80:
            raise ValueError(f"{where}.title: must be a text of 1 to 80 characters")
        categories = _strings(spec.get("categories", []), f"{where}.categories")
        queries = _strings(spec.get("queries", []), f"{where}.queries")
        if not categories and not queries:
            raise ValueError(f"{where}: needs categories or queries (or both)")
        curated.append(
            CuratedScenario(
                name=name,
                title=title.strip(),
                categories=tuple(_path(c) for c in categories),
                queries=tuple(dict.fromkeys(normalise_text(q) for q in queries)),
            )
        )
    return curated


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where}: must be a list of non-empty texts")
    return [str(v) for v in value]


def _path(category: str) -> str:
    """ "Sports >Running" -> "Sports > Running": the catalog's spelling of a path."""
    from nextbest.keywords.graph import category_levels

    levels = category_levels(category)
    return levels[-1] if levels else ""


def mine_scenarios(
    events: pl.DataFrame,
    items: pl.DataFrame,
    min_count: float,
    min_pmi: float,
    members: int,
) -> list[Scenario]:
    """Scenarios seeded by every leaf category with partners in the need baskets of `events`."""
    from nextbest.keywords.graph import ppmi

    leaf_of_item = {
        item_id: _path(path)
        for item_id, path in items.select("item_id", "category_path").drop_nulls().iter_rows()
        if _path(path)
    }
    if not leaf_of_item:
        return []
    leaf_map = pl.DataFrame(
        {"item_id": list(leaf_of_item), "leaf": list(leaf_of_item.values())},
        schema={"item_id": pl.String(), "leaf": pl.String()},
    ).lazy()
    # Searches after a purchase, and a session's own carts and searches, were tried as baskets
    # too: on the demo shop they group the siblings a shopper compares more than the needs
    # that follow one another (docs/keywords.md, Scenarios).
    taken = (
        events.lazy()
        .filter(pl.col("user_id").is_not_null() & pl.col("type").is_in(["cart", "purchase"]))
        .join(leaf_map, on="item_id")
        .select("user_id", "timestamp", "leaf", "type", "event_id")
    )
    visits = _after_purchase(taken, AFTER_PURCHASE_SECONDS).unique()
    pairs = (
        visits.join(visits, on="basket", suffix="_other")
        .filter(pl.col("leaf") != pl.col("leaf_other"))
        .group_by("leaf", "leaf_other")
        .agg(pl.len().alias("count"))
        .collect()
    )
    if pairs.is_empty():
        return []
    leaves = sorted(set(pairs["leaf"].to_list()))
    index = {leaf: k for k, leaf in enumerate(leaves)}
    counts = sp.csr_matrix(
        (
            pairs["count"].to_numpy().astype(np.float64),
            (
                np.array([index[v] for v in pairs["leaf"]], dtype=np.int64),
                np.array([index[v] for v in pairs["leaf_other"]], dtype=np.int64),
            ),
        ),
        shape=(len(leaves), len(leaves)),
    )
    strengths = ppmi(counts, 1.0).tocsr()
    found: dict[tuple[str, ...], Scenario] = {}
    for seed, leaf in enumerate(leaves):
        begin, end = strengths.indptr[seed], strengths.indptr[seed + 1]
        partners, pmi = strengths.indices[begin:end], strengths.data[begin:end]
        support = np.asarray(counts[seed, partners].todense()).ravel()
        keep = (pmi >= min_pmi) & (support >= min_count)
        partners, pmi = partners[keep], pmi[keep]
        if not len(partners):
            continue
        best = partners[np.lexsort((partners, -pmi))][: members - 1]
        member_paths = (leaf, *(leaves[int(p)] for p in best))
        key = tuple(sorted(member_paths))
        if key not in found:  # two seeds with the same partners make one scenario
            found[key] = Scenario(_slug(leaf), _mined_title(member_paths), "mined", member_paths)
    return _unique_names(list(found.values()))


def _after_purchase(taken: pl.LazyFrame, window: float) -> pl.LazyFrame:
    """A need basket per purchase: its leaf, and the leaves the same customer searched, put in
    a cart or bought in the `window` after it (a treadmill, then running shoes)."""
    bought = taken.filter(pl.col("type") == "purchase").select(
        "user_id", pl.col("timestamp").alias("bought_at"), pl.col("event_id").alias("basket"),
        pl.col("leaf").alias("bought_leaf"),
    )  # fmt: skip
    later = (
        bought.join(taken, on="user_id")
        .filter(
            (pl.col("timestamp") > pl.col("bought_at"))
            & (pl.col("timestamp") <= pl.col("bought_at") + window)
        )
        .select("basket", "leaf")
    )
    return pl.concat([bought.select("basket", pl.col("bought_leaf").alias("leaf")), later])


def _slug(path: str) -> str:
    name = path.split(CATEGORY_SEPARATOR)[-1]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "scenario"


def _mined_title(paths: Sequence[str]) -> str:
    """ "Treadmills, running shoes and sports watches" (the seed first)."""
    names = [p.split(CATEGORY_SEPARATOR)[-1] for p in paths[:MAX_TITLE_NAMES]]
    names = [names[0], *(n if n[1:2].isupper() else n[:1].lower() + n[1:] for n in names[1:])]
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _unique_names(scenarios: list[Scenario]) -> list[Scenario]:
    seen: dict[str, int] = {}
    out = []
    for scenario in scenarios:
        n = seen[scenario.name] = seen.get(scenario.name, 0) + 1
        name = scenario.name if n == 1 else f"{scenario.name}-{n}"
        out.append(Scenario(name, scenario.title, scenario.source, scenario.categories))
    return out


def check_curated(curated: Sequence[CuratedScenario], known_categories: set[str]) -> None:
    """A curated scenario naming a category the catalog lacks is a mistake in the file: say
    which."""
    for scenario in curated:
        for category in scenario.categories:
            if category not in known_categories:
                raise ValueError(
                    f"scenarios.{scenario.name}.categories: {category!r} is not a category "
                    "of the catalog (give a path as the items' category_path spells it)"
                )


def scenario_matrices(
    graph: QueryGraph,
    mined: Sequence[Scenario],
    curated: Sequence[CuratedScenario],
) -> tuple[list[Scenario], sp.csr_matrix, sp.csr_matrix, list[str]]:
    """The scenarios kept (curated first; a mined one named like a curated one is dropped),
    c2s [C, S], s2q [S, Q], and the curated queries left out (nobody searched them)."""
    category_of = {c: k for k, c in enumerate(graph.categories)}
    query_of = {q: k for k, q in enumerate(graph.queries)}
    curated_names = {c.name for c in curated}
    scenarios = [Scenario(c.name, c.title, "curated", c.categories, c.queries) for c in curated] + [
        s for s in mined if s.name not in curated_names
    ]
    c2s_rows, c2s_cols, c2s_vals = [], [], []
    s2q = sp.lil_matrix((len(scenarios), len(graph.queries)), dtype=np.float64)
    unsearched: list[str] = []
    c2q = graph.c2q.tocsr()
    for column, scenario in enumerate(scenarios):
        for rank, category in enumerate(scenario.categories):
            row = category_of.get(category)
            if row is None:  # the catalog's, but no search led to its items
                continue
            weight = 1.0 / (1 + rank) if scenario.source == "mined" else 1.0
            c2s_rows.append(row)
            c2s_cols.append(column)
            c2s_vals.append(weight)
            begin, end = c2q.indptr[row], c2q.indptr[row + 1]
            for q, value in zip(c2q.indices[begin:end], c2q.data[begin:end], strict=True):
                s2q[column, int(q)] += weight * float(value)
        for query in scenario.queries:
            q = query_of.get(query)
            if q is None:
                unsearched.append(query)
                continue
            s2q[column, q] += CURATED_WEIGHT
            home = int(graph.lookups.query_leaf[q])
            if home >= 0:  # shoppers on the query's category are led to the scenario
                c2s_rows.append(home)
                c2s_cols.append(column)
                c2s_vals.append(1.0)
    c2s = sp.csr_matrix(
        (c2s_vals, (c2s_rows, c2s_cols)),
        shape=(len(graph.categories), len(scenarios)),
        dtype=np.float64,
    )
    return scenarios, _rows_to_one(c2s), _rows_to_one(s2q.tocsr()), unsearched


def _rows_to_one(matrix: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    out: sp.csr_matrix = sp.csr_matrix(sp.diags(scale) @ matrix)
    out.sort_indices()
    return out
