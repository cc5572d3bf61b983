"""CRM: customer states over time, survey scores, and the ``crm`` metric library.

Customer-state functions read a source's entity (``entity customer_id``) and time;
each counts customers per period and slice, after the metric's ``where`` filter:

=========================================  ==================================================================
``active_customers(orders, window=0)``     customers with activity in the period; with ``window=90``, a
                                           customer counts as active for 90 days after each activity
``new_customers(orders)``                  customers whose first activity ever falls in the period
``returning_customers(orders)``            active customers who were active before the period
``churned_customers(orders)``              active in the previous period, not in this one
``retained_customers(orders)``             active in the previous period and in this one
``reactivated_customers(orders, after=2)`` back in the period after at least ``after`` periods without activity
``repeat_customers(orders, min_purchases=2, over="period")``
                                           active customers with ≥ ``min_purchases`` rows in the period
                                           (``over="ever"``: up to the end of the period)
``customer_lifetime(orders)``              mean number of periods since each active customer's first activity,
                                           counting the first period as 1
=========================================  ==================================================================

Rows whose entity is null (guest checkouts) belong to no customer and are not counted.
States are taken within each slice: with ``by=["channel"]`` a customer who bought on
the app last month and only on the web this month has churned from the app slice.
Survey functions: ``nps(score)`` = % promoters (9–10) − % detractors (0–6) on a 0–10
scale, in points (−100 … 100); ``csat(score, positive_from=4)`` = the share of answers
at or above ``positive_from``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from metrictree import periods
from metrictree.functions import Aggregate, AggregateContext, Computed, Library, Partial, TreeFile
from metrictree.hookspecs import hookimpl

PERIOD, VALUE, TIME = "__period", "__value", "__time"
_NULL_KEY = "\x00null"


# --------------------------------------------------------------------------- presence tables


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _normalised(rows: pa.Table, keys: list[str]) -> pa.Table:
    """Plain string keys with nulls replaced, so that joins match null slices too.

    Arrow's joins never match a null key, so a null slice (a string, or any other dimension with
    nulls, cast to string for the join) gets a stand-in key that `_restored` turns back into null.
    """
    columns = {}
    for name in rows.column_names:
        column = rows.column(name)
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        if name in keys and name != PERIOD and (_is_text(column.type) or column.null_count):
            column = pc.fill_null(pc.cast(column, pa.string()), _NULL_KEY)
        columns[name] = column
    return pa.table(columns)


def _restored(table: pa.Table, rows: pa.Table, keys: list[str]) -> pa.Table:
    """Null slices back to null, and keys back to the type they have in ``rows``."""
    for name in keys:
        if name == PERIOD:
            continue
        original = rows.schema.field(name).type
        if pa.types.is_dictionary(original):
            original = original.value_type
        column = table.column(name)
        if pa.types.is_string(column.type):  # `_normalised` made it a string key
            column = pc.if_else(pc.equal(column, _NULL_KEY), pa.scalar(None, column.type), column)
            table = table.set_column(table.schema.get_field_index(name), name, pc.cast(column, original))
    return table


def _present(rows: pa.Table, keys: list[str]) -> pa.Table:
    """One row per (keys, customer) with activity, and its number of rows."""
    return rows.group_by([*keys, VALUE]).aggregate([([], "count_all")]).select([*keys, VALUE, "count_all"])


def _count(table: pa.Table, keys: list[str]) -> pa.Table:
    counted = table.group_by(keys).aggregate([([], "count_all")])
    return counted.rename_columns([c if c != "count_all" else VALUE for c in counted.column_names])


def _first_periods(rows: pa.Table) -> pa.Table:
    first = rows.group_by([VALUE]).aggregate([(PERIOD, "min")])
    return first.rename_columns([VALUE if c == VALUE else "__first" for c in first.column_names])


def _lag(values) -> pa.Array:
    """Each value's predecessor in the array (null for the first)."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return pa.concat_arrays([pa.nulls(1, values.type), values.slice(0, max(len(values) - 1, 0))])[: len(values)]


