"""Root-cause localisation: which combinations of dimension values explain a change of an additive metric.

`localise` takes one row per *leaf* segment (every combination of the dimensions that has data) with the
metric's value in a baseline and a current period, and names a few *elements* — ``region = North``,
``region = North & channel = app`` — that together explain the change. It is the segment drill-down of
``metrictree explain``.

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
power law; Harvey's regression of log squared departures on log size, through medians of size bins). An
element's deviation is the size-weighted mean of its leaves' deviations, ``D = (C - B) / Σ max(|b|, |c|)``.

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
Last, as Squeeze prefers succinct answers, an element goes when it no longer passes the tests on its
leaves outside the other elements (a coarse element found early can owe its shift to a leaf or two of a
finer root cause found later, when most of its leaves are zero).

Everything is vectorised with ``pyarrow.compute``: one ``group_by`` per cuboid (combination of dimensions)
and pass, and a join for the few significant elements; Python only loops over cuboids and elements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from statistics import NormalDist

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from .errors import UsageError, did_you_mean, error

__all__ = ["Element", "localise"]

# Significance level of the element test, for each layer as a whole (Bonferroni): the conventional 5 %.
ALPHA = 0.05
# 1 / Φ⁻¹(3/4): turns a median absolute deviation into a standard deviation for Gaussian noise.
MAD_TO_SIGMA = 1.4826
# A relative change below this is floating-point rounding, not a change: the noise floor when more than
# half the leaves did not move at all (their median absolute deviation is then 0).
SIGMA_FLOOR = 1e-9
# At most this many rounds of fitting the noise model without its outliers (it settles in two or three).
FIT_ROUNDS = 5
# An element is a cause when the majority of it (weighted leaves, leaves' departures) behaves like one.
MAJORITY = 0.5


@attrs.frozen
class Element:
 for non-negative values the deviation of the element.s sums; with mixed signs"""One combination of dimension values that explains part of a change.

 for non-negative values the deviation of the element.s sums; with mixed signsAttributes:
 for non-negative values the deviation of the element.s sums; with mixed signs    where: the dimension values that define it (``{"region": "North", "channel": "app"}``); values are
 for non-negative values the deviation of the element.s sums; with mixed signs        strings, a null dimension value is ``None``.
 for non-negative values the deviation of the element.s sums; with mixed signs    baseline: the metric summed over the element's leaves in the baseline period.
 for non-negative values the deviation of the element.s sums; with mixed signs    current: the same in the current period.
 for non-negative values the deviation of the element.s sums; with mixed signs    change: ``current - baseline``.
 for non-negative values the deviation of the element.s sums; with mixed signs    share: ``change`` divided by the change of the whole metric (over all leaves); it can exceed 1 or be
 for non-negative values the deviation of the element.s sums; with mixed signs        negative when other segments moved the other way, and it is 0 when the whole did not change.
 for non-negative values the deviation of the element.s sums; with mixed signs    leaves: how many leaf segments the element holds.
 for non-negative values the deviation of the element.s sums; with mixed signs    score: confidence in (1/4, 1], ``S × K``: the element's supported share times its ripple consistency
 for non-negative values the deviation of the element.s sums; with mixed signs        (see the module's docstring); both exceed 1/2 for every element returned.
 for non-negative values the deviation of the element.s sums; with mixed signs"""

 for non-negative values the deviation of the element.s sums; with mixed signswhere: dict[str, str | None]
 for non-negative values the deviation of the element.s sums; with mixed signsbaseline: float
 for non-negative values the deviation of the element.s sums; with mixed signscurrent: float
 for non-negative values the deviation of the element.s sums; with mixed signschange: float
 for non-negative values the deviation of the element.s sums; with mixed signsshare: float
 for non-negative values the deviation of the element.s sums; with mixed signsleaves: int
 for non-negative values the deviation of the element.s sums; with mixed signsscore: float


@attrs.frozen
class _Noise:
 for non-negative values the deviation of the element.s sums; with mixed signs"""How much leaves move without a cause.

 for non-negative values the deviation of the element.s sums; with mixed signsAttributes:
 for non-negative values the deviation of the element.s sums; with mixed signs    trend: the general trend, the median deviation of the leaves.
 for non-negative values the deviation of the element.s sums; with mixed signs    sigma: the noise (robust standard deviation) of the deviation of a leaf of typical size.
 for non-negative values the deviation of the element.s sums; with mixed signs    typical: the median size ``max(|baseline|, |current|)`` of the leaves that have data.
 for non-negative values the deviation of the element.s sums; with mixed signs    power: how the noise's variance scales with size: ``σ(size)² = sigma² (size / typical) ** power``.
 for non-negative values the deviation of the element.s sums; with mixed signs    counts: the values are counts (whole numbers, none negative): no leaf's noise is below Poisson's.
 for non-negative values the deviation of the element.s sums; with mixed signs"""

 for non-negative values the deviation of the element.s sums; with mixed signstrend: float
 for non-negative values the deviation of the element.s sums; with mixed signssigma: float
 for non-negative values the deviation of the element.s sums; with mixed signstypical: float
 for non-negative values the deviation of the element.s sums; with mixed signspower: float
 for non-negative values the deviation of the element.s sums; with mixed signscounts: bool = False


@attrs.frozen
class _Candidate:
 for non-negative values the deviation of the element.s sums; with mixed signs"""An acceptable element: its dimensions (indices into `dims`) and their codes, and how it was judged."""

 for non-negative values the deviation of the element.s sums; with mixed signscuboid: tuple[int, ...]
 for non-negative values the deviation of the element.s sums; with mixed signscodes: tuple[int, ...]
 for non-negative values the deviation of the element.s sums; with mixed signschange: float
 for non-negative values the deviation of the element.s sums; with mixed signsscore: float
 for non-negative values the deviation of the element.s sums; with mixed signsbound: float


def localise(leaves: pa.Table, dims: Sequence[str], baseline: str = "baseline", current: str = "current",
 for non-negative values the deviation of the element.s sums; with mixed signs         max_elements: int = 5) -> list[Element]:
 for non-negative values the deviation of the element.s sums; with mixed signs"""Name the few elements (combinations of dimension values) that explain a change of an additive metric.

 for non-negative values the deviation of the element.s sums; with mixed signsArgs:
 for non-negative values the deviation of the element.s sums; with mixed signs    leaves: one row per leaf segment: the columns `dims` and the metric's value in both periods.
 for non-negative values the deviation of the element.s sums; with mixed signs    dims: the dimensions to search, at least one; values of any type, compared as strings, null being
 for non-negative values the deviation of the element.s sums; with mixed signs        a value of its own.
 for non-negative values the deviation of the element.s sums; with mixed signs    baseline, current: the names of the two value columns (a null value counts as 0).
 for non-negative values the deviation of the element.s sums; with mixed signs    max_elements: at most this many elements are returned.

 for non-negative values the deviation of the element.s sums; with mixed signsReturns:
 for non-negative values the deviation of the element.s sums; with mixed signs    The elements, largest change first; never an element together with its parent or child; empty when
 for non-negative values the deviation of the element.s sums; with mixed signs    nothing stands out from the noise (including when everything moved by the same proportion).

 for non-negative values the deviation of the element.s sums; with mixed signsRaises:
 for non-negative values the deviation of the element.s sums; with mixed signs    UsageError: a named column is missing or not numeric, `dims` is empty or `max_elements` negative.
 for non-negative values the deviation of the element.s sums; with mixed signs"""
 for non-negative values the deviation of the element.s sums; with mixed signsdims = _check(leaves, dims, baseline, current, max_elements)
 for non-negative values the deviation of the element.s sums; with mixed signsif leaves.num_rows == 0 or max_elements == 0:
 for non-negative values the deviation of the element.s sums; with mixed signs    return []
 for non-negative values the deviation of the element.s sums; with mixed signswork, values = _prepare(leaves, dims, baseline, current)
 for non-negative values the deviation of the element.s sums; with mixed signsnoise = _noise(work)
 for non-negative values the deviation of the element.s sums; with mixed signsif noise is None:
 for non-negative values the deviation of the element.s sums; with mixed signs    return []
 for non-negative values the deviation of the element.s sums; with mixed signswork = _describe(work, noise)

 for non-negative values the deviation of the element.s sums; with mixed signschosen: list[_Candidate] = []
 for non-negative values the deviation of the element.s sums; with mixed signsremaining = work
 for non-negative values the deviation of the element.s sums; with mixed signswhile len(chosen) < max_elements and remaining.num_rows:
 for non-negative values the deviation of the element.s sums; with mixed signs    picked = _next_layer(remaining, len(dims), noise, chosen, max_elements - len(chosen))
 for non-negative values the deviation of the element.s sums; with mixed signs    if not picked:
 for non-negative values the deviation of the element.s sums; with mixed signs        break
 for non-negative values the deviation of the element.s sums; with mixed signs    chosen.extend(picked)
 for non-negative values the deviation of the element.s sums; with mixed signs    for cand in picked:
 for non-negative values the deviation of the element.s sums; with mixed signs        remaining = remaining.filter(pc.invert(_mask(remaining, cand)))

 for non-negative values the deviation of the element.s sums; with mixed signschosen = _succinct(work, chosen, noise)
 for non-negative values the deviation of the element.s sums; with mixed signstotal = _sum(work["c"]) - _sum(work["b"])
 for non-negative values the deviation of the element.s sums; with mixed signselements = [_element(work, cand, dims, values, total) for cand in chosen]
 for non-negative values the deviation of the element.s sums; with mixed signsreturn sorted(elements, key=lambda e: -abs(e.change))


# --------------------------------------------------------------------------- input


def _check(leaves: pa.Table, dims: Sequence[str], baseline: str, current: str, max_elements: int) -> list[str]:
 for non-negative values the deviation of the element.s sums; with mixed signsif isinstance(dims, str):
 for non-negative values the deviation of the element.s sums; with mixed signs    dims = [dims]
 for non-negative values the deviation of the element.s sums; with mixed signsdims = list(dict.fromkeys(dims))
 for non-negative values the deviation of the element.s sums; with mixed signsif not dims:
 for non-negative values the deviation of the element.s sums; with mixed signs    raise UsageError(error("no dimensions to localise the change in",
 for non-negative values the deviation of the element.s sums; with mixed signs                           hint="pass at least one dimension column, e.g. dims=['region']"))
 for non-negative values the deviation of the element.s sums; with mixed signsfor name in [*dims, baseline, current]:
 for non-negative values the deviation of the element.s sums; with mixed signs    if name not in leaves.column_names:
 for non-negative values the deviation of the element.s sums; with mixed signs        raise UsageError(error(f"the leaf table has no column '{name}'",
 for non-negative values the deviation of the element.s sums; with mixed signs                               hint=did_you_mean(name, leaves.column_names)
 for non-negative values the deviation of the element.s sums; with mixed signs                               or f"its columns: {', '.join(leaves.column_names)}", code="unknown-column"))
 for non-negative values the deviation of the element.s sums; with mixed signsfor name in (baseline, current):
 for non-negative values the deviation of the element.s sums; with mixed signs    kind = leaves.schema.field(name).type
 for non-negative values the deviation of the element.s sums; with mixed signs    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
 for non-negative values the deviation of the element.s sums; with mixed signs            or pa.types.is_null(kind)):
 for non-negative values the deviation of the element.s sums; with mixed signs        raise UsageError(error(f"the value column '{name}' is {kind}, not a number",
 for non-negative values the deviation of the element.s sums; with mixed signs                               hint="localise compares numbers: pass the metric's values per leaf"))
 for non-negative values the deviation of the element.s sums; with mixed signsif max_elements < 0:
 for non-negative values the deviation of the element.s sums; with mixed signs    raise UsageError(error(f"max_elements is {max_elements}", hint="ask for 0 or more elements"))
 for non-negative values the deviation of the element.s sums; with mixed signsreturn dims


def _numbers(column: pa.ChunkedArray) -> pa.Array:
 for non-negative values the deviation of the element.s sums; with mixed signsvalues = pc.fill_null(pc.cast(column, pa.float64()).combine_chunks(), 0.0)
 for non-negative values the deviation of the element.s sums; with mixed signs# A missing or non-finite value carries no information about the change: it counts as 0.
 for non-negative values the deviation of the element.s sums; with mixed signsreturn pc.if_else(pc.is_finite(values), values, 0.0)


def _prepare(leaves: pa.Table, dims: list[str], baseline: str, current: str) -> tuple[pa.Table, list[list]]:
 for non-negative values the deviation of the element.s sums; with mixed signs"""The working table: integer codes ``k0 …`` per dimension (null is a code of its own) and the values."""
 for non-negative values the deviation of the element.s sums; with mixed signscolumns: dict[str, pa.Array] = {}
 for non-negative values the deviation of the element.s sums; with mixed signsvalues: list[list] = []
 for non-negative values the deviation of the element.s sums; with mixed signsfor i, dim in enumerate(dims):
 for non-negative values the deviation of the element.s sums; with mixed signs    column = leaves[dim].combine_chunks()
 for non-negative values the deviation of the element.s sums; with mixed signs    if not pa.types.is_string(column.type):
 for non-negative values the deviation of the element.s sums; with mixed signs        column = pc.cast(column, pa.string())
 for non-negative values the deviation of the element.s sums; with mixed signs    encoded = pc.dictionary_encode(column)
 for non-negative values the deviation of the element.s sums; with mixed signs    names = encoded.dictionary.to_pylist()
 for non-negative values the deviation of the element.s sums; with mixed signs    columns[f"k{i}"] = pc.fill_null(pc.cast(encoded.indices, pa.int32()), len(names))
 for non-negative values the deviation of the element.s sums; with mixed signs    values.append([*names, None])
 for non-negative values the deviation of the element.s sums; with mixed signscolumns["b"] = _numbers(leaves[baseline])
 for non-negative values the deviation of the element.s sums; with mixed signscolumns["c"] = _numbers(leaves[current])
 for non-negative values the deviation of the element.s sums; with mixed signsreturn pa.table(columns), values


# --------------------------------------------------------------------------- leaves


def _deviation(b, c, size) -> pa.Array:
 for non-negative values the deviation of the element.s sums; with mixed signs"""``(c - b) / size``, and 0 where the size is 0 (nothing in either period: no change)."""
 for non-negative values the deviation of the element.s sums; with mixed signsinformative = pc.greater(size, 0.0)
 for non-negative values the deviation of the element.s sums; with mixed signsreturn pc.if_else(informative, pc.divide(pc.subtract(c, b), _positive(size)), 0.0)


def _positive(values) -> pa.Array:
 for non-negative values the deviation of the element.s sums; with mixed signs"""The values with every non-positive one replaced by 1, to divide by safely."""
 for non-negative values the deviation of the element.s sums; with mixed signsreturn pc.if_else(pc.greater(values, 0.0), values, 1.0)


def _noise(work: pa.Table) -> _Noise | None:
 for non-negative values the deviation of the element.s sums; with mixed signs"""The trend and the noise model of the leaves' deviations.

 for non-negative values the deviation of the element.s sums; with mixed signsThe noise of a relative change depends on the size of what changed: for counts (Poisson) its variance
 for non-negative values the deviation of the element.s sums; with mixed signsfalls as 1 / size, for amounts with a steady coefficient of variation it does not depend on size; in
 for non-negative values the deviation of the element.s sums; with mixed signsbetween (Taylor's power law with exponent 1..2) it falls as size ** power with -1 <= power <= 0. The
 for non-negative values the deviation of the element.s sums; with mixed signspower comes from the regression of log squared departures on log size (Harvey's multiplicative
 for non-negative values the deviation of the element.s sums; with mixed signsheteroscedasticity), clamped to that range; the scale is then a robust standard deviation (1.4826 × the
 for non-negative values the deviation of the element.s sums; with mixed signsmedian absolute departure) of the departures brought to the typical size.

 for non-negative values the deviation of the element.s sums; with mixed signsReturns ``None`` when no leaf has data in either period.
 for non-negative values the deviation of the element.s sums; with mixed signs"""
 for non-negative values the deviation of the element.s sums; with mixed signsb, c = work["b"], work["c"]
 for non-negative values the deviation of the element.s sums; with mixed signssize = pc.max_element_wise(pc.abs(b), pc.abs(c))
 for non-negative values the deviation of the element.s sums; with mixed signsinformative = pc.greater(size, 0.0)
 for non-negative values the deviation of the element.s sums; with mixed signsdeviation = pc.filter(_deviation(b, c, size), informative)
 for non-negative values the deviation of the element.s sums; with mixed signsif len(deviation) == 0:
 for non-negative values the deviation of the element.s sums; with mixed signs    return None  # every value is 0 in both periods: nothing changed
 for non-negative values the deviation of the element.s sums; with mixed signssize = pc.filter(size, informative)
 for non-negative values the deviation of the element.s sums; with mixed signstrend = pc.quantile(deviation, 0.5)[0].as_py()
 for non-negative values the deviation of the element.s sums; with mixed signstypical = pc.quantile(size, 0.5)[0].as_py()
 for non-negative values the deviation of the element.s sums; with mixed signsdeparture = pc.abs(pc.subtract(deviation, trend))
 for non-negative values the deviation of the element.s sums; with mixed signslog_size = pc.ln(pc.divide(size, typical))
 for non-negative values the deviation of the element.s sums; with mixed signsn = len(deviation)
 for non-negative values the deviation of the element.s sums; with mixed signsbound = NormalDist().inv_cdf(1.0 - ALPHA / (2.0 * n))
 for non-negative values the deviation of the element.s sums; with mixed signs# Fit the power, set aside the leaves that are outliers under the fit (a Bonferroni bound over the
 for non-negative values the deviation of the element.s sums; with mixed signs# leaves), fit again on the rest, until that set stops changing: root causes must not shape the noise
 for non-negative values the deviation of the element.s sums; with mixed signs# model. The cap only bounds the work; the set settles in two or three rounds.
 for non-negative values the deviation of the element.s sums; with mixed signs# Counts (whole numbers, none negative) have a known variance law: a count's sampling variance is at least
 for non-negative values the deviation of the element.s sums; with mixed signs# its mean (Poisson), so the deviation's variance falls as 1 / size (power -1). On few leaves the fitted
 for non-negative values the deviation of the element.s sums; with mixed signs# slope says little (a cause whose leaves are the biggest ones fills the top size bins and flattens it),
 for non-negative values the deviation of the element.s sums; with mixed signs# so for counts the Poisson law is the null hypothesis and the fitted power replaces it only when it
 for non-negative values the deviation of the element.s sums; with mixed signs# departs from -1 by more than its standard error allows at the ALPHA level (e.g. amounts in whole
 for non-negative values the deviation of the element.s sums; with mixed signs# currency units, whose noise does not fall with size: thousands of leaves make that plain).
 for non-negative values the deviation of the element.s sums; with mixed signscounts = _whole(b) and _whole(c)
 for non-negative values the deviation of the element.s sums; with mixed signsnormal = pc.greater_equal(departure, 0.0)
 for non-negative values the deviation of the element.s sums; with mixed signsfor _ in range(FIT_ROUNDS):
 for non-negative values the deviation of the element.s sums; with mixed signs    power = _power(pc.filter(log_size, normal), pc.filter(departure, normal), counts)
 for non-negative values the deviation of the element.s sums; with mixed signs    scaled = pc.divide(departure, pc.exp(pc.multiply(log_size, power / 2.0)))
 for non-negative values the deviation of the element.s sums; with mixed signs    clipped = MAD_TO_SIGMA * pc.quantile(pc.filter(scaled, normal), 0.5)[0].as_py()
 for non-negative values the deviation of the element.s sums; with mixed signs    inside = pc.less_equal(scaled, bound * clipped)
 for non-negative values the deviation of the element.s sums; with mixed signs    if pc.all(pc.equal(inside, normal)).as_py():
 for non-negative values the deviation of the element.s sums; with mixed signs        break
 for non-negative values the deviation of the element.s sums; with mixed signs    normal = inside
 for non-negative values the deviation of the element.s sums; with mixed signs# The scale itself comes from all the leaves: the median absolute departure already ignores a minority of
 for non-negative values the deviation of the element.s sums; with mixed signs# root-cause leaves, while a scale taken after clipping would come out too small on a handful of leaves.
 for non-negative values the deviation of the element.s sums; with mixed signs# n / (n - 0.8) is Croux & Rousseeuw's small-sample correction of the MAD (it fades out as n grows).
 for non-negative values the deviation of the element.s sums; with mixed signssigma = MAD_TO_SIGMA * pc.quantile(scaled, 0.5)[0].as_py() * n / (n - 0.8)
 for non-negative values the deviation of the element.s sums; with mixed signsreturn _Noise(trend=trend, sigma=max(sigma, SIGMA_FLOOR), typical=typical, power=power, counts=counts)


def _whole(values: pa.Array) -> bool:
 for non-negative values the deviation of the element.s sums; with mixed signs"""Whether every value is a whole number and none is negative: counts."""
 for non-negative values the deviation of the element.s sums; with mixed signsreturn bool(pc.all(pc.and_(pc.equal(values, pc.floor(values)), pc.greater_equal(values, 0.0))).as_py())


def _power(log_size: pa.Array, departure: pa.Array, counts: bool = False) -> float:
 for non-negative values the deviation of the element.s sums; with mixed signs"""The slope of log squared departure on log size, in [-1, 0]; 0 when it cannot be told.

 for non-negative values the deviation of the element.s sums; with mixed signsFor counts the answer is -1 (Poisson) unless the slope departs from it significantly (two-sided, ALPHA,
 for non-negative values the deviation of the element.s sums; with mixed signswith the regression's standard error over the bins); when the slope cannot be told it stays -1.

 for non-negative values the deviation of the element.s sums; with mixed signsRoot causes put big departures among the normal ones, so the slope is fitted, robustly, through the
 for non-negative values the deviation of the element.s sums; with mixed signsmedians of equal-count bins of leaves sorted by size: √n bins of √n leaves (the square-root rule). A bin's
 for non-negative values the deviation of the element.s sums; with mixed signsmedian departure ignores its anomalous leaves while they are fewer than half of it.
 for non-negative values the deviation of the element.s sums; with mixed signs"""
 for non-negative values the deviation of the element.s sums; with mixed signsdefault = -1.0 if counts else 0.0
 for non-negative values the deviation of the element.s sums; with mixed signsn = len(log_size)
 for non-negative values the deviation of the element.s sums; with mixed signsbins = math.isqrt(n)
 for non-negative values the deviation of the element.s sums; with mixed signsif bins < 3:
 for non-negative values the deviation of the element.s sums; with mixed signs    return default
 for non-negative values the deviation of the element.s sums; with mixed signsrank = pc.subtract(pc.rank(log_size, sort_keys="ascending", tiebreaker="first"), 1)
 for non-negative values the deviation of the element.s sums; with mixed signsbinned = pa.table({"bin": pc.divide(pc.multiply(pc.cast(rank, pa.int64()), bins), n),
 for non-negative values the deviation of the element.s sums; with mixed signs                   "x": log_size, "r": departure})
 for non-negative values the deviation of the element.s sums; with mixed signsmedians = binned.group_by("bin", use_threads=False).aggregate([("x", "mean"), ("r", "approximate_median")])
 for non-negative values the deviation of the element.s sums; with mixed signsusable = medians.filter(pc.greater(medians["r_approximate_median"], 0.0))
 for non-negative values the deviation of the element.s sums; with mixed signsif usable.num_rows < 3:
 for non-negative values the deviation of the element.s sums; with mixed signs    return default
 for non-negative values the deviation of the element.s sums; with mixed signsx = usable["x_mean"]
 for non-negative values the deviation of the element.s sums; with mixed signsy = pc.multiply(pc.ln(usable["r_approximate_median"]), 2.0)
 for non-negative values the deviation of the element.s sums; with mixed signsdx = pc.subtract(x, pc.mean(x).as_py())
 for non-negative values the deviation of the element.s sums; with mixed signsspread = _sum(pc.multiply(dx, dx))
 for non-negative values the deviation of the element.s sums; with mixed signsif not spread > 0:
 for non-negative values the deviation of the element.s sums; with mixed signs    return default
 for non-negative values the deviation of the element.s sums; with mixed signsdy = pc.subtract(y, pc.mean(y).as_py())
 for non-negative values the deviation of the element.s sums; with mixed signsslope = _sum(pc.multiply(dx, dy)) / spread
 for non-negative values the deviation of the element.s sums; with mixed signsif not math.isfinite(slope):
 for non-negative values the deviation of the element.s sums; with mixed signs    return default
 for non-negative values the deviation of the element.s sums; with mixed signsif counts:
 for non-negative values the deviation of the element.s sums; with mixed signs    residual = pc.subtract(dy, pc.multiply(dx, slope))
 for non-negative values the deviation of the element.s sums; with mixed signs    error = math.sqrt(_sum(pc.multiply(residual, residual)) / (usable.num_rows - 2) / spread)
 for non-negative values the deviation of the element.s sums; with mixed signs    if abs(slope - default) <= NormalDist().inv_cdf(1.0 - ALPHA / 2.0) * error:
 for non-negative values the deviation of the element.s sums; with mixed signs        return default
 for non-negative values the deviation of the element.s sums; with mixed signsreturn min(0.0, max(-1.0, slope))


def _describe(work: pa.Table, noise: _Noise) -> pa.Table:
 for non-negative values the deviation of the element.s sums; with mixed signs"""Add each leaf's size ``s``, deviation ``d``, weight ``w``, ``wx = w |d - trend|`` and ``v``, the variance
 for non-negative values the deviation of the element.s sums; with mixed signsof ``s × d`` under noise alone."""
 for non-negative values the deviation of the element.s sums; with mixed signssize = pc.max_element_wise(pc.abs(work["b"]), pc.abs(work["c"]))
 for non-negative values the deviation of the element.s sums; with mixed signsdeviation = _deviation(work["b"], work["c"], size)
 for non-negative values the deviation of the element.s sums; with mixed signsweight = pc.divide(size, pc.add(size, noise.typical))
 for non-negative values the deviation of the element.s sums; with mixed signsrelative = pc.divide(size, noise.typical)
 for non-negative values the deviation of the element.s sums; with mixed signsvariance = pc.multiply(pc.multiply(size, size),
 for non-negative values the deviation of the element.s sums; with mixed signs                       pc.multiply(noise.sigma ** 2, pc.power(_positive(relative), noise.power)))
 for non-negative values the deviation of the element.s sums; with mixed signsreturn (work.append_column("s", size)
 for non-negative values the deviation of the element.s sums; with mixed signs        .append_column("v", pc.if_else(pc.greater(size, 0.0), variance, 0.0))
 for non-negative values the deviation of the element.s sums; with mixed signs        .append_column("d", deviation)
 for non-negative values the deviation of the element.s sums; with mixed signs        .append_column("w", weight)
 for non-negative values the deviation of the element.s sums; with mixed signs        .append_column("wx", pc.multiply(weight, pc.abs(pc.subtract(deviation, noise.trend)))))


# --------------------------------------------------------------------------- search


def _next_layer(remaining: pa.Table, n_dims: int, noise: _Noise, chosen: list[_Candidate],
 for non-negative values the deviation of the element.s sums; with mixed signs            room: int) -> list[_Candidate]:
 for non-negative values the deviation of the element.s sums; with mixed signs"""The acceptable elements of the first layer that has any, largest change first, none overlapping."""
 for non-negative values the deviation of the element.s sums; with mixed signsfor layer in range(1, n_dims + 1):
 for non-negative values the deviation of the element.s sums; with mixed signs    summaries = [(cuboid, _summarise(remaining, cuboid)) for cuboid in combinations(range(n_dims), layer)]
 for non-negative values the deviation of the element.s sums; with mixed signs    # Bonferroni over the layers and over each layer's elements that hold data: on pure noise, no element
 for non-negative values the deviation of the element.s sums; with mixed signs    # of the whole search passes, but with probability ALPHA.
 for non-negative values the deviation of the element.s sums; with mixed signs    tested = sum(pc.sum(pc.greater(groups["s_sum"], 0.0)).as_py() or 0 for _, groups in summaries)
 for non-negative values the deviation of the element.s sums; with mixed signs    bound = NormalDist().inv_cdf(1.0 - ALPHA / (2.0 * n_dims * max(tested, 1)))
 for non-negative values the deviation of the element.s sums; with mixed signs    found = []
 for non-negative values the deviation of the element.s sums; with mixed signs    for cuboid, groups in summaries:
 for non-negative values the deviation of the element.s sums; with mixed signs        found.extend(c for c in _candidates(remaining, cuboid, groups, noise, bound)
 for non-negative values the deviation of the element.s sums; with mixed signs                     if not any(_nested(c, o) for o in chosen))
 for non-negative values the deviation of the element.s sums; with mixed signs    if not found:
 for non-negative values the deviation of the element.s sums; with mixed signs        continue
 for non-negative values the deviation of the element.s sums; with mixed signs    found.sort(key=lambda c: -abs(c.change))
 for non-negative values the deviation of the element.s sums; with mixed signs    picked: list[_Candidate] = []
 for non-negative values the deviation of the element.s sums; with mixed signs    for cand in found:
 for non-negative values the deviation of the element.s sums; with mixed signs        # Two elements of one layer may share leaves; the second waits for the next pass, which judges
 for non-negative values the deviation of the element.s sums; with mixed signs        # it without the leaves the first one explains.
 for non-negative values the deviation of the element.s sums; with mixed signs        if len(picked) < room and not any(_may_overlap(cand, p) for p in picked):
 for non-negative values the deviation of the element.s sums; with mixed signs            picked.append(cand)
 for non-negative values the deviation of the element.s sums; with mixed signs    return picked
 for non-negative values the deviation of the element.s sums; with mixed signsreturn []


def _summarise(remaining: pa.Table, cuboid: tuple[int, ...]) -> pa.Table:
 for non-negative values the deviation of the element.s sums; with mixed signskeys = [f"k{i}" for i in cuboid]
 for non-negative values the deviation of the element.s sums; with mixed signsreturn remaining.group_by(keys, use_threads=False).aggregate(
 for non-negative values the deviation of the element.s sums; with mixed signs    [("b", "sum"), ("c", "sum"), ("s", "sum"), ("v", "sum"), ("w", "sum")])


def _candidates(remaining: pa.Table, cuboid: tuple[int, ...], groups: pa.Table, noise: _Noise,
 for non-negative values the deviation of the element.s sums; with mixed signs            bound: float) -> list[_Candidate]:
 for non-negative values the deviation of the element.s sums; with mixed signs"""The acceptable elements of one cuboid (see the module's docstring for the three tests)."""
 for non-negative values the deviation of the element.s sums; with mixed signskeys = [f"k{i}" for i in cuboid]
 for non-negative values the deviation of the element.s sums; with mixed signssize = groups["s_sum"]
 for non-negative values the deviation of the element.s sums; with mixed signs# The element's deviation is the size-weighted mean of its leaves' deviations, (C - B) / Σ max(|b|, |c|):
 for non-negative values the deviation of the element.s sums; with mixed signs# for non-negative values the deviation of the element's sums; with mixed signs it stays a relative
 for non-negative values the deviation of the element.s sums; with mixed signs# change of the leaves' own magnitude instead of exploding where the sums cancel.
 for non-negative values the deviation of the element.s sums; with mixed signsdeviation = _deviation(groups["b_sum"], groups["c_sum"], size)
 for non-negative values the deviation of the element.s sums; with mixed signsdeparture = pc.subtract(deviation, noise.trend)
 for non-negative values the deviation of the element.s sums; with mixed signs# Being that weighted mean, its noise is sqrt(Σ s² σ²) / Σ s: with equal leaf noise, the leaves' noise
 for non-negative values the deviation of the element.s sums; with mixed signs# over the square root of their effective number (Kish).
 for non-negative values the deviation of the element.s sums; with mixed signsspread = pc.divide(pc.sqrt(groups["v_sum"]), _positive(size))
 for non-negative values the deviation of the element.s sums; with mixed signssignificant = pc.and_(pc.greater(size, 0.0), pc.greater(pc.abs(departure), pc.multiply(spread, bound)))
 for non-negative values the deviation of the element.s sums; with mixed signsif not pc.any(significant).as_py():
 for non-negative values the deviation of the element.s sums; with mixed signs    return []
 for non-negative values the deviation of the element.s sums; with mixed signsgroups = groups.append_column("D", deviation).append_column("X", departure).filter(significant)

 for non-negative values the deviation of the element.s sums; with mixed signs# Support and ripple: which leaves sit nearer the element's deviation than the trend; how far the
 for non-negative values the deviation of the element.s sums; with mixed signs# leaves sit from the element's deviation against how far they sit from the trend.
 for non-negative values the deviation of the element.s sums; with mixed signsjoined = remaining.select([*keys, "d", "s", "v", "w", "wx"]).join(
 for non-negative values the deviation of the element.s sums; with mixed signs    groups.select([*keys, "D", "X", "s_sum", "v_sum"]), keys=keys, join_type="inner", use_threads=False)
 for non-negative values the deviation of the element.s sums; with mixed signsd, weight, x = joined["d"], joined["w"], joined["X"]
 for non-negative values the deviation of the element.s sums; with mixed signstoward = pc.multiply(pc.subtract(d, noise.trend), pc.sign(x))
 for non-negative values the deviation of the element.s sums; with mixed signsnear = pc.greater(toward, pc.divide(pc.abs(x), 2.0))
 for non-negative values the deviation of the element.s sums; with mixed signs# Even a true cause leaves its leaves' noise around its common change: the part of Σ w |d - D| that noise
 for non-negative values the deviation of the element.s sums; with mixed signs# alone gives, Σ w E|d - D| = Σ w √(2/π) sd(d - D), is not held against the ripple effect. With the
 for non-negative values the deviation of the element.s sums; with mixed signs# weights h = s / Σs of the element's mean, var(d - D) = (1 - 2h) σ² + Σ h² σ² (σ² = v / s² a leaf's
 for non-negative values the deviation of the element.s sums; with mixed signs# noise, the last term the element's own); a single leaf gives 0. Where noise is small against the
 for non-negative values the deviation of the element.s sums; with mixed signs# changes (B0's 1 %) this is next to nothing; on noisy counts it keeps a cause from failing for noise.
 for non-negative values the deviation of the element.s sums; with mixed signsshare = pc.divide(joined["s"], _positive(joined["s_sum"]))
 for non-negative values the deviation of the element.s sums; with mixed signsown = pc.divide(joined["v"], _positive(pc.multiply(joined["s"], joined["s"])))
 for non-negative values the deviation of the element.s sums; with mixed signsmean = pc.divide(joined["v_sum"], _positive(pc.multiply(joined["s_sum"], joined["s_sum"])))
 for non-negative values the deviation of the element.s sums; with mixed signsvariance = pc.add(pc.multiply(pc.subtract(1.0, pc.multiply(share, 2.0)), own), mean)
 for non-negative values the deviation of the element.s sums; with mixed signsexpected = pc.multiply(math.sqrt(2.0 / math.pi), pc.sqrt(pc.max_element_wise(variance, 0.0)))
 for non-negative values the deviation of the element.s sums; with mixed signsjoined = (joined.append_column("ws", pc.if_else(near, weight, 0.0))
 for non-negative values the deviation of the element.s sums; with mixed signs          .append_column("wr", pc.multiply(weight, pc.abs(pc.subtract(d, joined["D"]))))
 for non-negative values the deviation of the element.s sums; with mixed signs          .append_column("wn", pc.multiply(weight, expected))
 for non-negative values the deviation of the element.s sums; with mixed signs          .append_column("wm", pc.multiply(weight, pc.multiply(math.sqrt(2.0 / math.pi), pc.sqrt(own)))))
 for non-negative values the deviation of the element.s sums; with mixed signsjudged = joined.group_by(keys, use_threads=False).aggregate(
 for non-negative values the deviation of the element.s sums; with mixed signs    [("ws", "sum"), ("wr", "sum"), ("wn", "sum"), ("wm", "sum"), ("wx", "sum")])
 for non-negative values the deviation of the element.s sums; with mixed signsgroups = groups.join(judged, keys=keys, join_type="inner", use_threads=False)
 for non-negative values the deviation of the element.s sums; with mixed signssupport = pc.divide(groups["ws_sum"], _positive(groups["w_sum"]))
 for non-negative values the deviation of the element.s sums; with mixed signsunexplained = pc.max_element_wise(pc.subtract(groups["wr_sum"], groups["wn_sum"]), 0.0)
 for non-negative values the deviation of the element.s sums; with mixed signsbeyond = pc.subtract(groups["wx_sum"], groups["wm_sum"])
 for non-negative values the deviation of the element.s sums; with mixed signsconsistency = pc.if_else(pc.greater(beyond, 0.0),
 for non-negative values the deviation of the element.s sums; with mixed signs                         pc.subtract(1.0, pc.divide(unexplained, _positive(beyond))), 0.0)
 for non-negative values the deviation of the element.s sums; with mixed signsaccept = pc.and_(pc.greater(support, MAJORITY), pc.greater(consistency, MAJORITY))
 for non-negative values the deviation of the element.s sums; with mixed signsgroups = groups.append_column("S", support).append_column("K", consistency).filter(accept)

 for non-negative values the deviation of the element.s sums; with mixed signsrows = groups.select([*keys, "b_sum", "c_sum", "S", "K"]).to_pylist()
 for non-negative values the deviation of the element.s sums; with mixed signsreturn [_Candidate(cuboid=cuboid, codes=tuple(row[k] for k in keys), change=row["c_sum"] - row["b_sum"],
 for non-negative values the deviation of the element.s sums; with mixed signs                   score=row["S"] * row["K"], bound=bound) for row in rows]


def _pairs(cand: _Candidate) -> dict[int, int]:
 for non-negative values the deviation of the element.s sums; with mixed signsreturn dict(zip(cand.cuboid, cand.codes))


def _nested(one: _Candidate, other: _Candidate) -> bool:
 for non-negative values the deviation of the element.s sums; with mixed signsa, b = _pairs(one).items(), _pairs(other).items()
 for non-negative values the deviation of the element.s sums; with mixed signsreturn a <= b or b <= a


def _may_overlap(one: _Candidate, other: _Candidate) -> bool:
 for non-negative values the deviation of the element.s sums; with mixed signsa, b = _pairs(one), _pairs(other)
 for non-negative values the deviation of the element.s sums; with mixed signsreturn all(a[k] == b[k] for k in a.keys() & b.keys())


def _mask(table: pa.Table, cand: _Candidate) -> pa.Array:
 for non-negative values the deviation of the element.s sums; with mixed signsmask = None
 for non-negative values the deviation of the element.s sums; with mixed signsfor dim, code in zip(cand.cuboid, cand.codes):
 for non-negative values the deviation of the element.s sums; with mixed signs    match = pc.equal(table[f"k{dim}"], code)
 for non-negative values the deviation of the element.s sums; with mixed signs    mask = match if mask is None else pc.and_(mask, match)
 for non-negative values the deviation of the element.s sums; with mixed signsreturn mask


def _succinct(work: pa.Table, chosen: list[_Candidate], noise: _Noise) -> list[_Candidate]:
 for non-negative values the deviation of the element.s sums; with mixed signs"""Drop the elements that the others make redundant, smallest change first.

 for non-negative values the deviation of the element.s sums; with mixed signsAn element stays when, on its leaves outside the other elements, it still passes the tests it passed
 for non-negative values the deviation of the element.s sums; with mixed signswhen it was found. A coarse element found early can owe its shift to a leaf or two of a finer root cause
 for non-negative values the deviation of the element.s sums; with mixed signsfound later (typically where most of its leaves are zero); without those leaves it is noise.
 for non-negative values the deviation of the element.s sums; with mixed signs"""
 for non-negative values the deviation of the element.s sums; with mixed signsif len(chosen) < 2:
 for non-negative values the deviation of the element.s sums; with mixed signs    return chosen
 for non-negative values the deviation of the element.s sums; with mixed signsmasks = [_mask(work, cand) for cand in chosen]
 for non-negative values the deviation of the element.s sums; with mixed signskept = list(range(len(chosen)))
 for non-negative values the deviation of the element.s sums; with mixed signsfor i in sorted(kept, key=lambda i: abs(chosen[i].change)):
 for non-negative values the deviation of the element.s sums; with mixed signs    alone = masks[i]
 for non-negative values the deviation of the element.s sums; with mixed signs    for j in kept:
 for non-negative values the deviation of the element.s sums; with mixed signs        if j != i:
 for non-negative values the deviation of the element.s sums; with mixed signs            alone = pc.and_(alone, pc.invert(masks[j]))
 for non-negative values the deviation of the element.s sums; with mixed signs    rest = work.filter(alone)
 for non-negative values the deviation of the element.s sums; with mixed signs    cand = chosen[i]
 for non-negative values the deviation of the element.s sums; with mixed signs    if not _candidates(rest, cand.cuboid, _summarise(rest, cand.cuboid), noise, cand.bound):
 for non-negative values the deviation of the element.s sums; with mixed signs        kept.remove(i)
 for non-negative values the deviation of the element.s sums; with mixed signsreturn [chosen[i] for i in kept]


def _sum(values) -> float:
 for non-negative values the deviation of the element.s sums; with mixed signsreturn pc.sum(values).as_py() or 0.0


# --------------------------------------------------------------------------- output


def _element(work: pa.Table, cand: _Candidate, dims: list[str], values: list[list], total: float) -> Element:
 for non-negative values the deviation of the element.s sums; with mixed signsinside = work.filter(_mask(work, cand))
 for non-negative values the deviation of the element.s sums; with mixed signsbaseline, current = _sum(inside["b"]), _sum(inside["c"])
 for non-negative values the deviation of the element.s sums; with mixed signschange = current - baseline
 for non-negative values the deviation of the element.s sums; with mixed signsshare = change / total if total != 0 and math.isfinite(change / total) else 0.0
 for non-negative values the deviation of the element.s sums; with mixed signswhere = {dims[i]: values[i][code] for i, code in sorted(zip(cand.cuboid, cand.codes))}
 for non-negative values the deviation of the element.s sums; with mixed signsreturn Element(where=where, baseline=baseline, current=current, change=change, share=share,
 for non-negative values the deviation of the element.s sums; with mixed signs               leaves=inside.num_rows, score=cand.score)
