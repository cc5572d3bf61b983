"""Every tree example in docs/language.md really works.

The fenced blocks of the page are checked by their info string:

* ```tree           — a complete tree: compiles with no error and no warning, and, when
  all its sources are tables of the sample data, evaluates on it;
* ```tree-fragment  — part of a tree (or a tree that needs a file or a plugin): parses;
* ```tree-error     — compiles to an error on purpose;
* ```tree-warning   — compiles, with at least one warning.

A ```text block that directly follows a ``tree-error`` or ``tree-warning`` block is the
output the page promises: it must equal what metrictree prints.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import metrictree
from metrictree import pluginmanager
from metrictree.evaluating import null_reasons
from metrictree.sample import sample_data

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"
TREE_KINDS = ("tree", "tree-fragment", "tree-error", "tree-warning")
# The file name the page's printed messages use.
NAME = "shop.tree"


class Block:
    def __init__(self, kind: str, text: str, line: int):
        self.kind, self.text, self.line = kind, text, line

    def __repr__(self) -> str:
        return f"{self.kind}@{self.line}"


def _blocks() -> list[Block]:
    blocks, lines = [], DOC.read_text("utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^```(\S*)\s*$", lines[i])
        if match and match.group(1):
            start = i
            i += 1
            body = []
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append(Block(match.group(1), "\n".join(body) + "\n", start + 1))
        i += 1
    return blocks


BLOCKS = _blocks()
TREES = [b for b in BLOCKS if b.kind == "tree"]


def _of(kind: str) -> list[Block]:
    return [b for b in BLOCKS if b.kind == kind]


def _expected_output(block: Block) -> str | None:
    """The ```text block right after ``block``, if the next fenced block is one."""
    following = BLOCKS[BLOCKS.index(block) + 1:]
    return following[0].text.rstrip("\n") if following and following[0].kind == "text" else None


def _block_with(kind: str, needle: str) -> Block:
    found = [b for b in _of(kind) if needle in b.text]
    assert len(found) == 1, f"expected one ```{kind} block containing {needle!r}, found {found}"
    return found[0]


def test_the_page_has_examples_of_every_kind():
    kinds = {b.kind for b in BLOCKS}
    assert set(TREE_KINDS) <= kinds
    assert len(TREES) >= 15
    # Unknown tree-ish markers would silently go unchecked.
    assert {b.kind for b in BLOCKS if b.kind.startswith("tree")} <= set(TREE_KINDS)


@pytest.mark.parametrize("block", TREES, ids=repr)
def test_complete_trees_compile_cleanly(block):
    tree = metrictree.loads(block.text, NAME)
    assert [w.render() for w in tree.warnings] == []


@pytest.mark.parametrize("block", [b for b in TREES if "include" not in b.text], ids=repr)
def test_complete_trees_evaluate_on_the_sample_data(block):
    tree = metrictree.loads(block.text, NAME)
    data = sample_data()
    assert set(tree.sources) <= set(data), "write doc examples against the sample tables"
    table = tree.evaluate(data, grain="month")
    assert table.num_rows == 12  # November 2025 … October 2026, one slice
    values = [m.name for m in tree.metrics.values() if m.kind != "group"]
    assert table.column_names == ["period", *values]
    for name in values:
        if name not in YEAR_AGO:
            assert table.column(name).null_count < table.num_rows, f"{name} is null in every period"
    # Every null comes with a reason.
    explained = {r["metric"] for r in null_reasons(table)}
    unexplained = [n for n in values if table.column(n).null_count and n not in explained]
    assert unexplained == []


# Twelve months back on twelve months of data: null everywhere, as it should be.
YEAR_AGO = {"revenue_year_ago", "growth_yoy"}


@pytest.mark.parametrize("block", _of("tree-fragment"), ids=repr)
def test_fragments_parse(block):
    module = metrictree.parse(block.text, NAME)
    assert module.statements


@pytest.mark.parametrize("block", _of("tree-error"), ids=repr)
def test_error_examples_raise_and_print_as_shown(block):
    with pytest.raises(metrictree.MetrictreeError) as caught:
        metrictree.loads(block.text, NAME)
    assert caught.value.errors
    expected = _expected_output(block)
    if expected is not None:
        assert caught.value.render() == expected


@pytest.mark.parametrize("block", _of("tree-warning"), ids=repr)
def test_warning_examples_load_and_print_as_shown(block):
    tree = metrictree.loads(block.text, NAME)
    assert tree.warnings
    expected = _expected_output(block)
    if expected is not None:
        assert "\n\n".join(w.render() for w in tree.warnings) == expected


