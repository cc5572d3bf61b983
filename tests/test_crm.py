"""The crm plugin: customer-state functions checked by hand on a tiny shop, every worked
example of the `crm` library, and the errors a tree author can make with them.

The customer states run on `shop()`, five customers over January–May 2026 in two regions
(worked out by hand in the table below). The worked examples build tiny Arrow tables whose
aggregates are the example's inputs (800 paid orders worth 2,000,000 …) and check the
library metric's value.
"""

from __future__ import annotations

import datetime as dt
import textwrap

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import metrictree

D = dt.date
JAN, FEB, MAR = D(2026, 1, 15), D(2026, 2, 15), D(2026, 3, 15)
MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]

ORDERS = "source orders { time day dimensions region entity customer_id }"
SURVEYS = "source surveys { time day entity customer_id }"


def tree(*lines: str) -> metrictree.Tree:
    return metrictree.loads(textwrap.dedent("\n".join(lines)))


def value(t: metrictree.Tree, data: dict, metric: str, period: str | None = None, **options) -> float:
    """The metric's value in ``period`` (default: the last period of the result)."""
    table = t.evaluate(data, metrics=[metric], **options)
    labels = table.column("period").to_pylist()
    return table.column(metric)[labels.index(period) if period else -1].as_py()


# --------------------------------------------------------------------------- customer states

# Paid orders by month (refunded ones in brackets: `where orders.status == "paid"` drops them):
#
#   customer  region         Jan          Feb            Mar            Apr          May
#   A         north          5th, 20th    10th           ·              25th         ·
#   B         north → south  10th (north) ·              3rd (south)    2nd (south)  ·
#   C         south          ·            1st, 28th      15th           (10th)       5th
#   D         (no region)    31st         ·              ·              ·            20th
#   E         north          ·            (14th)         20th, 21st     ·            ·
SHOP_ROWS = [
    ("A", "north", D(2026, 1, 5), "paid"), ("A", "north", D(2026, 1, 20), "paid"),
    ("A", "north", D(2026, 2, 10), "paid"), ("A", "north", D(2026, 4, 25), "paid"),
    ("B", "north", D(2026, 1, 10), "paid"), ("B", "south", D(2026, 3, 3), "paid"),
    ("B", "south", D(2026, 4, 2), "paid"),
    ("C", "south", D(2026, 2, 1), "paid"), ("C", "south", D(2026, 2, 28), "paid"),
    ("C", "south", D(2026, 3, 15), "paid"),
    ("C", "south", D(2026, 4, 10), "refunded"), ("C", "south", D(2026, 5, 5), "paid"),
    ("D", None, D(2026, 1, 31), "paid"), ("D", None, D(2026, 5, 20), "paid"),
    ("E", "north", D(2026, 2, 14), "refunded"), ("E", "north", D(2026, 3, 20), "paid"),
    ("E", "north", D(2026, 3, 21), "paid"),
]


def shop() -> dict:
    customer, region, day, status = zip(*SHOP_ROWS, strict=True)
    return {"orders": pa.table({"day": pa.array(day, pa.date32()), "region": pa.array(region, pa.string()),
                                "customer_id": list(customer), "status": list(status),
                                "amount": [100.0] * len(day)})}


PAID = 'where orders.status == "paid"'
STATES = tree(
    ORDERS,
    f"metric active = active_customers(orders) {PAID}",
    f"metric active_45 = active_customers(orders, window=45) {PAID}",
    f"metric new = new_customers(orders) {PAID}",
    f"metric returning = returning_customers(orders) {PAID}",
    f"metric churned = churned_customers(orders) {PAID}",
    f"metric retained = retained_customers(orders) {PAID}",
    f"metric back_after_1 = reactivated_customers(orders, after=1) {PAID}",
    f"metric back_after_2 = reactivated_customers(orders) {PAID}",
    f"metric repeat = repeat_customers(orders) {PAID}",
    f'metric repeat_ever = repeat_customers(orders, over="ever") {PAID}',
    f"metric lifetime = customer_lifetime(orders) {PAID}",
)

