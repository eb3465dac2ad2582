"""GRU4Rec's hyperparameters, named and defaulted as in the authors' public documentation.

The names are the authors' (`layers`, `batch_size`, `dropout_p_embed`, ...), so a parameter
string from their README or paper tables can be typed as `--param KEY=VALUE` unchanged, except
that lists use commas: `--param layers=100,100`.

Four additions: `final_act` names the activation in front of the BPR-max / TOP1-max losses
explicitly (`linear`, `elu-<alpha>`, `relu`, `tanh`); left unset it follows the authors'
current rule (ELU with `elu_param`, linear when `elu_param` is 0). `batch_loss` says how a
mini-batch's loss is reduced before its gradient: `mean` (the authors' code: the sum over the
rows divided by `batch_size`) or `sum`. Adagrad's step is nearly blind to the scale of a
gradient, but not quite: its eps (1e-6) sits under sqrt(acc), and for a rare item's row acc
is of the order of g^2, so the scale changes how far such rows move. `seed` makes training
repeatable (initialisation, dropout masks and negative samples all come from it). `threads`
is how many threads PyTorch may use while fitting: 1 by default, because a training step is
many small operations that a second thread barely speeds up, while a thread team waiting for
a core another process holds makes them many times slower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Loss = Literal["cross-entropy", "bpr-max", "top1-max"]
LOSSES: tuple[str, ...] = ("cross-entropy", "bpr-max", "top1-max")
BatchLoss = Literal["mean", "sum"]
BATCH_LOSSES: tuple[str, ...] = ("mean", "sum")
SIMPLE_ACTIVATIONS: tuple[str, ...] = ("linear", "relu", "tanh")


@dataclass(frozen=True)
class GRU4RecConfig:
    loss: Loss = "cross-entropy"
    layers: tuple[int, ...] = (100,)  # hidden units per GRU layer
    embedding: int = 0  # size of a separate input embedding; 0 = none
    constrained_embedding: bool = True  # input embedding = output item matrix (shared)
    n_epochs: int = 10
    batch_size: int = 64
    dropout_p_embed: float = 0.0
    dropout_p_hidden: float = 0.0
    learning_rate: float = 0.05
    momentum: float = 0.0
    n_sample: int = 2048  # extra negatives shared by a mini-batch
    sample_alpha: float = 0.5  # negatives drawn with probability ~ support ** sample_alpha
    bpreg: float = 1.0  # score regularisation of BPR-max
    logq: float = 0.0  # weight of the log(popularity) correction of cross-entropy
    batch_loss: BatchLoss = "mean"  # mean: the rows' sum / batch_size (the authors'); sum
    elu_param: float = 0.5  # ELU alpha before BPR-max / TOP1-max; 0 = linear
    final_act: str | None = None  # overrides elu_param: linear, elu-<alpha>, relu, tanh
    seed: int = 42
    threads: int = 1  # PyTorch intra-op threads during fit (not a model property)
    # Item attributes added to the id rows (category, brand, price, discount, free attribute
    # names; see attributes.py): off by default, and needs the catalog (`--items`).
    attributes: tuple[str, ...] = ()
    # With attributes: the share of items whose id rows a training step leaves out, so that
    # the attribute rows alone learn to score an item whose id is unknown (a new item).
    attribute_id_dropout: float = 0.1
    # With attributes: their learning rate relative to the id rows'. An attribute row is in
    # nearly every mini-batch (an id row only when its item is); at the full rate it drifts
    # and blurs the ids (docs/gru4rec.md, "Item attributes", has the measurements).
    attribute_rate: float = 0.1

    def __post_init__(self) -> None:
        # JSON and keyword callers hand lists; keep the dataclass hashable and immutable.
        object.__setattr__(self, "layers", tuple(int(size) for size in self.layers))
        object.__setattr__(self, "attributes", tuple(str(name) for name in self.attributes))
        _check(self.loss in LOSSES, "loss", self.loss, f"one of {list(LOSSES)}")
        _check(
            len(self.layers) >= 1 and all(size >= 1 for size in self.layers),
            "layers",
            self.layers,
            "one or more positive layer sizes, e.g. 100 or 100,100",
        )
        _check(self.embedding >= 0, "embedding", self.embedding, "an integer >= 0")
        _check(
            not (self.constrained_embedding and self.embedding > 0),
            "embedding",
            self.embedding,
            "0 when constrained_embedding is True (the shared embedding has the size of the "
            "last layer); set constrained_embedding=False to use a separate embedding",
        )
        _check(self.n_epochs >= 1, "n_epochs", self.n_epochs, "an integer >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        for name in ("dropout_p_embed", "dropout_p_hidden", "attribute_id_dropout"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, name, value, "a probability in [0, 1)")
        _check(self.learning_rate > 0.0, "learning_rate", self.learning_rate, "a number > 0")
        _check(0.0 <= self.momentum < 1.0, "momentum", self.momentum, "a number in [0, 1)")
        _check(self.n_sample >= 0, "n_sample", self.n_sample, "an integer >= 0")
        _check(self.sample_alpha >= 0.0, "sample_alpha", self.sample_alpha, "a number >= 0")
        _check(self.bpreg >= 0.0, "bpreg", self.bpreg, "a number >= 0")
        _check(self.logq >= 0.0, "logq", self.logq, "a number >= 0")
        _check(self.batch_loss in BATCH_LOSSES, "batch_loss", self.batch_loss, "mean or sum")
        _check(self.elu_param >= 0.0, "elu_param", self.elu_param, "a number >= 0")
        _check(self.threads >= 1, "threads", self.threads, "an integer >= 1")
        _check(self.attribute_rate > 0.0, "attribute_rate", self.attribute_rate, "a number > 0")
        _check(
            all(name.strip() and name == name.strip() for name in self.attributes)
            and len(set(self.attributes)) == len(self.attributes),
            "attributes",
            ",".join(self.attributes),
            "distinct attribute names, e.g. category,brand,price (also discount, category_1, "
            "category_2 or a free attribute's name)",
        )
        if self.final_act is not None:
            _check(
                _parse_activation(self.final_act) is not None,
                "final_act",
                self.final_act,
                "linear, relu, tanh or elu-<alpha> (alpha > 0)",
            )
            _check(
                self.loss != "cross-entropy" or self.final_act == "linear",
                "final_act",
                self.final_act,
                "unset or linear with loss=cross-entropy (its softmax is the final activation)",
            )

    @property
    def activation(self) -> tuple[str, float]:
        """The activation before the pairwise losses: (kind, ELU alpha)."""
        if self.final_act is not None:
            parsed = _parse_activation(self.final_act)
            assert parsed is not None  # validated in __post_init__
            return parsed
        if self.loss == "cross-entropy" or self.elu_param == 0.0:
            return ("linear", 0.0)
        return ("elu", self.elu_param)

    @property
    def input_mode(self) -> Literal["shared", "separate", "onehot"]:
        """How an item enters the first GRU layer.

        shared: its row of the output item matrix; separate: its row of an own embedding;
        onehot: its row of the first layer's input weights (a one-hot input times those
        weights, without building the one-hot vector).
        """
        if self.constrained_embedding:
            return "shared"
        return "separate" if self.embedding > 0 else "onehot"


def _parse_activation(text: str) -> tuple[str, float] | None:
    if text in SIMPLE_ACTIVATIONS:
        return (text, 0.0)
    if text == "elu":
        return ("elu", 1.0)
    if text.startswith("elu-"):
        try:
            alpha = float(text[4:])
        except ValueError:
            return None
        return ("elu", alpha) if alpha > 0.0 else None
    return None


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"GRU4Rec parameter {name}={value!r} is not allowed: must be {allowed}")
