"""Exact attribution: contributions add up to the change, whatever the formula and the values."""

import math

import pyarrow as pa
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from metrictree import pluginmanager
from metrictree import syntax as s
from metrictree.decomposing import Decomposer, log_mean, shapley
from metrictree.formulas import Scope, evaluate
from metrictree.parsing import parse


def formula(text: str) -> s.Expr:
    return parse(f"metric m = {text}").statements[0].formula


def decomposer(values: dict[str, tuple[float, float]]) -> Decomposer:
    arrays = {name: pa.array(pair, pa.float64()) for name, pair in values.items()}

    def scope_for(extra, length):
        def name(node):
            return extra.get(node.name, arrays.get(node.name))
        return Scope(name=name, scalars=pluginmanager.registry().scalars, length=length)

    return Decomposer(scope_for, lambda node: node.name if isinstance(node, s.Name) and node.name in arrays else None)


def change_of(expr: s.Expr, values) -> float:
    d = decomposer(values)
    b, c = d.values(expr)
    return c - b


def test_additive_split_is_each_terms_change():
    split = decomposer({"a": (10, 15), "b": (4, 1), "c": (2, 2)}).split(formula("a - b + 2 * c"))
    assert split.method == "additive"
    assert split.contributions == pytest.approx({"a": 5.0, "b": 3.0, "c": 0.0})


def test_lmdi_for_products_and_ratios_is_exact_and_order_free():
    values = {"aov": (2500.0, 2300.0), "freq": (2.0, 2.1), "life": (20.0, 16.0)}
    one = decomposer(values).split(formula("aov * freq * life"))
    two = decomposer(values).split(formula("life * aov * freq"))
    assert one.method == "lmdi"
    assert sum(one.contributions.values()) == pytest.approx(2300 * 2.1 * 16 - 2500 * 2 * 20, rel=1e-12)
    assert one.contributions == pytest.approx(two.contributions, rel=1e-12)
    expected = log_mean(2300 * 2.1 * 16, 2500 * 2 * 20) * math.log(2.1 / 2.0)
    assert one.contributions["freq"] == pytest.approx(expected, rel=1e-12)


def test_ratio_uses_lmdi_with_negative_exponent():
    split = decomposer({"rev": (100.0, 120.0), "n": (10.0, 8.0)}).split(formula("rev / n"))
    assert split.method == "lmdi"
    assert split.contributions["rev"] > 0 and split.contributions["n"] > 0
    assert sum(split.contributions.values()) == pytest.approx(15 - 10)


def test_zero_falls_back_to_shapley_and_stays_exact():
    split = decomposer({"a": (0.0, 5.0), "b": (3.0, 4.0)}).split(formula("a * b"))
    assert split.method == "shapley"
    # Shapley for a product of two: each gets the average of its two marginal effects.
    assert split.contributions == pytest.approx({"a": (5 * 3 + 5 * 4) / 2, "b": (0 + 5) / 2})


def test_sign_change_falls_back_to_shapley():
    split = decomposer({"a": (-2.0, 3.0), "b": (4.0, 5.0)}).split(formula("a * b"))
    assert split.method == "shapley"
    assert sum(split.contributions.values()) == pytest.approx(15 - (-8))


def test_functions_use_shapley_over_their_arguments():
    split = decomposer({"a": (1.0, 4.0), "b": (3.0, 2.0)}).split(formula("max(a, b)"))
    assert split.method == "shapley"
    assert sum(split.contributions.values()) == pytest.approx(4 - 3)
    split = decomposer({"x": (0.5, 0.8), "y": (10.0, 20.0)}).split(formula("if(x > 0.6, y, 0)"))
    assert sum(split.contributions.values()) == pytest.approx(20 - 0)


def test_a_contribution_is_passed_down_through_nested_operators():
    values = {"r": (100.0, 90.0), "o": (10.0, 12.0), "k": (5.0, 5.0)}
    split = decomposer(values).split(formula("(r / o) * k + r"))
    assert sum(split.contributions.values()) == pytest.approx((90 / 12 * 5 + 90) - (100 / 10 * 5 + 100))
    assert split.contributions["k"] == pytest.approx(0.0)


def test_shapley_efficiency_and_symmetry():
    values = [0.0, 1.0, 1.0, 3.0]  # symmetric game of two players
    assert shapley(values, 2) == pytest.approx([1.5, 1.5])


# ---- properties

NAMES = ["a", "b", "c", "d"]
leaf = st.sampled_from(NAMES)


def expressions():
    def extend(children):
        binary = st.tuples(st.sampled_from(["+", "-", "*", "/"]), children, children).map(
            lambda t: f"({t[1]} {t[0]} {t[2]})")
        calls = st.tuples(st.sampled_from(["min", "max"]), children, children).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})")
        unary = st.tuples(st.sampled_from(["abs", "-"]), children).map(
            lambda t: f"abs({t[1]})" if t[0] == "abs" else f"(-{t[1]})")
        return binary | calls | unary
    return st.recursive(leaf, extend, max_leaves=6)


number = st.one_of(st.just(0.0), st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False).filter(
    lambda x: x == 0 or abs(x) > 1e-3))


@settings(max_examples=300, deadline=None)
@given(text=expressions(), values=st.fixed_dictionaries({n: st.tuples(number, number) for n in NAMES}))
def test_contributions_always_add_up(text, values):
    expr = formula(text)
    d = decomposer(values)
    b, c = d.values(expr)
    assume(b is not None and c is not None)  # undefined in a state (division by zero): nothing to split
    split = d.split(expr)
    assume(split.method != "undefined")
    total = sum(split.contributions.values())
    assert math.isclose(total, c - b, rel_tol=1e-9, abs_tol=1e-9 * max(1.0, abs(b), abs(c)))


@settings(max_examples=200, deadline=None)
@given(values=st.fixed_dictionaries({n: st.tuples(number, number) for n in NAMES}),
       order=st.permutations(NAMES))
# Found by this test: factors that swing far past both states (mixes near 1e9 for a change of -55), whose
# rounding in one order of the factors failed a check scaled to the states alone.
@example(values={"a": (29.0, 0.0), "b": (7.53856747302593, 58.0), "c": (0.5, 769.0), "d": (0.5, 769.0)},
         order=["b", "c", "a", "d"])
def test_the_order_of_a_products_factors_never_matters(values, order):
    first = decomposer(values).split(formula(" * ".join(NAMES)))
    second = decomposer(values).split(formula(" * ".join(order)))
    for name in NAMES:
        assert math.isclose(first.contributions.get(name, 0.0), second.contributions.get(name, 0.0),
                            rel_tol=1e-9, abs_tol=1e-9)
