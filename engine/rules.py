"""KPI status: each target measured against its plan, each alert checked, at one period.

``tree.status(data, at="2026-10")``:

1. every rule reads a *slice* of the data: all of it, or the rows its ``where`` keeps
   (the slice becomes an Arrow filter applied to every source the rule's metrics read, or, for a
   source in a SQL engine, the WHERE of the rows its queries read there);
2. rules with the same slice share one evaluation of the tree at its grain, over the whole
   history; an alert's condition is evaluated as a hidden derived metric, so shifts and
   window functions (``change(ltv) < -10%``) work as in any formula;
3. a target's *plan* is the straight line from its start (the ``from`` period and the value
   then) to the goal at the deadline, or the broken line through its explicit checkpoints;
   the current value is compared with the plan in the direction of the target (a target its
   start already meets is one to hold: the plan is the goal itself);
4. an alert fires when its condition is true at ``at``.

Only the small per-period table is looked at in Python; the data is filtered and aggregated by
Arrow. Every rule ends in a state, never an exception, unless the tree and data do not fit
(a missing source, a slice over a dimension a source lacks): those are errors, as in `evaluate`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.dataset as ds

from . import backends, periods, reading
from . import syntax as s
from .errors import DataError, MetrictreeError, Span, UsageError, error
from .evaluating import Evaluation, evaluate, resolve_params
from .formulas import as_arrow_filter
from .functions import Registry
from .model import GRAINS, LEVELS, Alert, Metric, Target, Tree
from .pluginmanager import registry as default_registry

# Target states.
MET = "met"
ON_TRACK = "on track"
OFF_TRACK = "off track"
NOT_STARTED = "not started"
MET_AT_DEADLINE = "met at deadline"
MISSED = "missed"
NO_DATA = "no data"
TARGET_STATES = (MET, ON_TRACK, OFF_TRACK, NOT_STARTED, MET_AT_DEADLINE, MISSED, NO_DATA)

# Alert states.
FIRED = "fired"
NOT_FIRED = "not fired"
ALERT_STATES = (FIRED, NOT_FIRED, NO_DATA)

SYMBOLS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "=", "!=": "≠"}
_TOLERANCE = 1e-9


# --------------------------------------------------------------------------- the result


@attrs.frozen
class Checkpoint:
    """A point of a target's plan.

    Attributes:
        period: the checkpoint as written (``2026-12``) or its period at the cadence (``2026-Q4``).
        grain_period: the period at the tree's grain it falls in (the one holding its last day).
        planned: the value the plan expects then.
        actual: the metric's value then, once that period is at or before ``at`` and has data.
        reached: whether ``actual`` is at least as good as ``planned`` (``None`` until known).
        explicit: written in ``checkpoints { … }`` (else from ``every``).
    """

    period: str
    grain_period: str
    planned: float | None
    actual: float | None = None
    reached: bool | None = None
    explicit: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period, "grain_period": self.grain_period, "planned": self.planned,
                "actual": self.actual, "reached": self.reached, "explicit": self.explicit}


@attrs.frozen
class TargetStatus:
    """Where one target stands at ``at``.

    Attributes:
        metric, metric_label, unit, level, direction: the metric the target is on.
        label: the target's own label, if it has one.
        op, goal: the comparison and the number (``>=``, 0.3).
        deadline: as written; deadline_period: the period at the tree's grain holding the deadline date.
        where: the slice, in tree syntax (``None``: all the data).
        state: one of `TARGET_STATES`.
        reason: why the state is ``no data``; for ``not started``, the start; past the deadline, the value then.
        at: the period reported on.
        start_period, start_value: the start point (``from``, else the first period with a value).
        current: the value at ``at``.
        gap: goal − current; relative_gap: gap / |current|.
        progress: the share of the way done, (current − start) / (goal − start).
        planned: what the plan expects at ``at``.
        on_track: the current value is at least as good as the plan (in the target's direction).
        met: the comparison holds at ``at``.
        periods_left: periods from ``at`` to the deadline period.
        required_pace: the change per period still needed, gap / periods_left (``None`` when met or due).
        deadline_value: the value in the deadline period, once it is past.
        every: the checkpoint cadence, if any.
        checkpoints: the plan's checkpoints (explicit ones and those at the cadence).
        notes: anything else the reader should know.
        format: the metric's ``format`` (a Python format spec), for showing its values.
    """

    metric: str
    metric_label: str
    unit: str | None
    level: str | None
    direction: str | None
    label: str | None
    op: str
    goal: float
    deadline: str
    deadline_period: str
    where: str | None
    state: str
    reason: str | None
    at: str | None
    start_period: str | None = None
    start_value: float | None = None
    current: float | None = None
    gap: float | None = None
    relative_gap: float | None = None
    progress: float | None = None
    planned: float | None = None
    on_track: bool | None = None
    met: bool | None = None
    periods_left: int | None = None
    required_pace: float | None = None
    deadline_value: float | None = None
    every: str | None = None
    checkpoints: tuple[Checkpoint, ...] = ()
    notes: tuple[str, ...] = ()
    format: str | None = None
    span: Span | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def title(self) -> str:
        """``Open rate ≥ 30%`` or the target's label."""
        return self.label or f"{self.metric_label} {SYMBOLS[self.op]} {self.show(self.goal)}"

    def show(self, value: float | None) -> str:
        """A value of the metric for people: its unit, and its ``format`` when it has one."""
        return value_text(value, self.unit, self.format)

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in (
            "metric", "metric_label", "label", "unit", "level", "op", "goal", "deadline", "deadline_period",
            "where", "state", "reason", "at", "start_period", "start_value", "current", "gap", "relative_gap",
            "progress", "planned", "on_track", "met", "periods_left", "required_pace", "deadline_value", "every")}
        out["checkpoints"] = [c.to_dict() for c in self.checkpoints]
        out["notes"] = list(self.notes)
        out["location"] = str(self.span) if self.span else None
        return out


