"""Shop scenarios of `bench/rca_shop.py` that two of the localiser's rules were written for, through the
public `tree.explain`: the cases fail without the rule they name."""

import importlib.util
import pathlib

import pytest

import metrictree

pytest.importorskip("numpy")

_PATH = pathlib.Path(__file__).resolve().parent.parent / "bench" / "rca_shop.py"
_SPEC = importlib.util.spec_from_file_location("rca_shop", _PATH)
rca_shop = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(rca_shop)


def _explain(kind: str, seed: int):
    tree = metrictree.loads(rca_shop.TREE, "shop.tree")
    start, months = rca_shop.START, rca_shop.MONTHS
    baseline = start.replace(month=start.month + months - 2).strftime("%Y-%m")
    current = start.replace(month=start.month + months - 1).strftime("%Y-%m")
    data, metric, truth = rca_shop.scenario(kind, seed)
    return tree.explain(data, metric, baseline, current), truth


def test_a_noise_segment_found_against_a_dragged_trend_gives_way_to_the_cause():
    # web's new customers fall by more than half; against the median leaf's change, which web drags down,
    # marketplace (unchanged) stands out as a segment that "stood still". The re-search on its few leaves
    # does not give a still-free answer; judged against the rest of the leaves, web is the cause.
    explanation, truth = _explain("acquisition", 5)
    assert [dict(c.where) for c in explanation.root_causes[:3]] == [truth]


def test_the_quasi_binomial_re_search_keeps_the_trend_the_first_search_settled_on():
    # regular customers' churn rises; the first search finds them against the rest's change, and the
    # re-search with the over-dispersed noise must not fall back to the median leaf's change (which the
    # regular segment drags up, so that nothing departs from it).
    explanation, truth = _explain("churn", 1)
    assert dict(explanation.root_causes[0].where) == truth
