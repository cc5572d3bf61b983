"""One category written several ways ('web', 'Web ', 'WEB') is found and said, never merged (`lookalikes`)."""

from __future__ import annotations

import datetime as dt
import textwrap

import pyarrow as pa

import metrictree
from metrictree.lookalikes import folded, lookalikes, notes

TREE = metrictree.loads(textwrap.dedent("""\
    tree shop
    grain month
    source orders {
        time day
        dimensions channel, region
    }
    metric revenue = sum(orders.amount)
    metric orders_count = count(orders)
    metric aov = revenue / orders_count
"""))


def _orders() -> pa.Table:
    days, channels, regions, amounts = [], [], [], []
    for month, scale in ((9, 1.0), (10, 0.8)):
        for i in range(60):
            days.append(dt.date(2026, month, 1 + i % 28))
            channels.append(["web", "Web ", "app"][i % 3])
            regions.append(["North", "South"][i % 2])
            amounts.append(100.0 * (scale if i % 3 == 0 else 1.0))
    return pa.table({"day": days, "channel": channels, "region": regions, "amount": amounts})


def test_lookalikes_are_the_values_equal_but_for_case_and_spacing():
    assert folded("  Web\tShop ") == "web shop"
    assert lookalikes(["web", "Web ", "app", None, "APP", "shop", "web"]) == [["APP", "app"], ["Web ", "web"]]
    assert lookalikes(["web", "app", 3]) == []
    assert notes({"channel": ["web", "app"]}) == []


def test_an_evaluation_by_a_dimension_with_lookalikes_warns_and_keeps_them_apart():
    evaluation = TREE.evaluation({"orders": _orders()}, by="channel")
    assert evaluation.warnings == ("channel has values that differ only in case or spacing ('Web ', 'web'): each is "
                                   "a segment of its own, since text is compared exactly; clean the data to count "
                                   "them as one",)
    assert sorted(set(evaluation.table.column("channel").to_pylist())) == ["Web ", "app", "web"]
    assert TREE.evaluation({"orders": _orders()}, by="region").warnings == ()
    assert TREE.evaluation({"orders": _orders()}).warnings == ()


def test_an_explanation_notes_the_lookalikes_of_the_dimensions_it_drills_into():
    explanation = TREE.explain({"orders": _orders()}, "revenue", "2026-09", "2026-10", by=["channel", "region"])
    assert any(note.startswith("channel has values that differ only in case or spacing ('Web ', 'web')")
               for note in explanation.notes)
    assert not any(note.startswith("region has values") for note in explanation.notes)
