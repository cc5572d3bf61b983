"""Evaluate a tree over data: base aggregations per source, then derived formulas on the small table.

The flow, for ``tree.evaluate(data, grain="month", by=["region"])``:

1. plan — the metrics asked for and everything their formulas need, in dependency order;
2. read and aggregate each source once (`reading`, `aggregating`);
3. lay every source's groups on one *grid*: every period from the first to the last
   × every slice seen in any source, so that ``m[-1]`` is simply the row one period
   earlier, and a slice with no rows in a period has a sum of 0, not a missing row;
4. finish the aggregates and compute the derived metrics in order, vectorised over
   the grid (`formulas`);
5. trim to ``start``..``end``, order by period then dimensions, and report every null
   with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from . import aggregating, backends, lookalikes, periods
from . import syntax as s
from .errors import DataError, Span, UsageError, did_you_mean, error
from .formulas import Scope, as_array, evaluate as evaluate_expr
from .functions import Registry, as_computed
from .model import Metric, Tree
from .pluginmanager import registry as default_registry

NULLS_METADATA_KEY = b"metrictree.nulls"


@attrs.frozen
class NullReason:
    """Why some values of a metric are null.

    Attributes:
        metric: the metric.
        reason: the cause, in words.
        rows: how many rows of the result it affects.
        first: the period and slice of the first affected row, e.g. ``{"period": "2026-10", "region": "North"}``.
        span: the metric in the tree file.
    """

    metric: str
    reason: str
    rows: int
    first: Mapping[str, Any]
    span: Span | None = attrs.field(default=None, eq=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        location = str(self.span) if self.span else None
        return {"metric": self.metric, "reason": self.reason, "rows": self.rows, "first": dict(self.first),
                "at": location}

    def __str__(self) -> str:
        where = ", ".join(f"{k} {v}" for k, v in self.first.items())
        return f"{self.metric}: null in {self.rows} row(s) — {self.reason} (first: {where})"


@attrs.frozen
class Skipped:
    """Rows of a source a metric could not count, and why (guest orders have no customer to count).

    Attributes:
        metric: the metric.
        rows: how many rows of the data read were left out.
        reason: the cause, in words.
        span: the metric in the tree file.
    """

    metric: str
    rows: int
    reason: str
    span: Span | None = attrs.field(default=None, eq=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "rows": self.rows, "reason": self.reason,
                "at": str(self.span) if self.span else None}

    def __str__(self) -> str:
        return f"{self.metric}: {self.reason}"


@attrs.frozen
class Evaluation:
    """The result of evaluating a tree.

    Attributes:
        table: ``period``, the ``by`` columns, one column per metric; ordered by period then dimensions.
        nulls: why values are null, one entry per metric and cause.
        grain: the grain used.
        by: the dimensions the result is sliced by.
        covered: the first and last periods that have rows in the data read (``None``: no data read).
        warnings: what was left out of the result and why (rows with no time), in words.
        skipped: rows some metrics could not count (rows with no customer id, for customer states).
    """

    table: pa.Table
    nulls: tuple[NullReason, ...]
    grain: str
    by: tuple[str, ...]
    covered: tuple[str, str] | None = None
    warnings: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    def to_table(self) -> pa.Table:
        """The table, with the reasons for nulls in its schema metadata (see `null_reasons`)."""
        payload = json.dumps([n.to_dict() for n in self.nulls], ensure_ascii=False).encode()
        return self.table.replace_schema_metadata({**(self.table.schema.metadata or {}),
                                                   NULLS_METADATA_KEY: payload})


def null_reasons(table: pa.Table) -> list[dict[str, Any]]:
    """The reasons for nulls stored in a table returned by `Tree.evaluate`."""
    raw = (table.schema.metadata or {}).get(NULLS_METADATA_KEY)
    return json.loads(raw) if raw else []


# --------------------------------------------------------------------------- the grid


@attrs.frozen
class Grid:
    """Every period × every slice, slice-major: row ``i`` is slice ``i // periods``, period ``first + i % periods``.

    Implements `functions.Frame` for window functions.
    """

    first: int
    periods: int
    slices: pa.Table  # the by-dimension values of each slice, sorted
    keys: pa.Array  # one string key per slice, to find rows of a source's groups
    covered: tuple[int, int] | None = None  # the first and last periods with rows in the data read

    @property
    def size(self) -> int:
        return self.periods * self.slices.num_rows

    def position(self) -> pa.Array:
        """The period offset (0 … periods-1) of every row."""
        rows = _arange(self.size)
        return pc.subtract(rows, pc.multiply(pc.divide(rows, self.periods), self.periods))

    def shift(self, values, offset: int) -> pa.Array:
        values = as_array(values, self.size)
        target = pc.add(self.position(), offset)
        inside = pc.and_(pc.greater_equal(target, 0), pc.less(target, self.periods))
        index = pc.if_else(inside, pc.add(_arange(self.size), offset), pa.scalar(None, pa.int64()))
        return pc.take(values, index)

    def cumulative_sum(self, values) -> pa.Array:
        values = pc.fill_null(as_array(values, self.size), 0)
        running = pc.cumulative_sum(values)
        rows = _arange(self.size)
        slice_start = pc.multiply(pc.divide(rows, self.periods), self.periods)
        before = pc.take(running, pc.if_else(pc.greater(slice_start, 0), pc.subtract(slice_start, 1),
                                             pa.scalar(None, pa.int64())))
        return pc.subtract(running, pc.fill_null(before, pa.scalar(0, running.type)))


def _arange(n: int) -> pa.Array:
    return pa.array(range(n), pa.int64())


def _slice_keys(table: pa.Table, dims: Sequence[str]) -> pa.Array:
    if not dims:
        return pa.repeat(pa.scalar(""), table.num_rows)
    parts = [pc.cast(table.column(d), pa.string()) for d in dims]
    if len(parts) == 1:
        return pc.fill_null(parts[0], "\x00").combine_chunks() if isinstance(parts[0], pa.ChunkedArray) \
            else pc.fill_null(parts[0], "\x00")
    joined = pc.binary_join_element_wise(*parts, "\x1f", null_handling="replace", null_replacement="\x00")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def _grid(aggregates: list[aggregating.SourceAggregate], by: list[str], first: int | None,
          last: int | None, grain: str) -> Grid:
    split = [a for a in aggregates if len(a.dimensions) == len(by)]
    if by:
        tables = [a.table.select(by).cast(pa.schema([(d, pa.string()) for d in by])) for a in split]
        if tables:
            slices = pa.concat_tables(tables).group_by(by).aggregate([]).select(by)
        else:
            slices = pa.table({d: pa.array([], pa.string()) for d in by})
        slices = slices.sort_by([(d, "ascending") for d in by])
    else:
        slices = pa.table({"__one": [0]}).drop(["__one"])  # one slice: the whole data
    lows, highs = [], []
    for a in aggregates:
        low = pc.min(a.table.column(aggregating.PERIOD)).as_py()
        if low is None:  # rows without a time fall in no period: here, all of them
            raise DataError(error(f"the time column '{a.source.time}' of source '{a.source.name}' is null in "
                                  "every row", a.source.span, "fill in the time column of the data", "no-time"))
        lows.append(low)
        highs.append(pc.max(a.table.column(aggregating.PERIOD)).as_py())
    if not lows and (first is None or last is None):
        raise UsageError(error("the metrics asked for read no data, so they have no periods of their own",
                               hint="give both --from and --to (start= and end=), or ask for a metric that "
                                    "reads a source", code="no-periods"))
    if lows and first is not None and first > max(highs):
        # Only reachable when shifts read the rows before `first` (else reading finds no rows).
        ends, starts = periods.label(max(highs), grain), periods.label(first, grain)
        raise DataError(error(f"the data ends in {ends}, before {starts}: no rows from then on",
                              aggregates[0].source.span, "check the data passed and the --from period", "empty"))
    # Rows before `first` are only read when shifts look back; the grid still starts at `first`
    # when the data starts later, so the output covers the range asked for either way.
    first = min(lows + [first]) if first is not None else min(lows)
    last = last if last is not None else max(highs)
    return Grid(first, max(0, last - first + 1), slices, _slice_keys(slices, by),
                (min(lows), max(highs)) if lows else None)


def _lay_out(grid: Grid, agg: aggregating.SourceAggregate, by: list[str]) -> tuple[dict[str, pa.Array], bool]:
    """Each partial column of a source on the grid (empty groups filled); False if the source cannot be split."""
    if len(agg.dimensions) != len(by):
        return {}, False
    columns: dict[str, pa.Array] = {}
    for table in (agg.table, *agg.extra):
        columns.update(_lay_table(grid, table, by))
    return columns, True


def _lay_table(grid: Grid, table: pa.Table, by: list[str]) -> dict[str, pa.Array]:
    """The ``__p…`` columns of one table of groups, on the grid (null where the table has no group)."""
    slice_id = pc.index_in(_slice_keys(table, by), value_set=grid.keys)
    offset = pc.subtract(table.column(aggregating.PERIOD), grid.first)
    row = pc.add(pc.multiply(pc.cast(slice_id, pa.int64()), grid.periods), pc.cast(offset, pa.int64()))
    inside = pc.and_(pc.greater_equal(offset, 0), pc.less(offset, grid.periods))
    row = pc.if_else(inside, row, pa.scalar(None, pa.int64()))
    lookup = pc.index_in(_arange(grid.size), value_set=pc.drop_null(row))
    kept = pc.drop_null(pc.if_else(pc.is_valid(row), _arange(table.num_rows), pa.scalar(None, pa.int64())))
    columns = {}
    for name in table.column_names:
        if name.startswith("__p"):
            values = pc.take(pc.take(table.column(name), kept), lookup)
            columns[name] = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return columns


# --------------------------------------------------------------------------- evaluate


def normalise_by(tree: Tree, by: Sequence[str] | str) -> list[str]:
    """``by`` as a list of the tree's dimensions (``"a,b"`` accepted); an unknown one is a `UsageError`."""
    if isinstance(by, str):
        by = [b.strip() for b in by.split(",") if b.strip()]
    by = list(dict.fromkeys(by))
    for dim in by:
        if dim not in tree.dimensions:
            raise UsageError(error(f"unknown dimension '{dim}'", hint=did_you_mean(dim, tree.dimensions) or
                                   f"the tree's dimensions: {', '.join(tree.dimensions) or 'none'}",
                                   code="unknown-dimension"))
    return by