@attrs.frozen
class MetricValue:
    """A metric an alert reads, and its value at ``at``."""

    metric: str
    label: str
    value: float | None
    unit: str | None = None
    format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "label": self.label, "value": self.value, "unit": self.unit}


@attrs.frozen
class AlertStatus:
    """One alert at ``at``.

    Attributes:
        condition: the condition, in tree syntax.
        severity, message: from the alert's block.
        where: the slice, in tree syntax (``None``: all the data).
        state: ``fired``, ``not fired`` or ``no data``.
        reason: why the condition has no value, for ``no data``.
        at: the period checked.
        value, unit: the left side of the comparison at ``at`` (``change(ltv)`` → −0.12), when the
            condition is one comparison; its unit is the metric's, or ``%`` when compared with a percentage.
        values: the metrics the condition reads, at ``at``.
    """

    condition: str
    severity: str
    message: str | None
    where: str | None
    state: str
    reason: str | None
    at: str | None
    value: float | None = None
    unit: str | None = None
    values: tuple[MetricValue, ...] = ()
    format: str | None = None
    span: Span | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def fired(self) -> bool:
        return self.state == FIRED

    @property
    def value_text(self) -> str:
        """The left side's value for people (``−25.0%``, ``1,200 RUB``)."""
        return value_text(self.value, self.unit, self.format)

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "severity": self.severity, "message": self.message,
                "where": self.where, "state": self.state, "fired": self.fired, "reason": self.reason,
                "at": self.at, "value": self.value, "unit": self.unit, "values": [v.to_dict() for v in self.values],
                "location": str(self.span) if self.span else None}