# Whole shop, per month (Jan … May), worked out from the table above.
TOTALS = {
    "active": [3, 2, 3, 2, 2],           # {A,B,D} {A,C} {B,C,E} {A,B} {C,D}
    "active_45": [3, 4, 5, 4, 5],        # Feb: B (Jan 10th + 45 days), D (Jan 31st + 45 days) still active
    "new": [3, 1, 1, 0, 0],              # A,B,D; C; E (E's February order was refunded)
    "returning": [0, 1, 2, 2, 2],
    "churned": [0, 2, 1, 2, 2],          # Feb: B, D; Mar: A; Apr: C, E; May: A, B
    "retained": [0, 1, 1, 1, 0],         # Feb: A; Mar: C; Apr: B
    "back_after_1": [0, 0, 1, 1, 2],     # Mar: B; Apr: A; May: C (the refund does not count), D
    "back_after_2": [0, 0, 0, 0, 1],     # May: D, after three months away
    "repeat": [1, 1, 1, 0, 0],           # A in Jan, C in Feb, E in Mar
    "repeat_ever": [1, 2, 3, 2, 2],      # second paid order: A Jan, C Feb, B Mar, E Mar, D May
    "lifetime": [1.0, 1.5, 2.0, 4.0, 4.5],  # Mar: E 1, C 2, B 3; May: C 4, D 5
}

# Per region: (north, south, no region) in each month. States are taken within the slice, so B
# churns from north in February and is a returning (not new) customer of south in March.
BY_REGION = {
    "active": [(2, 0, 1), (1, 1, 0), (1, 2, 0), (1, 1, 0), (0, 1, 1)],
    "active_45": [(2, 0, 1), (2, 1, 1), (2, 2, 1), (2, 2, 0), (2, 2, 1)],
    "new": [(2, 0, 1), (0, 1, 0), (1, 0, 0), (0, 0, 0), (0, 0, 0)],
    "returning": [(0, 0, 0), (1, 0, 0), (0, 2, 0), (1, 1, 0), (0, 1, 1)],
    "churned": [(0, 0, 0), (1, 0, 1), (1, 0, 0), (1, 1, 0), (1, 1, 0)],
    "retained": [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 1, 0), (0, 0, 0)],
    "back_after_1": [(0, 0, 0), (0, 0, 0), (0, 1, 0), (1, 0, 0), (0, 1, 1)],
    "back_after_2": [(0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 1)],
    "repeat": [(1, 0, 0), (0, 1, 0), (1, 0, 0), (0, 0, 0), (0, 0, 0)],
    "repeat_ever": [(1, 0, 0), (1, 1, 0), (1, 2, 0), (1, 1, 0), (0, 1, 1)],
    "lifetime": [(1.0, None, 1.0), (2.0, 1.0, None), (1.0, 2.5, None), (4.0, 4.0, None), (None, 4.0, 5.0)],
}


def by_region(table: pa.Table, metric: str) -> dict[tuple[str, str | None], object]:
    rows = zip(table.column("period").to_pylist(), table.column("region").to_pylist(),
               table.column(metric).to_pylist(), strict=True)
    return {(period, region): v for period, region, v in rows}


@pytest.mark.parametrize("metric", sorted(TOTALS))
def test_customer_states_per_month(metric):
    table = STATES.evaluate(shop(), metrics=[metric])
    assert table.column("period").to_pylist() == MONTHS
    assert table.column(metric).to_pylist() == pytest.approx(TOTALS[metric])


@pytest.mark.parametrize("metric", sorted(BY_REGION))
def test_customer_states_per_month_and_region(metric):
    got = by_region(STATES.evaluate(shop(), by="region", metrics=[metric]), metric)
    expected = {(month, region): v for month, values in zip(MONTHS, BY_REGION[metric], strict=True)
                for region, v in zip(("north", "south", None), values, strict=True)}
    assert got == expected


