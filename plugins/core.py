"""The built-in functions of the tree language, registered like any third-party plugin.

Aggregations over source rows: sum, count, count_distinct, avg, min, max.
Scalar functions over metric values: abs, log, exp, sqrt, power, round, min, max,
coalesce, if. Window functions over the periods of a slice: change, delta,
rolling_sum, rolling_avg, cumulative_sum.
"""

from __future__ import annotations

from metrictree import lazy

from metrictree.functions import ROWS, Aggregate, AggregateContext, Computed, Frame, Partial, Scalar
from metrictree.hookspecs import hookimpl

# Arrow is imported when a function first runs, not when the plugin is loaded (`metrictree check`).
pa = lazy.module("pyarrow")
pc = lazy.module("pyarrow.compute")

# --------------------------------------------------------------------------- helpers


def _float(values):
    return pc.cast(values, pa.float64()) if not pa.types.is_floating(values.type) else values


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t)


def _needs_numbers(name: str):
    def check(*types: pa.DataType) -> str | None:
        for t in types:
            if t is not None and not _is_number(t):
                return f"{name}() needs a numeric column, but the column holds {t}"
        return None
    return check


def _null_where(values, mask):
    """``values`` with nulls where ``mask`` is true (mask nulls count as false)."""
    return pc.if_else(pc.fill_null(mask, False), pa.scalar(None, values.type), values)


def _int_arg(value, name: str, fn: str) -> int:
    raw = value.as_py() if isinstance(value, pa.Scalar) else value
    if not isinstance(raw, int | float) or isinstance(raw, bool) or raw != int(raw) or raw < 1:
        raise ValueError(f"{fn}() needs a whole number of periods ≥ 1 for {name}, got {raw!r}")
    return int(raw)


# --------------------------------------------------------------------------- aggregates


def _plan_sum(ctx: AggregateContext, x):
    return [Partial(_summable(x), "sum", 0)]


_INT64_LIMIT = 2**63


def _summable(x):
    """Whole numbers whose sum could pass 2**63 summed as 38-digit decimals: exactly, never wrapping.

    Arrow's integer sums wrap around on overflow (two amounts of 2**63-1 would sum to -2). One pass for the
    column's bounds tells whether any group's sum could overflow; only then are the values widened, so the
    usual columns keep their fast integer sums. A sum that needs the decimals becomes a float metric.
    """
    if not isinstance(x, pa.Array | pa.ChunkedArray) or not pa.types.is_integer(x.type) or len(x) == 0:
        return x
    bounds = pc.min_max(x)
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    if lo is None or max(abs(lo), abs(hi)) * len(x) < _INT64_LIMIT:
        return x
    return pc.cast(x, pa.decimal128(38, 0))


def _plan_count(ctx: AggregateContext, x=ROWS):
    return [Partial(None, "count_all", 0)] if x is ROWS else [Partial(x, "count", 0)]


def _plan_count_distinct(ctx: AggregateContext, x):
    return [Partial(x, "count_distinct", 0)]


def _plan_avg(ctx: AggregateContext, x):
    return [Partial(_float(x), "sum", 0.0), Partial(x, "count", 0)]


def _finish_avg(total, count):
    empty = pc.equal(count, 0)
    return Computed(pc.divide(_float(total), _null_where(_float(count), empty)), ((empty, "no rows to average"),))


def _plan_extreme(how):
    return lambda ctx, x: [Partial(x, how, None)]


def _finish_extreme(values):
    return Computed(values, ((pc.is_null(values), "no rows with a value"),))


AGGREGATES = (
    Aggregate("sum", _plan_sum, check=_needs_numbers("sum"), doc="Sum of a column (0 when no rows)."),
    Aggregate("count", _plan_count, min_args=1, check=lambda *t: None,
              doc="count(source) counts rows; count(source.column) counts non-null values."),
    Aggregate("count_distinct", _plan_count_distinct, doc="Number of distinct non-null values."),
    Aggregate("avg", _plan_avg, _finish_avg, check=_needs_numbers("avg"), doc="Mean of a column."),
    # Numbers only: a metric's values are numbers, so the smallest date or text could not be shown.
    Aggregate("min", _plan_extreme("min"), _finish_extreme, check=_needs_numbers("min"), doc="Smallest value."),
    Aggregate("max", _plan_extreme("max"), _finish_extreme, check=_needs_numbers("max"), doc="Largest value."),
)

