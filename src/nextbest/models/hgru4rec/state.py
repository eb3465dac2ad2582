"""The answering state of HGRU4Rec: a session part that moves per event, a user part per session.

For a batch of B visitors the state is three small arrays:

    session   [B, sum(layers)] float32   the session GRU's layers side by side (as GRU4Rec's)
    user      [B, user_layer]  float32   the user GRU's state after the user's finished sessions
    sessions  [B]              int64     how many of the user's sessions went into `user`

A server keeps `user` and `sessions` per user id (they do not expire with the session) and
`session` per session. Zero `user` and `sessions` = an anonymous visitor or an unknown user,
answered exactly as GRU4Rec answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class HState:
    session: torch.Tensor  # [B, sum(H)]
    user: torch.Tensor  # [B, U]
    sessions: torch.Tensor  # [B] int64

    def __len__(self) -> int:
        return int(self.session.shape[0])

    def select(self, rows: torch.Tensor) -> HState:
        return HState(
            self.session.index_select(0, rows),
            self.user.index_select(0, rows),
            self.sessions.index_select(0, rows),
        )

    def put(self, rows: torch.Tensor, part: HState) -> HState:
        """This state with rows `rows` replaced by `part` (same order)."""
        return HState(
            self.session.index_copy(0, rows, part.session),
            self.user.index_copy(0, rows, part.user),
            self.sessions.index_copy(0, rows, part.sessions),
        )

    @staticmethod
    def concat(parts: list[HState]) -> HState:
        return HState(
            torch.cat([p.session for p in parts]),
            torch.cat([p.user for p in parts]),
            torch.cat([p.sessions for p in parts]),
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain NumPy arrays to store (no pickle needed)."""
        return {
            "session": self.session.numpy().copy(),
            "user": self.user.numpy().copy(),
            "sessions": self.sessions.numpy().copy(),
        }

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray]) -> HState:
        return HState(
            torch.from_numpy(np.asarray(arrays["session"], dtype=np.float32)),
            torch.from_numpy(np.asarray(arrays["user"], dtype=np.float32)),
            torch.from_numpy(np.asarray(arrays["sessions"], dtype=np.int64)),
        )
