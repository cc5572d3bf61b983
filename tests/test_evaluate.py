"""Evaluating a tree over Arrow tables: every number here was computed by hand from the
small tables in this file (the comments show the sums).
"""

from __future__ import annotations

import datetime as dt
import math
import textwrap

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metrictree
from metrictree.evaluating import Evaluation, null_reasons

D = dt.date


def load(body: str, grain: str = "month") -> metrictree.Tree:
    return metrictree.loads(f"tree shop\ngrain {grain}\n" + textwrap.dedent(body))


def rows(table: pa.Table, *keys: str) -> dict[tuple, dict]:
    """The table as {(period, *dimensions): {metric: value}}."""
    out = {}
    for row in table.to_pylist():
        key = (row.pop("period"), *(row.pop(k) for k in keys))
        out[key] = row
    return out


def column(table: pa.Table, metric: str, **where) -> list:
    """One metric's values over the periods of one slice, e.g. column(t, "x", region="N")."""
    mask = None
    for dim, value in where.items():
        cond = pc.is_null(table[dim]) if value is None else pc.equal(table[dim], value)
        mask = cond if mask is None else pc.and_(mask, cond)
    return (table.filter(mask) if mask is not None else table)[metric].to_pylist()


def reasons(evaluation: Evaluation) -> dict[tuple[str, str], tuple[int, dict]]:
    return {(n.metric, n.reason): (n.rows, dict(n.first)) for n in evaluation.nulls}


# --------------------------------------------------------------------------- the shop

SHOP = load("""
    param margin = 40%

    source orders {
        time day
        dimensions region, channel
    }

    source visits {
        time day
        dimensions region
    }

    metric revenue = sum(orders.amount) where orders.status == "paid" { unit RUB }
    metric paid_orders = count(orders) where orders.status == "paid"
    metric visits_n = sum(visits.n)
    metric aov = revenue / paid_orders
    metric conversion = paid_orders / visits_n
    metric profit = revenue * margin
    metric growth = change(revenue)
    metric previous = revenue[-1]
    metric engagement { label "Engagement" }
    conversion <~ engagement
""")

ORDERS = pa.table({
    "day": pa.array([D(2026, 1, 5), D(2026, 1, 20), D(2026, 1, 21), D(2026, 1, 31), D(2026, 3, 2), D(2026, 3, 15),
                     D(2026, 3, 16)], pa.date32()),
    "region": ["N", "N", "S", "S", "N", "S", "S"],
    "channel": ["web", "app", "web", "web", "web", "app", "app"],
    "status": ["paid", "paid", "refunded", "paid", "paid", "paid", "new"],
    "amount": [100.0, 50.0, 30.0, 20.0, 60.0, 40.0, 10.0],
})
VISITS = pa.table({
    "day": pa.array([D(2026, 1, 1), D(2026, 1, 2), D(2026, 2, 10), D(2026, 3, 1), D(2026, 3, 1)], pa.date32()),
    "region": ["N", "S", "N", "N", "S"],
    "n": [10, 5, 4, 0, 8],
})
DATA = {"orders": ORDERS, "visits": VISITS}
METRICS = ["revenue", "paid_orders", "visits_n", "aov", "conversion", "profit", "growth", "previous"]


def test_totals_by_month():
    evaluation = SHOP.evaluation(DATA)
    table = evaluation.table
    assert table.column_names == ["period", *METRICS]
    assert table["period"].to_pylist() == ["2026-01", "2026-02", "2026-03"]
    # Paid: Jan 100 + 50 + 20 = 170 (3 orders); Feb none; Mar 60 + 40 = 100 (2). Visits: 15, 4, 8.
    assert table["revenue"].to_pylist() == [170.0, 0.0, 100.0]
    assert table["paid_orders"].to_pylist() == [3, 0, 2]
    assert table["visits_n"].to_pylist() == [15, 4, 8]
    assert table["aov"].to_pylist() == [pytest.approx(170 / 3), None, 50.0]
    assert table["conversion"].to_pylist() == [0.2, 0.0, 0.25]
    assert table["profit"].to_pylist() == [68.0, 0.0, 40.0]
    # change = m / m[-1] - 1: Feb 0 / 170 - 1 = -1; Mar 100 / 0 is undefined.
    assert table["growth"].to_pylist() == [None, -1.0, None]
    assert table["previous"].to_pylist() == [None, 170.0, 0.0]
    assert (evaluation.grain, evaluation.by) == ("month", ())


def test_schema_is_period_then_dimensions_then_int64_or_float64_metrics():
    table = SHOP.evaluate(DATA, by=["region"])
    assert table.column_names == ["period", "region", *METRICS]
    types = {f.name: f.type for f in table.schema}
    assert types["period"] == pa.string() and types["region"] == pa.string()
    assert {types[m] for m in ("paid_orders", "visits_n")} == {pa.int64()}
    assert {types[m] for m in ("revenue", "aov", "conversion", "profit", "growth", "previous")} == {pa.float64()}


def test_by_region_aligns_both_sources_on_period_and_region():
    evaluation = SHOP.evaluation(DATA, by="region")
    got = rows(evaluation.table, "region")
    assert list(got) == [("2026-01", "N"), ("2026-01", "S"), ("2026-02", "N"), ("2026-02", "S"),
                         ("2026-03", "N"), ("2026-03", "S")]
    assert got[("2026-01", "N")] == {"revenue": 150.0, "paid_orders": 2, "visits_n": 10, "aov": 75.0,
                                     "conversion": 0.2, "profit": 60.0, "growth": None, "previous": None}
    assert got[("2026-01", "S")] == {"revenue": 20.0, "paid_orders": 1, "visits_n": 5, "aov": 20.0,
                                     "conversion": 0.2, "profit": 8.0, "growth": None, "previous": None}
    # February: no orders in either region (the grid fills 0), visits only in N.
    assert got[("2026-02", "N")] == {"revenue": 0.0, "paid_orders": 0, "visits_n": 4, "aov": None,
                                     "conversion": 0.0, "profit": 0.0, "growth": -1.0, "previous": 150.0}
    assert got[("2026-02", "S")] == {"revenue": 0.0, "paid_orders": 0, "visits_n": 0, "aov": None,
                                     "conversion": None, "profit": 0.0, "growth": -1.0, "previous": 20.0}
    assert got[("2026-03", "N")] == {"revenue": 60.0, "paid_orders": 1, "visits_n": 0, "aov": 60.0,
                                     "conversion": None, "profit": 24.0, "growth": None, "previous": 0.0}
    assert got[("2026-03", "S")] == {"revenue": 40.0, "paid_orders": 1, "visits_n": 8, "aov": 40.0,
                                     "conversion": 0.125, "profit": 16.0, "growth": None, "previous": 0.0}


