"""The self-attentive model's hyperparameters.

The architecture follows SASRec (Kang and McAuley, ICDM 2018): two blocks of causal
self-attention and a point-wise feed-forward network, learned positions, the item embedding
shared between input and output, dropout 0.2, Adam at 0.001. Its loss is not the paper's
(binary cross-entropy against one random negative): later studies (Klenitskiy and Vasilev,
RecSys 2023; Petrov and Macdonald, RecSys 2023) find softmax cross-entropy much stronger, so
`loss` is `cross-entropy` over all items or `sampled` (shared negatives drawn by popularity
** `sample_alpha`, with the logQ correction); docs/session-models.md says which was chosen.

`batch_size` counts predicted positions (targets), not sessions: sessions of similar length
are packed until a mini-batch holds about that many, so a long session does not blow up one
batch's [positions, n_items] scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Loss = Literal["cross-entropy", "sampled"]


@dataclass(frozen=True)
class SASRecConfig:
    hidden: int = 100
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.2
    max_length: int = 50  # positions learned; attention sees the latest max_length clicks
    loss: Loss = "cross-entropy"
    # > 0: scores are this times the cosine of the session and item vectors (NISER, Gupta
    # et al. 2019, who use 16); 0: the plain dot product of the original paper
    scale: float = 0.0
    n_sample: int = 2048  # shared negatives per mini-batch with loss=sampled
    sample_alpha: float = 0.75  # negatives drawn ~ support ** sample_alpha
    n_epochs: int = 10
    batch_size: int = 512  # predicted positions per mini-batch
    learning_rate: float = 0.001
    # The learning rate is multiplied by lr_decay every lr_decay_epochs epochs (SR-GNN's step
    # schedule); 1.0, the default, keeps Adam's rate constant as the SASRec paper does.
    lr_decay: float = 1.0
    lr_decay_epochs: int = 3
    l2: float = 0.0
    # A training session is read from its start, at most this many clicks (its later
    # clicks are left out), so that training positions are the positions served.
    train_length: int = 200
    seed: int = 42
    threads: int = 2  # PyTorch threads during fit

    def __post_init__(self) -> None:
        for name in (
            "hidden",
            "blocks",
            "heads",
            "max_length",
            "n_epochs",
            "batch_size",
            "threads",
            "n_sample",
            "lr_decay_epochs",
        ):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, name, value, "an integer >= 1")
        _check(self.hidden % self.heads == 0, "heads", self.heads, "a divisor of hidden")
        _check(
            self.loss in ("cross-entropy", "sampled"), "loss", self.loss, "cross-entropy or sampled"
        )
        _check(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "a probability in [0, 1)")
        _check(self.scale >= 0.0, "scale", self.scale, "a number >= 0 (0: dot product)")
        _check(self.learning_rate > 0.0, "learning_rate", self.learning_rate, "a number > 0")
        _check(0.0 < self.lr_decay <= 1.0, "lr_decay", self.lr_decay, "a number in (0, 1]")
        _check(self.l2 >= 0.0, "l2", self.l2, "a number >= 0")
        _check(self.sample_alpha >= 0.0, "sample_alpha", self.sample_alpha, "a number >= 0")
        _check(self.train_length >= 2, "train_length", self.train_length, "an integer >= 2")


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"SASRec parameter {name}={value!r} is not allowed: must be {allowed}")
