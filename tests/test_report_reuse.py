"""The report evaluates the history once: the status's rules on the whole data read the same evaluation."""

from __future__ import annotations

import collections
import math
from pathlib import Path

import pytest

import metrictree
from metrictree import evaluating, explaining, reporting, rules
from metrictree.errors import DataError
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


# The benchmark's CRM tree: no influence children, and ltv's churn looks back, so the explanation's drill-down
# first makes a pass by every dimension over every row (`explaining._one_read`).
BENCH_TREE = Path(__file__).resolve().parents[1] / "bench" / "crm.tree"
RULES = '\nalert churn_rate > 40% { severity warning }\nalert change(ltv) < -10% { severity critical }\n'


def _counted_scans(monkeypatch) -> collections.Counter:
    """How many times each source is read (`reading.scan`, which every read of the Arrow backend goes through)."""
    from metrictree import reading

    scans: collections.Counter = collections.Counter()
    real = reading.scan
    monkeypatch.setattr(reading, "scan", lambda source, *a, **k: scans.update([source.name]) or real(source, *a, **k))
    return scans


def test_the_report_history_rides_in_the_drill_down_pass(orders_with_nulls, monkeypatch, tmp_path):
    """When the drill-down reads every row first, the report's history (sparklines, status) is aggregated from
    that pass's tables: the orders are read once in all, and every number is what reading them again gives."""
    path = tmp_path / "crm.tree"
    path.write_text(BENCH_TREE.read_text() + RULES)
    tree = metrictree.load(path)
    data = {"orders": orders_with_nulls}
    by = ["channel", "region", "segment"]
    assert explaining.reads_every_row_once(tree, "ltv", "2026-09", "2026-10", by)
    alone = tree.explain(data, "ltv", "2026-09", "2026-10", by=by)
    status = tree.status(data, at="2026-10")
    augmented, hidden = rules.with_rule_metrics(tree)
    readable = [n for n, m in tree.metrics.items() if m.kind != "group"] + hidden
    history = evaluating.evaluate(augmented, data, end="2026-10", metrics=readable)

    drawn = []
    real_html = reporting.report_html
    monkeypatch.setattr(reporting, "report_html", lambda *a, **k: drawn.append(a) or real_html(*a, **k))
    scans = _counted_scans(monkeypatch)
    page = reporting.report(tree, data, "ltv", "2026-09", "2026-10", by=by)
    assert "<html" in page and "mt-status" in page
    assert scans == {"orders": 1}
    _, explanation, drawn_status, drawn_history = drawn[0]
    assert explanation.to_dict() == alone.to_dict()
    assert drawn_status.to_dict() == status.to_dict()
    assert drawn_history.table.column_names == history.table.column_names
    for name in history.table.column_names:
        # Float sums over the same rows cut into other tables agree to the last digits only.
        for got, want in zip(drawn_history.table.column(name).to_pylist(), history.table.column(name).to_pylist(),
                             strict=True):
            assert got == want or (isinstance(want, float) and math.isclose(got, want, rel_tol=1e-12)), name
    assert drawn_history.warnings == history.warnings and drawn_history.nulls == history.nulls
    # Reading separately (the check above can fail): the explanation and the history each read the orders.
    scans.clear()
    tree.explain(data, "ltv", "2026-09", "2026-10", by=by)
    evaluating.evaluate(augmented, data, end="2026-10", metrics=readable)
    assert scans == {"orders": 2}


@pytest.mark.parametrize("metric, baseline, by, rides", [
    ("ltv", "2026-09", None, True),
    ("churn_rate", "2026-09", ["region"], True),
    ("aov", "2026-09", None, False),  # nothing below it looks back: the drill-down reads the compared periods
    ("ltv", None, None, True),  # the default baseline (the month before) is known before any data is read
    ("ltv", "2026-09", [], False),  # no drill-down
])
def test_when_the_drill_down_reads_every_row_once(metric, baseline, by, rides):
    tree = metrictree.load(BENCH_TREE)
    assert explaining.reads_every_row_once(tree, metric, baseline, "2026-10", by) is rides


def test_a_tree_with_influence_children_reads_its_history_first(data):
    # crm_ltv's ltv is influenced (NPS, emails): the explanation's history is the whole history, so the report
    # evaluates it first and the explanation reads it (test_the_report_explanation_reads_the_report_history).
    assert not explaining.reads_every_row_once(metrictree.load("trees/crm_ltv.tree"), "ltv", "2026-09", "2026-10")


def test_the_default_baseline_is_known_before_reading(orders_with_nulls, monkeypatch):
    """With the current period alone, the baseline is the month before it from the start: the explanation is
    the one with that baseline given, and its history rides in the drill-down's pass as then (one read)."""
    tree = metrictree.load(BENCH_TREE)
    data = {"orders": orders_with_nulls}
    given = tree.explain(data, "ltv", "2026-09", "2026-10")
    scans = _counted_scans(monkeypatch)
    alone = tree.explain(data, "ltv", current="2026-10")
    assert scans == {"orders": 1}
    assert alone.to_dict() == given.to_dict()
    # The report too, with its history (sparklines, status) in the same read.
    scans.clear()
    assert "<html" in reporting.report(tree, data, "ltv", current="2026-10")
    assert scans == {"orders": 1}


@pytest.mark.parametrize("baseline, current, named", [(None, "2030-01", "baseline period 2029-12"),
                                                      ("2026-09", "2030-01", "current period 2030-01")])
def test_a_period_past_the_data_read_once_says_what_the_data_covers(orders_with_nulls, baseline, current, named):
    """The one read finds no rows from the drill-down's first month on: the error names the compared period and
    what the data covers, as when the history is read first, not the months the drill-down reads."""
    tree = metrictree.load(BENCH_TREE)
    assert explaining.reads_every_row_once(tree, "ltv", baseline, current)
    with pytest.raises(DataError) as info:
        tree.explain({"orders": orders_with_nulls}, "ltv", baseline, current)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.message == f"the {named} has no data" and diagnostic.code == "period"
    assert diagnostic.hint == "the data covers 2025-11 to 2026-10 (at grain month)"
