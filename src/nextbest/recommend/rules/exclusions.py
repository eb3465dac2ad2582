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

    def banned(self, ctx: Context) -> np.ndarray:
        parts = []
        if self.bought:
            parts.append(ctx.bought_rows)
        if self.on_screen and ctx.screen_row is not None:
            parts.append(np.array([ctx.screen_row], dtype=np.int64))
        if self.in_cart:
            parts.append(ctx.cart_rows)
        if self.out_of_stock:
            parts.append(ctx.items.out_of_stock_rows)
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def apply(self, ctx: Context, candidates: Candidates) -> Candidates:
        banned = self.banned(ctx)
        if not len(banned) or not len(candidates):
            return candidates
        return candidates.take(~np.isin(candidates.rows, banned))