def test_every_null_has_a_reason_with_its_rows_and_first_place():
    evaluation = SHOP.evaluation(DATA, by="region")
    assert reasons(evaluation) == {
        ("aov", "division by zero: paid_orders is 0"): (2, {"period": "2026-02", "region": "N"}),
        ("conversion", "division by zero: visits_n is 0"): (2, {"period": "2026-02", "region": "S"}),
        ("growth", "change(): the value 1 period(s) earlier is 0"): (2, {"period": "2026-03", "region": "N"}),
        ("growth", "change(): 1 period(s) earlier is before the first period of the data"):
            (2, {"period": "2026-01", "region": "N"}),
        ("previous", "revenue[-1] falls before the first period of the data"):
            (2, {"period": "2026-01", "region": "N"}),
    }
    # Each reason points at the metric in the tree file.
    aov = next(n for n in evaluation.nulls if n.metric == "aov")
    assert str(aov.span) == "<string>:19:8"
    assert str(aov) == "aov: null in 2 row(s) — division by zero: paid_orders is 0 (first: period 2026-02, region N)"
    # Every null in the table is explained by some reason.
    for metric in METRICS:
        nulls = evaluation.table[metric].null_count
        explained = sum(n.rows for n in evaluation.nulls if n.metric == metric)
        assert explained >= nulls, metric


def test_null_reasons_travel_in_the_schema_of_evaluate_output():
    table = SHOP.evaluate(DATA, by="region")
    stored = null_reasons(table)
    assert stored == [n.to_dict() for n in SHOP.evaluation(DATA, by="region").nulls]
    aov = next(r for r in stored if r["metric"] == "aov")
    assert aov == {"metric": "aov", "reason": "division by zero: paid_orders is 0", "rows": 2,
                   "first": {"period": "2026-02", "region": "N"}, "at": "<string>:19:8"}
    assert null_reasons(pa.table({"x": [1]})) == []


def test_a_source_without_the_dimension_gives_nulls_with_a_reason():
    evaluation = SHOP.evaluation(DATA, by=["channel"], metrics=["revenue", "visits_n", "conversion"])
    got = rows(evaluation.table, "channel")
    # Paid by channel: Jan app 50, web 100 + 20; Mar app 40, web 60.
    assert {k: v["revenue"] for k, v in got.items()} == {
        ("2026-01", "app"): 50.0, ("2026-01", "web"): 120.0, ("2026-02", "app"): 0.0, ("2026-02", "web"): 0.0,
        ("2026-03", "app"): 40.0, ("2026-03", "web"): 60.0}
    assert evaluation.table["visits_n"].null_count == 6
    assert evaluation.table["conversion"].null_count == 6
    why = reasons(evaluation)
    assert why[("visits_n", "source 'visits' has no dimension channel to split by")][0] == 6
    assert why[("conversion", "visits_n is null (source 'visits' has no dimension channel to split by)")][0] == 6


def test_sources_with_different_periods_and_slices_share_one_grid():
    orders = ORDERS.filter(pc.less(ORDERS["day"], pa.scalar(D(2026, 2, 1))))  # January only, regions N and S
    visits = pa.table({"day": pa.array([D(2026, 2, 1), D(2026, 4, 30)], pa.date32()), "region": ["E", "N"],
                       "n": [7, 3]})
    table = SHOP.evaluate({"orders": orders, "visits": visits}, by="region",
                          metrics=["revenue", "visits_n", "conversion"])
    # Every month of either source (Jan .. Apr) × every region of either source (E, N, S).
    assert table["period"].to_pylist() == [p for p in ("2026-01", "2026-02", "2026-03", "2026-04") for _ in range(3)]
    assert table["region"].to_pylist() == ["E", "N", "S"] * 4
    assert column(table, "revenue", region="N") == [150.0, 0.0, 0.0, 0.0]
    assert column(table, "revenue", region="E") == [0.0, 0.0, 0.0, 0.0]
    assert column(table, "visits_n", region="E") == [0, 7, 0, 0]
    assert column(table, "visits_n", region="N") == [0, 0, 0, 3]
    assert column(table, "conversion", region="E") == [None, 0.0, None, None]


def test_slicing_by_two_dimensions_keeps_only_the_combinations_in_the_data():
    table = SHOP.evaluate(DATA, by=["region", "channel"], metrics=["revenue", "visits_n"])
    assert table.column_names == ["period", "region", "channel", "revenue", "visits_n"]
    assert sorted(set(zip(table["region"].to_pylist(), table["channel"].to_pylist(), strict=True))) == [
        ("N", "app"), ("N", "web"), ("S", "app"), ("S", "web")]
    assert table.num_rows == 3 * 4
    assert rows(table, "region", "channel")[("2026-01", "S", "web")] == {"revenue": 20.0, "visits_n": None}


def test_metrics_returns_only_those_in_the_order_given():
    table = SHOP.evaluate(DATA, metrics=["profit", "revenue"])
    assert table.column_names == ["period", "profit", "revenue"]
    assert table["profit"].to_pylist() == [68.0, 0.0, 40.0]
    assert SHOP.evaluate(DATA, metrics="aov, paid_orders").column_names == ["period", "aov", "paid_orders"]


