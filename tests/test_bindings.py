"""Libraries bound to the tree's data: ``import crm (…) with orders = invoices { amount = … }``.

The numbers are checked against DuckDB reading the same CSV files with its own
parser and SQL, written from the libraries' definitions (tests/data/retail*.csv are
small enough to check by hand too: see the comments).
"""

from __future__ import annotations

from pathlib import Path

import metrictree
import pytest
from metrictree import syntax as s
from metrictree.errors import CompileError, TreeSyntaxError

DATA = Path(__file__).resolve().parent / "data"
MONTHS = ["2024-09", "2024-10", "2024-11"]

duckdb = pytest.importorskip("duckdb", reason="the independent check runs the same numbers in DuckDB")

RETAIL = '''
tree retail "Online retail"
currency GBP

source invoices {
    time InvoiceDate format "%d/%m/%Y %H:%M" timezone "Europe/London"
    entity CustomerID
    dimensions Country
}

param cost_share = 60% { label "Cost of goods, as a share of the price" }

import crm (ltv, churn_rate, arpc, profit, new_customers, repeat_rate) with orders = invoices {
    amount = invoices.Quantity * invoices.UnitPrice
    cost = invoices.Quantity * invoices.UnitPrice * cost_share
    customer_id = invoices.CustomerID
    status = if(invoices.Quantity < 0, "credit note", "paid")
}

# crm counts one row per order; here an invoice has a row per product line.
metric paid_orders = count_distinct(invoices.InvoiceNo) where invoices.Quantity > 0 { label "Paid orders" }
'''


def retail_data() -> dict:
    return {"invoices": DATA / "retail.csv"}


def rows(tree: str, data: dict, **options) -> dict[str, dict]:
    table = metrictree.loads(tree, "retail.tree").evaluate(data, **options)
    return {r["period"]: r for r in table.to_pylist()}


def sql(query: str) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def by_month(query: str) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in sql(query)}


INVOICES = f"""
    (SELECT InvoiceNo, CAST(Quantity AS INTEGER) AS q, CAST(UnitPrice AS DOUBLE) AS p, CustomerID AS c,
            strftime(strptime(InvoiceDate, '%d/%m/%Y %H:%M'), '%Y-%m') AS m
     FROM read_csv('{DATA / "retail.csv"}', all_varchar = true))
"""


# --------------------------------------------------------------------------- crm


def test_crm_on_retail_data_equals_duckdb():
    got = rows(RETAIL, retail_data())
    base = by_month(f"""
        SELECT m, sum(q * p), count(DISTINCT InvoiceNo), count(DISTINCT c)
        FROM {INVOICES} WHERE q > 0 GROUP BY m ORDER BY m""")
    buyers = {m: {r[0] for r in sql(f"SELECT DISTINCT c FROM {INVOICES} WHERE q > 0 AND m = '{m}' AND c IS NOT NULL")}
              for m in MONTHS}
    # Hand check of the fixture: September's paid invoices are 536365–536369 and 536371; its customers
    # 17850, 13047 and 12583 (two guest invoices have no CustomerID).
    assert base["2024-09"][1:] == (6, 3)
    assert list(got) == MONTHS
    for i, m in enumerate(MONTHS):
        revenue, orders, customers = base[m]
        r = got[m]
        assert r["revenue"] == pytest.approx(revenue)
        assert r["paid_orders"] == orders
        assert r["customers"] == customers
        assert r["profit"] == pytest.approx(revenue * 0.4)
        assert r["aov"] == pytest.approx(revenue / orders)
        assert r["arpc"] == pytest.approx(revenue / customers)
        earlier = set().union(*(buyers[x] for x in MONTHS[:i]))
        assert r["new_customers"] == len(buyers[m] - earlier)
        if i == 0:
            assert r["churn_rate"] is None
            continue
        churned = len(buyers[MONTHS[i - 1]] - buyers[m])
        churn_rate = churned / len(buyers[MONTHS[i - 1]])
        assert r["churned"] == churned
        assert r["churn_rate"] == pytest.approx(churn_rate)
        assert r["ltv"] == pytest.approx(revenue / orders * orders / customers / churn_rate)


