"""The next-item test cases of the GNN papers (SR-GNN and successors): one case per line.

Two layouts, told apart by the number of tab-separated fields on the first line, no header:

* diginetica: `prefix<TAB>target`
* retailrocket: `user<TAB>prefix<TAB>target<TAB>time`

`prefix` is the session so far, space-separated item ids in time order; `target` is the item
that came next. These are evaluation cases, not events, so they are returned as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from nextbest.events.importers._rows import (
    LINE,
    TEXT,
    RowFilter,
    blank,
    field_count,
    non_empty,
    number,
)
from nextbest.events.importers._text import iter_lines, split_fields
from nextbest.events.importers.report import ImportReport, OnError

_LAYOUTS = {2: {"prefix": 0, "target": 1}, 4: {"user": 0, "prefix": 1, "target": 2, "time": 3}}


@dataclass(frozen=True)
class PrefixTargetCases:
    """Evaluation cases: predict `targets[i]` after the items `prefixes[i]`."""

    prefixes: list[list[str]]
    targets: list[str]
    users: list[str | None] | None  # the retailrocket layout only; None = anonymous
    times: npt.NDArray[np.float64] | None  # the retailrocket layout only: Unix time of the case
    report: ImportReport

    def __len__(self) -> int:
        return len(self.targets)


def _bad_prefix() -> pl.Expr:
    """A prefix whose ids are not separated by exactly one space (an empty id)."""
    items = pl.col("prefix").str.split(" ", literal=True)
    return pl.when(items.list.eval(pl.element() == "").list.any()).then(
        pl.concat_str(
            [pl.lit("column 'prefix' has an empty item id: '"), pl.col("prefix"), pl.lit("'")]
        )
    )


def import_prefix_target(path: str | Path, *, on_error: OnError = "raise") -> PrefixTargetCases:
    """Read a `test_prefix_target.tsv` file in either layout."""
    path = Path(path)
    rows = RowFilter(path, on_error)
    fields: dict[str, int] | None = None
    parts = []
    for lines in iter_lines(path, rows):
        if fields is None and lines.height:
            n_first = lines[TEXT][0].count("\t") + 1
            if n_first not in _LAYOUTS:
                raise rows.error(
                    lines[LINE][0], f"expected 2 or 4 tab-separated fields, found {n_first}"
                )
            fields = _LAYOUTS[n_first]
        if fields is None:
            continue
        table = split_fields(lines, fields, rows, "\t")
        checks = [field_count(len(fields)), non_empty("prefix", "prefix"), _bad_prefix()]
        checks.append(non_empty("target", "target"))
        if "time" in fields:
            checks.append(number("time", "time"))
        parts.append(rows.keep(table, checks))
    if fields is None or not parts:
        return PrefixTargetCases([], [], None, None, rows.report())
    cases = pl.concat(parts)
    users = times = None
    if "user" in fields:
        user = pl.when(blank("user")).then(None).otherwise(pl.col("user"))
        users = cases.select(user.alias("user"))["user"].to_list()
        times = cases["time"].cast(pl.Float64).to_numpy()
    return PrefixTargetCases(
        prefixes=cases["prefix"].str.split(" ").to_list(),
        targets=cases["target"].to_list(),
        users=users,
        times=times,
        report=rows.report(),
    )