def test_every_shown_output_is_checked():
    checked = {id(b) for b in _of("tree-error") + _of("tree-warning")}
    for i, block in enumerate(BLOCKS):
        if block.kind == "text" and re.match(r"^\S+\.tree:\d+:\d+: (error|warning):", block.text):
            assert i and id(BLOCKS[i - 1]) in checked, f"{block!r} shows a message no test checks"


# --------------------------------------------------------------------------- specific promises


def test_the_first_example_gives_the_numbers_shown():
    first = TREES[0]
    assert "tree shop" in first.text
    table = metrictree.loads(first.text, NAME).evaluate(sample_data(), start="2026-08", end="2026-10")
    rows = table.to_pylist()
    assert [r["period"] for r in rows] == ["2026-08", "2026-09", "2026-10"]
    assert [round(r["revenue"], 2) for r in rows] == [9642322.04, 9908310.25, 7884465.56]
    assert [r["paid_orders"] for r in rows] == [3687, 3769, 3120]
    assert [round(r["aov"], 2) for r in rows] == [2615.22, 2628.90, 2527.07]
    shown = re.findall(r"^(20\d\d-\d\d)\s+(\S+)\s+(\d+)\s+(\S+)$", _block_after(first, "text").text, re.M)
    assert [(p, float(r), int(n), float(a)) for p, r, n, a in shown] == [
        (r["period"], round(r["revenue"], 2), r["paid_orders"], round(r["aov"], 2)) for r in rows]


def _block_after(block: Block, kind: str) -> Block:
    return next(b for b in BLOCKS[BLOCKS.index(block) + 1:] if b.kind == kind)


def test_the_first_example_by_region():
    tree = metrictree.loads(TREES[0].text, NAME)
    table = tree.evaluate(sample_data(), by="region", start="2026-10")
    assert table.column("region").to_pylist() == ["Center", "East", "North", "South"]
    assert sum(table.column("paid_orders").to_pylist()) == 3120


def test_the_null_example_prints_the_reasons_shown():
    block = _block_with("tree", "app_aov")
    tree = metrictree.loads(block.text, NAME)
    evaluation = tree.evaluation(sample_data(), by="channel", start="2026-10")
    shown = _block_after(block, "text").text.strip().splitlines()
    assert [str(r) for r in evaluation.nulls] == shown
    rows = {r["channel"]: r for r in evaluation.table.to_pylist()}
    assert rows["web"]["app_orders"] == 0 and rows["web"]["app_revenue"] == 0
    assert rows["web"]["app_aov"] is None and rows["app"]["app_aov"] > 0


def test_percentages_are_fractions_and_params_can_be_overridden():
    block = _block_with("tree", "param gross_margin = 40% {")
    tree = metrictree.loads(block.text, NAME)
    assert tree.params["gross_margin"].value == 0.4
    data = sample_data()
    default = tree.evaluate(data, start="2026-10").to_pylist()[0]
    changed = tree.evaluate(data, start="2026-10", params={"gross_margin": "35%", "vat": 0.18}).to_pylist()[0]
    assert math.isclose(default["gross_profit"], default["revenue"] / 1.2 * 0.4)
    assert math.isclose(changed["gross_profit"], changed["revenue"] / 1.18 * 0.35)


def test_shifts_read_data_before_the_start():
    block = _block_with("tree", "revenue_previous")
    tree = metrictree.loads(block.text, NAME)
    whole = tree.evaluation(sample_data())
    assert whole.table.column("revenue_previous")[0].as_py() is None
    assert any("falls before the first period of the data" in n.reason for n in whole.nulls)
    october = tree.evaluate(sample_data(), start="2026-10").to_pylist()[0]
    assert october["revenue_previous"] == whole.table.column("revenue")[10].as_py()


def test_window_functions_do_what_the_table_says():
    block = _block_with("tree", "rolling_sum")
    rows = metrictree.loads(block.text, NAME).evaluate(sample_data()).to_pylist()
    revenue = [r["revenue"] for r in rows]
    last = rows[-1]
    assert math.isclose(last["growth"], revenue[-1] / revenue[-2] - 1)
    assert math.isclose(last["added_quarter"], revenue[-1] - revenue[-4])
    assert math.isclose(last["revenue_3m"], sum(revenue[-3:]))
    assert math.isclose(last["average_3m"], sum(revenue[-3:]) / 3)
    assert math.isclose(last["revenue_ytd"], sum(revenue))
    assert rows[1]["revenue_3m"] is None and rows[2]["revenue_3m"] is not None
    assert rows[0]["growth"] is None and rows[0]["added"] is None
    october = metrictree.loads(block.text, NAME).evaluate(sample_data(), start="2026-10").to_pylist()[0]
    assert math.isclose(october["growth"], last["growth"])  # earlier periods are read
    assert math.isclose(october["revenue_3m"], last["revenue_3m"])


