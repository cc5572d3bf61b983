"""Root-cause localisation: which combinations of dimension values explain a change of an additive metric.

`localise` takes one row per *leaf* segment (every combination of the dimensions that has data) with the
metric's value in a baseline and a current period, and names the *elements* — ``region = North``,
``region = North & channel = app`` — that together explain the change. It is the segment drill-down of
``metrictree explain``; `metrictree.localising_ratio.localise_ratio` does the same for a ratio KPI.

The contract
------------
::

    localise(leaves, dims, baseline="baseline", current="current", max_elements=None, *, history=None)
        -> Localisation

* ``leaves``: a pyarrow table, one row per leaf: the `dims` columns (any type, compared as strings, null a
  value of its own) and the two value columns (null or non-finite counts as 0). Dimension names are free
  (``b``, ``d0``, ``baseline``…): the search works on column positions and never adds a column to the
  caller's table.
* ``max_elements``: an optional cap. By default the number of elements follows the data: as many as pass
  the tests below (the 5 % level bounds them; pure noise gives none).
* ``history``: earlier periods, oldest first, each an array aligned row by row with `leaves`, the leaf's
  value in that period (null: no data). A leaf's own period-to-period variation there — beyond the general
  movement of all leaves in that step, which is a season or trend, not the leaf's own — is an estimate of
  its noise on as many degrees of freedom as it has steps; as a multiple of the noise model's, it is
  moderated with all the leaves' (`metrictree.moderating`: Smyth's empirical Bayes), so a small, naturally
  volatile segment has to move more than usual to be named and cannot outrank a large one that clearly
  broke, and a calm segment is judged by its calm. The significance test then honours the degrees of freedom
  of each element's noise (Satterthwaite's, over its leaves) with Student's t at the search's tail
  probability. An element's summed history widens it when beyond its leaves' variances at ALPHA (one-sided
  χ²): leaves that swing together (a small channel's monthly promotions) vary more as a whole than their
  variances add up to. Without history nothing of this applies (the public benchmarks have none).
* The result, `Localisation` (frozen): ``elements`` (largest change first, never one with its parent or
  child), ``spread`` (the change is not concentrated: most of it lies outside the elements — all of it when
  there are none — and beyond noise), ``reason`` (plain words when there are no elements, e.g. "nothing
  stands out from the segments' usual variation", "the change is spread across all segments of region,
  channel: none moved differently from the rest"), and ``mix`` (ratios only). It iterates over its elements
  and has their number as length, so callers that used the former list keep working.
* `Element`: ``where, baseline, current, change, share, leaves, score``; for ratios also ``rate_baseline,
  rate_current, rate_effect, mix_effect`` (``None`` for additive metrics).

Memory and time stay bounded whatever the number of dimensions: cuboids are summarised one at a time and
only their elements that could pass the significance test are kept; a cuboid whose groups are single leaves
makes every cuboid above it a copy and those are skipped; and a pass visits at most `MAX_CUBOIDS` cuboids —
every cuboid of up to 10 dimensions, and with more dimensions only the layers of elements fixing few of
them (20 dimensions: elements of one and two dimensions).

The algorithm
-------------
Every leaf gets a *deviation score* ``d = (current - baseline) / max(|baseline|, |current|)``: the change
relative to the larger of the two values, bounded to [-1, 1], finite for new (baseline 0) and vanished
(current 0) segments and meaningful for negative values. Against the larger value, a relative error on
either side stays a relative error: a forecast 25 % short of the observed value gives -0.25 whichever of
the two was off, where the mean of the two would stretch a shortfall to a ratio of 2 and make a leaf's noise
look like a cause. Most leaves only move by noise around a general trend: the trend is the
median deviation, and the noise a robust standard deviation (1.4826 × the median absolute departure) whose
variance may shrink with the leaf's size, as ``size ** power`` with the power between -1 (counts: Poisson)
and 0 (amounts with a steady coefficient of variation), fitted to the leaves that are not outliers (Taylor's
power law; Harvey's regression of log squared departures on log size, through medians of size bins). Counts
(whole, non-negative values) have a known variance law instead: ``var(c - b) = φ (b + c)``, Poisson's times a
dispersion φ fitted on the leaves that are no outliers (quasi-Poisson; among many small counts a robust
scale of relative changes is ruled by their rounding to whole numbers). An element's deviation is the size-weighted mean of its leaves' deviations, ``D = (C - B) / Σ max(|b|, |c|)``.

The search goes layer by layer, from elements that fix one dimension to elements that fix all of them
(RiskLoc, Squeeze): the first layer that holds an acceptable element gives the coarsest explanation, which
is preferred (its children would explain the same leaves with more elements). An element is acceptable
when it passes three tests, each a plain statistical or majority rule rather than a tuned constant:

* **significant**: its departure from the trend exceeds what noise gives an element of its size, at 5 %
  for the whole search (Bonferroni over the layers and over each layer's elements). Being a weighted mean,
  its noise is ``sqrt(Σ s² σ²) / Σ s`` (with equal leaf noise, the leaves' noise over the square root of
  their effective number, Kish), so a broad shift of many noisy leaves counts as much as one big jump; on a
  single leaf the test is a Bonferroni outlier test;
* **supported** (share ``S`` > 1/2): most of its leaves (weighted, see below) sit nearer the element's
  deviation than the trend, so the shift is broad rather than carried by a few leaves (the data-driven
  cut-off between normal and anomalous leaves is the midpoint, as a two-cluster split would place it);
* **ripple-consistent** (``K`` > 1/2): the *ripple effect* of Squeeze — the leaves of a root cause change in
  about the same proportion — measured as ``K = 1 - Σ w |d - D| / Σ w |d - trend|``, the share of the
  leaves' departures from the trend that the element's one common change accounts for. The spread that the
  noise model expects of each leaf around the common change (``√(2/π)`` noise s.d. per leaf) is not held
  against the element, and departures from the trend count only beyond noise. A parent that merely
  contains a root cause fails it: its normal leaves sit far from its diluted change.

One half is the majority: an element is called a cause when more of it behaves like one than not. Leaves
weigh ``w = size / (size + median size)`` with ``size = max(|baseline|, |current|)``: a leaf of typical size
counts one half, big leaves up to one, tiny leaves (whose relative changes are ruled by rounding and counting
noise) next to nothing; the weight saturates, so a few huge leaves cannot outvote many normal ones.

Acceptable elements of the layer are taken by decreasing size of change; their leaves are removed (RiskLoc)
and the search starts again from the first layer, until nothing acceptable is left or `max_elements` are
found. Elements are never nested: a later element that contains or lies inside an earlier one is skipped.
Then, as Squeeze prefers succinct answers, an element goes when it no longer passes the tests on its
leaves outside the other elements (a coarse element found early can owe its shift to a leaf or two of a
finer root cause found later, when most of its leaves are zero); and several children of one parent, all
moving the same way, give way to the parent when they are the majority of it or the rest of it moved the
same way beyond noise (real causes rarely move every part by one proportion, see `_generalise`).

When most values of a dimension moved (three of five channels fell by half), the median leaf is an
anomalous one and the search first names the values that stood still. A root cause must have changed: when
elements come out whose deviation is nearer 0 than the trend and within noise of 0, "no change" is the
normal state, the noise is re-estimated on those still leaves and the search runs again, naming the values
that moved.

The median leaf can itself be dragged by a cause that holds a large part of the leaves, each about as noisy
as the cause is large (a channel's new customers among leaves of 0–20): nothing then departs from the trend.
When the search finds nothing, the one-dimension element that departs most from the rest of the leaves, beyond
the search's bound, makes the rest's change the trend, and the search runs again. The same drag can make an
ordinary segment stand out against the trend as one that "stood still"; when the re-search on the still
leaves does not give an answer free of still elements, the rest's change is tried as the trend the same way,
and its answer kept when none of its elements stood still.

Everything is vectorised with ``pyarrow.compute``: one ``group_by`` per cuboid (combination of dimensions)
and pass, and a join for the few significant elements; Python only loops over cuboids and elements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations, pairwise
from statistics import NormalDist

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from . import moderating
from .errors import UsageError, did_you_mean, error

__all__ = ["Element", "Localisation", "localise"]

# Significance level of the element test, for each layer as a whole (Bonferroni): the conventional 5 %.
ALPHA = 0.05
# 1 / Φ⁻¹(3/4): turns a median absolute deviation into a standard deviation for Gaussian noise.
MAD_TO_SIGMA = 1.4826
# A relative change below this is floating-point rounding, not a change: the noise floor when more than
# half the leaves did not move at all (their median absolute deviation is then 0).
SIGMA_FLOOR = 1e-9
# At most this many rounds of fitting the noise model without its outliers (it settles in two or three).
FIT_ROUNDS = 5
# The search visits at most this many cuboids (combinations of dimensions) per pass: every cuboid of 10
# dimensions; with more dimensions, the layers of elements that fix fewer of them (see `_layers`).
MAX_CUBOIDS = 1024
# An element is a cause when the majority of it (weighted leaves, leaves' departures) behaves like one.
MAJORITY = 0.5
# The median of the χ² distribution with one degree of freedom.
CHI2_MEDIAN = 0.454936423119572


@attrs.frozen
class Element:
    """One combination of dimension values that explains part of a change.

    Attributes:
        where: the dimension values that define it (``{"region": "North", "channel": "app"}``); values are
            strings, a null dimension value is ``None``.
        baseline: the metric summed over the element's leaves in the baseline period.
        current: the same in the current period.
        change: ``current - baseline``.
        share: ``change`` divided by the change of the whole metric (over all leaves); it can exceed 1 or be
            negative when other segments moved the other way, and it is 0 when the whole did not change.
        leaves: how many leaf segments the element holds.
        score: confidence in (1/4, 1], ``S × K``: the element's supported share times its ripple consistency
            (see the module's docstring); both exceed 1/2 for every element found as such (a parent named
            instead of its children carries their scores' mean, weighted by their changes).
        rate_baseline, rate_current: for a ratio, the element's own ratio in the two periods (``baseline``,
            ``current`` and ``change`` are then its numerator's); ``None`` for an additive metric.
        rate_effect, mix_effect: for a ratio, the element's parts of the ratio's change: through its own
            ratio moving, and through its weight in the denominator moving (they add up, over all leaves,
            to the ratio's change); ``share`` is then the rate effect (the mix effect for a `mix` element)
            over the ratio's change.
    """

    where: dict[str, str | None]
    baseline: float
    current: float
    change: float
    share: float
    leaves: int
    score: float
    rate_baseline: float | None = None
    rate_current: float | None = None
    rate_effect: float | None = None
    mix_effect: float | None = None


@attrs.frozen
class Localisation:
    """The answer of `localise` / `localise_ratio`: the elements, and what to say when there are none.

    It iterates over its elements and has their number as its length, so it reads like the list of
    elements it holds.

    Attributes:
        elements: the root-cause elements, largest effect first; never one together with its parent or child.
        spread: the change is not concentrated: most of it lies outside the elements (all of it when there are
            none), shared by the segments in the general trend, and beyond what noise gives.
        reason: a plain-words reason when `elements` is empty (or when the change is spread), e.g. "nothing
            stands out from the segments' usual variation"; ``None`` otherwise.
        mix: for ratios, the segments whose weight in the denominator moved the ratio but whose own ratio did
            not move (a volume shift, not a cause); empty for additive metrics.
    """

    elements: tuple[Element, ...] = ()
    spread: bool = False
    reason: str | None = None
    mix: tuple[Element, ...] = ()

    def __iter__(self):
        return iter(self.elements)

    def __len__(self) -> int:
        return len(self.elements)

    def __getitem__(self, index):
        return self.elements[index]


@attrs.frozen
class _Noise:
    """How much leaves move without a cause.

    Attributes:
        trend: the general trend, the median deviation of the leaves.
        sigma: the noise (robust standard deviation) of the deviation of a leaf of typical size.
        typical: the median size ``max(|baseline|, |current|)`` of the leaves that have data.
        power: how the noise's variance scales with size: ``σ(size)² = sigma² (size / typical) ** power``.
        counts: the values are counts (whole numbers, none negative): no leaf's noise is below Poisson's.
    """

    trend: float
    sigma: float
    typical: float
    power: float
    counts: bool = False
    dispersion: float = 1.0


@attrs.frozen
class _Candidate:
    """An acceptable element: its dimensions (indices into `dims`) and their codes, and how it was judged."""

    cuboid: tuple[int, ...]
    codes: tuple[int, ...]
    change: float
    score: float
    bound: float


def localise(leaves: pa.Table, dims: Sequence[str], baseline: str = "baseline", current: str = "current",
             max_elements: int | None = None, *, history: Sequence[pa.Array] | None = None) -> Localisation:
    """Name the few elements (combinations of dimension values) that explain a change of an additive metric.

    Args:
        leaves: one row per leaf segment: the columns `dims` and the metric's value in both periods.
        dims: the dimensions to search, at least one; values of any type, compared as strings, null being
            a value of its own. Any names: the search works on positions, never on its own column names.
        baseline, current: the names of the two value columns (a null value counts as 0).
        max_elements: an optional cap; by default as many elements as pass the tests (the significance
            level bounds them, so pure noise gives none).
        history: optional earlier periods, oldest first, each an array aligned row by row with `leaves`
            holding the leaf's value in that period (null: no data). Each leaf's own period-to-period
            variation there, beyond the general movement of all leaves, moderated with the other leaves',
            sets its noise: a small, volatile segment must move more than usual to count, a calm one less.

    Returns:
        A `Localisation`: the elements, largest change first, and when there are none a reason; `spread` says
        that the change is shared by all the segments rather than concentrated.

    Raises:
        UsageError: a named column is missing or not numeric, `dims` is empty, `max_elements` negative, or a
            history array does not match the leaves.
    """
    dims = _check(leaves, dims, [baseline, current], max_elements)
    periods = _history(leaves, history)
    steps = None
    if periods:
        series = [*periods, _float(leaves[baseline])]
        steps = list(pairwise(series))
    found = _run(leaves, dims, _numbers(leaves[baseline]), _numbers(leaves[current]), max_elements, steps)
    if isinstance(found, Localisation):
        return found
    work, chosen, values, _ = found
    total = _sum(work["c"]) - _sum(work["b"])
    elements = sorted((_element(work, cand, dims, values, total) for cand in chosen), key=lambda e: -abs(e.change))
    return _conclude(work, chosen, tuple(elements), total, dims)


def _run(leaves: pa.Table, dims: list[str], b: pa.Array, c: pa.Array, max_elements: int | None,
         steps: list[tuple[pa.Array, ...]] | None, floor: pa.Array | None = None,
         size: pa.Array | None = None, trend: float | None = None
         ) -> Localisation | tuple[pa.Table, list[_Candidate], list[list], float]:
    """The search on the values ``b → c`` of the leaves: (working table, chosen candidates, dimension values,
    the trend they were judged against), or a `Localisation` saying why there is nothing to search. `trend`,
    when given, is the trend to start from instead of the median leaf's change. `steps` are the history's ``(before, after)``
    pairs (or ``(before, after, size)`` triples), `floor` a known lower bound of each leaf's noise variance
    of ``c - b`` (e.g. binomial), `size` the leaves' sizes when not ``max(|b|, |c|)``."""
    if leaves.num_rows == 0:
        return Localisation(reason="there are no segments to compare")
    if max_elements == 0:
        return Localisation(reason="no elements were asked for (max_elements = 0)")
    work, values = _prepare(leaves, dims, b, c, size)
    noise = _noise(work, trend)
    if noise is None:
        return Localisation(reason="nothing changed: every segment is 0 in both periods")
    if steps:
        work = _with_steps(work, steps)
    described = _describe(work, noise, steps, floor)
    chosen = _search(described, len(dims), noise, max_elements)
    if not chosen:
        # The trend is the median leaf's change; a cause that carries a large part of the leaves, each as
        # noisy as the cause is large (a channel's new customers among leaves of 0–20), drags it along, and then
        # nothing departs from it. Judged against the rest of the leaves instead, such a cause stands out: when
        # the one-dimension element most departing from its complement does so beyond the search's bound,
        # the complement's change is the trend, and the search runs again.
        found = _against_rest(work, described, len(dims), steps, floor, max_elements)
        if found is not None:
            return found[0], found[1], values, found[2]
    still = _stood_still(described, chosen, noise)
    if still is not None:
        # The elements found are the segments that did not move while most of the rest did: "no change" is
        # the normal state, the moving majority the cause. The noise is that of the still segments.
        calm = _noise(work.filter(still))
        if calm is not None:
            again = _describe(work, calm, steps, floor)
            other = _search(again, len(dims), calm, max_elements)
            if other and _stood_still(again, other, calm) is None:
                return again, other, values, calm.trend
        # The still segments may instead be ordinary ones that only stand out against a trend the cause
        # dragged along (the same drag as above, with a noise element found against it): the complement's
        # change is tried as the trend, and its answer kept when none of its elements stood still.
        found = _against_rest(work, described, len(dims), steps, floor, max_elements, still_free=True)
        if found is not None:
            return found[0], found[1], values, found[2]
    return described, chosen, values, noise.trend


def _against_rest(work: pa.Table, described: pa.Table, n_dims: int, steps, floor, max_elements: int | None,
                  still_free: bool = False) -> tuple[pa.Table, list[_Candidate], float] | None:
    """The search again with the trend set to the change of the rest of the leaves outside the one-dimension
    element departing most from them (`_complement_trend`): its (working table, elements, trend), or ``None`` when no
    element departs beyond the bound, the search finds nothing, or (`still_free`) one of its elements stood
    still."""
    rest = _complement_trend(described, n_dims)
    if rest is None:
        return None
    moved = _noise(work, rest)
    again = _describe(work, moved, steps, floor)
    other = _search(again, n_dims, moved, max_elements)
    if not other or (still_free and _stood_still(again, other, moved) is not None):
        return None
    return again, other, rest


def _complement_trend(work: pa.Table, n_dims: int) -> float | None:
    """The change of the leaves outside the one-dimension element that departs most from them, when it does so
    beyond the search's bound (two-sample, each side's noise from its leaves); ``None`` otherwise."""
    b, c, size, variance = _sum(work["b"]), _sum(work["c"]), _sum(work["s"]), _sum(work["v"])
    best, trend, tested = 0.0, None, 0
    for i in range(n_dims):
        groups = work.group_by(f"k{i}", use_threads=False).aggregate(
            [("b", "sum"), ("c", "sum"), ("s", "sum"), ("v", "sum")])
        for row in groups.to_pylist():
            s_in, s_out = row["s_sum"], size - row["s_sum"]
            if not (s_in > 0 and s_out > 0):
                continue
            tested += 1
            inside = (row["c_sum"] - row["b_sum"]) / s_in
            outside = ((c - row["c_sum"]) - (b - row["b_sum"])) / s_out
            spread = math.hypot(math.sqrt(max(row["v_sum"], 0.0)) / s_in,
                                math.sqrt(max(variance - row["v_sum"], 0.0)) / s_out)
            z = abs(inside - outside) / spread if spread > 0 else 0.0
            if z > best:
                best, trend = z, outside
    return trend if trend is not None and best > _bound(_layers(n_dims), tested) else None


def _stood_still(work: pa.Table, chosen: list[_Candidate], noise: _Noise) -> pa.Array | None:
    """The mask of the leaves of the chosen elements that are segments that did not move — their deviation is
    nearer 0 than the trend, and within their noise of 0 (at their test's bound) — or ``None`` if none is.
    The mask holds their leaves outside the other elements."""
    masks = [_mask(work, cand) for cand in chosen]
    mask = None
    for i, cand in enumerate(chosen):
        # Judged on its leaves outside the other elements: a still segment crossed by a moving one is still.
        inside = masks[i]
        for j, other in enumerate(masks):
            if j != i:
                inside = pc.and_(inside, pc.invert(other))
        part = work.filter(inside)
        size = _sum(part["s"])
        if not size > 0:
            continue
        deviation = (_sum(part["c"]) - _sum(part["b"])) / size
        spread = math.sqrt(_sum(part["v"])) / size
        if abs(deviation) < abs(deviation - noise.trend) and abs(deviation) <= cand.bound * spread:
            mask = inside if mask is None else pc.or_(mask, inside)
    return mask


def _search(work: pa.Table, n_dims: int, noise: _Noise, max_elements: int | None) -> list[_Candidate]:
    """The acceptable elements, pass after pass on the leaves the earlier ones do not explain, made succinct."""
    limit = max_elements if max_elements is not None else work.num_rows
    chosen: list[_Candidate] = []
    remaining = work
    while len(chosen) < limit and remaining.num_rows:
        picked = _next_layer(remaining, n_dims, noise, chosen, limit - len(chosen))
        if not picked:
            break
        chosen.extend(picked)
        for cand in picked:
            remaining = remaining.filter(pc.invert(_mask(remaining, cand)))
    return _generalise(work, _succinct(work, chosen, noise), noise)


def _conclude(work: pa.Table, chosen: list[_Candidate], elements: tuple[Element, ...], total: float,
              dims: list[str], mix: tuple[Element, ...] = ()) -> Localisation:
    """The `Localisation`: whether the change outside the elements is spread over all segments, and why."""
    outside = work
    for cand in chosen:
        outside = outside.filter(pc.invert(_mask(outside, cand)))
    change = _sum(outside["c"]) - _sum(outside["b"])
    variance = _sum(outside["v"])
    # The part of the change outside the elements is a general movement when it is beyond what the leaves'
    # noise adds up to (at ALPHA, two-sided) and is the larger part of the whole change.
    moved = outside.num_rows > 0 and abs(change) > NormalDist().inv_cdf(1.0 - ALPHA / 2.0) * math.sqrt(variance)
    spread = bool(moved and abs(change) > MAJORITY * abs(total))
    where = ", ".join(dims)
    if elements:
        reason = (f"most of the change is spread across all segments of {where}; the elements named add to it"
                  if spread else None)
    elif spread:
        reason = f"the change is spread across all segments of {where}: none moved differently from the rest"
    elif total == 0 and _sum(pc.abs(pc.subtract(work["c"], work["b"]))) == 0:
        reason = "nothing changed in any segment"
    else:
        reason = "nothing stands out from the segments' usual variation"
    return Localisation(elements=elements, spread=spread, reason=reason, mix=mix)


# --------------------------------------------------------------------------- input


def _check(leaves: pa.Table, dims: Sequence[str], columns: Sequence[str], max_elements: int | None) -> list[str]:
    if isinstance(dims, str):
        dims = [dims]
    dims = list(dict.fromkeys(dims))
    if not dims:
        raise UsageError(error("no dimensions to localise the change in",
                               hint="pass at least one dimension column, e.g. dims=['region']"))
    for name in [*dims, *columns]:
        if name not in leaves.column_names:
            raise UsageError(error(f"the leaf table has no column '{name}'",
                                   hint=did_you_mean(name, leaves.column_names)
                                   or f"its columns: {', '.join(leaves.column_names)}", code="unknown-column"))
    for name in columns:
        kind = leaves.schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
                or pa.types.is_null(kind)):
            raise UsageError(error(f"the value column '{name}' is {kind}, not a number",
                                   hint="localise compares numbers: pass the metric's values per leaf"))
    if max_elements is not None and max_elements < 0:
        raise UsageError(error(f"max_elements is {max_elements}", hint="ask for 0 or more elements"))
    return dims


def _numbers(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    # A missing or non-finite value carries no information about the change: it counts as 0.
    return pc.fill_null(_float(column), 0.0)


def _float(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The values as float64, a non-finite one null."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = pc.cast(column, pa.float64())
    return pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))


def _prepare(leaves: pa.Table, dims: list[str], b: pa.Array, c: pa.Array,
             size: pa.Array | None = None) -> tuple[pa.Table, list[list]]:
    """The working table: integer codes ``k0 …`` per dimension (null is a code of its own) and the values."""
    columns: dict[str, pa.Array] = {}
    values: list[list] = []
    for i, dim in enumerate(dims):
        column = leaves[dim].combine_chunks()
        if not pa.types.is_string(column.type):
            column = pc.cast(column, pa.string())
        encoded = pc.dictionary_encode(column)
        names = encoded.dictionary.to_pylist()
        columns[f"k{i}"] = pc.fill_null(pc.cast(encoded.indices, pa.int32()), len(names))
        values.append([*names, None])
    columns["b"] = b
    columns["c"] = c
    if size is not None:
        columns["z"] = size
    return pa.table(columns), values


def _size(work: pa.Table) -> pa.Array:
    """Each leaf's size: ``max(|b|, |c|)``, or the sizes the caller gave (``z``: a ratio's denominator)."""
    if "z" in work.column_names:
        return work["z"].combine_chunks() if isinstance(work["z"], pa.ChunkedArray) else work["z"]
    return pc.max_element_wise(pc.abs(work["b"]), pc.abs(work["c"]))


# --------------------------------------------------------------------------- leaves


def _deviation(b, c, size) -> pa.Array:
    """``(c - b) / size``, and 0 where the size is 0 (nothing in either period: no change)."""
    informative = pc.greater(size, 0.0)
    return pc.if_else(informative, pc.divide(pc.subtract(c, b), _positive(size)), 0.0)


def _positive(values) -> pa.Array:
    """The values with every non-positive one replaced by 1, to divide by safely."""
    return pc.if_else(pc.greater(values, 0.0), values, 1.0)


def _noise(work: pa.Table, trend: float | None = None) -> _Noise | None:
    """The trend and the noise model of the leaves' deviations.

    The noise of a relative change depends on the size of what changed: for counts (Poisson) its variance
    falls as 1 / size, for amounts with a steady coefficient of variation it does not depend on size; in
    between (Taylor's power law with exponent 1..2) it falls as size ** power with -1 <= power <= 0. The
    power comes from the regression of log squared departures on log size (Harvey's multiplicative
    heteroscedasticity), clamped to that range; the scale is then a robust standard deviation (1.4826 × the
    median absolute departure) of the departures brought to the typical size.

    Returns ``None`` when no leaf has data in either period.
    """
    b, c = work["b"], work["c"]
    size = _size(work)
    informative = pc.greater(size, 0.0)
    deviation = pc.filter(_deviation(b, c, size), informative)
    if len(deviation) == 0:
        return None  # every value is 0 in both periods: nothing changed
    size = pc.filter(size, informative)
    if trend is None:
        trend = pc.quantile(deviation, 0.5)[0].as_py()
    typical = pc.quantile(size, 0.5)[0].as_py()
    if not typical > 0.0:
        # The midpoint of two subnormal sizes (5e-324) rounds to 0: the lower median is a size itself.
        typical = pc.quantile(size, 0.5, interpolation="lower")[0].as_py()
    departure = pc.abs(pc.subtract(deviation, trend))
    log_size = pc.ln(pc.divide(size, typical))
    n = len(deviation)
    bound = NormalDist().inv_cdf(1.0 - ALPHA / (2.0 * n))
    # Fit the power, set aside the leaves that are outliers under the fit (a Bonferroni bound over the
    # leaves), fit again on the rest, until that set stops changing: root causes must not shape the noise
    # model. The cap only bounds the work; the set settles in two or three rounds.
    # Counts (whole numbers, none negative) have a known variance law: a count's sampling variance is at least
    # its mean (Poisson), so the deviation's variance falls as 1 / size (power -1). On few leaves the fitted
    # slope says little (a cause whose leaves are the biggest ones fills the top size bins and flattens it),
    # so for counts the Poisson law is the null hypothesis and the fitted power replaces it only when it
    # departs from -1 by more than its standard error allows at the ALPHA level (e.g. amounts in whole
    # currency units, whose noise does not fall with size: thousands of leaves make that plain).
    counts = _whole(b) and _whole(c)
    normal = pc.greater_equal(departure, 0.0)
    for _ in range(FIT_ROUNDS):
        power = _power(pc.filter(log_size, normal), pc.filter(departure, normal), counts)
        scaled = pc.divide(departure, pc.exp(pc.multiply(log_size, power / 2.0)))
        clipped = MAD_TO_SIGMA * pc.quantile(pc.filter(scaled, normal), 0.5)[0].as_py()
        inside = pc.less_equal(scaled, bound * clipped)
        if pc.all(pc.equal(inside, normal)).as_py():
            break
        normal = inside
    # The scale itself comes from all the leaves: the median absolute departure already ignores a minority of
    # root-cause leaves, while a scale taken after clipping would come out too small on a handful of leaves.
    # n / (n - 0.8) is Croux & Rousseeuw's small-sample correction of the MAD (it fades out as n grows).
    sigma = MAD_TO_SIGMA * pc.quantile(scaled, 0.5)[0].as_py() * n / (n - 0.8)
    dispersion = 1.0
    if counts and "z" not in work.column_names:
        # Counts have a known variance law: Poisson's, ``var(c - b) = b + c``, times a dispersion when they vary
        # more (quasi-Poisson). Among many small counts (0–20 a leaf) a robust scale of relative changes is ruled
        # by their rounding to whole numbers and overstates the noise; the squared Pearson residuals
        # ``(c - b - trend × size)² / (b + c)`` are not. The dispersion is their mean (the quasi-likelihood
        # estimate; a median of so discrete values would be biased) over the leaves that are no outliers under
        # it (the same Bonferroni bound as above, refitted until that set settles). It is below 1 when the
        # values vary less than counts do (amounts in whole units).
        pb, pcur = pc.filter(b, informative), pc.filter(c, informative)
        poisson = pc.add(pb, pcur)
        residual = pc.subtract(pc.subtract(pcur, pb), pc.multiply(size, trend))
        pearson = pc.divide(pc.multiply(residual, residual), _positive(poisson))
        # The first outliers are those of a robust start: the size-weighted median of the squared residuals
        # over the median of χ²₁ (starting from all leaves, a cause among few leaves would inflate the mean
        # enough to hide itself).
        kept = pc.less_equal(pearson, bound * bound * _weighted_median(pearson, size) / CHI2_MEDIAN)
        for _ in range(FIT_ROUNDS):
            part = pc.filter(pearson, kept)
            dispersion = max(pc.mean(part).as_py() or 0.0, SIGMA_FLOOR) if len(part) else 1.0
            inside = pc.less_equal(pearson, bound * bound * dispersion)
            if pc.all(pc.equal(inside, kept)).as_py():
                break
            kept = inside
    return _Noise(trend=trend, sigma=max(sigma, SIGMA_FLOOR), typical=typical, power=power, counts=counts,
                  dispersion=dispersion)


def _weighted_median(values: pa.Array, weights: pa.Array) -> float:
    """The value below and above which half the total weight lies (the lower one at an exact tie)."""
    order = pc.sort_indices(values)
    cumulative = pc.cumulative_sum(pc.take(weights, order))
    index = pc.index(pc.greater_equal(cumulative, _sum(weights) / 2.0), True).as_py()
    return pc.take(values, order)[max(index, 0)].as_py()


def _whole(values: pa.Array) -> bool:
    """Whether every value is a whole number and none is negative: counts."""
    return bool(pc.all(pc.and_(pc.equal(values, pc.floor(values)), pc.greater_equal(values, 0.0))).as_py())


def _power(log_size: pa.Array, departure: pa.Array, counts: bool = False) -> float:
    """The slope of log squared departure on log size, in [-1, 0]; 0 when it cannot be told.

    For counts the answer is -1 (Poisson) unless the slope departs from it significantly (two-sided, ALPHA,
    with the regression's standard error over the bins); when the slope cannot be told it stays -1.

    Root causes put big departures among the normal ones, so the slope is fitted, robustly, through the
    medians of equal-count bins of leaves sorted by size: √n bins of √n leaves (the square-root rule). A bin's
    median departure ignores its anomalous leaves while they are fewer than half of it.
    """
    default = -1.0 if counts else 0.0
    n = len(log_size)
    bins = math.isqrt(n)
    if bins < 3:
        return default
    rank = pc.subtract(pc.rank(log_size, sort_keys="ascending", tiebreaker="first"), 1)
    binned = pa.table({"bin": pc.divide(pc.multiply(pc.cast(rank, pa.int64()), bins), n),
                       "x": log_size, "r": departure})
    medians = binned.group_by("bin", use_threads=False).aggregate([("x", "mean"), ("r", "approximate_median")])
    usable = medians.filter(pc.greater(medians["r_approximate_median"], 0.0))
    if usable.num_rows < 3:
        return default
    x = usable["x_mean"]
    y = pc.multiply(pc.ln(usable["r_approximate_median"]), 2.0)
    dx = pc.subtract(x, pc.mean(x).as_py())
    spread = _sum(pc.multiply(dx, dx))
    if not spread > 0:
        return default
    dy = pc.subtract(y, pc.mean(y).as_py())
    slope = _sum(pc.multiply(dx, dy)) / spread
    if not math.isfinite(slope):
        return default
    if counts:
        residual = pc.subtract(dy, pc.multiply(dx, slope))
        error = math.sqrt(_sum(pc.multiply(residual, residual)) / (usable.num_rows - 2) / spread)
        if abs(slope - default) <= NormalDist().inv_cdf(1.0 - ALPHA / 2.0) * error:
            return default
    return min(0.0, max(-1.0, slope))


def _describe(work: pa.Table, noise: _Noise, steps: list[tuple[pa.Array, pa.Array]] | None = None,
              floor: pa.Array | None = None) -> pa.Table:
    """Add each leaf's size ``s``, deviation ``d``, weight ``w``, ``wx = w |d - trend|`` and ``v``, the variance
    of ``s × d = c - b`` under noise alone: the noise model's at the leaf's size, moderated with the leaf's own
    history (see `_with_history`), and never below the `floor` given. With history, also ``vd = v² / df``
    (the degrees of freedom of that variance)."""
    size = _size(work)
    deviation = _deviation(work["b"], work["c"], size)
    weight = pc.divide(size, pc.add(size, noise.typical))
    relative = pc.divide(size, noise.typical)
    own = pc.multiply(noise.sigma ** 2, pc.power(_positive(relative), noise.power))
    if noise.counts and "z" not in work.column_names:
        # Counts: quasi-Poisson, the dispersion times b + c (see `_noise`), as a relative variance.
        # (Absolute values: the noise model may come from a subset of the leaves, see `_run`.)
        poisson = pc.multiply(pc.add(pc.abs(work["b"]), pc.abs(work["c"])), noise.dispersion)
        own = pc.divide(poisson, _positive(pc.multiply(size, size)))
    freedom = None
    if steps:
        own, freedom = _with_history(own, *_own_variance(steps))
    variance = pc.multiply(pc.multiply(size, size), own)
    estimated = variance
    if floor is not None:
        variance = pc.max_element_wise(variance, pc.fill_null(floor, 0.0))
    variance = pc.if_else(pc.greater(size, 0.0), variance, 0.0)
    described = (work.append_column("s", size)
                 .append_column("v", variance)
                 .append_column("d", deviation)
                 .append_column("w", weight)
                 .append_column("wx", pc.multiply(weight, pc.abs(pc.subtract(deviation, noise.trend)))))
    if freedom is None:
        return described
    # ``vd = v² / df``: summed over an element's leaves, Satterthwaite's effective degrees of freedom of its
    # variance, ``(Σ v)² / Σ v² / df``. A leaf whose variance is the known floor adds no uncertainty.
    uncertain = pc.and_(pc.greater(estimated, pc.fill_null(floor, 0.0) if floor is not None else 0.0),
                        pc.greater(freedom, 0.0))
    vd = pc.if_else(uncertain, pc.divide(pc.multiply(variance, variance), _positive(freedom)), 0.0)
    return described.append_column("vd", vd)


def _history(leaves: pa.Table, history: Sequence | None) -> list[pa.Array] | None:
    """The history arrays as float64 (nulls kept), checked against the leaves."""
    if history is None:
        return None
    arrays = []
    for i, values in enumerate(history):
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        elif not isinstance(values, pa.Array):
            values = pa.array(values)
        if len(values) != leaves.num_rows:
            raise UsageError(error(f"history period {i + 1} has {len(values)} values for {leaves.num_rows} leaves",
                                   hint="pass one array per earlier period, aligned row by row with the leaves"))
        kind = values.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
                or pa.types.is_null(kind)):
            raise UsageError(error(f"history period {i + 1} is {kind}, not a number",
                                   hint="pass the leaves' values of each earlier period"))
        arrays.append(_float(values))
    return arrays or None


