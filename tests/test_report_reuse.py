"""The report evaluates the history once: the status's rules on the whole data read the same evaluation."""

from __future__ import annotations

import pytest

import metrictree
from metrictree import evaluating, reporting, rules
from metrictree.sample import sample_data


@pytest.fixture(scope="module")
def data():
    return sample_data()


@pytest.mark.parametrize("name", ["crm_ltv", "email_engagement"])
def test_status_from_a_shared_evaluation_is_the_status(name, data):
    tree = metrictree.load(f"trees/{name}.tree")
    at = tree.status(data).at
    augmented, hidden = rules.with_rule_metrics(tree)
    assert hidden, "every alert is judged by a hidden metric"
    names = [n for n, m in augmented.metrics.items() if m.kind != "group"]
    shared = evaluating.evaluate(augmented, data, end=at, metrics=names)
    assert rules.status(tree, data, at=at, evaluation=shared).to_dict() == tree.status(data, at=at).to_dict()


def test_the_report_status_evaluates_nothing_again(data, monkeypatch):
    tree = metrictree.load("trees/crm_ltv.tree")
    calls = []
    real = evaluating.evaluate

    def counted(*args, **kwargs):
        if kwargs.get("start") is None and not kwargs.get("by"):
            calls.append(kwargs.get("metrics"))
        return real(*args, **kwargs)

    monkeypatch.setattr(rules, "evaluate", counted)
    page = reporting.report(tree, data, "ltv", "2026-09", "2026-10")
    assert "<html" in page and "mt-status" in page
    # The status's rules on the whole data read the report's history: the status evaluates nothing itself.
    assert calls == []
    # Without the shared history it would (the check above can fail).
    rules.status(tree, data, at="2026-10")
    assert len(calls) == 1