@attrs.frozen
class Status:
    """Every target and alert of a tree at one period.

    Attributes:
        tree, title: the tree.
        at: the period reported on, at ``grain`` (``None`` when the tree has no rules and none was asked for).
        grain: the tree's grain.
        params: the params overridden for this status (name → value).
        targets, alerts: in the order the tree declares them.
    """

    tree: str
    title: str | None
    at: str | None
    grain: str
    params: Mapping[str, float]
    targets: tuple[TargetStatus, ...]
    alerts: tuple[AlertStatus, ...]

    @property
    def fired(self) -> tuple[AlertStatus, ...]:
        """The alerts that fire at ``at``."""
        return tuple(a for a in self.alerts if a.fired)

    def by_level(self) -> list[tuple[str | None, tuple[TargetStatus, ...]]]:
        """The targets grouped by their metric's level: strategic, operational, technical, then unlevelled."""
        order = [*LEVELS, None]
        return [(level, found) for level in order
                if (found := tuple(t for t in self.targets if t.level == level))]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (nulls as ``None``, never NaN)."""
        return {"tree": self.tree, "title": self.title, "at": self.at, "grain": self.grain,
                "params": dict(self.params), "targets": [t.to_dict() for t in self.targets],
                "alerts": [a.to_dict() for a in self.alerts], "fired": len(self.fired)}

    def to_markdown(self) -> str:
        return markdown(self)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        """The targets and alerts as HTML tables (`metrictree.reporting.status_fragment`)."""
        from .reporting import status_fragment

        return status_fragment(self)


def value_text(value: float | None, unit: str | None, spec: str | None = None) -> str:
    """A value for people: ``25.4%`` for a ``%`` metric, ``2,629 RUB``; a metric's ``format`` wins.

    >>> value_text(0.0039, "%"), value_text(0.0039, "%", ".2%"), value_text(-1200.0, "RUB")
    ('0.4%', '0.39%', '−1,200 RUB')
    """
    from .narrating import number
    from .rendering import NULL, format_value

    if not spec or value is None:
        return number(value, unit)
    text = format_value(value, unit, spec).replace("-", "−") if value is not None else NULL
    return f"{text} {unit}" if unit and unit != "%" else text


# --------------------------------------------------------------------------- comparisons


def holds(value: float, op: str, goal: float) -> bool:
    """``value op goal``, with equality up to float rounding.

    >>> holds(0.30000000000000004, ">=", 0.3), holds(0.3, ">", 0.3), holds(0.3, "==", 0.3)
    (True, False, True)
    """
    eps = _TOLERANCE * max(1.0, abs(goal))
    if op == ">=":
        return value >= goal - eps
    if op == ">":
        return value > goal + eps
    if op == "<=":
        return value <= goal + eps
    if op == "<":
        return value < goal - eps
    equal = abs(value - goal) <= eps
    return equal if op == "==" else not equal


def _sense(op: str, start: float | None, goal: float) -> int:
    """+1 when higher values are better for this target, −1 when lower are, 0 when neither."""
    if op in (">=", ">"):
        return 1
    if op in ("<=", "<"):
        return -1
    if op == "==" and start is not None and not math.isclose(start, goal):
        return 1 if goal > start else -1
    return 0


def _as_good(value: float, planned: float, sense: int) -> bool:
    eps = _TOLERANCE * max(1.0, abs(planned))
    return value >= planned - eps if sense > 0 else value <= planned + eps


# --------------------------------------------------------------------------- the plan


@attrs.frozen
class _Plan:
    """The broken line from the start to the goal: ``(period index, value)`` knots, in order."""

    knots: tuple[tuple[int, float], ...]

    def at(self, index: int) -> float | None:
        first, last = self.knots[0], self.knots[-1]
        if index < first[0]:
            return None
        if index >= last[0]:
            return last[1]
        for (i0, v0), (i1, v1) in zip(self.knots, self.knots[1:], strict=False):
            if i0 <= index <= i1:
                return v0 + (v1 - v0) * (index - i0) / (i1 - i0)
        return None  # pragma: no cover - the knots cover [first, last]


def _plan(start: int, start_value: float, deadline: int, goal: float,
          explicit: list[tuple[int, float]], notes: list[str], grain: str) -> _Plan:
    knots = {start: start_value}
    for index, value in explicit:
        if start < index < deadline:
            knots[index] = value
        elif index != deadline:
            notes.append(f"checkpoint {periods.label(index, grain)} is outside the plan "
                         f"({periods.label(start, grain)} to {periods.label(deadline, grain)}) and is ignored")
    knots[max(deadline, start)] = goal
    return _Plan(tuple(sorted(knots.items())))


def _cadence(start: int, deadline: int, every: str, grain: str) -> list[tuple[str, int]]:
    """``(label at the cadence, period at the grain)`` for each cadence period that ends after ``start``."""
    import datetime as dt

    first = periods.of_date(periods.first_day(start, grain), every)
    last_day = periods.first_day(deadline + 1, grain) - dt.timedelta(days=1)
    last = periods.of_date(last_day, every)
    found: dict[int, str] = {}
    for g in range(first, last + 1):
        end_day = periods.first_day(g + 1, every) - dt.timedelta(days=1)
        index = min(periods.of_date(end_day, grain), deadline)
        if index > start:
            found[index] = periods.label(g, every)
    return [(label, index) for index, label in sorted(found.items())]


# --------------------------------------------------------------------------- slices and evaluations


@attrs.define
class _Series:
    """One evaluation of a slice: the metrics per period, and how to explain a null."""

    tree: Tree
    data: Mapping[str, Any]
    grain: str
    params: Mapping[str, float]
    registry: Registry
    where: str | None
    evaluation: Evaluation | None = None
    empty: str | None = None  # why the slice has no data at all
    first: int = 0
    labels: list[str] = attrs.field(factory=list)
    columns: dict[str, list] = attrs.field(factory=dict)
    reasons: dict[tuple[str, int], str] = attrs.field(factory=dict)

    @property
    def last(self) -> int | None:
        return self.first + len(self.labels) - 1 if self.labels else None

    def value(self, name: str, index: int | None, why: bool = True) -> tuple[float | None, str | None]:
        """The value of ``name`` in period ``index``, or ``None`` and why (``why=False``: do not look for the
        reason of a null, which costs an evaluation of that period)."""
        label = periods.label(index, self.grain) if index is not None else None
        if self.empty is not None:
            return None, self.empty
        if index is None:
            return None, "no period"
        sliced = f" (slice {self.where})" if self.where else ""
        if not self.labels or not self.first <= index <= self.last:
            covers = f"{self.labels[0]} to {self.labels[-1]}" if self.labels else "no period"
            return None, f"no data in {label}: the data{sliced} covers {covers}"
        value = self.columns[name][index - self.first]
        if value is not None:
            return float(value), None
        return None, self.reason(name, index) if why else None

    def first_with_value(self, name: str) -> int | None:
        for offset, value in enumerate(self.columns.get(name, ())):
            if value is not None:
                return self.first + offset
        return None

    def reason(self, name: str, index: int) -> str:
        key = (name, index)
        if key not in self.reasons:
            self.reasons[key] = self._reason(name, index)
        return self.reasons[key]

    def _reason(self, name: str, index: int) -> str:
        label = periods.label(index, self.grain)
        found: list[str] = []
        try:
            # The reasons of one period: evaluate just that period (shifts still read the rows before it).
            one = evaluate(self.tree, self.data, grain=self.grain, start=label, end=label, metrics=[name],
                           params=self.params, registry=self.registry)
            found = [n.reason for n in one.nulls if n.metric == name]
        except MetrictreeError:
            pass
        if not found and self.evaluation is not None:
            mine = [n for n in self.evaluation.nulls if n.metric == name]
            found = [n.reason for n in mine if n.first.get("period") == label] or [n.reason for n in mine[:1]]
        return "; ".join(dict.fromkeys(found)) or f"it has no value in {label}"


def _rule_name(rule: Target | Alert) -> str:
    if isinstance(rule, Target):
        return f"target {rule.condition.to_source()}" if rule.condition is not None else \
            f"target {rule.metric} {rule.op} {rule.value:g}"
    return f"alert {rule.condition.to_source()}"


def _sources_read(tree: Tree, metrics: list[str]) -> list[str]:
    needed = tree.requirements(metrics)
    return list(dict.fromkeys(tree.metrics[n].source for n in needed if tree.metrics[n].kind == "base"))


def _check_slice(tree: Tree, rule: Target | Alert, metrics: list[str]) -> None:
    if rule.where is None:
        return
    dims = list(dict.fromkeys(n.name for n in s.walk(rule.where) if isinstance(n, s.Name)))
    for source_name in _sources_read(tree, metrics):
        source = tree.sources[source_name]
        missing = [d for d in dims if d not in source.dimensions]
        if missing:
            reads = ", ".join(m for m in metrics if not m.startswith("__")) or "its metrics"
            raise UsageError(error(
                f"the slice of {_rule_name(rule)} (where {rule.where.to_source()}) needs the dimension "
                f"{', '.join(missing)}, but source '{source_name}', which {reads} reads, has no such dimension",
                rule.span, f"slice by a dimension of '{source_name}' "
                           f"({', '.join(source.dimensions) or 'it has none'}), or drop the slice", "slice"))


def _check_slice_columns(source_name: str, rule: Target | Alert, dims: list[str], names: list[str]) -> None:
    missing = [d for d in dims if d not in names]
    if missing:
        raise DataError(error(f"source '{source_name}' has no column '{missing[0]}' (the slice of "
                              f"{_rule_name(rule)})", rule.span,
                              f"its columns: {', '.join(names[:12])}", "missing-column"))


def _sliced_data(tree: Tree, data: Mapping[str, Any], rule: Target | Alert, metrics: list[str]) -> dict[str, Any]:
    """The data with the rule's slice applied to every source its metrics read."""
    expression = as_arrow_filter(rule.where)
    dims = list(dict.fromkeys(n.name for n in s.walk(rule.where) if isinstance(n, s.Name)))
    out = dict(data)
    for source_name in _sources_read(tree, metrics):
        if source_name not in data:
            continue  # evaluate says which source has no data
        source = tree.sources[source_name]
        value = data[source_name]
        engine_table = backends.as_engine_table(value)
        if engine_table is not None:  # the slice runs in the engine, as the WHERE of the rows its plan reads
            schema = engine_table.engine.schema(engine_table)
            _check_slice_columns(source_name, rule, dims, schema.names)
            out[source_name] = backends.sliced(engine_table, rule.where, schema)
            continue
        arrow = value if isinstance(value, pa.Table | ds.Dataset) else \
            reading.as_arrow(value, source, list(source.dimensions))
        _check_slice_columns(source_name, rule, dims, arrow.schema.names)
        try:
            out[source_name] = arrow.filter(expression)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DataError(error(f"cannot apply the slice where {rule.where.to_source()} to source "
                                  f"'{source_name}': {exc}", rule.span,
                                  "compare a dimension with values of its kind, e.g. text in double quotes",
                                  "slice")) from None
    return out


def with_rule_metrics(tree: Tree) -> tuple[Tree, list[str]]:
    """The tree plus the hidden metrics its alerts are judged by, and the names of those (what an evaluation
    handed to `status` must also hold)."""
    augmented, hidden = _hidden_alerts(tree)
    return augmented, [n for pair in hidden for n in pair if n is not None]


def _hidden_alerts(tree: Tree) -> tuple[Tree, list[tuple[str, str | None]]]:
    """The tree plus, per alert, a hidden metric for its condition (and one for the left side of a comparison)."""
    hidden: dict[str, Metric] = {}
    names: list[tuple[str, str | None]] = []

    def free(stem: str) -> str:
        name = stem
        while name in tree.metrics or name in hidden:
            name += "_"
        return name

    for i, alert in enumerate(tree.alerts):
        condition = alert.condition
        shifts = tuple(dict.fromkeys((n.name, n.offset) for n in s.walk(condition) if isinstance(n, s.Shift)))
        key = free(f"__alert{i}")
        hidden[key] = Metric(key, "derived", condition, inputs=alert.metrics, shifts=shifts, span=alert.span)
        value_key = None
        if isinstance(condition, s.Binary) and condition.op in s.COMPARISONS:
            left = condition.left
            reads = tuple(dict.fromkeys(n.name for n in s.walk(left) if isinstance(n, s.Name | s.Shift)
                                        and n.name in tree.metrics))
            if reads and not (isinstance(left, s.Name) and left.name in tree.metrics):
                value_key = free(f"__alert{i}_value")
                hidden[value_key] = Metric(value_key, "derived", left, inputs=reads,
                                           shifts=tuple(p for p in shifts if p[0] in reads), span=alert.span)
            elif isinstance(left, s.Name) and left.name in tree.metrics:
                value_key = left.name
        names.append((key, value_key))
    if not hidden:
        return tree, names
    graph = tree.graph.copy()
    for metric in hidden.values():
        graph.add_node(metric.name, metric=metric)
        for child in metric.inputs:
            graph.add_edge(metric.name, child, kind="formula")
    return attrs.evolve(tree, metrics={**tree.metrics, **hidden}, graph=graph), names


def _value_unit(tree: Tree, alert: Alert) -> str | None:
    condition = alert.condition
    if not (isinstance(condition, s.Binary) and condition.op in s.COMPARISONS):
        return None
    left, right = condition.left, condition.right
    if isinstance(left, s.Name) and left.name in tree.metrics:
        return tree.metrics[left.name].unit
    if isinstance(right, s.Literal) and right.percent:
        return "%"
    return None


# --------------------------------------------------------------------------- status


def status(tree: Tree, data: Mapping[str, Any], at: str | None = None, params: Mapping[str, Any] | None = None,
           registry: Registry | None = None, grain: str | None = None, *,
           evaluation: Evaluation | None = None) -> Status:
    """Every target and alert of ``tree`` at period ``at`` (default: the last period with data), at ``grain``
    (default: the tree's).

    ``evaluation``: an evaluation already made of `with_rule_metrics` ``(tree)`` over the same data, grain and
    parameters, unsliced, up to ``at`` at least (the report's history): the rules on the whole data read it
    instead of evaluating again, when it holds every metric they need."""
    registry = registry or default_registry()
    if not isinstance(data, Mapping):
        raise UsageError(error(f"data must map source names to tables, got a {type(data).__name__}",
                               hint=f"e.g. data={{'{next(iter(tree.sources), 'orders')}': table}}", code="no-data"))
    grain = periods.check_grain(grain or tree.grain)
    values = resolve_params(tree, params)
    overrides = {name: values[name] for name in (params or {})}
    # A label at a coarser grain means its last period: the status "at 2026-Q4" is the status in December;
    # a finer one (a week at grain month) is an error, never the month it ends in.
    form = periods.grain_of(at) if at is not None else None
    if form is not None and GRAINS.index(form) < GRAINS.index(grain):
        periods.parse_at(at, grain)
    at_index = periods.parse(at, grain, end=True) if at is not None else None
    augmented, hidden = _hidden_alerts(tree)

    # One evaluation per slice, with every metric the rules on it need.
    rules: list[tuple[Target | Alert, list[str]]] = [(t, [t.metric]) for t in tree.targets]
    for alert, (key, value_key) in zip(tree.alerts, hidden, strict=True):
        rules.append((alert, list(dict.fromkeys([key, *([value_key] if value_key else []), *alert.metrics]))))
    groups: dict[str | None, tuple[Target | Alert, list[str]]] = {}
    wanted: dict[str | None, dict[str, None]] = {}
    for rule, metrics in rules:
        _check_slice(augmented, rule, metrics)
        slice_key = rule.where.to_source() if rule.where is not None else None
        groups.setdefault(slice_key, (rule, metrics))
        wanted.setdefault(slice_key, {}).update(dict.fromkeys(metrics))
    series: dict[str | None, _Series] = {}
    for slice_key, (rule, _) in groups.items():
        metrics = list(wanted[slice_key])
        sliced = data if slice_key is None else _sliced_data(augmented, data, rule, metrics)
        reuse = evaluation if slice_key is None and evaluation is not None and set(metrics) <= set(
            evaluation.table.column_names) else None
        series[slice_key] = _evaluate(augmented, sliced, grain, values, registry, slice_key, metrics, reuse)

    if at_index is None:
        lasts = [x.last for x in series.values() if x.last is not None]
        at_index = max(lasts) if lasts else None
    at_label = periods.label(at_index, grain) if at_index is not None else None

    targets = tuple(_target(tree, t, series[t.where.to_source() if t.where is not None else None], at_index, grain)
                    for t in tree.targets)
    alerts = tuple(_alert(tree, a, key, value_key, series[a.where.to_source() if a.where is not None else None],
                          at_index) for a, (key, value_key) in zip(tree.alerts, hidden, strict=True))
    return Status(tree.name, tree.title, at_label, grain, overrides, targets, alerts)