def test_metrics_evaluates_only_what_they_need():
    # No visits at all, and the orders lack columns only other metrics read.
    table = SHOP.evaluate({"orders": ORDERS.select(["day", "status", "amount"])}, metrics=["profit", "growth"])
    assert table.to_pydict() == {"period": ["2026-01", "2026-02", "2026-03"], "profit": [68.0, 0.0, 40.0],
                                 "growth": [None, -1.0, None]}
    table = SHOP.evaluate({"visits": VISITS}, metrics=["visits_n"], by="region")
    assert table["visits_n"].to_pylist() == [10, 5, 4, 0, 0, 8]


# --------------------------------------------------------------------------- the period grid, shifts, the range


def test_start_and_end_trim_but_shifts_still_see_the_earlier_period():
    table = SHOP.evaluate(DATA, start="2026-02", end="2026-03", metrics=["revenue", "growth", "previous"])
    assert table.to_pydict() == {"period": ["2026-02", "2026-03"], "revenue": [0.0, 100.0],
                                 "growth": [-1.0, None], "previous": [170.0, 0.0]}
    by_region = SHOP.evaluate(DATA, by="region", start="2026-02", metrics=["previous"])
    assert by_region["previous"].to_pylist() == [150.0, 20.0, 0.0, 0.0]