def _shifted(table: pa.Table, by: int) -> pa.Table:
    index = table.schema.get_field_index(PERIOD)
    return table.set_column(index, PERIOD, pc.add(table.column(PERIOD), pa.scalar(by, table.schema.field(
        PERIOD).type)))


def _counting(reduce):
    """Wrap a reduce over normalised rows, restoring null slices in its output.

    A row with no customer (a null entity: a guest checkout) is nobody's activity, so it is left out.
    """
    def wrapped(rows: pa.Table, keys: list[str]) -> pa.Table:
        if rows.column(VALUE).null_count:
            rows = rows.filter(pc.is_valid(rows.column(VALUE)))
        result = reduce(_normalised(rows, keys), keys)
        return _restored(result, rows, keys)
    wrapped.__doc__ = reduce.__doc__
    return wrapped


# --------------------------------------------------------------------------- customer states


@_counting
def _churned(rows, keys):
    present = _present(rows, keys).select([*keys, VALUE])
    lost = _shifted(present, 1).join(present, [*keys, VALUE], join_type="left anti")
    return _count(lost, keys)


@_counting
def _retained(rows, keys):
    present = _present(rows, keys).select([*keys, VALUE])
    kept = _shifted(present, 1).join(present, [*keys, VALUE], join_type="left semi")
    return _count(kept, keys)


@_counting
def _new(rows, keys):
    present = _present(rows, keys).join(_first_periods(rows), VALUE)
    return _count(present.filter(pc.equal(present.column(PERIOD), present.column("__first"))), keys)


@_counting
def _returning(rows, keys):
    present = _present(rows, keys).join(_first_periods(rows), VALUE)
    return _count(present.filter(pc.greater(present.column(PERIOD), present.column("__first"))), keys)


def _reactivated(after: int):
    @_counting
    def reduce(rows, keys):
        """Customers back after at least ``after`` periods without activity (in any slice)."""
        overall = rows.group_by([VALUE, PERIOD]).aggregate([]).sort_by([(VALUE, "ascending"), (PERIOD, "ascending")])
        entity, period = overall.column(VALUE), pc.cast(overall.column(PERIOD), pa.int64())
        same = pc.fill_null(pc.equal(entity, _lag(entity)), False)
        gap = pc.subtract(pc.subtract(period, _lag(period)), 1)
        back = pc.and_(same, pc.fill_null(pc.greater_equal(gap, after), False))
        flagged = overall.filter(back).select([VALUE, PERIOD])
        present = _present(rows, keys).join(flagged, [VALUE, PERIOD], join_type="left semi")
        return _count(present, keys)
    return reduce


def _active(window_days: int, grain: str):
    @_counting
    def reduce(rows, keys):
        """Customers active in the period, or within ``window_days`` after an activity."""
        if window_days <= 0:
            return _count(_present(rows, keys).select([*keys, VALUE]), keys)
        times = rows.column(TIME)
        if not pa.types.is_timestamp(times.type):
            times = pc.cast(pc.cast(times, pa.date32()), pa.timestamp("s"))
        until = pc.add(times, pa.scalar(window_days * 86_400 - 1, pa.duration("s")).cast(pa.duration(
            times.type.unit)))
        last = pc.cast(periods.index(until, grain), rows.schema.field(PERIOD).type)
        spans = pa.table({**{k: rows.column(k) for k in keys}, VALUE: rows.column(VALUE), "__last": last})
        spans = spans.group_by([*keys, VALUE, "__last"]).aggregate([])
        reach = pc.max(pc.subtract(spans.column("__last"), spans.column(PERIOD))).as_py() or 0
        pieces = []
        for step in range(reach + 1):
            covered = spans.filter(pc.less_equal(pc.add(spans.column(PERIOD), step), spans.column("__last")))
            pieces.append(_shifted(covered.select([*keys, VALUE]), step))
        return _count(pa.concat_tables(pieces).group_by([*keys, VALUE]).aggregate([]), keys)
    return reduce


