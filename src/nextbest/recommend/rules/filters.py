"""Filters: business rules that decide which candidate items a recommendation may show.

A filter is one line of text::

    EXCLUDE WHERE interaction.type = "purchase" AND interaction.age < 30d
    INCLUDE WHERE item.in_stock AND item.price <= $max_price AND item.brand IN $brands
    INCLUDE WHERE item.category STARTS WITH "Sports > " AND NOT item.discount IS NULL
    EXCLUDE WHERE item.attributes.color IN ("red", "pink") OR item.price > 500

``INCLUDE WHERE condition`` keeps the items for which the condition is true and drops the rest;
``EXCLUDE WHERE condition`` drops the items for which it is true and keeps the rest. Keywords
(INCLUDE, EXCLUDE, WHERE, AND, OR, NOT, IN, STARTS WITH, IS, NULL, true, false) may be written in
any case; field names may not.

Conditions
----------
* ``a = b``, ``a != b``: strings, numbers or booleans. ``a < b``, ``a <= b``, ``a > b``,
  ``a >= b``: numbers only. One side must be a field; the other a field, a value or a parameter.
* ``field IN ("a", "b")``, ``field IN $list``, ``field NOT IN ...``: equal to one of the values.
* ``field STARTS WITH "prefix"`` or ``STARTS WITH $prefix``: strings only (case-sensitive).
* ``field IS NULL``, ``field IS NOT NULL``: the field has no value.
* a boolean field on its own, e.g. ``item.in_stock``, is a condition.
* ``NOT c``, ``c AND d``, ``c OR d`` and parentheses. NOT binds tightest, then AND, then OR, so
  ``NOT a AND b OR c`` is ``((NOT a) AND b) OR c``; ``NOT item.x IS NULL`` is
  ``NOT (item.x IS NULL)``.

Values
------
* strings in double or single quotes; a backslash escapes the next character (``\\n``, ``\\t``
  and ``\\r`` are a newline, a tab and a carriage return).
* numbers: ``5``, ``-2``, ``0.25`` (no exponents). Numbers are compared as 64-bit floats.
* durations, which are numbers of seconds: ``45s``, ``10m``, ``12h``, ``30d``, ``2w``.
* ``true``, ``false``. There is no null value: test for it with IS NULL.
* parameters ``$name`` (letters, digits, underscore), given with each request as JSON values.
  A parameter takes the type of what it is compared with: a number, a string, a boolean, or, after
  IN, a list of those. A boolean is not a number. A missing parameter or one of the wrong type
  fails the request; parameters a filter does not use are ignored.

Fields
------
=========================  ==========================================================
``item.id``                string
``item.title``             string
``item.category``          string, the full path: ``"Sports > Fitness > Treadmills"``
``item.brand``             string
``item.price``             number
``item.discount``          number, a fraction from 0 to 1
``item.in_stock``          boolean
``item.attributes.<key>``  the item's attribute ``<key>``, of any type (see below)
``interaction.type``       string: view, click, cart, remove-from-cart, purchase, ...
``interaction.age``        number: seconds from the interaction to now
``interaction.time``       number: when it happened, in unix seconds
``interaction.in_session`` boolean: it belongs to the current session, not earlier history
=========================  ==========================================================

An attribute has no declared type: what it is compared with decides. ``item.attributes.size = 42``
compares numbers, so an item whose size is ``"42"`` (a string) has no size *for this comparison*.
Comparing an attribute with a parameter or another attribute by ``=`` or ``!=`` is an error
(nothing says which type to compare as); use a literal, or ``IN $list``.

Missing values
--------------
As in SQL, a comparison with a missing value (no price, no such attribute, an attribute of another
type, no interaction) is neither true nor false but *unknown*. NOT unknown is unknown; ``x AND y``
is false when either is false, and ``x OR y`` is true when either is true; otherwise unknown
spreads. An item matches only when the whole condition is *true*, so an unknown item is dropped
by INCLUDE and kept by EXCLUDE. ``item.price != 10`` does not match an item without a price;
``item.price != 10 OR item.price IS NULL`` does. ``x IN (...)`` means ``x = a OR x = b ...``,
so an attribute of another type than every listed value is unknown, not false.

Interactions
------------
``interaction.*`` fields are the shopper's own interactions (this session and their history)
*with the candidate item itself*. A filter that uses them is checked once for every interaction
the shopper had with the item, and once more with no interaction at all (every ``interaction.*``
field unknown); the item matches when any of these checks is true. So

    EXCLUDE WHERE interaction.type = "purchase" AND interaction.age < 30d

drops items bought in the last 30 days and keeps items bought earlier, only viewed, or never
seen. To drop items the shopper has *not* interacted with, write the positive condition the
other way round: ``INCLUDE WHERE interaction.type = "view"`` keeps only viewed items, whereas
``EXCLUDE WHERE NOT interaction.type = "view"`` drops nothing that lacks interactions (NOT
unknown is unknown). ``interaction.type IS NULL`` is true for every item (the check without an
interaction). Item and interaction conditions mix freely in one filter.

Limits
------
A filter is at most ``MAX_FILTER_LENGTH`` (2000) characters, nests AND/OR/NOT at most
``MAX_NESTING_DEPTH`` (32) levels deep, holds at most ``MAX_CONDITIONS`` (64) conditions, and a
literal IN list at most ``MAX_IN_LIST_LENGTH`` (256) values. A list parameter holds at most
``MAX_PARAM_LIST_LENGTH`` (10 000) values. Breaking a limit is an error that names it.

For programmers
---------------
``compile_filter(text)`` parses and type-checks once (cached by text) and raises `FilterError`,
whose ``position`` is the 1-based character where the problem is. ``CompiledFilter.bind(params)``
checks the parameters (`ParamError`), and ``keep`` evaluates over NumPy arrays for all
candidates at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat
from types import MappingProxyType
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from nextbest.recommend.rules.filter_grammar import (
    MAX_CONDITIONS,
    MAX_FILTER_LENGTH,
    MAX_IN_LIST_LENGTH,
    MAX_NESTING_DEPTH,
    And,
    Compare,
    Condition,
    Const,
    FieldRef,
    FilterError,
    In,
    IsNull,
    Members,
    Not,
    Operand,
    Or,
    ParamRef,
    ParamUse,
    StartsWith,
    Truthy,
    ValueType,
    parse_filter,
)

__all__ = [
    "MAX_CONDITIONS",
    "MAX_FILTER_LENGTH",
    "MAX_IN_LIST_LENGTH",
    "MAX_NESTING_DEPTH",
    "MAX_PARAM_LIST_LENGTH",
    "BoundFilter",
    "CompiledFilter",
    "FilterError",
    "Interactions",
    "ItemFields",
    "ParamError",
    "compile_filter",
]

MAX_PARAM_LIST_LENGTH = 10_000
"""Values in one list parameter."""

Bools = NDArray[np.bool_]
# A condition's outcome per evaluation: (is true, is false); neither means unknown.
Outcome = tuple[Bools, Bools]
Plan = Callable[["_Context"], Outcome]


class ParamError(ValueError):
    """A request parameter is missing or of the wrong type; str() is a sentence for people."""

    def __init__(self, message: str, param: str) -> None:
        self.param = param
        super().__init__(message)


class ItemFields(Protocol):
    """The shop's item table as the filter reads it.

    `field` is "id", "title", "category", "brand", "price", "discount", "in_stock" or
    "attributes.<key>"; `rows` are int64 rows of the candidates. The result has len(rows)
    values: object arrays of str or None for id/title/category/brand, float64 with NaN for a
    missing price/discount, bool for in_stock, and object arrays of JSON values or None (a
    missing key) for attributes.
    """

    def values(self, field: str, rows: NDArray[np.int64]) -> NDArray[Any]: ...


@dataclass(frozen=True)
class Interactions:
    """The shopper's interactions (session and user history), in any order."""

    rows: NDArray[np.int64]  # item rows, in ItemFields' row space
    types: NDArray[np.object_]  # event type strings
    times: NDArray[np.float64]  # unix seconds
    in_session: NDArray[np.bool_]

    @classmethod
    def empty(cls) -> Interactions:
        return cls(
            rows=np.zeros(0, np.int64),
            types=np.zeros(0, object),
            times=np.zeros(0, np.float64),
            in_session=np.zeros(0, bool),
        )


