"""The HGRU4Rec network: GRU4Rec's session network plus a user GRU over sessions.

`HGRU4RecNet` *is* a `GRU4RecNet` (same parameters, same names, initialised from the same seed
exactly as GRU4Rec's), with the user level added on top:

    h_user' = GRU_user(h_session_final, h_user)                 once per finished session
    h_session_0 = tanh(h_user' W_init + b_init)                 a returning user's new session
    gates_0 += h_user W_prop               (user_propagation="all": every session step)
    out = h_last + h_user W_out            (user_to_output)     scores = out @ items.T + bias

Every user term is a product with h_user, so a zero user state (an anonymous session, an
unknown user, a user's first session) leaves the session path exactly GRU4Rec's.
"""

from __future__ import annotations

import torch
from torch import nn

from nextbest.models.gru4rec.attributes import AttributeIndex
from nextbest.models.gru4rec.network import GRU4RecNet, GRULayer, Hidden, glorot_
from nextbest.models.hgru4rec.config import HGRU4RecConfig

USER_SEED_OFFSET = 7919  # the user level draws from its own stream: session init = GRU4Rec's


class HGRU4RecNet(GRU4RecNet):
    def __init__(
        self, n_items: int, config: HGRU4RecConfig, attributes: AttributeIndex | None = None
    ) -> None:
        super().__init__(n_items, config.session_config(), attributes)
        generator = torch.Generator().manual_seed(config.seed + USER_SEED_OFFSET)
        last, users = config.layers[-1], config.user_layer
        self.user_gru = GRULayer(last, users, generator)  # input: a session's final state
        self.w_init = nn.Parameter(torch.empty(users, sum(config.layers)))  # [U, sum(H)]
        self.b_init = nn.Parameter(torch.zeros(sum(config.layers)))  # [sum(H)]
        glorot_(self.w_init, 1, generator)
        self.w_propagate: nn.Parameter | None = None
        if config.user_propagation == "all":
            self.w_propagate = nn.Parameter(torch.empty(users, 3 * config.layers[0]))  # [U, 3H0]
            glorot_(self.w_propagate, 3, generator)
        self.w_output: nn.Parameter | None = None
        if config.user_to_output:
            self.w_output = nn.Parameter(torch.empty(users, last))  # [U, H_last]
            glorot_(self.w_output, 1, generator)

    def user_step(self, final: torch.Tensor, user: torch.Tensor) -> torch.Tensor:
        """The user state [B, U] after a session whose final last-layer state is [B, H_last]."""
        gru: GRULayer = self.user_gru
        user_next: torch.Tensor = gru(gru.input_gates(final), user)
        return user_next

    def session_init(self, user: torch.Tensor) -> Hidden:
        """A returning user's new session state, per layer, from the user state [B, U]."""
        start = torch.tanh(torch.addmm(self.b_init, user, self.w_init))  # [B, sum(H)]
        return list(torch.split(start, list(self.sizes), dim=1))

    def user_gates(self, user: torch.Tensor) -> torch.Tensor | None:
        """[B, 3H0] the user's term in the first session layer's gates, or None ("init")."""
        return None if self.w_propagate is None else user @ self.w_propagate

    def output(self, last: torch.Tensor, user: torch.Tensor) -> torch.Tensor:
        """[B, H_last] what is scored against the items: the session's last layer (+ user)."""
        return last if self.w_output is None else last + user @ self.w_output

    def gru4rec_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters of the session path, under GRU4RecNet's names."""
        session = {"item_weights", "item_bias", "embedding", "layers"}
        return {k: v for k, v in self.state_dict().items() if k.split(".")[0] in session}