def _repeat(min_purchases: int, over: str):
    @_counting
    def reduce(rows, keys):
        """Active customers with at least ``min_purchases`` rows in the period (or up to its end)."""
        present = _present(rows, keys)
        if over == "period":
            return _count(present.filter(pc.greater_equal(present.column("count_all"), min_purchases)), keys)
        per_period = rows.group_by([VALUE, PERIOD]).aggregate([([], "count_all")]).sort_by(
            [(VALUE, "ascending"), (PERIOD, "ascending")])
        running = pc.cumulative_sum(per_period.column("count_all"))
        entity = per_period.column(VALUE)
        starts = pc.fill_null(pc.not_equal(entity, _lag(entity)), True)
        # Running total within each customer: subtract the total reached before the customer's first row.
        offset = pc.if_else(starts, pc.subtract(running, per_period.column("count_all")), pa.scalar(None, pa.int64()))
        offset = pc.fill_null_forward(offset)
        ever = pc.subtract(running, offset)
        qualified = per_period.filter(pc.greater_equal(ever, min_purchases)).select([VALUE, PERIOD])
        return _count(present.join(qualified, [VALUE, PERIOD], join_type="left semi"), keys)
    return reduce


@_counting
def _lifetime(rows, keys):
    """Mean periods since first activity (first period = 1) over the period's active customers."""
    present = _present(rows, keys).join(_first_periods(rows), VALUE)
    age = pc.add(pc.subtract(pc.cast(present.column(PERIOD), pa.int64()), pc.cast(present.column("__first"),
                                                                                      pa.int64())), 1)
    aged = present.select(keys).append_column("__age", pc.cast(age, pa.float64()))
    mean = aged.group_by(keys).aggregate([("__age", "mean")])
    return mean.rename_columns([c if c != "__age_mean" else VALUE for c in mean.column_names])


def _state(name: str, doc: str, reduce_for, empty=0, keywords=None, check_kw=None):
    keywords = keywords or {}

    def plan(ctx: AggregateContext, source, **options):
        values = {**keywords, **options}
        if check_kw is not None:
            check_kw(values)
        return [Partial(ctx.entity, "custom", empty, reduce=reduce_for(ctx, values))]

    return Aggregate(name, plan, entity=True, lookback=True, keywords=keywords, doc=doc,
                     check=lambda *types: None if types == (None,) else
                     f"{name}() takes the source itself, e.g. {name}(orders)")


def _whole(name: str, minimum: int):
    def check(values: dict) -> None:
        for key in ("window", "after", "min_purchases"):
            if key in values:
                v = values[key]
                if not isinstance(v, int | float) or isinstance(v, bool) or v != int(v) or v < minimum:
                    raise ValueError(f"{key} must be a whole number ≥ {minimum}, got {v!r}")
        if values.get("over", "period") not in ("period", "ever"):
            raise ValueError(f"over must be \"period\" or \"ever\", got {values['over']!r}")
    return check


STATES = (
    _state("active_customers", "Customers active in the period (window=N days keeps them active N days).",
           lambda ctx, kw: _active(int(kw["window"]), ctx.grain), keywords={"window": 0},
           check_kw=_whole("active_customers", 0)),
    _state("new_customers", "Customers whose first activity falls in the period.", lambda ctx, kw: _new),
    _state("returning_customers", "Active customers who were active before.", lambda ctx, kw: _returning),
    _state("churned_customers", "Active in the previous period, not in this one.", lambda ctx, kw: _churned),
    _state("retained_customers", "Active in the previous period and in this one.", lambda ctx, kw: _retained),
    _state("reactivated_customers", "Back after at least `after` periods without activity.",
           lambda ctx, kw: _reactivated(int(kw["after"])), keywords={"after": 2},
           check_kw=_whole("reactivated_customers", 1)),
    _state("repeat_customers", "Active customers with at least `min_purchases` purchases (over period or ever).",
           lambda ctx, kw: _repeat(int(kw["min_purchases"]), kw["over"]),
           keywords={"min_purchases": 2, "over": "period"}, check_kw=_whole("repeat_customers", 1)),
    _state("customer_lifetime", "Mean periods since first activity of the period's active customers.",
           lambda ctx, kw: _lifetime, empty=None),
)


# --------------------------------------------------------------------------- surveys


def _numeric(name):
    def check(*types):
        t = types[0]
        if t is None or not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
            return f"{name}() needs a numeric score column, but the column holds {t}"
        return None
    return check


