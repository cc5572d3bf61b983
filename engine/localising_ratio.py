"""Root-cause localisation of a ratio KPI (conversion, average order value, open rate, stall ratio).

A ratio ``R = Σ n / Σ d`` over the leaves moves for two reasons: a segment's own ratio ``r = n / d`` moved
(the *rate*), or its weight ``w = d / Σ d`` in the denominator moved (the *mix*: more traffic from a segment
whose ratio is below the average lowers the average, though no segment got worse). The change splits
exactly into the two, segment by segment (the midpoint, or Shapley, split of a product):

    ΔR = Σ w̄ₛ (r₁ₛ - r₀ₛ)  +  Σ (w₁ₛ - w₀ₛ) (r̄ₛ - R̄)        (w̄, r̄, R̄: means of the two periods)
         rate effect           mix effect

Only a segment whose own ratio moved is a root cause. `localise_ratio` therefore localises the rate: each
leaf's current numerator is compared with what its baseline ratio gives at its current denominator,
``r₀ₛ · d₁ₛ → n₁ₛ`` — an additive problem whose change is ``(r₁ₛ - r₀ₛ) d₁ₛ``, zero for a pure volume shift —
with the search of `metrictree.localising.localise` (same tests, same coarsest-first layers, so a cause is
named at the coarsest element that explains it, not at a sub-segment). A leaf without a baseline
denominator (a new segment) is judged against the whole's baseline ratio. Leaves are sized by their
denominator when the ratio is a proportion, so the rate is judged on its own scale (absolute rate changes)
and a ratio and its complement (success and stall ratio) give the same answer; any other ratio (an average
basket) is judged like a sum, by its relative change, since a cause cuts a segment's baskets by about one
proportion, large baskets by more euros than small ones. When the ratio is a proportion (``0 <= n <= d``), each
leaf's noise is at least binomial, scaled by the quasi-binomial dispersion of the leaves the first search
leaves unexplained when they vary more than binomially (real sessions are not independent draws), and the
search runs again with it, from the trend the first search settled on. Segments whose volume moved out
of line with the rest (the same search on the denominator) but that are no rate cause are reported apart,
as `Localisation.mix`, with their mix effect: a traffic shift is never named as a cause.

Elements of a ratio carry: ``baseline``, ``current``, ``change`` — the element's numerator in the two periods
and its change; ``rate_baseline``, ``rate_current`` — its own ratio; ``rate_effect``, ``mix_effect`` — its
parts of the ratio's change (sums over its leaves of the terms above); ``share`` — its rate effect (for a
mix element its mix effect) over the ratio's change.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import pyarrow as pa
import pyarrow.compute as pc

from .errors import UsageError, error
from .localising import (
    Element,
    Localisation,
    _Candidate,
    _check,
    _conclude,
    _float,
    _history,
    _mask,
    _nested,
    _numbers,
    _run,
    _sum,
)

__all__ = ["localise_ratio"]

# The median of the χ² distribution with one degree of freedom.
CHI2_MEDIAN = 0.454936423119572


def localise_ratio(leaves: pa.Table, dims: Sequence[str], numerator: tuple[str, str], denominator: tuple[str, str],
                   max_elements: int | None = None, *,
                   history: Sequence[tuple[pa.Array, pa.Array]] | None = None) -> Localisation:
    """Name the elements whose own ratio moved, and apart from them those whose weight moved the ratio.

    Args:
        leaves: one row per leaf segment: the columns `dims` and the numerator and denominator in both periods.
        dims: the dimensions to search (as in `localise`).
        numerator: the names of the numerator's baseline and current columns.
        denominator: the names of the denominator's baseline and current columns.
        max_elements: an optional cap on the root causes (and, apart, on the mix elements).
        history: optional earlier periods, oldest first, each a pair of arrays (numerator, denominator)
            aligned row by row with `leaves` (null: no data); a leaf's own ratio's period-to-period variation
            there widens its noise, as in `localise`.

    Returns:
        A `Localisation` whose `elements` are the rate causes, largest rate effect first, and whose `mix`
        holds the segments whose weight moved the ratio while their own ratio did not.

    Raises:
        UsageError: a named column is missing or not numeric, `dims` is empty, `max_elements` negative, or a
            history period is not a pair of arrays matching the leaves.
    """
    n0_name, n1_name = numerator
    d0_name, d1_name = denominator
    dims = _check(leaves, dims, [n0_name, n1_name, d0_name, d1_name], max_elements)
    n0, n1 = _numbers(leaves[n0_name]), _numbers(leaves[n1_name])
    d0, d1 = _numbers(leaves[d0_name]), _numbers(leaves[d1_name])
    total0, total1 = _sum(d0), _sum(d1)
    if total0 == 0 or total1 == 0:
        which = "baseline" if total0 == 0 else "current"
        return Localisation(reason=f"the ratio has no value in the {which} period: its denominator is 0 there")
    ratio0, ratio1 = _sum(n0) / total0, _sum(n1) / total1
    rate0 = _rate(n0, d0, ratio0)
    steps = _steps(leaves, history, (_float(leaves[n0_name]), _float(leaves[d0_name])), ratio0)

    expected = pc.multiply(rate0, d1)
    floor = _binomial(n0, n1, d0, d1, ratio0)
    # A proportion's leaves are sized by their denominator: its changes are judged in rate points, so that it
    # and its complement (success and stall ratio) agree. Any other ratio (an average basket) is judged, like
    # a sum, by its relative change: a cause cuts the baskets of its segments by about one proportion, large
    # baskets by more euros than small ones.
    size = d1
    if floor is None:
        size = None
        steps = [step[:2] for step in steps] if steps else steps
    found = _run(leaves, dims, expected, n1, max_elements, steps, floor, size=size)
    if isinstance(found, Localisation):
        return found
    work, chosen, values, trend = found
    dispersion = _dispersion(work, chosen, floor)
    if dispersion > 1.0:
        # Sessions, visits, orders are not independent draws: the leaves the causes leave unexplained vary
        # more than binomially. With the floor scaled by that dispersion (quasi-binomial), search again. The
        # dispersion widens the noise only: the search starts from the trend the first one settled on (which
        # may be the change of the rest of the leaves outside a large cause, not the median leaf's).
        again = _run(leaves, dims, expected, n1, max_elements, steps, pc.multiply(floor, dispersion), size=size,
                     trend=trend)
        if not isinstance(again, Localisation):
            work, chosen, values, _ = again
    parts = _Parts(n0, n1, d0, d1, total0, total1, ratio0, ratio1)
    change = ratio1 - ratio0
    causes = sorted((_ratio_element(work, cand, dims, values, parts, change, "rate") for cand in chosen),
                    key=lambda e: -abs(e.rate_effect))
    mix = _mix(leaves, dims, d0, d1, max_elements, chosen, parts, change)
    # Whether the rate moved everywhere alike is judged in the rate problem's own terms (r₀·d₁ → n₁).
    return _conclude(work, chosen, tuple(causes), _sum(work["c"]) - _sum(work["b"]), dims, mix=tuple(mix))


def _binomial(n0: pa.Array, n1: pa.Array, d0: pa.Array, d1: pa.Array, ratio0: float) -> pa.Array | None:
    """When the ratio is a proportion (0 <= n <= d everywhere: conversions of visits, sessions without a
    stall), each leaf's sampling variance of ``n₁ - r₀ d₁``: ``p (1 - p) (d₁ + d₁² / d₀)``, the binomial
    variance of the current count and of the baseline rate (none for a leaf without a baseline, judged
    against the whole's rate). ``p`` is the leaf's rate over both periods with Jeffreys' half a success and
    half a failure added, so that a leaf that never failed still has some noise. ``None`` for other ratios
    (an average order value), whose noise comes from the data alone."""
    inside = pc.and_(pc.and_(pc.greater_equal(n0, 0.0), pc.less_equal(n0, d0)),
                     pc.and_(pc.greater_equal(n1, 0.0), pc.less_equal(n1, d1)))
    if not pc.all(inside).as_py():
        return None
    p = pc.divide(pc.add(pc.add(n0, n1), 0.5), pc.add(pc.add(d0, d1), 1.0))
    spread = pc.multiply(p, pc.subtract(1.0, p))
    baseline = pc.if_else(pc.greater(d0, 0.0), pc.divide(pc.multiply(d1, d1), pc.if_else(pc.greater(d0, 0.0), d0, 1.0)),
                          0.0)
    return pc.multiply(spread, pc.add(d1, baseline))


def _dispersion(work: pa.Table, chosen: list[_Candidate], floor: pa.Array | None) -> float:
    """The quasi-binomial dispersion of the leaves outside the elements: the median of their squared
    Pearson residuals ``(n₁ - r₀ d₁)² / binomial variance``, each leaf weighing by its denominator (a session
    counts once, whatever leaf it falls in), over the median of χ²₁. 1 when there is no binomial floor."""
    if floor is None:
        return 1.0
    table = work.append_column("__floor", pc.fill_null(floor, 0.0))
    for cand in chosen:
        table = table.filter(pc.invert(_mask(table, cand)))
    table = table.filter(pc.and_(pc.greater(table["__floor"], 0.0), pc.greater(table["s"], 0.0)))
    if table.num_rows == 0:
        return 1.0
    change = pc.subtract(table["c"], table["b"])
    pearson = pc.divide(pc.multiply(change, change), table["__floor"])
    order = pc.sort_indices(pearson)
    weights = pc.take(table["s"], order)
    cumulative = pc.cumulative_sum(weights)
    half = _sum(weights) / 2.0
    index = pc.index(pc.greater_equal(cumulative, half), True).as_py()
    return pc.take(pearson, order)[index].as_py() / CHI2_MEDIAN


def _rate(n: pa.Array, d: pa.Array, fallback: float) -> pa.Array:
    """Each leaf's ratio ``n / d``, and `fallback` where it has no denominator."""
    has = pc.greater(d, 0.0)
    return pc.if_else(has, pc.divide(n, pc.if_else(has, d, 1.0)), fallback)


def _steps(leaves: pa.Table, history, baseline: tuple[pa.Array, pa.Array],
           ratio0: float) -> list[tuple[pa.Array, pa.Array, pa.Array]] | None:
    """The history's period-to-period steps of the rate problem: ``(rₜ · dₜ₊₁, nₜ₊₁, dₜ₊₁)``, the last one
    into the baseline."""
    if history is None:
        return None
    pairs = []
    for i, pair in enumerate(history):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise UsageError(error(f"history period {i + 1} is not a (numerator, denominator) pair",
                                   hint="pass one pair of arrays per earlier period, aligned with the leaves"))
        pairs.append(tuple(_history(leaves, pair)))
    if not pairs:
        return None
    series = [*pairs, baseline]
    steps = []
    for (n_before, d_before), (n_after, d_after) in pairwise(series):
        steps.append(_step(n_before, d_before, n_after, d_after, ratio0))
    return steps or None


def _step(n_before, d_before, n_after, d_after, fallback: float) -> tuple[pa.Array, pa.Array, pa.Array]:
    valid = pc.and_(pc.is_valid(n_before), pc.is_valid(d_before))
    rate = _rate(pc.fill_null(n_before, 0.0), pc.fill_null(d_before, 0.0), fallback)
    expected = pc.if_else(valid, pc.multiply(rate, d_after), pa.scalar(None, pa.float64()))
    return expected, n_after, d_after


class _Parts:
    """The per-leaf terms of the rate/mix split, aligned with the working table's rows."""

    def __init__(self, n0, n1, d0, d1, total0: float, total1: float, ratio0: float, ratio1: float):
        self.n0, self.n1, self.d0, self.d1 = n0, n1, d0, d1
        w0, w1 = pc.divide(d0, total0), pc.divide(d1, total1)
        # A segment absent in one period has no ratio there: its own ratio did not move (all of its effect is
        # mix), so the missing ratio is the other period's.
        r0 = _rate(n0, d0, 0.0)
        r1 = _rate(n1, d1, 0.0)
        r0 = pc.if_else(pc.greater(d0, 0.0), r0, r1)
        r1 = pc.if_else(pc.greater(d1, 0.0), r1, r0)
        mean_weight = pc.divide(pc.add(w0, w1), 2.0)
        mean_rate = pc.divide(pc.add(r0, r1), 2.0)
        self.rate = pc.multiply(mean_weight, pc.subtract(r1, r0))
        self.mix = pc.multiply(pc.subtract(w1, w0), pc.subtract(mean_rate, (ratio0 + ratio1) / 2.0))


def _ratio_element(work: pa.Table, cand: _Candidate, dims: list[str], values: list[list], parts: _Parts,
                   change: float, kind: str) -> Element:
    mask = _mask(work, cand)
    n0, n1 = _sum(pc.filter(parts.n0, mask)), _sum(pc.filter(parts.n1, mask))
    d0, d1 = _sum(pc.filter(parts.d0, mask)), _sum(pc.filter(parts.d1, mask))
    rate_effect, mix_effect = _sum(pc.filter(parts.rate, mask)), _sum(pc.filter(parts.mix, mask))
    effect = rate_effect if kind == "rate" else mix_effect
    where = {dims[i]: values[i][code] for i, code in sorted(zip(cand.cuboid, cand.codes))}
    return Element(where=where, baseline=n0, current=n1, change=n1 - n0,
                   share=effect / change if change else 0.0, leaves=pc.sum(mask).as_py() or 0, score=cand.score,
                   rate_baseline=n0 / d0 if d0 else None, rate_current=n1 / d1 if d1 else None,
                   rate_effect=rate_effect, mix_effect=mix_effect)


def _mix(leaves: pa.Table, dims: list[str], d0: pa.Array, d1: pa.Array, max_elements: int | None,
         causes: list[_Candidate], parts: _Parts, change: float) -> list[Element]:
    """The segments whose volume moved out of line with the rest and that are no rate cause, by mix effect."""
    found = _run(leaves, dims, d0, d1, max_elements, None)
    if isinstance(found, Localisation):
        return []
    work, chosen, values, _ = found
    shifted = [cand for cand in chosen if not any(_nested(cand, c) for c in causes)]
    elements = [_ratio_element(work, cand, dims, values, parts, change, "mix") for cand in shifted]
    return sorted(elements, key=lambda e: -abs(e.mix_effect))

