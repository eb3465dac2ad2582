"""The attention-GRU ranker learns what the behaviour history says about a candidate, knows a
cart from a view when `action_types` is on, and saves, loads and repeats itself exactly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nextbest.twostage.data import CART, PURCHASE, VIEW, History, RankingData
from nextbest.twostage.metrics import auc
from nextbest.twostage.rankers.attention_gru import AttentionGRUConfig, AttentionGRURanker

N_ITEMS = 60


def synthetic(
    n_cases: int,
    seed: int,
    *,
    width: int = 8,
    candidates: int = 10,
    n_items: int = N_ITEMS,
    kinds: tuple[int, ...] = (CART,),
    window: float = 3600.0,
) -> RankingData:
    """Cases whose label is "the candidate was carted within the last hour" (or another of
    the action `kinds` within `window` seconds).

    Half the candidates come from the history (viewed, carted or bought, at any age), half
    from the catalogue, so a candidate's mere presence in the history predicts little; the
    features are a popularity column (no signal) and a noise column with missing values."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, width + 1, n_cases)
    items = np.full((n_cases, width), -1, np.int64)
    types = np.zeros((n_cases, width), np.int8)
    age = np.zeros((n_cases, width), np.float32)
    for c, length in enumerate(lengths):
        items[c, width - length :] = rng.choice(n_items, length, replace=False)
        types[c, width - length :] = rng.choice([VIEW, CART, PURCHASE], length, p=[0.5, 0.3, 0.2])
        # seconds before the case, oldest first: gaps of minutes to hours
        gaps = rng.exponential(1800.0, length)
        age[c, width - length :] = np.cumsum(gaps[::-1])[::-1]
    case = np.repeat(np.arange(n_cases), candidates)
    item = np.empty(n_cases * candidates, np.int64)
    label = np.zeros(n_cases * candidates, np.float32)
    for c in range(n_cases):
        seen = items[c][items[c] >= 0]
        from_history = rng.choice(seen, min(len(seen), candidates // 2), replace=False)
        others = np.setdiff1d(np.arange(n_items), from_history)
        rest = rng.choice(others, candidates - len(from_history), replace=False)
        chosen = np.concatenate([from_history, rest])
        item[c * candidates : (c + 1) * candidates] = chosen
        recent = items[c][np.isin(types[c], kinds) & (age[c] < window)]
        label[c * candidates : (c + 1) * candidates] = np.isin(chosen, recent)
    popularity = rng.normal(size=n_items).astype(np.float32)
    noise = rng.normal(size=len(item)).astype(np.float32)
    noise[rng.random(len(item)) < 0.2] = np.nan
    return RankingData(
        case=case,
        item=item,
        features=np.stack([popularity[item], noise], axis=1),
        names=("item.pop", "noise"),
        label=label,
        session=np.arange(n_cases),
        history=History(items, types, age),
        n_items=n_items,
    )


FAST = AttentionGRUConfig(
    epochs=6,
    batch_size=32,
    learning_rate=5e-3,
    embedding_size=16,
    hidden_size=16,
    attention_size=16,
    mlp_size=32,
)


@pytest.fixture(scope="module")
def split() -> tuple[RankingData, RankingData]:
    return synthetic(600, seed=1), synthetic(300, seed=2)


@pytest.fixture(scope="module")
def fitted(split: tuple[RankingData, RankingData]) -> AttentionGRURanker:
    return AttentionGRURanker(FAST).fit(split[0])


def test_learns_from_the_history(
    split: tuple[RankingData, RankingData], fitted: AttentionGRURanker
) -> None:
    _, test = split
    assert test.label is not None
    features_only = max(
        max(a, 1 - a) for a in (auc(test.label, np.nan_to_num(col)) for col in test.features.T)
    )
    scores = fitted.predict(test)
    assert scores.shape == (len(test),) and scores.dtype == np.float64
    assert features_only < 0.6
    assert auc(test.label, scores) > 0.85


def test_action_types_matter(split: tuple[RankingData, RankingData]) -> None:
    """Only carts predict: without per-type transforms a view looks like a cart."""
    train, test = split
    assert test.label is not None
    with_types = AttentionGRURanker(FAST).fit(train).predict(test)
    shared = AttentionGRURanker(replace(FAST, action_types=False)).fit(train).predict(test)
    assert auc(test.label, with_types) > auc(test.label, shared) + 0.1


def test_save_load_roundtrip(
    tmp_path: Path, split: tuple[RankingData, RankingData], fitted: AttentionGRURanker
) -> None:
    _, test = split
    fitted.save(tmp_path / "ranker")
    loaded = AttentionGRURanker.load(tmp_path / "ranker")
    assert loaded.config == fitted.config
    np.testing.assert_array_equal(loaded.predict(test), fitted.predict(test))


def test_load_refuses_a_corrupt_file(tmp_path: Path, fitted: AttentionGRURanker) -> None:
    fitted.save(tmp_path / "ranker")
    weights = tmp_path / "ranker" / "attention_gru.pt"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupt"):
        AttentionGRURanker.load(tmp_path / "ranker")


def test_deterministic_with_a_seed(split: tuple[RankingData, RankingData]) -> None:
    train, test = split
    small = train.cases(np.arange(200))
    config = replace(FAST, epochs=1)
    first = AttentionGRURanker(config).fit(small).predict(test)
    second = AttentionGRURanker(config).fit(small).predict(test)
    other = AttentionGRURanker(replace(config, seed=1))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other.fit(small).predict(test))


def test_unknown_items_and_empty_histories(fitted: AttentionGRURanker) -> None:
    """Items beyond the fitted vocabulary and cases without history still get scores."""
    data = synthetic(20, seed=3, n_items=N_ITEMS + 10)
    assert data.history is not None
    items = data.history.items.copy()
    items[0] = -1
    empty = RankingData(
        case=data.case,
        item=data.item,
        features=data.features,
        names=data.names,
        history=History(items, data.history.types, data.history.age),
        n_items=N_ITEMS + 10,
    )
    scores = fitted.predict(empty)
    assert np.isfinite(scores).all()


def test_time_decay_matters() -> None:
    """Any action of the last half hour predicts: the time gate and decay see the ages, the
    ablation only the order (the newest action is older than half an hour a third of the
    time)."""
    kinds = (VIEW, CART, PURCHASE)
    train = synthetic(600, seed=4, kinds=kinds, window=1800.0)
    test = synthetic(300, seed=5, kinds=kinds, window=1800.0)
    assert test.label is not None
    timed = AttentionGRURanker(FAST).fit(train).predict(test)
    untimed = AttentionGRURanker(replace(FAST, time_decay=False)).fit(train).predict(test)
    assert auc(test.label, timed) > auc(test.label, untimed) + 0.08


def test_softmax_loss_learns_too(split: tuple[RankingData, RankingData]) -> None:
    train, test = split
    assert test.label is not None
    scores = AttentionGRURanker(replace(FAST, loss="softmax")).fit(train).predict(test)
    assert auc(test.label, scores) > 0.85


def test_negative_sampling_keeps_every_positive() -> None:
    from nextbest.twostage.rankers.attention_gru import _sample

    rng = np.random.default_rng(0)
    local = np.repeat(np.arange(50), 100)
    rows = np.arange(len(local))
    labels = (rng.random(len(rows)) < 0.02).astype(np.float32)
    kept, kept_local = _sample(rows, local, labels, 10, rng)
    assert set(np.flatnonzero(labels)) <= set(kept)
    assert (np.diff(kept_local) >= 0).all()
    negatives_per_case = np.bincount(kept_local[labels[kept] == 0], minlength=50)
    assert 5 < negatives_per_case.mean() < 15


def test_quantile_scaling_roundtrip(tmp_path: Path, split: tuple[RankingData, RankingData]) -> None:
    train, test = split
    ranker = AttentionGRURanker(replace(FAST, epochs=1, scaling="quantile"))
    ranker.fit(train.cases(np.arange(100)))
    ranker.save(tmp_path / "quantile")
    loaded = AttentionGRURanker.load(tmp_path / "quantile")
    np.testing.assert_array_equal(loaded.predict(test), ranker.predict(test))
    assert np.isfinite(ranker.predict(test)).all()
