"""Items never to show: bought (in the session or by the user), the item on screen, what is in
the cart, what is out of stock. Each is a switch of the placement."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context


@dataclass(frozen=True)
class Exclusions:
    bought: bool = True
    on_screen: bool = True
    in_cart: bool = True
    out_of_stock: bool = True

    def _listed(self, ctx: Context) -> np.ndarray:
        """The banned rows the shopper's own list names (bought, on screen, in the cart): a
        few, where out-of-stock rows may be thousands (tested per row by `in_stock`)."""
        parts = []
        if self.bought:
            parts.append(ctx.bought_rows)
        if self.on_screen and ctx.screen_row is not None:
            parts.append(np.array([ctx.screen_row], dtype=np.int64))
        if self.in_cart:
            parts.append(ctx.cart_rows)
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def apply(self, ctx: Context, candidates: Candidates) -> Candidates:
        if not len(candidates):
            return candidates
        rows = candidates.rows
        listed = self._listed(ctx)
        drop = np.isin(rows, listed) if len(listed) else np.zeros(len(rows), bool)
        if self.out_of_stock:
            drop |= ~ctx.items.in_stock[rows]
        return candidates.take(~drop) if drop.any() else candidates