def _selected(tree: Tree, metrics: Sequence[str] | str | None) -> list[str]:
    if metrics is None:
        return [m.name for m in tree.metrics.values() if m.kind != "group"]
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    for name in metrics:
        if name not in tree.metrics:
            raise UsageError(error(f"unknown metric '{name}'", hint=did_you_mean(name, tree.metrics) or
                                   f"the tree's metrics: {', '.join(tree.metrics)}", code="unknown-metric"))
        if tree.metrics[name].kind == "group":
            raise UsageError(error(f"'{name}' is a grouping node with no formula, so it has no values",
                                   hint=f"ask for its drivers instead: {', '.join(tree.drivers(name)) or 'none'}",
                                   code="group-metric"))
    return list(dict.fromkeys(metrics))


def resolve_params(tree: Tree, overrides: Mapping[str, Any] | None) -> dict[str, float]:
    values = {name: p.value for name, p in tree.params.items()}
    for name, value in (overrides or {}).items():
        if name not in tree.params:
            raise UsageError(error(f"unknown param '{name}'", hint=did_you_mean(name, tree.params) or
                                   f"the tree's params: {', '.join(tree.params) or 'none'}", code="unknown-param"))
        try:
            values[name] = _param_value(value)
        except ValueError:
            raise UsageError(error(f"param '{name}' must be a number, got {value!r}",
                                   hint="e.g. 0.65 or 65%", code="param")) from None
    return values