def test_repeat_buyers_count_rows_of_the_bound_source():
    got = rows(RETAIL, retail_data())
    repeat = by_month(f"""
        SELECT m, count(*) FROM (SELECT m, c FROM {INVOICES} WHERE q > 0 AND c IS NOT NULL
                                 GROUP BY m, c HAVING count(*) >= 2) GROUP BY m""")
    for m in MONTHS:
        assert got[m]["repeat_buyers"] == repeat.get(m, (0,))[0]
        assert got[m]["repeat_rate"] == pytest.approx(got[m]["repeat_buyers"] / got[m]["customers"])


def test_money_is_in_the_tree_currency():
    tree = metrictree.loads(RETAIL, "retail.tree")
    units = {n: m.unit for n, m in tree.metrics.items()}
    assert units["revenue"] == units["aov"] == units["ltv"] == units["profit"] == "GBP"
    assert units["churn_rate"] == "%"
    assert units["paid_orders"] is None
    assert "RUB" not in units.values()
    # With no `currency`, money metrics have no unit rather than someone else's.
    plain = metrictree.loads(RETAIL.replace("currency GBP\n", ""), "retail.tree")
    assert plain.metrics["revenue"].unit is None and plain.metrics["churn_rate"].unit == "%"


def test_by_a_dimension_of_the_bound_source():
    table = metrictree.loads(RETAIL, "retail.tree").evaluate(retail_data(), by="Country", start="2024-10",
                                                              end="2024-10")
    got = {r["Country"]: r["revenue"] for r in table.to_pylist()}
    want = dict(sql(f"""SELECT Country, sum(CAST(Quantity AS INTEGER) * CAST(UnitPrice AS DOUBLE))
                        FROM read_csv('{DATA / "retail.csv"}', all_varchar = true)
                        WHERE CAST(Quantity AS INTEGER) > 0 AND InvoiceDate LIKE '%/10/2024%' GROUP BY Country"""))
    assert got.keys() == want.keys()
    for country, value in want.items():
        assert got[country] == pytest.approx(value)


def test_a_filter_bound_to_its_value_is_dropped():
    # `status = "paid"`: every row is paid, so crm's `where orders.status == "paid"` keeps every row.
    tree = metrictree.loads(RETAIL.replace('if(invoices.Quantity < 0, "credit note", "paid")', '"paid"'),
                            "retail.tree")
    assert tree.metrics["revenue"].where is None
    got = rows(RETAIL.replace('if(invoices.Quantity < 0, "credit note", "paid")', '"paid"'), retail_data())
    with_credit_notes = by_month(f"SELECT m, sum(q * p) FROM {INVOICES} GROUP BY m")
    for m in MONTHS:
        assert got[m]["revenue"] == pytest.approx(with_credit_notes[m][0])


def test_binding_rewrites_the_library_formulas():
    tree = metrictree.loads(RETAIL, "retail.tree")
    revenue = tree.metrics["revenue"]
    assert revenue.source == "invoices" and revenue.library == "crm"
    assert revenue.formula.to_source() == "sum(invoices.Quantity * invoices.UnitPrice)"
    assert revenue.where.to_source() == 'if(invoices.Quantity < 0, "credit note", "paid") == "paid"'
    assert tree.metrics["churned"].formula.to_source() == "churned_customers(invoices)"


# --------------------------------------------------------------------------- ecommerce

WEB_AND_SPEND = '''
source web { time Day format "%d/%m/%Y" }
source marketing { time Month format "%Y-%m" dimensions Channel }

import ecommerce (conversion_rate, cac, cpa, cpl, lead_conversion, romi) with
    traffic = web { sessions = web.Visits, leads = web.SignUps },
    spend = marketing {
        kind = if(marketing.Channel == "Trade fair", "sales", "marketing")
        amount = marketing.Cost
    }
'''


