"""Does an affinity profile know what a user buys next? Brand and category, against baselines.

The protocol: for every test session of a known user that holds a purchase, predict the brand
(and the category) of the session's first purchase from what was known when the session
began: the user's events before it, in training and in earlier test sessions. Predicting from
inside the session would be trivial here: a purchase is preceded by a view and a cart add of
the same item. A prediction is a ranked list; accuracy@k is the share of cases whose answer is
in the first k.

    profile      the user's affinity profile (`recommend/affinity.py`), its top values
    popular      the most purchased brands / categories in training
    last viewed  the brand / category of the last items the user viewed, most recent first

Every list is filled up to k from `popular`, so all methods answer k values.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from nextbest.recommend.affinity import ATTRIBUTES, USER_HALF_LIFE, Affinity, ItemFacets

TARGETS = {name: ATTRIBUTES.index(name) for name in ("brand", "category")}  # in Facets.values
METHODS = ("profile", "popular", "last viewed")


@dataclass(frozen=True)
class AffinityResult:
    cases: int
    users: int
    accuracy: dict[str, dict[str, dict[int, float]]]  # target -> method -> k -> accuracy

    def rows(self, cutoffs: Sequence[int]) -> list[list[str]]:
        return [
            [target, method, *(f"{self.accuracy[target][method][k]:.3f}" for k in cutoffs)]
            for target in self.accuracy
            for method in METHODS
        ]


def evaluate_affinity(
    train: pl.DataFrame,
    test: pl.DataFrame,
    facets: ItemFacets,
    cutoffs: Sequence[int] = (1, 5),
    half_life: float = USER_HALF_LIFE,
) -> AffinityResult:
    events = (
        pl.concat(
            [
                train.with_columns(pl.lit(False).alias("in_test")),
                test.with_columns(pl.lit(True).alias("in_test")),
            ]
        )
        .filter(pl.col("user_id").is_not_null() & pl.col("item_id").is_not_null())
        .sort("timestamp", "session_id", maintain_order=True)
    )
    popular = {target: _popular(train, facets, index) for target, index in TARGETS.items()}
    top_k = max(cutoffs)
    hits: dict[str, dict[str, Counter[int]]] = {t: {m: Counter() for m in METHODS} for t in TARGETS}
    profiles: dict[str, Affinity] = defaultdict(Affinity)
    viewed: dict[str, dict[str, list[str]]] = defaultdict(lambda: {t: [] for t in TARGETS})
    sessions = events.partition_by("session_id", maintain_order=True, as_dict=False)
    sessions.sort(key=lambda frame: float(frame["timestamp"][0]))
    cases, users = 0, set()
    for session in sessions:
        rows = session.select("type", "item_id", "timestamp", "user_id", "in_test").rows()
        user = rows[0][3]
        first_purchase = next((r for r in rows if r[0] == "purchase"), None)
        if rows[0][4] and first_purchase is not None:
            target = facets.get(first_purchase[1])
            if target is not None:
                cases += 1
                users.add(user)
                profile = profiles.get(user)
                for name, index in TARGETS.items():
                    answer = target.values[index]
                    if answer is None:
                        continue
                    from_profile = (
                        [v for v, _ in profile.top(ATTRIBUTES[index], top_k)] if profile else []
                    )
                    lists = {
                        "profile": from_profile,
                        "popular": [],
                        "last viewed": viewed[user][name][:top_k] if user in viewed else [],
                    }
                    for method, ranked in lists.items():
                        ranked = _fill(ranked, popular[name], top_k)
                        for k in cutoffs:
                            hits[name][method][k] += answer in ranked[:k]
        for kind, item, time, _, _ in rows:
            item_facets = facets.get(item)
            if item_facets is None:
                continue
            profiles[user].add(item_facets, kind, time, half_life)
            if kind == "view":
                seen = viewed[user]
                for name, index in TARGETS.items():
                    value = item_facets.values[index]
                    if value is not None:
                        seen[name] = [value, *(v for v in seen[name] if v != value)][:top_k]
    accuracy = {
        name: {
            method: {k: hits[name][method][k] / max(cases, 1) for k in cutoffs}
            for method in METHODS
        }
        for name in TARGETS
    }
    return AffinityResult(cases, len(users), accuracy)


def _popular(train: pl.DataFrame, facets: ItemFacets, index: int) -> list[str]:
    counts: Counter[str] = Counter()
    for item in train.filter(pl.col("type") == "purchase")["item_id"].to_list():
        item_facets = facets.get(item) if item is not None else None
        if item_facets is not None and item_facets.values[index] is not None:
            counts[item_facets.values[index]] += 1  # type: ignore[index]
    return [value for value, _ in counts.most_common()]


def _fill(ranked: list[str], popular: Sequence[str], k: int) -> list[str]:
    out = list(dict.fromkeys(ranked))[:k]
    for value in popular:
        if len(out) >= k:
            break
        if value not in out:
            out.append(value)
    return out
