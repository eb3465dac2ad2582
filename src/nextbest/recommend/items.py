"""The shop's items as columns: the row space every pipeline stage shares.

Rows `0 .. n_model - 1` are the model's score columns (row == column, so a model's top-k is
already in rows); the catalog's other items (new since training) follow. Each field is one
array over the rows, so a filter or a diversity rule reads a field for a few hundred
candidates with one fancy index. The table is immutable: a catalog change or a model switch
builds a new one (`CatalogCache.table`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from nextbest.events.schema import CATEGORY_SEPARATOR, Item

STRING_FIELDS = ("id", "title", "category", "brand")


@dataclass(frozen=True, eq=False)
class ItemTable:
    ids: np.ndarray  # object [R] item id per row
    row_of: Mapping[str, int]
    n_model: int  # rows below this are the model's score columns
    title: np.ndarray  # object [R] (None: unknown)
    category: np.ndarray  # object [R] full path "A > B > C" (None: unknown)
    brand: np.ndarray  # object [R]
    # int64 [R]: the brand as a number (-1: none); rows compare by brand at numpy's speed
    # (comparing the object column calls Python per row)
    brand_code: np.ndarray
    price: np.ndarray  # float64 [R] (NaN: unknown)
    discount: np.ndarray  # float64 [R] fraction off (NaN: unknown)
    in_stock: np.ndarray  # bool [R]
    attributes: np.ndarray  # object [R] dict or None
    category_code: np.ndarray  # int64 [R] index into `categories`, -1: none
    categories: tuple[str, ...]
    category_rows: Mapping[int, np.ndarray]  # category code -> its rows
    code_of: Mapping[str, int]  # category path -> its code
    # values derived from this table by the stages (a campaign's rows), kept while it lives
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(
        cls, model_items: Sequence[str] | np.ndarray | None, catalog: Mapping[str, Item]
    ) -> ItemTable:
        """The model's items first (in column order), then catalog items the model lacks."""
        model_ids = [str(i) for i in model_items] if model_items is not None else []
        known = set(model_ids)
        ids = model_ids + sorted(i for i in catalog if i not in known)
        items = [catalog.get(i) for i in ids]
        paths = [
            CATEGORY_SEPARATOR.join(it.category_path) if it and it.category_path else None
            for it in items
        ]
        categories = tuple(sorted({p for p in paths if p is not None}))
        code_of = {path: code for code, path in enumerate(categories)}
        codes = np.array([code_of[p] if p is not None else -1 for p in paths], dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(categories) + 1))
        category_rows = {c: order[bounds[c] : bounds[c + 1]] for c in range(len(categories))}

        def column(values: list[object], dtype: type) -> np.ndarray:
            return np.array(values, dtype=dtype) if values else np.zeros(0, dtype)

        nan = float("nan")
        brands: list[object] = [it.brand if it else None for it in items]
        brand_codes: dict[object, int] = {}
        return cls(
            ids=column(list(ids), object),
            row_of={item: row for row, item in enumerate(ids)},
            n_model=len(model_ids),
            title=column([it.title or None if it else None for it in items], object),
            category=column(list(paths), object),
            brand=column(brands, object),
            brand_code=column(
                [brand_codes.setdefault(b, len(brand_codes)) if b else -1 for b in brands],
                np.int64,
            ),
            price=column(
                [it.price if it and it.price is not None else nan for it in items], np.float64
            ),
            discount=column(
                [it.discount if it and it.discount is not None else nan for it in items],
                np.float64,
            ),
            in_stock=column([it.in_stock if it else True for it in items], bool),
            attributes=column([it.attributes or None if it else None for it in items], object),
            category_code=codes,
            categories=categories,
            category_rows=category_rows,
            code_of=code_of,
        )

    # -- the filter language's view (nextbest.recommend.rules.filters.ItemFields) -------------
    def values(self, field: str, rows: np.ndarray) -> np.ndarray:
        if field == "id":
            ids: np.ndarray = self.ids[rows]
            return ids
        if field in ("title", "category", "brand", "price", "discount", "in_stock"):
            array: np.ndarray = getattr(self, field)
            picked: np.ndarray = array[rows]
            return picked
        if field.startswith("attributes."):
            key = field.removeprefix("attributes.")
            return np.array(
                [a.get(key) if a else None for a in self.attributes[rows]], dtype=object
            )
        raise KeyError(f"no item field {field!r}")

    @cached_property
    def out_of_stock_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.in_stock).astype(np.int64)

    # -- for reasons --------------------------------------------------------------------------
    def title_of(self, row: int) -> str:
        title = self.title[row]
        return str(title) if title else str(self.ids[row])

    def leaf_of(self, row: int) -> str | None:
        path = self.category[row]
        return str(path).rsplit(CATEGORY_SEPARATOR, 1)[-1] if path else None

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Rows of the ids this table knows (others are left out), in order."""
        row_of = self.row_of
        return np.array([row_of[i] for i in item_ids if i in row_of], dtype=np.int64)