def test_grouping_metrics_have_no_values():
    block = _block_with("tree", "metric engagement {")
    tree = metrictree.loads(block.text, NAME)
    assert tree.metrics["engagement"].kind == "group"
    assert "engagement" not in tree.evaluate(sample_data()).column_names
    assert tree.drivers("engagement", kind="influence") == ["open_rate", "click_rate"]
    with pytest.raises(metrictree.UsageError):
        tree.evaluate(sample_data(), metrics=["engagement"])


def test_influence_links_are_graph_edges():
    block = _block_with("tree", "churn_rate <~ open_rate, click_rate")
    tree = metrictree.loads(block.text, NAME)
    assert tree.graph.edges["churn_rate", "open_rate"]["kind"] == "influence"
    assert tree.graph.edges["churn_rate", "customers"]["kind"] == "formula"
    assert tree.drivers("churn_rate") == ["customers", "open_rate", "click_rate"]


def test_targets_and_alerts_are_parsed_and_checked():
    block = _block_with("tree", "target open_rate >= 30%")
    tree = metrictree.loads(block.text, NAME)
    first, second = tree.targets
    assert (first.metric, first.op, first.value, first.deadline) == ("open_rate", ">=", 0.3, "2027-03-31")
    assert (second.start, second.every, second.checkpoints) == ("2026-10", "month",
                                                                 (("2026-12", 0.22), ("2027-02", 0.24)))
    assert [a.severity for a in tree.alerts] == ["warning", "critical"]


def test_include_example(tmp_path):
    shared = _block_with("tree", "# shared/sources.tree")
    main = _block_with("tree-fragment", 'include "shared/sources.tree"')
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "sources.tree").write_text(shared.text, "utf-8")
    (tmp_path / "aov.tree").write_text(main.text, "utf-8")
    tree = metrictree.load(tmp_path / "aov.tree")
    assert tree.name == "aov" and tree.warnings == ()
    row = tree.evaluate(sample_data(), start="2026-10").to_pylist()[0]
    assert math.isclose(row["aov"], row["revenue"] / row["paid_orders"])


SHOP_LIBRARY = """
source orders {
    time order_date
    dimensions channel, region, segment
    entity customer_id
}
metric revenue     = sum(orders.amount) where orders.status == "paid" { unit RUB }
metric paid_orders = count(orders)      where orders.status == "paid"
"""


class _ShopPlugin:
    @metrictree.hookimpl
    def metrictree_libraries(self, register):
        register(metrictree.Library("shop", SHOP_LIBRARY, "Orders of a web shop"))


def test_import_example():
    python = next(b for b in BLOCKS if b.kind == "python" and "metrictree_libraries" in b.text)
    assert SHOP_LIBRARY.strip() in python.text  # the page shows the library this test registers
    block = _block_with("tree-fragment", "import shop")
    with pytest.raises(metrictree.CompileError, match="unknown library 'shop'"):
        metrictree.loads(block.text, NAME)
    plugin = _ShopPlugin()
    pluginmanager.register(plugin, name="docs-shop")
    try:
        tree = metrictree.loads(block.text, NAME)
        assert tree.metrics["revenue"].library == "shop"
        row = tree.evaluate(sample_data(), start="2026-10").to_pylist()[0]
        assert math.isclose(row["aov"], row["revenue"] / row["paid_orders"])
    finally:
        pluginmanager.unregister(plugin)


def test_the_retail_binding_example_runs_on_the_retail_fixture():
    import pyarrow.compute as pc
    import pyarrow.csv as csv

    path = Path(__file__).resolve().parent / "data" / "retail.csv"
    block = _block_with("tree-fragment", "invoices.Quantity * invoices.UnitPrice")
    tree = metrictree.loads(block.text, NAME)
    assert tree.metrics["revenue"].unit == "GBP" and tree.metrics["revenue"].library == "crm"
    rows = {r["period"]: r for r in tree.evaluate({"invoices": path}).to_pylist()}
    lines = csv.read_csv(path)
    month = pc.utf8_slice_codeunits(lines["InvoiceDate"], 3, 10)
    for period, r in rows.items():
        sold = lines.filter(pc.and_(pc.equal(month, f"{period[5:]}/{period[:4]}"), pc.greater(lines["Quantity"], 0)))
        revenue = pc.sum(pc.multiply(sold["Quantity"], sold["UnitPrice"])).as_py()
        orders = pc.count_distinct(sold["InvoiceNo"]).as_py()
        assert r["revenue"] == pytest.approx(revenue) and r["paid_orders"] == orders
        assert r["aov"] == pytest.approx(revenue / orders)
    assert list(rows) == ["2024-09", "2024-10", "2024-11"]
    assert rows["2024-10"]["churn_rate"] == pytest.approx(1 / 3)  # 13047 bought in September only