@dataclass(frozen=True, eq=False)
class CompiledFilter:
    """A parsed, type-checked filter; build it with `compile_filter`."""

    text: str
    action: Literal["include", "exclude"]
    params: Mapping[str, str]  # parameter name (no "$") -> "number", "string", "bool" or "list"
    uses_interactions: bool
    condition: Condition = field(repr=False)  # the typed condition tree
    param_uses: tuple[ParamUse, ...] = field(repr=False, default=())
    _plan: Plan | None = field(repr=False, default=None)

    def bind(self, params: Mapping[str, object]) -> BoundFilter:
        """Check the parameters this filter uses (others are ignored); raises ParamError."""
        if type(params) is not dict and not isinstance(params, Mapping):
            raise ParamError(f"parameters must be an object, not {_json_kind(params)}", "")
        bound: dict[str, object] = {}
        for use in self.param_uses:
            if use.name not in params:
                raise ParamError(
                    f"missing parameter ${use.name}: the filter compares it with {use.field} "
                    f"(as {_kind_words(use)})",
                    use.name,
                )
            bound[use.name] = _bind_value(use, params[use.name])
        return BoundFilter(self, MappingProxyType(bound))

    def keep(
        self,
        items: ItemFields,
        rows: NDArray[np.int64],
        interactions: Interactions,
        now: float,
        params: Mapping[str, object] | None = None,
    ) -> Bools:
        """bool [len(rows)]: True for the candidates the filter keeps."""
        return self.bind({} if params is None else params).keep(items, rows, interactions, now)