def _param_value(value: Any) -> float:
    if isinstance(value, str):
        text = value.strip()
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)


def looks_back(tree: Tree, order: list[str], registry: Registry) -> bool:
    """Whether any of the metrics ``order`` reads rows before the periods asked for (a time shift, a window,
    a customer state such as churned): then every row up to the last period is read."""
    for name in order:
        metric = tree.metrics[name]
        if metric.shifts:
            return True
        for node in s.walk(metric.formula) if metric.formula is not None else ():
            if isinstance(node, s.Call):
                fn = registry.scalars.get(node.name) if metric.kind == "derived" else registry.aggregates.get(
                    node.name)
                if fn is not None and (getattr(fn, "window", False) or getattr(fn, "lookback", False)):
                    return True
    return False


def evaluate(tree: Tree, data: Mapping[str, Any], grain: str | None = None, by: Sequence[str] | str = (),
             start: str | None = None, end: str | None = None, metrics: Sequence[str] | str | None = None,
             params: Mapping[str, Any] | None = None, registry: Registry | None = None,
             given: Mapping[str, tuple[pa.Array, pa.Array]] | None = None,
             riders: Sequence[backends.Rider] = (), ridden: Sequence[backends.Rider] = ()) -> Evaluation:
    """Evaluate ``metrics`` (default: all) of ``tree`` over ``data`` at ``grain``, sliced ``by`` dimensions.

    ``given``: base metrics already counted elsewhere (unsliced only): name → (period indices, values), the
    value of every period the output and its time shifts read; those metrics are not aggregated again.
    (`explaining` hands over the customer counts its drill-down's pass has rolled up, `rollup.Fine.totals`.)

    ``riders``: requests of another evaluation (`requests`) aggregated from this one's scans of their source
    where they read the same rows (`backends.Rider`); ``ridden``: riders of an earlier evaluation whose results
    stand for this one's own reads where their requests are this one's (the same partials, exactly)."""
    registry = registry or default_registry()
    given = given or {}
    if not isinstance(data, Mapping):
        raise UsageError(error(f"data must map source names to tables, got a {type(data).__name__}",
                               hint=f"e.g. data={{'{next(iter(tree.sources), 'orders')}': table}}", code="no-data"))
    grain, by, selected, order, first, last = _asked(tree, grain, by, start, end, metrics)
    values = resolve_params(tree, params)
    if first is not None and last is not None and first > last:
        raise UsageError(error(f"the range {start}..{end} is empty: it ends before it starts",
                               hint="swap --from and --to", code="period"))
    by_source = _requests(tree, grain, by, first, last, order, values, registry, given)
    if given and (by or any(tree.metrics[n].source not in by_source for n in given)):
        raise ValueError("given metrics: unsliced only, and each source must still have a metric to read")
    aggregates = []
    warnings: list[str] = []
    for source_name, request in by_source.items():
        source = tree.sources[source_name]
        needs = list(request.needs)
        counts: dict[str, int] = {}
        done = next((r for r in ridden if r.result is not None and _same_request(r.request, request)), None)
        if done is not None:
            # Aggregated already, from the same rows cut into the same tables (`backends.Rider`).
            aggregates.append(done.result)
            counts["null_times"] = done.null_times or 0
        else:
            try:
                aggregates.append(backends.aggregate(request, data, counts,
                                                     [r for r in riders if r.request.source.name == source_name]))
            except DataError as exc:
                from .datacheck import with_binding_hint

                raise with_binding_hint(exc, source, needs) from None
        if counts.get("null_times"):
            warnings.append(f"source '{source_name}': {counts['null_times']:,} row(s) have no {source.time} (null), "
                            "so they belong to no period and no metric counts them")

    if by:
        # One category written several ways ('web', 'Web ') is several slices: said, not merged.
        warnings.extend(lookalikes.notes({d: {v for a in aggregates if d in a.table.column_names
                                              for v in pc.unique(a.table.column(d)).to_pylist()} for d in by}))
    if by and aggregates and not any(len(a.dimensions) == len(by) for a in aggregates):
        # No source can be split: the result would have no slices at all, hence no rows.
        names = ", ".join(f"'{a.source.name}'" for a in aggregates)
        raise UsageError(error(
            f"cannot split by {', '.join(by)}: no source the metrics read ({names}) has "
            f"{'that dimension' if len(by) == 1 else 'all of these dimensions'}",
            aggregates[0].source.span, "drop it from --by, or ask for metrics of a source that declares it",
            "unknown-dimension"))
    grid = _grid(aggregates, by, first, last, grain)
    columns: dict[str, pa.Array] = {}
    notes: list[tuple[str, pa.Array, str]] = []
    for agg in aggregates:
        laid, split = _lay_out(grid, agg, by)
        for metric in by_source[agg.source.name].metrics:
            if not split:
                missing = [d for d in by if d not in agg.source.dimensions]
                columns[metric.name] = pa.nulls(grid.size, pa.float64())
                notes.append((metric.name, pa.repeat(pa.scalar(True), grid.size),
                              f"source '{agg.source.name}' has no dimension {', '.join(missing)} to split by"))
                continue
            columns[metric.name] = _finish_base(metric, agg.calls[metric.name], laid, grid, values, registry, notes)
    for name, (indices, counted) in given.items():
        # Periods the counts do not hold (before what the output and its shifts read) stay null.
        at = pc.index_in(pc.add(_arange(grid.size), grid.first), value_set=indices)
        columns[name] = _clean(tree.metrics[name], pc.take(counted, at), notes)
    for name in order:
        metric = tree.metrics[name]
        if metric.kind == "derived":
            columns[name] = _derived(tree, metric, columns, grid, values, registry, notes)
    result = _result(tree, grid, by, grain, selected, columns, notes, first, last)
    skipped = tuple(Skipped(metric, rows, reason, tree.metrics[metric].span) for agg in aggregates
                    for metric, rows, reason in agg.skipped if metric in selected)
    return attrs.evolve(result, warnings=tuple(warnings), skipped=skipped)


