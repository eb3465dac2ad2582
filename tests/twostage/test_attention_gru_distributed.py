"""The attention-GRU ranker trained by two processes (DistributedDataParallel, gloo on
127.0.0.1) against one: every process takes its cases of each mini-batch, and the weighted
losses make the averaged gradient the one process's, so the weights must agree up to float
rounding, and the two replicas must be identical."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from test_attention_gru import synthetic

from nextbest.twostage.rankers.attention_gru import AttentionGRUConfig, AttentionGRURanker
from process_groups import spawn_group

SMALL = AttentionGRUConfig(
    epochs=2, batch_size=16, learning_rate=5e-3, embedding_size=8, hidden_size=8,
    attention_size=8, mlp_size=16, negatives=4,
)  # fmt: skip


def _train_rank(rank: int, config: AttentionGRUConfig, out: str) -> None:
    ranker = AttentionGRURanker(config).fit(synthetic(90, seed=4))
    assert ranker.network is not None
    torch.save({"state": ranker.network.state_dict(), "log": ranker.history_log}, f"{out}.{rank}")


def test_two_processes_train_the_ranker_one_process_trains(tmp_path: Path) -> None:
    single = AttentionGRURanker(SMALL).fit(synthetic(90, seed=4))
    assert single.network is not None
    first, second = _two_processes(SMALL, tmp_path)
    expected = single.network.state_dict()
    for name, value in first["state"].items():
        assert torch.equal(value, second["state"][name]), f"replicas differ in {name}"
        assert torch.allclose(value, expected[name], rtol=1e-4, atol=1e-5), name
    before = AttentionGRURanker(replace(SMALL, epochs=1)).fit(synthetic(90, seed=4))
    assert before.network is not None  # and training moved the weights on from there
    assert not torch.allclose(first["state"]["mlp.4.weight"], before.network.mlp[4].weight)
    # the logged loss is the whole mini-batches' mean, summed over the processes' parts
    np.testing.assert_allclose(
        [e["loss"] for e in first["log"]], [e["loss"] for e in single.history_log], rtol=1e-4
    )


def test_two_processes_rank_with_the_softmax_loss_as_one_does(tmp_path: Path) -> None:
    """The case softmax ignores a shift of all of a case's logits, so some directions have no
    gradient but rounding noise, which Adam scales up to full steps: the weights drift apart
    there (1e-3 here), the rankings within cases must not."""
    config = replace(SMALL, loss="softmax")
    data = synthetic(90, seed=4)
    single = AttentionGRURanker(config).fit(data)
    first, _ = _two_processes(config, tmp_path)
    two = AttentionGRURanker(config)
    two.names, two.missing, two.n_items = single.names, single.missing, single.n_items
    two.network = copy.deepcopy(single.network)
    assert two.network is not None
    two.network.load_state_dict(first["state"])
    test = synthetic(60, seed=5)
    a, b = _centred(single.predict(test), test.case), _centred(two.predict(test), test.case)
    assert np.corrcoef(a, b)[0, 1] > 0.999
    np.testing.assert_allclose(a, b, atol=0.05)


def _centred(scores: np.ndarray, case: np.ndarray) -> np.ndarray:
    """Scores minus their case's mean: what a ranking within a case sees."""
    means = np.bincount(case, weights=scores) / np.bincount(case)
    return scores - means[case]


def _two_processes(config: AttentionGRUConfig, tmp_path: Path) -> list[dict[str, Any]]:
    out = str(tmp_path / "rank")
    spawn_group(_train_rank, (config, out))
    return [torch.load(f"{out}.{r}", weights_only=True) for r in (0, 1)]


def _fit_other_data(rank: int, out: str) -> None:
    try:
        AttentionGRURanker(SMALL).fit(synthetic(90, seed=4 + rank))
    except ValueError as exc:
        Path(f"{out}.{rank}").write_text(str(exc))


def test_processes_that_hold_different_data_refuse_it_together(tmp_path: Path) -> None:
    """Rank 1's cases are not rank 0's: both say so before a mini-batch (a process with
    fewer mini-batches would leave the other waiting in an all-reduce)."""
    out = str(tmp_path / "rank")
    spawn_group(_fit_other_data, (out,))
    for rank in (0, 1):
        assert "different ranker training data" in Path(f"{out}.{rank}").read_text()