def test_ecommerce_on_retail_data_equals_duckdb():
    tree = RETAIL + WEB_AND_SPEND
    data = {**retail_data(), "web": DATA / "retail_web.csv", "marketing": DATA / "retail_marketing.csv"}
    got = rows(tree, data)
    web = by_month(f"""SELECT strftime(strptime(Day, '%d/%m/%Y'), '%Y-%m') AS m, sum(Visits::INT), sum(SignUps::INT)
                       FROM read_csv('{DATA / "retail_web.csv"}', all_varchar = true) GROUP BY m""")
    spend = by_month(f"""SELECT Month, sum(Cost::DOUBLE) FILTER (WHERE Channel <> 'Trade fair'),
                                sum(Cost::DOUBLE) FILTER (WHERE Channel = 'Trade fair')
                         FROM read_csv('{DATA / "retail_marketing.csv"}', all_varchar = true) GROUP BY Month""")
    assert web["2024-09"] == (410 + 385 + 402 + 395, 12 + 9 + 11 + 8)  # by hand
    for m in MONTHS:
        r = got[m]
        sessions, leads = web[m]
        marketing, sales = spend[m]
        sales = sales or 0
        assert r["sessions"] == sessions and r["leads"] == leads
        assert r["marketing_spend"] == pytest.approx(marketing)
        assert r["sales_spend"] == pytest.approx(sales)
        assert r["conversion_rate"] == pytest.approx(r["paid_orders"] / sessions)
        assert r["cac"] == pytest.approx((marketing + sales) / r["new_customers"])
        assert r["cpa"] == pytest.approx(marketing / r["paid_orders"])
        assert r["cpl"] == pytest.approx(marketing / leads)
        assert r["lead_conversion"] == pytest.approx(r["new_customers"] / leads)
        assert r["romi"] == pytest.approx((r["revenue"] * 0.4 - marketing) / marketing)
    assert metrictree.loads(tree, "retail.tree").metrics["cac"].unit == "GBP"


# --------------------------------------------------------------------------- saas

CLUB = '''
source club { time Snapshot format "%d/%m/%Y" entity Member dimensions Tier }
source marketing { time Month format "%Y-%m" dimensions Channel }
currency GBP

import saas with
    subscriptions = club { mrr = club.Fee },
    spend = marketing { kind = "marketing", amount = marketing.Cost }
'''


def test_saas_on_a_membership_club_equals_duckdb():
    data = {"club": DATA / "retail_club.csv", "marketing": DATA / "retail_marketing.csv"}
    got = rows(CLUB, data)
    club = f"""(SELECT strftime(strptime(Snapshot, '%d/%m/%Y'), '%Y-%m') AS m, Member, Fee::DOUBLE AS Fee
                FROM read_csv('{DATA / "retail_club.csv"}', all_varchar = true))"""
    base = by_month(f"SELECT m, sum(Fee), count(*) FILTER (WHERE Fee > 0) FROM {club} GROUP BY m")
    paying = {m: {r[0] for r in sql(f"SELECT Member FROM {club} WHERE Fee > 0 AND m = '{m}'")} for m in MONTHS}
    spend = by_month(f"""SELECT Month, sum(Cost::DOUBLE)
                         FROM read_csv('{DATA / 'retail_marketing.csv'}', all_varchar = true) GROUP BY Month""")
    # By hand: September's members pay 4.99 + 9.99 + 4.99; in November 12583 has lapsed (fee 0).
    assert base["2024-09"] == (pytest.approx(19.97), 3) and base["2024-11"][1] == 4
    for i, m in enumerate(MONTHS):
        r = got[m]
        mrr, accounts = base[m]
        new = len(paying[m] - set().union(*(paying[x] for x in MONTHS[:i])))
        assert r["mrr"] == pytest.approx(mrr)
        assert r["arr"] == pytest.approx(mrr * 12)
        assert r["paying_accounts"] == accounts
        assert r["new_accounts"] == new
        assert r["arpa"] == pytest.approx(mrr / accounts)
        assert r["account_cac"] == pytest.approx(spend[m][0] / new)
        if i:
            churned = len(paying[MONTHS[i - 1]] - paying[m])
            assert r["churned_accounts"] == churned
            assert r["account_churn"] == pytest.approx(churned / len(paying[MONTHS[i - 1]]))
            assert r["account_ltv"] == pytest.approx(mrr / accounts * 0.8 / (churned / len(paying[MONTHS[i - 1]])))
    assert metrictree.loads(CLUB, "club.tree").metrics["mrr"].unit == "GBP"


