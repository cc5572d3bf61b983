"""A tree's formulas recomputed in a few *states* of its inputs, side by side.

`explain` compares two states (the baseline and the current period); `simulate`
compares the actual values with a scenario, and sensitivity compares one state per
input nudged by 1 %. All of them need the same thing: every input of the formulas —
base metrics, and each time shift (``customers[-1]``) or window call
(``change(revenue)``), which become hidden metrics evaluated on the full history —
with one value per state, and the derived metrics recomputed over those few rows with
the ordinary vectorised evaluator.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from . import periods
from . import syntax as s
from .evaluating import Evaluation, evaluate, requests
from .formulas import Scope, as_array, evaluate as evaluate_expr
from .functions import Registry
from .model import Metric, Tree


@attrs.frozen
class Prepared:
    """A tree with its time shifts and window calls turned into hidden metrics.

    Attributes:
        tree: the tree plus the hidden metrics (``__shift0`` …) and their formula edges.
        wanted: the tree's own metrics involved, in evaluation order.
        hidden: the hidden metrics by name.
        shifts: ``(metric, offset) → hidden name``; calls: ``id(call node) → hidden name``.
    """

    tree: Tree
    wanted: tuple[str, ...]
    hidden: Mapping[str, Metric]
    shifts: Mapping[tuple[str, int], str]
    calls: Mapping[int, str]

    @property
    def inputs(self) -> list[str]:
        """The names whose values are observed rather than recomputed: base metrics and hidden metrics."""
        return [n for n in (*self.wanted, *self.hidden) if self.tree.metrics[n].kind == "base" or n in self.hidden]


def prepare(tree: Tree, metrics: list[str], registry: Registry) -> Prepared:
    """Everything ``metrics`` need, with shifts and window calls as hidden metrics."""
    wanted = [n for n in tree.requirements(metrics) if tree.metrics[n].kind != "group"]
    hidden: dict[str, Metric] = {}
    shifts: dict[tuple[str, int], str] = {}
    calls: dict[int, str] = {}
    for name in wanted:
        metric = tree.metrics[name]
        if metric.kind != "derived":
            continue
        for node in s.walk(metric.formula):
            if isinstance(node, s.Shift) and (node.name, node.offset) not in shifts:
                key = f"__shift{len(shifts)}"
                shifts[(node.name, node.offset)] = key
                hidden[key] = Metric(key, "derived", node, inputs=(node.name,), shifts=((node.name, node.offset),))
            elif isinstance(node, s.Call) and getattr(registry.scalars.get(node.name), "window", False):
                key = f"__window{len(calls)}"
                calls[id(node)] = key
                refs = tuple(dict.fromkeys(n.name for n in s.walk(node) if isinstance(n, s.Name | s.Shift)
                                           and n.name in tree.metrics))
                hidden[key] = Metric(key, "derived", node, inputs=refs)
    augmented = tree
    if hidden:
        augmented = tree.with_metrics({metric.name: metric for metric in hidden.values()},
                                      [(metric.name, child) for metric in hidden.values() for child in metric.inputs])
    return Prepared(augmented, tuple(wanted), hidden, shifts, calls)


def history(prepared: Prepared, data, grain: str, params: Mapping[str, float], end: int | None,
            registry: Registry, start: int | None = None, given=None, ridden=()) -> Evaluation:
    """Every metric involved (and the hidden ones) per period, unsliced, from ``start`` (default: the
    beginning of the data; time shifts still see earlier periods) up to ``end``; ``given``: base metrics
    already counted, ``ridden``: its reads already made in another evaluation's (see `evaluating.evaluate`)."""
    return evaluate(prepared.tree, data, **_history_of(prepared, grain, params, end, registry, start), given=given,
                    ridden=ridden)


def history_requests(prepared: Prepared, grain: str, params: Mapping[str, float], end: int | None,
                     registry: Registry, start: int | None = None, given=()) -> list:
    """What `history` with these arguments asks of the backends (`evaluating.requests`)."""
    return requests(prepared.tree, **_history_of(prepared, grain, params, end, registry, start), given=given)


def _history_of(prepared: Prepared, grain: str, params: Mapping[str, float], end: int | None, registry: Registry,
                start: int | None) -> dict:
    """The evaluation `history` makes, as keyword arguments of `evaluating.evaluate` and `evaluating.requests`."""
    return {"grain": grain, "metrics": [*prepared.wanted, *prepared.hidden], "params": params,
            "start": periods.label(start, grain) if start is not None else None,
            "end": periods.label(end, grain) if end is not None else None, "registry": registry}


def observed(table: pa.Table, names: list[str], spans: list[tuple[int, int]], first: int) -> dict[str, pa.Array]:
    """Each column's value in each state: a period's value, or the mean over a range of periods."""
    out = {}
    for name in names:
        column = table.column(name).to_pylist()
        values = []
        for lo, hi in spans:
            window = [column[i - first] for i in range(lo, hi + 1) if 0 <= i - first < len(column)]
            values.append(None if not window or any(v is None for v in window) else sum(window) / len(window))
        out[name] = pa.array(values, pa.float64())
    return out


@attrs.define
class States:
    """The values of a tree's metrics in ``size`` states (one row each).

    Attributes:
        prepared: the tree and its hidden metrics.
        values: metric (or hidden input) → one value per state.
        params: the params in force.
        registry: the functions.
        size: the number of states.
    """

    prepared: Prepared
    values: dict[str, pa.Array]
    params: Mapping[str, float]
    registry: Registry
    size: int

    def scope(self, extra: dict[str, pa.Array], length: int) -> Scope:
        """A scope over ``length`` rows: names resolve to ``extra`` first, then to the states' values."""
        def name(node: s.Name):
            if node.name in extra:
                return extra[node.name]
            if node.name in self.values:
                return self.values[node.name]
            return pa.scalar(float(self.params[node.name]))

        def shift(node: s.Shift):
            return self.values[self.prepared.shifts[(node.name, node.offset)]]

        def call(node: s.Call):
            hidden = self.prepared.calls.get(id(node))
            return self.values[hidden] if hidden else None

        return Scope(name=name, shift=shift, call=call, scalars=self.registry.scalars, length=length)

    def recompute(self, overrides: Mapping[str, tuple[pa.Array, pa.Array]] | None = None) -> None:
        """Recompute every derived metric, in order. ``overrides`` maps a metric to ``(mask, values)``:
        in the states where ``mask`` is true the metric takes ``values`` instead of its formula's."""
        overrides = overrides or {}
        for name in self.prepared.wanted:
            metric = self.prepared.tree.metrics[name]
            if metric.kind == "derived":
                result = evaluate_expr(metric.formula, self.scope({}, self.size))
                self.values[name] = pc.cast(as_array(result, self.size), pa.float64())
            if name in overrides:
                mask, replacement = overrides[name]
                self.values[name] = pc.if_else(mask, replacement, self.values[name])

    def pair(self, name: str) -> list[float | None]:
        return self.values[name].to_pylist()


def states(prepared: Prepared, table: pa.Table, spans: list[tuple[int, int]], first: int,
           params: Mapping[str, float], registry: Registry) -> States:
    """The states of ``spans`` (periods or ranges) with the derived metrics recomputed."""
    found = States(prepared, observed(table, prepared.inputs, spans, first), params, registry, len(spans))
    found.recompute()
    return found


def repeat(base: States, size: int) -> States:
    """``size`` copies of the first state of ``base`` (to vary them one by one)."""
    index = pa.array([0] * size, pa.int64())
    return States(base.prepared, {k: pc.take(v, index) for k, v in base.values.items()}, base.params, base.registry,
                  size)
