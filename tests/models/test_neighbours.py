"""The item neighbour table: every item's best items by the model's own float scores, built
once per version (one process builds under a lock, the others map its file)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nextbest.models.neighbours import NeighbourTable, prepare_in_background


def linear_scorer(n: int, d: int, seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(n, d)).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32)

    def scorer(state: torch.Tensor) -> torch.Tensor:
        return torch.addmm(torch.from_numpy(bias), state, torch.from_numpy(weights).T)

    return scorer, weights, bias


def test_each_items_neighbours_are_its_best_scored_others_in_order() -> None:
    scorer, weights, bias = linear_scorer(700, 8)  # more than one block of anchors
    table = NeighbourTable.build(scorer, weights, 25)
    assert table.rows.shape == (700, 25) and table.rows.dtype == np.int32
    for anchor in (0, 255, 256, 511, 699):
        scores = weights @ weights[anchor] + bias  # computed here, not by the code under test
        scores[anchor] = -np.inf
        expected = np.argsort(-scores, kind="stable")[:25]
        rows, values = table.of(anchor)
        assert anchor not in rows
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_allclose(values, scores[expected], rtol=1e-5, atol=1e-5)


def test_k_is_capped_by_the_catalog() -> None:
    scorer, weights, _ = linear_scorer(10, 4)
    assert NeighbourTable.build(scorer, weights, 250).k == 9


def test_one_process_builds_and_the_others_map_its_file(tmp_path: Path) -> None:
    scorer, weights, _ = linear_scorer(300, 6)
    builds = []
    lock = threading.Lock()

    def counting(state: torch.Tensor) -> torch.Tensor:
        with lock:
            builds.append(len(state))
        return scorer(state)

    memos: list[dict[Any, Any]] = [{}, {}, {}]
    threads = [prepare_in_background(memo, counting, weights, 40, tmp_path) for memo in memos]
    for thread in threads:
        thread.join(timeout=60)
    assert sum(builds) == 300  # every anchor scored once: one builder, two readers
    tables = [memo["neighbours"] for memo in memos]
    for table in tables[1:]:
        np.testing.assert_array_equal(table.rows, tables[0].rows)
    assert all(isinstance(t.rows, np.memmap) for t in tables)

    def failing(state: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the saved table should have been used")

    later: dict[Any, Any] = {}
    prepare_in_background(later, failing, weights, 40, tmp_path).join(timeout=60)
    np.testing.assert_array_equal(later["neighbours"].rows, tables[0].rows)


def test_a_failed_build_leaves_the_memo_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(state: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no kernels")

    memo: dict[Any, Any] = {}
    prepare_in_background(memo, failing, np.zeros((5, 2), np.float32), 3, tmp_path).join(60)
    assert "neighbours" not in memo
    assert "could not build the item neighbour table" in caplog.text