# --------------------------------------------------------------------------- email

MAILINGS = '''
source mailings { time SentAt format "%d/%m/%Y %H:%M" dimensions Campaign }

import email with emails = mailings {
    sent = mailings.Recipients
    bounced = mailings.Bounced
    delivered = mailings.Recipients - mailings.Bounced
    opened = mailings.Opened
    clicked = mailings.Clicked
    conversions = mailings.Orders
}
'''


def test_email_on_mailing_counts_equals_duckdb():
    got = rows(MAILINGS, {"mailings": DATA / "retail_mailings.csv"})
    base = by_month(f"""SELECT strftime(strptime(SentAt, '%d/%m/%Y %H:%M'), '%Y-%m') AS m, sum(Recipients::INT),
                               sum(Bounced::INT), sum(Opened::INT), sum(Clicked::INT), sum(Orders::INT)
                        FROM read_csv('{DATA / "retail_mailings.csv"}', all_varchar = true) GROUP BY m""")
    for m in MONTHS:
        sent, bounced, opened, clicked, orders = base[m]
        r = got[m]
        assert (r["emails_sent"], r["bounces"], r["delivered"]) == (sent, bounced, sent - bounced)
        assert r["open_rate"] == pytest.approx(opened / (sent - bounced))
        assert r["ctr"] == pytest.approx(clicked / (sent - bounced))
        assert r["ctor"] == pytest.approx(clicked / opened)
        assert r["bounce_rate"] == pytest.approx(bounced / sent)
        assert r["email_conversion"] == pytest.approx(orders / sent)
    assert got["2024-09"]["emails_sent"] == 1200 + 1180  # by hand


# --------------------------------------------------------------------------- parsing


def test_the_binding_parses_into_syntax_nodes():
    module = metrictree.parse(RETAIL + WEB_AND_SPEND, "retail.tree")
    imports = [st for st in module.statements if isinstance(st, s.ImportStmt)]
    crm, ecommerce = imports
    assert crm.libraries == ("crm",) and crm.only == (("ltv", "churn_rate", "arpc", "profit", "new_customers",
                                                       "repeat_rate"),)
    (orders,) = crm.bindings
    assert (orders.library_source, orders.source) == ("orders", "invoices")
    assert [c.column for c in orders.columns] == ["amount", "cost", "customer_id", "status"]
    assert orders.columns[2].expr == s.Column("invoices", "CustomerID")
    assert [(b.library_source, b.source) for b in ecommerce.bindings] == [("traffic", "web"), ("spend", "marketing")]
    assert [st.currency for st in module.statements if isinstance(st, s.CurrencyStmt)] == ["GBP"]


def test_a_binding_without_a_new_name_keeps_the_source():
    module = metrictree.parse('import email with emails { sent = emails.n }', "t.tree")
    (binding,) = module.statements[0].bindings
    assert (binding.library_source, binding.source) == ("emails", "emails")