# --------------------------------------------------------------------------- scalars


def _abs(x):
    return pc.abs(x)


def _log(x):
    bad = pc.less_equal(x, 0)
    return Computed(pc.ln(_null_where(_float(x), bad)), ((bad, "log of a value ≤ 0"),))


def _sqrt(x):
    bad = pc.less(x, 0)
    return Computed(pc.sqrt(_null_where(_float(x), bad)), ((bad, "square root of a negative value"),))


def _exp(x):
    values = pc.exp(_float(x))
    big = pc.is_inf(values)
    return Computed(_null_where(values, big), ((big, "the result overflows a float"),))


def _power(x, y):
    values = pc.power(_float(x), _float(y))
    bad = pc.or_(pc.is_nan(values), pc.is_inf(values))
    return Computed(_null_where(values, bad), ((bad, "undefined here (e.g. a negative base with a "
                                                      "fractional exponent, or 0 to a negative power)"),))


def _round(x, digits=0):
    return pc.round(_float(x), ndigits=_digits(digits))


def _digits(value) -> int:
    if isinstance(value, pa.Array | pa.ChunkedArray):
        # A constant broadcast to a column (round(3.14159, 2)): one value for every row.
        distinct = pc.unique(value).to_pylist()
        if len(distinct) != 1:
            raise ValueError("round() needs one number of digits for every row, not a column of them")
        value = distinct[0]
    raw = value.as_py() if isinstance(value, pa.Scalar) else value
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not -300 <= raw <= 300 or raw != int(raw):
        raise ValueError(f"round() needs a whole number of digits (-300 … 300), got {raw!r}")
    return int(raw)


def _coalesce(*xs):
    return pc.coalesce(*xs)


def _if(condition, then, otherwise):
    if pa.types.is_null(then.type) and not pa.types.is_null(otherwise.type):
        then = pc.cast(then, otherwise.type)
    elif pa.types.is_null(otherwise.type) and not pa.types.is_null(then.type):
        otherwise = pc.cast(otherwise, then.type)
    elif then.type != otherwise.type:
        then, otherwise = _float(then), _float(otherwise)
    return pc.if_else(condition, then, otherwise)


def _least(*xs):
    return pc.min_element_wise(*xs, skip_nulls=False)


def _greatest(*xs):
    return pc.max_element_wise(*xs, skip_nulls=False)


def _earlier(frame: Frame, m, k: int):
    """The value ``k`` periods earlier in the same slice, and why it is missing where it is."""
    before = frame.shift(m, -k)
    # Shifting a column with no nulls finds the rows whose earlier period is outside the data.
    outside = pc.is_null(frame.shift(pa.repeat(pa.scalar(True), len(m)), -k))
    notes = ((outside, f"{k} period(s) earlier is before the first period of the data"),
             (pc.and_(pc.is_null(before), pc.invert(outside)), f"the value {k} period(s) earlier is null"))
    return before, notes


def _change(frame: Frame, m, periods=1):
    k = _int_arg(periods, "periods", "change")
    before, notes = _earlier(frame, m, k)
    zero = pc.equal(before, 0)
    ratio = pc.divide(_float(m), _null_where(_float(before), zero))
    return Computed(pc.subtract(ratio, 1.0), ((zero, f"the value {k} period(s) earlier is 0"), *notes))


def _delta(frame: Frame, m, periods=1):
    k = _int_arg(periods, "periods", "delta")
    before, notes = _earlier(frame, m, k)
    return Computed(pc.subtract(m, before), notes)


