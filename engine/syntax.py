"""Syntax nodes: what the parser produces, one frozen class per construct, each with its span.

Expressions share one base class so that walking and printing are written once
(`walk`, `Expr.to_source`). Statements are plain records of what the author wrote;
meaning (which metrics are base or derived, units, the graph) is the compiler's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import re

import attrs

from .errors import Span

KEYWORDS = frozenset({
    "alert", "and", "by", "checkpoints", "controllable", "currency", "description", "dimensions", "direction",
    "entity", "every", "external", "false", "format", "from", "grain", "import", "in", "include", "is", "label",
    "level", "message", "metric", "not", "null", "or", "owner", "param", "severity", "source", "target", "time",
    "timezone", "tree", "true", "unit", "where", "with"})
"""The words of the language (the grammar's keywords): as a name, one is written in backticks."""

_WORD = re.compile(r"(?!\d)\w+")


def spell(name: str) -> str:
    """``name`` as it is written in a tree file: a word as it is, anything else in backticks
    (``Order Date`` is written `` `Order Date` ``, the keyword ``where`` as `` `where` ``)."""
    return name if _WORD.fullmatch(name) and name not in KEYWORDS else f"`{name}`"


# --------------------------------------------------------------------------- expressions


@attrs.frozen
class Expr:
    """Base of every expression node. Attributes: span — where it was written."""

    span: Span | None = attrs.field(eq=False, repr=False, kw_only=True, default=None)

    def children(self) -> tuple[Expr, ...]:
        return ()

    def to_source(self) -> str:
        """The expression in tree-language syntax (fully parenthesised where precedence needs it)."""
        return _print(self, 0)


@attrs.frozen
class Literal(Expr):
    """A number, percentage (stored as a fraction), string, boolean or null."""

    value: float | int | str | bool | None
    percent: bool = False


@attrs.frozen
class Name(Expr):
    """A bare name: a metric, a parameter, a source (in ``count(orders)``) or a dimension (in rule filters)."""

    name: str


@attrs.frozen
class Column(Expr):
    """``source.column``."""

    source: str
    column: str


@attrs.frozen
class Shift(Expr):
    """``metric[-k]``: the metric ``k`` periods earlier in the same slice."""

    name: str
    offset: int


@attrs.frozen
class Call(Expr):
    """``name(arg, …, key=value)``."""

    name: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()

    def children(self) -> tuple[Expr, ...]:
        return self.args + tuple(v for _, v in self.kwargs)


@attrs.frozen
class Unary(Expr):
    """``-x`` or ``not x``."""

    op: str
    operand: Expr

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)


@attrs.frozen
class Binary(Expr):
    """Arithmetic (``+ - * /``), comparison (``== != < <= > >=``) or logic (``and or``)."""

    op: str
    left: Expr
    right: Expr

    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)


@attrs.frozen
class InList(Expr):
    """``x in [a, b]`` / ``x not in [a, b]``."""

    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False

    def children(self) -> tuple[Expr, ...]:
        return (self.operand, *self.items)


@attrs.frozen
class IsNull(Expr):
    """``x is null`` / ``x is not null``."""

    operand: Expr
    negated: bool = False

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of an expression, parents before children."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))


