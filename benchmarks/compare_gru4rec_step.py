"""GRU4Rec step by step beside the authors' code: same weights, same samples, three mini-batches.

    .venv/bin/python benchmarks/compare_gru4rec_step.py \
        --reference DIR --reference-python REFVENV/bin/python [--loss bpr-max]

The authors' code (a checkout of hidasib/GRU4Rec_PyTorch_Official and its own venv, as for
bench_gru4rec.py) builds its model on a tiny generated split with its own initialisation,
draws its own negative samples and trains three mini-batches; this script runs that half in the
authors' interpreter (`--authors-side`, which imports nothing of nextbest) and stores the
initial weights, each mini-batch's inputs, columns, scores, loss, gradients and the weights
after each optimiser step. Then our network gets those initial weights, our trainer gets the
same inputs and samples (never their later weights: a difference compounds), and every
quantity is compared. It prints one table row per quantity and step with the largest absolute
difference, so that where the two differ is named, not guessed.

The authors' GRU layer is PyTorch's `GRUCell`, with the same two biases as ours; it writes
h' = z * h + (1 - z) * n where ours writes h' = (1 - z) * h + z * n: the same model with the
update gate's sign flipped (and the same initial distribution), so its z block of weights,
biases and gradients is negated before comparing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

N_ITEMS, HIDDEN, BATCH, N_SAMPLE, STEPS = 40, 8, 6, 10, 3


def tiny_split(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Session ids, item ids and times of 30 sessions over N_ITEMS items (every item used)."""
    rng = np.random.default_rng(seed)
    sessions, items, times = [], [], []
    clock = 0
    for session in range(30):
        for _ in range(int(rng.integers(3, 8))):
            sessions.append(session)
            items.append(int(rng.integers(N_ITEMS)))
            times.append(clock)
            clock += 1
    items[:N_ITEMS] = list(range(N_ITEMS))  # every item occurs, so no id is unmapped
    return np.array(sessions), np.array(items), np.array(times)


def parameters(loss: str) -> dict[str, Any]:
    return {
        "loss": loss, "layers": [HIDDEN], "batch_size": BATCH, "n_sample": N_SAMPLE,
        "sample_alpha": 0.5, "learning_rate": 0.1, "momentum": 0.3, "bpreg": 0.7,
        "elu_param": 0.8 if loss == "bpr-max" else 0.0,
        "logq": 1.0 if loss == "cross-entropy" else 0.0, "dropout_p_embed": 0.0,
        "dropout_p_hidden": 0.0, "constrained_embedding": True, "embedding": 0,
    }  # fmt: skip


# -- the authors' half: runs in their venv, with their module on sys.path -------------------
def authors_side(code: Path, loss: str, out: Path) -> None:
    import pandas as pd

    sys.path.insert(0, str(code))
    import gru4rec_pytorch as theirs  # type: ignore[import-not-found]

    torch.manual_seed(0)
    sessions, items, times = tiny_split()
    data = pd.DataFrame({"SessionId": sessions, "ItemId": items, "Time": times})
    params = parameters(loss)
    device = torch.device("cpu")
    model = theirs.GRU4Rec(device=device, **params)
    iterator = theirs.SessionDataIterator(
        data, BATCH, n_sample=N_SAMPLE, sample_alpha=params["sample_alpha"],
        sample_cache_max_size=1000, device=device,
    )  # fmt: skip
    if params["logq"]:
        pop = data.groupby("ItemId").size()
        model.P0 = torch.tensor(pop[iterator.itemidmap.index.values], dtype=torch.float32)
    net = theirs.GRU4RecModel(iterator.n_items, [HIDDEN], 0.0, 0.0, 0, True)
    net._reset_weights_to_compatibility_mode()  # their default initialisation (fit's)
    optimizer = theirs.IndexedAdagradM(
        net.parameters(), params["learning_rate"], params["momentum"]
    )
    names = dict(net.named_parameters())
    record: dict[str, np.ndarray] = {
        f"init/{name}": p.detach().numpy().copy() for name, p in names.items()
    }
    record["support"] = data.groupby("ItemId").size()[iterator.itemidmap.index.values].to_numpy()
    hidden = [torch.zeros(BATCH, HIDDEN)]
    batches = iterator(enable_neg_samples=True)
    for step in range(STEPS):
        inputs, columns = next(batches)
        for h in hidden:
            h.detach_()
        net.zero_grad()
        scores = net.forward(inputs, hidden, columns, training=True)
        batch_loss = model.loss_function(scores, columns, BATCH) / BATCH
        batch_loss.backward()
        record[f"{step}/inputs"] = inputs.numpy().copy()
        record[f"{step}/columns"] = columns.numpy().copy()
        record[f"{step}/scores"] = scores.detach().numpy().copy()
        record[f"{step}/loss"] = np.array(float(batch_loss) * BATCH)  # the rows' sum
        for name, p in names.items():
            grad = p.grad.to_dense() if p.grad.is_sparse else p.grad
            record[f"{step}/grad/{name}"] = grad.numpy().copy()
        optimizer.step()
        for name, p in names.items():
            record[f"{step}/after/{name}"] = p.detach().numpy().copy()
    np.savez(out, **record)  # type: ignore[arg-type]


