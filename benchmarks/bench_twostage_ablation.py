"""The gradient-boosted ranker without each feature group, on saved candidates.

    .venv/bin/python benchmarks/bench_twostage_ablation.py \
        --train /tmp/twostage/demo_click_train.npz --test /tmp/twostage/demo_click_test.npz \
        --train-cases 30000 --json OUT.json

Reads the RankingData that `bench_twostage.py --save-data` writes (the ranker's training
candidates and the test candidates), so the generators are not walked again. MRR@20 and
Recall@20 count a target outside the candidate set as a miss: the same figure as the
pipeline's whenever a case has at least 20 candidates (the share of cases with fewer is
printed), and never above it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from nextbest.twostage.data import RankingData, load_ranking_data
from nextbest.twostage.features import GROUPS
from nextbest.twostage.metrics import auc, gauc
from nextbest.twostage.rankers.gbdt import GBDTConfig, GBDTRanker


def in_set_figures(data: RankingData, scores: np.ndarray, n_cases: int) -> dict[str, float]:
    assert data.label is not None and data.session is not None
    positive = data.label > 0.5
    target = np.full(data.n_cases, np.nan)
    target[data.case[positive]] = scores[positive]
    ahead = np.bincount(data.case, weights=scores >= target[data.case], minlength=data.n_cases)
    hit = ~np.isnan(target) & (ahead <= 20)  # conservative: ties count ahead
    return {
        "mrr@20": float((1.0 / ahead[hit]).sum()) / n_cases,
        "recall@20": float(hit.sum()) / n_cases,
        "auc": auc(data.label, scores),
        "gauc": gauc(data.label, scores, data.session[data.case]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--train-cases", type=int, help="only the latest this many")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    train, test = load_ranking_data(args.train), load_ranking_data(args.test)
    if args.train_cases and train.n_cases > args.train_cases:
        train = train.cases(np.arange(train.n_cases - args.train_cases, train.n_cases))
    sizes = np.bincount(test.case, minlength=test.n_cases)
    record = {
        "train_cases": train.n_cases,
        "test_cases": test.n_cases,
        "share_of_cases_under_20_candidates": float((sizes < 20).mean()),
        "load_before": os.getloadavg(),
        "rows": {},
    }
    print(json.dumps({k: v for k, v in record.items() if k != "rows"}), flush=True)
    for group in ("", *GROUPS):
        names = train.groups.get(group, ()) if group else ()
        if group and not names:
            continue
        part_train = train.without(names) if names else train
        part_test = test.without(names) if names else test
        started = time.perf_counter()
        ranker = GBDTRanker(GBDTConfig(threads=args.threads)).fit(part_train)
        figures = in_set_figures(part_test, ranker.predict(part_test), test.n_cases)
        figures["seconds"] = time.perf_counter() - started
        label = f"without {group}" if group else "all features"
        record["rows"][label] = figures  # type: ignore[index]
        print(label, json.dumps(figures), flush=True)
    record["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
