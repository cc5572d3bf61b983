"""Tests for moderated variances (metrictree.moderating): the special functions and the empirical-Bayes prior."""

from __future__ import annotations

import math
import random

import pyarrow as pa
import pytest
from metrictree.moderating import digamma, moderate, prior, t_quantile, t_tail, trigamma, trigamma_inverse


def test_special_functions_match_known_values():
    euler = 0.5772156649015329
    assert digamma(1.0) == pytest.approx(-euler, abs=1e-12)
    assert digamma(0.5) == pytest.approx(-euler - 2 * math.log(2), abs=1e-12)
    assert trigamma(1.0) == pytest.approx(math.pi ** 2 / 6, abs=1e-12)
    assert trigamma(0.5) == pytest.approx(math.pi ** 2 / 2, abs=1e-12)
    assert trigamma_inverse(trigamma(3.7)) == pytest.approx(3.7, rel=1e-9)
    # Student's t: tables' quantiles, the Cauchy distribution's closed form, and the normal limit.
    assert t_quantile(0.025, 30) == pytest.approx(2.0423, abs=1e-4)
    assert t_quantile(1e-4, 10) == pytest.approx(5.6938, abs=1e-4)
    assert t_tail(1.0, 1) == pytest.approx(0.25, abs=1e-12)
    assert t_quantile(0.025, 1e7) == pytest.approx(1.959964, abs=1e-5)


def chi2_estimates(variances: list[float], steps: int, rng: random.Random) -> list[float]:
    return [sum(rng.gauss(0.0, math.sqrt(v)) ** 2 for _ in range(steps)) / steps for v in variances]


def test_alike_segments_are_pooled_and_unlike_ones_keep_their_own():
    rng = random.Random(4)
    steps = 8
    alike = chi2_estimates([2.0] * 200, steps, rng)
    d0, s0 = prior(pa.array(alike), pa.array([float(steps)] * 200))
    assert d0 > 30 and s0 == pytest.approx(2.0, rel=0.15)
    # Variances spread over two orders of magnitude: the prior is wide, each estimate mostly its own.
    unlike = chi2_estimates([math.exp(rng.uniform(-2.3, 2.3)) for _ in range(200)], steps, rng)
    d0, s0 = prior(pa.array(unlike), pa.array([float(steps)] * 200))
    assert d0 < 5
    pooled = moderate(pa.array([0.1, 10.0]), pa.array([float(steps)] * 2), (d0, s0)).to_pylist()
    assert 0.1 < pooled[0] < s0 < pooled[1] < 10.0


def test_too_few_estimates_fit_no_prior():
    assert prior(pa.array([1.0, None, 0.0]), pa.array([3.0, 3.0, 3.0])) is None