# -- our half ----------------------------------------------------------------------------------
def _as_ours(gates: np.ndarray) -> torch.Tensor:
    """Their [3H, ...] gate block (r, z, n) in our sign: the update gate negated."""
    flipped = gates.astype(np.float32).copy()
    flipped[HIDDEN : 2 * HIDDEN] *= -1.0
    return torch.from_numpy(flipped)


def ours_side(record: dict[str, np.ndarray], loss: str) -> list[tuple[str, int, float]]:
    """(quantity, step, largest absolute difference) rows."""
    from nextbest.models.gru4rec import GRU4RecConfig
    from nextbest.models.gru4rec.network import GRU4RecNet, GRULayer
    from nextbest.models.gru4rec.training import Trainer, batch_loss

    params = parameters(loss)
    config = GRU4RecConfig(
        **{k: v for k, v in params.items() if k != "layers"}, layers=(HIDDEN,), n_epochs=1
    )
    net = GRU4RecNet(N_ITEMS, config)
    layer = net.layers[0]
    assert isinstance(layer, GRULayer)
    # (quantity, our parameter, their parameter's name, their array in our layout)
    pairs: list[tuple[str, torch.nn.Parameter, str, Callable[[np.ndarray], torch.Tensor]]] = [
        ("item matrix", net.item_weights, "Wy.weight", torch.from_numpy),
        ("item bias", net.item_bias, "By.weight", lambda a: torch.from_numpy(a[:, 0])),
        ("GRU input weights", layer.w_input, "G.0.weight_ih", lambda a: _as_ours(a).T),
        ("GRU hidden weights", layer.w_hidden, "G.0.weight_hh", lambda a: _as_ours(a).T),
        ("GRU input bias", layer.bias, "G.0.bias_ih", _as_ours),
        ("GRU hidden bias", layer.bias_hidden, "G.0.bias_hh", _as_ours),
    ]
    with torch.no_grad():
        for _, mine, name, layout in pairs:
            mine.copy_(layout(record[f"init/{name}"]))
    trainer = Trainer(net, config, record["support"], n_batches=STEPS)
    rows: list[tuple[str, int, float]] = []
    hidden = net.initial_hidden(BATCH)
    for step in range(STEPS):  # never reloaded from theirs: a difference would compound
        inputs = torch.from_numpy(record[f"{step}/inputs"]).long()
        cols = torch.from_numpy(record[f"{step}/columns"]).long()
        net.zero_grad()
        scores, new_hidden, leaves = trainer.forward(inputs, cols, hidden, train=True)
        summed = trainer._loss(scores, cols)
        batch_loss(summed, config).backward()  # type: ignore[no-untyped-call]
        rows.append(("scores", step, _diff(scores, record[f"{step}/scores"])))
        rows.append(("loss (rows' sum)", step, _diff(summed, record[f"{step}/loss"])))
        # an item table's gradient: its leaves' gradients added at the rows they hold
        grads = {id(p): p.grad for _, p, _, _ in pairs}
        for table, index, parts in leaves:
            leaf_grads = torch.cat([part.grad for part in parts])  # type: ignore[misc]
            grads[id(table)] = torch.zeros_like(table).index_add_(0, index, leaf_grads)
        for label, mine, name, layout in pairs:
            theirs = layout(record[f"{step}/grad/{name}"])
            rows.append((f"gradient: {label}", step, _diff(grads[id(mine)], theirs)))
        trainer.optimizer.step_dense()  # the optimiser step, as Trainer.step takes it
        for table, index, parts in leaves:
            part_grads = [part.grad for part in parts]
            trainer.optimizer.step_rows(table, index, part_grads)  # type: ignore[arg-type]
        for label, mine, name, layout in pairs:
            theirs = layout(record[f"{step}/after/{name}"])
            rows.append((f"after the step: {label}", step, _diff(mine, theirs)))
        hidden = [h.detach() for h in new_hidden]
    return rows


def _diff(mine: torch.Tensor | None, theirs: np.ndarray | torch.Tensor) -> float:
    assert mine is not None
    other = theirs.double() if isinstance(theirs, torch.Tensor) else torch.from_numpy(theirs)
    return float((mine.detach().double() - other.double()).abs().max())


def main(argv: list[str] | None = None) -> list[tuple[str, int, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, metavar="DIR")
    parser.add_argument("--reference-python", type=Path, metavar="PYTHON")
    parser.add_argument("--loss", choices=["cross-entropy", "bpr-max"], default="cross-entropy")
    parser.add_argument("--authors-side", type=Path, metavar="OUT.npz", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.authors_side is not None:  # the half that runs in the authors' venv
        authors_side(args.reference, args.loss, args.authors_side)
        return []
    if args.reference_python is None:
        parser.error("--reference-python is needed (the authors' code's own venv)")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "authors.npz"
        done = subprocess.run(
            [str(args.reference_python), __file__, "--reference", str(args.reference),
             "--loss", args.loss, "--authors-side", str(out)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"the authors' half failed:\n{(done.stdout + done.stderr)[-3000:]}")
        record = dict(np.load(out))
    rows = ours_side(record, args.loss)
    print(f"loss={args.loss}: largest absolute difference, ours - the authors' code")
    print("| quantity | step | max abs diff |\n|---|---|---|")
    for name, step, diff in rows:
        print(f"| {name} | {step} | {diff:.2e} |")
    worst = max(rows, key=lambda row: row[2])
    print(f"largest of all: {worst[2]:.2e} ({worst[0]}, step {worst[1]})")
    return rows


if __name__ == "__main__":
    main()
