"""A spec's `filter`: a small predicate language, parsed, never passed on as SQL text.

    region = 'eu' AND day >= DATE '2026-01-02' AND NOT sku IN ('x', 'y')
    revenue BETWEEN 10 AND 99.5 OR orders IS NULL

Allowed: comparisons (=, !=, <>, <, <=, >, >=), AND, OR, NOT, IN (a list of literals),
BETWEEN, IS [NOT] NULL and parentheses, over the table's own columns (plain or "quoted"
names) and literals: numbers, 'strings', TRUE/FALSE, NULL, DATE 'YYYY-MM-DD' and
TIMESTAMP 'YYYY-MM-DD HH:MM:SS'. Anything else (functions, subqueries, set operations,
casts, table functions, comments, several statements) is refused with its reason.

sqlglot parses the text (DuckDB's spelling); every node of the tree is checked against the
grammar above and turned into an Ibis predicate, which each engine compiles in its own
dialect: nothing of the text reaches an engine but the literal values.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
from typing import Any, Callable

import ibis
import ibis.expr.types as ir
import sqlglot
from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from pipelines.errors import Causes, InputError, Translation, map_exceptions

MAX_CHARS = 4096
MAX_DEPTH = 64  # nesting of the parsed tree: deeper is refused, never a RecursionError
INT64 = (-(2**63), 2**63 - 1)
CAST_WORDS = {"CAST", "TRY_CAST", "SAFE_CAST", "CONVERT"}
COMPARISONS: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.EQ: lambda a, b: a == b,
    exp.NEQ: lambda a, b: a != b,
    exp.LT: lambda a, b: a < b,
    exp.LTE: lambda a, b: a <= b,
    exp.GT: lambda a, b: a > b,
    exp.GTE: lambda a, b: a >= b,
}
DATE_TYPES = {exp.DataType.Type.DATE}
TIMESTAMP_TYPES = {exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.TIMESTAMPTZ}
GRAMMAR = "comparisons, AND/OR/NOT, IN (literals), BETWEEN, IS [NOT] NULL over columns and literals"


class FilterRefused(InputError):
    """The filter is outside the grammar; the message says what was refused."""


def _refuse(why: str) -> FilterRefused:
    return FilterRefused(f"filter: {why} (allowed: {GRAMMAR})")


def _check_tokens(tokens: list[Token]) -> None:
    for i, token in enumerate(tokens):
        if token.comments:
            raise _refuse("comments are not allowed")
        if token.token_type == TokenType.SEMICOLON:
            raise _refuse("one expression only, no ';'")
        if token.token_type == TokenType.DCOLON:
            raise _refuse("casts are not allowed (write DATE '...' or TIMESTAMP '...' for a date or time)")
        called = i + 1 < len(tokens) and tokens[i + 1].token_type == TokenType.L_PAREN
        bare = token.token_type not in (TokenType.STRING, TokenType.IDENTIFIER)  # not 'cast' nor "cast"
        if called and bare and token.text.upper() in CAST_WORDS:
            raise _refuse("casts are not allowed (write DATE '...' or TIMESTAMP '...' for a date or time)")


def _depth(tree: exp.Expression) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack += [(child, depth + 1) for child in node.iter_expressions()]
    return deepest


def parse_filter(text: str) -> exp.Expression:
    """The checked syntax tree of a filter, or FilterRefused saying why not."""
    if not isinstance(text, str) or not text.strip():
        raise _refuse("must be a non-empty predicate string")
    if len(text) > MAX_CHARS:
        raise _refuse(f"longer than {MAX_CHARS} characters")
    dialect = sqlglot.Dialect.get_or_raise("duckdb")
    # sqlglot's TokenError, ParseError, and whatever odd input provokes
    causes: dict[Causes, Translation] = {
        RecursionError: lambda _: _refuse("nested too deeply"),
        Exception: lambda why: _refuse(f"cannot parse it: {why}"),
    }
    with map_exceptions(causes):
        tokens = dialect.tokenize(text)
        _check_tokens(tokens)
        trees = [t for t in dialect.parser().parse(tokens, text) if t is not None]
    if len(trees) != 1:
        raise _refuse("one expression only")
    tree = trees[0]
    if _depth(tree) > MAX_DEPTH:
        raise _refuse("nested too deeply")
    _check_node(tree)
    return tree


def _check_node(node: exp.Expression) -> None:
    """Refuse any node outside the grammar, with a reason a user can act on."""
    if node.find(exp.Query, exp.Subquery, exp.SetOperation):  # before the functions that hold one
        raise _refuse("subqueries and set operations are not allowed")
    for sub in node.walk():
        if isinstance(sub, exp.Cast) and not _typed_literal(sub):
            raise _refuse("casts are not allowed (write DATE '...' or TIMESTAMP '...' for a date or time)")
        if isinstance(sub, exp.Func) and not isinstance(sub, (exp.Cast, *COMPARISONS, exp.And, exp.Or)):
            name = sub.name if isinstance(sub, exp.Anonymous) else sub.key
            raise _refuse(f"functions are not allowed ({name})")
        if isinstance(sub, exp.Column) and (sub.table or sub.args.get("db") or sub.args.get("catalog")):
            raise _refuse(f"columns are named without a table ({sub.sql()})")
        if isinstance(sub, exp.Star):
            raise _refuse("'*' is not allowed")
        if not isinstance(sub, ALLOWED_NODES):
            raise _refuse(f"{sub.key.upper()} is not allowed")


def _typed_literal(node: exp.Cast) -> bool:
    to = node.args.get("to")
    literal = node.this
    types = DATE_TYPES | TIMESTAMP_TYPES
    return (
        isinstance(literal, exp.Literal)
        and literal.is_string
        and isinstance(to, exp.DataType)
        and to.this in types
        and not to.expressions
    )


ALLOWED_NODES: tuple[type[exp.Expression], ...] = (
    exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Neg, exp.Paren,
    exp.And, exp.Or, exp.Not, exp.In, exp.Between, exp.Is, exp.Cast, exp.DataType, *COMPARISONS,
)  # fmt: skip


def columns_of(tree: exp.Expression) -> list[str]:
    """The column names a filter reads, in order of first appearance."""
    seen: dict[str, None] = {}
    for column in tree.find_all(exp.Column):
        seen.setdefault(column.name, None)
    return list(seen)


def filter_predicate(table: ir.Table, text: str) -> ir.BooleanValue:
    """The filter as an Ibis predicate over `table`; InputError naming the columns it lacks,
    or saying why the filter is refused."""
    tree = parse_filter(text)
    missing = [c for c in columns_of(tree) if c not in table.columns]
    if missing:
        names = ", ".join(f"'{c}'" for c in missing)
        raise InputError(f"filter: no column {names} in the table")
    # Ibis refuses the types (a string compared with a number, ...)
    with map_exceptions({Exception: lambda why: InputError(f"filter: {tree.sql()}: {why}")}):
        predicate = _Translate(table).value(tree)
    if not isinstance(predicate, ir.BooleanValue):
        raise _refuse(f"{tree.sql()} is not a condition")
    return predicate


class _Translate:
    """The checked tree as Ibis values: one method per kind of node."""

    def __init__(self, table: ir.Table):
        self.table = table

    def value(self, node: exp.Expression) -> Any:
        if isinstance(node, exp.Paren):
            return self.value(node.this)
        if isinstance(node, exp.Column):
            return self.table[node.name]
        if isinstance(node, tuple(COMPARISONS)):
            return COMPARISONS[type(node)](self.value(node.this), self.value(node.expression))
        if isinstance(node, exp.And):
            return self.condition(node.this) & self.condition(node.expression)
        if isinstance(node, exp.Or):
            return self.condition(node.this) | self.condition(node.expression)
        if isinstance(node, exp.Not):
            return ~self.condition(node.this)
        if isinstance(node, exp.In):
            return self.isin(node)
        if isinstance(node, exp.Between):
            # As SQL defines it, spelt out so that Ibis checks both comparisons' types.
            subject = self.value(node.this)
            return (subject >= self.value(node.args["low"])) & (subject <= self.value(node.args["high"]))
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise _refuse(f"IS takes NULL only ({node.sql()}); compare with = TRUE instead")
            return self.value(node.this).isnull()
        return ibis.literal(literal(node))

    def condition(self, node: exp.Expression) -> ir.BooleanValue:
        value = self.value(node)
        if not isinstance(value, ir.BooleanValue):
            raise _refuse(f"{node.sql()} is not a condition")
        return value

    def isin(self, node: exp.In) -> ir.BooleanValue:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise _refuse("IN takes a list of literals only")
        values = [literal(v) for v in node.expressions]
        if not values:
            raise _refuse("IN needs at least one value")
        # x IN (a, b) is x = a OR x = b, NULLs included; spelt out so that Ibis checks every
        # value's type (its isin does not), and the engine never has to cast a list.
        subject = self.value(node.this)
        return functools.reduce(operator.or_, [subject == ibis.literal(v) for v in values])


def literal(node: exp.Expression) -> Any:
    """The Python value of a literal node of the grammar; FilterRefused for anything else."""
    if isinstance(node, exp.Paren):
        return literal(node.this)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return -_number(node.this.this)
    if isinstance(node, exp.Literal):
        return str(node.this) if node.is_string else _number(node.this)
    if isinstance(node, exp.Cast) and _typed_literal(node):
        return _date_or_time(node)
    raise _refuse(
        f"{node.sql()} is not a literal (IN lists and bounds take numbers, strings, TRUE, FALSE, NULL)"
    )


def _number(text: str) -> int | float:
    digits = text.replace("_", "")
    if len(digits) > 40:
        raise _refuse(f"the number {text[:20]}... is too long")
    try:
        number: int | float = int(digits)
    except ValueError:
        try:
            number = float(digits)
        except ValueError:
            raise _refuse(f"{text!r} is not a number") from None
    if isinstance(number, int) and not INT64[0] <= number <= INT64[1]:
        raise _refuse(f"the integer {text} is outside the 64-bit range")
    if isinstance(number, float) and not math.isfinite(number):
        raise _refuse(f"the number {text} is not finite")
    return number


def _date_or_time(node: exp.Cast) -> dt.date | dt.datetime:
    text = str(node.this.this).strip()
    kind = node.args["to"].this
    try:
        if kind in DATE_TYPES:
            return dt.date.fromisoformat(text)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        word, shape = ("DATE", "YYYY-MM-DD") if kind in DATE_TYPES else ("TIMESTAMP", "YYYY-MM-DD HH:MM:SS")
        raise _refuse(f"{word} '{text}' is not a valid {shape}") from None
    if moment.tzinfo is not None:  # the warehouse's times are UTC
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment
