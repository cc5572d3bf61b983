"""What-if: change some metrics in one period and follow the change up the formulas.

``tree.simulate(data, period="2026-10", changes={"open_rate": "+10%", "aov": 2600})``
takes every metric's observed value in the period, sets the changed metrics, and
recomputes every formula above them — exactly, with the same evaluator as
``evaluate``. Influence links (``<~``) have no formula, so nothing is propagated
through them: the scenario says so. Time-shifted inputs (``customers[-1]``) keep their
observed values: a scenario changes one period, not its past.

``tree.sensitivity(data, "ltv")`` nudges each driver below a metric by 1 % on its own
(one state per driver, all recomputed at once) and ranks them by how much the metric
moves: the elasticities through the formula tree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs
import networkx as nx
import pyarrow as pa

from . import periods
from .errors import DataError, UsageError, did_you_mean, error
from .evaluating import resolve_params
from .functions import Registry
from .model import Tree
from .pluginmanager import registry as default_registry
from .states import States, history, prepare, repeat, states


@attrs.frozen
class Change:
    """One requested change: ``+10%`` (relative), ``+2pp`` / ``-150`` (added), ``2600`` / ``30%`` (a new value)."""

    metric: str
    text: str
    kind: str  # "relative", "add" or "set"
    amount: float

    def apply(self, value: float) -> float:
        if self.kind == "relative":
            return value * (1 + self.amount)
        if self.kind == "add":
            return value + self.amount
        return self.amount


_CHANGE = re.compile(r"^\s*(?P<sign>[+-])?\s*(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*(?P<unit>%|pp)?\s*$")


def parse_change(metric: str, value: Any) -> Change:
    """Read a change as people write it; see `Change`."""
    if isinstance(value, bool):
        raise UsageError(error(f"the change of '{metric}' must be a number, got {value!r}", code="change"))
    if isinstance(value, int | float):
        return Change(metric, str(value), "set", float(value))
    match = _CHANGE.match(str(value))
    if not match:
        raise UsageError(error(f"cannot read the change '{value}' for '{metric}'",
                               hint="write +10% or -5% (relative), +2pp (percentage points), +150 (added), "
                                    "2600 or 30% (the new value)", code="change"))
    sign = -1.0 if match["sign"] == "-" else 1.0
    number = float(match["number"])
    unit = match["unit"]
    if match["sign"] is None:
        if unit == "pp":
            raise UsageError(error(f"'{value}' for '{metric}': percentage points need a sign (+2pp or -2pp)",
                                   code="change"))
        return Change(metric, str(value), "set", number / 100 if unit == "%" else number)
    if unit == "%":
        return Change(metric, str(value), "relative", sign * number / 100)
    if unit == "pp":
        return Change(metric, str(value), "add", sign * number / 100)
    return Change(metric, str(value), "add", sign * number)


@attrs.frozen
class Effect:
    """A metric before and after the scenario."""

    metric: str
    label: str
    unit: str | None
    before: float | None
    after: float | None
    changed: bool  # set by the scenario itself rather than recomputed

    @property
    def change(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    @property
    def relative(self) -> float | None:
        change = self.change
        return change / abs(self.before) if change is not None and self.before else None

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "label": self.label, "unit": self.unit, "before": self.before,
                "after": self.after, "change": self.change, "relative": self.relative, "set": self.changed}


@attrs.frozen
class TargetEffect:
    """Whether a target is met before and after the scenario (in the simulated period)."""

    metric: str
    condition: str
    deadline: str
    before: float | None
    after: float | None
    met_before: bool | None
    met_after: bool | None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Scenario:
    """The result of `Tree.simulate`.

    Attributes:
        tree, period: what was simulated.
        changes: the changes as read.
        effects: every metric the changes reach through formulas, before → after (the changed ones first).
        targets: targets on those metrics, met or not before and after.
        notes: what a scenario does not do (influence links, time shifts).
    """

    tree: str
    period: str
    changes: tuple[Change, ...]
    effects: tuple[Effect, ...]
    targets: tuple[TargetEffect, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"tree": self.tree, "period": self.period,
                "changes": [attrs.asdict(c) for c in self.changes], "effects": [e.to_dict() for e in self.effects],
                "targets": [t.to_dict() for t in self.targets], "notes": list(self.notes)}

    def to_markdown(self) -> str:
        from .escaping import markdown_text
        from .narrating import change_in_points, number

        lines = [f"# What if … ({self.tree}, {self.period})", "",
                 "Changes: " + ", ".join(f"{c.metric} {c.text}" for c in self.changes) + ".", "",
                 "| metric | before | after | change | |", "|---|---:|---:|---:|---|"]
        for e in self.effects:
            rel = f"{e.relative * 100:+.1f} %" if e.relative is not None else ""
            lines.append(f"| {e.label} | {number(e.before, e.unit)} | {number(e.after, e.unit)} | "
                         f"{change_in_points(e.change, e.unit)} {rel} | {'set' if e.changed else ''} |")
        if self.targets:
            lines += ["", "| target | before | after |", "|---|---|---|"]
            for t in self.targets:
                lines.append(f"| {t.condition} by {t.deadline} | {_met(t.met_before)} | {_met(t.met_after)} |")
        lines += ["", *[f"- {note}" for note in self.notes]]
        return markdown_text("\n".join(lines) + "\n")

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _met(value: bool | None) -> str:
    return "no data" if value is None else "met" if value else "not met"


def _check_metric(tree: Tree, name: str) -> None:
    if name not in tree.metrics:
        raise UsageError(error(f"unknown metric '{name}'", hint=did_you_mean(name, tree.metrics) or
                               f"the tree's metrics: {', '.join(tree.metrics)}", code="unknown-metric"))
    if tree.metrics[name].kind == "group":
        raise UsageError(error(f"'{name}' is a grouping node with no formula: it has no value to change",
                               hint="change one of its drivers", code="group-metric"))


def _observe(tree: Tree, data, names: list[str], period: str | None, params, registry):
    """The states of one period (its observed values), and its label."""
    grain = tree.grain
    prepared = prepare(tree, names, registry)
    end = periods.parse(period, grain, end=True) if period else None
    observed = history(prepared, data, grain, params, end, registry)
    labels = observed.table.column("period").to_pylist()
    if not labels:
        raise DataError(error("there is no data to simulate on", code="empty"))
    first = periods.parse(labels[0], grain)
    at = periods.parse(period, grain) if period else first + len(labels) - 1
    if at < first:
        raise DataError(error(f"the period {period} has no data", hint=f"the data covers {labels[0]} to "
                                                                      f"{labels[-1]}", code="period"))
    return prepared, states(prepared, observed.table, [(at, at)], first, params, registry), periods.label(at, grain)


def simulate(tree: Tree, data: Mapping[str, Any], changes: Mapping[str, Any], period: str | None = None,
             params: Mapping[str, Any] | None = None, registry: Registry | None = None) -> Scenario:
    """Set ``changes`` in ``period`` (default: the last with data) and recompute every formula above them."""
    registry = registry or default_registry()
    if not changes:
        raise UsageError(error("no change to simulate", hint="e.g. --set open_rate=+10% --set aov=2600",
                               code="change"))
    parsed = [parse_change(name, value) for name, value in changes.items()]
    for change in parsed:
        _check_metric(tree, change.metric)
    values = resolve_params(tree, params)
    names = [m for m in tree.metrics if tree.metrics[m].kind != "group"]
    prepared, observed, label = _observe(tree, data, names, period, values, registry)
    world = repeat(observed, 2)
    overrides = {}
    for change in parsed:
        (value,) = observed.pair(change.metric)
        if value is None:
            raise DataError(error(f"'{change.metric}' has no value in {label}, so it cannot be changed by "
                                  f"{change.text}", tree.metrics[change.metric].span,
                                  "set a new value instead (e.g. 2600), or pick another period", "change"))
        overrides[change.metric] = (pa.array([False, True]), pa.array([value, change.apply(value)], pa.float64()))
    world.recompute(overrides)
    formula = nx.subgraph_view(tree.graph, filter_edge=lambda a, b: tree.graph.edges[a, b]["kind"] == "formula")
    reached = set()
    for change in parsed:
        reached |= {change.metric, *nx.ancestors(formula, change.metric)}
    set_names = [c.metric for c in parsed]
    order = set_names + [n for n in prepared.wanted if n in reached and n not in set_names]
    effects = tuple(_effect(tree, world, n, n in set_names) for n in order)
    targets = []
    for target in tree.targets:
        if target.metric in reached and target.where is None:
            before, after = world.pair(target.metric)
            targets.append(TargetEffect(target.metric, target.condition.to_source(), target.deadline, before, after,
                                        _holds(before, target.op, target.value), _holds(after, target.op,
                                                                                        target.value)))
    notes = ["Changes travel up through formulas only; influence links (<~) are not propagated."]
    influenced = sorted({p for c in parsed for p, _, k in tree.graph.in_edges(c.metric, data="kind")
                         if k == "influence"})
    if influenced:
        notes.append(f"Not propagated, influence only: {', '.join(influenced)}.")
    if prepared.shifts:
        notes.append("Time-shifted inputs (" + ", ".join(f"{m}[{k}]" for m, k in prepared.shifts) +
                     ") keep their observed values.")
    return Scenario(tree.name, label, tuple(parsed), effects, tuple(targets), tuple(notes))


def _effect(tree: Tree, world: States, name: str, changed: bool) -> Effect:
    metric = tree.metrics[name]
    before, after = world.pair(name)
    return Effect(name, metric.title, metric.unit, before, after, changed)


def _holds(value: float | None, op: str, target: float) -> bool | None:
    from .rules import holds

    return None if value is None else holds(value, op, target)


def sensitivity(tree: Tree, data: Mapping[str, Any], metric: str, period: str | None = None, step: float = 0.01,
                params: Mapping[str, Any] | None = None, registry: Registry | None = None) -> pa.Table:
    """Each driver below ``metric`` moved by ``step`` (1 %) on its own, ranked by its effect on ``metric``.

    Columns: ``driver``, ``label``, ``kind`` (``metric`` or ``param``), ``value``, ``effect`` (the metric's
    change, in its units), ``elasticity`` (the metric's relative change / ``step``).
    """
    registry = registry or default_registry()
    _check_metric(tree, metric)
    values = resolve_params(tree, params)
    prepared, observed, _ = _observe(tree, data, [metric], period, values, registry)
    (base,) = observed.pair(metric)
    if base is None:
        raise DataError(error(f"'{metric}' has no value in this period", tree.metrics[metric].span,
                              "pick another period", "null-root"))
    drivers = [n for n in prepared.wanted if n != metric]
    world = repeat(observed, len(drivers) + 1)
    overrides = {}
    for i, name in enumerate(drivers, 1):
        (value,) = observed.pair(name)
        if value is None:
            continue
        mask = pa.array([row == i for row in range(world.size)])
        overrides[name] = (mask, pa.array([value * (1 + step)] * world.size, pa.float64()))
    world.recompute(overrides)
    moved = world.pair(metric)
    rows = []
    for i, name in enumerate(drivers, 1):
        (value,) = observed.pair(name)
        rows.append(_row(name, tree.metrics[name].title, "metric", value, moved[i], base, step))
    used_params = sorted({p for n in prepared.wanted for p in tree.metrics[n].params})
    for name in used_params:
        nudged = repeat(observed, 1)
        nudged.params = {**values, name: values[name] * (1 + step)}
        nudged.recompute()
        rows.append(_row(name, tree.params[name].label or name, "param", values[name], nudged.pair(metric)[0],
                         base, step))
    rows.sort(key=lambda r: -abs(r["elasticity"]) if r["elasticity"] is not None else 0)
    schema = pa.schema([("driver", pa.string()), ("label", pa.string()), ("kind", pa.string()),
                        ("value", pa.float64()), ("effect", pa.float64()), ("elasticity", pa.float64())])
    return pa.Table.from_pylist(rows, schema)


def _row(name, label, kind, value, after, base, step) -> dict[str, Any]:
    effect = None if after is None else after - base
    elasticity = None if effect is None or not base else effect / abs(base) / step
    return {"driver": name, "label": label, "kind": kind, "value": value, "effect": effect, "elasticity": elasticity}


__all__ = ["Change", "Effect", "Scenario", "TargetEffect", "parse_change", "sensitivity", "simulate"]
