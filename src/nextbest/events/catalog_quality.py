"""What a catalog feed lacks: missing values, impossible values, attributes that never vary.

    report = check_file(Path("items.csv"), known_categories=read_categories(...))
    report = check_items(catalog.items(100_000))      # the server's catalog, already valid

A shop should tag its 4-6 most meaningful attributes on every item (category, brand, price,
discount and a couple of its own); the attribute-aware models, the affinity profiles and the
attribute strategies only see what is there. The report says, per key attribute and per free
attribute key, the share of items without a value, lists the rows whose values are impossible
(by row and column), and names attributes that have a single
value over the whole catalog (they tell the models nothing).

Rows are numbered from 1 for the first item (line 2 of a CSV file, after its header).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from nextbest.events.schema import (
    CATEGORY_SEPARATOR,
    ITEM_SCHEMA,
    MAX_CATEGORY_DEPTH,
    MAX_CONTEXT_KEY_LENGTH,
    MAX_CONTEXT_KEYS,
    MAX_ID_LENGTH,
    Item,
    attribute_type_message,
    conform_items,
    is_attribute_value,
)

KEY_ATTRIBUTES = ("title", "category_path", "brand", "price", "discount")
LISTED_PROBLEMS = 50  # rows named in a report; the counts cover every row
WELL_TAGGED = 0.95  # an attribute on fewer items than this is flagged
TRUE_TEXTS, FALSE_TEXTS = {"true", "1", "yes"}, {"false", "0", "no"}


@dataclass(frozen=True)
class RowProblem:
    row: int  # 1 = the first item
    column: str  # "price", "attributes.colour", ...
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.message}"


@dataclass
class CatalogReport:
    items: int = 0
    missing: dict[str, float] = field(default_factory=dict)  # key attribute -> share without
    # free key -> {"share": of all items, "share_where_used": of the items of the categories
    # where some item has it (a shoe size is for shoes), "categories": how many those are}
    attributes: dict[str, dict[str, float]] = field(default_factory=dict)
    attributes_per_item: float = 0.0  # free attributes with a value, on average
    constant: dict[str, object] = field(default_factory=dict)  # attribute -> its only value
    problems: list[RowProblem] = field(default_factory=list)  # the first LISTED_PROBLEMS
    problem_counts: dict[str, int] = field(default_factory=dict)  # column -> rows with one
    unknown_columns: list[str] = field(default_factory=list)  # the engine never reads them
    bad_rows: set[int] = field(default_factory=set)  # every row with a problem (not listed)

    @property
    def n_problems(self) -> int:
        return sum(self.problem_counts.values())

    def advice(self) -> list[str]:
        """What the shop should do about it, most important first."""
        out = []
        if self.n_problems:
            columns = ", ".join(sorted(self.problem_counts))
            out.append(f"fix {self.n_problems:,} impossible value(s) (in {columns})")
        thin = [name for name, share in self.missing.items() if share > 1 - WELL_TAGGED]
        if thin:
            out.append("tag every item with " + ", ".join(thin))
        patchy = [
            f"{key} ({use['share_where_used']:.0%})"
            for key, use in self.attributes.items()
            if use["share_where_used"] < WELL_TAGGED
        ]
        if patchy:
            out.append(
                "tag every item of the categories that use them with "
                + ", ".join(patchy)
                + " (share of those categories' items that have it)"
            )
        if self.items and self.attributes_per_item < 2:
            out.append(
                "add 2-3 attributes of your own (colour, material, size...) to every item: "
                f"an item has {self.attributes_per_item:.1f} on average"
            )
        if self.unknown_columns:
            out.append(
                "columns the engine does not read (misspelt? free attributes go in the "
                "attributes JSON): " + ", ".join(self.unknown_columns)
            )
        if self.constant:
            out.append(
                "attributes with one value tell the models nothing: " + ", ".join(self.constant)
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "missing": self.missing,
            "attributes": self.attributes,
            "attributes_per_item": self.attributes_per_item,
            "constant": self.constant,
            "problems": [
                {"row": p.row, "column": p.column, "message": p.message} for p in self.problems
            ],
            "problem_counts": self.problem_counts,
            "unknown_columns": self.unknown_columns,
            "advice": self.advice(),
        }


class _Checker:
    """Accumulates a report row by row (every row is checked; only the first are listed)."""

    def __init__(self, known_categories: set[str] | None) -> None:
        self.known = known_categories
        self.report = CatalogReport()
        self.filled: Counter[str] = Counter()
        self.values: dict[str, set[str]] = defaultdict(set)  # capped at 2 distinct per column
        self.seen_ids: set[str] = set()
        self.category_items: Counter[str] = Counter()  # category path -> items
        self.attribute_categories: dict[str, set[str]] = defaultdict(set)
        self.category = ""  # of the row being checked

    def problem(self, row: int, column: str, message: str) -> None:
        report = self.report
        report.bad_rows.add(row)
        report.problem_counts[column] = report.problem_counts.get(column, 0) + 1
        if len(report.problems) < LISTED_PROBLEMS:
            report.problems.append(RowProblem(row, column, message))

    def note(self, column: str, value: object) -> None:
        self.filled[column] += 1
        seen = self.values[column]
        if len(seen) < 2:
            seen.add(json.dumps(value, sort_keys=True))

    def row(self, number: int, row: Mapping[str, Any]) -> None:
        """Check one row of texts (a file) or of typed values (a stored item)."""
        self.report.items += 1
        item_id = _text(row.get("item_id"))
        if not item_id:
            self.problem(number, "item_id", "no item id")
        elif len(item_id) > MAX_ID_LENGTH:
            self.problem(number, "item_id", f"longer than {MAX_ID_LENGTH} characters")
        elif item_id in self.seen_ids:
            self.problem(number, "item_id", f"{item_id!r} repeats an earlier row")
        else:
            self.seen_ids.add(item_id)
        if _text(row.get("title")):
            self.filled["title"] += 1
        self.category = self._category(number, row.get("category_path"))
        self.category_items[self.category] += 1
        brand = _text(row.get("brand"))
        if brand:
            self.note("brand", brand)
        price = self._number(number, "price", row.get("price"))
        if price is not None:
            if price < 0:
                self.problem(number, "price", f"negative price {price:g}")
            else:
                self.note("price", price)
        discount = self._number(number, "discount", row.get("discount"))
        if discount is not None:
            if not 0 <= discount <= 1:
                hint = (
                    f" (a fraction: {discount:g}% is {discount / 100:g})"
                    if 1 < discount <= 100
                    else ""
                )
                self.problem(number, "discount", f"{discount:g} is outside 0..1{hint}")
            else:
                self.note("discount", discount)
        self._in_stock(number, row.get("in_stock"))
        self._attributes(number, row.get("attributes"))

    def _category(self, number: int, value: object) -> str:
        """The row's category path ("" if none or bad), problems noted."""
        if isinstance(value, (tuple, list)):
            parts = [str(part) for part in value]
        else:
            text = _text(value)
            parts = (
                [part.strip() for part in text.split(CATEGORY_SEPARATOR.strip())] if text else []
            )
        if not parts:
            return ""
        path = CATEGORY_SEPARATOR.join(parts)
        if any(not part for part in parts):
            self.problem(number, "category_path", f"{path!r} has an empty level")
        elif len(parts) > MAX_CATEGORY_DEPTH:
            self.problem(number, "category_path", f"deeper than {MAX_CATEGORY_DEPTH} levels")
        elif self.known is not None and path not in self.known:
            self.problem(number, "category_path", f"unknown category {path!r}")
        else:
            self.note("category_path", path)
            return path
        return ""

    def _number(self, number: int, column: str, value: object) -> float | None:
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            self.problem(number, column, f"{value!r} is not a number")
            return None
        try:
            parsed = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            self.problem(number, column, f"{value!r} is not a number")
            return None
        if not math.isfinite(parsed):
            self.problem(number, column, f"{value!r} is not a finite number")
            return None
        return parsed

    def _in_stock(self, number: int, value: object) -> None:
        if value is None or value == "" or isinstance(value, bool):
            return
        if str(value).strip().lower() not in TRUE_TEXTS | FALSE_TEXTS:
            self.problem(number, "in_stock", f"{value!r} is not true or false")

    def _attributes(self, number: int, value: object) -> None:
        if value is None or value == "":
            return
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                self.problem(number, "attributes", f"not JSON ({exc.msg} at {exc.pos})")
                return
        if not isinstance(value, dict):
            self.problem(number, "attributes", "not a JSON object of attribute: value")
            return
        if len(value) > MAX_CONTEXT_KEYS:
            self.problem(number, "attributes", f"more than {MAX_CONTEXT_KEYS} attributes")
        for key, attribute in value.items():
            column = f"attributes.{key}"
            if not key or len(key) > MAX_CONTEXT_KEY_LENGTH:
                self.problem(number, column, f"names must be 1-{MAX_CONTEXT_KEY_LENGTH} characters")
            elif not is_attribute_value(attribute):
                self.problem(number, column, attribute_type_message(attribute))
            elif attribute is not None and attribute != "" and attribute != []:
                self.note(column, attribute)
                self.attribute_categories[column].add(self.category)

    def finish(self) -> CatalogReport:
        report, n = self.report, max(self.report.items, 1)
        report.missing = {name: round(1 - self.filled[name] / n, 4) for name in KEY_ATTRIBUTES}
        free = sorted(k for k in self.filled if k.startswith("attributes."))
        for key in free:
            used_in = self.attribute_categories[key]
            where = sum(self.category_items[c] for c in used_in)
            report.attributes[key.removeprefix("attributes.")] = {
                "share": round(self.filled[key] / n, 4),
                "share_where_used": round(self.filled[key] / max(where, 1), 4),
                "categories": len(used_in),
            }
        report.attributes_per_item = round(sum(self.filled[key] for key in free) / n, 2)
        for column, seen in sorted(self.values.items()):
            if column != "title" and len(seen) == 1 and self.filled[column] > 1:
                name = column.removeprefix("attributes.")
                report.constant[name] = json.loads(next(iter(seen)))
        return report


