"""The ecommerce, saas and email libraries: every worked example of their definitions, the
closing_sum function, the bundled trees that use them, and imports that must not clash.

Each worked example builds a tiny Arrow table whose aggregates are the example's inputs
(350 new customers, 500,000 + 200,000 of spend …) and checks the library metric's value.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from importlib.resources import files

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import metrictree
from metrictree import pluginmanager
from metrictree.functions import AggregateContext
from metrictree.plugins.saas import CLOSING_SUM
from metrictree.sample import sample_data

D = dt.date
JAN, FEB = D(2026, 1, 15), D(2026, 2, 15)
LAST_MONTH = "2026-10"

# Entity functions (new_customers, churned_customers) need the planner's custom partials, and
# closing_sum needs the planner to pass the source's time column to plugins (AggregateContext.time).

SOURCES = {
    "orders": "source orders { time day dimensions channel entity customer_id }",
    "traffic": "source traffic { time day dimensions channel }",
    "spend": "source spend { time day dimensions channel }",
    "subscriptions": "source subscriptions { time day dimensions plan entity account_id }",
    "emails": "source emails { time day dimensions campaign }",
}


def tree(*lines: str) -> metrictree.Tree:
    return metrictree.loads(textwrap.dedent("\n".join(lines)))


def value(t: metrictree.Tree, data: dict, metric: str, period: str | None = None) -> float:
    """The metric's value in ``period`` (default: the last period of the result)."""
    table = t.evaluate(data, metrics=[metric])
    labels = table.column("period").to_pylist()
    return table.column(metric)[labels.index(period) if period else -1].as_py()


# --------------------------------------------------------------------------- tiny tables


def orders(customers: int, day=JAN, amount=1000.0, cost=0.0, first: int = 0, other_statuses: int = 0) -> pa.Table:
    """One paid order per customer (ids C<first>…), plus some refunded orders the metrics must ignore."""
    n = customers + other_statuses
    return pa.table({
        "day": pa.array([day] * n, pa.date32()),
        "channel": ["web"] * n,
        "customer_id": [f"C{first + i}" for i in range(n)],
        "status": ["paid"] * customers + ["refunded"] * other_statuses,
        "amount": [amount] * n,
        "cost": [cost] * n,
    })


def spend(marketing: float, sales: float = 0.0, day=JAN) -> pa.Table:
    return pa.table({"day": pa.array([day] * 3, pa.date32()), "channel": ["web", "app", "web"],
                     "kind": ["marketing", "marketing", "sales"],
                     "amount": [marketing * 0.75, marketing * 0.25, sales]})