def test_slices_add_up_to_the_whole_shop_for_counts_within_a_period():
    # A customer is in one region per month here, so per-period counts add up across regions.
    table = STATES.evaluate(shop(), by="region")
    for metric in ("active", "new", "repeat", "back_after_1", "back_after_2"):
        sums = [sum(by_region(table, metric)[(m, r)] for r in ("north", "south", None)) for m in MONTHS]
        assert sums == TOTALS[metric], metric


def test_churn_shows_in_a_month_where_the_slice_has_no_orders():
    # D (no region) bought in January, then nothing until May: February has no orders in that slice,
    # yet D churned from it then.
    got = by_region(STATES.evaluate(shop(), by="region", metrics=["churned", "active"]), "churned")
    assert ("2026-02", None) in got and got[("2026-02", None)] == 1
    assert got[("2026-02", "south")] == 0


def test_null_dimension_is_its_own_slice_not_dropped():
    table = STATES.evaluate(shop(), by="region", metrics=["active"])
    assert set(table.column("region").to_pylist()) == {"north", "south", None}


@pytest.mark.parametrize("region_type", [pa.large_string(), pa.dictionary(pa.int32(), pa.string())])
def test_states_are_the_same_whatever_the_dimension_s_string_type(region_type):
    # Regression: large_string keys kept their null stand-in, so the no-region slice lost its customers.
    orders = shop()["orders"]
    orders = orders.set_column(1, "region", pc.cast(orders.column("region"), region_type))
    table = STATES.evaluate({"orders": orders}, by="region")
    for metric in ("active", "churned", "retained", "lifetime"):
        expected = by_region(STATES.evaluate(shop(), by="region", metrics=[metric]), metric)
        assert by_region(table, metric) == expected, metric


def test_a_null_slice_of_a_numeric_dimension_keeps_its_customers():
    # Regression: Arrow joins never match null keys, so customer A, in the null store both months,
    # was churned and not retained in February.
    data = {"orders": pa.table({"day": pa.array([JAN, FEB, FEB], pa.date32()), "store": pa.array([None, None, 7]),
                                "customer_id": ["A", "A", "B"]})}
    t = tree("source orders { time day dimensions store entity customer_id }",
             "metric churned = churned_customers(orders)", "metric retained = retained_customers(orders)",
             "metric lifetime = customer_lifetime(orders)")
    table = t.evaluate(data, by="store")
    rows = {(p, s): (c, r, life) for p, s, c, r, life in zip(*(table.column(n).to_pylist() for n in (
        "period", "store", "churned", "retained", "lifetime")), strict=True)}
    assert rows[("2026-02", None)] == (0, 1, 2.0)
    assert rows[("2026-02", "7")] == (0, 0, 1.0)  # the result's slices are labels


def test_states_ignore_orders_the_where_filter_drops():
    unfiltered = tree(ORDERS, "metric new = new_customers(orders)",
                      "metric back = reactivated_customers(orders, after=1)")
    table = unfiltered.evaluate(shop())
    # Counting E's refunded February order, E is new in February, not March; C's refunded April
    # order means C is not back in May.
    assert table.column("new").to_pylist() == [3, 2, 0, 0, 0]
    assert table.column("back").to_pylist() == [0, 0, 1, 1, 1]


def test_new_customers_with_start_still_counts_earlier_data():
    # A, B, C and D bought before March: trimming the output must not make them new again.
    table = STATES.evaluate(shop(), start="2026-03", metrics=["new", "returning", "churned", "back_after_2",
                                                               "lifetime", "repeat_ever", "active_45"])
    assert table.column("period").to_pylist() == MONTHS[2:]
    for metric in ("new", "returning", "churned", "back_after_2", "lifetime", "repeat_ever", "active_45"):
        assert table.column(metric).to_pylist() == pytest.approx(TOTALS[metric][2:]), metric