def _plan_nps(ctx, score):
    return [Partial(pc.greater_equal(score, 9), "sum", 0), Partial(pc.less_equal(score, 6), "sum", 0),
            Partial(score, "count", 0)]


def _finish_nps(promoters, detractors, answers):
    none = pc.equal(answers, 0)
    n = pc.if_else(none, pa.scalar(None, pa.float64()), pc.cast(answers, pa.float64()))
    score = pc.multiply(pc.divide(pc.subtract(pc.cast(promoters, pa.float64()), pc.cast(detractors, pa.float64())),
                                  n), 100.0)
    return Computed(score, ((none, "no survey answers"),))


def _plan_csat(ctx, score, positive_from=4):
    return [Partial(pc.greater_equal(score, positive_from), "sum", 0), Partial(score, "count", 0)]


def _finish_csat(positive, answers):
    none = pc.equal(answers, 0)
    n = pc.if_else(none, pa.scalar(None, pa.float64()), pc.cast(answers, pa.float64()))
    return Computed(pc.divide(pc.cast(positive, pa.float64()), n), ((none, "no survey answers"),))


SURVEYS = (
    Aggregate("nps", _plan_nps, _finish_nps, check=_numeric("nps"),
              doc="Net promoter score: % promoters (9–10) − % detractors (0–6), in points."),
    Aggregate("csat", _plan_csat, _finish_csat, keywords={"positive_from": 4}, check=_numeric("csat"),
              doc="Share of answers at or above positive_from (default 4 on a 1–5 scale)."),
)


@hookimpl
def metrictree_functions(register):
    for function in STATES + SURVEYS:
        register(function)


@hookimpl
def metrictree_libraries(register):
    register(Library.bundled("crm", "CRM: LTV, AOV, frequency, retention, churn, ARPU, NPS, CSAT"))


@hookimpl
def metrictree_trees(register):
    register(TreeFile.bundled("crm_ltv", "Why did LTV move? AOV × frequency × lifetime, churn and engagement."))


# --------------------------------------------------------------------------- SQL forms (backends)
# The customer states as queries over the kept rows (`SqlRows`): the same definitions as the Arrow
# reductions above, row for row — presence per (period, slice, customer), a slice's null matching a
# null slice, a null customer matching no one.