def traffic(sessions: int = 0, leads: int = 0) -> pa.Table:
    return pa.table({"day": pa.array([JAN, D(2026, 1, 20)], pa.date32()), "channel": ["web", "app"],
                     "sessions": [sessions - sessions // 3, sessions // 3], "leads": [leads - leads // 4, leads // 4]})


def emails(**counts: int) -> pa.Table:
    """Two sends whose counts add up to ``counts`` (sent, bounced, delivered, opened, clicked, conversions)."""
    columns = {"day": pa.array([JAN, D(2026, 1, 22)], pa.date32()), "campaign": ["promo", "digest"]}
    for name in ("sent", "bounced", "delivered", "opened", "clicked", "conversions"):
        total = counts.get(name, 0)
        columns[name] = [total - total // 2, total // 2]
    return pa.table(columns)


# Within one month every paying customer is new: this stands in for crm's new_customers() (an
# entity function) so the ecommerce formulas are checked on their own; test_cac_with_crm_new_customers
# checks the real thing.
SHOP = (SOURCES["orders"], SOURCES["traffic"], SOURCES["spend"], "import crm, ecommerce",
        'metric new_customers = count_distinct(orders.customer_id) where orders.status == "paid"')


# --------------------------------------------------------------------------- ecommerce: worked examples


def test_cac():
    t = tree(*SHOP)
    data = {"orders": orders(350, other_statuses=20), "spend": spend(500_000, 200_000)}
    assert value(t, data, "acquisition_spend") == pytest.approx(700_000)
    assert value(t, data, "cac") == pytest.approx(2_000)  # (500,000 + 200,000) / 350


def test_cac_is_not_controllable_by_crm_and_not_external():
    cac = tree(*SHOP).metrics["cac"]
    assert cac.controllable is False and cac.external is False
    assert cac.owner == "Marketing" and cac.direction == "down"
    assert "controllable no" in cac.description and "not `external`" in cac.description


def test_cac_with_crm_new_customers():
    # C0..C99 bought in January; in February 100 of them come back and 350 new customers buy.
    t = tree(SOURCES["orders"], SOURCES["traffic"], SOURCES["spend"], "import crm, ecommerce")
    data = {"orders": pa.concat_tables([orders(100), orders(100, FEB), orders(350, FEB, first=100)]),
            "spend": pa.concat_tables([spend(1, 1), spend(500_000, 200_000, FEB)])}
    assert value(t, data, "new_customers", "2026-02") == 350
    assert value(t, data, "cac", "2026-02") == pytest.approx(2_000)


def test_cpa():
    t = tree(*SHOP)
    data = {"orders": orders(200, other_statuses=15), "spend": spend(100_000, sales=70_000)}
    assert value(t, data, "cpa") == pytest.approx(500)  # 100,000 / 200: sales spend is not in it


def test_cpl():
    t = tree(*SHOP)
    data = {"traffic": traffic(sessions=20_000, leads=1_000), "spend": spend(50_000, sales=9_000)}
    assert value(t, data, "leads") == 1_000
    assert value(t, data, "cpl") == pytest.approx(50)  # 50,000 / 1,000


def test_ltv_cac():
    # LTV stands in as a plain number here (crm's LTV needs churn over two periods).
    t = tree(*SHOP, "source values { time day }", "metric ltv = sum(values.ltv)")
    data = {"orders": orders(100), "spend": spend(200_000, 100_000),
            "values": pa.table({"day": pa.array([JAN], pa.date32()), "ltv": [15_000.0]})}
    assert value(t, data, "cac") == pytest.approx(3_000)
    assert value(t, data, "ltv_cac") == pytest.approx(5)  # 15,000 / 3,000


def test_payback_period():
    # 100 new customers; each paid 5,000 for goods that cost 3,000: 2,000 of profit a customer a month.
    t = tree(*SHOP)
    data = {"orders": orders(100, amount=5_000, cost=3_000, other_statuses=7), "spend": spend(400_000, 200_000)}
    assert value(t, data, "cac") == pytest.approx(6_000)
    assert value(t, data, "profit_per_customer") == pytest.approx(2_000)
    assert value(t, data, "cac_payback") == pytest.approx(3)  # 6,000 / 2,000: three months


def test_romi():
    # Income: gross profit 100 × (5,000 − 2,000) = 300,000; cost: marketing spend 100,000.
    t = tree(*SHOP)
    data = {"orders": orders(100, amount=5_000, cost=2_000), "spend": spend(100_000, sales=50_000)}
    assert value(t, data, "romi") == pytest.approx(2.0)  # (300,000 − 100,000) / 100,000 = 200 %


def test_conversion_rate_and_the_revenue_funnel():
    t = tree(*SHOP)
    data = {"orders": orders(300, amount=2_500, other_statuses=40), "traffic": traffic(sessions=10_000)}
    assert value(t, data, "conversion_rate") == pytest.approx(0.03)  # 300 / 10,000
    assert value(t, data, "funnel_revenue") == pytest.approx(value(t, data, "revenue")) == pytest.approx(750_000)


def test_lead_conversion():
    t = tree(*SHOP)
    data = {"orders": orders(50), "traffic": traffic(sessions=9_000, leads=500)}
    assert value(t, data, "lead_conversion") == pytest.approx(0.10)  # 50 / 500


def test_ecommerce_needs_crm_and_says_so():
    with pytest.raises(metrictree.CompileError, match="ecommerce's 'cac' cannot be imported: it needs new_customers"):
        tree(SOURCES["orders"], SOURCES["spend"], "import ecommerce (cac)")
    alone = tree(SOURCES["traffic"], SOURCES["spend"], "import ecommerce")
    assert {"sessions", "leads", "cpl", "acquisition_spend"} <= set(alone.metrics)
    assert "cac" not in alone.metrics and "conversion_rate" not in alone.metrics


# --------------------------------------------------------------------------- saas: worked examples

SAAS = (SOURCES["subscriptions"], SOURCES["spend"], "import saas")


def subscriptions() -> pa.Table:
    """January: accounts A0..A99 at 1,000 a month. February: A0..A94 stay, A100..A109 are new."""
    jan = [f"A{i}" for i in range(100)]
    feb = [f"A{i}" for i in range(95)] + [f"A{i}" for i in range(100, 110)]
    return pa.table({"day": pa.array([D(2026, 1, 1)] * 100 + [D(2026, 2, 1)] * 105, pa.date32()),
                     "plan": ["pro"] * 205, "account_id": jan + feb, "mrr": [1_000.0] * 205})


def saas_data() -> dict:
    return {"subscriptions": subscriptions(),
            "spend": pa.concat_tables([spend(1, 0), spend(30_000, 10_000, FEB)])}


def test_mrr_and_arpa():
    t = tree(*SAAS)
    assert value(t, saas_data(), "mrr", "2026-02") == pytest.approx(105_000)
    assert value(t, saas_data(), "paying_accounts", "2026-02") == 105
    assert value(t, saas_data(), "arpa", "2026-02") == pytest.approx(1_000)  # 105,000 / 105
    assert value(t, saas_data(), "arr", "2026-02") == pytest.approx(1_260_000)


def test_subscription_churn():
    t = tree(*SAAS)
    assert value(t, saas_data(), "churned_accounts", "2026-02") == 5
    assert value(t, saas_data(), "account_churn", "2026-02") == pytest.approx(0.05)  # 5 lost / 100 at the start


def test_account_ltv_cac_and_payback():
    t = tree(*SAAS)
    data = saas_data()
    assert value(t, data, "account_ltv", "2026-02") == pytest.approx(16_000)  # 1,000 × 80 % / 5 %
    assert value(t, data, "new_accounts", "2026-02") == 10
    assert value(t, data, "account_cac", "2026-02") == pytest.approx(4_000)  # (30,000 + 10,000) / 10
    assert value(t, data, "account_payback", "2026-02") == pytest.approx(5)  # 4,000 / (1,000 × 80 %)
    assert value(t, data, "account_ltv_cac", "2026-02") == pytest.approx(4)  # 16,000 / 4,000


def test_account_cac_is_not_controllable_and_not_external():
    cac = tree(*SAAS).metrics["account_cac"]
    assert cac.controllable is False and cac.external is False and cac.owner == "Marketing"


def test_subscription_margin_is_a_param():
    assert tree(*SAAS).params["subscription_margin"].value == pytest.approx(0.8)


# --------------------------------------------------------------------------- closing_sum


def plan_closing(period: list[int], time: list, values: pa.Array) -> dict[int, float]:
    """closing_sum's partial for rows with these periods and times, summed per period as the planner does."""
    ctx = AggregateContext("s", len(period), pa.array(period, pa.int32()), time=pa.array(time, pa.date32()))
    (partial,) = CLOSING_SUM.plan(ctx, values)
    assert partial.how == "sum" and partial.empty == 0
    grouped = pa.table({"p": ctx.period, "v": partial.values}).group_by("p").aggregate(
        [("v", "sum", pc.ScalarAggregateOptions(min_count=0))])
    return dict(zip(grouped.column("p").to_pylist(), grouped.column("v_sum").to_pylist(), strict=True))


def test_closing_sum_takes_the_last_snapshot_of_each_period():
    # Period 0 has snapshots on the 1st and the 15th; period 1 one snapshot, on the 1st.
    period = [0, 0, 0, 0, 1]
    time = [D(2026, 1, 1), D(2026, 1, 1), D(2026, 1, 15), D(2026, 1, 15), D(2026, 2, 1)]
    assert plan_closing(period, time, pa.array([10.0, 20.0, 30.0, 40.0, 50.0])) == {0: 70.0, 1: 50.0}


def test_closing_sum_counts_a_condition_and_closes_at_zero_without_rows_at_the_close():
    period = [0, 0, 0]
    time = [D(2026, 1, 1), D(2026, 1, 31), D(2026, 1, 31)]
    assert plan_closing(period, time, pc.greater(pa.array([5.0, 0.0, 7.0]), 0.0)) == {0: 1}
    # A value only on the 1st: the period closes on the 31st, when that row's slice had none.
    assert plan_closing(period, time, pa.array([5.0, None, None], pa.float64())) == {0: 0.0}


def test_closing_sum_rejects_text_and_the_source_itself():
    assert "numeric column" in CLOSING_SUM.check(pa.string())
    assert "not the source itself" in CLOSING_SUM.check(None)
    assert CLOSING_SUM.check(pa.float64()) is None and CLOSING_SUM.check(pa.bool_()) is None


def test_closing_sum_at_grain_quarter_is_the_last_month():
    t = tree(*SAAS)
    table = t.evaluate(saas_data(), grain="quarter", metrics=["mrr"])
    assert table.column("mrr").to_pylist() == [105_000.0]  # February's, not January + February


def test_closing_sum_is_registered_by_the_saas_plugin():
    registry = pluginmanager.registry()
    assert registry.owner(registry.aggregates["closing_sum"]) == "metrictree.plugins.saas"


# --------------------------------------------------------------------------- email: worked examples

MAIL = (SOURCES["emails"], "import email")


def test_open_rate():
    data = {"emails": emails(sent=10_000, bounced=500, delivered=9_500, opened=2_000)}
    assert value(tree(*MAIL), data, "open_rate") == pytest.approx(2_000 / 9_500)  # 21.05 %
    assert round(value(tree(*MAIL), data, "open_rate"), 4) == 0.2105


def test_ctr_and_click_to_open():
    data = {"emails": emails(sent=10_300, bounced=300, delivered=10_000, opened=2_000, clicked=500)}
    assert value(tree(*MAIL), data, "ctr") == pytest.approx(0.05)  # 500 / 10,000 delivered
    assert value(tree(*MAIL), data, "ctor") == pytest.approx(0.25)  # 500 / 2,000 opens


def test_bounce_rate():
    data = {"emails": emails(sent=10_000, bounced=300, delivered=9_700)}
    assert value(tree(*MAIL), data, "bounce_rate") == pytest.approx(0.03)  # 300 / 10,000


def test_conversion_from_mailings():
    data = {"emails": emails(sent=10_000, bounced=300, delivered=9_700, conversions=150)}
    assert value(tree(*MAIL), data, "email_conversion") == pytest.approx(0.015)  # 150 / 10,000 sent


def test_email_rates_by_campaign():
    data = {"emails": emails(sent=10_000, bounced=400, delivered=9_600, opened=3_000)}
    table = tree(*MAIL).evaluate(data, by="campaign", metrics=["open_rate"])
    rates = dict(zip(table.column("campaign").to_pylist(), table.column("open_rate").to_pylist(), strict=True))
    assert rates == {"digest": pytest.approx(1_500 / (5_000 - 200)), "promo": pytest.approx(1_500 / 4_800)}


# --------------------------------------------------------------------------- documentation


LIBRARIES = ("ecommerce", "saas", "email")
ALL_SOURCES = "\n".join(SOURCES.values())


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_library_metric_is_labelled_and_every_formula_described(library):
    t = tree(ALL_SOURCES, f"import crm, {library}")
    own = [m for m in t.metrics.values() if m.library == library]
    assert len(own) >= 10
    for metric in own:
        assert metric.label, metric.name
        if metric.kind == "derived":
            assert metric.description, f"{library}'s {metric.name} has no description"


@pytest.mark.parametrize(("library", "tree_name"), [("ecommerce", "ecommerce_revenue"), ("saas", "saas_mrr"),
                                                   ("email", "email_engagement")])
def test_libraries_and_trees_are_registered_by_their_plugins(library, tree_name):
    registry = pluginmanager.registry()
    assert registry.owner(registry.libraries[library]) == f"metrictree.plugins.{library}"
    assert registry.libraries[library].doc
    shipped = registry.trees[tree_name]
    assert registry.owner(shipped) == f"metrictree.plugins.{library}" and shipped.doc
    assert shipped.path.read_text("utf-8") == files("metrictree.trees").joinpath(f"{tree_name}.tree").read_text("utf-8")


# --------------------------------------------------------------------------- imports together


@pytest.mark.parametrize("imports", ["ecommerce, email", "saas, email", "ecommerce, saas", "crm, saas",
                                     "crm, ecommerce, saas, email"])
def test_libraries_import_together_without_clashes(imports):
    t = tree(ALL_SOURCES, f"import {imports}")
    assert t.warnings == ()
    for library in imports.split(", "):
        assert any(m.library == library for m in t.metrics.values()), library


def test_crm_and_saas_keep_their_own_arpu_ltv_and_churn():
    t = tree(ALL_SOURCES, "import crm, saas")
    libraries = {name: t.metrics[name].library for name in ("arpu", "arpa", "ltv", "account_ltv", "churn_rate",
                                                            "account_churn")}
    assert libraries == {"arpu": "crm", "arpa": "saas", "ltv": "crm", "account_ltv": "saas", "churn_rate": "crm",
                         "account_churn": "saas"}


# --------------------------------------------------------------------------- the bundled trees


TREES = ("ecommerce_revenue", "saas_mrr", "email_engagement")


def bundled(name: str) -> metrictree.Tree:
    return metrictree.load(str(files("metrictree.trees").joinpath(f"{name}.tree")))


@pytest.mark.parametrize("name", TREES)
def test_bundled_tree_compiles_without_warnings(name):
    t = bundled(name)
    assert t.warnings == ()
    assert {m.library for m in t.metrics.values()} - {None}, "the tree imports a library"


def top_metrics(t: metrictree.Tree) -> list[str]:
    """The roots of the tree, with a grouping root replaced by its children."""
    tops = []
    for name in t.metrics:
        if t.graph.in_degree(name) == 0:
            tops.extend(t.graph.successors(name) if t.metrics[name].kind == "group" else [name])
    return tops


def check_last_month(name: str) -> None:
    t = bundled(name)
    table = t.evaluate(sample_data())
    last = table.filter(pc.equal(table.column("period"), LAST_MONTH))
    assert last.num_rows == 1
    tops = top_metrics(t)
    assert tops
    for metric in tops:
        assert last.column(metric)[0].as_py() is not None, f"{name}: {metric} is null in {LAST_MONTH}"


def test_email_tree_evaluates_on_the_sample():
    check_last_month("email_engagement")
    t = bundled("email_engagement")
    table = t.evaluate(sample_data(), start=LAST_MONTH, metrics=["email_conversion"])
    # The tree's email_conversion is the library's (conversions / sent), written as its steps.
    direct = sample_data()["emails"].filter(pc.greater_equal(sample_data()["emails"].column("sent_at"),
                                                             pa.scalar(D(2026, 10, 1))))
    expected = pc.sum(direct["conversions"]).as_py() / pc.sum(direct["sent"]).as_py()
    assert table.column("email_conversion")[0].as_py() == pytest.approx(expected)


def test_email_tree_shows_the_regular_open_rate_fall():
    table = bundled("email_engagement").evaluate(sample_data(), by="segment", start="2026-09", metrics=["open_rate"])
    rate = {(r["period"], r["segment"]): r["open_rate"] for r in table.to_pylist()}
    assert rate[("2026-10", "regular")] < rate[("2026-09", "regular")] - 0.08
    assert abs(rate[("2026-10", "vip")] - rate[("2026-09", "vip")]) < 0.03


def test_ecommerce_tree_evaluates_on_the_sample():
    check_last_month("ecommerce_revenue")


def test_saas_tree_evaluates_on_the_sample():
    check_last_month("saas_mrr")


def test_ecommerce_tree_conversion_falls_in_the_last_month():
    t = bundled("ecommerce_revenue")
    table = t.evaluate(sample_data(), start="2026-08", metrics=["conversion_rate", "sessions", "funnel_revenue",
                                                               "revenue"])
    conversion = table.column("conversion_rate").to_pylist()
    sessions = table.column("sessions").to_pylist()
    assert conversion[2] < conversion[1] - 0.004 and abs(conversion[1] - conversion[0]) < 0.002
    assert sessions[2] > 0.97 * sessions[1]
    assert table.column("funnel_revenue").to_pylist() == pytest.approx(table.column("revenue").to_pylist())