def requests(tree: Tree, grain: str | None = None, by: Sequence[str] | str = (), start: str | None = None,
             end: str | None = None, metrics: Sequence[str] | str | None = None,
             params: Mapping[str, Any] | None = None, registry: Registry | None = None,
             given: Sequence[str] = ()) -> list[backends.Request]:
    """What `evaluate` with these arguments asks of the backends, one request a source (``given``: the names
    of the base metrics it would be given): riders for another evaluation's scans (`backends.Rider`)."""
    registry = registry or default_registry()
    grain, by, _, order, first, last = _asked(tree, grain, by, start, end, metrics)
    return list(_requests(tree, grain, by, first, last, order, resolve_params(tree, params), registry,
                          given).values())


def _asked(tree: Tree, grain: str | None, by: Sequence[str] | str, start: str | None, end: str | None,
           metrics: Sequence[str] | str | None) -> tuple[str, list[str], list[str], list[str], int | None, int | None]:
    """What `evaluate` and `requests` are asked, checked: the grain, the dimensions, the metrics selected, every
    metric they need (dependencies first) and the first and last periods (``None``: the data's own)."""
    grain = periods.check_grain(grain or tree.grain)
    selected = _selected(tree, metrics)
    order = [n for n in tree.requirements(selected) if tree.metrics[n].kind != "group"]
    first = periods.parse(start, grain) if start else None
    last = periods.parse(end, grain, end=True) if end else None
    return grain, normalise_by(tree, by), selected, order, first, last


