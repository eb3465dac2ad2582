"""Reading filter text: the Lark grammar, the limits, and the checks that turn a parse tree into a
typed condition tree (`Program`).

The language itself is documented for shop operators in `nextbest.recommend.rules.filters`, which
also evaluates the trees built here. Everything a user can type either becomes a `Program` or
raises `FilterError`; no Lark exception and no `RecursionError` gets out of `parse_filter`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from copy import copy
from dataclasses import dataclass
from functools import cache
from typing import Literal

from lark import Lark, Token, Tree
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

MAX_FILTER_LENGTH = 2000
"""Characters in one filter text."""
MAX_NESTING_DEPTH = 32
"""Levels of AND / OR / NOT nesting, the innermost condition counting as one level."""
MAX_CONDITIONS = 64
"""Conditions (comparisons, IN, STARTS WITH, IS NULL, bare fields) in one filter."""
MAX_IN_LIST_LENGTH = 256
"""Values in one literal IN (...) list."""

ValueType = Literal["string", "number", "bool"]
FieldType = Literal["string", "number", "bool", "dynamic"]
ParamKind = Literal["number", "string", "bool", "list"]
# What the elements of a list parameter must be: the field's type, or "any" for an attribute.
ElementType = Literal["string", "number", "bool", "any"]

ITEM_FIELDS: dict[str, FieldType] = {
    "id": "string",
    "title": "string",
    "category": "string",
    "brand": "string",
    "price": "number",
    "discount": "number",
    "in_stock": "bool",
}
INTERACTION_FIELDS: dict[str, FieldType] = {
    "type": "string",
    "age": "number",
    "time": "number",
    "in_session": "bool",
}
ALLOWED_FIELDS: tuple[str, ...] = (
    *(f"item.{name}" for name in ITEM_FIELDS),
    "item.attributes.<key>",
    *(f"interaction.{name}" for name in INTERACTION_FIELDS),
)
DURATION_SECONDS: dict[str, float] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
ORDERING_OPERATORS = frozenset({"<", "<=", ">", ">="})


class FilterError(ValueError):
    """A syntax, type or limit error in a filter text; str() is a sentence for people."""

    def __init__(
        self, message: str, position: int | None = None, expected: Iterable[str] = ()
    ) -> None:
        self.message = message
        self.position = position  # 1-based character offset in the text
        self.expected = tuple(expected)
        super().__init__(message if position is None else f"at character {position}: {message}")


# --- the typed condition tree -------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRef:
    name: str  # as written: "item.attributes.color"
    source: Literal["item", "interaction"]
    key: str  # what the source is asked for: "attributes.color", "price", "age"
    type: FieldType


@dataclass(frozen=True)
class Const:
    value: str | float | bool


@dataclass(frozen=True)
class ParamRef:
    name: str  # without the "$"


Operand = FieldRef | Const | ParamRef


@dataclass(frozen=True)
class Members:
    """The values of an IN list, by type; a value matches only members of its own type."""

    strings: frozenset[str] = frozenset()
    numbers: frozenset[float] = frozenset()
    bools: frozenset[bool] = frozenset()


@dataclass(frozen=True)
class Compare:
    left: Operand
    op: str  # = != < <= > >=
    right: Operand
    type: ValueType  # the type both sides are compared as


@dataclass(frozen=True)
class In:
    field: FieldRef
    members: Members | ParamRef


@dataclass(frozen=True)
class StartsWith:
    field: FieldRef
    prefix: Const | ParamRef


@dataclass(frozen=True)
class IsNull:
    field: FieldRef


@dataclass(frozen=True)
class Truthy:
    field: FieldRef


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class And:
    operands: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Condition, ...]


Condition = Compare | In | StartsWith | IsNull | Truthy | Not | And | Or


@dataclass(frozen=True)
class ParamUse:
    """One place a parameter appears, with what it must be there."""

    name: str
    kind: ParamKind
    element: ElementType | None  # for kind "list"
    field: str  # the field it is compared with, for messages
    position: int


@dataclass(frozen=True)
class Program:
    action: Literal["include", "exclude"]
    condition: Condition
    params: dict[str, ParamKind]
    uses: tuple[ParamUse, ...]
    uses_interactions: bool


# --- the grammar --------------------------------------------------------------------------------

# Keywords end at a word boundary so that "INx" or "NOTIN" is an error rather than two tokens, and
# fields always hold a dot, so no keyword can ever be read as a field or the other way round.
GRAMMAR = r"""
start: ACTION _WHERE condition