def check_rows(
    rows: Iterable[Mapping[str, Any]], known_categories: set[str] | None = None
) -> CatalogReport:
    checker = _Checker(known_categories)
    for number, row in enumerate(rows, start=1):
        checker.row(number, row)
    return checker.finish()


def check_items(items: Iterable[Item], known_categories: set[str] | None = None) -> CatalogReport:
    """The report of stored items (already valid: the report is about what is missing)."""
    return check_rows((item.model_dump() for item in items), known_categories)


def read_text_table(path: Path) -> pl.DataFrame:
    """A catalog file as texts (CSV or TSV) or as stored (Parquet), nothing cast yet."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        if path.suffix in (".csv", ".tsv"):
            separator = "\t" if path.suffix == ".tsv" else ","
            return pl.read_csv(path, separator=separator, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        first_line = str(exc).strip().splitlines()[0]  # the rest are Polars' hints
        raise ValueError(f"cannot read the catalog {path}: {first_line}") from exc
    raise ValueError(f"cannot tell the format of {path.name}: use .csv, .tsv or .parquet")


def check_file(path: Path, known_categories: set[str] | None = None) -> CatalogReport:
    frame = read_text_table(path)
    unknown = [c for c in frame.columns if c not in ITEM_SCHEMA]
    if "item_id" not in frame.columns:
        raise ValueError(
            f"the catalog {path} has no item_id column (it has {', '.join(frame.columns[:8])})"
        )
    report = check_rows(frame.iter_rows(named=True), known_categories)
    report.unknown_columns = unknown
    return report


def typed_items(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """A catalog read as texts, checked row by row and cast to ITEM_SCHEMA. ValueError names
    the first bad rows by row and column (and how many there are in all)."""
    if "item_id" not in frame.columns:
        raise ValueError(f"{source} has no item_id column (it has {', '.join(frame.columns[:8])})")
    report = check_rows(frame.iter_rows(named=True))
    if report.n_problems:
        first = "; ".join(str(problem) for problem in report.problems[:5])
        raise ValueError(f"{source} has {report.n_problems:,} bad value(s): {first}")
    return cast_checked_items(frame)


def cast_checked_items(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of texts that `check_rows` passed, cast to ITEM_SCHEMA."""
    # texts as `conform_items` casts them: blank is missing, in_stock's words are flags
    texts = [c for c in frame.columns if c in ITEM_SCHEMA and frame[c].dtype == pl.String]
    normalised = frame.with_columns(
        pl.col(texts).str.strip_chars().replace("", None),
    )
    if "in_stock" in texts:
        normalised = normalised.with_columns(
            pl.col("in_stock").str.to_lowercase().is_in(list(TRUE_TEXTS)).fill_null(True)
            .alias("in_stock")
        )  # fmt: skip
    return conform_items(normalised)


def read_categories(path: Path) -> set[str]:
    """Known category paths: the first column of a TSV/CSV with a header (the demo shop's
    categories.tsv), or one path per line of a .txt."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix in (".tsv", ".csv"):
        separator = "\t" if path.suffix == ".tsv" else ","
        lines = [line.split(separator)[0].strip().strip('"') for line in lines[1:]]
    return {line for line in lines if line}


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()