def _sql():
    import attrs
    from metrictree.backends import forms as f
    from sqlglot import exp

    def keys(rows, table=None):
        return [f.col(k, table) for k in rows.keys]

    def present(rows, counted=False):
        """One row per (keys, customer) with activity (``__n``: its rows)."""
        extra = [f.count_rows().as_("__n", quoted=True)] if counted else [exp.Literal.number(1).as_("__hit",
                                                                                                    quoted=True)]
        return exp.select(*keys(rows), f.col(VALUE), *extra).from_(f.table(rows.table)).group_by(*keys(rows),
                                                                                                  f.col(VALUE))

    def counted(rows, source: str, where=None, table=None):
        query = exp.select(*(c.as_(k, quoted=True) for c, k in zip(keys(rows, table), rows.keys, strict=True)),
                           f.count_rows().as_(VALUE, quoted=True)).from_(f.table(source, table))
        return (query.where(where) if where is not None else query).group_by(*keys(rows, table))

    def first_periods(rows):
        return exp.select(f.col(VALUE), exp.Min(this=f.col(PERIOD)).as_("__first", quoted=True)).from_(
            f.table(rows.table)).group_by(f.col(VALUE))

    def next_period(rows, a: str, b: str):
        return exp.and_(exp.EQ(this=f.col(PERIOD, b), expression=exp.Add(this=f.col(PERIOD, a),
                                                                         expression=exp.Literal.number(1))),
                        rows.same_keys(a, b, rows.keys[1:]),
                        exp.EQ(this=f.col(VALUE, b), expression=f.col(VALUE, a)))

    def lost_or_kept(lost: bool):
        def query(rows):
            join = "left" if lost else "inner"
            moved = exp.Add(this=f.col(PERIOD, "a"), expression=exp.Literal.number(1))
            dims = [f.col(k, "a") for k in rows.keys[1:]]
            select = exp.select(moved.as_(PERIOD, quoted=True), *(d.as_(k, quoted=True) for d, k in
                                                                 zip(dims, rows.keys[1:], strict=True)),
                                f.count_rows().as_(VALUE, quoted=True)).from_(f.table("__present", "a"))
            select = select.join(f.table("__present", "b"), on=next_period(rows, "a", "b"), join_type=join)
            if lost:
                select = select.where(exp.Is(this=f.col("__hit", "b"), expression=exp.null()))
            return f.with_tables(select.group_by(moved, *dims), [("__present", present(rows))])
        return query

    def against_first(later: bool):
        def query(rows):
            test = (exp.GT if later else exp.EQ)(this=f.col(PERIOD, "p"), expression=f.col("__first", "f"))
            select = counted(rows, "__present", test, "p").join(
                f.table("__first", "f"), on=exp.EQ(this=f.col(VALUE, "p"), expression=f.col(VALUE, "f")))
            return f.with_tables(select, [("__present", present(rows)), ("__first", first_periods(rows))])
        return query

    def same_customer_period(a: str, b: str):
        return exp.and_(exp.EQ(this=f.col(VALUE, a), expression=f.col(VALUE, b)),
                        exp.EQ(this=f.col(PERIOD, a), expression=f.col(PERIOD, b)))

    def reactivated(after: int):
        def query(rows):
            overall = exp.select(f.col(VALUE), f.col(PERIOD)).distinct().from_(f.table(rows.table)).where(
                exp.Not(this=exp.Is(this=f.col(VALUE), expression=exp.null())))
            before = f.window(exp.Lag(this=f.col(PERIOD)), [f.col(VALUE)], f.col(PERIOD))
            lagged = exp.select(f.col(VALUE), f.col(PERIOD), before.as_("__before", quoted=True)).from_(
                f.table("__overall"))
            gap = exp.Sub(this=exp.Sub(this=f.col(PERIOD), expression=f.col("__before")),
                          expression=exp.Literal.number(1))
            flagged = exp.select(f.col(VALUE), f.col(PERIOD)).from_(f.table("__lagged")).where(
                exp.GTE(this=gap, expression=exp.Literal.number(after)))
            select = counted(rows, "__present", None, "p").join(f.table("__flagged", "q"),
                                                                on=same_customer_period("p", "q"))
            return f.with_tables(select, [("__present", present(rows)), ("__overall", overall),
                                          ("__lagged", lagged), ("__flagged", flagged)])
        return query

    def active(window_days: int, grain: str):
        def query(rows):
            if window_days <= 0:
                return f.with_tables(counted(rows, "__present"), [("__present", present(rows))])
            time = f.col(TIME)
            if not rows.context.time_is_timestamp:
                time = exp.cast(time, "timestamp")
            until = exp.Add(this=time, expression=exp.Interval(this=exp.Literal.string(str(window_days * 86_400 - 1)),
                                                               unit=exp.var("SECOND")))
            last = rows.context.period_of(until)
            spans = exp.select(*keys(rows), f.col(VALUE), last.as_("__last", quoted=True)).distinct().from_(
                f.table(rows.table))
            per_period = {"day": 1, "week": 7, "month": 28, "quarter": 89, "year": 365}[grain]
            reach = window_days // per_period + 2
            steps = exp.values([(k,) for k in range(reach + 1)], alias="__steps", columns=["__step"])
            shifted = exp.Add(this=f.col(PERIOD, "s"), expression=f.col("__step", "__steps"))
            covered = exp.select(shifted.as_(PERIOD, quoted=True),
                                 *(f.col(k, "s").as_(k, quoted=True) for k in rows.keys[1:]),
                                 f.col(VALUE, "s")).distinct().from_(f.table("__spans", "s")).join(
                steps, on=exp.LTE(this=shifted, expression=f.col("__last", "s")))
            return f.with_tables(counted(rows, "__covered"), [("__spans", spans), ("__covered", covered)])
        return query

    def repeat(min_purchases: int, over: str):
        def query(rows):
            enough = exp.GTE(this=f.col("__n", "p"), expression=exp.Literal.number(min_purchases))
            if over == "period":
                return f.with_tables(counted(rows, "__present", enough, "p"), [("__present", present(rows, True))])
            per = exp.select(f.col(VALUE), f.col(PERIOD), f.count_rows().as_("__n", quoted=True)).from_(
                f.table(rows.table)).group_by(f.col(VALUE), f.col(PERIOD))
            running = f.window(exp.Sum(this=f.col("__n")), [f.col(VALUE)], f.col(PERIOD), running=True)
            ever = exp.select(f.col(VALUE), f.col(PERIOD), running.as_("__ever", quoted=True)).from_(f.table("__per"))
            qualified = exp.select(f.col(VALUE), f.col(PERIOD)).from_(f.table("__ever")).where(
                exp.GTE(this=f.col("__ever"), expression=exp.Literal.number(min_purchases)))
            select = counted(rows, "__present", None, "p").join(f.table("__qualified", "q"),
                                                                on=same_customer_period("p", "q"))
            return f.with_tables(select, [("__present", present(rows)), ("__per", per), ("__ever", ever),
                                          ("__qualified", qualified)])
        return query

    def lifetime(rows):
        age = exp.Add(this=exp.Sub(this=f.col(PERIOD, "p"), expression=f.col("__first", "f")),
                      expression=exp.Literal.number(1))
        mean = exp.Avg(this=exp.cast(age, exp.DataType.build("double")))
        select = exp.select(*(c.as_(k, quoted=True) for c, k in zip(keys(rows, "p"), rows.keys, strict=True)),
                            mean.as_(VALUE, quoted=True)).from_(f.table("__present", "p")).join(
            f.table("__first", "f"), on=exp.EQ(this=f.col(VALUE, "p"), expression=f.col(VALUE, "f"))).group_by(
            *keys(rows, "p"))
        return f.with_tables(select, [("__present", present(rows)), ("__first", first_periods(rows))])

    def customers_only(query):
        """The query over the kept rows that have a customer (a null entity is nobody's activity)."""
        def wrapped(rows):
            known = exp.select(exp.Star()).from_(f.table(rows.table)).where(
                exp.Not(this=exp.Is(this=f.col(VALUE), expression=exp.null())))
            built = query(attrs.evolve(rows, table="__customers"))
            own = built.args.get("with_")
            ctes = [exp.CTE(this=known, alias=exp.TableAlias(this=exp.to_identifier("__customers", quoted=True))),
                    *(own.expressions if own is not None else [])]
            built.set("with_", exp.With(expressions=ctes))
            return built
        return wrapped

    def state(name: str, query_for, empty=0):
        def plan(ctx, source, **options):
            return [f.SqlPartial(ctx.entity, "custom", empty, query=customers_only(query_for(ctx, options)))]
        return f.SqlForm(name, plan)

    states = (
        state("active_customers", lambda ctx, kw: active(int(kw["window"]), ctx.grain)),
        state("new_customers", lambda ctx, kw: against_first(False)),
        state("returning_customers", lambda ctx, kw: against_first(True)),
        state("churned_customers", lambda ctx, kw: lost_or_kept(True)),
        state("retained_customers", lambda ctx, kw: lost_or_kept(False)),
        state("reactivated_customers", lambda ctx, kw: reactivated(int(kw["after"]))),
        state("repeat_customers", lambda ctx, kw: repeat(int(kw["min_purchases"]), kw["over"])),
        state("customer_lifetime", lambda ctx, kw: lifetime, empty=None),
    )

    def nps(ctx, score):
        return [f.SqlPartial(exp.GTE(this=score, expression=exp.Literal.number(9)), "sum", 0),
                f.SqlPartial(exp.LTE(this=score, expression=exp.Literal.number(6)), "sum", 0),
                f.SqlPartial(score, "count", 0)]

    def csat(ctx, score, positive_from=4):
        threshold = exp.Literal.number(repr(positive_from) if isinstance(positive_from, float) else positive_from)
        return [f.SqlPartial(exp.GTE(this=score, expression=threshold), "sum", 0), f.SqlPartial(score, "count", 0)]

    return (*states, f.SqlForm("nps", nps), f.SqlForm("csat", csat))


@hookimpl
def metrictree_sql_forms(register):
    for form in _sql():
        register(form)
