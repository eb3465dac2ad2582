"""Item attributes beside GRU4Rec's item ids: what lets a new item score before it is trained.

With `attributes=category,brand,price` an item's row of the output item matrix (and of the
input table) is its id row plus the sum of the rows of its attribute values:

    w_i = w_id[i] + sum_a w_attr[value_a(i)]        b_i = b_id[i] + sum_a b_attr[value_a(i)]

The attribute rows are shared by every item with that value, so they learn from all of them:
an item held out of training (its id row stays zero) still scores by its category, brand and
price band at once, and a rare item borrows from its values. A list-valued free attribute
(`colour = ["red", "blue"]`) splits its weight between its values.

The kinds an `attributes` list may name:
- `category`: the category path's first level, first two levels and full path (three values);
  `category_1`, `category_2` one of them alone;
- `brand`;
- `price`: the price band, the fifth of its category's prices the item falls in (as affinity
  profiles band prices);
- `discount`: none, up to 10%, up to 30%, up to 50%, more;
- any other name: that free attribute of the item (`attributes` JSON of the catalog).

A value carried by fewer than `MIN_ITEMS` catalog items is left out: it would only be a second
id row, trained from the same events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nextbest.events.schema import Item
from nextbest.recommend.affinity import ATTRIBUTES as FACET_KINDS  # what ItemFacets holds
from nextbest.recommend.affinity import ItemFacets

if TYPE_CHECKING:
    from nextbest.models.gru4rec.config import GRU4RecConfig
    from nextbest.models.gru4rec.network import GRU4RecNet

MIN_ITEMS = 2  # a value needs this many catalog items to get a row
MAX_LIST_VALUES = 8  # of a list-valued free attribute, its first values get slots
CATEGORY_LEVELS = ("category_1", "category_2", "category")
# the kinds a config name stands for; other names are themselves (a facet or a free attribute)
ALIASES = {"category": CATEGORY_LEVELS, "price": ("price_band",), "discount": ("discount_band",)}
DISCOUNT_BANDS = ((0.1, "to10"), (0.3, "to30"), (0.5, "to50"))  # upper bounds; above: over50


def expand_kinds(names: Sequence[str]) -> tuple[str, ...]:
    """The attribute kinds behind the names of a config (`category` is three, `price` is
    `price_band`, `discount` is `discount_band`), in order, without repeats."""
    kinds: list[str] = []
    for name in names:
        kinds += [k for k in ALIASES.get(name, (name,)) if k not in kinds]
    return tuple(kinds)


def discount_band(discount: float | None) -> str | None:
    if discount is None:
        return None
    if discount <= 0.0:
        return "none"
    return next((label for bound, label in DISCOUNT_BANDS if discount <= bound), "over50")


@dataclass(frozen=True)
class AttributeIndex:
    """Which attribute rows each item sums: slots [N, S] (0: an empty slot) with weights."""

    values: np.ndarray  # [V] str "kind=value"; row v + 1 of an attribute table is values[v]
    slots: np.ndarray  # [N, S] int64 rows of the attribute tables, 0 for none
    weights: np.ndarray  # [N, S] float32: 1 / (values the item has of that slot's kind)

    @property
    def n_rows(self) -> int:
        """Rows of an attribute table: one per value plus row 0, always zero."""
        return len(self.values) + 1

    def covered(self) -> np.ndarray:
        """[N] bool: which items have at least one attribute value."""
        return np.asarray((self.slots > 0).any(axis=1), dtype=bool)

    @classmethod
    def build(
        cls, item_ids: Sequence[str] | np.ndarray, catalog: Mapping[str, Item], kinds: Sequence[str]
    ) -> AttributeIndex:
        """Index the items of a model's vocabulary (`item_ids`) by their catalog values.

        Items missing from the catalog get no slots; kinds nobody has simply add no rows.
        """
        facets = ItemFacets.build(catalog.values())
        per_item: list[list[tuple[str, list[str]]]] = []
        for item_id in item_ids:
            item = catalog.get(str(item_id))
            per_item.append([] if item is None else _item_values(item, facets, kinds))
        counts = Counter(
            f"{kind}={value}" for values in per_item for kind, vals in values for value in vals
        )
        names = sorted(name for name, n in counts.items() if n >= MIN_ITEMS)
        row_of = {name: row + 1 for row, name in enumerate(names)}
        width = sum(MAX_LIST_VALUES if _free(kind) else 1 for kind in kinds)
        slots = np.zeros((len(per_item), max(width, 1)), dtype=np.int64)
        weights = np.zeros(slots.shape, dtype=np.float32)
        for i, values in enumerate(per_item):
            column = 0
            for kind, vals in values:
                rows = [row_of[f"{kind}={v}"] for v in vals if f"{kind}={v}" in row_of]
                for row in rows:
                    slots[i, column], weights[i, column] = row, 1.0 / len(rows)
                    column += 1
        return cls(np.array(names, dtype=str), slots, weights)


def index_for(
    config: GRU4RecConfig, catalog: Mapping[str, Item] | None, item_ids: np.ndarray
) -> AttributeIndex | None:
    """The attribute index a fit of `config` needs (None with attributes off); a missing
    catalog or attributes no two items share are refused, naming the parameter."""
    if not config.attributes:
        return None
    named = ",".join(config.attributes)
    if catalog is None:
        raise ValueError(
            f"attributes={named} needs the catalog: give the items file (--items FILE), "
            "or call use_catalog(items) before fit"
        )
    index = AttributeIndex.build(item_ids, catalog, expand_kinds(config.attributes))
    if index.n_rows == 1:
        raise ValueError(
            f"no value of attributes={named} is shared by two or more items of the catalog: "
            "nothing to embed"
        )
    return index


@torch.no_grad()
def clear_unseen(net: GRU4RecNet, support: np.ndarray) -> torch.Tensor:
    """Zero the id rows of the items without training events (catalog items new to the
    model): no gradient ever reaches them, so their random start would be all they say."""
    unseen = torch.from_numpy(np.flatnonzero(support == 0))
    if len(unseen):
        net.input_table[unseen] = 0.0
        net.item_weights[unseen] = 0.0
    return unseen


@torch.no_grad()
def settle_unseen(net: GRU4RecNet, unseen: torch.Tensor, index: AttributeIndex | None) -> None:
    """After training: fold the attribute rows into the item tables, then rank the items
    with neither training events nor attribute values below every item with evidence.

    Their zero rows would score 0, above many trained items. The last layer's state is a
    GRU output, in [-1, 1] per unit, so item j scores at least bias_j - |w_j|_1: a bias
    below the least of those bounds ranks them last.
    """
    net.fold_attributes()
    if index is not None and len(unseen):
        unseen = unseen[~torch.from_numpy(index.covered())[unseen]]
    if not len(unseen):
        return
    known = torch.ones(net.item_bias.shape[0], dtype=torch.bool)
    known[unseen] = False
    if bool(known.any()):
        lowest = net.item_bias[known] - net.item_weights[known].abs().sum(dim=1)
        net.item_bias[unseen] = float(lowest.min()) - 1.0


def _free(kind: str) -> bool:
    return kind not in FACET_KINDS and kind != "discount_band"


def _item_values(
    item: Item, facets: ItemFacets, kinds: Sequence[str]
) -> list[tuple[str, list[str]]]:
    """(kind, values) of one item for the kinds asked for; a kind without a value is left out."""
    known = facets.get(item.item_id)
    out: list[tuple[str, list[str]]] = []
    for kind in kinds:
        if kind in FACET_KINDS:
            value = None if known is None else known.values[FACET_KINDS.index(kind)]
            values = [] if value is None else [value]
        elif kind == "discount_band":
            band = discount_band(item.discount if item.price is not None else None)
            values = [] if band is None else [band]
        else:
            raw = item.attributes.get(kind)
            listed = raw if isinstance(raw, list) else [raw]
            values = [str(v) for v in listed if v is not None and str(v) != ""]
            values = list(dict.fromkeys(values))[:MAX_LIST_VALUES]
        if values:
            out.append((kind, values))
    return out


class AttributeTables(nn.Module):
    """The attribute rows of the output item matrix, its bias and (unless the input is the
    output matrix itself) the input table, with each item's slots.

    Training adds `output_rows(items)` etc. to the gathered id rows; at the end of a fit the
    sums are folded into the id tables once (`GRU4RecNet.fold_attributes`), so serving and
    evaluation score exactly as an id-only GRU4Rec does, at the same cost.
    """

    slots: torch.Tensor  # [N, S] buffers, saved with the model
    weights: torch.Tensor
    folded: torch.Tensor  # () bool: already added into the id tables

    def __init__(
        self, index: AttributeIndex, width: int, input_width: int | None, rate: float
    ) -> None:
        """`rate` multiplies every attribute row where it enters (see `GRU4RecConfig.
        attribute_rate`): Adagrad steps every parameter alike, so it is their learning rate
        relative to the id rows'."""
        super().__init__()
        self.rate = rate
        self.register_buffer("slots", torch.from_numpy(np.ascontiguousarray(index.slots)))
        self.register_buffer("weights", torch.from_numpy(np.ascontiguousarray(index.weights)))
        self.register_buffer("folded", torch.zeros((), dtype=torch.bool))
        # Zero at the start: the network begins as the id-only one, and the attribute rows
        # grow from the gradients of all the items that share them.
        self.output = nn.Parameter(torch.zeros(index.n_rows, width))  # [V + 1, H_last]
        self.bias = nn.Parameter(torch.zeros(index.n_rows, 1))  # [V + 1, 1]
        self.input: nn.Parameter | None = None
        if input_width is not None:
            self.input = nn.Parameter(torch.zeros(index.n_rows, input_width))  # [V + 1, In]

    def _sum(self, table: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        slots, weights = self.slots.index_select(0, items), self.weights.index_select(0, items)
        return F.embedding_bag(slots, table, per_sample_weights=weights * self.rate, mode="sum")

    def output_rows(self, items: torch.Tensor) -> torch.Tensor:
        return self._sum(self.output, items)  # [B, H_last]

    def bias_rows(self, items: torch.Tensor) -> torch.Tensor:
        return self._sum(self.bias, items).squeeze(1)  # [B]

    def input_rows(self, items: torch.Tensor) -> torch.Tensor:
        return self._sum(self.output if self.input is None else self.input, items)  # [B, In]