def _requests(tree: Tree, grain: str, by: list[str], first: int | None, last: int | None, order: list[str],
              values: Mapping[str, float], registry: Registry, given) -> dict[str, backends.Request]:
    """Per source, the request of its base metrics (those not ``given``) over the periods ``first`` … ``last``."""
    since = None if first is None or looks_back(tree, order, registry) else periods.first_day(first, grain)
    until = _day_after(last, grain) if last is not None else None
    base_of: dict[str, list[Metric]] = {}
    for name in order:
        metric = tree.metrics[name]
        if metric.kind == "base" and metric.name not in given:
            base_of.setdefault(metric.source, []).append(metric)
    return {source_name: backends.Request(tree, tree.sources[source_name], tuple(base),
                                          tuple(aggregating.needs(tree, base, registry, by)), grain, tuple(by), values,
                                          registry, since, until)
            for source_name, base in base_of.items()}


def _same_request(one: backends.Request, other: backends.Request) -> bool:
    """Whether two requests ask for the same partials of the same rows (the same tree and functions)."""
    return (one.tree is other.tree and one.registry is other.registry and one.source == other.source and
            one.metrics == other.metrics and one.needs == other.needs and one.grain == other.grain and
            one.by == other.by and dict(one.params) == dict(other.params) and one.since == other.since and
            one.until == other.until)


