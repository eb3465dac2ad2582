"""GRU4Rec trained by two processes (torch.distributed, gloo on 127.0.0.1) against one.

The two processes split every mini-batch's rows and sum their gradients, so they must train
the model one process trains, up to the order of float additions; and their replicas must be
identical to the bit (every process applies the same summed update). Training amplifies
rounding differences over many steps (benchmarks/bench_ddp.py compares quality over seeds on
rsc15_100k); over these few steps they stay far below the tolerance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from session_builders import make_sessions

from nextbest.models.gru4rec import GRU4Rec
from nextbest.models.gru4rec.batching import plan
from nextbest.models.gru4rec.config import GRU4RecConfig
from nextbest.models.gru4rec.distributed import own_rows
from nextbest.models.gru4rec.network import GRU4RecNet
from process_groups import spawn_group

N_ITEMS = 40


def _sessions():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    sessions = []
    for _ in range(120):
        start = int(rng.integers(0, N_ITEMS))
        length = int(rng.integers(1, 9))  # some single-event sessions, which are skipped
        sessions.append([(start + 3 * k) % N_ITEMS for k in range(length)])
    return make_sessions(sessions, N_ITEMS)


CONFIGS = {
    "cross-entropy": GRU4RecConfig(
        layers=(16,), batch_size=8, n_epochs=2, loss="cross-entropy", n_sample=12,
        dropout_p_embed=0.1, dropout_p_hidden=0.2, momentum=0.1, logq=1.0, learning_rate=0.1,
    ),
    "bpr-max, separate embedding": GRU4RecConfig(
        layers=(16,), batch_size=7, n_epochs=2, loss="bpr-max", n_sample=10,
        constrained_embedding=False, embedding=12, dropout_p_hidden=0.1, learning_rate=0.1,
    ),
}  # fmt: skip


def _train_rank(rank: int, kind: str, out: str) -> None:
    model = GRU4Rec(CONFIGS[kind]).fit(_sessions())
    assert model.net is not None
    state = {k: v.clone() for k, v in model.net.state_dict().items()}
    torch.save({"state": state, "loss": [h.loss for h in model.history]}, f"{out}.{rank}")


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_two_processes_train_the_model_one_process_trains(kind: str, tmp_path: Path) -> None:
    single = GRU4Rec(CONFIGS[kind]).fit(_sessions())
    assert single.net is not None
    out = str(tmp_path / "rank")
    spawn_group(_train_rank, (kind, out))
    first, second = (torch.load(f"{out}.{r}", weights_only=True) for r in (0, 1))
    for name, value in first["state"].items():
        assert torch.equal(value, second["state"][name]), f"replicas differ in {name}"
        expected = single.net.state_dict()[name]
        assert torch.allclose(value, expected, rtol=1e-4, atol=1e-5), name
    # something was learned: the weights moved away from where both started
    untrained = GRU4RecNet(N_ITEMS, CONFIGS[kind]).item_weights
    assert (first["state"]["item_weights"] - untrained).abs().max() > 0.01
    np.testing.assert_allclose(first["loss"], [h.loss for h in single.history], rtol=1e-4)


def test_every_row_of_every_mini_batch_is_one_process_s() -> None:
    walk = plan(_sessions(), 8)
    shares = [own_rows(walk, rank, 3) for rank in range(3)]
    for b in range(walk.n_batches):
        width = int(walk.offsets[b + 1] - walk.offsets[b])
        rows = np.concatenate([s[b].rows.numpy() for s in shares])
        assert sorted(rows.tolist()) == list(range(width))
        for share in shares:
            columns = share[b].columns.numpy()
            assert sorted(columns.tolist()) == list(range(width))
            assert columns[: len(share[b].rows)].tolist() == share[b].rows.tolist()
