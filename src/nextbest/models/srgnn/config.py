"""SR-GNN's hyperparameters; the defaults are the paper's (Wu et al., AAAI 2019, section 4.1).

Hidden size 100, one propagation step, Adam at 0.001 decayed by 0.1 every 3 epochs, L2
penalty 1e-5, mini-batches of 100 prefixes. The paper trains up to 30 epochs and reports the
best epoch; `n_epochs` here is fixed, chosen on a validation split (docs/session-models.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SRGNNConfig:
    hidden: int = 100  # item embedding and node state size
    steps: int = 1  # gated graph propagation steps
    n_epochs: int = 4
    batch_size: int = 100  # training prefixes per mini-batch
    learning_rate: float = 0.001
    lr_decay: float = 0.1  # the learning rate is multiplied by this ...
    lr_decay_epochs: int = 3  # ... every this many epochs
    l2: float = 1e-5  # Adam's weight decay on every parameter, as the paper's L2 penalty
    hybrid: bool = True  # session vector from the global attention AND the last item (SR-GNN)
    # > 0: scores are this times the cosine of the session and item vectors (NISER, Gupta
    # et al. 2019, who use 16); 0: the plain dot product of the original paper
    scale: float = 0.0
    # The graph of a session is built from its most recent `max_length` items, in training and
    # in serving alike, so that a very long session costs a bounded graph.
    max_length: int = 200
    seed: int = 42
    threads: int = 2  # PyTorch threads during fit: the [B, n_items] products use both cores

    def __post_init__(self) -> None:
        for name in ("hidden", "steps", "n_epochs", "batch_size", "lr_decay_epochs", "threads"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, name, value, "an integer >= 1")
        _check(self.max_length >= 2, "max_length", self.max_length, "an integer >= 2")
        _check(self.scale >= 0.0, "scale", self.scale, "a number >= 0 (0: dot product)")
        _check(self.learning_rate > 0.0, "learning_rate", self.learning_rate, "a number > 0")
        _check(0.0 < self.lr_decay <= 1.0, "lr_decay", self.lr_decay, "a number in (0, 1]")
        _check(self.l2 >= 0.0, "l2", self.l2, "a number >= 0")


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"SR-GNN parameter {name}={value!r} is not allowed: must be {allowed}")
