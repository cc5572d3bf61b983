"""Rows a metric's function leaves out for want of a value are said so (`Evaluation.skipped`, a note in the CLI):
an empty amount is not summed, a guest order has no customer to count. Nothing is dropped silently."""

from __future__ import annotations

import datetime as dt
import textwrap

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

import metrictree
from metrictree.cli import main

TREE = textwrap.dedent("""\
    tree shop
    grain month
    source orders {
        time day
        dimensions region
        entity customer
    }
    metric revenue = sum(orders.amount) where orders.status == "paid"
    metric biggest = max(orders.amount)
    metric with_amount = count(orders.amount)
    metric customers = count_distinct(orders.customer) where orders.status == "paid"
    metric aov = revenue / customers
""")

ORDERS = pa.table({
    "day": [dt.date(2026, 1, d) for d in (2, 3, 4, 5, 6)],
    "region": ["N", "N", "S", "S", "S"],
    "customer": ["a", None, "b", None, "c"],
    "status": ["paid", "paid", "paid", "refunded", "paid"],
    "amount": [10.0, None, 5.0, None, None],
})


def _left_out(evaluation) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for skip in evaluation.skipped:
        found.setdefault(skip.metric, []).append((skip.rows, skip.reason))
    return found


def test_rows_without_a_value_are_counted_among_the_rows_the_filter_keeps():
    evaluation = metrictree.loads(TREE).evaluation({"orders": ORDERS})
    left_out = _left_out(evaluation)
    # Two paid orders have no amount (the refunded one is not read by revenue); max() reads every row.
    assert left_out["revenue"] == [(2, "2 row(s) of source 'orders' have no amount (null) and are left out of sum()")]
    assert left_out["biggest"] == [(3, "3 row(s) of source 'orders' have no amount (null) and are left out of max()")]
    assert left_out["customers"] == [
        (1, "1 row(s) of source 'orders' have no customer (guest rows) and are left out of count_distinct()")]
    # count() of a column counts its values: that is what it asks, so nothing is said.
    assert "with_amount" not in left_out
    assert evaluation.table.column("revenue").to_pylist() == [15.0]


def test_a_clean_column_says_nothing():
    clean = ORDERS.set_column(4, "amount", pa.array([10.0, 1.0, 5.0, 2.0, 3.0]))
    clean = clean.set_column(2, "customer", pa.array(["a", "a", "b", "b", "c"]))
    assert metrictree.loads(TREE).evaluation({"orders": clean}).skipped == ()


def test_the_rows_left_out_are_added_up_over_the_pieces_of_a_file(tmp_path, monkeypatch):
    from metrictree import reading
    import pyarrow.parquet as pq

    many = pa.concat_tables([ORDERS] * 40)
    pq.write_table(many, tmp_path / "orders.parquet", row_group_size=7)
    real_scan = reading.scan
    pieces = []

    def small_scan(*args, **kwargs):
        for piece in real_scan(*args, **{**kwargs, "rows_per_table": 7}):
            pieces.append(piece)
            yield piece

    monkeypatch.setattr(reading, "scan", small_scan)
    left_out = _left_out(metrictree.loads(TREE).evaluation({"orders": str(tmp_path / "orders.parquet")}))
    assert len(pieces) > 10
    assert [rows for rows, _ in left_out["revenue"]] == [80]
    assert [rows for rows, _ in left_out["customers"]] == [40]


def test_the_cli_says_which_rows_it_left_out(tmp_path):
    (tmp_path / "shop.tree").write_text(TREE)
    (tmp_path / "orders.csv").write_text("day,region,customer,status,amount\n2026-01-02,N,a,paid,10\n"
                                         "2026-01-03,N,b,paid,\n")
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "shop.tree"), "--data",
                                       f"orders={tmp_path / 'orders.csv'}"])
    assert result.exit_code == 0, result.output
    assert "note: revenue: 1 row(s) of source 'orders' have no amount (null) and are left out of sum()" in \
        result.stderr


NEAR = textwrap.dedent("""\
    tree shop
    grain month
    source orders {
        time day
        dimensions channel
    }
    metric paid = count(orders) where orders.status == "paid"
    metric online = count(orders) where orders.channel in ["web", "app"] and orders.status == "paid"
    metric other = count(orders) where orders.status != "paid"
""")


def _near_table() -> pa.Table:
    return pa.table({"day": [dt.date(2026, 1, d) for d in range(1, 8)],
                     "channel": ["web", "Web ", "app", "APP", None, "web", "shop"],
                     "status": ["paid", "PAID", "paid", " paid", "paid", "refunded", "paid"]})


