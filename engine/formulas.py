"""Evaluate an expression over Arrow columns, vectorised, with reasons for every undefined value.

One evaluator serves both places expressions run: row-level (``where`` filters and
the arguments of aggregations, over a source's rows) and metric-level (derived
formulas, over the small aggregate table). What a name means is the caller's
business, given as a `Scope`; what an operator does is a table lookup.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from . import syntax as s
from .errors import DataError, error
from .functions import Computed, Frame, Scalar, Values, as_computed

Value = Values | pa.Scalar


@attrs.define
class Scope:
    """How names resolve where an expression runs, and where reasons for nulls are collected.

    Attributes:
        name: ``name -> value`` for `syntax.Name` nodes (metrics, params, sources).
        column: ``node -> values`` for `syntax.Column` nodes (row level only).
        shift: ``node -> values`` for `syntax.Shift` nodes (metric level only).
        call: ``node, evaluated args -> value`` for calls the scope handles itself (aggregates);
            return ``None`` to fall through to the scalar functions.
        scalars: the scalar functions available.
        frame: the periods × slices layout, for window functions.
        length: the number of rows (to broadcast constants).
        notes: ``(mask, reason)`` for every value made null by an undefined operation.
    """

    name: Callable[[s.Name], Value]
    scalars: dict[str, Scalar]
    length: int
    column: Callable[[s.Column], Value] | None = None
    shift: Callable[[s.Shift], Value] | None = None
    call: Callable[[s.Call], Value | None] | None = None
    frame: Frame | None = None
    notes: list[tuple[Values, str]] = attrs.field(factory=list)


def evaluate(expr: s.Expr, scope: Scope) -> Value:
    return _EVALUATORS[type(expr)](expr, scope)


def _literal(node: s.Literal, scope: Scope) -> Value:
    if node.value is None:
        return pa.scalar(None, pa.null())
    if isinstance(node.value, float):
        return pa.scalar(node.value, pa.float64())
    return pa.scalar(node.value)


def _name(node: s.Name, scope: Scope) -> Value:
    return scope.name(node)


def _column(node: s.Column, scope: Scope) -> Value:
    assert scope.column is not None, "columns are resolved by the compiler to row-level scopes only"
    return scope.column(node)


def _shift(node: s.Shift, scope: Scope) -> Value:
    assert scope.shift is not None, "shifts are resolved by the compiler to metric-level scopes only"
    return scope.shift(node)


def _is_number(value: Value) -> bool:
    t = value.type
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_null(t)


def _as_float(value: Value) -> Value:
    if pa.types.is_floating(value.type):
        return value
    return pc.cast(value, pa.float64())


def _arithmetic(node: s.Binary, scope: Scope, left: Value, right: Value) -> Value:
    for side, value in ((node.left, left), (node.right, right)):
        if not _is_number(value) and not pa.types.is_boolean(value.type):
            raise DataError(error(f"'{side.to_source()}' is {value.type}, not a number, in {node.to_source()}",
                                  side.span, "arithmetic needs numeric columns; check the column's type in the data",
                                  "type"))
    if node.op == "/":
        return _divide(node, scope, left, right)
    if pa.types.is_boolean(left.type):
        left = pc.cast(left, pa.int64())
    if pa.types.is_boolean(right.type):
        right = pc.cast(right, pa.int64())
    op = {"+": pc.add_checked, "-": pc.subtract_checked, "*": pc.multiply_checked}[node.op]
    if pa.types.is_decimal(left.type) or pa.types.is_decimal(right.type):
        left, right = _as_float(left), _as_float(right)
    try:
        return op(left, right)
    except pa.ArrowInvalid:
        # Whole numbers past 2**63: Arrow's plain kernels would wrap around; floats do not.
        return op(_as_float(left), _as_float(right))


def _divide(node: s.Binary, scope: Scope, left: Value, right: Value) -> Value:
    numerator, denominator = _as_float(left), _as_float(right)
    zero = pc.equal(denominator, 0.0)
    if isinstance(zero, pa.Scalar):
        if zero.as_py():
            scope.notes.append((_full(scope.length, True), f"division by zero: {node.right.to_source()} is 0"))
            return pa.nulls(scope.length, pa.float64()) if not isinstance(left, pa.Scalar) else pa.scalar(None,
                                                                                                         pa.float64())
        return pc.divide(numerator, denominator)
    safe = pc.if_else(pc.fill_null(zero, False), pa.scalar(None, pa.float64()), denominator)
    scope.notes.append((zero, f"division by zero: {node.right.to_source()} is 0"))
    return pc.divide(numerator, safe)


def _full(length: int, value: bool) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.bool_()), length)


_COMPARE = {"==": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal, ">": pc.greater,
            ">=": pc.greater_equal}


def _compare(node: s.Binary, scope: Scope, left: Value, right: Value) -> Value:
    try:
        return _COMPARE[node.op](left, right)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        raise DataError(error(f"cannot compare {left.type} with {right.type} in {node.to_source()}", node.span,
                              "compare values of the same kind, e.g. a text column with a string in double quotes",
                              "type")) from None


def _logic(node: s.Binary, scope: Scope, left: Value, right: Value) -> Value:
    for side, value in ((node.left, left), (node.right, right)):
        if not pa.types.is_boolean(value.type) and not pa.types.is_null(value.type):
            raise DataError(error(f"'{side.to_source()}' is not a condition", side.span,
                                  f"'{node.op}' joins comparisons, e.g. orders.status == \"paid\"", "type"))
    return (pc.and_kleene if node.op == "and" else pc.or_kleene)(left, right)


def _binary(node: s.Binary, scope: Scope) -> Value:
    left, right = evaluate(node.left, scope), evaluate(node.right, scope)
    if node.op in s.ARITHMETIC:
        return _arithmetic(node, scope, left, right)
    if node.op in _COMPARE:
        return _compare(node, scope, left, right)
    return _logic(node, scope, left, right)


def _unary(node: s.Unary, scope: Scope) -> Value:
    value = evaluate(node.operand, scope)
    if pa.types.is_null(value.type):
        return value
    if node.op == "not":
        if not pa.types.is_boolean(value.type):
            raise DataError(error(f"'{node.operand.to_source()}' is not a condition", node.operand.span,
                                  "'not' negates a comparison, e.g. not orders.status == \"paid\"", "type"))
        return pc.invert(value)
    if pa.types.is_boolean(value.type) or pa.types.is_unsigned_integer(value.type):
        value = pc.cast(value, pa.int64())
    if not _is_number(value):
        raise DataError(error(f"'{node.operand.to_source()}' is {value.type}, not a number, in {node.to_source()}",
                              node.operand.span, "a minus sign needs a number; check the column's type in the data",
                              "type"))
    try:
        return pc.negate_checked(value)
    except pa.ArrowInvalid:  # -(-2**63)
        return pc.negate(_as_float(value))


def _kind(t: pa.DataType) -> str | None:
    """What a value is to a person: text, number, true/false, time (``None`` for a bare null)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):
        return None
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_boolean(t):
        return "true/false"
    if pa.types.is_temporal(t):
        return "time"
    return str(t)