def _own_variance(steps: list[tuple[pa.Array, pa.Array]]) -> pa.Array:
    """Each leaf's mean squared departure, over its history's period-to-period steps ``(before, after)`` (the
    last one into the baseline), of its deviation from that step's general movement (the median deviation of
    the leaves); null where the leaf has no step with data on both sides. The general movement (a season, a
    trend of the whole business) is no leaf's own variation."""
    total = count = None
    for before, after, *sized in steps:
        valid = pc.and_(pc.is_valid(before), pc.is_valid(after))
        b, c = pc.fill_null(before, 0.0), pc.fill_null(after, 0.0)
        size = pc.fill_null(sized[0], 0.0) if sized else pc.max_element_wise(pc.abs(b), pc.abs(c))
        usable = pc.and_(valid, pc.greater(size, 0.0))
        deviation = _deviation(b, c, size)
        moved = pc.filter(deviation, usable)
        general = pc.quantile(moved, 0.5)[0].as_py() if len(moved) else 0.0
        residual = pc.subtract(deviation, general)
        square = pc.if_else(usable, pc.multiply(residual, residual), 0.0)
        ones = pc.if_else(usable, 1.0, 0.0)
        total = square if total is None else pc.add(total, square)
        count = ones if count is None else pc.add(count, ones)
    return (pc.if_else(pc.greater(count, 0.0), pc.divide(total, _positive(count)), pa.scalar(None, pa.float64())),
            count)