@pytest.mark.parametrize("text, message", [
    ('import crm with orders = o { amount = o.a, amount = o.b }', "the column 'amount' of orders is bound twice"),
    ('import crm with orders = o { amount = o.a }, orders = p { }', "the library source 'orders' is bound twice"),
])
def test_repeated_bindings_are_syntax_errors(text, message):
    with pytest.raises(TreeSyntaxError) as caught:
        metrictree.parse(text, "t.tree")
    assert caught.value.diagnostics[0].message == message


# --------------------------------------------------------------------------- compile-time checks


def compile_error(text: str) -> CompileError:
    with pytest.raises(CompileError) as caught:
        metrictree.loads(text, "retail.tree")
    return caught.value


def test_an_unbound_column_the_imported_metrics_need_is_an_error_with_the_line_to_add():
    text = RETAIL.replace("    customer_id = invoices.CustomerID\n", "")
    problem = compile_error(text)
    assert [d.code for d in problem.errors] == ["unbound-column"]
    assert problem.render() == (
        "retail.tree:13:77: error: crm's 'ltv', 'churn_rate', 'arpc' and 'repeat_rate' need "
        "orders.customer_id (read by 'customers'), which the binding of orders does not give\n"
        "   13 | import crm (ltv, churn_rate, arpc, profit, new_customers, repeat_rate) with orders = invoices {\n"
        "      |                                                                             ^^^^^^^^^^^^^^^^^\n"
        "hint: add `customer_id = invoices.CustomerID` inside `with orders = invoices { … }`")


def test_an_unbound_column_read_by_the_named_metric_itself():
    problem = compile_error('''
source invoices { time InvoiceDate format "%d/%m/%Y %H:%M" entity CustomerID }
import crm (revenue) with orders = invoices { status = "paid" }
''')
    (d,) = problem.errors
    assert d.message == "crm's 'revenue' needs orders.amount, which the binding of orders does not give"
    assert d.hint == "add `amount = invoices.<column>` inside `with orders = invoices { … }`"
    assert (d.span.line, d.span.column) == (3, 27)


def test_importing_a_whole_library_leaves_out_what_the_binding_cannot_feed_with_a_warning():
    text = RETAIL.replace("import crm (ltv, churn_rate, arpc, profit, new_customers, repeat_rate)", "import crm")
    text = text.replace("    cost = invoices.Quantity * invoices.UnitPrice * cost_share\n", "")
    tree = metrictree.loads(text, "retail.tree")
    assert "costs" not in tree.metrics and "profit" not in tree.metrics and "ltv" in tree.metrics
    warnings = [w for w in tree.warnings if w.code == "unbound-column"]
    assert [w.message for w in warnings] == [
        "import crm leaves out costs, profit: they read orders.cost, which the binding of orders does not give"]
    assert warnings[0].hint.startswith("add `cost = invoices.<column>` inside `with orders = invoices { … }`")


@pytest.mark.parametrize("change, message, hint", [
    (("with orders = invoices", "with order = invoices"), "crm reads no source 'order'", "did you mean 'orders'?"),
    (("amount = invoices.Quantity", "amout = invoices.Quantity"), "crm reads no column 'amout' of orders",
     "did you mean 'amount'?"),
    (("with orders = invoices", "with orders = invoice"), "unknown source 'invoice'", "did you mean 'invoices'?"),
    (("customer_id = invoices.CustomerID", "customer_id = orders.CustomerID"),
     "the binding of orders.customer_id reads orders.CustomerID, a column of another source than invoices",
     "bind it to columns of invoices, e.g. invoices.CustomerID"),
    (("import crm (ltv,", "import crm (ltw,"), "library crm has no metric 'ltw'", "did you mean 'ltv'?"),
])
def test_binding_mistakes_are_named_with_a_did_you_mean(change, message, hint):
    problem = compile_error(RETAIL.replace(*change))
    assert message in [d.message for d in problem.errors]
    assert next(d for d in problem.errors if d.message == message).hint == hint