@dataclass(frozen=True, eq=False)
class BoundFilter:
    """A compiled filter with checked parameters, ready to run on many requests' candidates."""

    compiled: CompiledFilter
    values: Mapping[str, object]  # as the plan uses them: floats, strings, bools, _Members

    def keep(
        self,
        items: ItemFields,
        rows: NDArray[np.int64],
        interactions: Interactions,
        now: float,
    ) -> Bools:
        """bool [len(rows)]: True for the candidates the filter keeps."""
        compiled = self.compiled
        assert compiled._plan is not None
        rows = np.asarray(rows, dtype=np.int64)
        n = len(rows)
        if not n:
            return np.zeros(0, dtype=bool)
        ctx = _Context(items, rows, float(now), self.values, n)
        if compiled.uses_interactions:
            ctx.pair_with(interactions)
        true, _ = compiled._plan(ctx)
        if ctx.item_of is None:
            matched = true
        else:
            matched = np.zeros(n, dtype=bool)
            matched[ctx.item_of[true]] = True
        return matched if compiled.action == "include" else ~matched


def compile_filter(text: str) -> CompiledFilter:
    """Parse and type-check a filter (cached by text: the same text gives the same object);
    raises FilterError."""
    if not isinstance(text, str):
        raise FilterError(f"a filter is text, not {_json_kind(text)}")
    return _compile(text)


@lru_cache(maxsize=1024)
def _compile(text: str) -> CompiledFilter:
    program = parse_filter(text)
    return CompiledFilter(
        text=text,
        action=program.action,
        params=MappingProxyType(dict(program.params)),
        uses_interactions=program.uses_interactions,
        condition=program.condition,
        param_uses=program.uses,
        _plan=_build(program.condition),
    )


# --- parameters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Members:
    """IN-list values ready for NumPy: strings as a set, numbers as an array."""

    strings: frozenset[str]
    numbers: NDArray[np.float64]
    bools: frozenset[bool]

    @classmethod
    def of(cls, members: Members) -> _Members:
        numbers = np.array(sorted(members.numbers), dtype=np.float64)
        return cls(members.strings, numbers, members.bools)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | np.bool_):
        return "a boolean"
    if isinstance(value, int | float | np.integer | np.floating):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


_ONE = {"string": "a string", "number": "a number", "bool": "a boolean"}
_MANY = {"string": "strings", "number": "numbers", "bool": "booleans"}


def _kind_words(use: ParamUse) -> str:
    if use.kind != "list":
        return _ONE[use.kind]
    return f"a list of {_MANY.get(use.element or '', 'strings, numbers or booleans')}"


def _element_words(use: ParamUse) -> str:
    return _ONE.get(use.element or "", "a string, a number or a boolean")


