"""The three stories of issue 9, and the root-cause list's rules: one entry per segment with its parts and its net
effect through the whole tree, ratios as rate vs mix, counts that add up in fact, a reason when nothing is named."""

import datetime as dt
import random

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import metrictree

RETAIL = '''
tree retail
grain month
source invoices {
    time InvoiceDate
    dimensions Country
    entity CustomerID
}
metric revenue = sum(invoices.amount) { unit GBP }
metric sales = sum(invoices.amount) where invoices.Quantity > 0 { unit GBP }
metric orders_count = count_distinct(invoices.InvoiceNo) where invoices.Quantity > 0
metric aov = sales / orders_count { unit GBP label "Average basket" }
'''


@pytest.fixture(scope="module")
def retail():
    """A UCI-like invoice log (200k lines, guests, credit notes, volatile small countries); Germany's basket falls
    175 → 63 GBP in 2024-09."""
    pytest.importorskip("numpy")
    from metrictree.retail import Change, invoice_log

    table = invoice_log(200_000, changes=[Change({"Country": "Germany"}, "2024-09", basket=0.36)])
    table = table.append_column("amount", pc.multiply(pc.cast(table["Quantity"], pa.float64()), table["UnitPrice"]))
    return metrictree.loads(RETAIL, "retail.tree"), {"invoices": table}


@pytest.mark.parametrize("metric", ["revenue", "sales", "aov"])
def test_online_retail_names_germany(retail, metric):
    tree, data = retail
    e = tree.explain(data, metric, "2024-08", "2024-09")
    assert e.root_causes, e.reason
    assert dict(e.root_causes[0].where) == {"Country": "Germany"}
    assert all(dict(c.where) != {"Country": "Spain"} for c in e.root_causes)


def test_online_retail_aov_is_a_rate_cause_and_distinct_invoices_add_up(retail):
    tree, data = retail
    e = tree.explain(data, "aov", "2024-08", "2024-09")
    germany = e.root_causes[0]
    [part] = [p for p in germany.parts if p.metric == "aov"]
    assert part.kind == "rate" and part.current < 0.5 * part.baseline
    # An invoice has one country: its distinct count splits exactly, with no "do not add up" note.
    assert not any("add up" in note for note in e.notes)


SHOP = '''
tree shop
grain month
source orders {
    time day
    dimensions region, channel, segment
    entity customer_id
}
metric revenue = sum(orders.amount) { unit EUR }
metric orders_n = count(orders)
metric aov = revenue / orders_n { unit EUR }
'''


def two_causes(seed: int = 3) -> dict[str, pa.Table]:
    """Six months of a steady shop; in the last, AOV falls to 55 % in North & app and segment = new buys half as
    often."""
    rng = random.Random(seed)
    rows = []
    for month in range(1, 7):
        for region in ("North", "South", "East", "West"):
            for channel in ("app", "web"):
                for segment in ("new", "regular", "vip", "loyal"):
                    n = 60 if segment == "regular" else 40
                    if month == 6 and segment == "new":
                        n //= 2
                    for i in range(n + rng.randint(-3, 3)):
                        price = rng.gauss(100.0, 15.0)
                        if month == 6 and region == "North" and channel == "app":
                            price *= 0.55
                        rows.append((dt.date(2026, month, 1 + i % 28), region, channel, segment, 1000 + i, price))
    names = ("day", "region", "channel", "segment", "customer_id", "amount")
    return {"orders": pa.table({k: [r[i] for r in rows] for i, k in enumerate(names)})}


def test_two_planted_causes_are_both_named():
    tree = metrictree.loads(SHOP, "shop.tree")
    e = tree.explain(two_causes(), "revenue", "2026-05", "2026-06")
    named = [dict(c.where) for c in e.root_causes]
    assert {"segment": "new"} in named
    assert {"region": "North", "channel": "app"} in named


def test_a_cause_is_one_entry_with_its_parts_and_their_net_effect():
    tree = metrictree.loads(SHOP, "shop.tree")
    e = tree.explain(two_causes(), "aov", "2026-05", "2026-06")
    wheres = [tuple(sorted(c.where.items())) for c in e.root_causes]
    assert len(wheres) == len(set(wheres))
    for cause in e.root_causes:
        assert cause.contribution == pytest.approx(sum(p.contribution for p in cause.parts))
        assert cause.share == pytest.approx(cause.contribution / e.change)
    # AOV: North & app's own basket fell (a rate cause); segment = new only weighs less (mix, not a cause).
    assert [dict(c.where) for c in e.root_causes][0] == {"region": "North", "channel": "app"}
    assert {"segment": "new"} not in [dict(c.where) for c in e.root_causes]


