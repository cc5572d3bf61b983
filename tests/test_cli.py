"""Tests for the `metrictree` command line: check, eval, graph, exit codes and messages."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import metrictree
from metrictree.cli import main
from metrictree.sample import sample_data

ROOT = Path(__file__).resolve().parents[1]
CRM = str(ROOT / "trees" / "crm_ltv.tree")
MONTHS = [f"2025-{m:02d}" for m in (11, 12)] + [f"2026-{m:02d}" for m in range(1, 11)]

SHOP = """\
tree shop
grain month
param margin = 70%
source orders {
    time order_date
    dimensions region
}
metric revenue = sum(orders.amount) { unit RUB }
metric gross = revenue * margin { unit RUB level strategic }
"""


def _runner(**kwargs) -> CliRunner:
    """A runner that keeps stdout and stderr apart (click 8.1 needs asking; 8.2+ always does)."""
    try:
        return CliRunner(mix_stderr=False, **kwargs)
    except TypeError:
        return CliRunner(**kwargs)


@pytest.fixture
def run():
    runner = _runner(env={"COLUMNS": "80", "FORCE_COLOR": "1"})  # FORCE_COLOR must not colour piped output

    def invoke(*args: str):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        return result

    return invoke


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Path, Path]:
    """A small tree with a param, and its orders as a Parquet file."""
    tree = tmp_path / "shop.tree"
    tree.write_text(SHOP, "utf-8")
    orders = pa.table({
        "order_date": pa.array([dt.date(2026, 1, 5), dt.date(2026, 1, 20), dt.date(2026, 2, 3), dt.date(2026, 3, 9)]),
        "region": ["North", "South", "North", "South"],
        "amount": [100.0, 300.0, 250.0, 50.0],
    })
    data = tmp_path / "orders.parquet"
    pq.write_table(orders, data)
    return tree, data


def _paid_revenue_by_month(by: str | None = None) -> dict:
    """Revenue (paid orders' amount) from the sample data, computed with pyarrow alone."""
    orders = sample_data()["orders"]
    paid = orders.filter(pc.equal(orders["status"], "paid"))
    paid = paid.append_column("month", pc.strftime(paid["order_date"], format="%Y-%m"))
    keys = ["month"] + ([by] if by else [])
    sums = paid.group_by(keys).aggregate([("amount", "sum")])
    return {tuple(row[k] for k in keys): row["amount_sum"] for row in sums.to_pylist()}


# --------------------------------------------------------------------------- check and --version


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"metrictree {metrictree.__version__}\n"


def test_check_ok(run):
    result = run("check", CRM)
    assert result.exit_code == 0
    assert result.stdout == f"{CRM}: ok\n"
    assert result.stderr == ""


def test_check_warnings_do_not_fail(run, tmp_path):
    path = tmp_path / "w.tree"
    path.write_text("tree w\nsource s { time t }\nmetric a = sum(s.x)\nmetric b = count(s)\n", "utf-8")
    result = run("check", str(path))
    assert result.exit_code == 0
    assert result.stdout == f"{path}: ok, 2 warnings\n"
    assert result.stderr.count("warning: metric") == 2
    assert "\x1b[" not in result.stderr  # plain text when not a terminal


def test_check_error_exact_text_and_exit_code(run, tmp_path):
    path = tmp_path / "bad.tree"
    path.write_text("tree shop\nsource orders { time order_date }\nmetric revenue = sum(orders.amount)\n"
                    "metric aov = revnue / revenue\n", "utf-8")
    result = run("check", str(path), CRM)
    assert result.exit_code == 1
    assert result.stderr == (f"{path}:4:14: error: unknown name 'revnue'\n"
                             "    4 | metric aov = revnue / revenue\n"
                             "      |              ^^^^^^\n"
                             "hint: did you mean 'revenue'?\n"
                             "\n")
    assert result.stdout == f"{path}: 1 error\n{CRM}: ok\n"


def test_check_missing_file_is_a_user_error(run, tmp_path):
    result = run("check", str(tmp_path / "nope.tree"))
    assert result.exit_code == 1
    assert f"error: no tree file at {tmp_path / 'nope.tree'}" in result.stderr
    assert result.stdout.endswith("nope.tree: 1 error\n")


def test_check_without_files_is_a_usage_error(run):
    assert run("check").exit_code == 2


# --------------------------------------------------------------------------- eval --sample, each format


def test_eval_sample_json(run):
    result = run("eval", CRM, "--sample", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["tree"] == "crm_ltv"
    assert document["grain"] == "month"
    assert document["by"] == []
    assert document["columns"][:3] == ["period", "revenue", "paid_orders"]
    assert len(document["rows"]) == 12
    assert [row["period"] for row in document["rows"]] == MONTHS
    expected = _paid_revenue_by_month()
    for row in document["rows"]:
        assert row["revenue"] == pytest.approx(expected[(row["period"],)], rel=1e-12)
    first = document["rows"][0]
    assert first["churn_rate"] is None and first["ltv"] is None  # JSON null, not NaN
    assert {n["metric"] for n in document["nulls"]} == {"churn_rate", "lifetime", "ltv", "reactivation_rate"}
    assert "NaN" not in result.stdout
    assert result.stderr == ""  # the reasons for nulls are in the JSON


def test_eval_sample_table(run):
    result = run("eval", CRM, "--sample")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "\x1b[" not in out
    assert out.startswith("Why did LTV move? (crm_ltv) · by month")
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80
    for month in MONTHS:
        assert out.count(month) == 1
    october = _paid_revenue_by_month()[("2026-10",)]
    assert f"{october:,.0f}" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == ["open_rate"]]
    assert rows and all(cell.endswith("%") for row in rows for cell in row[2:])
    assert "—" in out  # churn_rate has no previous month in the first period
    assert result.stderr.startswith("note: churn_rate: null in 1 row(s) — customers[-1] falls before the first "
                                    "period of the data (first: period 2025-11)\n")


def test_eval_sample_csv_to_stdout_and_file(run, tmp_path):
    result = run("eval", CRM, "--sample", "--format", "csv", "--metrics", "revenue,ltv")
    assert result.exit_code == 0, result.stderr
    table = pacsv.read_csv(io.BytesIO(result.stdout_bytes))
    assert table.column_names == ["period", "revenue", "ltv"]
    assert table.num_rows == 12
    assert table.column("ltv").null_count == 1
    target = tmp_path / "out.csv"
    written = run("eval", CRM, "--sample", "--format", "csv", "--metrics", "revenue,ltv", "-o", str(target))
    assert written.exit_code == 0
    assert written.stdout == ""
    assert target.read_bytes() == result.stdout_bytes


def test_eval_by_region(run):
    result = run("eval", CRM, "--sample", "--format", "json", "--by", "region", "--metrics", "revenue")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["by"] == ["region"]
    assert document["columns"] == ["period", "region", "revenue"]
    assert len(document["rows"]) == 12 * 4
    expected = _paid_revenue_by_month("region")
    for row in document["rows"]:
        assert row["revenue"] == pytest.approx(expected[(row["period"], row["region"])], rel=1e-12)


def test_eval_by_table_has_slices_as_rows(run):
    result = run("eval", CRM, "--sample", "--by", "region,channel", "--metrics", "aov", "--from", "2026-10")
    assert result.exit_code == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    slices = [line for line in lines if line[:1] == ["2026-10"]]
    assert len(slices) == 4 * 3
    assert ["2026-10", "North", "app"] in [line[:3] for line in slices]


def test_eval_metrics_from_to(run):
    result = run("eval", CRM, "--sample", "--format", "json", "--metrics", "ltv", "--metrics", "aov",
                 "--from", "2026-01", "--to", "2026-03")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["columns"] == ["period", "ltv", "aov"]
    assert [row["period"] for row in document["rows"]] == ["2026-01", "2026-02", "2026-03"]
    assert document["rows"][0]["ltv"] is not None  # churn looks back to 2025-12 even though it is not shown
    assert document["nulls"] == []


def test_eval_grain(run):
    result = run("eval", CRM, "--sample", "--format", "json", "--grain", "quarter", "--metrics", "revenue")
    assert [row["period"] for row in json.loads(result.stdout)["rows"]] == \
        ["2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]


# --------------------------------------------------------------------------- eval --data and --param


def test_eval_parquet_data_and_param_override(run, shop):
    tree, data = shop
    base = run("eval", str(tree), "--data", f"orders={data}", "--format", "json")
    assert base.exit_code == 0, base.stderr
    rows = json.loads(base.stdout)["rows"]
    assert [(r["period"], r["revenue"]) for r in rows] == [("2026-01", 400.0), ("2026-02", 250.0), ("2026-03", 50.0)]
    assert [r["gross"] for r in rows] == pytest.approx([280.0, 175.0, 35.0])
    changed = run("eval", str(tree), "--data", f"orders={data}", "--format", "json", "--param", "margin=50%")
    assert changed.exit_code == 0, changed.stderr
    assert [r["gross"] for r in json.loads(changed.stdout)["rows"]] == pytest.approx([200.0, 125.0, 25.0])


def test_data_overrides_sample_sources(run, tmp_path):
    orders = sample_data()["orders"]
    october = orders.filter(pc.greater_equal(orders["order_date"], pa.scalar(dt.datetime(2026, 10, 1),
                                                                           orders.schema.field("order_date").type)))
    path = tmp_path / "october.parquet"
    pq.write_table(october, path)
    result = run("eval", CRM, "--sample", "--data", f"orders={path}", "--format", "json", "--metrics", "revenue")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert [r["period"] for r in rows] == ["2026-10"]
    assert rows[0]["revenue"] == pytest.approx(_paid_revenue_by_month()[("2026-10",)])


@pytest.mark.parametrize("args", [["--data", "orders"], ["--data", "=x.parquet"], ["--data", "orders="],
                                  ["--param", "margin"], ["--grain", "mnth"], ["--format", "xml"]])
def test_usage_errors_exit_2(run, shop, args):
    tree, _ = shop
    result = run("eval", str(tree), *args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_bad_data_syntax_message(run, shop):
    tree, _ = shop
    result = run("eval", str(tree), "--data", "orders")
    assert "Invalid value for '--data': expected SOURCE=PATH, got 'orders'" in result.stderr


def test_missing_column_is_a_user_error(run, shop, tmp_path):
    tree, _ = shop
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"order_date": [dt.date(2026, 1, 1)], "region": ["North"], "total": [1.0]}), path)
    result = run("eval", str(tree), "--data", f"orders={path}")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (f"{tree}:8:22: error: source 'orders' has no column 'amount' (read by metric 'revenue')\n"
                             "    8 | metric revenue = sum(orders.amount) { unit RUB }\n"
                             "      |                      ^^^^^^^^^^^^^\n"
                             "hint: its columns: order_date, region, total\n")


