"""Gradient-boosted ranking: LightGBM's LambdaRank over the candidates' features.

Each case is a query group; the label is 1 for the case's next item. Only cases whose next
item is among the candidates teach LambdaRank anything (a group without a positive has no
pairs), so the others are left out of training. The last `valid_share` of the training cases
(in time order) stop the boosting early on NDCG@20.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import lightgbm as lgb
import numpy as np

from nextbest.twostage.data import RankingData, largest_contributions

SERIAL_ROWS = 20_000  # predictions of fewer rows run on one thread
MODEL_FILE = "gbdt.txt"
CONFIG_FILE = "gbdt.json"


@dataclass(frozen=True)
class GBDTConfig:
    n_estimators: int = 400
    learning_rate: float = 0.05
    num_leaves: int = 63
    min_child_samples: int = 50
    feature_fraction: float = 0.8
    valid_share: float = 0.1
    early_stopping: int = 40
    threads: int = 2
    seed: int = 0
    truncation: int = 40  # LambdaRank's pairs reach this deep into each list
    # training rows per case: the positive, the negatives best ranked by any generator up to
    # `hard_negatives`, and `random_negatives` drawn from the rest (0: keep every row)
    hard_negatives: int = 60
    random_negatives: int = 30

    def __post_init__(self) -> None:
        if self.n_estimators < 1 or self.learning_rate <= 0 or self.num_leaves < 2:
            raise ValueError(
                "gbdt: n_estimators >= 1, learning_rate > 0 and num_leaves >= 2 are required"
            )
        if not 0 <= self.valid_share < 1:
            raise ValueError(f"gbdt: valid_share must be in [0, 1), not {self.valid_share}")


@dataclass
class GBDTRanker:
    config: GBDTConfig = field(default_factory=GBDTConfig)
    booster: lgb.Booster | None = None
    names: tuple[str, ...] = ()
    name: str = "gbdt"

    def fit(self, train: RankingData, valid: RankingData | None = None) -> Self:
        if train.label is None:
            raise ValueError("gbdt: the training data has no labels")
        useful = _cases_with_positive(train)
        if not len(useful):
            raise ValueError("gbdt: no training case has its next item among the candidates")
        if valid is None and self.config.valid_share > 0 and len(useful) >= 20:
            cut = int(len(useful) * (1 - self.config.valid_share))
            train, valid = train.cases(useful[:cut]), train.cases(useful[cut:])
        else:
            train = train.cases(useful)
            if valid is not None:
                valid = valid.cases(_cases_with_positive(valid))
        train = sample_rows(
            train, self.config.hard_negatives, self.config.random_negatives, self.config.seed
        )
        params: dict[str, Any] = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [20],
            "lambdarank_truncation_level": self.config.truncation,
            "learning_rate": self.config.learning_rate,
            "num_leaves": self.config.num_leaves,
            "min_child_samples": self.config.min_child_samples,
            "feature_fraction": self.config.feature_fraction,
            "num_threads": self.config.threads,
            "seed": self.config.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
        train_set = _dataset(train)
        sets = [train_set]
        callbacks: list[Any] = []
        if valid is not None and len(valid):
            sets.append(_dataset(valid, reference=train_set))
            callbacks.append(lgb.early_stopping(self.config.early_stopping, verbose=False))
        self.booster = lgb.train(
            params, train_set, self.config.n_estimators, valid_sets=sets[1:], callbacks=callbacks
        )
        self.names = train.names
        return self

    def predict(self, data: RankingData) -> np.ndarray:
        if self.booster is None:
            raise ValueError("gbdt: not fitted")
        if data.names != self.names:
            raise ValueError("gbdt: the data's features are not those the ranker was fitted on")
        if not len(data):
            return np.zeros(0)
        # a served request (a few hundred rows) is faster on one thread than on several,
        # and the server's other worker needs the other core
        threads = 1 if len(data) < SERIAL_ROWS else self.config.threads
        return np.asarray(self.booster.predict(data.features, num_threads=threads))

    def explain(
        self, data: RankingData, rows: np.ndarray, top: int = 3
    ) -> list[list[tuple[str, float]]]:
        """Per row: the `top` features that moved its score most, with their signed share of
        the score (LightGBM's SHAP contributions; positive moved the item up)."""
        if self.booster is None:
            raise ValueError("gbdt: not fitted")
        if not len(rows):
            return []
        contributions = np.asarray(
            self.booster.predict(data.features[rows], pred_contrib=True, num_threads=1)
        )[:, :-1]  # the last column is the expected value
        return largest_contributions(contributions, self.names, top)

    def importance(self) -> dict[str, float]:
        """Each feature's total gain, as a share of all."""
        if self.booster is None:
            return {}
        gain = self.booster.feature_importance("gain")
        total = float(gain.sum()) or 1.0
        return {n: float(g) / total for n, g in zip(self.names, gain, strict=True)}

    def save(self, folder: Path) -> None:
        if self.booster is None:
            raise ValueError("gbdt: not fitted, nothing to save")
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / MODEL_FILE))
        (folder / CONFIG_FILE).write_text(
            json.dumps({"config": asdict(self.config), "names": list(self.names)})
        )

    @classmethod
    def load(cls, folder: Path) -> Self:
        try:
            meta = json.loads((folder / CONFIG_FILE).read_text())
            booster = lgb.Booster(model_file=str(folder / MODEL_FILE))
        except (OSError, ValueError, lgb.basic.LightGBMError) as exc:
            raise ValueError(f"gbdt ranker in {folder} cannot be read: {exc}") from exc
        if booster.num_feature() != len(meta["names"]):
            raise ValueError(f"gbdt ranker in {folder}: the model and its feature list disagree")
        return cls(GBDTConfig(**meta["config"]), booster, tuple(meta["names"]))