def test_the_readme_story_has_no_cancelling_pair(explanation):
    wheres = [tuple(sorted(c.where.items())) for c in explanation.root_causes]
    assert len(wheres) == len(set(wheres))
    assert {"channel": "app", "region": "North"} in [dict(c.where) for c in explanation.root_causes]


def test_the_readme_story_names_the_churn_of_regular_customers(explanation):
    first = explanation.root_causes[0]
    assert dict(first.where) == {"segment": "regular"}
    assert first.parts[0].metric == "churn_rate" and first.parts[0].kind == "rate"
    assert first.share > 0.9


def test_churn_of_regular_customers_is_shown_on_the_branch_that_carries_the_fall(explanation):
    churn = next(d for d in explanation.drivers[2].walk() if d.metric == "churn_rate")
    regular = next(s for s in churn.segments if dict(s.where) == {"segment": "regular"})
    assert regular.baseline == pytest.approx(0.355, abs=0.005) and regular.current == pytest.approx(0.609, abs=0.005)
    assert regular.rate == pytest.approx(regular.contribution - regular.mix)
    assert abs(regular.rate) > 0.9 * abs(churn.contribution)


def test_customer_counts_split_by_the_dimensions_each_customer_falls_in(explanation):
    # A sample customer keeps one region and one segment but orders in several channels.
    [note] = [n for n in explanation.notes if "add up" in n]
    assert "Churned customers" in note and "region and segment" in note and "not across channel" in note


def test_nothing_concentrated_says_so_and_still_shows_the_segments():
    rng = random.Random(11)
    rows = []
    for month in (1, 2, 3, 4):
        for region in ("North", "South", "East", "West"):
            for i in range(80):
                price = rng.gauss(100.0, 10.0) * (0.8 if month == 4 else 1.0)
                rows.append((dt.date(2026, month, 1 + i % 28), region, "web", "regular", i, price))
    names = ("day", "region", "channel", "segment", "customer_id", "amount")
    data = {"orders": pa.table({k: [r[i] for r in rows] for i, k in enumerate(names)})}
    e = metrictree.loads(SHOP, "shop.tree").explain(data, "revenue", "2026-03", "2026-04", by=["region"])
    assert e.root_causes == ()
    assert e.reason.startswith("the fall is spread across every region: ")
    assert any(e.reason[0].upper() + e.reason[1:] in line for line in e.summary())
    assert len(e.segments) == 3


def test_no_history_before_the_baseline_is_said_with_the_reason():
    # Two months of data: the segments can only be compared with one another, not with their usual variation.
    rows = [(dt.date(2026, month, 1 + i % 28), region, "web", "regular", i, 100.0 * (0.8 if month == 2 else 1.0))
            for month in (1, 2) for region in ("North", "South", "East") for i in range(40)]
    names = ("day", "region", "channel", "segment", "customer_id", "amount")
    data = {"orders": pa.table({k: [r[i] for r in rows] for i, k in enumerate(names)})}
    e = metrictree.loads(SHOP, "shop.tree").explain(data, "revenue", "2026-01", "2026-02", by=["region"])
    assert e.root_causes == ()
    assert e.reason.startswith("the fall is spread across every region: ")
    assert e.reason.endswith("(the data has no period before the baseline, so the segments' usual variation could "
                             "not be measured: explain a later period, or give the data more history)")
    # With months before the baseline, the reason says nothing of it.
    earlier = [(dt.date(2025, month, 1 + i % 28), region, "web", "regular", i, 100.0)
               for month in (10, 11, 12) for region in ("North", "South", "East") for i in range(40)]
    data = {"orders": pa.table({k: [r[i] for r in earlier + rows] for i, k in enumerate(names)})}
    later = metrictree.loads(SHOP, "shop.tree").explain(data, "revenue", "2026-01", "2026-02", by=["region"])
    assert later.reason is not None and "no period before the baseline" not in later.reason