def test_missing_source_is_a_user_error(run, tmp_path):
    orders = tmp_path / "orders.parquet"
    pq.write_table(sample_data()["orders"], orders)
    result = run("eval", CRM, "--data", f"orders={orders}")
    assert result.exit_code == 1
    assert "error: no data for source 'emails'" in result.stderr
    assert "--data emails=PATH" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    ([], "error: no data given\nhint: pass each source the tree reads (orders) as --data orders=PATH, "
         "or add --sample to use the bundled sample data\n"),
    (["--data", "order=x.parquet"], "error: --data order=…: the tree has no source 'order'\n"
                                    "hint: did you mean 'orders'?\n"),
    (["--data", "orders=missing.parquet"], "error: no data file for source 'orders' at missing.parquet"),
    (["--sample", "--metrics", "grosss"], "error: unknown metric 'grosss'\nhint: did you mean 'gross'?\n"),
    (["--sample", "--param", "margin=lots"], "error: param 'margin' must be a number, got 'lots'\n"),
    (["--sample", "--by", "regoin"], "error: unknown dimension 'regoin'\nhint: did you mean 'region'?\n"),
    (["--sample", "--from", "2026-13"], "error: '2026-13' is not a valid period"),
])
def test_user_errors_exit_1_with_the_message(run, shop, args, message):
    tree, _ = shop
    result = run("eval", str(tree), *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_eval_of_a_missing_tree(run, tmp_path):
    result = run("eval", str(tmp_path / "none.tree"), "--sample")
    assert result.exit_code == 1
    assert result.stderr == f"error: no tree file at {tmp_path / 'none.tree'}\nhint: check the path\n"


def test_output_to_an_unwritable_place(run, shop, tmp_path):
    tree, data = shop
    result = run("eval", str(tree), "--data", f"orders={data}", "--format", "json", "-o",
                 str(tmp_path / "no" / "such" / "dir.json"))
    assert result.exit_code == 1
    assert "Could not open file" in result.stderr


# --------------------------------------------------------------------------- graph


def test_graph_mermaid(run):
    result = run("graph", CRM)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert "    churn_rate -.-> engagement" in lines
    assert "    churn_rate --> engagement" not in lines
    assert "    ltv --> aov" in lines
    assert '    engagement{{"Engagement with communications<br/>engagement<br/>group"}}' in lines
    assert '    revenue[("Revenue<br/>revenue [RUB]<br/>from orders")]' in lines


def test_graph_dot(run, tmp_path):
    result = run("graph", CRM, "--format", "dot")
    assert result.exit_code == 0
    assert '    "churn_rate" -> "engagement" [style=dashed];' in result.stdout
    assert '    "ltv" -> "aov";' in result.stdout
    assert result.stdout.startswith("// crm_ltv: Why did LTV move?\n")
    target = tmp_path / "g.dot"
    assert run("graph", CRM, "--format", "dot", "-o", str(target)).exit_code == 0
    assert target.read_text("utf-8") == result.stdout


def test_graph_cyrillic(run, tmp_path):
    path = tmp_path / "ru.tree"
    path.write_text('tree продажи "Продажи"\nsource заказы { time дата }\n'
                    'metric выручка = sum(заказы.сумма) { label "Выручка \\"всего\\"" level strategic }\n', "utf-8")
    mermaid = run("graph", str(path))
    assert mermaid.exit_code == 0, mermaid.stderr
    assert '[("Выручка #quot;всего#quot;<br/>выручка<br/>from заказы")]' in mermaid.stdout
    dot = run("graph", str(path), "--format", "dot")
    assert '"выручка" [shape=cylinder, style=solid, label="Выручка \\"всего\\"\\nвыручка\\nfrom заказы"];' in dot.stdout


def test_graph_of_a_broken_tree(run, tmp_path):
    path = tmp_path / "bad.tree"
    path.write_text("tree t\nmetric a = \n", "utf-8")
    result = run("graph", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:")
    assert result.stdout == ""


# --------------------------------------------------------------------------- the installed console script


def _console_script() -> str:
    beside = Path(sys.executable).parent / ("metrictree.exe" if os.name == "nt" else "metrictree")
    found = str(beside) if beside.exists() else shutil.which("metrictree")
    assert found, "the metrictree console script is not installed (pip install -e .)"
    return found


def test_console_script_entry_point(tmp_path):
    broken = tmp_path / "b.tree"
    broken.write_text("tree b\nmetric x = y\n", "utf-8")
    done = subprocess.run([_console_script(), "check", CRM, str(broken)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 1
    assert done.stdout == f"{CRM}: ok\n{broken}: 1 error\n"
    assert done.stderr.startswith(f"{broken}:2:12: error: unknown name 'y'\n")
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- colour only on a terminal


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_diagnostics_are_coloured_on_a_terminal_only(monkeypatch, tmp_path):
    from metrictree import cli

    path = tmp_path / "bad.tree"
    path.write_text("tree t\nmetric x = y\n", "utf-8")
    diagnostics = metrictree.check(path)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    cli._print_diagnostics(diagnostics, spaced=True)
    assert "\x1b[" in terminal.getvalue()
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    monkeypatch.setenv("FORCE_COLOR", "1")
    cli._print_diagnostics(diagnostics, spaced=True)
    assert piped.getvalue() == diagnostics[0].render() + "\n\n"
