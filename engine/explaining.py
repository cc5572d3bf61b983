"""Why did a metric move? Exact attribution down the formulas, then into the segments of the data.

``tree.explain(data, metric="ltv", baseline="2026-09", current="2026-10", by=[...])``:

1. evaluate the tree (and every time shift its formulas read) over the history up to
   the later period, without slicing;
2. take every input's value in the two periods (a range of periods counts as the
   mean of its periods' base values) and recompute the formulas in those two states;
3. split the root's change top-down with `decomposing` — additive, LMDI or Shapley
   per operator — so the contributions of every node's drivers add up to the node's
   contribution, in the root's units;
4. influence children (``<~``) are shown with their own change and their association
   with the parent over the history, never added into the sum;
5. for the base metrics that carry weight, evaluate them by the ``by`` dimensions in
   the two periods and localise the change (`localising`): the few segments
   that explain most of it, with their contribution to the root;
6. ratio metrics (``a / b`` of two additive metrics) get a mix / rate split per
   segment, exact, the interaction split symmetrically.

The maths is written out in docs/explain.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import networkx as nx
import pyarrow as pa
import pyarrow.compute as pc

from . import periods
from . import syntax as s
from .decomposing import Decomposer
from .errors import DataError, UsageError, did_you_mean, error
from .evaluating import Evaluation, evaluate, normalise_by, resolve_params
from .states import States, history, prepare, states
from . import aggregating
from .functions import Aggregate, Partial, Registry
from .model import Metric, Tree
from .pluginmanager import registry as default_registry

# A base metric is drilled into segments when it carries at least this share of the root's change.
WEIGHT_SHARE = 0.05


# --------------------------------------------------------------------------- the result


@attrs.frozen
class PeriodValue:
    """A period (or range of periods) and the metric's value in it."""

    period: str
    value: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period, "value": self.value}


@attrs.frozen
class Segment:
    """One slice of a driver: its values, and its part of the root's change.

    Attributes:
        where: dimension → value.
        baseline, current, change: the driver's value in this slice.
        contribution: the slice's part of the root's change (root units).
        mix, rate: for ratio metrics, the parts of the slice's effect due to its weight moving (mix) and its
            own ratio moving (rate), in the metric's units; ``mix + rate`` is the slice's effect on the metric.
    """

    where: Mapping[str, Any]
    baseline: float | None
    current: float | None
    change: float | None
    contribution: float | None
    mix: float | None = None
    rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"where": dict(self.where), "baseline": self.baseline, "current": self.current, "change": self.change,
               "contribution": self.contribution}
        if self.mix is not None or self.rate is not None:
            out.update(mix=self.mix, rate=self.rate)
        return out


@attrs.frozen
class Association:
    """How an influence child moved with its parent over the history (not part of the exact sum).

    Attributes:
        elasticity: the least-squares slope of the parent's period-over-period change on the child's.
        correlation: Pearson correlation of the two series of changes.
        periods: how many period-over-period changes were used.
    """

    elasticity: float | None
    correlation: float | None
    periods: int

    def to_dict(self) -> dict[str, Any]:
        return {"elasticity": self.elasticity, "correlation": self.correlation, "periods": self.periods}


@attrs.frozen
class Driver:
    """A node of the explanation: a metric (or a time-shifted input) under its parent.

    Attributes:
        metric: the metric name, or the input as written (``customers[-1]``).
        label: for people.
        kind: ``formula`` (part of the exact sum), ``shift`` (a time-shifted input, a leaf), ``influence``.
        baseline, current, change: the driver's own values.
        contribution: its part of the root's change, in the root's units (``None`` for influence children).
        share: contribution / root change.
        method: how its contribution was split among its own drivers (``additive``, ``lmdi``, ``shapley``), or
            ``leaf`` / ``influence``.
        drivers: its own drivers.
        segments: the slices that explain its change (base and ratio metrics).
        association: for influence children.
        unit, direction: from the tree.
    """

    metric: str
    label: str
    kind: str
    baseline: float | None
    current: float | None
    change: float | None
    contribution: float | None
    share: float | None
    method: str
    drivers: tuple[Driver, ...] = ()
    segments: tuple[Segment, ...] = ()
    association: Association | None = None
    unit: str | None = None
    direction: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"metric": self.metric, "label": self.label, "kind": self.kind, "baseline": self.baseline,
               "current": self.current, "change": self.change, "contribution": self.contribution,
               "share": self.share, "method": self.method, "unit": self.unit,
               "drivers": [d.to_dict() for d in self.drivers], "segments": [x.to_dict() for x in self.segments]}
        if self.association is not None:
            out["association"] = self.association.to_dict()
        return out

    def walk(self):
        yield self
        for child in self.drivers:
            yield from child.walk()