def _evaluate(tree: Tree, data: Mapping[str, Any], grain: str, params: Mapping[str, float], registry: Registry,
              where: str | None, metrics: list[str], evaluation: Evaluation | None = None) -> _Series:
    found = _Series(tree, data, grain, params, registry, where)
    try:
        if evaluation is None:
            evaluation = evaluate(tree, data, grain=grain, metrics=metrics, params=params, registry=registry)
    except DataError as exc:
        if where is None or exc.diagnostics[0].code != "empty":
            raise
        # A slice that keeps no rows is a state of the rules on it, not an error of the whole status.
        found.empty = f"the slice {where} keeps no rows: {exc.diagnostics[0].message}"
        return found
    table = evaluation.table
    found.evaluation = evaluation
    found.labels = table.column("period").to_pylist()
    if found.labels:
        found.first = periods.parse(found.labels[0], grain)
    found.columns = {name: table.column(name).to_pylist() for name in metrics}
    return found


def _target(tree: Tree, target: Target, series: _Series, at: int | None, grain: str) -> TargetStatus:
    metric = tree.metrics[target.metric]
    deadline = periods.parse(target.deadline, grain, end=True)
    notes: list[str] = []
    make = functools.partial(
        TargetStatus, metric=metric.name, metric_label=metric.title, unit=metric.unit, level=metric.level,
        direction=metric.direction, format=metric.format, label=target.label, op=target.op, goal=target.value,
        deadline=target.deadline, deadline_period=periods.label(deadline, grain),
        where=target.where.to_source() if target.where is not None else None,
        at=periods.label(at, grain) if at is not None else None, every=target.every, span=target.span)
    if at is None:
        return make(state=NO_DATA, reason=series.empty or "no period to report on")

    start = periods.parse(target.start, grain) if target.start else series.first_with_value(metric.name)
    current, current_reason = series.value(metric.name, at)
    if start is None:
        start_value, start_reason = None, current_reason or f"{metric.name} has no value in any period"
    else:
        start_value, start_reason = series.value(metric.name, start)

    met = holds(current, target.op, target.value) if current is not None else None
    sense = _sense(target.op, start_value, target.value)
    explicit = [(periods.parse(p, grain, end=True), v) for p, v in target.checkpoints]
    # A target its start already meets is one to hold: the plan is the goal itself, and there is no way to go.
    holding = start_value is not None and holds(start_value, target.op, target.value) and target.op != "!="
    plan = None
    if start is not None and start_value is not None and target.op != "!=":
        plan = _Plan(((start, target.value),)) if holding else \
            _plan(start, start_value, deadline, target.value, explicit, notes, grain)
    planned = plan.at(at) if plan is not None else None
    on_track = None
    if current is not None and planned is not None:
        on_track = _as_good(current, planned, sense) if sense and not holding else bool(met)
    gap = target.value - current if current is not None else None
    relative_gap = gap / abs(current) if gap is not None and current else None
    progress = None
    if current is not None and start_value is not None and not holding \
            and not math.isclose(target.value, start_value, rel_tol=_TOLERANCE):
        progress = (current - start_value) / (target.value - start_value)
    periods_left = max(deadline - at, 0)
    pace = gap / periods_left if gap is not None and periods_left > 0 and not met else None
    checkpoints = _checkpoints(target, series, plan, sense, start, deadline, at, grain, notes)

    deadline_value = None
    reason = None
    if start is not None and at < start:
        state = NOT_STARTED
        reason = f"the target starts in {periods.label(start, grain)}"
    elif at > deadline:
        deadline_value, why = series.value(metric.name, deadline)
        if deadline_value is None:
            state, reason = NO_DATA, f"no value at the deadline {periods.label(deadline, grain)}: {why}"
        else:
            state = MET_AT_DEADLINE if holds(deadline_value, target.op, target.value) else MISSED
            reason = f"{value_text(deadline_value, metric.unit, metric.format)} in " \
                     f"{periods.label(deadline, grain)}, the deadline"
    elif current is None:
        state, reason = NO_DATA, current_reason
    elif met:
        state = MET
    elif start_value is None:
        state, reason = NO_DATA, f"no value at the start {periods.label(start, grain)}: {start_reason}" \
            if start is not None else start_reason
    else:
        state = ON_TRACK if on_track else OFF_TRACK
    return make(state=state, reason=reason, start_period=periods.label(start, grain) if start is not None else None,
                start_value=start_value, current=current, gap=gap, relative_gap=relative_gap, progress=progress,
                planned=planned, on_track=on_track, met=met, periods_left=periods_left, required_pace=pace,
                deadline_value=deadline_value, checkpoints=checkpoints, notes=tuple(notes))