def test_a_binding_that_keeps_no_row_is_an_error():
    problem = compile_error(RETAIL.replace('if(invoices.Quantity < 0, "credit note", "paid")', '"refunded"'))
    assert any("keeps no row" in d.message and "revenue" in d.message for d in problem.errors)


def test_a_bound_library_is_imported_once():
    problem = compile_error(RETAIL + '\nimport crm (aov) with orders = invoices { amount = invoices.UnitPrice }\n')
    assert "library 'crm' is imported twice" in [d.message for d in problem.errors]


def test_a_bound_expression_cannot_aggregate():
    problem = compile_error(RETAIL.replace("amount = invoices.Quantity * invoices.UnitPrice",
                                           "amount = sum(invoices.UnitPrice)"))
    assert any(d.code == "nested-aggregate" for d in problem.errors)


def test_an_unbound_import_reads_the_library_names_as_before():
    tree = metrictree.loads("source orders { time order_date entity customer_id }\nimport crm (aov)\n")
    assert tree.metrics["revenue"].formula.to_source() == "sum(orders.amount)"
    assert tree.metrics["revenue"].where.to_source() == 'orders.status == "paid"'


def test_the_libraries_name_no_currency_of_their_own():
    from metrictree.pluginmanager import registry

    for name in ("crm", "ecommerce", "saas", "email"):
        text = registry().libraries[name].text
        assert "RUB" not in text
        assert ("unit currency" in text) == (name != "email")


# --------------------------------------------------------------------------- check --data


def cli(*args: str):
    from click.testing import CliRunner
    from metrictree.cli import main

    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    return runner.invoke(main, list(args), catch_exceptions=False)


PLAIN = '''
source orders { time InvoiceDate format "%d/%m/%Y %H:%M" entity CustomerID dimensions Country }
import crm (aov)
'''


def test_check_with_data_catches_a_library_column_the_data_lacks(tmp_path):
    # `import crm` without a binding compiles (the columns could be there), but not on this data.
    path = tmp_path / "retail.tree"
    path.write_text(PLAIN)
    assert cli("check", str(path)).exit_code == 0
    result = cli("check", str(path), "--data", f"orders={DATA / 'retail.csv'}")
    assert result.exit_code == 1
    assert "retail.tree: 2 errors" in result.stdout
    assert "source 'orders' has no column 'amount' (read by metric 'revenue')" in result.stderr
    assert ("crm reads orders.amount under its own name: bind it to a column of yours in the import, e.g. "
            "import crm (…) with orders { amount = orders.<column>, … }") in result.stderr
    assert "no column 'status'" in result.stderr


def test_check_with_data_passes_a_bound_tree_and_reads_no_rows(tmp_path):
    from metrictree.datacheck import check_data

    path = tmp_path / "retail.tree"
    path.write_text(RETAIL)
    result = cli("check", str(path), "--data", f"invoices={DATA / 'retail.csv'}")
    assert result.exit_code == 0, result.stderr
    # A binding naming a column the file does not have is found from the schema.
    tree = metrictree.loads(RETAIL.replace("invoices.UnitPrice\n", "invoices.Price\n"), "retail.tree")
    (problem,) = check_data(tree, {"invoices": DATA / "retail.csv"})
    assert problem.message == "source 'invoices' has no column 'Price' (read by metric 'revenue')"
    assert problem.span.file == "retail.tree" and problem.span.line == 14
    assert problem.hint.startswith("did you mean 'UnitPrice'?")


def test_check_with_data_wants_a_format_for_text_times():
    tree = metrictree.loads(RETAIL.replace(' format "%d/%m/%Y %H:%M" timezone "Europe/London"', ""), "retail.tree")
    from metrictree.datacheck import check_data

    (problem,) = check_data(tree, {"invoices": DATA / "retail.csv"})
    assert problem.code == "time-type" and 'format "%d/%m/%Y %H:%M"' in problem.hint


# --------------------------------------------------------------------------- a larger generated log


