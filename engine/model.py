"""The compiled tree: frozen records of sources, metrics, links, params, targets and alerts,
plus the graph that ties them together (its edges as plain tuples; the NetworkX view of it is built
the first time something asks for `Tree.graph`, so loading or checking a tree never imports NetworkX).

This module is the compiled model only: it imports no stage. Every later stage reads a `Tree`;
what `metrictree.load` returns is `metrictree.tree.Tree`, the same record with a door into each
stage (`Tree.evaluate` → `metrictree.evaluating`), as pytest and sqlglot keep a façade over their parts.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import attrs

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

from .errors import Diagnostic, Span
from .syntax import Expr

GRAINS = ("day", "week", "month", "quarter", "year")
LEVELS = ("strategic", "operational", "technical")
DIRECTIONS = ("up", "down")
SEVERITIES = ("info", "warning", "critical")

MetricKind = Literal["base", "derived", "group"]
EdgeKind = Literal["formula", "influence"]


@attrs.frozen
class Source:
    """A logical table bound to data at run time.

    Attributes:
        name: how metrics refer to it (``orders.amount``).
        time: the date or timestamp column that places rows in periods.
        dimensions: columns a result can be sliced by (``by=[...]``).
        entity: the column identifying a customer (or account, user…), for entity functions.
        label, description: for people.
        time_format: how the time column's text is written (``"%d/%m/%Y %H:%M"``), parsed on read.
        timezone: the IANA zone (``"Europe/London"``) the times are local to; periods are counted there.
        span: where it was declared.
    """

    name: str
    time: str | None
    dimensions: tuple[str, ...] = ()
    entity: str | None = None
    label: str | None = None
    description: str | None = None
    time_format: str | None = None
    timezone: str | None = None
    span: Span | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Param:
    """A named constant, overridable at run time (``--param gross_margin=0.65``).

    Attributes:
        name: its name in formulas.
        value: the number (a percentage is stored as a fraction: 70% → 0.7).
        percent: whether it was written as a percentage.
    """

    name: str
    value: float
    percent: bool = False
    label: str | None = None
    description: str | None = None
    span: Span | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Metric:
    """One node of the tree.

    Attributes:
        name: the identifier used in formulas.
        kind: ``base`` (an aggregation over one source), ``derived`` (a formula over other
            metrics) or ``group`` (no formula: a grouping node with influence children only).
        formula: the expression after ``=``.
        source: for a base metric, the source it aggregates.
        where: for a base metric, the row filter.
        inputs: the metrics its formula reads, in order of first use (formula children).
        shifts: the time shifts it reads, as ``(metric, offset)`` pairs.
        params: the params its formula reads.
        label, description, unit, format, direction, owner, level: metadata for people and rules.
        controllable: whether the owning team can act on it (``None``: not said).
        external: driven from outside the business (market, tax policy).
        library: the library it was imported from, if any.
        span: the metric's name in its tree file.
    """

    name: str
    kind: MetricKind
    formula: Expr | None = None
    source: str | None = None
    where: Expr | None = None
    inputs: tuple[str, ...] = ()
    shifts: tuple[tuple[str, int], ...] = ()
    params: tuple[str, ...] = ()
    label: str | None = None
    description: str | None = None
    unit: str | None = None
    format: str | None = None
    direction: str | None = None
    owner: str | None = None
    level: str | None = None
    controllable: bool | None = None
    external: bool = False
    library: str | None = None
    span: Span | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def title(self) -> str:
        return self.label or self.name


@attrs.frozen
class Link:
    """A parent → child edge of the tree.

    Attributes:
        parent, child: metric names (the child drives the parent).
        kind: ``formula`` (the child appears in the parent's formula) or ``influence`` (``<~``).
    """

    parent: str
    child: str
    kind: EdgeKind
    span: Span | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Target:
    """A goal: ``target open_rate >= 30% by 2027-03-31``.

    Attributes:
        metric: the metric the goal is on.
        op: the comparison (``>=``, ``<=`` …).
        value: the target value.
        deadline: the period or date the goal is due.
        start: the start point's period (``None``: the first period evaluated).
        every: checkpoint cadence (``month`` …), if given.
        checkpoints: explicit ``(period, value)`` checkpoints.
        where: a slice filter over dimensions.
    """

    metric: str
    op: str
    value: float
    deadline: str
    start: str | None = None
    every: str | None = None
    checkpoints: tuple[tuple[str, float], ...] = ()
    where: Expr | None = None
    condition: Expr | None = attrs.field(default=None, eq=False, repr=False)
    label: str | None = None
    span: Span | None = attrs.field(default=None, eq=False, repr=False)
    description: str | None = None


@attrs.frozen
class Alert:
    """A condition to watch: ``alert churn_rate > 5%``.

    Attributes:
        condition: a boolean expression over metrics.
        metrics: the metrics it reads.
        where: a slice filter over dimensions.
        severity: ``info``, ``warning`` or ``critical``.
        message: what to tell people when it fires.
    """

    condition: Expr
    metrics: tuple[str, ...] = ()
    where: Expr | None = None
    severity: str = "warning"
    message: str | None = None
    span: Span | None = attrs.field(default=None, eq=False, repr=False)
    label: str | None = None
    description: str | None = None


def _read_only(mapping: Mapping) -> Mapping:
    """A read-only copy: a compiled tree cannot be changed from outside."""
    return MappingProxyType(dict(mapping))


def _frozen_graph(graph: nx.DiGraph | None) -> nx.DiGraph | None:
    if graph is None:
        return None
    import networkx as nx

    return graph if nx.is_frozen(graph) else nx.freeze(graph)


@attrs.frozen
class Tree:
    """A compiled, validated metric tree.

    Attributes:
        name, title: from the ``tree`` header.
        grain: the default time grain.
        sources, params, metrics: by name, in declaration order.
        links: every edge, formula and influence.
        targets, alerts: the KPI rules.
        graph: a ``networkx.DiGraph`` parent → child; every edge has ``kind`` (formula or
            influence); every node has ``metric`` (the `Metric`). Built from ``adjacency`` on first use,
            unless one was given.
        adjacency: every edge ``(parent, child, kind)`` in the order it was added (the compiler's).
        warnings: the problems that did not stop compilation.
        file: the path it was loaded from (``None`` for text).
    """

    name: str
    title: str | None
    grain: str
    # Read-only mappings, and a frozen graph: a Tree is a value. Its hash leaves the mappings out
    # (equal trees still hash equal: the links, rules and names already tell trees apart).
    sources: Mapping[str, Source] = attrs.field(converter=_read_only, hash=False)
    params: Mapping[str, Param] = attrs.field(converter=_read_only, hash=False)
    metrics: Mapping[str, Metric] = attrs.field(converter=_read_only, hash=False)
    links: tuple[Link, ...] = attrs.field(converter=tuple)
    targets: tuple[Target, ...] = attrs.field(converter=tuple)
    alerts: tuple[Alert, ...] = attrs.field(converter=tuple)
    _graph: nx.DiGraph | None = attrs.field(default=None, eq=False, repr=False, converter=_frozen_graph,
                                            alias="graph")
    warnings: tuple[Diagnostic, ...] = attrs.field(default=(), eq=False, repr=False)
    file: str | None = None
    dimensions: tuple[str, ...] = ()
    adjacency: tuple[tuple[str, str, EdgeKind], ...] = attrs.field(default=(), converter=tuple, eq=False,
                                                                  repr=False)
    _views: dict = attrs.field(factory=dict, init=False, eq=False, repr=False, hash=False)

    # ---- the graph

    @property
    def graph(self) -> nx.DiGraph:
        """The frozen ``networkx.DiGraph`` (imports NetworkX the first time)."""
        if self._graph is not None:
            return self._graph
        if "graph" not in self._views:
            import networkx as nx

            graph = nx.DiGraph()
            for name, metric in self.metrics.items():
                graph.add_node(name, metric=metric)
            for parent, child, kind in self.adjacency:
                graph.add_edge(parent, child, kind=kind)
            self._views["graph"] = nx.freeze(graph)
        return self._views["graph"]

    def with_metrics(self, extra: Mapping[str, Metric], edges: Iterable[tuple[str, str]] = ()) -> Tree:
        """This tree with more metrics (hidden ones an evaluation computes besides the tree's) and formula edges
        ``(parent, child)`` from them. Without NetworkX when this tree's graph was never built (its `adjacency`
        grows instead); otherwise a copy of its graph with them added."""
        edges = list(edges)
        metrics = {**self.metrics, **extra}
        if self._graph is None:
            return attrs.evolve(self, metrics=metrics,
                                adjacency=(*self.adjacency, *((a, b, "formula") for a, b in edges)))
        graph = self._graph.copy()
        for name, metric in extra.items():
            graph.add_node(name, metric=metric)
        for parent, child in edges:
            graph.add_edge(parent, child, kind="formula")
        return attrs.evolve(self, metrics=metrics, graph=graph)

    def _out(self) -> Mapping[str, list[tuple[str, EdgeKind]]]:
        """Children by parent, in the order the edges were added (without NetworkX)."""
        if "out" not in self._views:
            out: dict[str, list[tuple[str, EdgeKind]]] = {name: [] for name in self.metrics}
            for parent, child, kind in self.adjacency:
                out.setdefault(parent, []).append((child, kind))
                out.setdefault(child, [])
            self._views["out"] = out
        return self._views["out"]

    def _in(self) -> Mapping[str, list[str]]:
        if "in" not in self._views:
            into: dict[str, list[str]] = {name: [] for name in self._out()}
            for parent, child, _ in self.adjacency:
                into[child].append(parent)
            self._views["in"] = into
        return self._views["in"]

    # ---- graph questions

    def drivers(self, metric: str, kind: EdgeKind | None = None) -> list[str]:
        """The children of a metric (its formula inputs and influence children), in declaration order."""
        if self._graph is not None:
            edges = self._graph.out_edges(metric, data="kind")
            return [child for _, child, k in edges if kind is None or k == kind]
        return [child for child, k in self._out().get(metric, ()) if kind is None or k == kind]

    def edges(self) -> list[tuple[str, str, EdgeKind]]:
        """Every ``(parent, child, kind)`` edge once, in declaration order (what the renderers draw)."""
        seen: set[tuple[str, str]] = set()
        out = []
        ordered = [(link.parent, link.child, link.kind) for link in self.links]
        every = self._graph.edges(data="kind") if self._graph is not None else self.adjacency
        nodes = self._graph if self._graph is not None else self._out()
        for parent, child, kind in [*ordered, *every]:
            if (parent, child) not in seen and parent in nodes and child in nodes:
                seen.add((parent, child))
                out.append((parent, child, kind))
        return out

    def parents(self, metric: str) -> list[str]:
        if self._graph is not None:
            return [parent for parent, _ in self._graph.in_edges(metric)]
        return list(self._in().get(metric, ()))

    def roots(self) -> list[str]:
        """Metrics no other metric depends on, top of the tree first."""
        if self._graph is not None:
            return [m for m in self.metrics if self._graph.in_degree(m) == 0]
        into = self._in()
        return [m for m in self.metrics if not into.get(m)]

    def requirements(self, metrics: Iterable[str]) -> list[str]:
        """The given metrics and every metric their formulas need, in evaluation order."""
        # One walk from all of them at once: a metric's inputs are read once, however many metrics need it.
        inputs: dict[str, list[str]] = {}
        stack = list(metrics)
        while stack:
            name = stack.pop()
            if name not in inputs:
                inputs[name] = self.drivers(name, kind="formula")
                stack.extend(inputs[name])
        position = {name: i for i, name in enumerate(self.metrics)}
        depth = depths(inputs)
        # Stable order: dependencies first, otherwise as declared.
        return sorted(inputs, key=lambda n: (depth[n], position[n]))


def depths(inputs: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """How far each node is above the leaves (0 for a leaf), without recursion: trees may be thousands deep.
    ``inputs``: each node's children (a DAG, closed under children)."""
    depth: dict[str, int] = {}
    for node in graphlib.TopologicalSorter(inputs).static_order():  # children before parents
        depth[node] = 1 + max((depth[c] for c in inputs.get(node, ())), default=-1)
    return depth
