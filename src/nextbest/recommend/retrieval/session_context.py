"""What goes with the session right now (`source = "context"`): the items others viewed with
the session's items, what is bought with them, and what is popular in the session's current
category now.

Three parts, each scaled to [0, 1] within its own list and weighed:

    COVIEWED * sum over the session's last MAX_ANCHORS items (the one on screen first, then
               the latest), each weighted 1 / (1 + its place), of count / the anchor's top
               count, where count is how often the item came right after it recently
               (`LiveCounts.followers`, the live co-visitation)
    COBOUGHT * the complements generator's score over its best one (`Complements`: the
               categories bought after the on-screen and cart items' and the purchases')
    CATEGORY_POPULAR * log(1 + count) / log(1 + the top count) over the items of the
               anchor's category (`LiveCounts.count_rows`, the recent popularity)

An item found by several parts adds their scores and takes the reason of the part that gave
it most: "often viewed with TITLE", the complement's reason ("goes with TITLE"), or "popular
in CATEGORY now". No session items (and nothing on screen): no candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.recommend.candidates import Candidates, best_first
from nextbest.recommend.context import Context
from nextbest.recommend.retrieval.complements import Complements
from nextbest.recommend.retrieval.trending import found_rows

COVIEWED = 1.0
COBOUGHT = 0.3
CATEGORY_POPULAR = 0.5
MAX_ANCHORS = 3  # the session's latest distinct items whose followers are read


@dataclass(frozen=True)
class SessionContext:
    name: str = "context"

    def generate(self, ctx: Context, k: int) -> Candidates:
        items = ctx.items
        anchors = self.anchors(ctx)
        if not anchors or k <= 0:
            return Candidates.empty()
        # each part: rows, scores, and per entry the index of its reason in `texts`
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        texts: list[str] = []

        def add(rows: np.ndarray, scores: np.ndarray, reason: str | np.ndarray) -> None:
            if isinstance(reason, str):
                which = np.full(len(rows), len(texts))
                texts.append(reason)
            else:  # each distinct text once, numbered in order of first appearance
                index: dict[str, int] = {}
                numbers = [index.setdefault(text, len(index)) for text in reason.tolist()]
                which = np.array(numbers, dtype=np.int64) + len(texts)
                texts.extend(index)
            parts.append((rows, scores, which))

        for place, anchor in enumerate(anchors):
            rows, counts = found_rows(ctx, ctx.live.followers(str(items.ids[anchor]), k, ctx.skip))
            if len(rows):
                scores = COVIEWED / (1 + place) * counts / counts.max()
                add(rows, scores, f"often viewed with {items.title_of(anchor)}")
        bought = Complements().generate(ctx, k)
        if len(bought) and bought.scores.max() > 0:
            add(bought.rows, COBOUGHT * bought.scores / bought.scores.max(), bought.reasons)
        code = int(items.category_code[anchors[0]])
        if code >= 0:
            rows = items.category_rows[code]
            rows = rows[~ctx.hard_banned_mask[rows]]
            counts = ctx.live.count_rows(items)[rows]
            keep = best_first(counts, k)
            keep = keep[counts[keep] > 0]
            if len(keep):
                rows, counts = rows[keep], counts[keep]
                scores = CATEGORY_POPULAR * np.log1p(counts) / np.log1p(counts[0])
                add(rows, scores, f"popular in {items.leaf_of(anchors[0])} now")
        if not parts:
            return Candidates.empty()
        rows = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        which = np.concatenate([p[2] for p in parts])
        unique, inverse = np.unique(rows, return_inverse=True)
        total = np.zeros(len(unique))
        np.add.at(total, inverse, scores)
        # each item's reason: its entry of the highest score
        best = np.lexsort((-scores, inverse))
        first = best[np.searchsorted(inverse[best], np.arange(len(unique)))]
        order = np.argsort(-total, kind="stable")[:k]
        reasons = np.array(texts, dtype=object)[which[first[order]]]
        return Candidates.of(unique[order], total[order], self.name, reasons)

    @staticmethod
    def anchors(ctx: Context) -> list[int]:
        """The item on screen, then the session's latest distinct items, MAX_ANCHORS in all."""
        row_of = ctx.items.row_of
        found: dict[int, None] = {}
        for row in (ctx.screen_row, ctx.last_row):
            if row is not None:
                found[row] = None
        for interaction in reversed(ctx.record.recent):
            if len(found) >= MAX_ANCHORS:
                break
            row = row_of.get(interaction.item_id)
            if row is not None:
                found[row] = None
        return list(found)[:MAX_ANCHORS]