def test_crm_on_a_generated_retail_csv_equals_duckdb(tmp_path):
    """The lead's invoice-log generator, exported as the UCI file is (UK dates as text), read through a binding."""
    import pyarrow.compute as pc
    import pyarrow.csv as csv
    from metrictree.retail import invoice_log

    pytest.importorskip("numpy", reason="the invoice-log generator needs numpy")
    log = invoice_log(10_000, seed=5)
    text = log.set_column(log.schema.get_field_index("InvoiceDate"), "InvoiceDate",
                          pc.strftime(log["InvoiceDate"], "%d/%m/%Y %H:%M"))
    path = tmp_path / "online_retail.csv"
    csv.write_csv(text, path)
    tree = RETAIL.replace('timezone "Europe/London"', 'timezone "UTC"')
    got = rows(tree, {"invoices": path})
    want = by_month(f"""
        SELECT strftime(strptime(InvoiceDate, '%d/%m/%Y %H:%M'), '%Y-%m') AS m,
               sum(Quantity * UnitPrice) FILTER (WHERE Quantity >= 0),
               count(DISTINCT InvoiceNo) FILTER (WHERE Quantity > 0),
               count(DISTINCT CustomerID) FILTER (WHERE Quantity >= 0)
        FROM read_csv('{path}', types = {{'InvoiceNo': 'VARCHAR', 'InvoiceDate': 'VARCHAR'}}) GROUP BY m""")
    assert list(got) == sorted(want) and len(got) >= 9
    for m, (revenue, orders, customers) in want.items():
        assert got[m]["revenue"] == pytest.approx(revenue)
        assert got[m]["paid_orders"] == orders
        assert got[m]["customers"] == customers
        assert got[m]["aov"] == pytest.approx(revenue / orders)


# --------------------------------------------------------------------------- fmt


@pytest.mark.parametrize("text", [RETAIL + WEB_AND_SPEND, CLUB, MAILINGS], ids=["retail", "club", "mailings"])
def test_bindings_keep_their_meaning_and_layout_through_fmt(text):
    from metrictree.formatting import format_text

    once = format_text(text)
    assert format_text(once) == once
    assert metrictree.loads(once, "t.tree").metrics == metrictree.loads(text, "t.tree").metrics


def test_the_canonical_layout_of_bindings():
    from metrictree.formatting import format_text

    assert format_text(WEB_AND_SPEND).splitlines()[3:9] == [
        "import ecommerce (conversion_rate, cac, cpa, cpl, lead_conversion, romi) with",
        "    traffic = web { sessions = web.Visits, leads = web.SignUps },",
        "    spend = marketing {",
        '        kind = if(marketing.Channel == "Trade fair", "sales", "marketing")',
        "        amount = marketing.Cost",
        "    }",
    ]
    assert format_text("import email with emails { sent = emails.n }\n") == "import email with emails { sent = emails.n }\n"


def test_a_misspelt_with_is_named():
    with pytest.raises(TreeSyntaxError) as caught:
        metrictree.parse("import crm (aov) wiht orders = invoices { amount = invoices.x }\n", "t.tree")
    (d,) = caught.value.diagnostics
    assert (d.message, d.span.column) == ("unexpected name 'wiht'", 18)
    assert d.hint.startswith("did you mean 'with'?")


def test_eval_of_an_unbound_import_on_other_names_says_how_to_bind():
    # The case of issue 13: `import crm` on retail data checks, then cannot find 'amount'.
    tree = metrictree.loads(PLAIN, "retail.tree")
    with pytest.raises(metrictree.MetrictreeError) as caught:
        tree.evaluate({"orders": DATA / "retail.csv"})
    (d,) = caught.value.diagnostics
    assert d.message == "source 'orders' has no column 'amount' (read by metric 'revenue')"
    assert d.hint.endswith("crm reads orders.amount under its own name: bind it to a column of yours in the "
                           "import, e.g. import crm (…) with orders { amount = orders.<column>, … }")
