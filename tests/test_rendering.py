"""Tests for metrictree.rendering: numbers, tables, JSON/CSV, graphs and diagnostics, as text."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

import metrictree
from metrictree import rendering
from metrictree.evaluating import Evaluation, NullReason
from metrictree.rendering import format_value

SHOP = """\
tree shop "Shop \\"KPIs\\""
grain month
source orders {
    time order_date
    dimensions region
}
metric revenue = sum(orders.amount) { label "Revenue" unit RUB }
metric paid_orders = count(orders) { label "Paid orders" }
metric aov = revenue / paid_orders { label "Average order value" unit RUB level strategic }
metric conversion = paid_orders / revenue { unit % }
metric focus { label "Focus" }
focus <~ conversion
aov <~ focus
"""

RUSSIAN = """\
tree продажи "Выручка \\"брутто\\" & <маржа>"
source orders { time order_date }
metric выручка = sum(orders.amount) { label "Выручка \\"брутто\\" #1" unit "руб." }
metric end = count(orders) { label "Заказы" }
metric avg = выручка / end { level strategic }
metric группа { label "Группа `x`" }
avg <~ группа
"""


@pytest.fixture(scope="module")
def shop() -> metrictree.Tree:
    return metrictree.loads(SHOP, "shop.tree")


@pytest.fixture(scope="module")
def russian() -> metrictree.Tree:
    return metrictree.loads(RUSSIAN, "ru.tree")


def _evaluation(by: tuple[str, ...] = (), periods: int = 3) -> Evaluation:
    labels = [f"2026-{m:02d}" for m in range(1, periods + 1)]
    columns: dict[str, list] = {"period": labels}
    if by:
        columns = {"period": [p for p in labels for _ in ("North", "South")],
                   "region": ["North", "South"] * periods}
    rows = len(columns["period"])
    columns["revenue"] = [1234567.891 + i for i in range(rows)]
    columns["paid_orders"] = [1500 + i for i in range(rows)]
    columns["aov"] = [None] + [9.5 + 400.04 * i for i in range(rows - 1)]
    columns["conversion"] = [0.25341 + i / 1000 for i in range(rows)]
    table = pa.table({k: pa.array(v, pa.int64() if k == "paid_orders" else None) for k, v in columns.items()})
    nulls = (NullReason("aov", "paid_orders[-1] falls before the first period of the data", 1,
                        {"period": "2026-01"}),)
    return Evaluation(table, nulls, "month", by)


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (36712345.2, None, "36,712,345"),
    (-36712345.7, None, "-36,712,346"),
    (123.45, None, "123.5"),
    (1.956, None, "1.96"),
    (0.012345, None, "0.0123"),
    (0.0, None, "0"),
    (12345, None, "12,345"),
    (0.2534, "%", "25.3%"),
    (0.01, "%", "1.0%"),
    (0.00012, "%", "0.012%"),
    (12.5, "%", "1,250%"),
    (None, None, "—"),
    (float("nan"), None, "—"),
    (float("inf"), "%", "—"),
])
def test_format_value(value, unit, expected):
    assert format_value(value, unit) == expected


def test_format_value_uses_a_valid_format_spec_and_ignores_others():
    assert format_value(0.2534, "%", ".2%") == "25.34%"
    assert format_value(1234.5, None, ",.2f") == "1,234.50"
    assert format_value(1234.5, None, "money") == "1,234"


def test_a_column_shares_one_number_of_decimals(shop):
    text = rendering.to_text(rendering.table_view(_evaluation(), shop, width=200), width=200)
    # aov: 9.5 and 409.54 → one decimal for both, because the largest is ≥ 100.
    assert re.search(r"aov +RUB +— +9\.5 +409\.5 *$", text, re.M), text


# --------------------------------------------------------------------------- tables


def test_without_by_metrics_are_rows_and_periods_columns(shop):
    text = rendering.to_text(rendering.table_view(_evaluation(), shop, width=120), width=120)
    lines = text.splitlines()
    assert lines[0].startswith('Shop "KPIs" (shop) · by month')
    assert re.match(r"\s*metric\s+unit\s+2026-01\s+2026-02\s+2026-03\s*$", lines[1])
    assert re.search(r"revenue +RUB +1,234,568 +1,234,569 +1,234,570", text)
    assert re.search(r"paid_orders +1,500 +1,501 +1,502", text)
    assert re.search(r"conversion +% +25\.3% +25\.4% +25\.5%", text)


def test_wide_results_fold_into_tables_that_fit(shop):
    width = 60
    text = rendering.to_text(rendering.table_view(_evaluation(periods=12), shop, width=width), width=width)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    headers = [line for line in text.splitlines() if line.strip().startswith("metric")]
    assert len(headers) > 1, "12 periods cannot fit in 60 columns"
    for month in range(1, 13):
        assert text.count(f"2026-{month:02d}") == 1
    assert text.count("revenue") == len(headers)  # every folded table repeats the row labels


def test_with_by_rows_are_period_and_slice(shop):
    text = rendering.to_text(rendering.table_view(_evaluation(by=("region",)), shop, width=200), width=200)
    assert "by month and region" in text
    lines = text.splitlines()
    # Units stand under the metric names, so the header takes two lines.
    assert re.fullmatch(r" +revenue +aov +", lines[1]), lines[1]
    assert re.fullmatch(r" period +region +RUB +paid_orders +RUB +conversion ", lines[2]), lines[2]
    assert re.search(r"2026-01 +North +1,234,568 +1,500 +— +25\.3%", text)
    assert re.search(r"2026-03 +South +1,234,573", text)


def test_an_empty_result_says_so(shop):
    evaluation = _evaluation()
    empty = Evaluation(evaluation.table.slice(0, 0), (), "month", ())
    assert "no rows" in rendering.to_text(rendering.table_view(empty, shop))


# --------------------------------------------------------------------------- JSON and CSV


def test_json_has_rows_nulls_and_no_nan(shop):
    evaluation = _evaluation()
    table = evaluation.table.set_column(1, "revenue", pa.array([float("nan"), 1.0, float("inf")]))
    document = json.loads(rendering.evaluation_json(Evaluation(table, evaluation.nulls, "month", ()), shop))
    assert document["tree"] == "shop"
    assert document["grain"] == "month"
    assert document["by"] == []
    assert document["columns"] == ["period", "revenue", "paid_orders", "aov", "conversion"]
    assert [row["revenue"] for row in document["rows"]] == [None, 1.0, None]
    assert document["rows"][0]["aov"] is None
    assert document["rows"][1]["paid_orders"] == 1501
    assert document["nulls"] == [{"metric": "aov",
                                  "reason": "paid_orders[-1] falls before the first period of the data",
                                  "rows": 1, "first": {"period": "2026-01"}, "at": None}]


def test_csv_round_trips():
    evaluation = _evaluation(by=("region",))
    back = pacsv.read_csv(io.BytesIO(rendering.evaluation_csv(evaluation.table)))
    assert back.column_names == evaluation.table.column_names
    assert back.num_rows == 6
    assert back.column("aov").null_count == 1
    assert back.column("paid_orders").to_pylist() == evaluation.table.column("paid_orders").to_pylist()


# --------------------------------------------------------------------------- graphs


def test_mermaid_shapes_edges_and_legend(shop):
    text = rendering.mermaid(shop)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert any(line.startswith("%%") and "Dashed" in line for line in lines)
    assert '    revenue[("Revenue<br/>revenue [RUB]<br/>from orders")]' in lines
    assert '    aov["Average order value<br/>aov [RUB]"]' in lines
    assert '    focus{{"Focus<br/>focus<br/>group"}}' in lines
    assert "    aov --> revenue" in lines
    assert "    aov -.-> focus" in lines
    assert "    focus -.-> conversion" in lines
    assert "    focus --> conversion" not in lines


def test_mermaid_escapes_labels_and_unsafe_ids(russian):
    text = rendering.mermaid(russian)
    assert '%% продажи: Выручка "брутто" & <маржа>' in text
    # Non-ASCII and reserved names ("end") get generated ids; quotes, '#' and '`' are entity codes.
    assert '    m0[("Выручка #quot;брутто#quot; #35;1<br/>выручка [руб.]<br/>from orders")]' in text
    assert '    m1[("Заказы<br/>end<br/>from orders")]' in text
    assert '    m3{{"Группа #96;x#96;<br/>группа<br/>group"}}' in text
    assert "    avg --> m0" in text
    assert "    avg -.-> m3" in text
    assert not re.search(r"^\s+end\b", text, re.M)


def test_dot_shapes_edges_and_escaping(shop, russian):
    text = rendering.dot(shop)
    assert '    "revenue" [shape=cylinder, style=solid, label="Revenue\\nrevenue [RUB]\\nfrom orders"];' in text
    assert '    "focus" [shape=hexagon, style=dashed, label="Focus\\nfocus\\ngroup"];' in text
    assert '    "aov" -> "revenue";' in text
    assert '    "aov" -> "focus" [style=dashed];' in text
    assert 'label="Shop \\"KPIs\\""' in text
    ru = rendering.dot(russian)
    label = 'label="Выручка \\"брутто\\" #1\\nвыручка [руб.]\\nfrom orders"'
    assert f'    "выручка" [shape=cylinder, style=solid, {label}];' in ru
    assert '    "avg" -> "группа" [style=dashed];' in ru


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
@pytest.mark.parametrize("which", ["shop", "russian"])
def test_graphviz_accepts_the_dot(which, request):
    tree = request.getfixturevalue(which)
    done = subprocess.run(["dot", "-Tsvg"], input=rendering.dot(tree).encode(), capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    assert b"<svg" in done.stdout


# --------------------------------------------------------------------------- diagnostics


def test_styled_diagnostic_keeps_the_text_and_colours_the_parts():
    with pytest.raises(metrictree.CompileError) as raised:
        metrictree.loads("tree t\nsource s { time t }\nmetric a = sum(s.x)\nmetric b = aa * 2\n", "t.tree")
    d = raised.value.errors[0]
    styled = rendering.styled_diagnostic(d)
    assert styled.plain == d.render()
    styled_words = {styled.plain[span.start:span.end]: str(span.style) for span in styled.spans}
    assert "red" in styled_words["error:"]
    assert "cyan" in styled_words["hint:"]
    assert styled_words["^^"].endswith("red")


@pytest.mark.parametrize(("severities", "expected"), [
    ((), "x.tree: ok"),
    (("warning",), "x.tree: ok, 1 warning"),
    (("warning", "warning"), "x.tree: ok, 2 warnings"),
    (("error",), "x.tree: 1 error"),
    (("error", "error", "error", "warning"), "x.tree: 3 errors, 1 warning"),
])
def test_check_summary(severities, expected):
    diagnostics = [metrictree.Diagnostic(s, "m") for s in severities]
    assert rendering.check_summary("x.tree", diagnostics) == expected