def test_new_customers_with_start_per_region():
    got = by_region(STATES.evaluate(shop(), by="region", start="2026-03", metrics=["new", "churned"]), "new")
    assert got[("2026-03", "north")] == 1  # E
    assert got[("2026-03", "south")] == 0  # B came from north, C bought in February


def test_active_window_reaches_exactly_its_number_of_days():
    # One order on 1 January: window=31 covers 1–31 January; window=32 reaches 1 February.
    t = tree("source orders { time day entity customer_id }",
             "metric w31 = active_customers(orders, window=31)", "metric w32 = active_customers(orders, window=32)",
             "metric marker = count(orders)")
    data = {"orders": pa.table({"day": pa.array([D(2026, 1, 1), D(2026, 3, 1)], pa.date32()),
                                "customer_id": ["A", "B"]})}
    table = t.evaluate(data)
    assert table.column("period").to_pylist() == ["2026-01", "2026-02", "2026-03"]
    assert table.column("w31").to_pylist() == [1, 0, 1]
    assert table.column("w32").to_pylist() == [1, 1, 1]


def test_repeat_customers_min_purchases():
    t = tree(ORDERS, f"metric three = repeat_customers(orders, min_purchases=3) {PAID}",
             f'metric three_ever = repeat_customers(orders, min_purchases=3, over="ever") {PAID}')
    table = t.evaluate(shop())
    assert table.column("three").to_pylist() == [0, 0, 0, 0, 0]
    # Third paid order: A in February (and A again in April), B in April, C in March (and May).
    assert table.column("three_ever").to_pylist() == [0, 1, 1, 2, 1]


# --------------------------------------------------------------------------- crm library: worked examples

CRM = (ORDERS, SURVEYS, "import crm")


def orders(customers: int, day=JAN, amount=1_000.0, cost=0.0, first: int = 0, each: int = 1,
           other_statuses: int = 0) -> pa.Table:
    """``each`` paid orders per customer (ids C<first>…), plus refunded orders of other customers
    (ids after the paying ones) that paid-only metrics must ignore."""
    paid = [f"C{first + i}" for i in range(customers) for _ in range(each)]
    refunded = [f"C{first + customers + i}" for i in range(other_statuses)]
    n = len(paid) + len(refunded)
    return pa.table({"day": pa.array([day] * n, pa.date32()), "region": ["north"] * n,
                     "customer_id": paid + refunded, "status": ["paid"] * len(paid) + ["refunded"] * len(refunded),
                     "amount": pa.array([amount] * n, pa.float64()), "cost": pa.array([cost] * n, pa.float64())})


def surveys(survey: str, counts: dict[int, int], day=JAN) -> pa.Table:
    """``counts[score]`` answers with that score."""
    scores = [score for score, n in counts.items() for _ in range(n)]
    return pa.table({"day": pa.array([day] * len(scores), pa.date32()),
                     "customer_id": [f"S{i}" for i in range(len(scores))],
                     "survey": [survey] * len(scores), "score": pa.array(scores, pa.int64())})


def test_aov():
    data = {"orders": orders(400, amount=2_500, each=2, other_statuses=30)}
    t = tree(*CRM)
    assert value(t, data, "revenue") == pytest.approx(2_000_000)
    assert value(t, data, "paid_orders") == 800
    assert value(t, data, "aov") == pytest.approx(2_500)  # 2,000,000 / 800


def test_purchase_frequency():
    data = {"orders": orders(1_500, each=2, other_statuses=40)}
    t = tree(*CRM)
    assert value(t, data, "paid_orders") == 3_000
    assert value(t, data, "customers") == 1_500
    assert value(t, data, "frequency") == pytest.approx(2)  # 3,000 / 1,500


def retention_data() -> dict:
    """1,000 customers in January; in February 850 of them buy again and 100 new customers buy."""
    return {"orders": pa.concat_tables([orders(1_000), orders(850, FEB), orders(100, FEB, first=1_000),
                                        orders(0, FEB, first=2_000, other_statuses=25)])}


