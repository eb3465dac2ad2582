"""The user protocol of HGRU4Rec's paper: each user's last session, after their history.

The test set holds each returning user's last session (`split_users_last_session`). A model
that keeps user state (it has `warm_up`, as HGRU4Rec does) first replays every training
session of the test session's user, in time order, and starts the test session from the
resulting state; every other model (GRU4Rec, the kNN family) sees the test session alone. Then
the next-event protocol runs as usual: every position t >= 1, all training items ranked.

Figures are reported overall and by how many earlier sessions the user has in the training
data (`HISTORY_BUCKETS`), plus the group the acceptance criterion names: users with at least
`FOCUS_HISTORY` earlier sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from nextbest.data.sessions import Sessions
from nextbest.evaluation.metrics import mrr_at, ndcg_at, recall_at
from nextbest.evaluation.next_event import EvalConfig, EvalResult, evaluate_next_event
from nextbest.models.base import SessionModel
from nextbest.models.hgru4rec.batching import session_owners

PROTOCOL = "user-last-session"
# (label, fewest, most earlier sessions); 0 = anonymous or a user unknown to training.
HISTORY_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0),
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-4", 3, 4),
    ("5-9", 5, 9),
    ("10+", 10, None),
)
FOCUS_HISTORY = 3


@runtime_checkable
class UserStateModel(Protocol):
    """A model whose state can be warmed up on a user's past sessions."""

    def warm_up(self, history: Sessions, owned: Sequence[np.ndarray]) -> Any: ...


def user_histories(train: Sessions, test: Sessions) -> list[np.ndarray]:
    """Per test session, its user's training sessions that started before it, in time order.

    Empty for anonymous test sessions and users with no training session.
    """
    if test.user_ids is None or train.user_ids is None:
        return [np.zeros(0, dtype=np.int64) for _ in range(test.n_sessions)]
    owners = session_owners(train)  # anonymous training sessions get codes of their own
    by_user: dict[str, list[int]] = {}
    for s, user in enumerate(train.user_ids):
        if owners[s] < train.n_sessions:  # a known user
            by_user.setdefault(str(user), []).append(s)
    first_times = train.times[train.offsets[:-1]] if train.n_events else np.zeros(0)
    out = []
    for s, user in enumerate(test.user_ids):
        known = user is not None and user == user and user != ""
        sessions = np.asarray(by_user.get(str(user), []) if known else [], dtype=np.int64)
        start = test.times[test.offsets[s]] if test.lengths[s] else np.inf
        out.append(sessions[first_times[sessions] < start])  # train sessions are in time order
    return out


def history_bucket(n_earlier: int) -> str:
    for label, low, high in HISTORY_BUCKETS:
        if n_earlier >= low and (high is None or n_earlier <= high):
            return label
    raise ValueError(f"no bucket for {n_earlier} earlier sessions")


@dataclass
class UserEvalResult:
    """The next-event result over all test sessions, and per case its user's history size."""

    result: EvalResult
    history: np.ndarray  # [cases] earlier sessions of the case's user
    session_history: np.ndarray  # [test sessions] earlier sessions of each test session's user
    warmed: bool  # whether the model started from warmed-up user states

    def _metrics(self, mask: np.ndarray) -> dict[str, float]:
        ranks = self.result.ranks[mask]
        out: dict[str, float] = {"cases": float(len(ranks))}
        for k in self.result.cutoffs:
            out[f"recall@{k}"] = recall_at(ranks, k)
            out[f"mrr@{k}"] = mrr_at(ranks, k)
            out[f"ndcg@{k}"] = ndcg_at(ranks, k)
        return out

    def by_history(self) -> dict[str, dict[str, float]]:
        """Metrics per history bucket (buckets without cases left out)."""
        labels = np.array([history_bucket(int(n)) for n in self.history], dtype=object)
        out = {}
        for label, _, _ in HISTORY_BUCKETS:
            mask = labels == label
            if mask.any():
                out[label] = self._metrics(mask)
                out[label]["sessions"] = float(
                    sum(history_bucket(int(n)) == label for n in self.session_history)
                )
        return out

    def focus(self, min_history: int = FOCUS_HISTORY) -> dict[str, float]:
        """Metrics over users with at least `min_history` earlier sessions."""
        out = self._metrics(self.history >= min_history)
        out["sessions"] = float((self.session_history >= min_history).sum())
        return out

    def extra(self) -> dict[str, Any]:
        """What the JSON record adds to the next-event figures."""
        round6 = {k: {m: round(v, 6) for m, v in d.items()} for k, d in self.by_history().items()}
        focus = {m: round(v, 6) for m, v in self.focus().items()}
        return {
            "warmed_up": self.warmed,
            "by_history": round6,
            f"history_{FOCUS_HISTORY}plus": focus,
        }


def evaluate_user_last_session(
    model: SessionModel[Any, Any],
    train: Sessions,
    test: Sessions,
    config: EvalConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> UserEvalResult:
    """Evaluate on the users' last sessions `test`, warming user states on `train` if the model
    keeps them. Both must be coded with the model's vocabulary (`train` is what it was fit on).
    """
    histories = user_histories(train, test)
    initial = None
    warmed = isinstance(model, UserStateModel)
    if warmed:
        warm = cast(UserStateModel, model).warm_up(train, histories)

        def initial(block: np.ndarray) -> Any:
            return model.select(warm, block)

    result = evaluate_next_event(
        model,
        test,
        config,
        train_support=train.item_support(),
        progress=progress,
        initial=initial,
    )
    counts = np.array([len(h) for h in histories], dtype=np.int64)
    assert result.sessions is not None
    out = UserEvalResult(result, counts[result.sessions], counts, warmed)
    result.extra.update(out.extra())
    return out
