"""The self-attentive network, with two ways through it that give the same numbers:

* `forward`: a whole batch of sequences at once (training, and the check in the tests);
* `step`: one new click per session against cached keys and values of the clicks before it,
  one position of work per event (serving and evaluation).

Blocks are pre-norm (x + attention(norm(x)), then x + feed(norm(x))), with a final norm, as in
the public SASRec implementations. Position i attends to positions i - max_length + 1 .. i, and
learned position vectors stop at max_length - 1 (later clicks share the last one), so a session
longer than the window still steps in O(window) per event and both paths agree at any length.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from nextbest.models.normalised import ItemTable


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm_attend = nn.LayerNorm(hidden)
        self.project = nn.Linear(hidden, 3 * hidden)  # query, key, value side by side
        self.output = nn.Linear(hidden, hidden)
        self.norm_feed = nn.LayerNorm(hidden)
        self.feed_in = nn.Linear(hidden, hidden)
        self.feed_out = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, H] -> [B, heads, T, H / heads]."""
        batch, width, hidden = x.shape
        return x.view(batch, width, self.heads, hidden // self.heads).transpose(1, 2)

    def queries_keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Each [B, T, H], from the block's input x [B, T, H]."""
        return tuple(self.project(self.norm_attend(x)).chunk(3, dim=2))

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The residual of the attention [B, heads, T, d], then the feed-forward's."""
        merged = attended.transpose(1, 2).reshape(x.shape)
        x = x + self.dropout(self.output(merged))
        feed = self.feed_out(self.dropout(F.relu(self.feed_in(self.norm_feed(x)))))
        out: torch.Tensor = x + self.dropout(feed)
        return out

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.split_heads(part) for part in self.queries_keys_values(x))
        p = self.dropout.p if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        return self.finish(x, attended)


class SASRecNet(nn.Module):
    def __init__(
        self,
        n_items: int,
        hidden: int,
        blocks: int,
        heads: int,
        dropout: float,
        max_length: int,
        scale: float = 0.0,
    ) -> None:
        super().__init__()
        self.max_length = max_length
        self.items = ItemTable(n_items, hidden, scale)
        self.positions = nn.Embedding(max_length, hidden)
        self.blocks = nn.ModuleList(Block(hidden, heads, dropout) for _ in range(blocks))
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        self.scale = math.sqrt(hidden)
        nn.init.normal_(self.items.embedding.weight, std=1.0 / math.sqrt(hidden))
        nn.init.normal_(self.positions.weight, std=1.0 / math.sqrt(hidden))

    def embed(
        self, items: torch.Tensor, positions: torch.Tensor, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        clipped = positions.clamp(max=self.max_length - 1)
        rows = (self.items.table() if table is None else table)[items]
        embedded: torch.Tensor = self.dropout(rows * self.scale + self.positions(clipped))
        return embedded

    def forward(self, items: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Output vectors [B, T, H] of sequences [B, T] (left-aligned; a padded position
        only ever attends to earlier positions, so padding changes no real output); `table`:
        the item table's rows for this step, when the caller has them."""
        width = items.shape[1]
        at = torch.arange(width)
        gap = at.unsqueeze(1) - at.unsqueeze(0)  # [T, T] query - key
        allowed = (gap >= 0) & (gap < self.max_length)
        x = self.embed(items, at.unsqueeze(0), table)
        for block in self.blocks:
            x = block(x, allowed)
        out: torch.Tensor = self.norm(x)
        return out

    def step(
        self, items: torch.Tensor, counts: torch.Tensor, cache: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One click per session: items [B] at positions `counts` [B], with `cache`
        [B, blocks, 2, t, H] the keys and values of (at most max_length - 1) earlier clicks.
        Returns the new output vectors [B, H] and the new cache."""
        x = self.embed(items.unsqueeze(1), counts.unsqueeze(1))  # [B, 1, H]
        kept = []
        for layer, module in enumerate(self.blocks):
            block = cast(Block, module)
            q, k, v = block.queries_keys_values(x)  # [B, 1, H] each
            keys = torch.cat([cache[:, layer, 0], k], dim=1)  # [B, t + 1, H]
            values = torch.cat([cache[:, layer, 1], v], dim=1)
            attended = F.scaled_dot_product_attention(
                block.split_heads(q), block.split_heads(keys), block.split_heads(values)
            )
            x = block.finish(x, attended)
            start = max(0, keys.shape[1] - (self.max_length - 1))  # the next click's window
            kept.append(torch.stack([keys, values], dim=1)[:, :, start:])
        return self.norm(x[:, 0]), torch.stack(kept, dim=1)

    def scores(self, vectors: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """[B, n_items] for output vectors [B, H] (dot products, or scaled cosines)."""
        return self.items.scores(vectors, table)