def _as_number(value: object) -> float | None:
    """The value as a finite float, or None when it is no number (booleans are none)."""
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _bind_value(use: ParamUse, value: object) -> object:
    where = f"(it is compared with {use.field})"
    if use.kind == "number":
        number = _as_number(value)
        if number is None:
            raise ParamError(
                f"${use.name} must be a finite number {where}, not {_json_kind(value)}", use.name
            )
        return number
    if use.kind == "string" or use.kind == "bool":
        expected = str if use.kind == "string" else bool
        if not isinstance(value, expected):
            raise ParamError(
                f"${use.name} must be {_kind_words(use)} {where}, not {_json_kind(value)}",
                use.name,
            )
        return value
    if not isinstance(value, list | tuple):
        raise ParamError(
            f"${use.name} must be {_kind_words(use)} {where}, not {_json_kind(value)}", use.name
        )
    if len(value) > MAX_PARAM_LIST_LENGTH:
        raise ParamError(
            f"${use.name} has {len(value)} values; the limit is {MAX_PARAM_LIST_LENGTH} "
            "(MAX_PARAM_LIST_LENGTH)",
            use.name,
        )
    strings: set[str] = set()
    numbers: set[float] = set()
    bools: set[bool] = set()
    for index, element in enumerate(value):
        number = _as_number(element)
        if isinstance(element, str) and use.element in ("string", "any"):
            strings.add(element)
        elif isinstance(element, bool) and use.element in ("bool", "any"):
            bools.add(element)
        elif number is not None and use.element in ("number", "any"):
            numbers.add(number)
        else:
            raise ParamError(
                f"${use.name}[{index}] must be {_element_words(use)} {where}, "
                f"not {_json_kind(element)}",
                use.name,
            )
    return _Members.of(Members(frozenset(strings), frozenset(numbers), frozenset(bools)))


# --- evaluation ---------------------------------------------------------------------------------