def _day_after(last: int, grain: str):
    """The first day after period ``last``; ``None`` past the calendar's end (9999-12-31): nothing is later."""
    try:
        return periods.first_day(last + 1, grain)
    except (ValueError, OverflowError):
        return None


def _finish_base(metric: Metric, plans, laid: dict[str, pa.Array], grid: Grid, params: Mapping[str, float],
                 registry: Registry, notes: list) -> pa.Array:
    finished: dict[int, pa.Array] = {}
    for plan in plans:
        partials = []
        for col, empty in zip(plan.columns, plan.empties, strict=True):
            values = laid[col]
            if empty is not None:
                values = pc.fill_null(values, pa.scalar(empty, values.type) if not pa.types.is_null(values.type)
                                      else pa.scalar(empty))
            partials.append(values)
        if plan.function.finish is None:
            result = as_computed(partials[0])
        else:
            result = as_computed(plan.function.finish(*partials))
        notes.extend((metric.name, mask, reason) for mask, reason in result.notes)
        values = result.values
        for col, reason in plan.undefined:
            bad = pc.greater(pc.fill_null(laid[col], 0), 0)
            values = pc.if_else(bad, pa.scalar(None, values.type), values)
            notes.append((metric.name, bad, reason))
        finished[id(plan.call)] = values

    scope = Scope(name=lambda node: pa.scalar(float(params[node.name])), scalars=registry.scalars,
                  length=grid.size, call=lambda node: finished.get(id(node)), frame=grid)
    values = as_array(evaluate_expr(metric.formula, scope), grid.size)
    notes.extend((metric.name, mask, reason) for mask, reason in scope.notes)
    if not _is_numeric(values.type):
        # e.g. a plugin aggregate that returns dates or text: result columns hold numbers only.
        raise DataError(error(f"'{metric.name}' gives {values.type} values, not numbers", metric.span,
                              "a metric must be a number: aggregate a numeric column", "type"))
    return _clean(metric, values, notes)


def _derived(tree: Tree, metric: Metric, columns: dict[str, pa.Array], grid: Grid, params: Mapping[str, float],
             registry: Registry, notes: list) -> pa.Array:
    def name(node: s.Name):
        if node.name in columns:
            return columns[node.name]
        return pa.scalar(float(params[node.name]))

    def shift(node: s.Shift):
        shifted = grid.shift(columns[node.name], node.offset)
        outside = pc.less(grid.position(), -node.offset)
        scope.notes.append((outside, f"{node.to_source()} falls before the first period of the data"))
        return shifted

    scope = Scope(name=name, shift=shift, scalars=registry.scalars, length=grid.size, frame=grid)
    values = as_array(evaluate_expr(metric.formula, scope), grid.size)
    if not _is_numeric(values.type):
        raise UsageError(error(f"'{metric.name}' gives {values.type} values, not numbers", metric.span,
                               "a metric's formula must give a number", "type"))
    own = [mask for mask, _ in scope.notes]
    notes.extend((metric.name, mask, reason) for mask, reason in scope.notes)
    nulls = pc.is_null(values)
    for mask in own:
        nulls = pc.and_(nulls, pc.invert(pc.fill_null(mask, False)))
    if pc.any(nulls).as_py():
        # Each input blamed only for the rows where it is null; a shifted input (m[-1]) is looked at
        # in its own earlier period, not in this one.
        current = dict.fromkeys(n.name for n in s.walk(metric.formula) if isinstance(n, s.Name) and n.name in columns)
        looks = [(name, 0) for name in current] + [(name, offset) for name, offset in metric.shifts]
        for name, offset in looks:
            at = (lambda v: v) if offset == 0 else (lambda v, k=offset: grid.shift(v, k))
            hit = pc.and_(nulls, pc.is_null(at(columns[name])))
            if not pc.any(hit).as_py():
                continue
            shown = name if offset == 0 else f"{name}[{offset}]"
            unexplained = hit
            for m, mask, reason in [n for n in notes if n[0] == name]:
                because = pc.and_(hit, pc.fill_null(at(mask), False))
                if pc.any(because).as_py():
                    notes.append((metric.name, because, f"{shown} is null ({reason})"))
                    unexplained = pc.and_(unexplained, pc.invert(because))
            if pc.any(unexplained).as_py():
                notes.append((metric.name, unexplained, f"{shown} is null"))
    return _clean(metric, values, notes)