def sample_rows(data: RankingData, hard: int, random: int, seed: int) -> RankingData:
    """Per case: the positives, the `hard` negatives with the best rank in any generator
    (`generators.best_rank`), and `random` others drawn uniformly; all rows when hard is 0."""
    if hard <= 0 or "generators.best_rank" not in data.names or data.label is None:
        return data
    rng = np.random.default_rng(seed)
    best = data.column("generators.best_rank")
    positive = data.label > 0.5
    # the order within a case: positives first, then by best rank, then at random
    order = np.lexsort((rng.random(len(data)), best, ~positive, data.case))
    bounds = data.case_bounds
    place = np.empty(len(data), np.int64)
    place[order] = np.arange(len(data)) - np.repeat(bounds[:-1], np.diff(bounds))
    n_positive = np.bincount(data.case, weights=positive, minlength=data.n_cases).astype(np.int64)
    keep = place < n_positive[data.case] + hard
    rest = np.flatnonzero(~keep)
    if random > 0 and len(rest):
        draw = rng.random(len(rest))
        # a random `random` of each case's rest: rank the draws within each case
        by_case = np.lexsort((draw, data.case[rest]))
        starts = np.searchsorted(data.case[rest][by_case], np.arange(data.n_cases))
        within = np.arange(len(rest)) - starts[data.case[rest][by_case]]
        keep[rest[by_case[within < random]]] = True
    return data.take(np.flatnonzero(keep))


def _cases_with_positive(data: RankingData) -> np.ndarray:
    assert data.label is not None
    positive = np.zeros(data.n_cases, dtype=bool)
    positive[data.case[data.label > 0.5]] = True
    return np.flatnonzero(positive)


def _dataset(data: RankingData, reference: lgb.Dataset | None = None) -> lgb.Dataset:
    sizes = np.diff(data.case_bounds)
    return lgb.Dataset(
        data.features,
        label=data.label,
        group=sizes[sizes > 0],
        feature_name=[n.replace(".", "_") for n in data.names],
        reference=reference,
        free_raw_data=False,
    )
