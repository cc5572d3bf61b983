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


@pytest.mark.parametrize("tree_name, metric", [("crm_ltv", "ltv"), ("crm_ltv", "churn_rate"),
                                               ("email_engagement", None)])
def test_the_report_explanation_reads_the_report_history(data, monkeypatch, tree_name, metric):
    """The explanation's first step (every metric over the periods compared) reads the report's history: the
    same explanation as on its own, with one evaluation fewer."""
    from metrictree import explaining

    tree = metrictree.load(f"trees/{tree_name}.tree")
    metric = metric or tree.roots()[0]
    alone = tree.explain(data, metric, "2026-09", "2026-10")
    own, drawn = [], []
    real_history = explaining.history
    monkeypatch.setattr(explaining, "history", lambda *a, **k: own.append(1) or real_history(*a, **k))
    real_html = reporting.report_html
    monkeypatch.setattr(reporting, "report_html",
                        lambda tree, explanation, *a, **k: drawn.append(explanation) or real_html(tree, explanation,
                                                                                                 *a, **k))
    page = reporting.report(tree, data, metric, "2026-09", "2026-10")
    assert "<html" in page
    assert own == []
    assert drawn[0].to_dict() == alone.to_dict()
    # Without a current period, where the history ends is known only from the explanation: it reads its own.
    reporting.report(tree, data, metric, "2026-09")
    assert own == [1]


def test_an_evaluation_that_ends_too_early_is_not_used(data, monkeypatch):
    """A baseline after the current period: the report's history ends at the current one, so the explanation
    reads its own history up to the baseline."""
    from metrictree import explaining

    tree = metrictree.load("trees/crm_ltv.tree")
    alone = tree.explain(data, "ltv", "2026-10", "2026-09")
    own = []
    real_history = explaining.history
    monkeypatch.setattr(explaining, "history", lambda *a, **k: own.append(1) or real_history(*a, **k))
    drawn = []
    real_html = reporting.report_html
    monkeypatch.setattr(reporting, "report_html",
                        lambda tree, explanation, *a, **k: drawn.append(explanation) or real_html(tree, explanation,
                                                                                                 *a, **k))
    reporting.report(tree, data, "ltv", "2026-10", "2026-09")
    assert own == [1]
    assert drawn[0].to_dict() == alone.to_dict()
