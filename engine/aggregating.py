"""Base metrics: aggregate the raw rows of one source per (period, slice), in one grouped pass.

Every base metric of a source is planned into `Partial` columns (sums, counts,
distinct counts …); identical partials are shared between metrics; then one
``group_by`` over (period, dimensions) computes them all. The result is small: one
row per period and slice that has data. `evaluating` lays it on the full grid of
periods × slices and *finishes* each aggregate there.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from . import periods
from . import syntax as s
from .errors import DataError, error
from .formulas import Scope, as_array, evaluate
from .functions import ROWS, Aggregate, AggregateContext, Partial, Registry
from .model import Metric, Source, Tree
from .reading import Need

PERIOD = "__period"


@attrs.frozen
class CallPlan:
    """The partial columns of one aggregate call, by name in `SourceAggregate.table`."""

    call: s.Call
    function: Aggregate
    columns: tuple[str, ...]
    empties: tuple[object, ...]


@attrs.frozen
class SourceAggregate:
    """One source's base metrics before they are laid on the grid.

    Attributes:
        source: the source.
        table: ``__period``, the ``by`` dimensions, one column per distinct partial; one row per group.
        calls: for each base metric, the plans of its aggregate calls, in formula order.
        dimensions: the ``by`` dimensions the source has (all of them, or it is not split at all).
    """

    source: Source
    table: pa.Table
    calls: Mapping[str, tuple[CallPlan, ...]]
    dimensions: tuple[str, ...]


def aggregate_calls(metric: Metric, registry: Registry) -> list[s.Call]:
    """The aggregate calls of a base metric's formula (not their nested scalar calls)."""
    calls, stack = [], [metric.formula]
    while stack:
        node = stack.pop()
        if isinstance(node, s.Call) and node.name in registry.aggregates and _reads_source(node):
            calls.append(node)
            continue
        stack.extend(reversed(node.children()))
    return calls


def _reads_source(call: s.Call) -> bool:
    return any(isinstance(n, s.Column | s.Name) for a in call.args for n in s.walk(a))


def needs(tree: Tree, metrics: list[Metric], registry: Registry, by: list[str]) -> list[Need]:
    """The columns of one source its base metrics read, each with the tree line that needs it."""
    source = tree.sources[metrics[0].source]
    found: list[Need] = [Need(source.time, source.span, "its time column")]
    for dim in by:
        if dim in source.dimensions:
            found.append(Need(dim, source.span, f"the dimension '{dim}'"))
    for metric in metrics:
        nodes = list(s.walk(metric.formula)) + (list(s.walk(metric.where)) if metric.where else [])
        found.extend(Need(n.column, n.span, f"read by metric '{metric.name}'") for n in nodes
                     if isinstance(n, s.Column))
        if any(registry.aggregates[c.name].entity for c in aggregate_calls(metric, registry)):
            if source.entity is None:
                raise DataError(error(
                    f"metric '{metric.name}' needs customers (an entity), but source '{source.name}' declares none",
                    metric.span, f"add `entity <column>` to source {source.name}", "entity"))
            found.append(Need(source.entity, source.span, "its entity column"))
    return found