?condition: disjunction
?disjunction: conjunction (_OR conjunction)*
?conjunction: negation (_AND negation)*
?negation: _NOT negation -> not_
         | primary
?primary: _LPAR condition _RPAR
        | FIELD -> truthy
        | operand CMP_OP operand -> compare
        | FIELD _IN members -> in_
        | FIELD _NOT _IN members -> not_in
        | FIELD _STARTS _WITH prefix -> starts_with
        | FIELD _IS _NULL -> is_null
        | FIELD _IS _NOT _NULL -> is_not_null
?operand: FIELD | literal | PARAM
?literal: STRING | NUMBER | TRUE | FALSE
members: _LPAR literal (_COMMA literal)* _RPAR
       | PARAM
?prefix: STRING | PARAM

ACTION: /(include|exclude)\b/i
_WHERE: /where\b/i
_OR: /or\b/i
_AND: /and\b/i
_NOT: /not\b/i
_IN: /in\b/i
_STARTS: /starts\b/i
_WITH: /with\b/i
_IS: /is\b/i
_NULL: /null\b/i
TRUE: /true\b/i
FALSE: /false\b/i
CMP_OP: /!=|<=|>=|=|<|>/
FIELD: /[A-Za-z_][A-Za-z0-9_]*(\.[\w-]+)+/
PARAM: /\$[A-Za-z0-9_]+/
NUMBER: /-?[0-9]+(\.[0-9]+)?[smhdw]?(?![\w.])/i
STRING: /"([^"\\]|\\.)*"|'([^'\\]|\\.)*'/s
_LPAR: "("
_RPAR: ")"
_COMMA: ","