def test_retention_rate():
    t = tree(*CRM)
    data = retention_data()
    assert value(t, data, "customers", "2026-01") == 1_000
    assert value(t, data, "customers", "2026-02") == 950
    assert value(t, data, "new_customers", "2026-02") == 100
    assert value(t, data, "retention_rate", "2026-02") == pytest.approx(0.85)  # (950 − 100) / 1,000


def test_churn_rate_is_one_minus_retention_when_nobody_comes_back():
    t = tree(*CRM)
    data = retention_data()
    assert value(t, data, "churned", "2026-02") == 150
    assert value(t, data, "reactivated", "2026-02") == 0
    churn = value(t, data, "churn_rate", "2026-02")
    assert churn == pytest.approx(0.15)  # 150 lost / 1,000 at the start
    assert churn == pytest.approx(1 - value(t, data, "retention_rate", "2026-02"))


def test_churn_and_retention_do_not_add_up_to_one_with_reactivated_customers():
    # January: C0..C9. February: C0..C7. March: C0..C7, C8 back after a month away, and C10, C11 new.
    t = tree(*CRM)
    data = {"orders": pa.concat_tables([orders(10), orders(8, FEB), orders(9, MAR), orders(2, MAR, first=10)])}
    assert value(t, data, "churn_rate", "2026-03") == pytest.approx(0)  # nobody of February's 8 left
    assert value(t, data, "retention_rate", "2026-03") == pytest.approx(9 / 8)  # (11 − 2) / 8: C8 counts


def test_repeat_purchase_rate():
    data = {"orders": pa.concat_tables([orders(600, each=2), orders(1_400, first=600, other_statuses=50)])}
    t = tree(*CRM)
    assert value(t, data, "repeat_buyers") == 600
    assert value(t, data, "customers") == 2_000
    assert value(t, data, "repeat_rate") == pytest.approx(0.30)  # 600 / 2,000


def test_arpu_and_arpc():
    # 2,000 paying customers at 2,500 each, and 500 users whose only order was refunded.
    data = {"orders": orders(2_000, amount=2_500, other_statuses=500)}
    t = tree(*CRM)
    assert value(t, data, "revenue") == pytest.approx(5_000_000)
    assert value(t, data, "users") == 2_500
    assert value(t, data, "arpu") == pytest.approx(2_000)  # 5,000,000 / 2,500 users
    assert value(t, data, "arpc") == pytest.approx(2_500)  # 5,000,000 / 2,000 paying customers


def test_customer_profitability():
    # 100 paid orders: 1,500 of revenue and 1,200 of costs each; refunded orders count for neither.
    data = {"orders": orders(100, amount=1_500, cost=1_200, other_statuses=10)}
    t = tree(*CRM)
    assert value(t, data, "revenue") == pytest.approx(150_000)
    assert value(t, data, "costs") == pytest.approx(120_000)
    assert value(t, data, "profit") == pytest.approx(30_000)  # 150,000 − 120,000


def test_ltv_is_aov_times_frequency_times_lifetime():
    # January: 100 customers. February: 90 of them, two orders of 1,000 each: churn 10 %, lifetime 10.
    data = {"orders": pa.concat_tables([orders(100), orders(90, FEB, each=2)])}
    t = tree(*CRM)
    assert value(t, data, "aov", "2026-02") == pytest.approx(1_000)
    assert value(t, data, "frequency", "2026-02") == pytest.approx(2)
    assert value(t, data, "lifetime", "2026-02") == pytest.approx(10)  # 1 / 10 %
    assert value(t, data, "ltv", "2026-02") == pytest.approx(20_000)  # 1,000 × 2 × 10


def ltv_margin_data() -> dict:
    """January: 100 customers. February: 95 of them, 2,000 each: ARPU 2,000, churn 5 %."""
    return {"orders": pa.concat_tables([orders(100), orders(95, FEB, amount=2_000)])}