def _checkpoints(target: Target, series: _Series, plan: _Plan | None, sense: int, start: int | None,
                 deadline: int, at: int, grain: str, notes: list[str]) -> tuple[Checkpoint, ...]:
    points: dict[int, tuple[str, float | None, bool]] = {}
    if target.every and start is not None:
        cadence = _cadence(start, deadline, target.every, grain)
        if GRAINS.index(target.every) < GRAINS.index(grain):
            notes.append(f"checkpoints every {target.every} are finer than the tree's grain ({grain}): "
                         f"one per {grain} is shown")
        for label, index in cadence:
            points[index] = (label, plan.at(index) if plan is not None else None, False)
    for label, value in target.checkpoints:
        index = periods.parse(label, grain, end=True)
        points[index] = (label, value, True)
    out = []
    for index, (label, planned, explicit) in sorted(points.items()):
        actual = series.value(target.metric, index, why=False)[0] if index <= at else None
        reached = None
        if actual is not None and planned is not None:
            reached = _as_good(actual, planned, sense) if sense else holds(actual, target.op, target.value)
        out.append(Checkpoint(label, periods.label(index, grain), planned, actual, reached, explicit))
    return tuple(out)


def _alert(tree: Tree, alert: Alert, key: str, value_key: str | None, series: _Series,
           at: int | None) -> AlertStatus:
    left = value_key and tree.metrics.get(value_key)
    make = functools.partial(
        AlertStatus, condition=alert.condition.to_source(), severity=alert.severity, message=alert.message,
        where=alert.where.to_source() if alert.where is not None else None, unit=_value_unit(tree, alert),
        format=left.format if left and left.unit == _value_unit(tree, alert) else None,
        at=periods.label(at, series.grain) if at is not None else None, span=alert.span)
    if at is None:
        return make(state=NO_DATA, reason=series.empty or "no period to check")
    fired, reason = series.value(key, at)
    value = series.value(value_key, at, why=False)[0] if value_key else None
    values = tuple(MetricValue(m, tree.metrics[m].title, series.value(m, at, why=False)[0], tree.metrics[m].unit,
                               tree.metrics[m].format) for m in alert.metrics)
    if fired is None:
        return make(state=NO_DATA, reason=reason, value=value, values=values)
    return make(state=FIRED if fired else NOT_FIRED, reason=None, value=value, values=values)