def _with_history(model: pa.Array, history: pa.Array, steps: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """Each leaf's relative noise variance from the noise model and its own history, and the degrees of
    freedom that variance rests on (``None``: known, as good as infinite).

    The history's estimate, as a multiple of the model's, is moderated (`metrictree.moderating`): pooled with
    all the leaves' (Smyth's empirical Bayes), so that a leaf with a calm history is judged by its own calm
    and a volatile one by its swings, each by as much as the leaves' histories differ beyond their sampling
    noise. The moderated variance has ``d₀ + k`` degrees of freedom (k the leaf's steps), which the
    significance test then honours (Student's t, as limma's moderated t). When the histories cannot be
    fitted (fewer than two leaves with some variation), the larger of the model and the history."""
    informative = pc.greater(model, 0.0)
    ratio = pc.if_else(informative, pc.divide(history, _positive(model)), pa.scalar(None, pa.float64()))
    fitted = moderating.prior(ratio, steps)
    if fitted is None:
        return pc.max_element_wise(model, pc.fill_null(history, 0.0)), None
    usable = pc.is_valid(ratio)
    freedom = pc.if_else(usable, steps, 0.0)
    pooled = moderating.moderate(pc.fill_null(ratio, 0.0), freedom, fitted)
    own = pc.if_else(informative, pc.multiply(model, pooled), model)
    if math.isinf(fitted[0]):
        return own, None
    return own, pc.add(freedom, fitted[0])


# --------------------------------------------------------------------------- search


def _layers(n_dims: int) -> int:
    """How many layers the search visits: all of them, unless that is more than MAX_CUBOIDS cuboids, in which
    case the layers up to the last one that keeps the count within the budget (at least the first)."""
    total, layers = 0, 0
    for layer in range(1, n_dims + 1):
        total += math.comb(n_dims, layer)
        if total > MAX_CUBOIDS and layers:
            break
        layers = layer
    return layers


def _next_layer(remaining: pa.Table, n_dims: int, noise: _Noise, chosen: list[_Candidate],
                room: int) -> list[_Candidate]:
    """The acceptable elements of the first layer that has any, largest change first, none overlapping.

    Memory stays bounded: one cuboid is summarised at a time, and only its elements that could pass the
    significance test are kept (the test's bound only grows as more elements are counted, so an element
    below the bound reached so far fails the final one too). A cuboid whose elements are single leaves
    makes every cuboid above it a copy with more dimensions: those are skipped.
    """
    layers = _layers(n_dims)
    identifying: list[set[int]] = []
    for layer in range(1, layers + 1):
        kept = []
        tested = 0
        for cuboid in combinations(range(n_dims), layer):
            if any(one <= set(cuboid) for one in identifying):
                continue
            groups = _summarise(remaining, cuboid)
            tested += pc.sum(pc.greater(groups["s_sum"], 0.0)).as_py() or 0
            if groups.num_rows == remaining.num_rows:
                identifying.append(set(cuboid))
            kept.append((cuboid, _significant(groups, noise, _bound(layers, tested))))
        # Bonferroni over the layers and over each layer's elements that hold data: on pure noise, no element
        # of the whole search passes, but with probability ALPHA.
        bound = _bound(layers, tested)
        found = []
        for cuboid, groups in kept:
            found.extend(c for c in _candidates(remaining, cuboid, groups, noise, bound)
                         if not any(_nested(c, o) for o in chosen))
        if not found:
            continue
        found.sort(key=lambda c: -abs(c.change))
        picked: list[_Candidate] = []
        for cand in found:
            # Two elements of one layer may share leaves; the second waits for the next pass, which judges
            # it without the leaves the first one explains.
            if len(picked) < room and not any(_may_overlap(cand, p) for p in picked):
                picked.append(cand)
        return picked
    return []


def _bound(layers: int, tested: int) -> float:
    return NormalDist().inv_cdf(1.0 - ALPHA / (2.0 * layers * max(tested, 1)))


def _significant(groups: pa.Table, noise: _Noise, bound: float) -> pa.Table:
    """The groups whose deviation departs from the trend by more than `bound` times its noise."""
    size = groups["s_sum"]
    departure = pc.subtract(_deviation(groups["b_sum"], groups["c_sum"], size), noise.trend)
    spread = pc.divide(pc.sqrt(groups["v_sum"]), _positive(size))
    return groups.filter(_beyond(groups, departure, spread, bound))


def _beyond(groups: pa.Table, departure: pa.Array, spread: pa.Array, bound: float) -> pa.Array:
    """Which groups depart by more than `bound` noise s.d.: a normal quantile, or, when a group's variance is
    an estimate on ``nu`` degrees of freedom (from the leaves' histories), the t statistic at the same tail
    probability (its normal equivalent beyond `bound`)."""
    size = groups["s_sum"]
    passed = pc.and_(pc.greater(size, 0.0), pc.greater(pc.abs(departure), pc.multiply(spread, bound)))
    if "nu" not in groups.column_names or not pc.any(passed).as_py():
        return passed
    # Only the groups past the normal bound can pass the t test (whose quantile is larger).
    statistic = pc.divide(pc.abs(departure), _positive(spread)).to_pylist()
    freedom = groups["nu"].to_pylist()
    keep = []
    for ok, t, nu in zip(passed.to_pylist(), statistic, freedom):
        if ok and nu is not None and math.isfinite(nu):
            tail = moderating.t_tail(t, max(nu, SIGMA_FLOOR))
            ok = tail <= 0.0 or -NormalDist().inv_cdf(tail) > bound
        keep.append(bool(ok))
    return pa.array(keep, pa.bool_())


def _summarise(remaining: pa.Table, cuboid: tuple[int, ...]) -> pa.Table:
    keys = [f"k{i}" for i in cuboid]
    history = [name for name in remaining.column_names if name.startswith("h") and name[1:2] in "bas"
               and name[2:].isdigit()]
    uncertain = "vd" in remaining.column_names
    groups = remaining.group_by(keys, use_threads=False).aggregate(
        [("b", "sum"), ("c", "sum"), ("s", "sum"), ("v", "sum"), ("w", "sum"), *((("vd", "sum"),) if uncertain else ()),
         *((h, "sum") for h in history)])
    if uncertain:
        # The element's variance rests on ``nu`` degrees of freedom (Satterthwaite; infinite when known).
        nu = pc.if_else(pc.greater(groups["vd_sum"], 0.0),
                        pc.divide(pc.multiply(groups["v_sum"], groups["v_sum"]), _positive(groups["vd_sum"])), math.inf)
        groups = groups.append_column("nu", nu).drop_columns(["vd_sum"])
    if not history:
        return groups
    # An element's own history: segments that swing together (a channel whose every leaf jumps in the same
    # month) vary more as a whole than their leaves' variances add up to. The element's mean squared
    # departure from each step's general movement, at its size, widens its variance when larger.
    total = count = None
    for t in range(len(history) // 3):
        size = groups[f"hs{t}_sum"]
        usable = pc.greater(size, 0.0)
        residual = pc.divide(pc.subtract(groups[f"ha{t}_sum"], groups[f"hb{t}_sum"]), _positive(size))
        square = pc.if_else(usable, pc.multiply(residual, residual), 0.0)
        ones = pc.if_else(usable, 1.0, 0.0)
        total = square if total is None else pc.add(total, square)
        count = ones if count is None else pc.add(count, ones)
    own = pc.divide(total, _positive(count))
    history_variance = pc.multiply(pc.multiply(groups["s_sum"], groups["s_sum"]), own)
    wider = pc.greater(history_variance, groups["v_sum"])
    if uncertain:
        # With the leaves' own histories in their variances, the element's history adds only how its leaves
        # swing together: it widens the element when it is beyond what its leaves' variances give, at ALPHA
        # (one-sided, χ² on its steps; Wilson–Hilferty's quantile), not whenever a few steps happen to.
        steps = pc.cast(count, pa.float64())
        cube = pc.power(pc.add(pc.subtract(1.0, pc.divide(2.0 / 9.0, _positive(steps))),
                               pc.multiply(NormalDist().inv_cdf(1.0 - ALPHA), pc.sqrt(pc.divide(2.0 / 9.0, _positive(steps))))),
                        3.0)
        wider = pc.and_(pc.greater(steps, 0.0), pc.greater(history_variance, pc.multiply(groups["v_sum"], cube)))
    widened = pc.if_else(wider, history_variance, groups["v_sum"])
    groups = groups.set_column(groups.schema.get_field_index("v_sum"), "v_sum", widened)
    return groups.drop_columns([f"{h}_sum" for h in history])


def _with_steps(work: pa.Table, steps: list[tuple[pa.Array, ...]]) -> pa.Table:
    """The history's steps as columns ``hb{t}``, ``ha{t}``, ``hs{t}`` (before, after less the step's general
    movement times the size, size; 0 where the leaf has no data on both sides), for elements' own history."""
    for t, (before, after, *sized) in enumerate(steps):
        valid = pc.and_(pc.is_valid(before), pc.is_valid(after))
        b, c = pc.fill_null(before, 0.0), pc.fill_null(after, 0.0)
        size = pc.fill_null(sized[0], 0.0) if sized else pc.max_element_wise(pc.abs(b), pc.abs(c))
        usable = pc.and_(valid, pc.greater(size, 0.0))
        moved = pc.filter(_deviation(b, c, size), usable)
        general = pc.quantile(moved, 0.5)[0].as_py() if len(moved) else 0.0
        work = (work.append_column(f"hb{t}", pc.if_else(usable, b, 0.0))
                .append_column(f"ha{t}", pc.if_else(usable, pc.subtract(c, pc.multiply(size, general)), 0.0))
                .append_column(f"hs{t}", pc.if_else(usable, size, 0.0)))
    return work


def _candidates(remaining: pa.Table, cuboid: tuple[int, ...], groups: pa.Table, noise: _Noise,
                bound: float) -> list[_Candidate]:
    """The acceptable elements of one cuboid (see the module's docstring for the three tests)."""
    keys = [f"k{i}" for i in cuboid]
    size = groups["s_sum"]
    # The element's deviation is the size-weighted mean of its leaves' deviations, (C - B) / Σ max(|b|, |c|):
    # a relative change against the leaves' own magnitude, which does not explode where sums of mixed signs
    # cancel.
    deviation = _deviation(groups["b_sum"], groups["c_sum"], size)
    departure = pc.subtract(deviation, noise.trend)
    # Being that weighted mean, its noise is sqrt(Σ s² σ²) / Σ s: with equal leaf noise, the leaves' noise
    # over the square root of their effective number (Kish).
    spread = pc.divide(pc.sqrt(groups["v_sum"]), _positive(size))
    significant = _beyond(groups, departure, spread, bound)
    if not pc.any(significant).as_py():
        return []
    groups = groups.append_column("D", deviation).append_column("X", departure).filter(significant)

    # Support and ripple: which leaves sit nearer the element's deviation than the trend; how far the
    # leaves sit from the element's deviation against how far they sit from the trend.
    joined = remaining.select([*keys, "d", "s", "v", "w", "wx"]).join(
        groups.select([*keys, "D", "X", "s_sum", "v_sum"]), keys=keys, join_type="inner", use_threads=False)
    d, weight, x = joined["d"], joined["w"], joined["X"]
    toward = pc.multiply(pc.subtract(d, noise.trend), pc.sign(x))
    near = pc.greater(toward, pc.divide(pc.abs(x), 2.0))
    # Even a true cause leaves its leaves' noise around its common change: the part of Σ w |d - D| that noise
    # alone gives, Σ w E|d - D| = Σ w √(2/π) sd(d - D), is not held against the ripple effect. With the
    # weights h = s / Σs of the element's mean, var(d - D) = (1 - 2h) σ² + Σ h² σ² (σ² = v / s² a leaf's
    # noise, the last term the element's own); a single leaf gives 0. Where noise is small against the
    # changes (B0's 1 %) this is next to nothing; on noisy counts it keeps a cause from failing for noise.
    share = pc.divide(joined["s"], _positive(joined["s_sum"]))
    own = pc.divide(joined["v"], _positive(pc.multiply(joined["s"], joined["s"])))
    mean = pc.divide(joined["v_sum"], _positive(pc.multiply(joined["s_sum"], joined["s_sum"])))
    variance = pc.add(pc.multiply(pc.subtract(1.0, pc.multiply(share, 2.0)), own), mean)
    expected = pc.multiply(math.sqrt(2.0 / math.pi), pc.sqrt(pc.max_element_wise(variance, 0.0)))
    joined = (joined.append_column("ws", pc.if_else(near, weight, 0.0))
              .append_column("wr", pc.multiply(weight, pc.abs(pc.subtract(d, joined["D"]))))
              .append_column("wn", pc.multiply(weight, expected))
              .append_column("wm", pc.multiply(weight, pc.multiply(math.sqrt(2.0 / math.pi), pc.sqrt(own)))))
    judged = joined.group_by(keys, use_threads=False).aggregate(
        [("ws", "sum"), ("wr", "sum"), ("wn", "sum"), ("wm", "sum"), ("wx", "sum")])
    groups = groups.join(judged, keys=keys, join_type="inner", use_threads=False)
    support = pc.divide(groups["ws_sum"], _positive(groups["w_sum"]))
    unexplained = pc.max_element_wise(pc.subtract(groups["wr_sum"], groups["wn_sum"]), 0.0)
    beyond = pc.subtract(groups["wx_sum"], groups["wm_sum"])
    consistency = pc.if_else(pc.greater(beyond, 0.0),
                             pc.subtract(1.0, pc.divide(unexplained, _positive(beyond))), 0.0)
    accept = pc.and_(pc.greater(support, MAJORITY), pc.greater(consistency, MAJORITY))
    groups = groups.append_column("S", support).append_column("K", consistency).filter(accept)

    rows = groups.select([*keys, "b_sum", "c_sum", "S", "K"]).to_pylist()
    return [_Candidate(cuboid=cuboid, codes=tuple(row[k] for k in keys), change=row["c_sum"] - row["b_sum"],
                       score=row["S"] * row["K"], bound=bound) for row in rows]


def _pairs(cand: _Candidate) -> dict[int, int]:
    return dict(zip(cand.cuboid, cand.codes))


def _nested(one: _Candidate, other: _Candidate) -> bool:
    a, b = _pairs(one).items(), _pairs(other).items()
    return a <= b or b <= a


def _may_overlap(one: _Candidate, other: _Candidate) -> bool:
    a, b = _pairs(one), _pairs(other)
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def _mask(table: pa.Table, cand: _Candidate) -> pa.Array:
    mask = None
    for dim, code in zip(cand.cuboid, cand.codes):
        match = pc.equal(table[f"k{dim}"], code)
        mask = match if mask is None else pc.and_(mask, match)
    return mask


def _succinct(work: pa.Table, chosen: list[_Candidate], noise: _Noise) -> list[_Candidate]:
    """Drop the elements that the others make redundant, smallest change first.

    An element stays when, on its leaves outside the other elements, it still passes the tests it passed
    when it was found. A coarse element found early can owe its shift to a leaf or two of a finer root cause
    found later (typically where most of its leaves are zero); without those leaves it is noise.
    """
    if len(chosen) < 2:
        return chosen
    masks = [_mask(work, cand) for cand in chosen]
    kept = list(range(len(chosen)))
    for i in sorted(kept, key=lambda i: abs(chosen[i].change)):
        alone = masks[i]
        for j in kept:
            if j != i:
                alone = pc.and_(alone, pc.invert(masks[j]))
        rest = work.filter(alone)
        cand = chosen[i]
        if not _candidates(rest, cand.cuboid, _summarise(rest, cand.cuboid), noise, cand.bound):
            kept.remove(i)
    return [chosen[i] for i in kept]


def _generalise(work: pa.Table, chosen: list[_Candidate], noise: _Noise) -> list[_Candidate]:
    """Name the parent instead of several of its children when the rest of the parent moved the same way.

    A cause rarely moves all of its leaves by one proportion: a failing CDN hurts one device more than
    another, and the parent can fail the ripple test where its more uniform children pass. When two or more
    accepted elements are children of one parent along one dimension (``bitrate = 2000 & device = C1``,
    ``bitrate = 2000 & device = C5``, all moving the same way), the parent is the coarsest explanation when
    the children are the majority of it (more than half its weighted leaves), or when the rest of it — its
    leaves outside every element — departs from the trend in the children's direction beyond noise
    (one-sided, at ALPHA) or has no data: the children are then its most visible parts, not separate
    causes. A parent's score is its children's, weighted by their changes.
    """
    while True:
        families: dict[tuple, list[_Candidate]] = {}
        for cand in chosen:
            if len(cand.cuboid) < 2:
                continue
            for j in range(len(cand.cuboid)):
                parent = (cand.cuboid[:j] + cand.cuboid[j + 1:], cand.codes[:j] + cand.codes[j + 1:])
                families.setdefault(parent, []).append(cand)
        merged = None
        families = {key: children for key, children in families.items() if len(children) > 1
                    and (all(c.change > 0 for c in children) or all(c.change < 0 for c in children))}
        # Bonferroni over the families judged.
        bound = NormalDist().inv_cdf(1.0 - ALPHA)
        for (cuboid, codes), children in sorted(families.items(), key=lambda kv: -len(kv[1])):
            changes = [c.change for c in children]
            parent = _Candidate(cuboid=cuboid, codes=codes, change=0.0, score=0.0, bound=children[0].bound)
            inside = _mask(work, parent)
            rest = inside
            for other in chosen:
                rest = pc.and_(rest, pc.invert(_mask(work, other)))
            part = work.filter(rest)
            whole = work.filter(inside)
            size = _sum(part["s"])
            kids = _sum(work.filter(_union(work, children))["w"]) / max(_sum(whole["w"]), SIGMA_FLOOR)
            if size > 0 and not kids > MAJORITY:
                departure = (_sum(part["c"]) - _sum(part["b"])) / size - noise.trend
                spread = math.sqrt(_sum(part["v"])) / size
                direction = 1.0 if changes[0] > 0 else -1.0
                if not departure * direction > bound * spread:
                    continue
            weight = sum(abs(x) for x in changes)
            score = sum(abs(c.change) * c.score for c in children) / weight
            merged = (children, attrs.evolve(parent, change=_sum(whole["c"]) - _sum(whole["b"]), score=score))
            break
        if merged is None:
            return chosen
        children, parent = merged
        chosen = [c for c in chosen if c not in children and not _nested(c, parent)] + [parent]


def _union(table: pa.Table, cands: list[_Candidate]) -> pa.Array:
    mask = None
    for cand in cands:
        mask = _mask(table, cand) if mask is None else pc.or_(mask, _mask(table, cand))
    return mask


def _sum(values) -> float:
    return pc.sum(values).as_py() or 0.0


# --------------------------------------------------------------------------- output


def _element(work: pa.Table, cand: _Candidate, dims: list[str], values: list[list], total: float) -> Element:
    inside = work.filter(_mask(work, cand))
    baseline, current = _sum(inside["b"]), _sum(inside["c"])
    change = current - baseline
    share = change / total if total != 0 and math.isfinite(change / total) else 0.0
    where = {dims[i]: values[i][code] for i, code in sorted(zip(cand.cuboid, cand.codes))}
    return Element(where=where, baseline=baseline, current=current, change=change, share=share,
                   leaves=inside.num_rows, score=cand.score)