def test_ltv_from_margin_and_churn():
    t = tree(*CRM)
    assert t.params["gross_margin"].value == pytest.approx(0.70)
    assert value(t, ltv_margin_data(), "arpu", "2026-02") == pytest.approx(2_000)
    assert value(t, ltv_margin_data(), "churn_rate", "2026-02") == pytest.approx(0.05)
    assert value(t, ltv_margin_data(), "ltv_margin", "2026-02") == pytest.approx(28_000)  # 2,000 × 70 % / 5 %


def test_ltv_from_margin_follows_the_gross_margin_param():
    t = tree(*CRM)
    got = value(t, ltv_margin_data(), "ltv_margin", "2026-02", params={"gross_margin": 0.5})
    assert got == pytest.approx(20_000)  # 2,000 × 50 % / 5 %


def test_ltv_from_margin_with_the_inputs_as_base_metrics():
    # The formula alone: the tree's own arpu and churn_rate replace the library's.
    t = tree(ORDERS, "import crm (ltv_margin)", "source inputs { time day }",
             "metric arpu = sum(inputs.arpu)", "metric churn_rate = sum(inputs.churn)")
    data = {"inputs": pa.table({"day": pa.array([JAN], pa.date32()), "arpu": [2_000.0], "churn": [0.05]})}
    assert value(t, data, "ltv_margin") == pytest.approx(28_000)


def test_historical_ltv():
    # January: 100 new customers, 1,000 each. February: they buy again, with 50 new ones.
    data = {"orders": pa.concat_tables([orders(100), orders(150, FEB)])}
    t = tree(*CRM)
    assert value(t, data, "historical_ltv", "2026-01") == pytest.approx(1_000)  # 100,000 / 100
    assert value(t, data, "historical_ltv", "2026-02") == pytest.approx(250_000 / 150)
    # To date means from the first data, not from start=.
    assert value(t, data, "historical_ltv", start="2026-02") == pytest.approx(250_000 / 150)


def test_nps():
    # 100 NPS answers: 50 promoters (9–10), 30 passives (7–8), 20 detractors (0–6); CSAT answers are ignored.
    data = {"surveys": pa.concat_tables([surveys("nps", {10: 30, 9: 20, 8: 15, 7: 15, 6: 10, 0: 10}),
                                         surveys("csat", {5: 40, 1: 60})])}
    t = tree(*CRM)
    assert value(t, data, "nps") == pytest.approx(30)  # 50 % − 20 %


def test_csat():
    # 1,000 CSAT answers: 800 rated 4–5; NPS answers are ignored.
    data = {"surveys": pa.concat_tables([surveys("csat", {5: 500, 4: 300, 3: 100, 2: 50, 1: 50}),
                                         surveys("nps", {10: 70, 0: 30})])}
    t = tree(*CRM)
    assert value(t, data, "csat") == pytest.approx(0.80)  # 800 / 1,000


def test_csat_positive_from():
    t = tree(SURVEYS, "metric top_box = csat(surveys.score, positive_from=5)")
    assert value(t, {"surveys": surveys("csat", {5: 500, 4: 300, 1: 200})}, "top_box") == pytest.approx(0.5)


def test_survey_scores_without_answers_are_null_with_a_reason():
    t = tree(*CRM)
    data = {"surveys": surveys("csat", {5: 10})}
    evaluation = t.evaluation(data, metrics=["nps"])
    assert evaluation.table.column("nps").to_pylist() == [None]
    assert "no survey answers" in str(evaluation.nulls)


def test_import_takes_only_the_named_metrics_and_what_they_need():
    t = tree(ORDERS, "import crm (aov)")
    assert {"aov", "revenue", "paid_orders"} <= set(t.metrics)
    assert "ltv" not in t.metrics and "nps" not in t.metrics
    assert value(t, {"orders": orders(400, amount=2_500, each=2)}, "aov") == pytest.approx(2_500)


