"""The GRU4Rec network: item rows in, a stack of GRU layers, item scores out.

An item enters the first layer as one row of a table (`input_table`), never as a one-hot
vector: the shared output item matrix (constrained embedding), a separate embedding, or, with
neither, the first layer's own input weights (a one-hot input times them is that row).

Every layer is a GRU as the authors' PyTorch code has it (PyTorch's `GRUCell`, the form the
authors draw in their CIKM 2018 presentation of GRU4Rec v2), the reset gate scaling the
recurrent term of the candidate, with a bias on each side:

    r = sigmoid(W_r x + b_r + U_r h + c_r)      z = sigmoid(W_z x + b_z + U_z h + c_z)
    n = tanh(W_n x + b_n + r * (U_n h + c_n))   h' = (1 - z) * h + z * n

(`GRUCell` writes h' = z * h + (1 - z) * n: the same model with z's sign flipped.) The two
biases of r and z add up, but each has its own Adagrad step, so together they move twice as
fast as one would, and c_n sits inside the reset gate: both matter to training, and
`benchmarks/compare_gru4rec_step.py` showed them to be the last difference from the authors'
training step (docs/gru4rec.md has the measurements). The ICLR 2016 paper writes U_n (r * h);
that variant was measured too. This one needs one [H, 3H] product of h per step instead of
two dependent ones.

Scores of the columns `cols` are `h_last @ item_weights[cols].T + item_bias[cols]`. Training
gathers the rows it needs itself (see `training.py`), so the same `encode` and `logits` serve
training, evaluation and serving.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nextbest.models.gru4rec.attributes import AttributeIndex, AttributeTables
from nextbest.models.gru4rec.config import GRU4RecConfig

Hidden = list[torch.Tensor]  # one [B, H_l] tensor per layer


def glorot_(weight: torch.Tensor, blocks: int, generator: torch.Generator) -> None:
    """Uniform in +-sqrt(6 / (fan_in + fan_out)), computed per gate block of the columns."""
    fan_in, width = weight.shape
    fan_out = width // blocks
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-bound, bound, generator=generator)


class GRULayer(nn.Module):
    """One GRU layer; gates are laid out [r | z | n] along the columns."""

    def __init__(self, n_in: int, n_hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        self.n_hidden = n_hidden
        self.w_input = nn.Parameter(torch.empty(n_in, 3 * n_hidden))  # [In, 3H]
        self.w_hidden = nn.Parameter(torch.empty(n_hidden, 3 * n_hidden))  # [H, 3H]
        self.bias = nn.Parameter(torch.zeros(3 * n_hidden))  # [3H] b: with the input's term
        self.bias_hidden = nn.Parameter(torch.zeros(3 * n_hidden))  # [3H] c: with the state's
        glorot_(self.w_input, 3, generator)
        glorot_(self.w_hidden, 3, generator)

    def forward(self, gates_x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step from the input's gate pre-activations `gates_x` [B, 3H] (bias included)."""
        width = 2 * self.n_hidden
        gates_h = torch.addmm(self.bias_hidden, h, self.w_hidden)  # [B, 3H]
        rz = torch.sigmoid(gates_x[:, :width] + gates_h[:, :width])  # [B, 2H]
        r, z = rz[:, : self.n_hidden], rz[:, self.n_hidden :]
        n = torch.tanh(torch.addcmul(gates_x[:, width:], r, gates_h[:, width:]))  # [B, H]
        return torch.lerp(h, n, z)  # (1 - z) * h + z * n

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x, self.w_input)  # [B, 3H]


