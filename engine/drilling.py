"""Into the data: which segments moved a metric, and one ranked list of root causes through the whole tree.

The tree's split (`explaining`) says how much of the root's change each base metric and each ratio
carries. This module takes those that carry weight into the data, by the ``by`` dimensions:

1. **units**: each ratio ``a / b`` of two additive base metrics of one source that carries weight is a
   *ratio unit* (its causes are the segments whose own rate moved; a segment whose weight moved at an
   unchanged rate is *mix*, not a cause); each base metric with weight left outside those ratios is a
   *sum unit*. A distinct count or a customer-state count (churned, new, retained …) is additive in fact
   when each counted entity falls in one segment (an invoice has one country, a customer one segment):
   that is checked on the data (the segments add up to the total in both periods) and such a count is
   localised like a sum over the dimensions where it holds;
2. **localisation** (`localising`): in each unit, the segments that stand out from their own
   variation, with the periods before the baseline as history for the noise of each segment;
3. **one list**: every segment found in any unit is valued in *every* unit that can see it — the sum
   units' change in the segment times the unit's scale (its contribution to the root per unit of its
   change), the ratio units' rate effect ``w̄ · (r₁ − r₀)`` times theirs — and the parts added up: the net
   effect of the segment on the root. Entries are ranked by it, and one nested in a larger entry goes. How
   many there are follows the localisation's significance test, not a fixed number. When there are none,
   the reason is said in one sentence.

Internal column names start with a control character, so they never clash with a dimension's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from . import aggregating, lookalikes, periods, rollup
from . import syntax as s
from .errors import DataError
from .evaluating import evaluate, looks_back
from .functions import Aggregate, Partial, Registry
from .model import Metric, Tree

# A base metric or ratio is drilled into segments, and a root cause reported, when it carries at least this
# share of the root's change.
WEIGHT_SHARE = 0.05
# How many periods before the baseline are read as each segment's history (a year of months).
HISTORY_PERIODS = 12
# Two totals agree when they differ by no more than float rounding.
_TOLERANCE = 1e-9

_B, _C = "\x1fbaseline", "\x1fcurrent"
_NB, _NC, _DB, _DC = "\x1fnb", "\x1fnc", "\x1fdb", "\x1fdc"


def _h(i: int, part: str = "") -> str:
    return f"\x1fh{part}{i}"


# --------------------------------------------------------------------------- results


@attrs.frozen
class Segment:
    """One slice of a driver: its values, and its part of the root's change.

    Attributes:
        where: dimension → value.
        baseline, current, change: the driver's value in this slice.
        contribution: the slice's part of the root's change (root units).
        mix, rate: for ratio metrics, the parts of the slice's contribution due to its weight moving (mix) and
            its own ratio moving (rate), in the root's units once attached to a driver; ``mix + rate`` is the
            slice's contribution.
        metric, label, unit: for a mix entry of an explanation, the ratio it is about.
    """

    where: Mapping[str, Any]
    baseline: float | None
    current: float | None
    change: float | None
    contribution: float | None
    mix: float | None = None
    rate: float | None = None
    metric: str | None = None
    label: str | None = None
    unit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"where": dict(self.where), "baseline": self.baseline, "current": self.current, "change": self.change,
               "contribution": self.contribution}
        if self.mix is not None or self.rate is not None:
            out.update(mix=self.mix, rate=self.rate)
        if self.metric is not None:
            out.update(metric=self.metric, label=self.label, unit=self.unit)
        return out


@attrs.frozen
class Part:
    """A root cause's effect through one metric.

    Attributes:
        metric: the base metric (``kind`` ``change``) or ratio (``kind`` ``rate``) it acts through.
        label, unit: the metric's, for people.
        kind: ``change`` (the metric's change in the segment) or ``rate`` (the ratio's own value moved in
            the segment; its weight moving is mix, not counted).
        baseline, current: the metric in the segment (for a rate, the segment's ratio).
        contribution: its part of the root's change, in the root's units.
        exact: whether the metric adds up across the segments exactly (a distinct count over segments an
            entity can be in twice does not).
    """

    metric: str
    label: str
    unit: str | None
    kind: str
    baseline: float | None
    current: float | None
    contribution: float
    exact: bool = True

    @property
    def change(self) -> float | None:
        return None if self.baseline is None or self.current is None else self.current - self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "label": self.label, "kind": self.kind, "baseline": self.baseline,
                "current": self.current, "change": self.change, "contribution": self.contribution,
                "exact": self.exact}


@attrs.frozen
class RootCause:
    """A segment and its net effect on the root, through every metric it moved.

    Attributes:
        metric: the metric of its largest part.
        where: dimension → value (one or several dimensions).
        contribution: its net part of the root's change (the sum of its parts), in the root's units.
        share: contribution / root change.
        baseline, current, change: the largest part's metric in that segment.
        parts: the effect through each metric, largest first.
    """

    metric: str
    where: Mapping[str, Any]
    contribution: float
    share: float | None
    baseline: float | None = None
    current: float | None = None
    change: float | None = None
    parts: tuple[Part, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "where": dict(self.where), "contribution": self.contribution,
                "share": self.share, "baseline": self.baseline, "current": self.current, "change": self.change,
                "parts": [p.to_dict() for p in self.parts]}


@attrs.frozen
class Drilled:
    """What the data says: per metric its slices, and the ranked root causes.

    Attributes:
        segments: metric → its top slices per dimension (in the metric's units; scaled when attached).
        root_causes: the ranked list.
        reason: why the list is empty (or shorter than the change would suggest), one sentence.
        mix: ratio segments whose weight moved but not their rate (effect in the root's units).
        notes: anything the reader should know.
    """

    segments: Mapping[str, tuple[Segment, ...]]
    root_causes: tuple[RootCause, ...]
    reason: str | None
    mix: tuple[Segment, ...]
    notes: tuple[str, ...]


# --------------------------------------------------------------------------- units


@attrs.frozen
class _Unit:
    """One metric localised over its leaves.

    Attributes:
        metric, label, unit: the metric.
        ratio: a ratio unit (leaves hold numerator and denominator) or a sum unit.
        dims: the dimensions its leaves are split by.
        leaves: ``dims`` and the values: `_B`, `_C` (sum) or `_NB`, `_NC`, `_DB`, `_DC` (ratio), then
            the history columns, oldest first.
        history: how many history periods the leaves hold.
        scale: root units per unit of the metric's change.
        exact: the metric adds up across the segments.
    """

    metric: str
    label: str
    unit: str | None
    ratio: bool
    dims: tuple[str, ...]
    leaves: pa.Table
    history: int
    scale: float
    exact: bool = True


def ratio_parts(metric: Metric, tree: Tree, registry: Registry) -> tuple[tuple[str, int], tuple[str, int]] | None:
    """``((numerator, offset), (denominator, offset))`` when a metric is ``a / b`` of two base metrics of one
    source, either possibly time-shifted (``churned / customers[-1]``), that add up across segments: sums and
    counts, or distinct and customer-state counts, which do when each entity falls in one segment (checked on
    the data by `drill`)."""
    f = metric.formula
    if not (metric.kind == "derived" and isinstance(f, s.Binary) and f.op == "/"):
        return None
    refs = []
    for side in (f.left, f.right):
        if isinstance(side, s.Name):
            refs.append((side.name, 0))
        elif isinstance(side, s.Shift):
            refs.append((side.name, side.offset))
        else:
            return None
    parts = [tree.metrics.get(name) for name, _ in refs]
    if any(m is None or m.kind != "base" for m in parts) or parts[0].source != parts[1].source:
        return None
    if not all(is_additive(m) or _counts_entities(m, registry) for m in parts):
        return None
    return refs[0], refs[1]


def is_additive(metric: Metric) -> bool:
    """Sums and counts of rows add up across segments; distinct counts, means, min and max need not."""
    formula = metric.formula
    return isinstance(formula, s.Call) and formula.name in ("sum", "count")


def counts_entities(tree: Tree, name: str, registry: Registry) -> bool:
    """Whether the base metric ``name`` is a count of entities a pass by every dimension may hold (`prefetch`)."""
    metric = tree.metrics[name]
    return metric.kind == "base" and not is_additive(metric) and _counts_entities(metric, registry)


def _counts_entities(metric: Metric, registry: Registry) -> bool:
    """A distinct count or a customer-state count: additive when each entity falls in one segment."""
    formula = metric.formula
    if not isinstance(formula, s.Call):
        return False
    if formula.name == "count_distinct":
        return True
    aggregate = registry.aggregates.get(formula.name)
    return bool(aggregate is not None and aggregate.entity)


def drill(tree: Tree, data, builder, by: list[str], spans: list[tuple[int, int]], grain: str,
          params, registry: Registry, top: int | None, every_dimension: bool,
          passes: Mapping[str, rollup.Fine] | None = None) -> Drilled:
    """The segments and root causes of the change ``builder`` split; see the module docstring. ``passes``:
    per source, a pass by every dimension already made (`prefetch`), used where it holds what is needed."""
    notes: list[str] = []
    total = abs(builder.root_change) or 1.0
    # A ratio carries weight by its own contribution or by what passes through its parts (frequency =
    # orders / customers can carry little net while orders and customers carry much in opposite directions).
    candidates = {name: parts for name, contribution in builder.derived_contributions.items()
                  if max([abs(contribution), *(abs(p) for p in builder.ratio_children.get(name, {}).values())])
                  >= WEIGHT_SHARE * total and (parts := ratio_parts(tree.metrics[name], tree, registry))}
    # Shown under their driver: every base metric that carries weight anywhere.
    shown = [name for name, c in builder.base_contributions.items() if abs(c) >= WEIGHT_SHARE * total]
    needed = list(dict.fromkeys([*((name, 0) for name in shown), *(p for parts in candidates.values() for p in parts)]))

    baseline_start = spans[0][0]
    lo = min(baseline_start - HISTORY_PERIODS, min(a for a, _ in spans))
    hi = max(b for _, b in spans)
    history_periods = [p for p in range(lo, min(a for a, _ in spans)) if not any(a <= p <= b for a, b in spans)]

    by_source: dict[str, list[tuple[str, int]]] = {}
    for ref in needed:
        by_source.setdefault(tree.metrics[ref[0]].source, []).append(ref)
    leaves_of: dict[tuple[str, int], tuple[pa.Table, list[str], bool]] = {}
    partial: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
    # Counts of rows read by every dimension over the compared periods only (`_riders`): their leaves by the
    # coarser dimensions of their ratio (with the history), and how to read their whole leaves when needed.
    coarse: dict[tuple[str, int], tuple[tuple[str, ...], pa.Table]] = {}
    fuller: dict[tuple[str, int], Any] = {}
    for source_name, names in by_source.items():
        source = tree.sources[source_name]
        dims = [d for d in by if d in source.dimensions]
        missing = [d for d in by if d not in source.dimensions]
        if missing and not every_dimension:
            notes.append(f"source '{source_name}' has no dimension {', '.join(missing)}: "
                         f"{', '.join(dict.fromkeys(n for n, _ in names))} drilled by {', '.join(dims) or 'nothing'}")
        if not dims:
            continue
        leaves_of.update(_source_leaves(tree, data, builder, names, dims, spans, history_periods, lo, hi, grain,
                                        params, registry, notes, partial, (passes or {}).get(source_name),
                                        candidates, coarse, fuller))
    for ref in list(fuller):
        # A rider's segments by every dimension (when shown) are those of its compared periods alone only when no
        # slice of the history alone (0 in both states) could be among them: else its whole leaves, as before.
        if ref[0] in shown and not _segments_settled(leaves_of[ref][0], leaves_of[ref][1]):
            leaves_of[ref] = fuller.pop(ref)()
            coarse.pop(ref, None)
    for (exact_dims, others), titles in partial.items():
        verb = "adds" if len(titles) == 1 else "add"
        notes.append(f"{_and(titles)} {verb} up across {_and(exact_dims)} (each one counted falls in one of them) "
                     f"but not across {_and(others)}: drilled by {_and(exact_dims)} only")

    # A ratio is localised as such when both its parts add up across the segments.
    ratios: dict[str, tuple[pa.Table, pa.Table, list[str]]] = {}
    for name, (numerator, denominator) in candidates.items():
        if numerator not in leaves_of or denominator not in leaves_of:
            continue
        (n, n_dims, n_exact), (d, d_dims, d_exact) = leaves_of[numerator], leaves_of[denominator]
        dims = [x for x in n_dims if x in d_dims]
        if n_exact and d_exact and dims:
            n_coarse = coarse.get(numerator)
            ratios[name] = (n_coarse[1] if n_coarse is not None and list(n_coarse[0]) == dims else
                            _regroup(n, n_dims, dims), _regroup(d, d_dims, dims), dims)
    # What each base metric carries outside the ratios localised as such.
    outside = dict(builder.base_contributions)
    for name in ratios:
        for child, part in builder.ratio_children.get(name, {}).items():
            if child in outside:
                outside[child] -= part
    sums = [name for name, c in outside.items() if abs(c) >= WEIGHT_SHARE * total]
    for name in sums:
        if (name, 0) in fuller:  # localised by every dimension after all: its whole leaves, history included
            leaves_of[name, 0] = fuller.pop((name, 0))()

    segments: dict[str, tuple[Segment, ...]] = {}
    for name in shown:
        if (name, 0) in leaves_of:
            leaves, dims, _ = leaves_of[name, 0]
            segments[name] = tuple(_segments(leaves, dims))
    units: list[_Unit] = []
    for name in sums:
        if (name, 0) not in leaves_of:
            continue
        leaves, dims, exact = leaves_of[name, 0]
        delta = _sum(leaves, _C) - _sum(leaves, _B)
        if delta:
            metric = tree.metrics[name]
            units.append(_Unit(name, metric.title, metric.unit, False, tuple(dims), leaves, _history_of(leaves),
                               outside[name] / delta, exact))
    for name, (n, d, dims) in ratios.items():
        segments[name] = tuple(_mix_rate(n, d, dims))
        history = min(_history_of(n), _history_of(d))
        paired = _paired(n, d, dims, history)
        b, c = builder.pair(name)
        if paired is not None and b is not None and c is not None and c != b:
            metric = tree.metrics[name]
            units.append(_Unit(name, metric.title, metric.unit, True, tuple(dims), paired, history,
                               builder.derived_contributions[name] / (c - b)))
    causes, reason, mix = _rank(units, builder.root_change, top)
    if not mix:
        # Which weights moved, from the exact split of each ratio by dimension: a segment whose weight's effect
        # outweighs its own rate's and carries weight, and is not a root cause.
        named = [c.where for c in causes]
        for unit in (u for u in units if u.ratio):
            for seg in segments.get(unit.metric, ()):
                if abs(seg.mix) > abs(seg.rate) and abs(seg.mix * unit.scale) >= WEIGHT_SHARE * total \
                        and not any(_nested(seg.where, w) for w in named):
                    mix.append(attrs.evolve(seg, contribution=seg.contribution * unit.scale, mix=seg.mix * unit.scale,
                                            rate=seg.rate * unit.scale, metric=unit.metric, label=unit.label,
                                            unit=unit.unit))
        mix.sort(key=lambda seg: -abs(seg.mix))
    # One category written several ways ('web', 'Web ') is several segments: said, not merged.
    values: dict[str, set] = {}
    for leaves, dims, _ in leaves_of.values():
        for dim in dims:
            values.setdefault(dim, set()).update(pc.unique(leaves.column(dim)).to_pylist())
    notes.extend(lookalikes.notes(values))
    return Drilled(segments, tuple(causes), reason, tuple(mix), tuple(notes))


# --------------------------------------------------------------------------- leaves from the data


def first_read(spans: list[tuple[int, int]], earliest: int) -> int:
    """The first period the drill-down reads: its history before the baseline, moved by the earliest offset."""
    return min(spans[0][0] - HISTORY_PERIODS, min(a for a, _ in spans)) + earliest


def prefetch(tree: Tree, data, registry: Registry, by: list[str], spans: list[tuple[int, int]], names: Sequence[str],
             earliest: int, grain: str, params, compared: bool = False,
             riders: Sequence[Any] = ()) -> dict[str, rollup.Fine]:
    """Per source, the pass by every dimension the drill-down makes when a customer-state count that looks
    back (churned) is among ``names`` (every base metric the explanation reads): made before the explanation's
    history, so that the history takes those counts from it (`rollup.Fine.totals`) instead of reading the
    rows once more. ``earliest``: the earliest time shift of the tree (0 or less).

    With ``compared`` (a history of the compared periods only, no time shift), the same for distinct counts
    that look nowhere back (frequency's customers): the drill-down's check of where they add up is a pass over
    the compared periods by every dimension (`_source_leaves`, step 1), which is made first, and the history
    then counts no distinct values of its own.

    ``riders``: the history's own requests (`backends.Rider`), aggregated from the same scans where they read the
    same rows, so that the history reads nothing."""
    out: dict[str, rollup.Fine] = {}
    by_source: dict[str, list[str]] = {}
    for name in names:
        if tree.metrics[name].kind == "base":
            by_source.setdefault(tree.metrics[name].source, []).append(name)
    hi = max(b for _, b in spans)
    for source_name, base in by_source.items():
        dims = [d for d in by if d in tree.sources[source_name].dimensions]
        counting = [n for n in base if not is_additive(tree.metrics[n]) and _counts_entities(tree.metrics[n], registry)]
        if not dims or not counting:
            continue
        if looks_back(tree, counting, registry):
            fine = rollup.fine_pass(tree, data, registry, dims, base, counting, grain, params,
                                    periods.label(first_read(spans, earliest), grain), periods.label(hi, grain),
                                    riders=riders)
        elif compared and not earliest:
            # Exactly the pass of the drill-down's checks (the same metrics, periods and slices).
            fine = rollup.fine_pass(tree, data, registry, dims, base, counting, grain, params,
                                    periods.label(min(a for a, _ in spans), grain), periods.label(hi, grain),
                                    riders=riders)
        else:
            continue
        if fine is not None:
            out[source_name] = fine
    return out


def _source_leaves(tree, data, builder, wanted: list[tuple[str, int]], dims, spans, history_periods, lo, hi, grain,
                   params, registry, notes, partial, made: rollup.Fine | None = None,
                   candidates: Mapping[str, tuple[tuple[str, int], tuple[str, int]]] | None = None,
                   coarse: dict | None = None, fuller: dict | None = None,
                   ) -> dict[tuple[str, int], tuple[pa.Table, list[str], bool]]:
    """Each wanted ``(metric, offset)``'s leaves by ``dims`` (or by the dimensions where it adds up), and whether
    they are exact; an offset reads the periods that many earlier (``customers[-1]``).

    What is read is only what is needed: which dimensions each distinct or customer-state count adds up across
    is settled on the compared periods alone (their rows only are read); then one grouped pass over the rows of
    the history and compared periods per set of dimensions the metrics are split by (usually one), with the
    shared twin of a distinct count only when it adds up across no dimension at all."""
    names = list(dict.fromkeys(name for name, _ in wanted))
    earliest = min(0, *(offset for _, offset in wanted))
    start = lo + earliest
    compared = min(a for a, _ in spans) + earliest

    def sliced(on_tree, on_registry, by_dims: list[str], columns: list[str], first: int, last: int = hi):
        return evaluate(on_tree, data, grain=grain, by=by_dims, metrics=columns, params=params,
                        start=periods.label(first, grain), end=periods.label(last, grain), registry=on_registry)

    # 1. Where each count of entities adds up, from the compared periods.
    split_by: dict[tuple[str, int], list[str]] = {}
    counting = [n for n in names if not is_additive(tree.metrics[n]) and _counts_entities(tree.metrics[n], registry)]
    prefetched: dict[tuple[str, ...], Any] = {}
    # One pass by every dimension, its counts rolled up to fewer dimensions (`rollup`), where it can be: a
    # count that looks back (churned) reads every row whatever the periods, so that one pass serves the
    # checks and every set of dimensions; distinct counts alone read only the compared periods for the
    # checks (one pass for all of them), then the history by the dimensions where each adds up.
    fine = checks = None
    if counting and looks_back(tree, counting, registry) and made is not None and made.dims == tuple(dims) and \
            made.start == periods.label(start, grain) and set(names) <= set(made.columns) and \
            made.rolls(counting):
        # The pass made before the explanation's history (`prefetch`): the same rows, periods and slices.
        fine = checks = made
    elif counting and looks_back(tree, counting, registry):
        fine = checks = rollup.fine_pass(tree, data, registry, dims, names, counting, grain, params,
                                         periods.label(start, grain), periods.label(hi, grain))
    elif counting and made is not None and made.dims == tuple(dims) and \
            made.start == periods.label(compared, grain) and set(counting) <= set(made.columns) and \
            made.rolls(counting):
        # The checks' pass made before the explanation's history (`prefetch` with ``compared``).
        checks = made
    elif counting:
        checks = rollup.fine_pass(tree, data, registry, dims, names, counting, grain, params,
                                  periods.label(compared, grain), periods.label(hi, grain))
    if counting:
        # The checks read the compared periods only (each offset's).
        checked = [(a + offset, b + offset) for offset in dict.fromkeys(o for n, o in wanted if n in counting)
                   for a, b in spans]
        if checks is not None:
            whole = checks.checked(checked)
        elif looks_back(tree, counting, registry):
            # What looks back (churned customers) reads its rows from the start whatever the periods: the
            # check reads the grouped pass over the history, which step 2 then does not repeat.
            prefetched[tuple(dims)] = sliced(tree, registry, dims, names, start)
            whole = prefetched[tuple(dims)].table
        else:
            whole = sliced(tree, registry, dims, counting, compared).table
        per_dimension: dict[str, pa.Table] = {}
        for name, offset in wanted:
            if name not in counting:
                continue
            at = [(a + offset, b + offset) for a, b in spans]
            totals = builder.pair(name if not offset else builder.world.prepared.shifts[name, offset])
            if _adds_up(_leaf_table(whole, dims, name, at, [], grain), totals):
                split_by[name, offset] = dims
                continue
            exact_dims = []
            for dim in dims:
                if dim not in per_dimension:
                    per_dimension[dim] = checks.rolled([dim], counting, checked) \
                        if checks is not None and checks.rolls(counting) else \
                        sliced(tree, registry, [dim], counting, compared).table
                if _adds_up(_leaf_table(per_dimension[dim], [dim], name, at, [], grain), totals):
                    exact_dims.append(dim)
            if exact_dims:
                split_by[name, offset] = exact_dims
    # What adds up nowhere: a distinct count has a twin shared among its segments, read with the rest.
    approximate = [n for n in names if n not in counting or not all((n, o) in split_by for o in
                                                                     (o for m, o in wanted if m == n))]
    twins = [n for n in approximate if not is_additive(tree.metrics[n])]
    sliceable, shared_registry, twin_of = _fractional(tree, twins, registry)

    # 2. One grouped pass over the history and compared periods per set of dimensions (none, when the pass
    # of step 1 holds them all).
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, offset in wanted:
        on = split_by.get((name, offset), dims)
        groups.setdefault(tuple(on), [])
        for column in (name, twin_of.get(name)):
            if column and (column == name or tuple(on) == tuple(dims)) and column not in groups[tuple(on)]:
                groups[tuple(on)].append(column)
    tables: dict[tuple[str, ...], pa.Table] = {}
    first_covered = None
    backward = looks_back(tree, names, registry)
    # A count of rows that is read by every dimension only as the numerator of a ratio whose denominator adds up
    # across fewer (frequency = orders / customers: customers by region × segment) rides in the denominator's pass
    # over the history: one read of those rows, not two. By every dimension it then has the compared periods
    # only (the checks' pass holds them), which its segments need; its history there is read only if it turns
    # out to be needed (`fuller`: a unit of its own, or segments a slice of the history alone could change).
    riders = _riders(tree, candidates or {}, wanted, split_by, groups, dims, spans) \
        if fine is None and checks is not None and coarse is not None and fuller is not None else {}
    if not set(riders) <= set(checks.columns if checks is not None else ()):
        riders = {}  # the checks' pass holds no compared periods of theirs by every dimension
    rider_table = None
    if riders:
        on = next(iter(riders.values()))
        riding = list(riders)
        glued = _older_and_checked(checks, on, groups[on], tree, dims, start, compared, hi,
                                   lambda first, last: sliced(sliceable, shared_registry, list(on),
                                                              [*groups[on], *riding], first, last), riding)
        if glued is not None:
            tables[on], covered_labels, rider_table = glued
            tables[tuple(dims)] = checks.table
            first_covered = periods.parse(covered_labels[0], grain)
        else:
            riders = {}
    for on, columns in groups.items():
        if on in tables:
            continue
        if fine is not None and on == tuple(dims) and set(columns) <= set(fine.columns):
            tables[on], covered_labels = fine.reading(columns), fine.covered
        elif fine is not None and on != tuple(dims) and fine.rolls(columns) and \
                looks_back(tree, columns, registry) == backward:
            # The same rows as a pass of its own would read: the same slices, the same counts.
            tables[on], covered_labels = fine.rolled(on, columns), fine.covered
        elif (glued := _older_and_checked(checks if fine is None else None, on, columns, tree, dims, start, compared,
                                          hi, lambda first, last: sliced(sliceable, shared_registry, list(on), columns,
                                                                         first, last))) is not None:
            tables[on], covered_labels = glued
        else:
            held = prefetched.get(on)
            evaluation = held if held is not None and set(columns) <= set(held.table.column_names) else sliced(
                sliceable, shared_registry, list(on), columns, start)
            tables[on], covered_labels = evaluation.table, evaluation.covered
        if covered_labels is not None:
            covered = periods.parse(covered_labels[0], grain)
            first_covered = covered if first_covered is None else min(first_covered, covered)
    # History only where the data has a past: after its first period (what looks back, churned customers,
    # has none there) for every offset read.
    if first_covered is None:
        history_periods = []
    else:
        history_periods = [p for p in history_periods if p + earliest > first_covered]

    out: dict[tuple[str, int], tuple[pa.Table, list[str], bool]] = {}
    for name, offset in wanted:
        metric = tree.metrics[name]
        at = [(a + offset, b + offset) for a, b in spans]
        before = [p + offset for p in history_periods]
        on = split_by.get((name, offset))
        if not offset and name in riders:
            coarser = riders[name]
            coarse[name, 0] = (coarser, _leaf_table(rider_table, list(coarser), name, at, before, grain).sort_by(
                [(d, "ascending") for d in coarser]))
            out[name, 0] = (_leaf_table(tables[tuple(dims)], dims, name, at, [], grain), dims, True)

            def whole(name=name, at=at, before=before):
                # The pass by every dimension over the history and compared periods, as without riders.
                glued = _older_and_checked(checks, tuple(dims), [name], tree, dims, start, compared, hi,
                                           lambda first, last: sliced(sliceable, shared_registry, dims, [name], first,
                                                                      last))
                table = glued[0] if glued is not None else sliced(sliceable, shared_registry, dims, [name],
                                                                  start).table
                return _leaf_table(table, dims, name, at, before, grain), dims, True

            fuller[name, 0] = whole
            continue
        if is_additive(metric) or on is not None:
            on = on or dims
            out[name, offset] = (_leaf_table(tables[tuple(on)], list(on), name, at, before, grain), list(on), True)
            if len(on) < len(dims):
                others = tuple(d for d in dims if d not in on)
                titles = partial.setdefault((tuple(on), others), [])
                if metric.title not in titles:
                    titles.append(metric.title)
            continue
        table = tables[tuple(dims)]
        if name in twin_of:
            note = (f"{metric.title} counts distinct values, which here fall in several segments at once: each "
                    "is shared equally among the segments it appears in within a period, so the segments add up to "
                    "the total")
            out[name, offset] = (_leaf_table(table, dims, twin_of[name], at, before, grain), dims, False)
        else:
            note = (f"{metric.title} = {metric.formula.to_source()} is computed segment by segment and does not add "
                    "up across them exactly (one counted in two segments counts in both): its segments' shares of "
                    "the change are approximate")
            out[name, offset] = (_leaf_table(table, dims, name, at, before, grain), dims, False)
        if note not in notes:
            notes.append(note)
    return out


# Aggregates whose value over no rows is 0: a slice that has rows in one range of periods only is 0 in the other.
_ZERO_WHEN_EMPTY = frozenset({"count", "sum", "count_distinct"})


def _older_and_checked(checks: rollup.Fine | None, on: tuple[str, ...], columns: list[str], tree: Tree,
                       dims: list[str], start: int, compared: int, hi: int, older,
                       riders: Sequence[str] = ()) -> tuple | None:
    """The pass over the history and compared periods by ``on``, when the checks' pass (``checks``, over the
    compared periods ``compared`` … ``hi``, by every dimension) holds the compared periods already: only the
    periods before them are read (``older(first, last)`` evaluates them), the rest is the checks' (their table
    by every dimension, or their counts rolled up). The same table as one pass over ``start`` … ``hi``; ``None``
    when the checks cannot give it (see `_glued`) and the caller evaluates the whole range.

    ``riders``: counts of rows (`count`) that ``older`` evaluates too, by ``on``; their compared periods are the
    checks' table by every dimension summed up to ``on`` (whole numbers: exactly the counts). Then the table of
    ``riders`` by ``on`` over the whole range comes third."""
    if checks is None or start >= compared or checks.start != periods.label(compared, checks.grain) or \
            checks.covered is None:
        return None
    # Only the tree's own sums and counts (not a distinct count's twin shared among its segments, which reads
    # every row of a period at once).
    if any(c not in tree.metrics or not (isinstance(tree.metrics[c].formula, s.Call) and
                                         tree.metrics[c].formula.name in _ZERO_WHEN_EMPTY) for c in columns):
        return None
    if on == tuple(dims):
        if not set(columns) <= set(checks.columns):
            return None
        recent = checks.table
    elif checks.rolls(columns) and all(checks.held[c].local for c in columns):
        recent = checks.rolled(on, columns, [(compared, hi)])
    else:
        return None
    try:
        before = older(start, compared - 1)
    except DataError:
        return None  # no rows before the compared periods: the whole range is read as usual
    if before.covered is None:
        return None
    covered = (before.covered[0], checks.covered[1])
    if not riders:
        return _glued(before.table, recent, list(on), columns), covered
    if not on:
        return None
    grouped = checks.table.group_by(["period", *on], use_threads=False).aggregate([(r, "sum") for r in riders])
    summed = pa.table({"period": grouped.column("period"), **{d: grouped.column(d) for d in on},
                       **{r: grouped.column(f"{r}_sum") for r in riders}})
    return _glued(before.table, recent, list(on), columns), covered, _glued(before.table, summed, list(on),
                                                                            list(riders))


def _riders(tree: Tree, candidates: Mapping[str, tuple[tuple[str, int], tuple[str, int]]],
            wanted: list[tuple[str, int]], split_by: Mapping[tuple[str, int], list[str]],
            groups: Mapping[tuple[str, ...], list[str]], dims: list[str],
            spans: list[tuple[int, int]]) -> dict[str, tuple[str, ...]]:
    """The counts of rows (``count``) that ride in the history pass of their ratio's denominator (see
    `_source_leaves`), each with the coarser dimensions of that pass: the numerator of a ratio whose
    denominator adds up across fewer dimensions than the drill-down's, when the pass by every dimension would
    hold them alone. Only for compared states of one period each (a range counts as the mean of its periods,
    which summed up in another order may round differently) and no time shift."""
    if any(a != b for a, b in spans):
        return {}
    found: dict[str, tuple[str, ...]] = {}
    for numerator, denominator in candidates.values():
        name, offset = numerator
        if offset or denominator[1] or numerator not in wanted or denominator not in wanted:
            continue
        formula = tree.metrics[name].formula
        on = tuple(split_by.get(denominator, dims))
        if not (isinstance(formula, s.Call) and formula.name == "count") or len(on) >= len(dims) or not on:
            continue
        if found.setdefault(name, on) != on:
            return {}  # the numerator of two ratios split by different dimensions
    if not found or len(set(found.values())) > 1 or any(o for n, o in wanted if n in found) or \
            set(groups.get(tuple(dims), [])) != set(found) or next(iter(found.values())) not in groups:
        return {}
    return found


# How many slices of each dimension a metric's segments show (`_segments`, `_mix_rate`; `_segments_settled`).
PER_DIMENSION = 3


def _segments_settled(leaves: pa.Table, dims: list[str], per_dimension: int = PER_DIMENSION) -> bool:
    """Whether `_segments` of ``leaves`` is the same with more slices of no change in either state (a slice of the
    history alone): in every dimension the first ``per_dimension`` values by size of change moved, by sizes that
    differ from each other and from the next one's (no tie whose order the other slices could change)."""
    for dim in dims:
        grouped = leaves.group_by([dim], use_threads=False).aggregate([(_B, "sum"), (_C, "sum")])
        sizes = sorted((abs(c - b) for b, c in zip(grouped.column(f"{_B}_sum").to_pylist(),
                                                   grouped.column(f"{_C}_sum").to_pylist(), strict=True)),
                       reverse=True)[:per_dimension + 1]
        if len(sizes) < per_dimension or not sizes[per_dimension - 1] or \
                any(a <= b for a, b in zip(sizes, sizes[1:])):
            return False
    return True


def _glued(older: pa.Table, recent: pa.Table, on: list[str], columns: list[str]) -> pa.Table:
    """Two evaluations by ``on`` over consecutive ranges of periods as one over both, laid out as `evaluate`
    lays it: every period × every slice either has, 0 where a slice has no rows in a range."""
    parts = [older.select(["period", *on, *columns]), recent.select(["period", *on, *columns])]
    texts = pa.schema([(d, pa.string()) for d in on])
    slices = pa.concat_tables([p.select(on).cast(texts) for p in parts]).group_by(on).aggregate([]).sort_by(
        [(d, "ascending") for d in on])
    width = slices.num_rows
    slice_keys = rollup._keys(slices, on)
    out = []
    for part in parts:
        labels = pc.unique(part.column("period").combine_chunks())
        label_of = pa.array([label for label in labels.to_pylist() for _ in range(width)], pa.string())
        grid_keys = pc.binary_join_element_wise(label_of, pa.concat_arrays([slice_keys] * len(labels)) if len(labels)
                                                else pa.array([], pa.string()), "\x1e")
        part_keys = pc.binary_join_element_wise(pc.cast(part.column("period"), pa.string()),
                                                rollup._keys(part, on), "\x1e")
        at = pc.index_in(grid_keys, value_set=part_keys)
        table = {"period": label_of}
        for d in on:
            table[d] = pa.concat_arrays([slices.column(d).combine_chunks()] * len(labels)) if len(labels) else \
                pa.array([], pa.string())
        for c in columns:
            values = pc.take(part.column(c).combine_chunks(), at)
            # Only the cells the part has no row for (its own nulls stay: rows with an undefined input).
            table[c] = pc.if_else(pc.is_null(at), pa.scalar(0, values.type), values)
        out.append(pa.table(table))
    kinds = out[0].schema
    return pa.concat_tables([out[0], out[1].cast(kinds)])


def _regroup(leaves: pa.Table, dims: list[str], to: list[str]) -> pa.Table:
    """Leaves by fewer dimensions: their values summed (a history period with no data stays null)."""
    if list(dims) == list(to):
        return leaves
    values = [c for c in leaves.column_names if c not in dims]
    grouped = leaves.group_by(to).aggregate([(c, "sum", pc.ScalarAggregateOptions(min_count=1)) for c in values])
    return grouped.rename_columns([*to, *values]).select([*to, *values]).sort_by([(d, "ascending") for d in to])


def _and(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _adds_up(leaves: pa.Table, totals: tuple[float | None, float | None]) -> bool:
    for column, total in zip((_B, _C), totals, strict=True):
        if total is None:
            return False
        if abs(_sum(leaves, column) - total) > _TOLERANCE * max(1.0, abs(total)):
            return False
    return True


_NULL_KEY = "\x00"  # a null dimension value while keys are joined (a join never matches nulls)


def _leaf_table(table: pa.Table, dims: list[str], name: str, spans, history_periods: list[int],
                grain: str) -> pa.Table:
    """One row per leaf with data in either compared state: dims (as text), `_B`, `_C` (a range of periods
    counts as the mean of its periods) and one history column per earlier period (null: no data).

    The evaluation has one row per period and leaf: each row's place in a dense leaves × periods grid is found
    with one join and one hash lookup, and every column is a slice of that grid."""
    labels = table.column("period")
    distinct = pc.unique(labels)
    index_of = pa.array([periods.parse(p, grain) for p in distinct.to_pylist()], pa.int64())
    period_index = pc.take(index_of, pc.index_in(labels, value_set=distinct))
    ranges = [*spans, *((p, p) for p in history_periods)]
    lo, hi = min(a for a, _ in ranges), max(b for _, b in ranges)
    width = hi - lo + 1
    keys = [f"\x1fk{i}" for i in range(len(dims))]
    work = pa.table({**{k: pc.fill_null(pc.cast(table.column(d), pa.string()), _NULL_KEY)
                        for k, d in zip(keys, dims, strict=True)},
                     "\x1fv": pc.cast(table.column(name), pa.float64()), "\x1fp": period_index})
    work = work.filter(pc.and_(pc.greater_equal(work.column("\x1fp"), lo), pc.less_equal(work.column("\x1fp"), hi)))
    compared = None
    for a, b in spans:
        inside = pc.and_(pc.greater_equal(work.column("\x1fp"), a), pc.less_equal(work.column("\x1fp"), b))
        compared = inside if compared is None else pc.or_(compared, inside)
    leaves = work.filter(compared).group_by(keys).aggregate([]).sort_by([(k, "ascending") for k in keys])
    n = leaves.num_rows
    leaves = leaves.append_column("\x1fi", pa.array(range(n), pa.int64()))
    rows = work.join(leaves, keys, join_type="inner")
    code = pc.add(pc.multiply(rows.column("\x1fi"), width), pc.subtract(rows.column("\x1fp"), lo))
    grid = pc.take(rows.column("\x1fv"), pc.index_in(pa.array(range(n * width), pa.int64()), value_set=code))
    starts = pa.array(range(0, n * width, width), pa.int64())

    def period(p: int) -> pa.Array:
        return pc.take(grid, pc.add(starts, p - lo))

    out = {d: pc.if_else(pc.equal(leaves.column(k), _NULL_KEY), pa.scalar(None, pa.string()), leaves.column(k))
           for d, k in zip(dims, keys, strict=True)}
    for column, (a, b) in zip((_B, _C), spans, strict=True):
        total, count = pa.array([0.0] * n), pa.array([0] * n, pa.int64())
        for p in range(a, b + 1):
            values = period(p)
            total = pc.add(total, pc.fill_null(values, 0.0))
            count = pc.add(count, pc.cast(pc.is_valid(values), pa.int64()))
        out[column] = pc.fill_null(pc.divide(total, pc.if_else(pc.equal(count, 0), 1, count)), 0.0)
    for i, p in enumerate(history_periods):
        out[_h(i)] = period(p)
    return pa.table(out)


def _history_of(leaves: pa.Table) -> int:
    return sum(1 for c in leaves.column_names if c.startswith("\x1fh") and c[2:].isdigit())


def _paired(numerator: pa.Table, denominator: pa.Table, dims: list[str], history: int) -> pa.Table | None:
    """The numerator's and denominator's leaves side by side (a leaf absent from one is 0 there)."""
    columns = [_B, _C, *(_h(i) for i in range(history))]
    n = numerator.select([*dims, *columns]).rename_columns([*dims, *(f"\x1fn{c}" for c in columns)])
    d = denominator.select([*dims, *columns]).rename_columns([*dims, *(f"\x1fd{c}" for c in columns)])
    joined = n.join(d, dims, join_type="full outer")
    if joined.num_rows == 0:
        return None
    out = {dim: joined.column(dim) for dim in dims}
    for state, (num, den) in (("b", (f"\x1fn{_B}", f"\x1fd{_B}")), ("c", (f"\x1fn{_C}", f"\x1fd{_C}"))):
        out[_NB if state == "b" else _NC] = pc.fill_null(joined.column(num), 0.0)
        out[_DB if state == "b" else _DC] = pc.fill_null(joined.column(den), 0.0)
    for i in range(history):
        out[_h(i, "n")] = joined.column(f"\x1fn{_h(i)}")
        out[_h(i, "d")] = joined.column(f"\x1fd{_h(i)}")
    paired = pa.table(out)
    # A leaf with no denominator in either state has no ratio (paid orders of guests, who are no customers).
    paired = paired.filter(pc.or_(pc.greater(paired.column(_DB), 0), pc.greater(paired.column(_DC), 0)))
    return paired if paired.num_rows else None


def _sum(table: pa.Table, column: str) -> float:
    return pc.sum(table.column(column)).as_py() or 0.0


# --------------------------------------------------------------------------- distinct counts shared


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
    twins: dict[str, Metric] = {}
    twin_of: dict[str, str] = {}
    for name in names:
        metric = tree.metrics[name]
        if isinstance(metric.formula, s.Call) and metric.formula.name == "count_distinct":
            twin = f"__shared_{name}"
            twins[twin] = attrs.evolve(metric, name=twin, formula=attrs.evolve(metric.formula,
                                                                                name="__distinct_share"))
            twin_of[name] = twin
    if not twins:
        return tree, registry, twin_of
    shared = attrs.evolve(registry, aggregates={**registry.aggregates, _SHARE.name: _SHARE})
    return tree.with_metrics(twins), shared, twin_of


# --------------------------------------------------------------------------- slices shown under a driver


def _segments(leaves: pa.Table, dims: list[str], per_dimension: int = PER_DIMENSION) -> list[Segment]:
    """The top slices of each single dimension by |change|; their contribution is the change, in the
    metric's units (scaled to the root's when attached to a driver)."""
    out = []
    for dim in dims:
        grouped = leaves.group_by([dim]).aggregate([(_B, "sum"), (_C, "sum")])
        b, c = grouped.column(f"{_B}_sum"), grouped.column(f"{_C}_sum")
        change = pc.subtract(c, b)
        order = pc.array_sort_indices(pc.abs(change), order="descending")
        for i in order.to_pylist()[:per_dimension]:
            delta = change[i].as_py()
            out.append(Segment({dim: grouped.column(dim)[i].as_py()}, b[i].as_py(), c[i].as_py(), delta, delta))
    return out


def _mix_rate(numerator: pa.Table, denominator: pa.Table, dims: list[str],
              per_dimension: int = PER_DIMENSION) -> list[Segment]:
    """Per slice of each dimension, a ratio's change split into mix and rate, exactly.

    ``R = Σ wₛ rₛ`` with weights ``wₛ = Dₛ / D`` and slice ratios ``rₛ = Nₛ / Dₛ``; then
    ``ΔR = Σ (Δwₛ · (r̄ₛ − R̄) + w̄ₛ · Δrₛ)`` with midpoint means ``r̄``, ``w̄``, ``R̄`` — the mix effect (a
    slice weighing more helps when its ratio is above the whole's) and the rate effect, the interaction split
    half and half (``Σ Δwₛ = 0``, so ``R̄`` changes no total). A slice absent in one state has weight 0 there, and its
    ratio is taken from the other state, so the identity still holds.
    """
    out = []
    for dim in dims:
        n = numerator.group_by([dim]).aggregate([(_B, "sum"), (_C, "sum")]).rename_columns([dim, "\x1fn0", "\x1fn1"])
        d = denominator.group_by([dim]).aggregate([(_B, "sum"), (_C, "sum")]).rename_columns([dim, "\x1fd0",
                                                                                              "\x1fd1"])
        joined = n.join(d, dim, join_type="full outer").to_pylist()
        d0 = sum(r["\x1fd0"] or 0.0 for r in joined)
        d1 = sum(r["\x1fd1"] or 0.0 for r in joined)
        if not d0 or not d1:
            continue
        mean = _mean_ratio(sum(r["\x1fn0"] or 0.0 for r in joined), sum(r["\x1fn1"] or 0.0 for r in joined), d0, d1)
        found = []
        for row in joined:
            effect = _split(row["\x1fn0"] or 0.0, row["\x1fn1"] or 0.0, row["\x1fd0"] or 0.0, row["\x1fd1"] or 0.0,
                            d0, d1, mean)
            if effect is None:
                continue
            r0, r1, mix, rate, s0, s1 = effect
            found.append(Segment({dim: row[dim]}, r0 if s0 else None, r1 if s1 else None,
                                 (r1 - r0) if s0 and s1 else None, mix + rate, mix=mix, rate=rate))
        found.sort(key=lambda seg: -abs(seg.contribution))
        out.extend(found[:per_dimension])
    return out


def _split(n0: float, n1: float, s0: float, s1: float, d0: float, d1: float, mean_ratio: float = 0.0):
    """A slice's ratios, mix and rate effects (see `_mix_rate`), or ``None`` when it has no ratio."""
    r0 = n0 / s0 if s0 else None
    r1 = n1 / s1 if s1 else None
    r0, r1 = (r0 if r0 is not None else r1), (r1 if r1 is not None else r0)
    if r0 is None:
        return None
    w0, w1 = s0 / d0, s1 / d1
    return r0, r1, (w1 - w0) * ((r0 + r1) / 2 - mean_ratio), (w0 + w1) / 2 * (r1 - r0), s0, s1


def _mean_ratio(n0: float, n1: float, d0: float, d1: float) -> float:
    """The whole's ratio, the mean of its two states: a slice's mix is its weight's move times its ratio's
    distance from it (the weights' moves add up to 0, so the mixes still add up to the whole's mix effect)."""
    return ((n0 / d0 if d0 else 0.0) + (n1 / d1 if d1 else 0.0)) / 2


# --------------------------------------------------------------------------- localising a unit


@attrs.frozen
class _Found:
    wheres: tuple[dict, ...]
    spread: bool
    reason: str | None
    mix: tuple[dict, ...] = ()


def _localise(unit: _Unit) -> _Found:
    """The segments that stand out in one unit (`localising.localise` / `localising_ratio.localise_ratio`),
    each leaf's own history widening its noise."""
    from .localising import localise
    from .localising_ratio import localise_ratio

    dims = list(unit.dims)
    leaves = unit.leaves
    if unit.ratio:
        history = [(leaves.column(_h(i, "n")), leaves.column(_h(i, "d"))) for i in range(unit.history)]
        found = localise_ratio(leaves, dims, numerator=(_NB, _NC), denominator=(_DB, _DC), history=history or None)
    else:
        history = [leaves.column(_h(i)) for i in range(unit.history)]
        found = localise(leaves, dims, baseline=_B, current=_C, history=history or None)
    return _Found(tuple(dict(e.where) for e in found.elements), found.spread, found.reason,
                  tuple(dict(m.where) for m in found.mix))


# --------------------------------------------------------------------------- one ranked list


def _mask(leaves: pa.Table, where: Mapping[str, Any]) -> pa.Array:
    inside = None
    for dim, value in where.items():
        column = leaves.column(dim)
        test = pc.is_null(column) if value is None else pc.fill_null(pc.equal(column, str(value)), False)
        inside = test if inside is None else pc.and_(inside, test)
    return inside


def _part(unit: _Unit, where: Mapping[str, Any]) -> Part | None:
    """The segment's effect on the root through one unit (``None`` when the unit cannot see it)."""
    if not set(where) <= set(unit.dims):
        return None
    inside = unit.leaves.filter(_mask(unit.leaves, where))
    if inside.num_rows == 0:
        return None
    if not unit.ratio:
        b, c = _sum(inside, _B), _sum(inside, _C)
        return Part(unit.metric, unit.label, unit.unit, "change", b, c, unit.scale * (c - b), unit.exact)
    effect = _split(_sum(inside, _NB), _sum(inside, _NC), _sum(inside, _DB), _sum(inside, _DC),
                    _sum(unit.leaves, _DB), _sum(unit.leaves, _DC))
    if effect is None:
        return None
    r0, r1, _, rate, _, _ = effect
    return Part(unit.metric, unit.label, unit.unit, "rate", r0, r1, unit.scale * rate, unit.exact)


def _mix_part(unit: _Unit, where: Mapping[str, Any]) -> Segment | None:
    inside = unit.leaves.filter(_mask(unit.leaves, where))
    totals = [_sum(unit.leaves, c) for c in (_NB, _NC, _DB, _DC)]
    effect = _split(_sum(inside, _NB), _sum(inside, _NC), _sum(inside, _DB), _sum(inside, _DC), totals[2], totals[3],
                    _mean_ratio(*totals))
    if effect is None:
        return None
    r0, r1, mix, rate, _, _ = effect
    return Segment(dict(where), r0, r1, r1 - r0, unit.scale * (mix + rate), mix=unit.scale * mix,
                   rate=unit.scale * rate, metric=unit.metric, label=unit.label, unit=unit.unit)


def _nested(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    small, large = (one, other) if len(one) <= len(other) else (other, one)
    return all(k in large and large[k] == v for k, v in small.items())


def _rank(units: list[_Unit], root_change: float, top: int | None) -> tuple[list[RootCause], str | None,
                                                                              list[Segment]]:
    found = [(unit, _localise(unit)) for unit in units]
    candidates: list[dict] = []
    for _, f in found:
        for where in f.wheres:
            if where not in candidates:
                candidates.append(where)
    causes = []
    for where in candidates:
        parts = [p for unit in units if (p := _part(unit, where)) is not None and p.contribution]
        if not parts:
            continue
        parts.sort(key=lambda p: -abs(p.contribution))
        net = sum(p.contribution for p in parts)
        lead = parts[0]
        causes.append(RootCause(lead.metric, where, net, net / root_change if root_change else None, lead.baseline,
                                lead.current, lead.change, tuple(parts)))
    causes.sort(key=lambda c: -abs(c.contribution))
    kept: list[RootCause] = []
    for cause in causes:
        if not any(_nested(cause.where, k.where) for k in kept):
            kept.append(cause)
    if top is not None:
        kept = kept[:top]
    mix = []
    for unit, f in found:
        if unit.ratio:
            # Said to be mix only where the weight's effect outweighs the segment's own rate's.
            mix.extend(seg for where in f.mix if (seg := _mix_part(unit, where)) is not None
                       and abs(seg.mix) > abs(seg.rate) and abs(seg.mix) >= WEIGHT_SHARE * abs(root_change))
    reason = None
    if not kept:
        reason = _reason(units, found, root_change)
    return kept, reason, mix


def _reason(units: list[_Unit], found, root_change: float) -> str:
    """Why no segment is named, in one sentence."""
    direction = "rise" if root_change > 0 else "fall" if root_change < 0 else "change"
    if not units:
        return (f"no metric carrying at least {WEIGHT_SHARE:.0%} of the {direction} can be split by the "
                "dimensions asked for")
    dims = list(dict.fromkeys(d for unit in units for d in unit.dims))
    # With no period before the baseline, a segment's usual variation is unknown: the segments were only
    # compared with one another, and that is worth knowing before reading "spread" as "no cause".
    unmeasured = "" if any(unit.history for unit in units) else (
        " (the data has no period before the baseline, so the segments' usual variation could not be measured: "
        "explain a later period, or give the data more history)")
    if any(f.spread for _, f in found):
        return (f"the {direction} is spread across {_plural(dims)}: no segment moved differently from the rest"
                + unmeasured)
    return (f"the {direction} is spread across {_plural(dims)}: no segment stands out from its usual variation"
            + unmeasured)


def _plural(dims: Sequence[str]) -> str:
    return "every " + _and(dims)


__all__ = ["Drilled", "Part", "RootCause", "Segment", "WEIGHT_SHARE", "drill", "first_read", "is_additive", "prefetch",
           "ratio_parts"]
