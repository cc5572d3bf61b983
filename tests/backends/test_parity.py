"""Every bundled tree, evaluated and explained on each engine, gives what the Arrow backend gives.

The engines: DuckDB (always, in process) and PostgreSQL (a real server: METRICTREE_TEST_POSTGRES_URL,
started by .ci/setup.d/30-postgres.sh).
"""

from __future__ import annotations

import datetime as dt

import metrictree
import pyarrow as pa
import pytest
from backend_support import BUNDLED, TREES, same_values


def _tree(name):
    return metrictree.load(TREES / f"{name}.tree")


@pytest.mark.parametrize("name", BUNDLED)
@pytest.mark.parametrize("grain", ["month", "week"])
def test_every_bundled_tree_evaluates_the_same(name, grain, sample, on_engine):
    bound, _ = on_engine
    tree = _tree(name)
    for by in ([], list(tree.dimensions[:1]), list(tree.dimensions[:2])):
        expected = tree.evaluation(sample, grain=grain, by=by)
        found = tree.evaluation(bound, grain=grain, by=by)
        assert same_values(expected.table, found.table) == [], (by, same_values(expected.table, found.table)[:5])
        assert [n.to_dict() for n in expected.nulls] == [n.to_dict() for n in found.nulls]
        assert expected.covered == found.covered


@pytest.mark.parametrize("grain", ["day", "quarter", "year"])
def test_other_grains_and_a_range(grain, sample, on_engine):
    bound, _ = on_engine
    tree = _tree("crm_ltv")
    start, end = {"day": ("2026-09-25", "2026-10-05"), "quarter": ("2026-Q1", "2026-Q3"),
                  "year": ("2025", "2026")}[grain]
    expected = tree.evaluate(sample, grain=grain, by=["region"], start=start, end=end)
    found = tree.evaluate(bound, grain=grain, by=["region"], start=start, end=end)
    assert same_values(expected, found) == []


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_tree_explains_the_same(name, sample, on_engine):
    bound, _ = on_engine
    tree = _tree(name)
    root = next(m for m in tree.metrics.values() if m.kind == "derived" and tree.drivers(m.name))
    expected = tree.explain(sample, root.name).to_dict()
    found = tree.explain(bound, root.name).to_dict()
    assert same_values(expected, found) == []


def _awkward() -> dict[str, pa.Table]:
    """Nulls everywhere they can be, a month with no rows, a zero denominator, zoned timestamps."""
    utc = dt.UTC
    times = [dt.datetime(2026, 1, 31, 20, 30, tzinfo=utc), dt.datetime(2026, 1, 5, tzinfo=utc),
             dt.datetime(2026, 2, 28, 23, 0, tzinfo=utc), None, dt.datetime(2026, 4, 2, tzinfo=utc),
             dt.datetime(2026, 4, 30, 22, 0, tzinfo=utc), dt.datetime(2026, 4, 15, tzinfo=utc),
             dt.datetime(2026, 1, 10, tzinfo=utc)]
    return {"orders": pa.table({
        "at": pa.array(times, pa.timestamp("us", tz="UTC")),
        "customer": ["a", "b", None, "a", "a", "c", "b", "c"],
        "region": ["North", None, "North", "South", None, "South", "North", None],
        "status": ["paid", "paid", None, "paid", "paid", "refunded", "paid", "paid"],
        "amount": [10.5, None, 3.25, 7.0, 2.0, -1.0, 4.0, 1.0],
        "qty": [1, 0, 2, None, 1, 1, 0, 3],
    })}


AWKWARD = """
tree awkward
grain month
source orders { time at  dimensions region  entity customer }
metric revenue = sum(orders.amount) where orders.status == "paid"
metric rows = count(orders)
metric valued = count(orders.amount)
metric customers = count_distinct(orders.customer) where orders.status in ["paid", "refunded"]
metric unknown_status = count(orders) where orders.status is null
metric per_unit = sum(orders.amount / orders.qty)
metric average = avg(orders.amount)
metric biggest = max(orders.amount) where not orders.status == "refunded"
metric new = new_customers(orders)
metric churned = churned_customers(orders)
metric active = active_customers(orders, window=40)
metric back = reactivated_customers(orders, after=1)
metric loyal = repeat_customers(orders, min_purchases=2, over="ever")
metric tenure = customer_lifetime(orders)
metric aov = revenue / rows
"""


@pytest.mark.parametrize("timezone", ["UTC", "Asia/Tokyo", "America/New_York"])
@pytest.mark.parametrize("grain", ["month", "week", "day"])
def test_nulls_empty_periods_zero_denominators_and_time_zones(timezone, grain, load, tmp_path):
    tables = _awkward()
    zoned = {"orders": tables["orders"].set_column(0, "at", tables["orders"].column("at").cast(
        pa.timestamp("us", tz=timezone)))}
    bound, _ = load(tables, timezone=timezone)
    path = tmp_path / "awkward.tree"
    path.write_text(AWKWARD, "utf-8")
    tree = metrictree.load(path)
    for by in ([], ["region"]):
        expected = tree.evaluation(zoned, grain=grain, by=by)
        found = tree.evaluation(bound, grain=grain, by=by)
        assert same_values(expected.table, found.table) == [], (by, same_values(expected.table, found.table)[:5])
        assert [n.to_dict() for n in expected.nulls] == [n.to_dict() for n in found.nulls]


def test_naive_timestamps_and_dates(load, tmp_path):
    orders = _awkward()["orders"]
    tables = {"orders": orders.set_column(0, "at", orders.column("at").cast(pa.timestamp("us")))}
    days = {"orders": orders.set_column(0, "at", orders.column("at").cast(pa.timestamp("us")).cast(pa.date32()))}
    path = tmp_path / "awkward.tree"
    path.write_text(AWKWARD, "utf-8")
    tree = metrictree.load(path)
    for data in (tables, days):
        bound, _ = load(data)
        assert same_values(tree.evaluate(data, by=["region"]), tree.evaluate(bound, by=["region"])) == []
        assert same_values(tree.evaluate(data, start="2026-02", end="2026-04"),
                           tree.evaluate(bound, start="2026-02", end="2026-04")) == []
