"""One source's base metrics as SQL queries: the partials grouped by period and slice, in the engine.

The plan mirrors `aggregating.aggregate` partial for partial: each aggregate call's SQL form
gives the same partials as its Arrow plan, in the same order, so the `CallPlan`s built here
are finished by the aggregates' own ``finish`` on the small table that comes back. The
Arrow planner also runs once over an empty table of the source's columns: it checks the
types and options exactly as on Arrow data (same errors) and gives the type of each partial
column, so that the engine's answer is cast to what the Arrow backend would have produced.

The queries, for a source with ``by=[region]``::

    SELECT __period, __d0 AS region, COALESCE(SUM(__v0) FILTER (WHERE __m0), 0) AS __p0, …
    FROM (SELECT <period of the time column> AS __period, region AS __d0, amount AS __v0,
                 status = 'paid' AS __m0 FROM <table> WHERE <time range>) AS __rows
    GROUP BY __period, __d0

and one query per custom partial (customer states): its SQL form's SELECT over the kept
rows, given as the common table ``__kept``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import attrs
import pyarrow as pa
from sqlglot import exp

from .. import aggregating
from .. import syntax as s
from ..aggregating import CallPlan
from ..errors import DataError, error
from ..functions import ROWS, Registry
from ..model import Metric, Source, Tree
from .forms import SqlContext, SqlForm, SqlRows
from .rowsql import DOUBLE, RowSql, column, is_boolean, literal

PERIOD = aggregating.PERIOD
INT = exp.DataType.build("int")
_AGGREGATES = {"sum": exp.Sum, "count": exp.Count, "min": exp.Min, "max": exp.Max, "mean": exp.Avg,
               "any": exp.LogicalOr, "all": exp.LogicalAnd}
_EPOCH = "1970-01-01"
ROWS = "__rows"  # the main query's count of rows per group (the group of no period: rows with no time)


@attrs.frozen
class SourcePlan:
    """The queries of one source and how their columns make its base metrics.

    Attributes:
        main: the grouped query: ``__period``, the dimensions, one ``__p…`` column per partial.
        extra: ``(column, query)`` per custom partial; each query gives the keys and ``__value``.
        calls: the `CallPlan`s of each base metric.
        dimensions: the ``by`` dimensions the source has.
        types: the Arrow type of every output column (what the Arrow backend would give).
    """

    main: exp.Select
    extra: tuple[tuple[str, exp.Select], ...]
    calls: Mapping[str, tuple[CallPlan, ...]]
    dimensions: tuple[str, ...]
    types: Mapping[str, pa.DataType]

    def queries(self) -> list[exp.Select]:
        return [self.main, *(q for _, q in self.extra)]


def local_time(time: exp.Expression, type_: pa.DataType) -> exp.Expression:
    """The time column as wall-clock time where the data lives (a zoned timestamp in its zone)."""
    if pa.types.is_timestamp(type_) and type_.tz:
        return exp.AtTimeZone(this=time if isinstance(time, exp.Column) else exp.Paren(this=time),
                              zone=literal(type_.tz))
    return time


def period_expression(time: exp.Expression, type_: pa.DataType, grain: str) -> exp.Expression:
    """The period index of a time expression at ``grain``, as `periods.index` computes it."""
    local = local_time(time, type_)
    if grain in ("day", "week"):
        days = exp.DateDiff(this=exp.cast(local, "date"), expression=exp.cast(literal(_EPOCH), "date"),
                            unit=exp.var("DAY"))
        if grain == "day":
            return exp.cast(days, INT)
        # 1970-01-01 was a Thursday: weeks start on the Monday three days earlier (floor, also before 1970).
        shifted = exp.Paren(this=exp.Add(this=exp.cast(days, DOUBLE), expression=literal(3)))
        return exp.cast(exp.Floor(this=exp.Div(this=shifted, expression=literal(7.0))), INT)
    year = exp.cast(exp.Extract(this=exp.var("YEAR"), expression=local), INT)
    if grain == "year":
        return year
    unit, per_year = ("QUARTER", 4) if grain == "quarter" else ("MONTH", 12)
    part = exp.cast(exp.Extract(this=exp.var(unit), expression=local), INT)
    return exp.Paren(this=exp.Add(this=exp.Mul(this=year, expression=literal(per_year)),
                                  expression=exp.Sub(this=part, expression=literal(1))))


def _bound(day: dt.date, type_: pa.DataType) -> exp.Expression:
    if pa.types.is_timestamp(type_):
        return exp.cast(literal(f"{day.isoformat()} 00:00:00"), "timestamp")
    return exp.cast(literal(day.isoformat()), "date")


def time_range(time: exp.Expression, type_: pa.DataType, since: dt.date | None,
               until: dt.date | None) -> exp.Expression | None:
    """``since <= time < until`` in wall-clock time where the data lives (as `reading.read` filters)."""
    local = local_time(time, type_)
    tests = []
    if since is not None:
        tests.append(exp.GTE(this=local, expression=_bound(since, type_)))
    if until is not None:
        tests.append(exp.LT(this=local, expression=_bound(until, type_)))
    return exp.and_(*tests) if tests else None


def _aggregate(how: str, value: exp.Expression | None, mask: exp.Expression | None, boolean: bool):
    if how == "count_all" or value is None:
        agg = exp.Count(this=exp.Star())
    elif how == "count_distinct":
        agg = exp.Count(this=exp.Distinct(expressions=[value]))
    else:
        if how == "sum" and boolean:
            value = exp.cast(value, INT)  # true counts 1 (every engine casts a boolean to int; not all to bigint)
        agg = _AGGREGATES[how](this=value)
    if mask is not None:
        agg = exp.Filter(this=agg, expression=exp.Where(this=mask))
    if how == "sum":
        agg = exp.Coalesce(this=agg, expressions=[literal(0)])
    return agg


def _is_time(t: pa.DataType) -> bool:
    return pa.types.is_date(t) or pa.types.is_timestamp(t)


def _constant(node: s.Expr, params: Mapping[str, float]):
    if isinstance(node, s.Literal):
        return node.value
    if isinstance(node, s.Name) and node.name in params:
        return float(params[node.name])
    if isinstance(node, s.Unary) and node.op == "-" and isinstance(node.operand, s.Literal):
        return -node.operand.value
    raise DataError(error(f"the option {node.to_source()} must be a value", node.span, "e.g. window=90", "function"))


def plan(tree: Tree, source: Source, metrics: list[Metric], grain: str, by: list[str], params: Mapping[str, float],
         registry: Registry, forms: Mapping[str, SqlForm], relation: exp.Expression, schema: pa.Schema,
         dialect: str, backend: str, since: dt.date | None = None, until: dt.date | None = None) -> SourcePlan:
    """The queries computing ``metrics`` of ``source`` from ``relation`` (whose columns are ``schema``)."""
    # The Arrow planner over no rows: the same checks and errors, and the type of every partial.
    dry = aggregating.aggregate(tree, source, schema.empty_table(), metrics, grain, by, params, registry)
    dry_types = {name: t for table in (dry.table, *dry.extra) for name, t in zip(table.column_names,
                                                                                 table.schema.types, strict=True)}
    dims = dry.dimensions
    time_type = schema.field(source.time).type
    if source.time_format is not None or not _is_time(time_type):
        raise DataError(error(
            f"the time column '{source.time}' of source '{source.name}' holds {time_type}, which the {backend} "
            "backend does not parse", source.span, "store the times as dates or timestamps in the database (or a "
            "view that converts them), or evaluate this source from a file", "time-type"))
    if source.timezone is not None and pa.types.is_timestamp(time_type) and time_type.tz:
        time_type = pa.timestamp(time_type.unit, source.timezone)  # zoned times, seen in the source's zone
    # (naive times with a `timezone` are already wall-clock times of that zone: their periods are as they are)
    time = column(source.time)
    period = period_expression(time, time_type, grain)
    window = time_range(time, time_type, since, until)

    rows: dict[str, exp.Expression] = {PERIOD: period}
    rows.update({f"__d{i}": column(d) for i, d in enumerate(dims)})
    masks: dict[str, str] = {}  # where.to_source() → its row column
    values: dict[str, str] = {}  # value SQL → its row column
    partials: dict[tuple, str] = {}  # (value column, mask column, how) → output column
    aggregates: dict[str, exp.Expression] = {}
    extra: list[tuple[str, exp.Select]] = []
    types: dict[str, pa.DataType] = {PERIOD: pa.int32(), **{d: schema.field(d).type for d in dims}}
    calls: dict[str, tuple[CallPlan, ...]] = {}

    def row_column(prefix: str, registry_of: dict, key: str, expression: exp.Expression) -> str:
        if key not in registry_of:
            registry_of[key] = f"{prefix}{len(registry_of)}"
            rows[registry_of[key]] = expression
        return registry_of[key]

    def add(how: str, value: exp.Expression | None, mask: str | None, arrow_column: str) -> str:
        value_column = None if value is None or how == "count_all" else row_column(
            "__v", values, value.sql(dialect=dialect, identify=True), value)
        key = (value_column, mask, "count_all" if value_column is None else how)
        if key not in partials:
            name = partials[key] = f"__p{len(partials)}"
            value_ref = None if value_column is None else column(value_column)
            mask_ref = None if mask is None else column(mask)
            boolean = value is not None and is_boolean(value, schema)
            aggregates[name] = _aggregate(key[2], value_ref, mask_ref, boolean)
        types[partials[key]] = dry_types[arrow_column]
        return partials[key]

    for metric in metrics:
        builder = RowSql(schema, params, frozenset(tree.sources), backend)
        mask = mask_sql = None
        if metric.where is not None:
            mask_sql = builder.build(metric.where)
            mask = row_column("__m", masks, metric.where.to_source(), mask_sql)
        call_plans = []
        for call, arrow_plan in zip(aggregating.aggregate_calls(metric, registry), dry.calls[metric.name],
                                    strict=True):
            form = forms.get(call.name)
            if form is None:
                owner = registry.owners.get(("aggregate function", call.name), "an unknown plugin")
                raise DataError(error(
                    f"{call.name}() has no SQL form, so metric '{metric.name}' cannot run on the {backend} backend",
                    call.span, f"the plugin '{owner}' that provides {call.name}() must register a SqlForm through the "
                               "metrictree_sql_forms hook; until then, evaluate this source from Arrow data "
                               "(a Parquet or CSV file)", "backend"))
            builder.notes.clear()
            args = [builder.build(a) for a in call.args]
            kwargs = {k: _constant(v, params) for k, v in call.kwargs}
            fn = registry.aggregates[call.name]
            entity = column(source.entity) if fn.entity and source.entity else None
            ctx = SqlContext(source.name, grain, dialect, period, time, entity,
                             lambda t, tt=time_type: period_expression(t, tt, grain), pa.types.is_timestamp(time_type))
            planned = list(form.plan(ctx, *args, **{**fn.keywords, **kwargs}))
            if len(planned) != len(arrow_plan.columns):
                raise DataError(error(f"the SQL form of {call.name}() plans {len(planned)} partials, its Arrow plan "
                                      f"{len(arrow_plan.columns)}", call.span,
                                      "this is a problem in the plugin that provides the function", "function"))
            columns = []
            for partial, arrow_column in zip(planned, arrow_plan.columns, strict=True):
                if partial.how == "custom":
                    name = f"__pc{len(extra)}"
                    extra.append((name, _custom(partial, ctx, source, dims, relation, period, window, mask_sql,
                                                time, dialect)))
                    types[name] = dry_types[arrow_column]
                    columns.append(name)
                else:
                    columns.append(add(partial.how, partial.value, mask, arrow_column))
            notes = [n for n in builder.notes]
            if len(notes) != len(arrow_plan.undefined):
                raise DataError(error(f"{call.to_source()} cannot run on the {backend} backend", call.span,
                                      "evaluate this tree on Arrow data", "backend"))
            undefined = []
            for (condition, _), (arrow_column, reason) in zip(notes, arrow_plan.undefined, strict=True):
                flag = row_column("__m", masks, condition.sql(dialect=dialect, identify=True), condition)
                both = flag if mask is None else row_column("__m", masks, f"{mask} and {flag}", exp.and_(
                    column(mask), column(flag)))
                undefined.append((add("count_all", None, both, arrow_column), reason))
            call_plans.append(CallPlan(call, fn, tuple(columns), arrow_plan.empties, tuple(undefined)))
        calls[metric.name] = tuple(call_plans)

    inner = exp.select(*(e.as_(name, quoted=True) for name, e in rows.items())).from_(relation)
    if window is not None:
        # Rows with no time are kept, in the group of no period, to be counted (a warning says how many).
        inner = inner.where(exp.or_(exp.Is(this=column(source.time), expression=exp.null()), exp.Paren(this=window)))
    aggregates[ROWS] = exp.Count(this=exp.Star())
    keys = [column(PERIOD), *(column(f"__d{i}") for i in range(len(dims)))]
    outer = exp.select(column(PERIOD), *(column(f"__d{i}").as_(d, quoted=True) for i, d in enumerate(dims)),
                       *(a.as_(name, quoted=True) for name, a in aggregates.items()))
    outer = outer.from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("__rows", quoted=True))))
    main = outer.group_by(*keys)
    return SourcePlan(main, tuple(extra), calls, dims, types)


def _custom(partial, ctx: SqlContext, source: Source, dims, relation, period, window, mask, time,
            dialect: str) -> exp.Select:
    """The query of one custom partial: its SQL form's SELECT over the kept rows (``__kept``)."""
    if partial.query is None or partial.value is None or partial.value is ROWS:
        raise DataError(error("a custom SQL partial needs a value and a query", None,
                              "this is a problem in the plugin that provides the function", "function"))
    kept = exp.select(period.as_(PERIOD, quoted=True), *(column(d).as_(d, quoted=True) for d in dims),
                      partial.value.as_("__value", quoted=True), time.as_("__time", quoted=True)).from_(relation)
    condition = exp.and_(*(c for c in (window, mask) if c is not None)) if (window is not None or mask is not None) \
        else None
    if condition is not None:
        kept = kept.where(condition)
    rows = SqlRows("__kept", (PERIOD, *dims), ctx)
    query = partial.query(rows)
    ctes = [exp.CTE(this=kept, alias=exp.TableAlias(this=exp.to_identifier("__kept", quoted=True)))]
    own = query.args.get("with_")
    if own is not None:
        ctes.extend(own.expressions)
    query = query.copy()
    query.set("with_", exp.With(expressions=ctes))
    return query