def test_without_a_surveys_source_the_survey_metrics_are_left_out():
    t = tree(ORDERS, "import crm")
    assert "ltv" in t.metrics and "nps" not in t.metrics and "csat" not in t.metrics


# --------------------------------------------------------------------------- errors

ONE_ORDER = {"orders": pa.table({"day": pa.array([JAN], pa.date32()), "customer_id": ["A"],
                                 "status": ["paid"], "amount": [1.0]})}


def evaluate_error(*lines: str, data=ONE_ORDER) -> metrictree.DataError:
    t = tree(*lines)
    with pytest.raises(metrictree.DataError) as raised:
        t.evaluate(data)
    return raised.value


def test_customer_state_on_a_source_without_entity():
    error = evaluate_error("source orders { time day }", "metric buyers = active_customers(orders)")
    text = str(error)
    assert "metric 'buyers'" in text and "entity" in text and "source 'orders'" in text
    assert "add `entity <column>` to source orders" in text
    assert ":2:" in text  # the metric's line


@pytest.mark.parametrize("call, message", [
    ("active_customers(orders, window=-1)", "window must be a whole number ≥ 0, got -1"),
    ("active_customers(orders, window=1.5)", "window must be a whole number ≥ 0, got 1.5"),
    ("reactivated_customers(orders, after=0)", "after must be a whole number ≥ 1, got 0"),
    ("repeat_customers(orders, min_purchases=0)", "min_purchases must be a whole number ≥ 1, got 0"),
    ('repeat_customers(orders, over="sometimes")', "over must be \"period\" or \"ever\", got 'sometimes'"),
])
def test_bad_options_are_clear_errors(call, message):
    error = evaluate_error("source orders { time day entity customer_id }", f"metric m = {call}")
    text = str(error)
    assert message in text
    assert call.split("(")[0] + "()" in text and ":2:12:" in text
    assert "Traceback" not in text


def test_customer_state_on_a_column_says_to_pass_the_source():
    error = evaluate_error("source orders { time day entity customer_id }", "metric m = new_customers(orders.amount)")
    assert "new_customers() takes the source itself, e.g. new_customers(orders)" in str(error)


def test_nps_on_a_text_column():
    data = {"surveys": pa.table({"day": pa.array([JAN], pa.date32()), "customer_id": ["A"],
                                 "score": ["nine"]})}
    error = evaluate_error(SURVEYS, "metric n = nps(surveys.score)", data=data)
    assert "nps() needs a numeric score column, but the column holds string" in str(error)
    assert "surveys" in str(error)


# --------------------------------------------------------------------------- guests, and a reference by brute force


def test_guest_rows_are_not_customers_and_are_counted():
    # Two returning customers plus a guest (no customer id) each month.
    days = [JAN, JAN, JAN, FEB, FEB, FEB]
    data = {"orders": pa.table({"day": pa.array(days, pa.date32()), "region": ["north"] * 6,
                                "customer_id": ["A", "B", None, "A", "B", None]})}
    t = tree(ORDERS, "metric churned = churned_customers(orders)", "metric active = active_customers(orders)",
             "metric orders_n = count(orders)")
    evaluation = t.evaluation(data)
    assert evaluation.table.column("churned").to_pylist() == [0, 0]
    assert evaluation.table.column("active").to_pylist() == [2, 2]
    assert evaluation.table.column("orders_n").to_pylist() == [3, 3]
    skipped = {s.metric: s for s in evaluation.skipped}
    assert set(skipped) == {"churned", "active"}
    assert skipped["churned"].rows == 2 and "customer_id" in skipped["churned"].reason