# Python types of the values in object arrays, as small codes NumPy can compare quickly.
_OTHER, _NONE, _STR, _BOOL, _INT, _FLOAT = range(6)
_TYPE_CODES: dict[type, int] = {
    type(None): _NONE,
    str: _STR,
    np.str_: _STR,
    bool: _BOOL,
    np.bool_: _BOOL,
    int: _INT,
    np.int64: _INT,
    np.int32: _INT,
    float: _FLOAT,
    np.float64: _FLOAT,
    np.float32: _FLOAT,
}
_COMPARISONS: dict[str, Callable[[Any, Any], Bools]] = {
    "=": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


class _Context:
    """One evaluation of a plan: the columns it reads, fetched once and typed on demand.

    Without interaction fields an evaluation is a candidate. With them, evaluations are the
    candidates (each without an interaction) followed by every (candidate, interaction of that
    candidate) pair; `item_of` maps evaluations to candidates and `interaction_of` to
    interactions (-1: none).
    """

    def __init__(
        self,
        items: ItemFields,
        rows: NDArray[np.int64],
        now: float,
        params: Mapping[str, object],
        n: int,
    ) -> None:
        self.items = items
        self.rows = rows
        self.now = now
        self.params = params
        self.n = n
        self.item_of: NDArray[np.intp] | None = None
        self.interactions = Interactions.empty()
        self.interaction_of: NDArray[np.intp] | None = None
        self.has_interaction: Bools = np.zeros(n, dtype=bool)
        self._raw: dict[str, NDArray[Any]] = {}
        self._typed: dict[tuple[str, str], tuple[NDArray[Any], Bools]] = {}

    def pair_with(self, interactions: Interactions) -> None:
        n = len(self.rows)
        inter_rows = np.asarray(interactions.rows, dtype=np.int64)
        if not len(inter_rows) or not n:
            return  # every evaluation is a candidate without an interaction
        order = np.argsort(inter_rows, kind="stable")
        sorted_rows = inter_rows[order]
        first = np.searchsorted(sorted_rows, self.rows, side="left")
        counts = np.searchsorted(sorted_rows, self.rows, side="right") - first
        total = int(counts.sum())
        if not total:
            return
        pair_item = np.repeat(np.arange(n), counts)
        # The k-th pair of candidate c is interaction order[first[c] + k].
        offset_in_run = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        pair_interaction = order[np.repeat(first, counts) + offset_in_run]
        self.item_of = np.concatenate([np.arange(n), pair_item])
        self.interaction_of = np.concatenate([np.zeros(n, np.intp), pair_interaction])
        self.has_interaction = np.concatenate([np.zeros(n, bool), np.ones(total, bool)])
        self.interactions = interactions
        self.n = n + total

    def raw(self, ref: FieldRef) -> NDArray[Any]:
        values = self._raw.get(ref.name)
        if values is None:
            values = self._fetch(ref)
            self._raw[ref.name] = values
        return values

    def _fetch(self, ref: FieldRef) -> NDArray[Any]:
        if ref.source == "item":
            values = np.asarray(self.items.values(ref.key, self.rows))
            if values.dtype.kind in "US":
                values = values.astype(object)
            return values if self.item_of is None else values[self.item_of]
        index = self.interaction_of
        inter = self.interactions
        if ref.key == "type":
            if index is None:
                return np.full(self.n, None, dtype=object)
            return np.asarray(inter.types, dtype=object)[index]
        if ref.key == "in_session":
            if index is None:
                return np.zeros(self.n, dtype=bool)
            return np.asarray(inter.in_session, dtype=bool)[index]
        if index is None:
            return np.full(self.n, np.nan)
        times = np.asarray(inter.times, dtype=np.float64)[index]
        return times if ref.key == "time" else self.now - times

    def typed(self, ref: FieldRef, as_type: ValueType) -> tuple[NDArray[Any], Bools]:
        """The field's values as `as_type` and where they are valid (present and of that type);
        invalid places hold a harmless filler of the right type."""
        key = (ref.name, as_type)
        found = self._typed.get(key)
        if found is None:
            found = self._convert(self.raw(ref), as_type)
            if ref.source == "interaction":
                found = (found[0], found[1] & self.has_interaction)
            self._typed[key] = found
        return found

    def _convert(self, values: NDArray[Any], as_type: ValueType) -> tuple[NDArray[Any], Bools]:
        kind = values.dtype.kind
        if kind == "O":
            codes = self._codes(values)
            if as_type == "string":
                valid = codes == _STR
                return np.where(valid, values, ""), valid
            if as_type == "bool":
                valid = codes == _BOOL
                return np.where(valid, values, False).astype(bool), valid
            numeric = (codes == _INT) | (codes == _FLOAT)
            numbers = _floats(np.where(numeric, values, np.nan))
            return numbers, numeric & ~np.isnan(numbers)
        if kind == "b":
            valid = np.full(len(values), as_type == "bool")
            return values.astype(bool), valid
        if kind in "iuf" and as_type == "number":
            numbers = values.astype(np.float64)
            return numbers, ~np.isnan(numbers)
        return values, np.zeros(len(values), dtype=bool)

    def _codes(self, values: NDArray[Any]) -> NDArray[np.int8]:
        # map() runs in C; this is the one pass over Python objects a column needs.
        types = map(type, values)
        return np.fromiter(
            map(_TYPE_CODES.get, types, repeat(_OTHER)), dtype=np.int8, count=len(values)
        )

    def null(self, ref: FieldRef) -> Bools:
        if ref.type != "dynamic":
            return ~self.typed(ref, ref.type)[1]
        values = self.raw(ref)  # attributes are item fields: always present
        if values.dtype.kind == "f":
            missing: Bools = np.isnan(values)
            return missing
        if values.dtype.kind != "O":
            return np.zeros(self.n, dtype=bool)
        codes = self._codes(values)
        floats: Bools = codes == _FLOAT
        nulls: Bools = codes == _NONE
        return nulls | (floats & np.isnan(_floats(np.where(floats, values, 0.0))))


def _floats(values: NDArray[Any]) -> NDArray[np.float64]:
    try:
        return values.astype(np.float64)
    except OverflowError:
        # Only integers beyond float range get here; they compare as infinities.
        return np.array([_clamped(value) for value in values], dtype=np.float64)


def _clamped(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]


def _build(condition: Condition) -> Plan:
    """Turn the typed tree into nested closures, so evaluation is a few NumPy calls per node."""
    if isinstance(condition, And | Or):
        parts = [_build(operand) for operand in condition.operands]
        return _and(parts) if isinstance(condition, And) else _or(parts)
    if isinstance(condition, Not):
        inner = _build(condition.operand)

        def negate(ctx: _Context) -> Outcome:
            true, false = inner(ctx)
            return false, true

        return negate
    if isinstance(condition, Compare):
        return _compare(condition)
    if isinstance(condition, In):
        return _in(condition)
    if isinstance(condition, StartsWith):
        return _starts_with(condition)
    if isinstance(condition, IsNull):
        ref = condition.field

        def is_null(ctx: _Context) -> Outcome:
            null = ctx.null(ref)
            return null, ~null

        return is_null
    return _truthy(condition)


def _and(parts: list[Plan]) -> Plan:
    def run(ctx: _Context) -> Outcome:
        true, false = parts[0](ctx)
        for part in parts[1:]:
            part_true, part_false = part(ctx)
            true, false = true & part_true, false | part_false
        return true, false

    return run


def _or(parts: list[Plan]) -> Plan:
    def run(ctx: _Context) -> Outcome:
        true, false = parts[0](ctx)
        for part in parts[1:]:
            part_true, part_false = part(ctx)
            true, false = true | part_true, false & part_false
        return true, false

    return run


def _operand(operand: Operand, as_type: ValueType) -> Callable[[_Context], tuple[Any, Any]]:
    """A getter of (values, valid): arrays for a field, a scalar and True otherwise."""
    if isinstance(operand, FieldRef):
        ref = operand
        return lambda ctx: ctx.typed(ref, as_type)
    if isinstance(operand, Const):
        value = operand.value
        return lambda ctx: (value, True)
    name = operand.name
    return lambda ctx: (ctx.params[name], True)


def _compare(node: Compare) -> Plan:
    compare = _COMPARISONS[node.op]
    left = _operand(node.left, node.type)
    right = _operand(node.right, node.type)

    def run(ctx: _Context) -> Outcome:
        left_values, left_valid = left(ctx)
        right_values, right_valid = right(ctx)
        valid = left_valid & right_valid
        result = compare(left_values, right_values)
        return valid & result, valid & ~result

    return run


def _in(node: In) -> Plan:
    ref = node.field
    members = node.members
    fixed = _Members.of(members) if isinstance(members, Members) else None
    name = members.name if isinstance(members, ParamRef) else ""

    def run(ctx: _Context) -> Outcome:
        found = fixed
        if found is None:
            param = ctx.params[name]
            assert isinstance(param, _Members)
            found = param
        # x IN (a, b) is x = a OR x = b: true when any equality is, false only when all are
        # false, which needs x valid for every type of value in the list.
        true = np.zeros(ctx.n, dtype=bool)
        false = np.ones(ctx.n, dtype=bool)
        if found.strings:
            values, valid = ctx.typed(ref, "string")
            contains = found.strings.__contains__
            hits = np.fromiter(map(contains, values), np.bool_, count=len(values))
            true |= valid & hits
            false &= valid & ~hits
        if len(found.numbers):
            numbers, valid = ctx.typed(ref, "number")
            hits = np.isin(numbers, found.numbers)
            true |= valid & hits
            false &= valid & ~hits
        if found.bools:
            flags, valid = ctx.typed(ref, "bool")
            if len(found.bools) == 2:
                hits = np.ones(ctx.n, dtype=bool)
            else:
                hits = flags if True in found.bools else ~flags
            true |= valid & hits
            false &= valid & ~hits
        return true, false

    return run


_startswith: Callable[[Any, Any], bool] = str.startswith


def _starts_with(node: StartsWith) -> Plan:
    ref = node.field
    prefix = node.prefix

    def run(ctx: _Context) -> Outcome:
        start = prefix.value if isinstance(prefix, Const) else ctx.params[prefix.name]
        values, valid = ctx.typed(ref, "string")
        hits = np.fromiter(map(_startswith, values, repeat(start)), np.bool_, count=len(values))
        return valid & hits, valid & ~hits

    return run


def _truthy(node: Truthy) -> Plan:
    ref = node.field

    def run(ctx: _Context) -> Outcome:
        flags, valid = ctx.typed(ref, "bool")
        return valid & flags, valid & ~flags

    return run