def with_hidden_biases(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A saved state dict of any version: one saved before GRU layers had `bias_hidden` gets
    zeros there, which computes exactly what it computed then."""
    state = dict(state)
    for key in [k for k in state if k.endswith(".w_hidden")]:
        state.setdefault(
            key.removesuffix("w_hidden") + "bias_hidden", torch.zeros(state[key].shape[1])
        )
    return state


class GRU4RecNet(nn.Module):
    def __init__(
        self, n_items: int, config: GRU4RecConfig, attributes: AttributeIndex | None = None
    ) -> None:
        """`attributes`: the items' attribute slots, with `config.attributes` set (see
        attributes.py); their tables are created after every id table, so the id tables
        draw the same initial values with or without them."""
        super().__init__()
        generator = torch.Generator().manual_seed(config.seed)
        self.mode = config.input_mode
        self.sizes = config.layers
        last = config.layers[-1]
        self.item_weights = nn.Parameter(torch.empty(n_items, last))  # [N, H_last]
        self.item_bias = nn.Parameter(torch.zeros(n_items))  # [N]
        glorot_(self.item_weights, 1, generator)
        self.embedding: nn.Parameter | None = None
        if self.mode == "separate":
            self.embedding = nn.Parameter(torch.empty(n_items, config.embedding))  # [N, E]
            glorot_(self.embedding, 1, generator)
        n_in = {"shared": last, "separate": config.embedding, "onehot": n_items}[self.mode]
        layers = []
        for size in config.layers:
            layers.append(GRULayer(n_in, size, generator))
            n_in = size
        self.layers = nn.ModuleList(layers)
        self.attributes: AttributeTables | None = None
        if attributes is not None:
            input_width = {"shared": None, "separate": config.embedding}.get(
                self.mode, 3 * config.layers[0]
            )
            self.attributes = AttributeTables(attributes, last, input_width, config.attribute_rate)

    @property
    def training_attributes(self) -> AttributeTables | None:
        """The attribute tables while they are still apart from the id tables (training)."""
        tables = self.attributes
        return None if tables is None or bool(tables.folded) else tables

    @torch.no_grad()
    def fold_attributes(self) -> None:
        """Add every item's attribute rows into its id rows, once: from then on the item
        tables alone score (serving and evaluation cost what an id-only network costs)."""
        tables = self.training_attributes
        if tables is None:
            return
        everything = torch.arange(self.item_weights.shape[0])
        if self.mode != "shared":  # the shared input table is item_weights, folded below
            self.input_table.add_(tables.input_rows(everything))
        self.item_weights.add_(tables.output_rows(everything))
        self.item_bias.add_(tables.bias_rows(everything))
        tables.folded.fill_(True)

    @property
    def input_table(self) -> nn.Parameter:
        """The table whose row `i` is how item `i` enters the first layer."""
        if self.mode == "shared":
            return self.item_weights
        if self.mode == "separate":
            assert self.embedding is not None
            return self.embedding
        first: GRULayer = self.layers[0]  # type: ignore[assignment]
        return first.w_input

    def initial_hidden(self, batch: int) -> Hidden:
        return [torch.zeros(batch, size) for size in self.sizes]

    def encode(
        self,
        rows: torch.Tensor,
        hidden: Hidden,
        embed_mask: torch.Tensor | None = None,
        hidden_masks: list[torch.Tensor] | None = None,
        extra_gates: torch.Tensor | None = None,
    ) -> Hidden:
        """Advance every layer one step from the input rows [B, In] of `input_table`.

        The masks are inverted-dropout multipliers (training only): `embed_mask` [B, In] (or
        [B, 1] for one-hot input: dropping the single active input unit drops the whole row);
        `hidden_masks[l]` [B, H_l]. A layer's dropped-out output is both the next layer's input
        and the state it carries to the next event. `extra_gates` [B, 3H_0] is added to the
        first layer's input gates (HGRU4Rec feeds its user state in there).
        """
        if embed_mask is not None:
            rows = rows * embed_mask
        out: Hidden = []
        x = rows
        for index, layer in enumerate(self.layers):
            assert isinstance(layer, GRULayer)
            onehot = index == 0 and self.mode == "onehot"  # rows already are one-hot @ w_input
            gates = x + layer.bias if onehot else layer.input_gates(x)  # [B, 3H]
            if index == 0 and extra_gates is not None:
                gates = gates + extra_gates
            h = layer(gates, hidden[index])  # [B, H_l]
            if hidden_masks is not None:
                h = h * hidden_masks[index]
            out.append(h)
            x = h
        return out

    @staticmethod
    def logits(h: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Scores [B, C] of the C item columns whose rows are weights [C, H] and bias [C]."""
        return torch.addmm(bias, h, weights.T)

    def score(self, h: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """Scores [B, n_items] (or [B, len(items)]) from the last layer's state h [B, H]."""
        if items is None:
            return self.logits(h, self.item_weights, self.item_bias)
        return self.logits(h, self.item_weights[items], self.item_bias[items])