def test_guest_rows_are_named_on_stderr_by_the_cli(tmp_path):
    import pyarrow.parquet
    from click.testing import CliRunner

    from metrictree.cli import main

    path = tmp_path / "orders.parquet"
    pyarrow.parquet.write_table(pa.table({"day": pa.array([JAN, FEB, FEB], pa.date32()), "region": ["n"] * 3,
                               "customer_id": ["A", "A", None]}), path)
    tree_file = tmp_path / "t.tree"
    tree_file.write_text(ORDERS + "\nmetric churned = churned_customers(orders)\n")
    result = CliRunner().invoke(main, ["eval", str(tree_file), "--data", f"orders={path}"])
    assert result.exit_code == 0, result.output
    assert "note: churned: 1 row(s) of source 'orders' have no customer_id" in result.stderr
    assert "customer_id" not in result.stdout


def _reference(rows, states):
    """Every state per (period, region) by brute force over Python sets (rows: customer, region, month, paid)."""
    kept = [(c, r, m) for c, r, m, paid in rows if paid and c is not None]
    months = sorted({m for _, _, m, _ in rows})
    regions = {r for _, r, _, _ in rows}
    present = {}
    for c, r, m in kept:
        present.setdefault((r, m), set()).add(c)
    count = {}
    for c, r, m in kept:
        count[(c, r, m)] = count.get((c, r, m), 0) + 1
    first = {}
    for c, _, m in kept:
        first[c] = min(first.get(c, m), m)
    overall = {}
    for c, _, m in kept:
        overall.setdefault(c, set()).add(m)
    out = {}
    for r in regions:
        for i, m in enumerate(months):
            now = present.get((r, m), set())
            before = present.get((r, months[i - 1]), set()) if i else set()
            out[("active", r, m)] = len(now)
            out[("new", r, m)] = sum(first[c] == m for c in now)
            out[("returning", r, m)] = sum(first[c] < m for c in now)
            out[("churned", r, m)] = len(before - now)
            out[("retained", r, m)] = len(before & now)
            out[("repeat", r, m)] = sum(count[(c, r, m)] >= 2 for c in now)

            def back(c, m=m):
                earlier = [p for p in overall[c] if p < m]
                return bool(earlier) and m - max(earlier) - 1 >= 2
            out[("reactivated", r, m)] = sum(back(c) for c in now)
            ages = [m - first[c] + 1 for c in now]
            out[("lifetime", r, m)] = sum(ages) / len(ages) if ages else None
    return {k: v for k, v in out.items() if k[0] in states}


def test_states_equal_a_brute_force_reference_on_random_orders():
    import random

    rng = random.Random(7)
    rows = []
    for _ in range(3000):
        customer = rng.choice([None] * 3 + [f"c{i}" for i in range(150)])
        rows.append((customer, rng.choice(["n", "s", None]), rng.randrange(1, 13), rng.random() < 0.8))
    days = [D(2025, m, 1 + rng.randrange(28)) for _, _, m, _ in rows]
    data = {"orders": pa.table({"day": pa.array(days, pa.date32()), "region": [r for _, r, _, _ in rows],
                                "customer_id": [c for c, _, _, _ in rows],
                                "status": ["paid" if p else "refunded" for *_, p in rows]})}
    names = ("active", "new", "returning", "churned", "retained", "repeat", "reactivated", "lifetime")
    calls = {"active": "active_customers", "new": "new_customers", "returning": "returning_customers",
             "churned": "churned_customers", "retained": "retained_customers", "repeat": "repeat_customers",
             "reactivated": "reactivated_customers", "lifetime": "customer_lifetime"}
    t = tree(ORDERS, *(f"metric {n} = {calls[n]}(orders) {PAID}" for n in names),
             f"metric buyers = count_distinct(orders.customer_id) {PAID}")
    table = t.evaluate(data, by="region")
    expected = _reference(rows, names)
    months = {f"2025-{m:02d}": m for m in range(1, 13)}
    got = {}
    for i in range(table.num_rows):
        r, m = table.column("region")[i].as_py(), months[table.column("period")[i].as_py()]
        for n in names:
            got[(n, r, m)] = table.column(n)[i].as_py()
        assert table.column("buyers")[i].as_py() == got[("active", r, m)]
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