def _rolling_sum(frame: Frame, m, n):
    k = _int_arg(n, "n", "rolling_sum")
    total = frame.cumulative_sum(m)
    before = frame.shift(total, -k)
    # The first k-1 periods of a slice have no full window: null, not a partial sum.
    complete = pc.is_valid(frame.shift(total, -(k - 1))) if k > 1 else pc.is_valid(total)
    windowed = pc.subtract(total, pc.fill_null(before, 0))
    # cumulative_sum counts nulls as 0: a window holding a null is unknown, not a smaller sum.
    missing = frame.cumulative_sum(pc.cast(pc.is_null(m), pa.int64()))
    holes = pc.greater(pc.subtract(missing, pc.fill_null(frame.shift(missing, -k), 0)), 0)
    holes = pc.and_(holes, complete)
    return Computed(_null_where(windowed, pc.or_(pc.invert(complete), holes)),
                    ((pc.invert(complete), f"the {k}-period window starts before the first period of the data"),
                     (holes, f"a value in the {k}-period window is null")))


def _rolling_avg(frame: Frame, m, n):
    k = _int_arg(n, "n", "rolling_avg")
    summed = _rolling_sum(frame, m, k)
    return Computed(pc.divide(_float(summed.values), float(k)), summed.notes)


def _cumulative_sum(frame: Frame, m):
    # Where m itself is undefined so is its running total (later totals skip it, as SQL's SUM does).
    return _null_where(frame.cumulative_sum(m), pc.is_null(m))


SCALARS = (
    Scalar("abs", _abs, doc="Absolute value."),
    Scalar("log", _log, doc="Natural logarithm; null with a reason for values ≤ 0."),
    Scalar("exp", _exp, doc="e to the power x."),
    Scalar("sqrt", _sqrt, doc="Square root; null with a reason for negative values."),
    Scalar("power", _power, min_args=2, max_args=2, doc="power(x, y) = x to the power y."),
    Scalar("round", _round, min_args=1, max_args=2, doc="round(x, digits=0)."),
    Scalar("min", _least, min_args=2, max_args=None, doc="The smallest of its arguments (null if any is null)."),
    Scalar("max", _greatest, min_args=2, max_args=None, doc="The largest of its arguments (null if any is null)."),
    Scalar("coalesce", _coalesce, min_args=2, max_args=None, doc="The first argument that is not null."),
    Scalar("if", _if, min_args=3, max_args=3, doc="if(condition, then, otherwise)."),
    Scalar("change", _change, min_args=1, max_args=2, window=True,
           doc="change(m) = m / m[-1] - 1; change(m, k) compares with k periods earlier."),
    Scalar("delta", _delta, min_args=1, max_args=2, window=True, doc="delta(m) = m - m[-1]."),
    Scalar("rolling_sum", _rolling_sum, min_args=2, max_args=2, window=True,
           doc="rolling_sum(m, n): sum over this and the n-1 previous periods."),
    Scalar("rolling_avg", _rolling_avg, min_args=2, max_args=2, window=True,
           doc="rolling_avg(m, n): mean over this and the n-1 previous periods."),
    Scalar("cumulative_sum", _cumulative_sum, window=True, doc="Running total from the first period of the data."),
)


@hookimpl
def metrictree_functions(register):
    for function in AGGREGATES + SCALARS:
        register(function)



# --------------------------------------------------------------------------- SQL forms (backends)


def _sql_forms():
    from metrictree.backends.forms import SqlForm, SqlPartial
    from sqlglot import exp

    def count(ctx, x=ROWS):
        return [SqlPartial(None, "count_all", 0)] if x is ROWS else [SqlPartial(x, "count", 0)]

    return (
        SqlForm("sum", lambda ctx, x: [SqlPartial(x, "sum", 0)]),
        SqlForm("count", count),
        SqlForm("count_distinct", lambda ctx, x: [SqlPartial(x, "count_distinct", 0)]),
        SqlForm("avg", lambda ctx, x: [SqlPartial(exp.cast(x, exp.DataType.build("double")), "sum", 0.0),
                                       SqlPartial(x, "count", 0)]),
        SqlForm("min", lambda ctx, x: [SqlPartial(x, "min", None)]),
        SqlForm("max", lambda ctx, x: [SqlPartial(x, "max", None)]),
    )


@hookimpl
def metrictree_sql_forms(register):
    for form in _sql_forms():
        register(form)
