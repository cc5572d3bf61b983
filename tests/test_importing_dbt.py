"""`metrictree import dbt`: MetricFlow semantic models and metrics → a tree, checked against MetricFlow itself.

The default run checks the translation of the fixture project (tests/fixtures/dbt_project:
orders and customers) from its YAML and from the semantic_manifest.json dbt wrote for it,
and evaluates the imported tree against the same numbers computed in SQL by DuckDB.
The slow test (run by .ci/steps.d/60-dbt.sh in a virtual environment with dbt-metricflow
and dbt-duckdb) builds the project with dbt and compares every imported metric with
`mf query` month by month.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner

pytest.importorskip("yaml", reason="reading a dbt project needs PyYAML: pip install 'metrictree[dbt]'")
pytest.importorskip("sqlglot", reason="reading dbt's SQL needs sqlglot: pip install 'metrictree[dbt]'")

import metrictree  # noqa: E402
from metrictree.cli import main  # noqa: E402
from metrictree.importing_dbt import NotExpressible, import_dbt, sql_expression  # noqa: E402

PROJECT = Path(__file__).resolve().parent / "fixtures" / "dbt_project"
MONTHS = [f"2024-{m:02d}" for m in range(1, 7)]


@pytest.fixture(scope="module")
def imported():
    return import_dbt(PROJECT)


def _seeds() -> dict[str, pa.Table]:
    options = pacsv.ConvertOptions(column_types={"ordered_at": pa.date32(), "signed_up_at": pa.date32()})
    return {"orders": pacsv.read_csv(PROJECT / "seeds" / "raw_orders.csv", convert_options=options),
            "customers": pacsv.read_csv(PROJECT / "seeds" / "raw_customers.csv", convert_options=options)}


def test_semantic_models_become_sources_and_measures_base_metrics(imported):
    tree = metrictree.loads(imported.text, "shop.tree")
    assert tree.warnings == ()
    orders = tree.sources["orders"]
    assert (orders.time, orders.dimensions, orders.entity) == ("ordered_at", ("status", "channel"), "customer_id")
    assert (tree.sources["customers"].time, tree.sources["customers"].entity) == ("signed_up_at", "customer_id")
    assert imported.tables == {"orders": "orders", "customers": "customers"}
    formulas = {name: m.formula.to_source() + (f" where {m.where.to_source()}" if m.where else "")
                for name, m in tree.metrics.items() if m.formula is not None}
    assert formulas["order_total"] == "sum(orders.amount)"
    assert formulas["gross_profit"] == "sum(orders.amount - orders.cost)"
    assert formulas["average_amount"] == "avg(orders.amount)"
    assert formulas["buyers"] == "count_distinct(orders.customer_id)"
    assert formulas["paid_orders_flag"] == 'count(orders) where orders.status == "paid"'  # sum(case when …)
    assert formulas["revenue"] == 'sum(orders.amount) where orders.status == "paid"'
    assert formulas["app_or_web_refunds"] == \
        'count(orders.order_id) where orders.status in ["refunded", "cancelled"] and orders.channel != "none"'
    assert formulas["aov"] == "revenue / paid_orders"
    assert formulas["revenue_growth"] == "(revenue - revenue[-1]) / revenue[-1]"
    assert formulas["cumulative_revenue"] == "cumulative_sum(order_total)"
    assert formulas["revenue_3m"] == "order_total_to_date - coalesce(order_total_to_date[-3], 0)"
    assert tree.metrics["revenue"].label == "Revenue" and tree.metrics["revenue"].description == "Paid order amounts."


def test_what_cannot_be_expressed_is_listed_never_dropped(imported):
    notes = "\n".join(imported.notes)
    assert "metric 'median_order' (simple): the measure 'median_amount' aggregates with median" in notes
    assert "metric 'orders_of_north_customers' (simple): the dimension customer__region is not one of the " \
           "semantic model 'orders' (a join" in notes
    assert "metric 'buyers_3m' (cumulative): a running total of 'ordering_customers', which aggregates with " \
           "count_distinct" in notes
    for note in imported.notes:
        assert f"#   - {note}" in imported.text
    # Every MetricFlow metric is either in the tree or in the notes.
    import yaml

    names = [m["name"] for m in yaml.safe_load((PROJECT / "models" / "semantic_models.yml").read_text())["metrics"]]
    tree = metrictree.loads(imported.text)
    for name in names:
        assert name in tree.metrics or f"metric '{name}'" in notes, name


def test_the_worked_example_in_the_docs_is_the_real_output(imported):
    page = (Path(__file__).resolve().parents[1] / "docs" / "authoring.md").read_text("utf-8")
    example = page.split("### A worked example", 1)[1].split("```tree\n", 1)[1].split("```", 1)[0]
    assert example == imported.text


def test_the_manifest_dbt_writes_gives_the_same_tree(imported):
    assert import_dbt(PROJECT / "semantic_manifest.json").text == imported.text


def test_the_imported_tree_matches_sql_over_the_seed_data(imported):
    duckdb = pytest.importorskip("duckdb")
    tree = metrictree.loads(imported.text)
    data = _seeds()
    table = tree.evaluate(data, grain="month")
    got = {name: dict(zip(table.column("period").to_pylist(), table.column(name).to_pylist(), strict=True))
           for name in table.column_names if name != "period"}
    con = duckdb.connect()
    con.register("orders", data["orders"])
    con.register("customers", data["customers"])

    def sql(query: str) -> dict[str, float]:
        return {m.strftime("%Y-%m"): v for m, v in con.execute(query).fetchall()}

    month = "date_trunc('month', ordered_at)"
    expected = {
        "revenue": sql(f"select {month}, sum(amount) filter (where status = 'paid') from orders group by 1"),
        "gross_profit": sql(f"select {month}, sum(amount - cost) from orders group by 1"),
        "buyers": sql(f"select {month}, count(distinct customer_id) from orders group by 1"),
        "aov": sql(f"select {month}, avg(amount) filter (where status = 'paid') from orders group by 1"),
        "cumulative_revenue": sql(f"select m, sum(t) over (order by m) from (select {month} m, sum(amount) t "
                                  "from orders group by 1)"),
        "revenue_3m": sql(f"select m, sum(t) over (order by m rows 2 preceding) from (select {month} m, "
                          "sum(amount) t from orders group by 1)"),
        "signups": sql("select date_trunc('month', signed_up_at), count(*) from customers group by 1"),
    }
    for name, by_month in expected.items():
        for period in MONTHS:
            assert got[name][period] == pytest.approx(by_month.get(period, 0), rel=1e-12), (name, period)


def test_sql_that_has_no_equivalent_is_refused_with_the_reason():
    column = lambda c: f"orders.{c}"  # noqa: E731
    assert sql_expression("a <> 'x' and not b in (1, 2) or c is not null", column) == \
        'orders.a != "x" and orders.b not in [1, 2] or orders.c is not null'
    with pytest.raises(NotExpressible, match="has no equivalent"):
        sql_expression("date_trunc('month', a) = '2024-01-01'", column)
    with pytest.raises(NotExpressible, match="TimeDimension"):
        sql_expression("{{ TimeDimension('metric_time', 'day') }} >= '2024-01-01'", column, lambda *a: "x")


def test_the_command_writes_the_tree_and_lists_what_it_left_out(tmp_path):
    out = tmp_path / "shop.tree"
    result = CliRunner().invoke(main, ["import", "dbt", str(PROJECT), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == import_dbt(PROJECT).text
    assert "not expressed: metric 'median_order'" in result.output
    assert f"wrote {out}" in result.output
    result = CliRunner().invoke(main, ["check", str(out)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["import", "dbt", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "no dbt project at" in result.output


# --------------------------------------------------------------------------- against MetricFlow itself


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def _arrow(result) -> pa.Table:
    """A DuckDB result as an Arrow table (DuckDB 2 renamed the method)."""
    fetch = getattr(result, "to_arrow_table", None) or result.fetch_arrow_table
    return fetch()


@pytest.mark.slow
def test_the_imported_tree_equals_metricflow_on_duckdb(tmp_path, imported):
    dbt, mf = _tool("dbt"), _tool("mf")
    if dbt is None or mf is None:
        pytest.skip("needs dbt-metricflow and dbt-duckdb (.ci/steps.d/60-dbt.sh installs them)")
    duckdb = pytest.importorskip("duckdb")
    project = tmp_path / "shop"
    shutil.copytree(PROJECT, project)
    env = {**os.environ, "DBT_PROFILES_DIR": str(project), "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "0"}

    def run(*command: str) -> None:
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr

    run(dbt, "build")
    # The manifest dbt writes gives the tree the YAML gives.
    assert import_dbt(project / "target" / "semantic_manifest.json").text == imported.text
    tree = metrictree.loads(imported.text)
    import yaml

    theirs = [m["name"] for m in yaml.safe_load((PROJECT / "models" / "semantic_models.yml").read_text())["metrics"]]
    names = [name for name in theirs if name in tree.metrics]  # every MetricFlow metric the tree expresses
    assert len(names) == len(theirs) - 3
    out = project / "mf.csv"
    run(mf, "query", "--metrics", ",".join(names), "--group-by", "metric_time__month", "--csv", str(out))
    with out.open() as handle:
        rows = {row["metric_time__month"][:7]: row for row in csv.DictReader(handle)}

    con = duckdb.connect(str(project / "shop.duckdb"), read_only=True)
    data = {source: _arrow(con.execute(f"select * from main.{table}")) for source, table in imported.tables.items()}
    table = tree.evaluate(data, grain="month")
    periods = table.column("period").to_pylist()
    assert periods == MONTHS
    compared = 0
    for name in names:
        for period, value in zip(periods, table.column(name).to_pylist(), strict=True):
            theirs = rows[period][name]
            if theirs == "":
                # MetricFlow leaves a period with no rows empty; metrictree counts 0 there (or null for a ratio).
                assert value in (0, None) or (isinstance(value, float) and math.isnan(value)), (name, period, value)
                continue
            assert value == pytest.approx(float(theirs), rel=1e-9, abs=1e-9), (name, period, value, theirs)
            compared += 1
    assert compared >= len(names) * len(MONTHS) - 10