def test_internal_names_never_clash_with_dimension_names():
    tree = metrictree.loads(SHOP.replace("region, channel, segment", "baseline, current, d0"), "shop.tree")
    data = two_causes()["orders"].rename_columns(["day", "baseline", "current", "d0", "customer_id", "amount"])
    e = tree.explain({"orders": data}, "revenue", "2026-05", "2026-06")
    assert {"d0": "new"} in [dict(c.where) for c in e.root_causes]


def test_acquisition_drop_in_one_channel_is_named():
    """new_customers counts customers; each has one channel, so it splits exactly by channel."""
    rng = random.Random(5)
    rows = []
    customer = 0
    for month in range(1, 7):
        for channel in ("app", "web", "store"):
            arriving = 120 if not (month == 6 and channel == "app") else 30
            for _ in range(arriving + rng.randint(-8, 8)):
                customer += 1
                rows.append((dt.date(2026, month, 1 + customer % 28), "North", channel, "regular", customer, 50.0))
    names = ("day", "region", "channel", "segment", "customer_id", "amount")
    data = {"orders": pa.table({k: [r[i] for r in rows] for i, k in enumerate(names)})}
    tree = metrictree.loads(SHOP + "metric new_customers = new_customers(orders)\n", "shop.tree")
    e = tree.explain(data, "new_customers", "2026-05", "2026-06")
    assert not any("add up" in note for note in e.notes)
    assert [dict(c.where) for c in e.root_causes][:1] == [{"channel": "app"}]


def test_a_pure_mix_shift_is_mix_not_a_cause():
    """More orders from the cheap channel, every channel's basket unchanged: AOV falls by mix alone."""
    rng = random.Random(9)
    rows = []
    for month in range(1, 6):
        for channel, price, n in (("web", 120.0, 200), ("app", 100.0, 200), ("marketplace", 50.0, 100)):
            n = n * 2 if month == 5 and channel == "marketplace" else n
            for i in range(n + rng.randint(-5, 5)):
                rows.append((dt.date(2026, month, 1 + i % 28), "North", channel, "regular", i,
                             rng.gauss(price, price * 0.1)))
    names = ("day", "region", "channel", "segment", "customer_id", "amount")
    data = {"orders": pa.table({k: [r[i] for r in rows] for i, k in enumerate(names)})}
    e = metrictree.loads(SHOP, "shop.tree").explain(data, "aov", "2026-04", "2026-05", by=["channel"])
    assert {"channel": "marketplace"} not in [dict(c.where) for c in e.root_causes]
    [marketplace] = [m for m in e.mix if dict(m.where) == {"channel": "marketplace"}]
    assert marketplace.mix < 0 and abs(marketplace.mix) > 10 * abs(marketplace.rate)
    text = e.to_markdown()
    assert "channel = marketplace: its weight in aov moved, not its own value" in text


def test_top_caps_the_list_and_json_carries_parts_reason_and_mix():
    tree = metrictree.loads(SHOP, "shop.tree")
    data = two_causes()
    assert len(tree.explain(data, "revenue", "2026-05", "2026-06").root_causes) >= 2
    capped = tree.explain(data, "revenue", "2026-05", "2026-06", top=1)
    assert len(capped.root_causes) == 1
    found = capped.to_dict()
    assert {"reason", "mix"} <= set(found)
    part = found["root_causes"][0]["parts"][0]
    assert {"metric", "label", "kind", "baseline", "current", "change", "contribution", "exact"} <= set(part)


def test_the_html_says_why_no_root_cause_is_named():
    from metrictree.reporting import explanation_html

    rows = [(dt.date(2026, m, 1 + i % 28), r, "web", "regular", i, 100.0 * (0.8 if m == 4 else 1.0) + (i % 7))
            for m in (1, 2, 3, 4) for r in ("North", "South", "East") for i in range(60)]
    names = ("day", "region", "channel", "segment", "customer_id", "amount")
    data = {"orders": pa.table({k: [r[i] for r in rows] for i, k in enumerate(names)})}
    e = metrictree.loads(SHOP, "shop.tree").explain(data, "revenue", "2026-03", "2026-04", by=["region"])
    assert e.root_causes == () and e.reason
    assert "The fall is spread across every region" in explanation_html(e)