@pytest.mark.parametrize("encoded", [False, True], ids=["text", "dictionary"])
def test_a_filter_that_leaves_out_a_value_only_by_case_or_spacing_says_so(encoded):
    table = _near_table()
    if encoded:
        table = pa.table({c: pc.dictionary_encode(table.column(c)) if c != "day" else table.column(c)
                          for c in table.column_names})
    evaluation = metrictree.loads(NEAR).evaluation({"orders": table})
    left_out = _left_out(evaluation)
    assert left_out["paid"] == [(2, "2 row(s) of source 'orders' have status ' paid' or 'PAID', which the filter "
                                    "orders.status == \"paid\" does not keep (it compares text exactly, case and "
                                    "spaces included)")]
    assert sorted(rows for rows, _ in left_out["online"]) == [2, 2]  # 'APP', 'Web '; ' paid', 'PAID'
    assert "other" not in left_out  # != keeps them: nothing left out by it
    assert evaluation.table.column("paid").to_pylist() == [4]


def test_a_filter_on_a_column_of_many_values_is_not_searched():
    many = pa.table({"day": [dt.date(2026, 1, 1)] * 10_002,
                     "channel": ["web"] * 10_002,
                     "status": ["paid", "PAID", *(f"s{i}" for i in range(10_000))]})
    assert "paid" not in _left_out(metrictree.loads(NEAR).evaluation({"orders": many}))


def test_every_reason_is_given_for_one_metric():
    tree = metrictree.loads(TREE.replace('metric aov = revenue / customers',
                                         'metric churned = churned_customers(orders) where orders.status == "paid"'))
    table = ORDERS.set_column(3, "status", pa.array(["paid", "paid", "PAID", "refunded", "paid"]))
    reasons = [reason for rows, reason in _left_out(tree.evaluation({"orders": table}))["churned"]]
    assert len(reasons) == 2
    assert reasons[0].startswith("1 row(s) of source 'orders' have status 'PAID', which the filter")
    assert reasons[1] == ("1 row(s) of source 'orders' have no customer (guest rows) and are not counted as "
                          "customers by churned_customers()")


def test_the_json_of_an_evaluation_holds_the_rows_left_out(tmp_path):
    (tmp_path / "shop.tree").write_text(TREE)
    (tmp_path / "orders.csv").write_text("day,region,customer,status,amount\n2026-01-02,N,a,paid,10\n"
                                         "2026-01-03,N,b,paid,\n2026-01-04,N,c,PAID,3\n")
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "shop.tree"), "--data",
                                       f"orders={tmp_path / 'orders.csv'}", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    import json

    left_out = json.loads(result.stdout)["left_out"]
    assert {(entry["metric"], entry["rows"]) for entry in left_out} >= {("revenue", 1), ("customers", 1)}
    assert any("have status 'PAID'" in entry["reason"] for entry in left_out)
    assert all(entry["at"].endswith(".tree:8:8") for entry in left_out if entry["metric"] == "revenue")


def test_an_assistant_reads_the_rows_left_out_with_the_evaluation(tmp_path):
    from metrictree.serving import operations
    from metrictree.serving.catalog import Catalog
    from metrictree.serving.config import load_config

    (tmp_path / "shop.tree").write_text(TREE)
    (tmp_path / "orders.csv").write_text("day,region,customer,status,amount\n2026-01-02,N,a,paid,10\n"
                                         "2026-01-03,N,b,paid,\n")
    (tmp_path / "serve.toml").write_text(f'[trees.shop]\nfile = "shop.tree"\n[trees.shop.data]\n'
                                         f'orders = "{tmp_path / "orders.csv"}"\n')
    answer = operations.evaluate(Catalog(load_config(tmp_path / "serve.toml")), "shop")
    assert answer.data["left_out"][0]["reason"].endswith("have no amount (null) and are left out of sum()")
    assert "- `revenue`: 1 row(s) of source 'orders' have no amount (null) and are left out of sum()" in answer.text


def test_rows_a_row_level_expression_has_no_value_for_are_said_but_not_the_undefined_ones():
    tree = metrictree.loads(TREE.replace('metric aov = revenue / customers',
                                         'metric per_unit = sum(orders.amount / orders.units)'))
    table = ORDERS.append_column("units", pa.array([2.0, 1.0, 0.0, 1.0, 1.0]))
    # amount is null in rows 2, 4 and 5; row 3 divides by zero: undefined, its own reason (the value is null).
    evaluation = tree.evaluation({"orders": table})
    assert _left_out(evaluation)["per_unit"] == [
        (3, "3 row(s) of source 'orders' have no value of orders.amount / orders.units (null) and are left out of "
            "sum()")]
    assert any("division by zero" in str(reason) for reason in evaluation.nulls)
