"""Why did a metric move? Exact attribution down the formulas, then into the segments of the data.

``tree.explain(data, metric="ltv", baseline="2026-09", current="2026-10", by=[...])``:

1. evaluate the tree (and every time shift its formulas read) over the history up to
   the later period, without slicing (its customer counts rolled up from the drill-down's
   pass by every dimension when that pass is made anyway: `_one_read`);
2. take every input's value in the two periods (a range of periods counts as the
   mean of its periods' base values) and recompute the formulas in those two states;
3. split the root's change top-down with `decomposing` — additive, LMDI or Shapley
   per operator — so the contributions of every node's drivers add up to the node's
   contribution, in the root's units;
4. influence children (``<~``) are shown with their own change and their association
   with the parent over the history, never added into the sum;
5. take the base metrics and ratios that carry weight into the data (`drilling`): evaluate them by
   the ``by`` dimensions in the two periods and the ones before, localise each (`localising`,
   `localising_ratio`: ratios as rate vs mix), and value every segment found through the whole
   tree: one ranked list of root causes, each with its parts and its net effect on the root.

The maths is written out in docs/explain.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pyarrow as pa

from . import periods, reading, stack
from . import syntax as s
from .decomposing import Decomposer
from .backends import Rider
from .drilling import Part, RootCause, Segment, counts_entities, drill, first_read, prefetch, ratio_parts
from .errors import DataError, UsageError, did_you_mean, error
from .evaluating import Evaluation, looks_back, normalise_by, resolve_params
from .functions import Registry
from .model import Tree, depths
from .pluginmanager import registry as default_registry
from .states import States, history, history_requests, prepare, states


# --------------------------------------------------------------------------- the result


@attrs.frozen
class PeriodValue:
    """A period (or range of periods) and the metric's value in it."""

    period: str
    value: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period, "value": self.value}


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
        reason: why no root cause is named (the change is spread evenly …), one sentence; ``None`` when
            causes are named.
        mix: for ratios, segments whose weight moved at an unchanged rate: a mix shift, not a cause.
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
    reason: str | None = None
    mix: tuple[Segment, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (nulls as ``None``, never NaN)."""
        return {"tree": self.tree, "metric": self.metric, "label": self.label, "unit": self.unit,
                "baseline": self.baseline.to_dict(), "current": self.current.to_dict(), "change": self.change,
                "relative_change": self.relative_change, "method": self.method,
                "drivers": [d.to_dict() for d in self.drivers],
                "segments": [x.to_dict() for x in self.segments],
                "root_causes": [r.to_dict() for r in self.root_causes], "reason": self.reason,
                "mix": [x.to_dict() for x in self.mix], "residual": self.residual,
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

    def to_markdown(self, verbose: bool = False) -> str:
        from .narrating import markdown

        return markdown(self, verbose)

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
            first, last = periods.parse_at(start, grain), periods.parse_at(end, grain, end=True)
            if first > last:
                raise UsageError(error(f"the range {text} ends before it starts", hint="write it as START..END",
                                       code="period"))
            return first, last
    return periods.parse_at(text, grain), periods.parse_at(text, grain, end=True)


def _describe(span: tuple[int, int], grain: str) -> str:
    first, last = span
    return periods.label(first, grain) if first == last else \
        f"{periods.label(first, grain)}..{periods.label(last, grain)}"


# --------------------------------------------------------------------------- explain


def explain(tree: Tree, data: Mapping[str, Any], metric: str, baseline: str | None = None,
            current: str | None = None, by: Sequence[str] | str | None = None, grain: str | None = None,
            params: Mapping[str, Any] | None = None, top: int | None = None, registry: Registry | None = None,
            evaluation: Evaluation | None = None, riders: Sequence[Rider] = ()) -> Explanation:
    """Explain the change of ``metric`` between two periods; see the module docstring.

    ``evaluation``: the history already evaluated, unsliced at ``grain``, from the start of the data up to
    the later period, with every metric of `shared_history` (`reporting.report` shares the one it draws the
    sparklines from); step 1 then reads nothing.

    ``riders`` (`backends.Rider`): another evaluation's requests, aggregated from the drill-down's pass by every
    dimension where it reads the same rows (`_one_read`: when that pass is made first, and only then): the
    evaluation then reads nothing (`reporting.report`'s history, when ``metric`` counts customers over
    every row). Those that did not ride keep ``result`` ``None``.

    Its scans hand on tables of about `ROWS_PER_TABLE` rows, fewer than evaluate's: it is judged on its memory. Runs
    of Parquet row groups stop short of that size (`reading.pieces_of`'s ``at_most``) unless a metric below
    ``metric`` looks back (churned customers): the passes then hold their (customer, period) pairs to the end
    whatever the tables' size, and more tables only mean more merges."""
    at_most = metric in tree.metrics and not looks_back(
        tree, _below(tree, metric), registry or default_registry())
    passes: dict = {}  # the drill-down's passes by every dimension made first (`_one_read`), by source
    try:
        with reading.pieces_of(min(ROWS_PER_TABLE, reading.ROWS_PER_TABLE), at_most=at_most):
            return _explain(tree, data, metric, baseline, current, by, grain, params, top, registry, evaluation,
                            passes, riders)
    finally:
        # The roll-ups begun beside the caller (`rollup.Fine.warm`) that nothing asked for are not computed
        # after the explanation is over, whether it returned or failed.
        for fine in passes.values():
            fine.settle()


# explain reads a source in tables of at most this many rows (evaluate: about `reading.ROWS_PER_TABLE`, 2M, whole row
# groups): on the 10M-row benchmark the drill-down's history of distinct customers peaks ~180 MB lower than with 4M-row
# tables, and ~100 MB lower again with its row groups of 1M rows one a table instead of two (`reading.pieces_of`).
ROWS_PER_TABLE = 1 << 20


def _explain(tree: Tree, data: Mapping[str, Any], metric: str, baseline: str | None, current: str | None,
             by: Sequence[str] | str | None, grain: str | None, params: Mapping[str, Any] | None, top: int | None,
             registry: Registry | None, evaluation: Evaluation | None, passes: dict,
             riders: Sequence[Rider] = ()) -> Explanation:
    registry = registry or default_registry()
    grain = periods.check_grain(grain or tree.grain)
    if metric not in tree.metrics:
        raise UsageError(error(f"unknown metric '{metric}'", hint=did_you_mean(metric, tree.metrics) or
                               f"the tree's metrics: {', '.join(tree.metrics)}", code="unknown-metric"))
    if tree.metrics[metric].kind == "group":
        raise UsageError(error(f"'{metric}' is a grouping node with no formula: it has no value to explain",
                               hint="explain one of its drivers: " + ", ".join(tree.drivers(metric)),
                               code="group-metric"))
    _check_depth(tree, metric)
    every_dimension = by is None
    by = normalise_by(tree, list(tree.dimensions) if by is None else by)
    values_of_params = resolve_params(tree, params)

    # Everything below the root, formula and influence, and what their formulas need.
    prepared = prepare(tree, _below(tree, metric), registry)

    baseline_span, current_span = _compared_spans(baseline, current, grain)
    end = max(x[1] for x in (current_span, baseline_span) if x) if (current_span or baseline_span) else None
    # Influence children are judged over the whole history; without them, the two periods are enough.
    start = _history_start(tree, prepared, baseline_span, current_span)
    needed = [*prepared.wanted, *prepared.hidden]
    shown = evaluation.table.column("period") if evaluation is not None else None
    if evaluation is not None and not evaluation.by and evaluation.grain == grain and end is not None and \
            set(needed) <= set(evaluation.table.column_names) and len(shown) and \
            periods.parse(shown[len(shown) - 1].as_py(), grain) >= end:
        observed_history = evaluation
    else:
        try:
            made, given, ridden = _one_read(tree, data, prepared, by, baseline_span, current_span, start, end,
                                            grain, values_of_params, registry, riders)
            passes.update(made)
            observed_history = history(prepared, data, grain, values_of_params, end, registry, start, given,
                                       ridden)
        except DataError as failure:
            if failure.diagnostics[0].code != "empty" or current_span is None:
                raise
            # No rows from the first period read on: a compared period past the data, said as such.
            whole = history(prepared, data, grain, values_of_params, None, registry, None).covered
            outside = _outside({"baseline": baseline_span, "current": current_span}, whole, grain) if whole else None
            if outside is None:
                raise
            raise _no_data(*outside, whole, grain) from None
    table = observed_history.table
    if table.num_rows == 0:
        raise DataError(error("there is no data to explain", hint="check the data and the periods", code="empty"))
    labels = table.column("period").to_pylist()
    first = periods.parse(labels[0], grain)
    covered = observed_history.covered or (labels[0], labels[-1])
    data_last = periods.parse(covered[1], grain)
    if current_span is None:
        current_span = (data_last, data_last)
    if baseline_span is None:
        baseline_span = _before(current_span)
    outside = _outside({"baseline": baseline_span, "current": current_span}, covered, grain)
    if outside is not None:
        # Only part of the data was read: say what the whole of it covers.
        whole = history(prepared, data, grain, values_of_params, None, registry, None).covered or covered
        raise _no_data(*outside, whole, grain)

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

    notes: tuple[str, ...] = ()
    root_causes: tuple[RootCause, ...] = ()
    root_segments: tuple[Segment, ...] = ()
    reason, mix = None, ()
    if by and change:
        drilled = drill(tree, data, builder, by, spans, grain, values_of_params, registry, top,
                        every_dimension, passes)
        drivers = tuple(_attach_segments(d, drilled.segments) for d in drivers)
        root_segments = drilled.segments.get(metric, ())
        root_causes, reason, mix, notes = drilled.root_causes, drilled.reason, drilled.mix, drilled.notes
    elif by:
        reason = f"{tree.metrics[metric].title} did not change: there is nothing to localise"
    m = tree.metrics[metric]
    return Explanation(tree.name, metric, m.title, m.unit, m.direction, PeriodValue(b_label, root_b),
                       PeriodValue(c_label, root_c), change, change / abs(root_b) if root_b else None,
                       tuple(drivers), root_causes, residual, tuple(by), notes, method, root_segments, reason, mix)


def _outside(spans: Mapping[str, tuple[int, int]], covered: tuple[str, str],
             grain: str) -> tuple[str, tuple[int, int]] | None:
    """The first compared period (name: baseline, current; span) outside the periods ``covered`` (labels);
    ``None`` when both lie within."""
    first, last = (periods.parse(p, grain) for p in covered)
    return next(((name, span_) for name, span_ in spans.items() if span_[1] < first or span_[0] > last), None)


def _no_data(name: str, span_: tuple[int, int], whole: tuple[str, str], grain: str) -> DataError:
    """The error for a compared period with no data, saying what the ``whole`` data covers."""
    return DataError(error(f"the {name} period {_describe(span_, grain)} has no data",
                           hint=f"the data covers {whole[0]} to {whole[1]} (at grain {grain})", code="period"))


def _check_depth(tree: Tree, metric: str) -> None:
    """Explain follows the drivers one level per call: refuse chains deeper than `stack.MAX_DEPTH`."""
    depth = depths({name: tree.drivers(name) for name in _below(tree, metric)})[metric] + 1
    if depth > stack.MAX_DEPTH:
        raise UsageError(error(
            f"'{metric}' sits on top of a chain of {depth} metrics; explain follows at most {stack.MAX_DEPTH}",
            tree.metrics[metric].span, "explain a metric further down the chain, or group the chain's steps into "
            "fewer metrics (one formula can sum many terms)", "too-deep"))


def _one_read(tree: Tree, data, prepared, by: list[str], baseline_span, current_span, start: int | None,
              end: int | None, grain: str, params, registry: Registry,
              others: Sequence[Rider] = ()) -> tuple[dict, dict, list]:
    """The drill-down's pass by every dimension, made first when it counts customers over every row (churned
    looks back), and the customer counts of the history rolled up from it; the history's sums and plain
    counts ride in that pass's scans (`backends.Rider`: the history's own aggregation, of the same tables),
    so the history reads nothing, and every number is the same (`rollup`).

    Only when both periods are given and the history needs no more than the drill-down reads (no influence
    children, which read the whole history; no window calls; no shift further back than the drill-down's
    own history). ``others``: more riders in the same scans (`explain`'s ``riders``). Returns the passes by
    source, the counts for `states.history`'s ``given`` and its ``ridden``."""
    if not _reads_once(prepared, by, baseline_span, current_span, start):
        return {}, {}, []
    earliest = min([0, *(offset for _, offset in prepared.shifts)])
    spans = [baseline_span, current_span]
    # A history of the compared periods alone (no shift) can take distinct counts from the checks' pass too.
    compared = not prepared.shifts and start == min(baseline_span[0], current_span[0])
    # The history's requests, as it will make them when the pass holds every count of entities it reads; if it
    # holds fewer, the history's own requests differ and it reads the rows itself.
    counting = [n for n in prepared.wanted if counts_entities(tree, n, registry)]
    riders = [Rider(request) for request in history_requests(prepared, grain, params, end, registry, start, counting)]
    passes = prefetch(tree, data, registry, by, spans, list(prepared.wanted), earliest, grain, params, compared,
                      [*riders, *others])
    given: dict = {}
    for source, fine in passes.items():
        base = [n for n in prepared.wanted if tree.metrics[n].kind == "base" and tree.metrics[n].source == source]
        counted = [n for n in base if n in fine.held]
        # The drill-down's first checks of these counts (the compared periods, and those its time shifts of them
        # read), begun beside the totals and the formulas' split.
        offsets = dict.fromkeys([0, *(offset for name, offset in prepared.shifts if name in counted)])
        fine.warm([(a + offset, b + offset) for offset in offsets for a, b in spans], counted)
        if counted and len(counted) < len(base):  # the history still reads the source for its other metrics
            given.update(fine.totals(counted))
    return passes, given, riders


def _compared_spans(baseline: str | None, current: str | None, grain: str) -> tuple:
    """The baseline's and the current period's (first, last) indices as given; with the current period alone,
    the baseline is the span of the same length just before it (`_before`), known before any data is read.
    ``None`` for what is known only from the data (no current period: the data's last)."""
    current_span = _span(current, grain) if current else None
    baseline_span = _span(baseline, grain) if baseline else None
    if baseline_span is None and current_span is not None:
        baseline_span = _before(current_span)
    return baseline_span, current_span


def _before(span: tuple[int, int]) -> tuple[int, int]:
    """The span of the same length just before ``span``: the default baseline."""
    size = span[1] - span[0] + 1
    return span[0] - size, span[0] - 1


def _history_start(tree: Tree, prepared, baseline_span, current_span) -> int | None:
    """The first period the explanation's history reads: the earlier compared period, or ``None`` (the start of
    the data) when a period is not given or influence children are judged (over the whole history)."""
    influenced = any(tree.drivers(name, kind="influence") for name in prepared.wanted if name in tree.metrics)
    return None if influenced or not (current_span and baseline_span) else min(current_span[0], baseline_span[0])


def _reads_once(prepared, by: list[str], baseline_span, current_span, start: int | None) -> bool:
    """Whether `_one_read` applies (see its docstring)."""
    if not by or baseline_span is None or current_span is None or start is None or prepared.calls:
        return False
    offsets = [offset for _, offset in prepared.shifts]
    # A shift of a metric that itself shifts (ltv[-1] of customers[-1]) reads further back: at most the sum
    # of the distinct shifts back, which the counts must cover before the history's first period.
    back = sum(-offset for offset in offsets if offset < 0)
    return back <= start - first_read([baseline_span, current_span], min([0, *offsets]))


def reads_every_row_once(tree: Tree, metric: str, baseline: str | None, current: str | None,
                         by: Sequence[str] | str | None = None, grain: str | None = None,
                         registry: Registry | None = None) -> bool:
    """Whether `explain` with these arguments makes the drill-down's pass by every dimension first, over every
    row up to the current period (a count below ``metric`` looks back: churned customers), with its history
    riding in that pass (`_one_read`): an evaluation of the whole history up to the current period can then
    ride in it too (`explain`'s ``riders``; `reporting.report`)."""
    registry = registry or default_registry()
    if metric not in tree.metrics or tree.metrics[metric].kind == "group" or not current:
        return False
    grain = periods.check_grain(grain or tree.grain)
    below = _below(tree, metric)
    if not looks_back(tree, below, registry):
        return False
    prepared = prepare(tree, below, registry)
    baseline_span, current_span = _compared_spans(baseline, current, grain)
    by = normalise_by(tree, list(tree.dimensions) if by is None else by)
    return _reads_once(prepared, by, baseline_span, current_span,
                       _history_start(tree, prepared, baseline_span, current_span))


def _below(tree: Tree, metric: str) -> list[str]:
    """``metric`` and every metric under it (formula and influence children, all the way down), in declaration
    order — without NetworkX, which the command would otherwise import for this alone."""
    seen, stack_ = {metric}, [metric]
    while stack_:
        for child in tree.drivers(stack_.pop()):
            if child not in seen:
                seen.add(child)
                stack_.append(child)
    return [metric, *(name for name in tree.metrics if name in seen and name != metric)]


def shared_history(tree: Tree, metric: str, registry: Registry | None = None) -> tuple[Tree, list[str]]:
    """``tree`` with the hidden metrics (time shifts, window calls) the explanation of ``metric`` reads: an
    evaluation of it, with those among its metrics, can be handed to `explain` as ``evaluation``."""
    registry = registry or default_registry()
    prepared = prepare(tree, _below(tree, metric), registry)
    return prepared.tree, list(prepared.hidden)


@attrs.define
class _Builder:
    tree: Tree
    world: States
    history: Evaluation
    registry: Registry
    root_change: float
    leaf_contributions: dict[str, float] = attrs.field(factory=dict)
    # ratio → its direct children's parts of its contribution (summed over the ratio's occurrences).
    ratio_children: dict[str, dict[str, float]] = attrs.field(factory=dict)
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
            if ratio_parts(metric, self.tree, self.registry):
                parts = self.ratio_children.setdefault(name, {})
                for ref, part in split.contributions.items():
                    parts[ref] = parts.get(ref, 0.0) + part
            for ref, part in split.contributions.items():
                if ref in inverse_shift:
                    source, offset = inverse_shift[ref]
                    drivers.append(self.leaf_driver(ref, f"{source}[{offset}]", part, "shift",
                                                    _shifted_label(self.tree.metrics[source], offset),
                                                    self.tree.metrics[source].unit))
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

    def leaf_driver(self, ref: str, text: str, contribution: float, kind: str, label: str | None = None,
                    unit: str | None = None) -> Driver:
        b, c = self.pair(ref)
        self.leaf_contributions[text] = self.leaf_contributions.get(text, 0.0) + contribution
        return Driver(text, label or text, kind, b, c, None if b is None or c is None else c - b, contribution,
                      self.share(contribution), "leaf", unit=unit)

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


def _shifted_label(metric, offset: int) -> str:
    """``customers[-1]`` for people: "Paying customers, previous period"."""
    if offset == -1:
        return f"{metric.title}, previous period"
    if offset < 0:
        return f"{metric.title}, {-offset} periods earlier"
    return f"{metric.title}, {offset} periods later"


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


def _attach_segments(driver: Driver, found: Mapping[str, tuple[Segment, ...]]) -> Driver:
    children = tuple(_attach_segments(d, found) for d in driver.drivers)
    segments = found.get(driver.metric)
    if segments is None or driver.kind != "formula":
        return attrs.evolve(driver, drivers=children)
    # Segment effects are in the driver's own units; this occurrence's scale turns them into root units.
    scale = (driver.contribution / driver.change) if driver.change and driver.contribution is not None else None

    def scaled(value: float | None) -> float | None:
        return value * scale if scale is not None and value is not None else None

    return attrs.evolve(driver, drivers=children, segments=tuple(
        attrs.evolve(seg, contribution=scaled(seg.contribution), mix=scaled(seg.mix), rate=scaled(seg.rate))
        for seg in segments))


__all__ = ["Association", "Driver", "Explanation", "Part", "PeriodValue", "RootCause", "Segment", "explain"]