@attrs.frozen
class RootCause:
    """A finding: a slice of a base metric that explains part of the root's change.

    Attributes:
        metric: the base metric.
        where: dimension → value (one or several dimensions).
        contribution: its part of the root's change, in the root's units.
        share: contribution / root change.
        baseline, current, change: the base metric in that slice.
    """

    metric: str
    where: Mapping[str, Any]
    contribution: float
    share: float | None
    baseline: float | None = None
    current: float | None = None
    change: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "where": dict(self.where), "contribution": self.contribution,
                "share": self.share, "baseline": self.baseline, "current": self.current, "change": self.change}


@attrs.frozen
class Explanation:
    """Why ``metric`` moved from ``baseline`` to ``current``.

    Attributes:
        tree: the tree's name.
        metric, label, unit, direction: the root metric.
        baseline, current: the periods compared and the root's value in each.
        change: current − baseline; relative_change: change / |baseline|.
        drivers: the root's drivers (recursively); formula drivers' contributions add up to ``change``.
        root_causes: the most important slices, ranked by |contribution|.
        residual: change − the sum of the leaves' contributions (float rounding only).
        by: the dimensions drilled into.
        notes: anything the reader should know (a dimension a source lacks, non-additive metrics…).
        method: how the root's change was split among its drivers.
        segments: the root's own slices (its change by segment; mix / rate for a ratio).
    """

    tree: str
    metric: str
    label: str
    unit: str | None
    direction: str | None
    baseline: PeriodValue
    current: PeriodValue
    change: float
    relative_change: float | None
    drivers: tuple[Driver, ...]
    root_causes: tuple[RootCause, ...]
    residual: float
    by: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    method: str = "additive"
    segments: tuple[Segment, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (nulls as ``None``, never NaN)."""
        return {"tree": self.tree, "metric": self.metric, "label": self.label, "unit": self.unit,
                "baseline": self.baseline.to_dict(), "current": self.current.to_dict(), "change": self.change,
                "relative_change": self.relative_change, "method": self.method,
                "drivers": [d.to_dict() for d in self.drivers],
                "segments": [x.to_dict() for x in self.segments],
                "root_causes": [r.to_dict() for r in self.root_causes], "residual": self.residual,
                "by": list(self.by), "notes": list(self.notes), "summary": self.summary()}

    def contributions(self) -> pa.Table:
        """One row per metric node (``segment`` null) and per segment of a node, with contributions."""
        rows = []

        def visit(driver: Driver, parent: str | None, depth: int) -> None:
            rows.append({"metric": driver.metric, "parent": parent, "depth": depth, "kind": driver.kind,
                         "segment": None, "baseline": driver.baseline, "current": driver.current,
                         "change": driver.change, "contribution": driver.contribution, "method": driver.method})
            for seg in driver.segments:
                rows.append({"metric": driver.metric, "parent": parent, "depth": depth, "kind": "segment",
                             "segment": " & ".join(f"{k}={v}" for k, v in seg.where.items()),
                             "baseline": seg.baseline, "current": seg.current, "change": seg.change,
                             "contribution": seg.contribution, "method": driver.method})
            for child in driver.drivers:
                visit(child, driver.metric, depth + 1)

        rows.append({"metric": self.metric, "parent": None, "depth": 0, "kind": "root", "segment": None,
                     "baseline": self.baseline.value, "current": self.current.value, "change": self.change,
                     "contribution": self.change, "method": self.method})
        for driver in self.drivers:
            visit(driver, self.metric, 1)
        schema = pa.schema([("metric", pa.string()), ("parent", pa.string()), ("depth", pa.int64()),
                            ("kind", pa.string()), ("segment", pa.string()), ("baseline", pa.float64()),
                            ("current", pa.float64()), ("change", pa.float64()), ("contribution", pa.float64()),
                            ("method", pa.string())])
        return pa.Table.from_pylist(rows, schema)

    def summary(self) -> list[str]:
        """A few plain sentences: what moved, which driver carries most of it, where."""
        from .narrating import sentences

        return sentences(self)

    def to_markdown(self) -> str:
        from .narrating import markdown

        return markdown(self)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        """The summary, the waterfall, the root causes and every driver (`metrictree.reporting`)."""
        from .reporting import explanation_fragment

        return explanation_fragment(self)


# --------------------------------------------------------------------------- periods


def _span(text: str, grain: str) -> tuple[int, int]:
    for sep in ("..", ":"):
        if sep in str(text):
            start, end = (part.strip() for part in str(text).split(sep, 1))
            first, last = periods.parse(start, grain), periods.parse(end, grain, end=True)
            if first > last:
                raise UsageError(error(f"the range {text} ends before it starts", hint="write it as START..END",
                                       code="period"))
            return first, last
    return periods.parse(text, grain), periods.parse(text, grain, end=True)


def _describe(span: tuple[int, int], grain: str) -> str:
    first, last = span
    return periods.label(first, grain) if first == last else \
        f"{periods.label(first, grain)}..{periods.label(last, grain)}"


# --------------------------------------------------------------------------- explain


def explain(tree: Tree, data: Mapping[str, Any], metric: str, baseline: str | None = None,
            current: str | None = None, by: Sequence[str] | str | None = None, grain: str | None = None,
            params: Mapping[str, Any] | None = None, top: int = 5, registry: Registry | None = None) -> Explanation:
    """Explain the change of ``metric`` between two periods; see the module docstring."""
    registry = registry or default_registry()
    grain = periods.check_grain(grain or tree.grain)
    if metric not in tree.metrics:
        raise UsageError(error(f"unknown metric '{metric}'", hint=did_you_mean(metric, tree.metrics) or
                               f"the tree's metrics: {', '.join(tree.metrics)}", code="unknown-metric"))
    if tree.metrics[metric].kind == "group":
        raise UsageError(error(f"'{metric}' is a grouping node with no formula: it has no value to explain",
                               hint="explain one of its drivers: " + ", ".join(tree.drivers(metric)),
                               code="group-metric"))
    every_dimension = by is None
    by = normalise_by(tree, list(tree.dimensions) if by is None else by)
    values_of_params = resolve_params(tree, params)

    # Everything below the root, formula and influence, and what their formulas need.
    prepared = prepare(tree, [metric, *nx.descendants(tree.graph, metric)], registry)

    current_span = _span(current, grain) if current else None
    baseline_span = _span(baseline, grain) if baseline else None
    end = max(x[1] for x in (current_span, baseline_span) if x) if (current_span or baseline_span) else None
    # Influence children are judged over the whole history; without them, the two periods are enough.
    influenced = any(k == "influence" for _, _, k in tree.graph.edges(prepared.wanted, data="kind"))
    start = None if influenced or not (current_span and baseline_span) else min(current_span[0], baseline_span[0])
    observed_history = history(prepared, data, grain, values_of_params, end, registry, start)
    table = observed_history.table
    if table.num_rows == 0:
        raise DataError(error("there is no data to explain", hint="check the data and the periods", code="empty"))
    labels = table.column("period").to_pylist()
    first = periods.parse(labels[0], grain)
    covered = observed_history.covered or (labels[0], labels[-1])
    data_first, data_last = (periods.parse(p, grain) for p in covered)
    if current_span is None:
        current_span = (data_last, data_last)
    if baseline_span is None:
        size = current_span[1] - current_span[0] + 1
        baseline_span = (current_span[0] - size, current_span[0] - 1)
    for name, span_ in (("baseline", baseline_span), ("current", current_span)):
        if span_[1] < data_first or span_[0] > data_last:
            raise DataError(error(f"the {name} period {_describe(span_, grain)} has no data",
                                  hint=f"the data covers {covered[0]} to {covered[1]}", code="period"))

    spans = [baseline_span, current_span]
    world = states(prepared, table, spans, first, values_of_params, registry)

    root_b, root_c = (world.values[metric].to_pylist())
    b_label, c_label = _describe(baseline_span, grain), _describe(current_span, grain)
    for label_, value in ((b_label, root_b), (c_label, root_c)):
        if value is None:
            why = next((n.reason for n in observed_history.nulls
                        if n.metric == metric and n.first.get("period") == label_), None) or next(
                (n.reason for n in observed_history.nulls if n.metric == metric), "it is undefined")
            raise DataError(error(f"{metric} has no value in {label_}: {why}", tree.metrics[metric].span,
                                  "compare periods where it is defined", "null-root"))
    change = root_c - root_b
    builder = _Builder(tree, world, observed_history, registry, change)
    drivers, method = builder.children(metric, change, set())
    residual = change - sum(d.contribution or 0.0 for d in drivers if d.kind != "influence")
    leaf_total = sum(contrib for contrib in builder.leaf_contributions.values())
    residual = change - leaf_total if builder.leaf_contributions else residual

    notes: list[str] = []
    root_causes: list[RootCause] = []
    root_segments: tuple[Segment, ...] = ()
    if by:
        drill = _drill(tree, data, builder, by, spans, grain, values_of_params, registry, notes, top,
                       every_dimension)
        drivers = tuple(_attach_segments(d, drill) for d in drivers)
        if metric in drill:
            root_segments = drill[metric].segments
        root_causes = sorted((rc for found in drill.values() for rc in found.causes),
                             key=lambda rc: -abs(rc.contribution))[:top]
    m = tree.metrics[metric]
    return Explanation(tree.name, metric, m.title, m.unit, m.direction, PeriodValue(b_label, root_b),
                       PeriodValue(c_label, root_c), change, change / abs(root_b) if root_b else None,
                       tuple(drivers), tuple(root_causes), residual, tuple(by), tuple(notes), method, root_segments)


@attrs.define
class _Builder:
    tree: Tree
    world: States
    history: Evaluation
    registry: Registry
    root_change: float
    leaf_contributions: dict[str, float] = attrs.field(factory=dict)
    base_contributions: dict[str, float] = attrs.field(factory=dict)
    derived_contributions: dict[str, float] = attrs.field(factory=dict)

    def pair(self, name: str) -> tuple[float | None, float | None]:
        b, c = self.world.values[name].to_pylist()
        return b, c

    def share(self, contribution: float | None) -> float | None:
        if contribution is None or not self.root_change:
            return None
        return contribution / self.root_change

    def children(self, name: str, contribution: float, path: set[str]) -> tuple[tuple[Driver, ...], str]:
        metric = self.tree.metrics[name]
        drivers: list[Driver] = []
        method = "leaf"
        if metric.kind == "derived":
            self.derived_contributions[name] = self.derived_contributions.get(name, 0.0) + contribution
            inverse_shift = {v: k for k, v in self.world.prepared.shifts.items()}
            inverse_call = set(self.world.prepared.calls.values())

            def leaf(node: s.Expr):
                if isinstance(node, s.Name) and node.name in self.tree.metrics:
                    return node.name
                if isinstance(node, s.Shift):
                    return self.world.prepared.shifts[(node.name, node.offset)]
                if isinstance(node, s.Call) and id(node) in self.world.prepared.calls:
                    return self.world.prepared.calls[id(node)]
                return None

            decomposer = Decomposer(self.world.scope, leaf)
            split = decomposer.split(metric.formula, contribution)
            method = split.method
            for ref, part in split.contributions.items():
                if ref in inverse_shift:
                    source, offset = inverse_shift[ref]
                    drivers.append(self.leaf_driver(ref, f"{source}[{offset}]", part, "shift"))
                elif ref in inverse_call:
                    drivers.append(self.leaf_driver(ref, self.world.prepared.hidden[ref].formula.to_source(), part, "shift"))
                else:
                    drivers.append(self.driver(ref, part, path | {name}))
        elif metric.kind == "base":
            self.base_contributions[name] = self.base_contributions.get(name, 0.0) + contribution
            self.leaf_contributions[name] = self.leaf_contributions.get(name, 0.0) + contribution
        for child in self.tree.drivers(name, kind="influence"):
            if child not in path:
                drivers.append(self.influence(name, child, path | {name}))
        return tuple(drivers), method

    def leaf_driver(self, ref: str, text: str, contribution: float, kind: str) -> Driver:
        b, c = self.pair(ref)
        self.leaf_contributions[text] = self.leaf_contributions.get(text, 0.0) + contribution
        return Driver(text, text, kind, b, c, None if b is None or c is None else c - b, contribution,
                      self.share(contribution), "leaf")

    def driver(self, name: str, contribution: float, path: set[str]) -> Driver:
        metric = self.tree.metrics[name]
        b, c = self.pair(name)
        drivers, method = self.children(name, contribution, path)
        return Driver(name, metric.title, "formula", b, c, None if b is None or c is None else c - b, contribution,
                      self.share(contribution), method, drivers, unit=metric.unit, direction=metric.direction)

    def influence(self, parent: str, name: str, path: set[str]) -> Driver:
        metric = self.tree.metrics[name]
        if metric.kind == "group":
            children = tuple(self.influence(name, c, path | {name}) for c in self.tree.drivers(name)
                             if c not in path)
            return Driver(name, metric.title, "influence", None, None, None, None, None, "influence", children,
                          unit=metric.unit, direction=metric.direction)
        b, c = self.pair(name) if name in self.world.values else (None, None)
        association = _association(self.history.table, parent, name) if parent in self.world.values else None
        children = tuple(self.influence(name, ch, path | {name}) for ch in self.tree.drivers(name, kind="influence")
                         if ch not in path)
        return Driver(name, metric.title, "influence", b, c, None if b is None or c is None else c - b, None, None,
                      "influence", children, association=association, unit=metric.unit,
                      direction=metric.direction)


def _association(table: pa.Table, parent: str, child: str) -> Association:
    """Elasticity of the parent's period-over-period change on the child's, over the history."""
    if parent not in table.column_names or child not in table.column_names:
        return Association(None, None, 0)
    ys, xs = table.column(parent).to_pylist(), table.column(child).to_pylist()
    pairs = []
    for i in range(1, len(ys)):
        y0, y1, x0, x1 = ys[i - 1], ys[i], xs[i - 1], xs[i]
        if None in (y0, y1, x0, x1) or not y0 or not x0:
            continue
        pairs.append(((x1 - x0) / abs(x0), (y1 - y0) / abs(y0)))
    n = len(pairs)
    if n < 3:
        return Association(None, None, n)
    mx = sum(x for x, _ in pairs) / n
    my = sum(y for _, y in pairs) / n
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    syy = sum((y - my) ** 2 for _, y in pairs)
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    elasticity = sxy / sxx if sxx > 0 else None
    correlation = sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None
    return Association(elasticity, correlation, n)


# --------------------------------------------------------------------------- segments


@attrs.frozen
class _Drill:
    segments: tuple[Segment, ...]
    causes: tuple[RootCause, ...]


def _ratio_parts(metric: Metric, tree: Tree, registry: Registry) -> tuple[str, str] | None:
    """``(numerator, denominator)`` when a metric is ``a / b`` of two additive base metrics of one source."""
    f = metric.formula
    if not (metric.kind == "derived" and isinstance(f, s.Binary) and f.op == "/" and isinstance(f.left, s.Name)
            and isinstance(f.right, s.Name)):
        return None
    a, b = tree.metrics.get(f.left.name), tree.metrics.get(f.right.name)
    if a is None or b is None or a.kind != "base" or b.kind != "base" or a.source != b.source:
        return None
    if not (_is_additive(a, registry) and _is_additive(b, registry)):
        return None
    return a.name, b.name


def _drill(tree: Tree, data, builder: _Builder, by: list[str], spans, grain: str, params, registry,
           notes: list[str], top: int, every_dimension: bool) -> dict[str, _Drill]:
    from .localising import localise

    total = abs(builder.root_change) or 1.0
    weighty = [name for name, contribution in builder.base_contributions.items()
               if abs(contribution) >= WEIGHT_SHARE * total]
    ratios = {name: parts for name, contribution in builder.derived_contributions.items()
              if abs(contribution) >= WEIGHT_SHARE * total
              and (parts := _ratio_parts(tree.metrics[name], tree, registry))}
    needed = list(dict.fromkeys([*weighty, *(p for parts in ratios.values() for p in parts)]))
    by_source: dict[str, list[str]] = {}
    for name in needed:
        by_source.setdefault(tree.metrics[name].source, []).append(name)
    lo = min(a for a, _ in spans)
    hi = max(b for _, b in spans)
    found: dict[str, _Drill] = {}
    leaves_of: dict[str, tuple[pa.Table, list[str]]] = {}
    sliceable, registry, column_of = _fractional(tree, needed, registry)
    for source_name, names in by_source.items():
        source = tree.sources[source_name]
        dims = [d for d in by if d in source.dimensions]
        missing = [d for d in by if d not in source.dimensions]
        if missing and not every_dimension:
            notes.append(f"source '{source_name}' has no dimension {', '.join(missing)}: "
                         f"{', '.join(names)} drilled by {', '.join(dims) or 'nothing'}")
        if not dims:
            continue
        sliced = evaluate(sliceable, data, grain=grain, by=dims, metrics=[column_of[n] for n in names],
                          params=params, start=periods.label(lo, grain), end=periods.label(hi, grain),
                          registry=registry)
        for name in names:
            leaves_of[name] = (_leaf_table(sliced.table, dims, column_of[name], spans, grain), dims)
    for name in weighty:
        if name not in leaves_of:
            continue
        leaves, dims = leaves_of[name]
        metric = tree.metrics[name]
        additive = _is_additive(metric, registry) or column_of[name] != name
        if column_of[name] != name:
            notes.append(f"{name} counts distinct values, which do not add up across segments: each is shared "
                         "equally among the segments it appears in within a period, so the segments add up to "
                         "the total")
        elif not additive:
            notes.append(f"{name} = {metric.formula.to_source()} is computed segment by segment and does not add "
                         "up across them exactly (a customer in two segments counts in both): its segments' "
                         "shares of the change are approximate")
        delta = _total(leaves, "current") - _total(leaves, "baseline")
        scale = builder.base_contributions[name] / delta if delta else None
        causes = []
        if scale is not None:
            for element in localise(leaves, dims, max_elements=top):
                part = scale * element.change
                causes.append(RootCause(name, element.where, part, builder.share(part), element.baseline,
                                        element.current, element.change))
        found[name] = _Drill(tuple(_segments(leaves, dims)), tuple(causes))
    for name, (numerator, denominator) in ratios.items():
        if numerator in leaves_of and denominator in leaves_of:
            segments = _mix_rate(leaves_of[numerator], leaves_of[denominator][0])
            causes = _rate_causes(name, leaves_of[numerator], leaves_of[denominator][0], builder, top)
            found[name] = _Drill(tuple(segments), tuple(causes))
    return found


def _rate_causes(name: str, numerator: tuple[pa.Table, list[str]], denominator: pa.Table, builder: _Builder,
                 top: int) -> list[RootCause]:
    """Where a ratio's own value moved (the rate effect), localised over the leaves.

    Each leaf's rate effect is ``w̄ₛ · (rₛ₁ − rₛ₀)`` (see `_mix_rate`); handing the localisation
    ``w̄ₛ·rₛ₀ → w̄ₛ·rₛ₁`` makes it look for elements whose leaves' ratio moved in one proportion, and
    an element's rate effect is the sum over its leaves. Its contribution to the root is that sum times
    the ratio's scale (its contribution / its change).
    """
    from .localising import localise

    leaves, dims = numerator
    contribution = builder.derived_contributions.get(name)
    n0, n1 = leaves.column("baseline"), leaves.column("current")
    d0, d1 = denominator.column("baseline"), denominator.column("current")
    total0, total1 = _total(denominator, "baseline"), _total(denominator, "current")
    if not total0 or not total1 or contribution is None:
        return []
    both = pc.and_(pc.greater(d0, 0), pc.greater(d1, 0))
    keep = leaves.filter(both)
    n0, n1, d0, d1 = (pc.filter(c, both) for c in (n0, n1, d0, d1))
    r0, r1 = pc.divide(n0, d0), pc.divide(n1, d1)
    weight = pc.divide(pc.add(pc.divide(d0, total0), pc.divide(d1, total1)), 2.0)
    rated = pa.table({**{d: keep.column(d) for d in dims}, "baseline": pc.multiply(weight, r0),
                      "current": pc.multiply(weight, r1), "__n0": n0, "__n1": n1, "__d0": d0, "__d1": d1})
    values = builder.world.pair(name)
    change = values[1] - values[0] if None not in values else None
    if not change:
        return []
    scale = contribution / change
    causes = []
    for element in localise(rated.select([*dims, "baseline", "current"]), dims, max_elements=top):
        inside = None
        for dim, value in element.where.items():
            test = pc.is_null(rated.column(dim)) if value is None else pc.equal(rated.column(dim), value)
            inside = test if inside is None else pc.and_(inside, test)
        part = rated.filter(inside)
        ratio0 = _total(part, "__n0") / _total(part, "__d0") if _total(part, "__d0") else None
        ratio1 = _total(part, "__n1") / _total(part, "__d1") if _total(part, "__d1") else None
        effect = scale * element.change
        causes.append(RootCause(name, element.where, effect, builder.share(effect), ratio0, ratio1,
                                None if ratio0 is None or ratio1 is None else ratio1 - ratio0))
    return causes


def _distinct_share(rows: pa.Table, keys: list[str]) -> pa.Table:
    """Each distinct value counts 1 per period, shared equally among the slices it appears in."""
    rows = rows.filter(pc.is_valid(rows.column("__value")))
    rows = pa.table({name: pc.cast(col, col.type.value_type) if pa.types.is_dictionary(col.type) else col
                     for name, col in zip(rows.column_names, rows.columns, strict=True)})
    pairs = rows.group_by([*keys, "__value"]).aggregate([])
    slices = pairs.group_by([aggregating.PERIOD, "__value"]).aggregate([([], "count_all")])
    joined = pairs.join(slices, [aggregating.PERIOD, "__value"])
    weight = pc.divide(1.0, pc.cast(joined.column("count_all"), pa.float64()))
    shared = joined.select(keys).append_column("__weight", weight).group_by(keys).aggregate([("__weight", "sum")])
    return shared.select([*keys, "__weight_sum"]).rename_columns([*keys, "__value"])


_SHARE = Aggregate("__distinct_share", lambda ctx, values: [Partial(values, "custom", 0.0, reduce=_distinct_share)],
                   doc="count_distinct shared among the segments a value appears in (explain only)")


def _fractional(tree: Tree, names: list[str], registry: Registry) -> tuple[Tree, Registry, dict[str, str]]:
    """A tree where every distinct count among ``names`` has a twin that adds up across segments."""
    column_of = {name: name for name in names}
    twins = {}
    for name in names:
        metric = tree.metrics[name]
        if isinstance(metric.formula, s.Call) and metric.formula.name == "count_distinct":
            twin = f"__shared_{name}"
            twins[twin] = attrs.evolve(metric, name=twin, formula=attrs.evolve(metric.formula,
                                                                                name="__distinct_share"))
            column_of[name] = twin
    if not twins:
        return tree, registry, column_of
    graph = tree.graph.copy()
    for twin, metric in twins.items():
        graph.add_node(twin, metric=metric)
    shared = attrs.evolve(registry, aggregates={**registry.aggregates, _SHARE.name: _SHARE})
    return attrs.evolve(tree, metrics={**tree.metrics, **twins}, graph=graph), shared, column_of


def _total(leaves: pa.Table, column: str) -> float:
    return pc.sum(leaves.column(column)).as_py() or 0.0


def _mix_rate(numerator: tuple[pa.Table, list[str]], denominator: pa.Table, per_dimension: int = 3) -> list[Segment]:
    """Per slice of each dimension, a ratio's change split into mix and rate, exactly.

    ``R = Σ wₛ rₛ`` with weights ``wₛ = Dₛ / D`` and slice ratios ``rₛ = Nₛ / Dₛ``; then
    ``ΔR = Σ (Δwₛ · r̄ₛ + w̄ₛ · Δrₛ)`` with midpoint means ``r̄``, ``w̄`` — the mix effect and the rate
    effect, the interaction split half and half. A slice absent in one state has weight 0 there, and its
    ratio is taken from the other state, so the identity still holds.
    """
    leaves, dims = numerator
    out = []
    for dim in dims:
        n = leaves.group_by([dim]).aggregate([("baseline", "sum"), ("current", "sum")])
        d = denominator.group_by([dim]).aggregate([("baseline", "sum"), ("current", "sum")])
        d = d.rename_columns([dim, "d0", "d1"])
        joined = n.join(d, dim, join_type="full outer").to_pylist()
        d0 = sum(r["d0"] or 0.0 for r in joined)
        d1 = sum(r["d1"] or 0.0 for r in joined)
        if not d0 or not d1:
            continue
        segments = []
        for row in joined:
            n0, n1 = row["baseline_sum"] or 0.0, row["current_sum"] or 0.0
            s0, s1 = row["d0"] or 0.0, row["d1"] or 0.0
            r0 = n0 / s0 if s0 else None
            r1 = n1 / s1 if s1 else None
            r0, r1 = (r0 if r0 is not None else r1), (r1 if r1 is not None else r0)
            if r0 is None:
                continue
            w0, w1 = s0 / d0, s1 / d1
            mix = (w1 - w0) * (r0 + r1) / 2
            rate = (w0 + w1) / 2 * (r1 - r0)
            segments.append(Segment({dim: row[dim]}, r0 if s0 else None, r1 if s1 else None,
                                    (r1 - r0) if s0 and s1 else None, mix + rate, mix=mix, rate=rate))
        segments.sort(key=lambda seg: -abs(seg.contribution))
        out.extend(segments[:per_dimension])
    return out


def _is_additive(metric: Metric, registry: Registry) -> bool:
    """Sums and counts of rows add up across segments; distinct counts, means, min and max do not."""
    formula = metric.formula
    return isinstance(formula, s.Call) and formula.name in ("sum", "count")


def _leaf_table(table: pa.Table, dims: list[str], name: str, spans, grain: str) -> pa.Table:
    labels = table.column("period")
    distinct = pc.unique(labels)
    index_of = pa.array([periods.parse(p, grain) for p in distinct.to_pylist()], pa.int64())
    period_index = pc.take(index_of, pc.index_in(labels, value_set=distinct))
    parts = []
    for lo, hi in spans:
        inside = pc.and_(pc.greater_equal(period_index, lo), pc.less_equal(period_index, hi))
        chunk = table.filter(inside).group_by(dims).aggregate([(name, "mean")])
        parts.append(chunk)
    keys = pa.concat_tables([p.select(dims) for p in parts]).group_by(dims).aggregate([])
    joined = keys
    for state, part in zip(("baseline", "current"), parts, strict=True):
        joined = joined.join(part.rename_columns([*dims, state]), dims, join_type="left outer")
    joined = joined.select([*dims, "baseline", "current"])
    filled = {c: pc.fill_null(joined.column(c), 0.0) for c in ("baseline", "current")}
    return pa.table({**{d: pc.cast(joined.column(d), pa.string()) for d in dims}, **filled}).sort_by(
        [(d, "ascending") for d in dims])


def _segments(leaves: pa.Table, dims: list[str], per_dimension: int = 3) -> list[Segment]:
    """The top slices of each single dimension by |change|; their contribution is the change, in the
    metric's units (scaled to the root's later)."""
    out = []
    for dim in dims:
        grouped = leaves.group_by([dim]).aggregate([("baseline", "sum"), ("current", "sum")])
        change = pc.subtract(grouped.column("current_sum"), grouped.column("baseline_sum"))
        order = pc.array_sort_indices(pc.abs(change), order="descending")
        for i in order.to_pylist()[:per_dimension]:
            delta = change[i].as_py()
            out.append(Segment({dim: grouped.column(dim)[i].as_py()}, grouped.column("baseline_sum")[i].as_py(),
                               grouped.column("current_sum")[i].as_py(), delta, delta))
    return out


def _attach_segments(driver: Driver, drill: dict[str, _Drill]) -> Driver:
    children = tuple(_attach_segments(d, drill) for d in driver.drivers)
    found = drill.get(driver.metric)
    if found is None or driver.kind != "formula":
        return attrs.evolve(driver, drivers=children)
    # Segment effects are in the driver's own units; this occurrence's scale turns them into root units.
    scale = (driver.contribution / driver.change) if driver.change and driver.contribution is not None else None
    segments = tuple(attrs.evolve(seg, contribution=seg.contribution * scale
                                  if scale is not None and seg.contribution is not None else None)
                     for seg in found.segments)
    return attrs.evolve(driver, drivers=children, segments=segments)


__all__ = ["Association", "Driver", "Explanation", "PeriodValue", "RootCause", "Segment", "explain"]
