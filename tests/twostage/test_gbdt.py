"""The gradient-boosted ranker: it learns a planted signal, samples its training rows as
documented, survives a save/load, and refuses a damaged folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nextbest.twostage.data import RankingData
from nextbest.twostage.metrics import auc
from nextbest.twostage.rankers.gbdt import GBDTConfig, GBDTRanker, sample_rows


def planted(n_cases: int, per_case: int, seed: int) -> RankingData:
    """The positive of each case has a higher `signal` (with noise); `noise` is noise."""
    rng = np.random.default_rng(seed)
    case = np.repeat(np.arange(n_cases), per_case)
    label = np.zeros(len(case), np.float32)
    label[np.arange(n_cases) * per_case + rng.integers(0, per_case, n_cases)] = 1
    signal = rng.normal(size=len(case)) + 2.0 * label
    best_rank = np.tile(np.arange(1, per_case + 1), n_cases).astype(np.float32)
    features = np.column_stack([signal, rng.normal(size=len(case)), best_rank]).astype(np.float32)
    return RankingData(
        case=case,
        item=rng.integers(0, 50, len(case)),
        features=features,
        names=("signal", "noise", "generators.best_rank"),
        label=label,
        session=np.arange(n_cases),
        n_items=50,
    )


def test_gbdt_learns_the_planted_signal_and_round_trips(tmp_path: Path) -> None:
    train, test = planted(400, 30, 0), planted(200, 30, 1)
    ranker = GBDTRanker(GBDTConfig(n_estimators=60, threads=1)).fit(train)
    scores = ranker.predict(test)
    assert test.label is not None
    assert auc(test.label, scores) > 0.8
    gains = ranker.importance()
    assert max(gains, key=gains.__getitem__) == "signal"
    ranker.save(tmp_path / "r")
    again = GBDTRanker.load(tmp_path / "r")
    assert np.allclose(again.predict(test), scores)
    with pytest.raises(ValueError, match="not those the ranker was fitted on"):
        ranker.predict(test.without(["noise"]))


def test_a_damaged_ranker_folder_is_refused(tmp_path: Path) -> None:
    ranker = GBDTRanker(GBDTConfig(n_estimators=5, threads=1)).fit(planted(100, 10, 0))
    ranker.save(tmp_path / "r")
    (tmp_path / "r" / "gbdt.txt").write_text("tree\nnot a model")
    with pytest.raises(ValueError, match="cannot be read"):
        GBDTRanker.load(tmp_path / "r")


def test_training_rows_keep_positives_hard_and_random_negatives() -> None:
    data = planted(50, 100, 2)
    kept = sample_rows(data, hard=10, random=5, seed=0)
    assert kept.label is not None and data.label is not None
    assert kept.label.sum() == data.label.sum()  # every positive stays
    sizes = np.bincount(kept.case, minlength=50)
    assert (sizes == 1 + 10 + 5).all()
    ranks = kept.column("generators.best_rank")
    hard = np.bincount(kept.case, weights=ranks <= 11, minlength=50)
    assert (hard >= 10).all()  # the best-ranked negatives are always there
    assert sample_rows(data, hard=0, random=5, seed=0) is data  # 0: every row


def test_no_case_with_its_target_is_a_clear_error() -> None:
    data = planted(20, 5, 0)
    assert data.label is not None
    empty = RankingData(
        data.case, data.item, data.features, data.names, label=np.zeros_like(data.label)
    )
    with pytest.raises(ValueError, match="no training case has its next item"):
        GBDTRanker(GBDTConfig(threads=1)).fit(empty)


def test_explain_names_the_feature_that_moved_an_item_up() -> None:
    train, test = planted(400, 30, 0), planted(50, 30, 3)
    ranker = GBDTRanker(GBDTConfig(n_estimators=60, threads=1)).fit(train)
    assert test.label is not None
    positives = np.flatnonzero(test.label > 0.5)[:10]
    reasons = ranker.explain(test, positives, top=2)
    assert len(reasons) == 10 and all(len(r) == 2 for r in reasons)
    # the planted positives stand out by their signal: it moved most of them up
    firsts = [r[0] for r in reasons]
    assert sum(name == "signal" and value > 0 for name, value in firsts) >= 7