def _in_list(node: s.InList, scope: Scope) -> Value:
    value = evaluate(node.operand, scope)
    items = [evaluate(i, scope) for i in node.items]
    value_type = value.type.value_type if pa.types.is_dictionary(value.type) else value.type
    kind = _kind(value_type)
    # Like `==`, `in` does not compare text with numbers (a silent cast would match nothing, or the
    # wrong rows); text items may name dates, as in `orders.day in ["2026-10-05"]`.
    wrong = {_kind(i.type) for i in items} - {None, kind} - ({"text"} if kind == "time" else set())
    if kind is not None and wrong:
        raise DataError(error(f"cannot look for {' or '.join(sorted(wrong))} values in {kind} values "
                              f"({value.type}) in {node.to_source()}", node.span,
                              "list values of the column's kind, e.g. text in double quotes", "type"))
    options = pa.array([i.as_py() for i in items])
    if kind == "number" and pa.types.is_floating(options.type) and not pa.types.is_floating(value_type):
        value, value_type = pc.cast(value, pa.float64()), pa.float64()  # orders.qty in [1, 2.5]
    try:
        options = options.cast(value_type) if len(options) else pa.array([], value_type)
        found = pc.is_in(value, value_set=options)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        raise DataError(error(f"cannot look for {options.type} values in {value.type} in {node.to_source()}",
                              node.span, "list values of the column's kind", "type")) from None
    # A null is neither in nor out of the list, as with `==` and `!=`: the row is not kept either way.
    found = pc.if_else(pc.is_null(value), pa.scalar(None, pa.bool_()), found)
    return pc.invert(found) if node.negated else found


