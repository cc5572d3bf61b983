"""Issue 10: explanations that add up (coalesce, if, max over many arguments) and dates at the calendar's ends."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pyarrow as pa
import pytest

import metrictree
from metrictree.decomposing import MAX_EXACT_SHAPLEY, shapley, shapley_of_max

TREE = """source orders { time d dimensions k }
metric revenue = sum(orders.amount)
metric growth = revenue - revenue[-1]
metric top = coalesce(growth, 0)
metric top10 = coalesce(growth, 10)
metric chosen = if(revenue > 3, growth, 0)
metric biggest = max(revenue, growth, 10)
"""
DATA = {"orders": pa.table({"d": [dt.date(2026, 1, 5), dt.date(2026, 2, 5), dt.date(2026, 3, 5)],
                            "k": ["a", "a", "a"], "amount": [1.0, 51.0, 70.0]})}


def _leaves(driver) -> float:
    if not driver.drivers:
        return driver.contribution or 0.0
    return sum(_leaves(d) for d in driver.drivers if d.kind != "influence")


@pytest.mark.parametrize("metric, baseline, current", [
    ("top", "2026-01", "2026-02"), ("top10", "2026-01", "2026-02"), ("top", "2026-02", "2026-03"),
    ("chosen", "2026-01", "2026-02"), ("chosen", "2026-02", "2026-03"), ("biggest", "2026-02", "2026-03"),
])
def test_coalesce_and_if_decompose_exactly(metric, baseline, current):
    tree = metrictree.loads(TREE)
    explanation = tree.explain(DATA, metric, baseline, current, by=[])
    assert abs(explanation.residual) < 1e-9
    assert sum(_leaves(d) for d in explanation.drivers) == pytest.approx(explanation.change, abs=1e-9)
    assert "add up to the change exactly" in explanation.to_markdown()


def test_coalesce_gives_the_change_to_the_argument_chosen():
    explanation = metrictree.loads(TREE).explain(DATA, "top10", "2026-01", "2026-02", by=[])
    (growth,) = explanation.drivers
    assert growth.metric == "growth" and growth.contribution == pytest.approx(40.0)
    assert explanation.method == "coalesce"


def test_the_exact_sentence_is_only_said_when_true():
    explanation = metrictree.loads(TREE).explain(DATA, "top", "2026-01", "2026-02", by=[])
    import attrs

    from metrictree.narrating import markdown

    off = attrs.evolve(explanation, residual=5.0)
    assert "add up to the change exactly" not in markdown(off)
    assert "unexplained" in markdown(off)


def test_the_max_rule_is_the_shapley_value():
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 7)
        b = [rng.choice([rng.uniform(-5, 5), 1.0, 2.0]) for _ in range(n)]
        c = [rng.choice([rng.uniform(-5, 5), 1.0, 2.0, b[i]]) for i in range(n)]
        brute = shapley([max(c[i] if mask >> i & 1 else b[i] for i in range(n)) for mask in range(1 << n)], n)
        assert shapley_of_max(b, c) == pytest.approx(brute, abs=1e-9)


def _wide(n: int, formula: str) -> tuple[metrictree.Tree, dict]:
    text = "source orders { time d dimensions k }\n" + "".join(
        f'metric a{i} = sum(orders.amount) where orders.k == "{i}"\n' for i in range(n))
    rng = random.Random(n)
    rows = [(dt.date(2026, 1 + j // n % 2, 3), str(j % n), rng.uniform(-50, 100)) for j in range(40 * n)]
    data = {"orders": pa.table({"d": [r[0] for r in rows], "k": [r[1] for r in rows],
                                "amount": [r[2] for r in rows]})}
    return metrictree.loads(text + f"metric top = {formula}\n"), data


@pytest.mark.parametrize("fn", ["max", "min"])
def test_max_and_min_over_many_arguments_are_exact_and_fast(fn):
    tree, data = _wide(40, f"{fn}(" + ", ".join(f"a{i}" for i in range(40)) + ")")
    explanation = tree.explain(data, "top", "2026-01", "2026-02", by=[])
    assert explanation.method == "shapley"
    assert sum(d.contribution for d in explanation.drivers) == pytest.approx(explanation.change, abs=1e-9)


def test_a_wide_product_is_a_sampled_shapley_that_still_adds_up():
    n = MAX_EXACT_SHAPLEY + 6
    # a0 moves from 467 to 738, so (a0 - 600) changes sign: no LMDI, and 2**16 mixes would be too many.
    tree, data = _wide(n, "(a0 - 600) * " + " * ".join(f"a{i}" for i in range(1, n)))
    explanation = tree.explain(data, "top", "2026-01", "2026-02", by=[])
    assert explanation.method == "shapley-sampled"
    assert sum(d.contribution for d in explanation.drivers) == pytest.approx(explanation.change, rel=1e-9)


@pytest.mark.parametrize("days", [[dt.date(1, 1, 1), dt.date(1, 2, 5)], [dt.date(9999, 11, 5), dt.date(9999, 12, 31)]])
@pytest.mark.parametrize("grain", ["day", "week", "month", "quarter", "year"])
def test_dates_at_the_ends_of_the_calendar(days, grain):
    tree = metrictree.loads("source orders { time d dimensions r }\nmetric revenue = sum(orders.amount)\n")
    data = {"orders": pa.table({"d": days, "r": ["a", "b"], "amount": [1.0, 2.0]})}
    periods = tree.evaluate(data, grain=grain).column("period").to_pylist()
    assert all(len(p.split("-")[0]) == 4 for p in periods)  # 0001-01, not 1-01
    assert tree.evaluate(data, grain=grain, start=periods[0], end=periods[-1]).num_rows == len(periods)
    if len(periods) > 1:
        assert tree.explain(data, "revenue", periods[0], periods[-1], grain=grain, by=[]).change == 1.0
    assert list(itertools.islice(iter(periods), 1)) == [periods[0]]