def aggregate(tree: Tree, source: Source, table: pa.Table, metrics: list[Metric], grain: str, by: list[str],
              params: Mapping[str, float], registry: Registry) -> SourceAggregate:
    period = periods.index(table.column(source.time), grain)
    dims = tuple(d for d in by if d in source.dimensions)
    columns: dict[str, pa.ChunkedArray] = {}
    masks: dict[str, pa.ChunkedArray | None] = {}
    partials: dict[tuple, str] = {}
    arrays: dict[str, object] = {}
    aggregations: list[tuple] = []
    plans: dict[str, tuple[CallPlan, ...]] = {}

    def column(node: s.Column):
        if node.column not in columns:
            columns[node.column] = table.column(node.column)
        return columns[node.column]

    def name(node: s.Name):
        if node.name in tree.sources:
            return ROWS
        return pa.scalar(float(params[node.name]))

    def mask_of(metric: Metric):
        if metric.where is None:
            return None, ""
        key = metric.where.to_source()
        if key not in masks:
            scope = Scope(name=name, column=column, scalars=registry.scalars, length=table.num_rows)
            value = evaluate(metric.where, scope)
            if not pa.types.is_boolean(value.type):
                raise DataError(error(f"the filter of '{metric.name}' is not a condition", metric.where.span,
                                      'compare a column with a value, e.g. orders.status == "paid"', "type"))
            masks[key] = pc.fill_null(as_array(value, table.num_rows), False)
        return masks[key], key

    def add_partial(partial: Partial, mask, mask_key: str) -> str:
        values, how = partial.values, partial.how
        if mask is not None and values is None:
            values, how, identity = mask, "sum", ("mask", mask_key)
        elif values is None:
            identity = ("rows",)
        else:
            identity = (id(values), mask_key)
        key = (*identity, how)
        if key not in partials:
            col = f"__p{len(partials)}"
            partials[key] = col
            if values is not None:
                if mask is not None and identity[0] != "mask":
                    values = pc.if_else(mask, as_array(values, table.num_rows), pa.scalar(None, values.type))
                if pa.types.is_boolean(values.type) and how == "sum":
                    values = pc.cast(values, pa.int64())
                arrays[col] = as_array(values, table.num_rows)
                aggregations.append((col, how, _options(how)))
            else:
                aggregations.append(([], "count_all"))
        return partials[key]

    for metric in metrics:
        mask, mask_key = mask_of(metric)
        call_plans = []
        for call in aggregate_calls(metric, registry):
            fn = registry.aggregates[call.name]
            scope = Scope(name=name, column=column, scalars=registry.scalars, length=table.num_rows)
            args = [evaluate(a, scope) for a in call.args]
            kwargs = {k: _constant(evaluate(v, scope)) for k, v in call.kwargs}
            if fn.check is not None:
                problem = fn.check(*(None if a is ROWS else a.type for a in args))
                if problem:
                    raise DataError(error(f"{problem} (in source '{source.name}')", call.span,
                                          "check the column's type in the data, or cast it when exporting", "type"))
            ctx = AggregateContext(source.name, table.num_rows, period,
                                   table.column(source.entity) if fn.entity else None, mask)
            try:
                planned = fn.plan(ctx, *args, **kwargs)
            except (ValueError, TypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(error(f"{call.name}() cannot aggregate here: {exc}", call.span, fn.doc or None,
                                      "function")) from None
            cols = tuple(add_partial(p, mask, mask_key) for p in planned)
            call_plans.append(CallPlan(call, fn, cols, tuple(p.empty for p in planned)))
        plans[metric.name] = tuple(call_plans)

    keys = {PERIOD: period, **{d: table.column(d) for d in dims}}
    grouped_input = pa.table({**keys, **arrays})
    grouped = grouped_input.group_by(list(keys), use_threads=True).aggregate(aggregations)
    # Arrow names outputs `<column>_<how>`; rename them back to the partial names.
    renamed = {}
    for spec in aggregations:
        col, how = (spec[0], spec[1])
        out = f"{col}_{how}" if col else "count_all"
        target = col or next(c for k, c in partials.items() if k[0] == "rows")
        renamed[out] = target
    grouped = grouped.rename_columns([renamed.get(c, c) for c in grouped.column_names])
    return SourceAggregate(source, grouped, plans, dims)


def _options(how: str):
    if how == "sum":
        return pc.ScalarAggregateOptions(skip_nulls=True, min_count=0)
    if how in ("count", "count_distinct"):
        return pc.CountOptions(mode="only_valid")
    return None


def _constant(value):
    return value.as_py() if isinstance(value, pa.Scalar) else value