def _is_null(node: s.IsNull, scope: Scope) -> Value:
    value = evaluate(node.operand, scope)
    return pc.is_valid(value) if node.negated else pc.is_null(value)


def _broadcast(value: Value, length: int) -> Values:
    if isinstance(value, pa.Scalar):
        if pa.types.is_null(value.type):
            return pa.nulls(length, pa.float64())
        return pa.repeat(value, length)
    return value


def _call(node: s.Call, scope: Scope) -> Value:
    if scope.call is not None:
        handled = scope.call(node)
        if handled is not None:
            return handled
    fn = scope.scalars[node.name]
    args = [evaluate(a, scope) for a in node.args]
    kwargs = {k: evaluate(v, scope) for k, v in node.kwargs}
    try:
        if fn.window:
            args = [_broadcast(a, scope.length) for a in args[:1]] + args[1:]
            result = as_computed(fn.impl(scope.frame, *args, **kwargs))
        else:
            if all(isinstance(a, pa.Scalar) for a in args):
                args = [_broadcast(a, scope.length) for a in args]
            result = as_computed(fn.impl(*args, **kwargs))
    except (ValueError, TypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(error(f"{node.name}() cannot be computed here: {exc}", node.span,
                              fn.doc or None, "function")) from None
    scope.notes.extend((mask, f"{node.name}(): {reason}") for mask, reason in result.notes)
    return result.values


_EVALUATORS: dict[type, Callable[[s.Expr, Scope], Value]] = {
    s.Literal: _literal,
    s.Name: _name,
    s.Column: _column,
    s.Shift: _shift,
    s.Binary: _binary,
    s.Unary: _unary,
    s.InList: _in_list,
    s.IsNull: _is_null,
    s.Call: _call,
}


def as_array(value: Value, length: int) -> Values:
    """A result as a column of ``length`` rows (constants are repeated)."""
    return _broadcast(value, length)


__all__ = ["Computed", "Scope", "as_array", "evaluate"]


# --------------------------------------------------------------------------- slices as Arrow filters

_FILTER_OPS = {"==": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal, ">": pc.greater,
               ">=": pc.greater_equal, "and": pc.and_kleene, "or": pc.or_kleene, "+": pc.add, "-": pc.subtract,
               "*": pc.multiply, "/": pc.divide}


def as_arrow_filter(expr: s.Expr) -> pc.Expression:
    """A slice over dimensions (``segment == "new" and region in ["North"]``) as an Arrow filter expression.

    Names are columns (``pc.field``); the result filters a table or dataset the way ``where`` filters rows:
    a row is kept only where the condition is true, so a null dimension matches neither ``in`` nor
    ``not in``. Used by targets and alerts with a ``where`` slice.

    >>> str(as_arrow_filter(s.Binary("==", s.Name("segment"), s.Literal("new"))))
    '(segment == "new")'
    """
    from .errors import UsageError

    def build(node: s.Expr) -> pc.Expression:
        if isinstance(node, s.Name):
            return pc.field(node.name)
        if isinstance(node, s.Literal):
            return pc.scalar(node.value)
        if isinstance(node, s.Binary):
            return _FILTER_OPS[node.op](build(node.left), build(node.right))
        if isinstance(node, s.Unary):
            operand = build(node.operand)
            return pc.invert(operand) if node.op == "not" else pc.negate(operand) if node.op == "-" else operand
        if isinstance(node, s.IsNull):
            operand = build(node.operand)
            return pc.is_valid(operand) if node.negated else pc.is_null(operand)
        if isinstance(node, s.InList):
            values = [i.value if isinstance(i, s.Literal) else None for i in node.items]
            if any(not isinstance(i, s.Literal) for i in node.items):
                raise UsageError(error(f"the list in {node.to_source()} may only hold values", node.span,
                                       'e.g. region in ["North", "East"]', "slice"))
            try:
                options = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise UsageError(error(f"the list in {node.to_source()} mixes text and numbers", node.span,
                                       "list values of one kind", "slice")) from None
            operand = build(node.operand)
            found = pc.is_in(operand, value_set=options)
            return pc.and_kleene(pc.invert(found), pc.is_valid(operand)) if node.negated else found
        raise UsageError(error(f"a slice can only compare dimensions with values, not {node.to_source()}",
                               node.span, 'e.g. where segment == "new"', "slice"))

    return build(expr)
