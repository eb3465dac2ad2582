"""How well do the keyword rankers predict which keyword of a card is clicked? AUC on a time split.

The log is split as `nextbest keywords evaluate` splits it (`split_by_time`: sessions ending in
the last `test_days` days are the test). The query graph is built from the training sessions
only; a card belongs to its session's side. The latest `valid_share` of the training cards
choose each learned ranker's epoch (the test chooses nothing).

The table adds the feature groups one at a time, as the keyword-card article reports them:

    category          the keyword's category alone (no history, no columns)
    + history         the shopper's history of categories, and the history.* columns
    + text            the text.* columns
    all features      the path.* columns (the recall's scores, how often searched)
    + time and types  the attention-GRU's time gate and decay, and its per-action transforms

Each learned row is fitted with several seeds; a row gives their mean and range. The
baselines: keyword popularity (how often each keyword was clicked on the training cards), and
the meta-path recall's combined score, which orders the served card when the version has no
learned ranker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from nextbest.data.splits import split_by_time
from nextbest.keywords.graph import build_query_graph, normalise_query
from nextbest.keywords.ranking import (
    GROUPS,
    Vocabulary,
    conform_cards,
    keyword_ranking_data,
    ordered_cards,
)
from nextbest.keywords.recall import PATHS
from nextbest.twostage.data import History, RankingData
from nextbest.twostage.metrics import auc, gauc
from nextbest.twostage.rankers.attention_gru import AttentionGRUConfig, AttentionGRURanker
from nextbest.twostage.rankers.ftrl import FTRLConfig, FTRLRanker

STEPS = ("category", "+ history", "+ text", "all features", "+ time and types")


@dataclass(frozen=True)
class KeywordRankingSplit:
    train: RankingData
    valid: RankingData
    test: RankingData
    train_clicks: dict[str, int]  # query -> clicks on the training and validation cards
    test_queries: list[str]  # [test rows] each row's keyword, normalised

    @property
    def test_click_share(self) -> float:
        """The share of the test cards' keywords that were clicked."""
        return float(np.mean(self.test.label)) if self.test.label is not None else float("nan")


@dataclass(frozen=True)
class RowResult:
    ranker: str
    step: str
    auc: list[float]  # one per seed
    gauc: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.auc))


def cards_in_test(heads: pl.DataFrame, test: pl.DataFrame, min_learn: int = 1) -> np.ndarray:
    """[cards] whether each card (`heads`, one row per card) belongs to a test session (of
    `test`, the time split's test events); a split without test cards, or with fewer than
    `min_learn` to learn from, is a ValueError."""
    in_test = heads["session_id"].is_in(test["session_id"].unique().implode()).to_numpy()
    learn = int((~in_test).sum())
    if learn < min_learn or not in_test.any():
        raise ValueError(
            f"the time split leaves {learn} training and {int(in_test.sum())} test cards: "
            "both need some (a longer log, or other --test-days)"
        )
    return in_test


def keyword_ranking_split(
    events: pl.DataFrame,
    items: pl.DataFrame,
    cards: pl.DataFrame,
    test_days: float = 2.0,
    valid_share: float = 0.1,
) -> KeywordRankingSplit:
    if not 0.0 < valid_share < 1.0:
        raise ValueError(f"valid_share must be in (0, 1), not {valid_share}")
    cards = conform_cards(cards)
    if cards.height == 0:
        raise ValueError("there are no keyword cards to learn from")
    split = split_by_time(events, test_days)
    graph = build_query_graph(split.train, items)
    data = keyword_ranking_data(cards, events, graph, Vocabulary.of(graph, items))
    ordered = ordered_cards(cards)
    heads = ordered.unique("card_id", keep="first", maintain_order=True)
    in_test = cards_in_test(heads, split.test, min_learn=2)
    learn = np.flatnonzero(~in_test)
    n_valid = max(1, round(valid_share * len(learn)))
    queries = ordered.select(
        "card_id", "clicked", normalise_query(pl.col("query")).alias("query")
    ).with_columns(
        pl.col("card_id").is_in(heads["card_id"].filter(pl.Series(in_test)).implode()).alias("test")
    )
    clicks = queries.filter(~pl.col("test") & pl.col("clicked")).group_by("query").len()
    return KeywordRankingSplit(
        train=data.cases(learn[:-n_valid]),
        valid=data.cases(learn[-n_valid:]),
        test=data.cases(np.flatnonzero(in_test)),
        train_clicks=dict(clicks.iter_rows()),
        test_queries=queries.filter(pl.col("test"))["query"].to_list(),
    )


