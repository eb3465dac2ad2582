"""SR-GNN's network: gated graph propagation, then an attention readout, then every item.

For node states h [B, n, H] of a batch of session graphs, one propagation step is
    a_in  = incoming @ (h W_in + b_in) + c_in        messages from predecessors
    a_out = outgoing @ (h W_out + b_out) + c_out     messages from successors
    h'    = GRU-style gate of [a_in; a_out] against h
The session's clicks read their nodes back in order (s_1 .. s_t, s_t the last click); the
global interest is s_g = sum_i alpha_i s_i with alpha_i = q . sigmoid(W_1 s_t + W_2 s_i + c),
and the session vector is W_3 [s_g; s_t] (the "hybrid" of the paper) or s_g alone. An item's
score is the dot product of the session vector with the item's embedding, or with `scale` > 0
their scaled cosine, the item rows normalised also where the graph reads them (NISER).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nextbest.models.normalised import ItemTable
from nextbest.models.srgnn.graph import SessionGraphs


class SRGNNNet(nn.Module):
    def __init__(
        self, n_items: int, hidden: int, steps: int, hybrid: bool, scale: float = 0.0
    ) -> None:
        super().__init__()
        self.steps, self.hybrid = steps, hybrid
        self.items = ItemTable(n_items, hidden, scale)
        self.edge_in = nn.Linear(hidden, hidden)
        self.edge_out = nn.Linear(hidden, hidden)
        self.message_bias_in = nn.Parameter(torch.empty(hidden))
        self.message_bias_out = nn.Parameter(torch.empty(hidden))
        self.gate_messages = nn.Linear(2 * hidden, 3 * hidden)
        self.gate_state = nn.Linear(hidden, 3 * hidden)
        self.attend_last = nn.Linear(hidden, hidden)
        self.attend_click = nn.Linear(hidden, hidden)
        self.attend_weight = nn.Linear(hidden, 1, bias=False)
        self.combine = nn.Linear(2 * hidden, hidden)
        # the paper: every parameter uniform in [-1/sqrt(H), 1/sqrt(H)]
        bound = 1.0 / math.sqrt(hidden)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def propagate(self, h: torch.Tensor, graphs: SessionGraphs) -> torch.Tensor:
        """One gated step over the graphs: node states [B, n, H] -> [B, n, H]."""
        from_in = torch.bmm(graphs.incoming, self.edge_in(h)) + self.message_bias_in
        from_out = torch.bmm(graphs.outgoing, self.edge_out(h)) + self.message_bias_out
        m_reset, m_update, m_new = self.gate_messages(torch.cat([from_in, from_out], 2)).chunk(3, 2)
        h_reset, h_update, h_new = self.gate_state(h).chunk(3, 2)
        reset = torch.sigmoid(m_reset + h_reset)
        update = torch.sigmoid(m_update + h_update)
        candidate = torch.tanh(m_new + reset * h_new)
        return candidate + update * (h - candidate)

    def session_vectors(
        self, graphs: SessionGraphs, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[B, H]: each session's vector, to be dotted with the item embeddings (`table`: the
        item table's rows for this step, when the caller has them)."""
        h = (self.items.table() if table is None else table)[graphs.nodes]  # [B, n, H]
        for _ in range(self.steps):
            h = self.propagate(h, graphs)
        clicks = torch.gather(h, 1, graphs.alias.unsqueeze(2).expand(-1, -1, h.shape[2]))
        last = clicks[torch.arange(len(clicks)), graphs.lengths - 1]  # [B, H]
        weight = self.attend_weight(
            torch.sigmoid(self.attend_last(last).unsqueeze(1) + self.attend_click(clicks))
        )  # [B, T, 1]
        weight = weight * graphs.mask.unsqueeze(2)
        global_interest: torch.Tensor = (weight * clicks).sum(dim=1)  # [B, H]
        if not self.hybrid:
            return global_interest
        combined: torch.Tensor = self.combine(torch.cat([global_interest, last], dim=1))
        return combined

    def scores(self, vectors: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """[B, n_items] scores of every item for session vectors [B, H]."""
        return self.items.scores(vectors, table)
