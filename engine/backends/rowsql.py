"""Row-level tree expressions (``where`` filters, aggregate arguments) as sqlglot expressions.

The twin of `formulas.evaluate` at row level: the same operators with the same meaning
(``/`` is a float division whose zero denominators make the row undefined and are counted,
``and``/``or`` are three-valued, a null is neither ``in`` nor ``not in`` a list). Every
identifier is a quoted `exp.Column` and every value an `exp.Literal`, so nothing in a tree
file or in the data reaches the engine as SQL text of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs
import pyarrow as pa
from sqlglot import exp

from .. import syntax as s
from ..errors import DataError, error
from ..functions import ROWS

_COMPARE = {"==": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}
_ARITHMETIC = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul}

DOUBLE = exp.DataType.build("double")
INT = exp.DataType.build("int")


def column(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def literal(value) -> exp.Expression:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))
    return exp.Literal.string(str(value))


def is_boolean(node: exp.Expression, schema: pa.Schema) -> bool:
    """Whether a row-level SQL expression is a condition (summed as 1 per true row)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Predicate | exp.Connector | exp.Not | exp.Boolean | exp.In | exp.Is):
        return True
    if isinstance(node, exp.If):
        return is_boolean(node.args["true"], schema)
    if isinstance(node, exp.Column) and node.name in schema.names:
        return pa.types.is_boolean(schema.field(node.name).type)
    return False


def _scalar_calls() -> dict[str, Callable[..., exp.Expression]]:
    return {
        "abs": lambda x: exp.Abs(this=x),
        "coalesce": lambda *xs: exp.Coalesce(this=xs[0], expressions=list(xs[1:])),
        "if": lambda c, a, b: exp.If(this=c, true=a, false=b),
        "min": lambda *xs: exp.Least(this=xs[0], expressions=list(xs[1:])),
        "max": lambda *xs: exp.Greatest(this=xs[0], expressions=list(xs[1:])),
        "round": lambda x, digits=None: exp.Round(this=exp.cast(x, DOUBLE), decimals=digits),
    }


@attrs.define
class RowSql:
    """Builds the SQL of row-level expressions over one source.

    Attributes:
        schema: the source's columns (to tell conditions from numbers).
        params: the params in force.
        sources: the tree's source names (``count(orders)`` passes the rows themselves).
        backend: the backend's name, for error messages.
        notes: ``(condition, reason)`` for every division met: the rows where it is undefined.
    """

    schema: pa.Schema
    params: Mapping[str, float]
    sources: frozenset[str]
    backend: str
    notes: list[tuple[exp.Expression, str]] = attrs.field(factory=list)

    def build(self, node: s.Expr):
        method = getattr(self, f"_{type(node).__name__.lower()}", None)
        if method is None:
            raise DataError(error(f"{node.to_source()} cannot run on the {self.backend} backend", node.span,
                                  "evaluate this tree on Arrow data instead", "backend"))
        return method(node)

    def _literal(self, node: s.Literal):
        return literal(node.value)

    def _name(self, node: s.Name):
        if node.name in self.sources:
            return ROWS
        return literal(float(self.params[node.name]))

    def _column(self, node: s.Column):
        return column(node.column)

    def _number(self, value: exp.Expression) -> exp.Expression:
        return exp.cast(value, INT) if is_boolean(value, self.schema) else value

    def _binary(self, node: s.Binary):
        left, right = self.build(node.left), self.build(node.right)
        if node.op == "/":
            denominator = exp.cast(self._number(right), DOUBLE)
            self.notes.append((exp.EQ(this=denominator, expression=literal(0.0)),
                               f"division by zero: {node.right.to_source()} is 0"))
            return exp.Paren(this=exp.Div(this=exp.cast(self._number(left), DOUBLE),
                                          expression=exp.Nullif(this=denominator, expression=literal(0.0))))
        if node.op in _ARITHMETIC:
            return exp.Paren(this=_ARITHMETIC[node.op](this=self._number(left), expression=self._number(right)))
        if node.op in _COMPARE:
            return exp.Paren(this=_COMPARE[node.op](this=left, expression=right))
        joined = exp.And if node.op == "and" else exp.Or
        return exp.Paren(this=joined(this=left, expression=right))

    def _unary(self, node: s.Unary):
        operand = self.build(node.operand)
        if node.op == "not":
            return exp.Paren(this=exp.Not(this=operand))
        return exp.Paren(this=exp.Neg(this=self._number(operand)))

    def _inlist(self, node: s.InList):
        operand = self.build(node.operand)
        items = [self.build(i) for i in node.items]
        if not items:  # nothing is in an empty list; a null is neither in nor out of it
            found = exp.If(this=exp.Is(this=operand, expression=exp.null()), true=exp.null(), false=exp.false())
        else:
            found = exp.In(this=operand, expressions=items)
        return exp.Paren(this=exp.Not(this=found) if node.negated else found)

    def _isnull(self, node: s.IsNull):
        test = exp.Is(this=self.build(node.operand), expression=exp.null())
        return exp.Paren(this=exp.Not(this=test) if node.negated else test)

    def _call(self, node: s.Call):
        builder = _scalar_calls().get(node.name)
        if builder is None or node.kwargs:
            raise DataError(error(f"{node.name}() inside an aggregate has no SQL form, so {node.to_source()} "
                                  f"cannot run on the {self.backend} backend", node.span,
                                  "compute it in a derived metric, or evaluate this tree on Arrow data", "backend"))
        return builder(*(self.build(a) for a in node.args))


class SliceSql(RowSql):
    """A rule's ``where`` slice, whose names are the source's dimensions (columns), as a row condition."""

    def _name(self, node: s.Name):
        return column(node.name)


def slice_condition(where: s.Expr, schema: pa.Schema, backend: str) -> exp.Expression:
    """The slice ``where`` (``region == "North" and segment in ["new"]``) as a SQL condition: a row is kept
    where it is true, so a null dimension is in no slice — as `formulas.as_arrow_filter` keeps rows."""
    return SliceSql(schema, {}, frozenset(), backend).build(where)
