"""Co-visitation as sequential rules ("SR", Ludewig and Jannach, 2018).

Training counts, over every training session, how often item b follows item a closely: for each
event b and each earlier event a of the same session at distance d = 1 .. `steps` back,

    rule(a -> b) += 1 / d     (`div` weighting; `same` adds 1 whatever d)

so direct successors count fully and items further on count less. A repeated item makes rules
to itself like any other pair. Answering needs only the session's latest item: the score of b is
rule(last item -> b); items never seen after it score 0. Rules are kept whole (no pruning), as a
sparse [n_items, n_items] matrix.

Defaults: steps = 10, weighting = div.

    >>> import numpy as np
    >>> from nextbest.data.sessions import Sessions
    >>> train = Sessions(
    ...     item_ids=np.array(["a", "b", "c"], dtype=object),
    ...     session_ids=np.array(["s1"], dtype=object),
    ...     offsets=np.array([0, 3]),
    ...     items=np.array([0, 1, 2]),
    ...     times=np.array([1.0, 2.0, 3.0]),
    ... )
    >>> model = CoVisitation().fit(train)
    >>> state = model.step(model.initial_state(1), np.array([0]), np.array([4.0]))
    >>> model.score(state).tolist()  # a -> b at d = 1, a -> c at d = 2
    [[0.0, 1.0, 0.5]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Self

import numpy as np
import scipy.sparse as sp

from nextbest.data.sessions import Sessions
from nextbest.models.base import NotFittedError, SessionModel


@dataclass(frozen=True)
class CoVisitConfig:
    steps: int = 10  # how far back an earlier item still makes a rule
    weighting: Literal["div", "same"] = "div"  # a pair at distance d adds 1 / d, or 1

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, not {self.steps!r}")
        if self.weighting not in ("div", "same"):
            raise ValueError(f"weighting must be one of div, same, not {self.weighting!r}")


@dataclass(frozen=True)
class LastItem:
    items: np.ndarray  # [B] int64, each session's latest item; -1 before its first event


class CoVisitation(SessionModel[LastItem, CoVisitConfig]):
    name = "covisit"
    config_class = CoVisitConfig

    def __init__(self, config: CoVisitConfig | None = None) -> None:
        super().__init__(config)
        self.rules: sp.csr_matrix | None = None  # [n_items, n_items], row = earlier item

    def fit(self, train: Sessions) -> Self:
        self.item_ids = train.item_ids
        event_session = np.repeat(np.arange(train.n_sessions), train.lengths)  # [n_events]
        position = np.arange(train.n_events) - train.offsets[event_session]  # 0-based
        earlier, later, weight = [], [], []
        for d in range(1, self.config.steps + 1):
            target = np.flatnonzero(position >= d)  # events with an event d steps back
            earlier.append(train.items[target - d])
            later.append(train.items[target])
            value = 1.0 / d if self.config.weighting == "div" else 1.0
            weight.append(np.full(len(target), value))
        n = train.n_items
        counts = sp.coo_matrix(
            (np.concatenate(weight), (np.concatenate(earlier), np.concatenate(later))),
            shape=(n, n),
        )
        self.rules = counts.tocsr()  # duplicates are summed
        self.rules.sort_indices()
        return self

    def initial_state(self, n: int) -> LastItem:
        return LastItem(np.full(n, -1, dtype=np.int64))

    def step(self, state: LastItem, items: np.ndarray, times: np.ndarray) -> LastItem:
        return LastItem(np.asarray(items, dtype=np.int64).copy())

    def select(self, state: LastItem, rows: np.ndarray) -> LastItem:
        return LastItem(state.items[rows])

    def score(self, state: LastItem) -> np.ndarray:
        if self.rules is None:
            raise NotFittedError("CoVisitation is not fitted: call fit() first")
        scores = np.zeros((len(state.items), self.n_items), dtype=np.float32)  # [B, n_items]
        started = np.flatnonzero(state.items >= 0)
        if len(started):
            scores[started] = self.rules[state.items[started]].toarray()
        return scores

    def arrays(self) -> dict[str, np.ndarray]:
        if self.rules is None:
            raise NotFittedError("CoVisitation is not fitted: nothing to save")
        return {
            "rules_indptr": self.rules.indptr,
            "rules_indices": self.rules.indices,
            "rules_data": self.rules.data,
        }

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(arrays["rules_indptr"]) - 1
        self.rules = sp.csr_matrix(
            (arrays["rules_data"], arrays["rules_indices"], arrays["rules_indptr"]), shape=(n, n)
        )