def test_a_range_wider_than_the_data_shows_empty_periods_as_zero():
    # With and without shifts (which read the rows before the start), the range asked for is the range shown.
    for metrics in (["revenue"], ["revenue", "growth"]):
        table = SHOP.evaluate(DATA, start="2025-12", end="2026-05", metrics=metrics)
        assert table["period"].to_pylist() == ["2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]
        assert table["revenue"].to_pylist() == [0.0, 170.0, 0.0, 100.0, 0.0, 0.0]
    assert table["growth"].to_pylist() == [None, None, -1.0, None, -1.0, None]


def test_a_period_with_no_rows_in_a_slice_is_on_the_grid_so_shift_is_the_previous_calendar_period():
    orders = pa.table({"day": pa.array([D(2026, 1, 10), D(2026, 4, 10), D(2026, 2, 10)], pa.date32()),
                       "region": ["N", "N", "S"], "channel": ["web"] * 3, "status": ["paid"] * 3,
                       "amount": [5.0, 7.0, 3.0]})
    table = SHOP.evaluate({"orders": orders}, by="region", metrics=["revenue", "previous"])
    assert table["period"].to_pylist() == ["2026-01", "2026-01", "2026-02", "2026-02", "2026-03", "2026-03",
                                           "2026-04", "2026-04"]
    assert column(table, "revenue", region="N") == [5.0, 0.0, 0.0, 7.0]
    assert column(table, "previous", region="N") == [None, 5.0, 0.0, 0.0]  # April's previous is March, not January
    assert column(table, "previous", region="S") == [None, 0.0, 3.0, 0.0]


def test_data_after_the_start_only_with_shifts():
    message = str(_raises(metrictree.DataError, DATA, start="2026-06", metrics=["growth"]))
    assert "the data ends in 2026-03, before 2026-06: no rows from then on" in message
    assert "source orders {" in message


# --------------------------------------------------------------------------- grains


GRAIN_TREE = load("""
    source orders {
        time day
    }
    metric amount = sum(orders.amount)
    metric previous = amount[-1]
""")
# Around the 2026/2027 boundary (2026 has an ISO week 53) and around 1970.
GRAIN_ORDERS = pa.table({
    "day": pa.array([D(2026, 12, 27), D(2026, 12, 31), D(2027, 1, 1), D(2027, 1, 4)], pa.date32()),
    "amount": [1.0, 2.0, 4.0, 8.0],
})


@pytest.mark.parametrize(("grain", "periods", "amounts"), [
    ("day", ["2026-12-27", "2026-12-28", "2026-12-29", "2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02",
             "2027-01-03", "2027-01-04"], [1.0, 0.0, 0.0, 0.0, 2.0, 4.0, 0.0, 0.0, 8.0]),
    # Sun Dec 27 is the last day of W52; Dec 31 and Jan 1 are both in 2026-W53; Mon Jan 4 starts 2027-W01.
    ("week", ["2026-W52", "2026-W53", "2027-W01"], [1.0, 6.0, 8.0]),
    ("month", ["2026-12", "2027-01"], [3.0, 12.0]),
    ("quarter", ["2026-Q4", "2027-Q1"], [3.0, 12.0]),
    ("year", ["2026", "2027"], [3.0, 12.0]),
])
def test_every_grain_labels_its_periods(grain, periods, amounts):
    evaluation = GRAIN_TREE.evaluation({"orders": GRAIN_ORDERS}, grain=grain)
    assert evaluation.table["period"].to_pylist() == periods
    assert evaluation.table["amount"].to_pylist() == amounts
    assert evaluation.table["previous"].to_pylist() == [None, *amounts[:-1]]
    assert evaluation.grain == grain


@pytest.mark.parametrize(("grain", "periods", "amounts"), [
    ("day", ["1969-12-28", "1969-12-29", "1969-12-30", "1969-12-31", "1970-01-01"], [1.0, 2.0, 0.0, 4.0, 8.0]),
    ("week", ["1969-W52", "1970-W01"], [1.0, 14.0]),
    ("month", ["1969-12", "1970-01"], [7.0, 8.0]),
    ("quarter", ["1969-Q4", "1970-Q1"], [7.0, 8.0]),
    ("year", ["1969", "1970"], [7.0, 8.0]),
])
def test_dates_before_1970(grain, periods, amounts):
    orders = pa.table({
        "day": pa.array([dt.datetime(1969, 12, 28, 12), dt.datetime(1969, 12, 29), dt.datetime(1969, 12, 31, 23, 59),
                         dt.datetime(1970, 1, 1)], pa.timestamp("us")),
        "amount": [1.0, 2.0, 4.0, 8.0],
    })
    table = GRAIN_TREE.evaluate({"orders": orders}, grain=grain, metrics=["amount"])
    assert table.to_pydict() == {"period": periods, "amount": amounts}


def test_range_arguments_at_a_week_grain():
    # 2026-W53 .. 2027-W01 as --from/--to, and a month label as --to at a week grain.
    table = GRAIN_TREE.evaluate({"orders": GRAIN_ORDERS}, grain="week", start="2026-W53", end="2027-W01")
    assert table.to_pydict() == {"period": ["2026-W53", "2027-W01"], "amount": [6.0, 8.0], "previous": [1.0, 6.0]}
    table = GRAIN_TREE.evaluate({"orders": GRAIN_ORDERS}, grain="week", end="2026-12", metrics=["amount"])
    # December 2026 ends on a Thursday, in 2026-W53, which runs to Sun Jan 3.
    assert table.to_pydict() == {"period": ["2026-W52", "2026-W53"], "amount": [1.0, 6.0]}


def test_the_tree_grain_is_the_default():
    weekly = load("source orders {\n time day\n}\nmetric amount = sum(orders.amount)\n", grain="week")
    assert weekly.evaluate({"orders": GRAIN_ORDERS})["period"].to_pylist() == ["2026-W52", "2026-W53", "2027-W01"]


# --------------------------------------------------------------------------- undefined values


MATH = load("""
    source orders {
        time day
    }
    metric x = sum(orders.x)
    metric y = sum(orders.y)
    metric ratio = x / y
    metric logged = log(y)
    metric root = sqrt(y)
    metric chained = ratio * 2
""")


def test_undefined_math_is_null_with_a_reason_never_inf_nan_or_zero():
    # y by month: 0, -4, 9.
    orders = pa.table({"day": pa.array([D(2026, 1, 1), D(2026, 2, 1), D(2026, 3, 1)], pa.date32()),
                       "x": [3.0, 2.0, 6.0], "y": [0.0, -4.0, 9.0]})
    evaluation = MATH.evaluation({"orders": orders})
    table = evaluation.table
    assert table["ratio"].to_pylist() == [None, -0.5, pytest.approx(2 / 3)]
    assert table["logged"].to_pylist() == [None, None, pytest.approx(math.log(9))]
    assert table["root"].to_pylist() == [0.0, None, 3.0]
    assert table["chained"].to_pylist() == [None, -1.0, pytest.approx(4 / 3)]
    for name in ("ratio", "logged", "root", "chained"):
        values = table[name]
        assert not pc.any(pc.fill_null(pc.or_(pc.is_nan(values), pc.is_inf(values)), False)).as_py()
    assert reasons(evaluation) == {
        ("ratio", "division by zero: y is 0"): (1, {"period": "2026-01"}),
        ("logged", "log(): log of a value ≤ 0"): (2, {"period": "2026-01"}),
        ("root", "sqrt(): square root of a negative value"): (1, {"period": "2026-02"}),
        ("chained", "ratio is null (division by zero: y is 0)"): (1, {"period": "2026-01"}),
    }


def test_nan_and_infinity_in_the_data_become_nulls_with_a_reason():
    orders = pa.table({"day": pa.array([D(2026, 1, 1), D(2026, 2, 1)], pa.date32()),
                       "x": [float("nan"), 1.0], "y": [float("inf"), 2.0]})
    evaluation = MATH.evaluation({"orders": orders}, metrics=["x", "y", "ratio"])
    assert evaluation.table.to_pydict() == {"period": ["2026-01", "2026-02"], "x": [None, 1.0], "y": [None, 2.0],
                                            "ratio": [None, 0.5]}
    why = reasons(evaluation)
    assert why[("x", "not a finite number (NaN or infinity in the data, or a float overflow)")][0] == 1
    assert why[("y", "not a finite number (NaN or infinity in the data, or a float overflow)")][0] == 1
    assert any(metric == "ratio" and "x is null (not a finite number" in reason for metric, reason in why)


def test_the_same_cause_in_two_places_counts_every_row_it_made_null():
    tree = load("""
        source orders {
            time day
        }
        metric a = avg(orders.a)
        metric b = avg(orders.b)
        metric both = avg(orders.a) + avg(orders.b)
    """)
    # a has values only in January, b only in February: each average is empty in one month.
    orders = pa.table({"day": pa.array([D(2026, 1, 1), D(2026, 2, 1)], pa.date32()),
                       "a": [1.0, None], "b": [None, 2.0]})
    evaluation = tree.evaluation({"orders": orders}, metrics=["both"])
    assert evaluation.table["both"].to_pylist() == [None, None]
    assert reasons(evaluation) == {("both", "no rows to average"): (2, {"period": "2026-01"})}


def test_a_null_input_is_blamed_only_for_its_own_rows_and_a_shift_for_the_earlier_period():
    tree = load("""
        source orders {
            time day
        }
        metric revenue = sum(orders.amount)
        metric n = count(orders)
        metric aov = revenue / n
        metric a = avg(orders.a)
        metric both = aov + a
        metric before = aov[-1]
    """)
    # Orders by month: Jan 1 (a = 2), Feb none, Mar 1 (a null).  aov: 1, null, 4.  a: 2, null, null.
    orders = pa.table({"day": pa.array([D(2026, 1, 5), D(2026, 3, 5)], pa.date32()), "amount": [1.0, 4.0],
                       "a": [2.0, None]})
    evaluation = tree.evaluation({"orders": orders}, metrics=["both", "before"])
    assert evaluation.table.to_pydict() == {"period": ["2026-01", "2026-02", "2026-03"], "both": [3.0, None, None],
                                            "before": [None, 1.0, None]}
    assert reasons(evaluation) == {
        ("both", "aov is null (division by zero: n is 0)"): (1, {"period": "2026-02"}),
        ("both", "a is null (no rows to average)"): (2, {"period": "2026-02"}),
        ("before", "aov[-1] falls before the first period of the data"): (1, {"period": "2026-01"}),
        ("before", "aov[-1] is null (division by zero: n is 0)"): (1, {"period": "2026-03"}),
    }


# --------------------------------------------------------------------------- params


def test_params_and_their_override():
    assert SHOP.evaluate(DATA, metrics=["profit"])["profit"].to_pylist() == [68.0, 0.0, 40.0]
    for value in (0.5, "50%", "0.5", 1 / 2):
        table = SHOP.evaluate(DATA, metrics=["profit"], params={"margin": value})
        assert table["profit"].to_pylist() == [85.0, 0.0, 50.0], value


def test_a_param_inside_an_aggregation():
    tree = load("""
        param fee = 10%
        source orders {
            time day
        }
        metric fees = sum(orders.amount * fee)
    """)
    orders = ORDERS.select(["day", "amount"])
    # Jan 100 + 50 + 30 + 20 = 200, Mar 60 + 40 + 10 = 110.
    assert tree.evaluate({"orders": orders})["fees"].to_pylist() == [20.0, 0.0, 11.0]
    assert tree.evaluate({"orders": orders}, params={"fee": 1})["fees"].to_pylist() == [200.0, 0.0, 110.0]


# --------------------------------------------------------------------------- usage errors


def _raises(kind, data=None, tree=SHOP, **kwargs) -> metrictree.MetrictreeError:
    with pytest.raises(kind) as info:
        tree.evaluate(DATA if data is None else data, **kwargs)
    assert isinstance(info.value, metrictree.MetrictreeError) and info.value.diagnostics
    return info.value


@pytest.mark.parametrize(("kwargs", "text"), [
    (dict(grain="mnth"), "error: unknown grain 'mnth'\nhint: did you mean 'month'?"),
    (dict(grain="fortnight"), "error: unknown grain 'fortnight'\nhint: use one of: day, week, month, quarter, year"),
    (dict(by=["regoin"]), "error: unknown dimension 'regoin'\nhint: did you mean 'region'?"),
    (dict(by="region,segment"), "error: unknown dimension 'segment'\nhint: the tree's dimensions: region, channel"),
    (dict(metrics=["revnue"]), "error: unknown metric 'revnue'\nhint: did you mean 'revenue'?"),
    (dict(metrics=["engagement"]), "error: 'engagement' is a grouping node with no formula, so it has no values\n"
                                   "hint: ask for its drivers instead: none"),
    (dict(params={"marginn": 1}), "error: unknown param 'marginn'\nhint: did you mean 'margin'?"),
    (dict(params={"margin": "lots"}), "error: param 'margin' must be a number, got 'lots'\nhint: e.g. 0.65 or 65%"),
    (dict(params={"margin": True}), "error: param 'margin' must be a number, got True\nhint: e.g. 0.65 or 65%"),
    (dict(start="2026-03", end="2026-01"), "error: the range 2026-03..2026-01 is empty: it ends before it starts\n"
                                           "hint: swap --from and --to"),
    (dict(start="2026-13"), "error: '2026-13' is not a valid period: month must be in 1..12"),
    (dict(end="March"), "error: 'March' is not a period"),
])
def test_usage_errors(kwargs, text):
    assert str(_raises(metrictree.UsageError, **kwargs)).startswith(text)


def test_slicing_by_a_dimension_no_source_of_the_metrics_has():
    message = str(_raises(metrictree.UsageError, by=["channel"], metrics=["visits_n"]))
    assert message.startswith("<string>:11:8: error: cannot split by channel: no source the metrics read "
                              "('visits') has that dimension")
    assert "source visits {" in message


def test_metrics_that_read_no_data_need_a_range():
    tree = load("""
        param k = 2
        source orders {
            time day
        }
        metric revenue = sum(orders.amount)
        metric twice = k * 2
    """)
    message = str(_raises(metrictree.UsageError, {"orders": ORDERS}, tree=tree, metrics=["twice"]))
    assert "the metrics asked for read no data" in message and "--from and --to" in message
    table = tree.evaluate({"orders": ORDERS}, metrics=["twice"], start="2026-01", end="2026-02")
    assert table.to_pydict() == {"period": ["2026-01", "2026-02"], "twice": [4.0, 4.0]}


def test_data_errors_name_the_tree_line():
    missing = str(_raises(metrictree.DataError, {"orders": ORDERS}))
    assert missing.startswith("<string>:11:8: error: no data for source 'visits'")
    assert "source visits {" in missing and "data given for: orders" in missing
    column = str(_raises(metrictree.DataError, {"orders": ORDERS.drop(["status"]), "visits": VISITS}))
    assert column.startswith("<string>:16:43: error: source 'orders' has no column 'status' (read by metric "
                             "'revenue')")
    assert 'metric revenue = sum(orders.amount) where orders.status == "paid" { unit RUB }' in column
    wrong = str(_raises(metrictree.DataError, {"orders": ORDERS.set_column(4, "amount", ORDERS["amount"].cast(
        pa.string())), "visits": VISITS}))
    assert wrong.startswith("<string>:16:18: error: sum() needs a numeric column, but the column holds string")
    empty = str(_raises(metrictree.DataError, {"orders": ORDERS, "visits": VISITS.slice(0, 0)}))
    assert empty.startswith("<string>:11:8: error: source 'visits' has no rows")
    out = str(_raises(metrictree.DataError, start="2030-01", end="2030-02", metrics=["paid_orders"]))
    assert "has no rows between 2030-01-01 and 2030-02-28" in out
    time = str(_raises(metrictree.DataError, {"orders": ORDERS, "visits": VISITS.set_column(
        0, "day", VISITS["day"].cast(pa.string()))}))
    assert "the time column 'day' of source 'visits' holds string, not dates or timestamps" in time


@pytest.mark.parametrize(("formula", "message"), [
    ("count(orders) where not orders.amount", "<string>:6:36: error: 'orders.amount' is not a condition"),
    ("sum(-orders.status)", "<string>:6:17: error: 'orders.status' is string, not a number, in -orders.status"),
    ("count(orders) where orders.amount", "error: the filter of 'm' is not a condition"),
    ("sum(orders.amount) where orders.status == 1", "error: cannot compare string with int64"),
    ("count(orders) where orders.status in [1, 2]", "error: cannot look for number values in text values"),
    ("count(orders) where orders.amount in [\"10\"]", "error: cannot look for text values in number values"),
    ("min(orders.status)", "error: min() needs a numeric column, but the column holds string"),
    ("max(orders.day)", "error: max() needs a numeric column, but the column holds date32[day]"),
])
def test_type_mistakes_in_formulas_are_data_errors(formula, message):
    tree = load(f"source orders {{\n    time day\n}}\nmetric m = {formula}\n")
    with pytest.raises(metrictree.DataError) as info:
        tree.evaluate({"orders": ORDERS})
    assert message in str(info.value)
    assert f"metric m = {formula}" in str(info.value)


# --------------------------------------------------------------------------- filters and aggregations


FILTERS = load("""
    source orders {
        time day
        dimensions region
        entity customer
    }
    metric rows = count(orders)
    metric paid = sum(orders.amount) where orders.status == "paid"
    metric not_paid = count(orders) where orders.status != "paid"
    metric listed = count(orders) where orders.status in ["paid", "refunded"]
    metric unlisted = count(orders) where orders.status not in ["paid", "refunded"]
    metric nothing = count(orders) where orders.status in []
    metric mixed = count(orders) where (orders.status == "paid" and orders.amount > 5) or not (orders.amount >= 1)
    metric no_status = count(orders) where orders.status is null
    metric with_status = count(orders) where orders.status is not null
    metric small_or_big = count(orders) where orders.amount < 1 or orders.amount >= 10
    metric whole = count(orders) where orders.amount in [10, 7.5]
    metric margin = sum(orders.amount - orders.cost)
    metric average = avg(orders.amount)
    metric smallest = min(orders.amount)
    metric largest = max(orders.amount)
    metric amounts = count(orders.amount)
    metric customers = count_distinct(orders.customer)
    metric paying = count_distinct(orders.customer) where orders.status == "paid"
""")
# January: rows 1-4; February: nothing; March: row 5.
FILTER_ORDERS = pa.table({
    "day": pa.array([D(2026, 1, 1), D(2026, 1, 2), D(2026, 1, 3), D(2026, 1, 4), D(2026, 3, 1)], pa.date32()),
    "region": ["N", "N", None, "S", "N"],
    "amount": [10.0, None, 0.5, 7.5, 2.0],
    "cost": [4.0, 1.0, 0.5, None, 3.0],
    "status": ["paid", "refunded", None, "paid", "new"],
    "customer": ["a", "a", None, "b", "c"],
})


def test_filters_and_aggregations_with_nulls_in_the_data():
    table = FILTERS.evaluate({"orders": FILTER_ORDERS})
    got = {name: table[name].to_pylist() for name in table.column_names[1:]}
    assert got == {
        "rows": [4, 0, 1],
        "paid": [17.5, 0.0, 0.0],               # 10 + 7.5
        "not_paid": [1, 0, 1],                  # refunded; a null status is neither == nor != "paid"
        "listed": [3, 0, 0],
        "unlisted": [0, 0, 1],                  # like !=, `not in` keeps no null status
        "nothing": [0, 0, 0],
        "mixed": [3, 0, 0],                     # row 1 (paid, 10), row 3 (not 0.5 >= 1), row 4 (paid, 7.5)
        "no_status": [1, 0, 0],
        "with_status": [3, 0, 1],
        "small_or_big": [2, 0, 0],              # 10 and 0.5; the null amount is neither
        "whole": [2, 0, 0],                     # 10 and 7.5, an integer list item against a float column
        "margin": [6.0, 0.0, -1.0],             # (10 - 4) + (0.5 - 0.5); rows with a null side are skipped
        "average": [6.0, None, 2.0],            # (10 + 0.5 + 7.5) / 3 non-null amounts
        "smallest": [0.5, None, 2.0],
        "largest": [10.0, None, 2.0],
        "amounts": [3, 0, 1],
        "customers": [2, 0, 1],                 # a, b (the null customer is not counted)
        "paying": [2, 0, 0],
    }


def test_empty_aggregates_have_reasons():
    evaluation = FILTERS.evaluation({"orders": FILTER_ORDERS}, metrics=["average", "smallest", "largest"])
    assert reasons(evaluation) == {
        ("average", "no rows to average"): (1, {"period": "2026-02"}),
        ("smallest", "no rows with a value"): (1, {"period": "2026-02"}),
        ("largest", "no rows with a value"): (1, {"period": "2026-02"}),
    }


def test_a_null_dimension_value_is_its_own_slice_shown_as_null():
    table = FILTERS.evaluate({"orders": FILTER_ORDERS}, by="region", metrics=["rows", "average", "customers"])
    assert table["region"].to_pylist() == ["N", "S", None] * 3
    got = rows(table, "region")
    assert got[("2026-01", None)] == {"rows": 1, "average": 0.5, "customers": 0}
    assert got[("2026-01", "N")] == {"rows": 2, "average": 10.0, "customers": 1}
    assert got[("2026-03", None)] == {"rows": 0, "average": None, "customers": 0}


def test_dictionary_encoded_strings_filter_and_slice_like_plain_strings():
    encoded = FILTER_ORDERS
    for name in ("region", "status", "customer"):
        encoded = encoded.set_column(encoded.schema.get_field_index(name), name, encoded[name].dictionary_encode())
    for by in ((), ("region",)):
        plain = FILTERS.evaluate({"orders": FILTER_ORDERS}, by=by)
        assert FILTERS.evaluate({"orders": encoded}, by=by).equals(plain)


def test_dictionary_and_plain_dimensions_align_across_sources():
    tree = load("""
        source orders {
            time day
            dimensions region
        }
        source visits {
            time day
            dimensions region
        }
        metric revenue = sum(orders.amount)
        metric visits_n = sum(visits.n)
        metric per_visit = revenue / visits_n
    """)
    orders = pa.table({"day": pa.array([D(2026, 1, 5), D(2026, 1, 6)], pa.date32()),
                       "region": pa.array(["N", None]).dictionary_encode(), "amount": [10.0, 5.0]})
    visits = pa.table({"day": pa.array([D(2026, 1, 5), D(2026, 1, 9)], pa.date32()),
                       "region": pa.array(["N", None], pa.large_string()), "n": [5, 4]})
    table = tree.evaluate({"orders": orders, "visits": visits}, by="region")
    assert table.to_pydict() == {"period": ["2026-01", "2026-01"], "region": ["N", None], "revenue": [10.0, 5.0],
                                 "visits_n": [5, 4], "per_visit": [2.0, 1.25]}


# --------------------------------------------------------------------------- scalar and window functions


FUNCTIONS = load("""
    param k = 2
    source orders {
        time day
        dimensions region
    }
    metric x = sum(orders.x)
    metric y = sum(orders.y)
    metric f_if = if(x > 2, x, -x)
    metric f_coalesce = coalesce(x / y, 0)
    metric f_min = min(x, y, 3)
    metric f_max = max(x, y)
    metric f_abs = abs(y - x)
    metric f_round = round(x / 3, 2)
    metric f_power = power(x, k)
    metric f_bad_power = power(y, 0.5)
    metric f_exp = exp(y)
    metric f_neg = -x + 1
    metric r_sum = rolling_sum(x, 2)
    metric r_avg = rolling_avg(x, 2)
    metric c_sum = cumulative_sum(x)
    metric d = delta(x)
    metric ch = change(x)
    metric ch2 = change(x, k)
    metric back2 = x[-2]
""")
# x by month: N 1, 4, 0, 3 · S 5, 0, 2, 0.   y by month: N 0, 3, 0, 800 · S -1, 0, 6, 0.
FUNCTION_ORDERS = pa.table({
    "day": pa.array([D(2026, 1, 1), D(2026, 2, 2), D(2026, 4, 3), D(2026, 1, 4), D(2026, 3, 1)], pa.date32()),
    "region": ["N", "N", "N", "S", "S"],
    "x": [1, 4, 3, 5, 2],
    "y": [0.0, 3.0, 800.0, -1.0, 6.0],
})


@pytest.fixture(scope="module")
def functions():
    return FUNCTIONS.evaluation({"orders": FUNCTION_ORDERS}, by="region")


@pytest.mark.parametrize(("metric", "north", "south"), [
    ("x", [1, 4, 0, 3], [5, 0, 2, 0]),
    ("f_if", [-1, 4, 0, 3], [5, 0, -2, 0]),
    ("f_coalesce", [0.0, pytest.approx(4 / 3), 0.0, 3 / 800], [-5.0, 0.0, pytest.approx(1 / 3), 0.0]),
    ("f_min", [0.0, 3.0, 0.0, 3.0], [-1.0, 0.0, 2.0, 0.0]),
    ("f_max", [1.0, 4.0, 0.0, 800.0], [5.0, 0.0, 6.0, 0.0]),
    ("f_abs", [1.0, 1.0, 0.0, 797.0], [6.0, 0.0, 4.0, 0.0]),
    ("f_round", [0.33, 1.33, 0.0, 1.0], [1.67, 0.0, 0.67, 0.0]),
    ("f_power", [1.0, 16.0, 0.0, 9.0], [25.0, 0.0, 4.0, 0.0]),
    ("f_bad_power", [0.0, pytest.approx(3 ** 0.5), 0.0, pytest.approx(800 ** 0.5)],
     [None, 0.0, pytest.approx(6 ** 0.5), 0.0]),
    ("f_exp", [1.0, pytest.approx(math.exp(3)), 1.0, None], [pytest.approx(math.exp(-1)), 1.0,
                                                               pytest.approx(math.exp(6)), 1.0]),
    ("f_neg", [0, -3, 1, -2], [-4, 1, -1, 1]),
    # Windows run per slice: N and S never mix.
    ("r_sum", [None, 5, 4, 3], [None, 5, 2, 2]),
    ("r_avg", [None, 2.5, 2.0, 1.5], [None, 2.5, 1.0, 1.0]),
    ("c_sum", [1, 5, 5, 8], [5, 5, 7, 7]),
    ("d", [None, 3, -4, 3], [None, -5, 2, -2]),
    ("ch", [None, 3.0, -1.0, None], [None, -1.0, None, -1.0]),
    ("ch2", [None, None, -1.0, -0.25], [None, None, -0.6, None]),
    ("back2", [None, None, 1, 4], [None, None, 5, 0]),
])
def test_functions_per_slice(functions, metric, north, south):
    assert column(functions.table, metric, region="N") == north
    assert column(functions.table, metric, region="S") == south


def test_function_results_are_int64_or_float64(functions):
    types = {f.name: f.type for f in functions.table.schema}
    assert {types[m] for m in ("x", "f_if", "f_neg", "r_sum", "c_sum", "d", "back2")} == {pa.int64()}
    assert {types[m] for m in ("y", "f_coalesce", "f_min", "f_round", "f_power", "r_avg", "ch")} == {pa.float64()}


def test_function_nulls_have_reasons(functions):
    why = reasons(functions)
    assert why[("f_bad_power", "power(): undefined here (e.g. a negative base with a fractional exponent, or 0 to a "
                               "negative power)")] == (1, {"period": "2026-01", "region": "S"})
    assert why[("f_exp", "exp(): the result overflows a float")] == (1, {"period": "2026-04", "region": "N"})
    assert why[("r_sum", "rolling_sum(): the 2-period window starts before the first period of the data")][0] == 2
    assert why[("r_avg", "rolling_avg(): the 2-period window starts before the first period of the data")][0] == 2
    assert why[("d", "delta(): 1 period(s) earlier is before the first period of the data")][0] == 2
    assert why[("ch", "change(): 1 period(s) earlier is before the first period of the data")][0] == 2
    assert why[("ch", "change(): the value 1 period(s) earlier is 0")] == (2, {"period": "2026-03", "region": "S"})
    assert why[("ch2", "change(): 2 period(s) earlier is before the first period of the data")][0] == 4
    assert why[("back2", "x[-2] falls before the first period of the data")][0] == 4
    # Nothing is null without a reason.
    for name in functions.table.column_names[2:]:
        explained = sum(n.rows for n in functions.nulls if n.metric == name)
        assert explained >= functions.table[name].null_count, name


def test_windows_over_a_metric_with_nulls_do_not_count_them_as_zero():
    tree = load("""
        source orders {
            time day
        }
        metric x = sum(orders.x)
        metric y = sum(orders.y)
        metric ratio = x / y
        metric rolling = rolling_sum(ratio, 2)
        metric running = cumulative_sum(ratio)
    """)
    # ratio by month: 1, null (y is 0), 3, 4.
    orders = pa.table({"day": pa.array([D(2026, m, 1) for m in (1, 2, 3, 4)], pa.date32()),
                       "x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 0.0, 1.0, 1.0]})
    evaluation = tree.evaluation({"orders": orders})
    assert evaluation.table["ratio"].to_pylist() == [1.0, None, 3.0, 4.0]
    assert evaluation.table["rolling"].to_pylist() == [None, None, None, 7.0]
    assert evaluation.table["running"].to_pylist() == [1.0, None, 4.0, 8.0]
    why = reasons(evaluation)
    assert why[("rolling", "rolling_sum(): a value in the 2-period window is null")] == (2, {"period": "2026-02"})
    assert why[("running", "ratio is null (division by zero: y is 0)")] == (1, {"period": "2026-02"})


def test_window_arguments_must_be_whole_periods():
    tree = load("source orders {\n time day\n}\nmetric x = sum(orders.x)\nmetric r = rolling_avg(x, 1.5)\n")
    with pytest.raises(metrictree.DataError) as info:
        tree.evaluate({"orders": FUNCTION_ORDERS})
    assert "rolling_avg() needs a whole number of periods ≥ 1 for n, got 1.5" in str(info.value)
    assert "metric r = rolling_avg(x, 1.5)" in str(info.value)


# --------------------------------------------------------------------------- properties


REGIONS = st.sampled_from(["N", "S", "E", None])


@st.composite
def small_tables(draw):
    n = draw(st.integers(min_value=1, max_value=30))
    days = draw(st.lists(st.dates(min_value=D(1969, 10, 1), max_value=D(1970, 5, 31)), min_size=n, max_size=n))
    regions = draw(st.lists(REGIONS, min_size=n, max_size=n))
    xs = draw(st.lists(st.integers(min_value=-1000, max_value=1000), min_size=n, max_size=n))
    region = pa.array(regions, pa.string())
    if draw(st.booleans()):
        region = region.dictionary_encode()
    return pa.table({"day": pa.array(days, pa.date32()), "region": region, "x": pa.array(xs, pa.int64())})


PROPERTY = load("""
    source orders {
        time day
        dimensions region
    }
    metric total = sum(orders.x)
""")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_tables())
def test_sum_by_month_matches_a_direct_group_by_and_slices_add_up(table):
    month = pc.strftime(table["day"], format="%Y-%m")
    direct = table.append_column("month", month).group_by("month").aggregate([("x", "sum")])
    expected = dict(zip(direct["month"].to_pylist(), direct["x_sum"].to_pylist(), strict=True))

    totals = PROPERTY.evaluate({"orders": table})
    got = dict(zip(totals["period"].to_pylist(), totals["total"].to_pylist(), strict=True))
    # Every month from the first to the last is present; months without rows are 0.
    assert list(got) == sorted(got)
    assert {k: v for k, v in got.items() if k in expected} == expected
    assert all(v == 0 for k, v in got.items() if k not in expected)
    assert min(got) == min(expected) and max(got) == max(expected)

    sliced = PROPERTY.evaluate({"orders": table}, by=["region"])
    plain_regions = pc.cast(table["region"], pa.string())
    by_region = table.set_column(1, "region", plain_regions).append_column("month", month) \
        .group_by(["month", "region"]).aggregate([("x", "sum")])
    expected_slices = {(m, r): x for m, r, x in zip(by_region["month"].to_pylist(), by_region["region"].to_pylist(),
                                                    by_region["x_sum"].to_pylist(), strict=True)}
    regions = sorted(set(plain_regions.to_pylist()), key=lambda r: (r is None, r or ""))
    assert sliced.num_rows == len(got) * len(regions)
    summed: dict[str, int] = {}
    for period, region, value in zip(sliced["period"].to_pylist(), sliced["region"].to_pylist(),
                                     sliced["total"].to_pylist(), strict=True):
        assert value == expected_slices.get((period, region), 0)
        summed[period] = summed.get(period, 0) + value
    assert summed == got
    # Ordered by period, then region (nulls last).
    assert sliced["region"].to_pylist() == regions * len(got)


# --------------------------------------------------------------------------- aggregating.py


def test_each_metric_gets_its_own_partials():
    """Partials shared by id() of an array must keep that array alive: once freed, its id is reused
    by another column and a metric silently gets another metric's sums (m2 was 5 instead of 100)."""
    tree = load("""
        source orders {
            time day
        }
        metric m0 = sum(orders.a * 5) where orders.s == "q"
        metric m1 = min(orders.b - 1)
        metric m2 = sum(orders.c) where orders.s == "q"
        metric m3 = avg(orders.a) where orders.s == "q"
        metric m4 = max(orders.b + 1)
        metric m5 = sum(orders.d) where orders.s == "q"
    """)
    orders = pa.table({"day": pa.array([D(2026, 1, 5)], pa.date32()), "s": ["q"], "a": [1], "b": [2], "c": [100],
                       "d": [1000]})
    table = tree.evaluate({"orders": orders})
    assert table.to_pydict() == {"period": ["2026-01"], "m0": [5], "m1": [1], "m2": [100], "m3": [1.0], "m4": [3],
                                 "m5": [1000]}


def test_row_level_division_by_zero_is_not_a_silent_zero():
    tree = load("source orders {\n time day\n}\nmetric m = sum(orders.x / orders.y)\n")
    orders = pa.table({"day": pa.array([D(2026, 1, 1), D(2026, 2, 1)], pa.date32()), "x": [1.0, 6.0],
                       "y": [0.0, 3.0]})
    evaluation = tree.evaluation({"orders": orders})
    assert evaluation.table["m"].to_pylist() == [None, 2.0]
    assert [(n.metric, n.rows) for n in evaluation.nulls if "division by zero" in n.reason] == [("m", 1)]