def step_data(data: RankingData, step: str) -> RankingData:
    """`data` with the columns (and history) the table's row `step` may read."""
    kept = {"category": (), "+ history": GROUPS[:1], "+ text": GROUPS[:2]}.get(step, GROUPS)
    dropped = [n for g in GROUPS if g not in kept for n in data.groups.get(g, ())]
    reduced = data.without(dropped)
    if (
        step == STEPS[0] and data.history is not None
    ):  # the keyword's category, nothing of the shopper
        empty = History(
            items=np.full((data.n_cases, 1), -1, np.int64),
            types=np.zeros((data.n_cases, 1), np.int8),
            age=np.zeros((data.n_cases, 1), np.float32),
        )
        reduced = replace(reduced, history=empty)
    return reduced


def recall_scores(data: RankingData) -> np.ndarray:
    """Each row's combined meta-path score: the card's order without a learned ranker."""
    columns = [data.column(f"path.{name}") for name in PATHS]
    combined: np.ndarray = np.nansum(np.stack(columns, axis=1), axis=1).astype(np.float64)
    return combined


def popularity_scores(split: KeywordRankingSplit) -> np.ndarray:
    """Training clicks of each test row's keyword."""
    return np.array([split.train_clicks.get(q, 0) for q in split.test_queries], dtype=np.float64)


def evaluate_keyword_rankers(
    split: KeywordRankingSplit,
    seeds: Sequence[int] = (0, 1, 2),
    attention: AttentionGRUConfig | None = None,
    ftrl: FTRLConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[RowResult]:
    """Keyword popularity, then FTRL and the attention-GRU on every step of the table."""
    test = split.test
    if test.label is None or test.session is None:
        raise ValueError("the test cards need their clicks and sessions")
    labels, groups = test.label, test.session[test.case]
    popular = popularity_scores(split)
    recalled = recall_scores(test)
    results = [
        RowResult("popularity", "category", [auc(labels, popular)],
                  [gauc(labels, popular, groups)]),
        RowResult("recall", "all features", [auc(labels, recalled)],
                  [gauc(labels, recalled, groups)]),
    ]  # fmt: skip
    attention = attention or AttentionGRUConfig(epochs=4)
    ftrl = ftrl or FTRLConfig(epochs=3)
    for step in STEPS:
        train, valid, held = (step_data(d, step) for d in (split.train, split.valid, test))
        with_time = step == STEPS[-1]
        for name in ("ftrl", "attention-gru"):
            if name == "ftrl" and with_time:
                continue  # FTRL has no time gate or per-action transforms to switch on
            aucs, gaucs = [], []
            for seed in seeds:
                ranker: FTRLRanker | AttentionGRURanker
                if name == "ftrl":
                    ranker = FTRLRanker(replace(ftrl, seed=seed))
                else:
                    config = replace(
                        attention, seed=seed, time_decay=with_time, action_types=with_time
                    )
                    ranker = AttentionGRURanker(config)
                scores = ranker.fit(train, valid).predict(held)
                aucs.append(auc(labels, scores))
                gaucs.append(gauc(labels, scores, groups))
                if progress:
                    progress(f"fitted {name}, {step}, seed {seed}")
            results.append(RowResult(name, step, aucs, gaucs))
    return results


def fits_of(seeds: Sequence[int]) -> int:
    """How many rankers `evaluate_keyword_rankers` fits (a progress bar's total)."""
    return len(seeds) * (2 * len(STEPS) - 1)


def table_rows(results: Sequence[RowResult]) -> list[list[str]]:
    """One row per step of the table: AUC (mean and the seeds' range) of FTRL and of the
    attention-GRU, and gAUC (per session) of the attention-GRU; the popularity baseline
    first."""

    def cell(result: RowResult | None) -> str:
        if result is None:
            return "-"
        if len(result.auc) == 1:
            return f"{result.mean:.4f}"
        return f"{result.mean:.4f} ({min(result.auc):.4f}-{max(result.auc):.4f})"

    found = {(r.ranker, r.step): r for r in results}
    rows = []
    baselines = (
        ("keyword popularity (training clicks)", ("popularity", "category")),
        ("meta-path recall score (the card without a ranker)", ("recall", "all features")),
    )
    for title, key in baselines:
        if (baseline := found.get(key)) is not None:
            # not learned: the same score under either ranker's column
            rows.append([title, cell(baseline), cell(baseline),
                         f"{float(np.mean(baseline.gauc)):.4f}"])  # fmt: skip
    for step in STEPS:
        attention = found.get(("attention-gru", step))
        rows.append(
            [
                step,
                cell(found.get(("ftrl", step))),
                cell(attention),
                f"{float(np.mean(attention.gauc)):.4f}" if attention else "-",
            ]
        )
    return rows
