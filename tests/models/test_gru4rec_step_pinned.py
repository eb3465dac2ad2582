"""Two whole training steps of GRU4Rec on a tiny problem, against the papers' formulas written
out with plain PyTorch ops (autograd for the gradients): the GRU step, the scores of the
mini-batch's targets and shared samples, cross-entropy with the logQ correction and BPR-max
with ELU (row by row, negatives listed by hand), the mini-batch's loss divided by the batch
size as in the authors' training loop (or left summed), and Adagrad with momentum, whose item-table
rows move only when a mini-batch uses them. The trained code fuses and indexes all of this
for speed; this test keeps it equal to the plain form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nextbest.models.gru4rec import GRU4RecConfig
from nextbest.models.gru4rec.network import GRU4RecNet
from nextbest.models.gru4rec.optimizer import EPS
from nextbest.models.gru4rec.training import Trainer

N_ITEMS, HIDDEN = 8, 4
SUPPORT = np.array([5, 1, 3, 8, 2, 1, 4, 2])  # training events per item (the sampling weights)
STEPS = [  # (inputs, targets, shared samples) of two mini-batches of three sessions
    ([0, 3, 2], [3, 1, 2], [4, 0, 3]),  # item 2 is an input and a target: one row, two uses
    ([3, 1, 2], [6, 2, 5], [1, 6, 0]),  # row 4 rests (its velocity must not move it)
]  # item 7 is never used


def config(loss: str, reduction: str) -> GRU4RecConfig:
    return GRU4RecConfig(
        loss=loss, batch_loss=reduction, layers=(HIDDEN,), constrained_embedding=True,
        batch_size=3, n_sample=3,
        sample_alpha=0.5, logq=1.0 if loss == "cross-entropy" else 0.0, bpreg=0.7,
        elu_param=0.8, learning_rate=0.1, momentum=0.3, dropout_p_embed=0.0,
        dropout_p_hidden=0.0, seed=5,
    )  # fmt: skip


def plain_loss(scores: torch.Tensor, cols: torch.Tensor, cfg: GRU4RecConfig) -> torch.Tensor:
    rows, width = scores.shape
    if cfg.loss == "cross-entropy":
        # each column corrected by its own draw: in-batch targets ~ support, the shared
        # samples ~ support ** alpha (unnormalised: a shared constant leaves a softmax as is)
        support = torch.tensor(SUPPORT, dtype=torch.float64)[cols]
        alpha = torch.tensor([1.0] * rows + [cfg.sample_alpha] * (width - rows))
        log_q = (cfg.logq * alpha * torch.log(support)).float()
        corrected = scores - log_q
        p = torch.exp(corrected) / torch.exp(corrected).sum(dim=1, keepdim=True)
        return -sum(torch.log(p[i, i] + 1e-24) for i in range(rows))  # type: ignore[return-value]
    r = torch.where(scores > 0, scores, cfg.elu_param * (torch.exp(scores) - 1))  # ELU
    total = torch.zeros(())
    for i in range(rows):
        negatives = [j for j in range(width) if j != i]  # every column but its own target
        s = torch.softmax(r[i, negatives], dim=0)
        above = (s * torch.sigmoid(r[i, i] - r[i, negatives])).sum()
        total = total - torch.log(above + 1e-24) + cfg.bpreg * (s * r[i, negatives] ** 2).sum()
    return total


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss", ["cross-entropy", "bpr-max"])
def test_two_training_steps_equal_the_plain_formulas(loss: str, reduction: str) -> None:
    cfg = config(loss, reduction)
    net = GRU4RecNet(N_ITEMS, cfg)
    layer = net.layers[0]
    never_used = net.item_weights.detach()[7].clone()
    # the plain copy: item matrix (also the input rows), item bias, the layer's weights
    W, b = net.item_weights.detach().clone(), net.item_bias.detach().clone()
    Wx, Wh, bg, bh = (p.detach().clone() for p in (layer.w_input, layer.w_hidden, layer.bias,
                                                     layer.bias_hidden))  # fmt: skip
    dense_state = {name: (torch.zeros_like(p), torch.zeros_like(p)) for name, p in
                   (("Wx", Wx), ("Wh", Wh), ("bg", bg), ("bh", bh))}  # fmt: skip
    table_state = {name: (torch.zeros_like(p), torch.zeros_like(p)) for name, p in
                   (("W", W), ("b", b))}  # fmt: skip

    trainer = Trainer(net, cfg, SUPPORT, n_batches=len(STEPS))
    samples = iter(torch.tensor(s) for _, _, s in STEPS)
    trainer.sampler = lambda: next(samples)  # type: ignore[assignment]
    hidden = net.initial_hidden(3)
    h = torch.zeros(3, HIDDEN)
    for inputs, targets, sampled in STEPS:
        got_loss, hidden = trainer.step(torch.tensor(inputs), torch.tensor(targets), hidden)

        params = {"W": W, "b": b, "Wx": Wx, "Wh": Wh, "bg": bg, "bh": bh}
        leaves = {name: p.clone().requires_grad_() for name, p in params.items()}
        cols = torch.tensor(targets + sampled)
        x = leaves["W"][torch.tensor(inputs)]
        # PyTorch's GRUCell form: a bias with the input's term and one with the state's
        gx, gh = x @ leaves["Wx"] + leaves["bg"], h @ leaves["Wh"] + leaves["bh"]
        r = torch.sigmoid(gx[:, :HIDDEN] + gh[:, :HIDDEN])
        z = torch.sigmoid(gx[:, HIDDEN : 2 * HIDDEN] + gh[:, HIDDEN : 2 * HIDDEN])
        n = torch.tanh(gx[:, 2 * HIDDEN :] + r * gh[:, 2 * HIDDEN :])
        h_next = (1 - z) * h + z * n
        scores = h_next @ leaves["W"][cols].T + leaves["b"][cols]
        expected_loss = plain_loss(scores, cols, cfg)
        divisor = cfg.batch_size if reduction == "mean" else 1  # the authors': loss / batch_size
        (expected_loss / divisor).backward()  # type: ignore[no-untyped-call]
        assert got_loss == pytest.approx(float(expected_loss.detach()), rel=1e-5)

        used = {
            "W": sorted(set(inputs) | set(targets) | set(sampled)),
            "b": sorted(set(cols.tolist())),
        }
        with torch.no_grad():
            for name, p in params.items():
                g = leaves[name].grad
                assert g is not None
                acc, vel = (dense_state | table_state)[name]
                if name in used:  # an item table: only the rows this mini-batch used move
                    rows = torch.tensor(used[name])
                    acc[rows] += g[rows] ** 2
                    vel[rows] = cfg.momentum * vel[rows] - cfg.learning_rate * g[rows] / torch.sqrt(
                        acc[rows] + EPS
                    )
                    p[rows] += vel[rows]
                else:
                    acc += g**2
                    vel.mul_(cfg.momentum).sub_(cfg.learning_rate * g / torch.sqrt(acc + EPS))
                    p += vel
        h = h_next.detach()

        torch.testing.assert_close(hidden[0], h, rtol=1e-5, atol=1e-6)
        mine_and_plain = ((net.item_weights, W), (net.item_bias, b), (layer.w_input, Wx),
                          (layer.w_hidden, Wh), (layer.bias, bg),
                          (layer.bias_hidden, bh))  # fmt: skip
        for mine, plain in mine_and_plain:
            torch.testing.assert_close(mine.detach(), plain, rtol=1e-4, atol=1e-5)  # steps of 0.1
    assert torch.equal(net.item_weights.detach()[7], never_used)  # bit for bit