# --------------------------------------------------------------------------- markdown


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def pace_text(t: TargetStatus, grain: str) -> str:
    """``+2.1 pp / month`` (``%`` metrics in percentage points), or ``—``."""
    from .narrating import change_in_points

    if t.required_pace is None:
        return "—"
    return f"{change_in_points(t.required_pace, t.unit)}/{grain}"


def markdown(status: Status) -> str:
    """A status as Markdown: a table of targets by level, their checkpoints, then the alerts (no raw HTML)."""
    from .escaping import markdown_text

    out = [f"# Status of {status.title or status.tree} at {status.at or '—'}", ""]
    if status.params:
        out += ["Params: " + ", ".join(f"`{k} = {v:g}`" for k, v in status.params.items()), ""]
    if not status.targets and not status.alerts:
        out += ["The tree has no targets or alerts.", ""]
    if status.targets:
        out += ["## Targets", ""]
        for level, targets in status.by_level():
            out += [f"### {(level or 'other').capitalize()}", "",
                    "| target | slice | start | now | plan now | deadline | done | state | pace needed |",
                    "|---|---|---|---|---|---|--:|---|---|"]
            for t in targets:
                start = f"{t.show(t.start_value)} ({t.start_period})" if t.start_period else "—"
                done = f"{t.progress * 100:.0f}%".replace("-", "−") if t.progress is not None else "—"
                out.append("| " + " | ".join(_cell(x) for x in (
                    t.title, t.where or "all", start, t.show(t.current), t.show(t.planned),
                    t.deadline_period, done, f"**{t.state}**", pace_text(t, status.grain))) + " |")
            out.append("")
            for t in targets:
                for line in ([t.reason] if t.reason else []) + list(t.notes):
                    out.append(f"- {t.title}: {line}")
                if t.checkpoints:
                    out += [*([""] if out[-1] else []), f"Checkpoints of {t.title}:", "",
                            "| checkpoint | plan | actual | reached |", "|---|--:|--:|---|"]
                    for c in t.checkpoints:
                        reached = "yes" if c.reached else "no" if c.reached is False else "—"
                        out.append(f"| {c.period} | {t.show(c.planned)} | {t.show(c.actual)} | "
                                   f"{reached} |")
                    out.append("")
            if out[-1] != "":
                out.append("")
    if status.alerts:
        fired = len(status.fired)
        out += ["## Alerts", "", f"{fired} of {len(status.alerts)} alert(s) fired at {status.at or '—'}.", "",
                "| state | severity | alert | slice | value | message |", "|---|---|---|---|--:|---|"]
        for a in sorted(status.alerts, key=_alert_order):
            state = f"**{a.state}**" if a.fired else a.state
            message = a.message or ""
            if a.reason:
                message = f"{message} ({a.reason})" if message else a.reason
            out.append("| " + " | ".join(_cell(x) for x in (
                state, a.severity, f"`{a.condition}`", a.where or "all", a.value_text, message)) + " |")
        out.append("")
    return markdown_text("\n".join(out))


def _alert_order(a: AlertStatus) -> tuple[int, int]:
    return (ALERT_STATES.index(a.state), -("info", "warning", "critical").index(a.severity))


__all__ = [
    "ALERT_STATES",
    "TARGET_STATES",
    "AlertStatus",
    "Checkpoint",
    "MetricValue",
    "Status",
    "TargetStatus",
    "holds",
    "markdown",
    "status",
]
