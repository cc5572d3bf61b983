"""The compiled tree: frozen records of sources, metrics, links, params, targets and alerts,
plus the NetworkX graph that ties them together.

This module is the compiled model only: it imports no stage. Every later stage reads a `Tree`;
what `metrictree.load` returns is `metrictree.tree.Tree`, the same record with a door into each
stage (`Tree.evaluate` → `metrictree.evaluating`), as pytest and sqlglot keep a façade over their parts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Literal

import attrs
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


def _frozen_graph(graph: nx.DiGraph) -> nx.DiGraph:
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
            influence); every node has ``metric`` (the `Metric`).
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
    graph: nx.DiGraph = attrs.field(eq=False, repr=False, converter=_frozen_graph)
    warnings: tuple[Diagnostic, ...] = attrs.field(default=(), eq=False, repr=False)
    file: str | None = None
    dimensions: tuple[str, ...] = ()

    # ---- graph questions

    def drivers(self, metric: str, kind: EdgeKind | None = None) -> list[str]:
        """The children of a metric (its formula inputs and influence children), in declaration order."""
        edges = self.graph.out_edges(metric, data="kind")
        return [child for _, child, k in edges if kind is None or k == kind]

    def edges(self) -> list[tuple[str, str, EdgeKind]]:
        """Every ``(parent, child, kind)`` edge once, in declaration order (what the renderers draw)."""
        seen: set[tuple[str, str]] = set()
        out = []
        ordered = [(link.parent, link.child, link.kind) for link in self.links]
        for parent, child, kind in [*ordered, *self.graph.edges(data="kind")]:
            if (parent, child) not in seen and parent in self.graph and child in self.graph:
                seen.add((parent, child))
                out.append((parent, child, kind))
        return out

    def parents(self, metric: str) -> list[str]:
        return [parent for parent, _ in self.graph.in_edges(metric)]

    def roots(self) -> list[str]:
        """Metrics no other metric depends on, top of the tree first."""
        return [m for m in self.metrics if self.graph.in_degree(m) == 0]

    def requirements(self, metrics: Iterable[str]) -> list[str]:
        """The given metrics and every metric their formulas need, in evaluation order."""
        formula = nx.subgraph_view(self.graph, filter_edge=lambda a, b: self.graph.edges[a, b]["kind"] == "formula")
        # One walk from all of them at once: a metric's inputs are read once, however many metrics need it.
        needed: set[str] = set()
        stack = list(metrics)
        while stack:
            name = stack.pop()
            if name not in needed:
                needed.add(name)
                stack.extend(formula.successors(name))
        position = {name: i for i, name in enumerate(self.metrics)}
        depth = _depths(formula.subgraph(needed))
        # Stable order: dependencies first, otherwise as declared.
        return sorted(needed, key=lambda n: (depth[n], position[n]))


def _depths(graph: nx.DiGraph) -> dict[str, int]:
    """How far each node is above the leaves (0 for a leaf), without recursion: trees may be thousands deep."""
    depth: dict[str, int] = {}
    for node in nx.dfs_postorder_nodes(graph):  # children before parents in a DAG
        depth[node] = 1 + max((depth.get(c, -1) for c in graph.successors(node)), default=-1)
    return depth