%ignore /\s+/
"""

# Human words for the terminals, in the order messages list them.
_TERMINAL_WORDS: dict[str, tuple[str, ...]] = {
    "ACTION": ("INCLUDE", "EXCLUDE"),
    "_WHERE": ("WHERE",),
    "_NOT": ("NOT",),
    "_LPAR": ("(",),
    "FIELD": ("a field",),
    "STRING": ("a string",),
    "NUMBER": ("a number",),
    "PARAM": ("a parameter",),
    "TRUE": ("true",),
    "FALSE": ("false",),
    "CMP_OP": ("a comparison operator",),
    "_IN": ("IN",),
    "_STARTS": ("STARTS WITH",),
    "_WITH": ("WITH",),
    "_IS": ("IS",),
    "_NULL": ("NULL",),
    "_COMMA": (",",),
    "_RPAR": (")",),
    "_AND": ("AND",),
    "_OR": ("OR",),
    "$END": ("the end of the filter",),
}
_LOGICAL_RULES = frozenset({"disjunction", "conjunction", "not_"})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_WORD = re.compile(r"[^\s()\"',]+")


@cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def parse_filter(text: str) -> Program:
    """Parse and type-check one filter text; raises FilterError."""
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(
            f"the filter is {len(text)} characters long; the limit is {MAX_FILTER_LENGTH} "
            "(MAX_FILTER_LENGTH)"
        )
    try:
        tree = _parser().parse(text)
    except UnexpectedToken as error:
        raise _unexpected_token(text, error) from None
    except UnexpectedCharacters as error:
        raise _unexpected_characters(text, error) from None
    except UnexpectedEOF as error:
        raise _syntax_error(len(text) + 1, error.expected, "the end of the filter") from None
    except LarkError:
        raise FilterError("the filter cannot be read") from None
    _check_shape(tree)
    return _Compiler().program(tree)


# --- syntax errors ------------------------------------------------------------------------------


def _words(terminals: Iterable[str]) -> tuple[str, ...]:
    wanted = set(terminals)
    after_operand = "CMP_OP" in wanted and "_NOT" in wanted
    if after_operand:
        wanted.discard("_NOT")  # after a field, NOT can only start NOT IN
    words = [word for name, names in _TERMINAL_WORDS.items() if name in wanted for word in names]
    if after_operand and "IN" in words:
        words.insert(words.index("IN") + 1, "NOT IN")
    words += sorted(name.strip("_").lower() for name in wanted - _TERMINAL_WORDS.keys())
    return tuple(words)


def _join(words: tuple[str, ...]) -> str:
    if len(words) <= 1:
        return "".join(words) or "nothing more"
    return f"{', '.join(words[:-1])} or {words[-1]}"


def _quoted(value: str) -> str:
    shown = value if len(value) <= 40 else value[:40] + "…"
    return f'"{shown}"'


def _syntax_error(
    position: int, terminals: Iterable[str], found: str, hint: str = ""
) -> FilterError:
    expected = _words(terminals)
    return FilterError(f"expected {_join(expected)}, found {found}{hint}", position, expected)


def _unexpected_token(text: str, error: UnexpectedToken) -> FilterError:
    token = error.token
    if token.type == "$END":
        end = token.end_pos if token.end_pos is not None else len(text)
        return _syntax_error(end + 1, _acceptable(error), "the end of the filter")
    found = f"the string {token.value}" if token.type == "STRING" else _quoted(token.value)
    hint = ""
    if token.type == "_NULL":
        hint = "; null can only be tested with IS NULL or IS NOT NULL"
    return _syntax_error(_position(token), _acceptable(error), found, hint)


def _unexpected_characters(text: str, error: UnexpectedCharacters) -> FilterError:
    offset = min(error.pos_in_stream or 0, max(len(text) - 1, 0))
    allowed = _acceptable(error)
    if text[offset : offset + 1] in ('"', "'"):
        return FilterError("this string is never closed", offset + 1, _words(allowed))
    word = _WORD.match(text, offset)
    found = _quoted(word.group() if word else text[offset : offset + 1])
    return _syntax_error(offset + 1, allowed, found)


def _acceptable(error: UnexpectedInput) -> set[str]:
    """The terminals that would let the parser go on from where it stopped.

    LALR merges parser states, so the terminals a state lists (Lark's `expected`, or the
    lexer's `allowed`, which moreover lacks the end of the text) include some that fail after a
    few reductions: "," after a string outside any IN list. Feeding each to a copy of the
    parser, as Lark's InteractiveParser.accepts() does, leaves only the real ones.
    """
    fallback = set(getattr(error, "expected", None) or getattr(error, "allowed", None) or ())
    state = getattr(error, "state", None)
    try:
        conf = copy(state.parse_conf)  # type: ignore[union-attr]
        conf.callbacks = {}  # no trees are built while trying
        accepted = set()
        for name in conf.parse_table.states[state.position]:  # type: ignore[union-attr]
            if not name.isupper():
                continue  # a rule, not a terminal
            trial = state.copy(deepcopy_values=False)  # type: ignore[union-attr]
            trial.parse_conf = conf
            try:
                trial.feed_token(Token(name, ""), is_end=name == "$END")
            except UnexpectedInput:
                continue
            accepted.add(name)
    except Exception:  # only the message's quality depends on Lark's internals here
        return fallback
    return accepted or fallback


def _position(token: Token) -> int:
    return (token.start_pos or 0) + 1


def _tree_position(tree: Tree[Token]) -> int:
    start = getattr(tree.meta, "start_pos", None)
    return start + 1 if isinstance(start, int) else 1


def _check_shape(tree: Tree[Token]) -> None:
    """Enforce the depth and size limits without recursion, so that the (recursive) compiler
    below only ever sees trees it can walk."""
    conditions = 0
    stack: list[tuple[Tree[Token], int]] = [(child, 1) for child in _subtrees(tree)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            raise FilterError(
                f"the conditions are nested more than {MAX_NESTING_DEPTH} levels deep "
                "(MAX_NESTING_DEPTH)",
                _tree_position(node),
            )
        if node.data in _LOGICAL_RULES:
            stack.extend((child, depth + 1) for child in _subtrees(node))
            continue
        conditions += 1
        if conditions > MAX_CONDITIONS:
            raise FilterError(
                f"the filter has more than {MAX_CONDITIONS} conditions (MAX_CONDITIONS)",
                _tree_position(node),
            )


def _subtrees(tree: Tree[Token]) -> list[Tree[Token]]:
    return [child for child in tree.children if isinstance(child, Tree)]


# --- from parse tree to typed conditions --------------------------------------------------------


def _type_words(value_type: FieldType) -> str:
    return {
        "string": "a string",
        "number": "a number",
        "bool": "a boolean",
        "dynamic": "an attribute",
    }[value_type]


def _const_type(value: str | float | bool) -> ValueType:
    if isinstance(value, bool):
        return "bool"
    return "string" if isinstance(value, str) else "number"


class _Compiler:
    def __init__(self) -> None:
        self.uses: list[ParamUse] = []
        self.uses_interactions = False

    def program(self, tree: Tree[Token]) -> Program:
        action_token, body = tree.children
        assert isinstance(action_token, Token) and isinstance(body, Tree)
        condition = self.condition(body)
        params: dict[str, ParamKind] = {}
        for use in self.uses:
            params.setdefault(use.name, use.kind)
        action: Literal["include", "exclude"] = (
            "include" if action_token.lower() == "include" else "exclude"
        )
        return Program(action, condition, params, tuple(self.uses), self.uses_interactions)

    def condition(self, tree: Tree[Token]) -> Condition:
        rule = str(tree.data)
        children = tree.children
        if rule in _LOGICAL_RULES:
            operands = tuple(self.condition(child) for child in children if isinstance(child, Tree))
            if rule == "not_":
                return Not(operands[0])
            return Or(operands) if rule == "disjunction" else And(operands)
        tokens = [child for child in children if isinstance(child, Token)]
        if rule == "compare":
            return self.compare(*tokens)
        field = self.field(tokens[0])
        if rule == "truthy":
            if field.type not in ("bool", "dynamic"):
                raise FilterError(
                    f"{field.name} is {_type_words(field.type)}, not a condition; compare it "
                    f"with something, e.g. {field.name} = ...",
                    _position(tokens[0]),
                )
            return Truthy(field)
        if rule in ("is_null", "is_not_null"):
            return IsNull(field) if rule == "is_null" else Not(IsNull(field))
        if rule == "starts_with":
            return self.starts_with(field, tokens[0], tokens[1])
        members_tree = children[1]
        assert isinstance(members_tree, Tree)
        condition = In(field, self.members(field, members_tree))
        return condition if rule == "in_" else Not(condition)

    def field(self, token: Token) -> FieldRef:
        name = str(token)
        source, _, key = name.partition(".")
        if source == "item":
            if key in ITEM_FIELDS:
                return FieldRef(name, "item", key, ITEM_FIELDS[key])
            if key.startswith("attributes.") and len(key) > len("attributes."):
                return FieldRef(name, "item", key, "dynamic")
        if source == "interaction" and key in INTERACTION_FIELDS:
            self.uses_interactions = True
            return FieldRef(name, "interaction", key, INTERACTION_FIELDS[key])
        raise FilterError(
            f"unknown field {_quoted(name)}; the fields are {', '.join(ALLOWED_FIELDS)}",
            _position(token),
        )

    def operand(self, token: Token) -> Operand:
        if token.type == "FIELD":
            return self.field(token)
        if token.type == "PARAM":
            return ParamRef(token[1:])
        return Const(self.literal(token))

    def literal(self, token: Token) -> str | float | bool:
        if token.type == "STRING":
            return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), token[1:-1], flags=re.S)
        if token.type in ("TRUE", "FALSE"):
            return token.type == "TRUE"
        text = str(token)
        unit = text[-1].lower()
        scale = DURATION_SECONDS.get(unit)
        value = float(text[:-1]) * scale if scale is not None else float(text)
        if not math.isfinite(value):
            raise FilterError(f"the number {_quoted(text)} is too large", _position(token))
        return value

    def describe(self, operand: Operand, token: Token) -> str:
        if isinstance(operand, FieldRef):
            return f"{operand.name} ({_type_words(operand.type)})"
        if isinstance(operand, ParamRef):
            return f"${operand.name}"
        return f"{token} ({_type_words(_const_type(operand.value))})"

    def compare(self, left_token: Token, op_token: Token, right_token: Token) -> Compare:
        op = str(op_token)
        left, right = self.operand(left_token), self.operand(right_token)
        sides = ((left, left_token), (right, right_token))
        fields = [operand for operand, _ in sides if isinstance(operand, FieldRef)]
        if not fields:
            raise FilterError(
                f"{left_token} {op} {right_token} compares no field; one side must be a field",
                _position(left_token),
            )
        known: list[ValueType] = []
        for operand, _ in sides:
            if isinstance(operand, Const):
                known.append(_const_type(operand.value))
            elif isinstance(operand, FieldRef) and operand.type != "dynamic":
                known.append(operand.type)
        if len(set(known)) > 1:
            raise FilterError(
                f"cannot compare {self.describe(left, left_token)} with "
                f"{self.describe(right, right_token)}",
                _position(right_token),
            )
        value_type: ValueType
        if known:
            value_type = known[0]
        elif op in ORDERING_OPERATORS:
            value_type = "number"
        else:
            # An attribute has no type of its own; with nothing typed on the other side there is
            # no telling whether "10" = 10 should hold, so the text must say.
            raise FilterError(
                f"cannot tell whether {left_token} {op} {right_token} compares strings, numbers "
                "or booleans; compare the attribute with a literal, or use IN $parameter",
                _position(left_token),
            )
        if op in ORDERING_OPERATORS and value_type != "number":
            raise FilterError(
                f"{op} compares numbers only, not {self.describe(left, left_token)} with "
                f"{self.describe(right, right_token)}",
                _position(op_token),
            )
        for operand, token in sides:
            if isinstance(operand, ParamRef):
                self.use(operand.name, value_type, None, fields[0].name, token)
        return Compare(left, op, right, value_type)

    def starts_with(self, field: FieldRef, field_token: Token, prefix_token: Token) -> StartsWith:
        if field.type not in ("string", "dynamic"):
            raise FilterError(
                f"STARTS WITH needs a string field, and {field.name} is {_type_words(field.type)}",
                _position(field_token),
            )
        if prefix_token.type == "PARAM":
            self.use(prefix_token[1:], "string", None, field.name, prefix_token)
            return StartsWith(field, ParamRef(prefix_token[1:]))
        return StartsWith(field, Const(self.literal(prefix_token)))

    def members(self, field: FieldRef, tree: Tree[Token]) -> Members | ParamRef:
        tokens = [child for child in tree.children if isinstance(child, Token)]
        if tokens[0].type == "PARAM":
            element: ElementType = "any" if field.type == "dynamic" else field.type
            self.use(tokens[0][1:], "list", element, field.name, tokens[0])
            return ParamRef(tokens[0][1:])
        if len(tokens) > MAX_IN_LIST_LENGTH:
            raise FilterError(
                f"the IN list has {len(tokens)} values; the limit is {MAX_IN_LIST_LENGTH} "
                "(MAX_IN_LIST_LENGTH); pass longer lists as a parameter",
                _position(tokens[0]),
            )
        values = [self.literal(token) for token in tokens]
        if field.type != "dynamic":
            for value, token in zip(values, tokens, strict=True):
                if _const_type(value) != field.type:
                    raise FilterError(
                        f"cannot compare {field.name} ({_type_words(field.type)}) with "
                        f"{self.describe(Const(value), token)}",
                        _position(token),
                    )
        return Members(
            strings=frozenset(v for v in values if isinstance(v, str)),
            numbers=frozenset(v for v in values if isinstance(v, float)),
            bools=frozenset(v for v in values if isinstance(v, bool)),
        )

    def use(
        self, name: str, kind: ParamKind, element: ElementType | None, field: str, token: Token
    ) -> None:
        position = _position(token)
        for earlier in self.uses:
            if earlier.name == name and earlier.kind != kind:
                raise FilterError(
                    f"${name} is used as a {kind} here but as a {earlier.kind} at character "
                    f"{earlier.position}",
                    position,
                )
        self.uses.append(ParamUse(name, kind, element, field, position))