ARITHMETIC = ("+", "-", "*", "/")
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
_PRECEDENCE = {"or": 1, "and": 2, "not": 3, **{c: 4 for c in COMPARISONS}, "in": 4, "is": 4,
               "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7}


def _format_number(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _print(node: Expr, outer: int) -> str:
    match node:
        case Literal(value=None):
            return "null"
        case Literal(value=bool() as b):
            return "true" if b else "false"
        case Literal(value=str() as s):
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
        case Literal(value=v, percent=True):
            return _format_number(round(v * 100, 12)) + "%"
        case Literal(value=v):
            return _format_number(v)
        case Name(name=n):
            return spell(n)
        case Column(source=s, column=c):
            return f"{spell(s)}.{spell(c)}"
        case Shift(name=n, offset=k):
            return f"{spell(n)}[{k}]"
        case Call(name=n, args=args, kwargs=kwargs):
            parts = [_print(a, 0) for a in args] + [f"{spell(k)}={_print(v, 0)}" for k, v in kwargs]
            return f"{n}({', '.join(parts)})"
        case Unary(op="-", operand=x):
            text, mine = "-" + _print(x, _PRECEDENCE["neg"]), _PRECEDENCE["neg"]
        case Unary(op="not", operand=x):
            text, mine = "not " + _print(x, _PRECEDENCE["not"]), _PRECEDENCE["not"]
        case Binary(op=op, left=a, right=b):
            mine = _PRECEDENCE[op]
            # Left-associative: the right operand needs brackets at equal precedence.
            text = f"{_print(a, mine)} {op} {_print(b, mine + 1)}"
        case InList(operand=x, items=items, negated=neg):
            mine = _PRECEDENCE["in"]
            text = f"{_print(x, mine + 1)} {'not in' if neg else 'in'} [{', '.join(_print(i, 0) for i in items)}]"
        case IsNull(operand=x, negated=neg):
            mine = _PRECEDENCE["is"]
            text = f"{_print(x, mine + 1)} is {'not null' if neg else 'null'}"
        case _:  # pragma: no cover - every node type is listed above
            raise TypeError(f"cannot print {node!r}")
    return f"({text})" if mine < outer else text


# --------------------------------------------------------------------------- statements


@attrs.frozen
class MetaEntry:
    """One ``key value`` line of a metadata block (``label "Revenue"``, ``unit RUB`` …)."""

    key: str
    value: Any
    span: Span | None = attrs.field(eq=False, repr=False, default=None)


@attrs.frozen
class Statement:
    span: Span | None = attrs.field(eq=False, repr=False, kw_only=True, default=None)


@attrs.frozen
class TreeHeader(Statement):
    name: str
    title: str | None = None


@attrs.frozen
class GrainStmt(Statement):
    grain: str


@attrs.frozen
class ColumnBinding:
    """``amount = invoices.Quantity * invoices.UnitPrice``: a library column as a row-level expression."""

    column: str
    expr: Expr
    span: Span | None = attrs.field(eq=False, repr=False, default=None)


@attrs.frozen
class SourceBinding:
    """``orders = invoices { … }``: the library's source ``orders`` is the tree's ``invoices``.

    Attributes:
        library_source: the source name the library's metrics read (``orders``).
        source: the tree's source it stands for (the same name when written ``orders { … }``).
        columns: the library's columns, each bound to an expression over ``source``.
        span: the ``orders = invoices`` part; ``source_span``: the tree source's name.
    """

    library_source: str
    source: str
    columns: tuple[ColumnBinding, ...] = ()
    span: Span | None = attrs.field(eq=False, repr=False, default=None)
    source_span: Span | None = attrs.field(eq=False, repr=False, default=None)


@attrs.frozen
class ImportStmt(Statement):
    """``import crm`` (every metric whose sources the tree declares) or ``import crm (ltv, aov)`` (those only);
    ``… with orders = invoices { amount = … }`` binds the libraries' sources and columns to the tree's."""

    libraries: tuple[str, ...]
    only: tuple[tuple[str, ...], ...] = ()
    bindings: tuple[SourceBinding, ...] = ()


@attrs.frozen
class CurrencyStmt(Statement):
    """``currency GBP``: the unit of every metric declared ``unit currency`` (the libraries' money metrics)."""

    currency: str


@attrs.frozen
class IncludeStmt(Statement):
    path: str


@attrs.frozen
class ParamDef(Statement):
    name: str
    value: float
    percent: bool = False
    meta: tuple[MetaEntry, ...] = ()


@attrs.frozen
class SourceDef(Statement):
    name: str
    time: str | None = None
    dimensions: tuple[str, ...] = ()
    entity: str | None = None
    meta: tuple[MetaEntry, ...] = ()
    time_format: str | None = None
    timezone: str | None = None
    entry_spans: tuple[tuple[str, Span | None], ...] = attrs.field(default=(), eq=False, repr=False)
    format_span: Span | None = attrs.field(default=None, eq=False, repr=False)
    timezone_span: Span | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class MetricDef(Statement):
    name: str
    formula: Expr | None = None
    where: Expr | None = None
    meta: tuple[MetaEntry, ...] = ()
    name_span: Span | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class LinkStmt(Statement):
    """``parent <~ child, child``: influence without a formula."""

    parent: str
    children: tuple[str, ...]
    name_spans: tuple[Span | None, ...] = attrs.field(default=(), eq=False, repr=False)


@attrs.frozen
class TargetStmt(Statement):
    condition: Expr
    deadline: str
    start: str | None = None
    every: str | None = None
    checkpoints: tuple[tuple[str, float], ...] = ()
    where: Expr | None = None
    meta: tuple[MetaEntry, ...] = ()


@attrs.frozen
class AlertStmt(Statement):
    condition: Expr
    where: Expr | None = None
    meta: tuple[MetaEntry, ...] = ()


@attrs.frozen
class Module:
    """One parsed tree file."""

    statements: tuple[Statement, ...]
    source: Any = attrs.field(eq=False, repr=False, default=None)