def _is_numeric(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t)
            or pa.types.is_null(t))


def _clean(metric: Metric, values: pa.Array, notes: list) -> pa.Array:
    """Metric columns are int64 or float64; NaN and ±inf never leave the engine, and say why they went."""
    t = values.type
    if pa.types.is_boolean(t):
        return pc.cast(values, pa.int64())
    if pa.types.is_integer(t):
        return pc.cast(values, pa.int64())
    if pa.types.is_null(t):
        return pc.cast(values, pa.float64())
    values = pc.cast(values, pa.float64())
    bad = pc.or_(pc.is_nan(values), pc.is_inf(values))
    if pc.any(bad).as_py():
        notes.append((metric.name, bad, "not a finite number (NaN or infinity in the data, or a float overflow)"))
    return pc.if_else(bad, pa.scalar(None, pa.float64()), values)


def _result(tree: Tree, grid: Grid, by: list[str], grain: str, selected: list[str], columns: dict[str, pa.Array],
            notes: list, first: int | None, last: int | None) -> Evaluation:
    slices = grid.slices.num_rows
    lo = 0 if first is None else max(0, first - grid.first)
    hi = grid.periods if last is None else min(grid.periods, last - grid.first + 1)
    count = max(0, hi - lo)
    # Period-major order over the kept periods: output row j is period lo + j // slices, slice j % slices.
    j = _arange(count * slices)
    period_offset = pc.add(pc.divide(j, slices), lo) if slices else j
    slice_index = pc.subtract(j, pc.multiply(pc.divide(j, slices), slices)) if slices else j
    take = pc.add(pc.multiply(slice_index, grid.periods), period_offset)
    names = periods.labels(grid.first + lo, count, grain)
    out = {"period": pc.take(pa.array(names, pa.string()), pc.subtract(period_offset, lo))}
    for dim in by:
        out[dim] = pc.take(grid.slices.column(dim), slice_index).combine_chunks()
    for name in selected:
        out[name] = pc.take(columns[name], take)
    table = pa.table(out)
    reasons = []
    # One entry per metric and cause; the same cause may come from several places (two divisions
    # by the same metric, two averages), so its rows are the union of their masks.
    merged: dict[tuple[str, str], pa.Array] = {}
    for metric, mask, reason in notes:
        if metric not in selected:
            continue
        hit = pc.and_(pc.fill_null(pc.take(as_array(mask, grid.size), take), False), pc.is_null(table.column(metric)))
        key = (metric, reason)
        merged[key] = pc.or_(merged[key], hit) if key in merged else hit
    for (metric, reason), hit in merged.items():
        rows = pc.sum(pc.cast(hit, pa.int64())).as_py() or 0
        if not rows:
            continue
        at = pc.index(hit, True).as_py()
        first_row = {"period": table.column("period")[at].as_py(), **{d: table.column(d)[at].as_py() for d in by}}
        reasons.append(NullReason(metric, reason, rows, first_row, tree.metrics[metric].span))
    covered = tuple(periods.label(p, grain) for p in grid.covered) if grid.covered else None
    return Evaluation(table, tuple(reasons), grain, tuple(by), covered)


__all__ = ["Evaluation", "Grid", "NullReason", "Skipped", "evaluate", "null_reasons"]
