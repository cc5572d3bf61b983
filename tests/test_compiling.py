"""The compiler: a validated Tree with a typed graph, and every check with its message."""

import textwrap

import networkx as nx
import pytest

import metrictree
from metrictree.errors import CompileError

HEADER = textwrap.dedent('''
    source orders {
        time order_date
        dimensions channel, region
        entity customer_id
    }
    source emails {
        time sent_at
        dimensions region
    }
''')


def compile_text(body: str) -> metrictree.Tree:
    return metrictree.loads(HEADER + textwrap.dedent(body), "t.tree")


def problems(body: str) -> list[str]:
    with pytest.raises(CompileError) as caught:
        compile_text(body)
    return [d.message for d in caught.value.diagnostics if d.severity == "error"]


def test_tree_model_and_typed_graph():
    tree = compile_text('''
        tree shop "Shop"
        grain week
        param margin = 70%
        metric revenue = sum(orders.amount) where orders.status == "paid" { unit RUB }
        metric orders_n = count(orders)
        metric aov = revenue / orders_n { unit RUB }
        metric profit = revenue * margin { unit RUB }
        metric growth = revenue / revenue[-1] - 1
        metric top { level strategic }
        top <~ aov, profit, growth
    ''')
    assert (tree.name, tree.title, tree.grain) == ("shop", "Shop", "week")
    assert tree.metrics["revenue"].kind == "base" and tree.metrics["revenue"].source == "orders"
    assert tree.metrics["aov"].kind == "derived" and tree.metrics["aov"].inputs == ("revenue", "orders_n")
    assert tree.metrics["growth"].shifts == (("revenue", -1),)
    assert tree.metrics["profit"].params == ("margin",)
    assert tree.metrics["top"].kind == "group"
    assert tree.params["margin"].value == pytest.approx(0.7)
    assert tree.graph.edges["aov", "revenue"]["kind"] == "formula"
    assert tree.graph.edges["top", "aov"]["kind"] == "influence"
    assert nx.is_directed_acyclic_graph(tree.graph)
    assert tree.drivers("top") == ["aov", "profit", "growth"]
    assert tree.drivers("top", kind="formula") == []
    assert tree.roots() == ["top"]
    assert tree.requirements(["aov"]) == ["revenue", "orders_n", "aov"]
    assert tree.dimensions == ("channel", "region")
    assert tree.warnings == ()


def test_every_problem_is_reported_at_once():
    found = problems('''
        metric revenue = sum(orders.amount)
        metric a = revnue + 1
        metric b = lgo(revenue)
        metric c = revenue[1]
    ''')
    assert found == ["unknown name 'revnue'", "unknown function 'lgo'", "revenue[1] looks into the future"]


def test_unknown_name_suggests_the_closest_with_a_caret():
    with pytest.raises(CompileError) as caught:
        compile_text("metric revenue = sum(orders.amount)\nmetric aov = revnue / 2\n")
    assert caught.value.errors[0].render() == textwrap.dedent('''\
        t.tree:12:14: error: unknown name 'revnue'
           12 | metric aov = revnue / 2
              |              ^^^^^^
        hint: did you mean 'revenue'?''')


def test_duplicates_name_both_places():
    with pytest.raises(CompileError) as caught:
        compile_text("metric revenue = sum(orders.amount)\nmetric revenue = count(orders)\n")
    (d,) = caught.value.errors
    assert d.message == "'revenue' is already defined as a metric at t.tree:11:8"
    assert d.span.line == 12
    assert problems("param orders = 1\nmetric x = count(orders)") == [
        "'orders' is already defined as a source at t.tree:2:8"]


def test_cycles_print_the_path():
    found = problems('''
        metric a = b + 1
        metric b = c * 2
        metric c = a - 1
        metric d = sum(orders.amount)
    ''')
    assert found == ["cycle through formulas: a → b → c → a"]
    mixed = problems('''
        metric a = b + 1
        metric b = sum(orders.amount)
        b <~ a
    ''')
    assert mixed == ["cycle through formulas and influence links: a → b → a"]


def test_filter_or_aggregation_on_another_source():
    assert problems('metric r = sum(orders.amount) where emails.opened == 1') == [
        "the filter of 'r' reads emails.opened, a column of another source than orders"]
    assert problems('metric r = sum(orders.amount) + sum(emails.opened)') == [
        "'r' reads columns of several sources: orders, emails"]


def test_unit_clashes():
    found = problems('''
        metric revenue = sum(orders.amount) { unit RUB }
        metric rate = count(orders) { unit % }
        metric bad = revenue + rate
    ''')
    assert found == ["unit clash: revenue is in RUB but rate is in %"]
    assert problems('''
        metric revenue = sum(orders.amount) { unit RUB }
        metric costs = sum(orders.cost) { unit RUB }
        metric margin = revenue - costs { unit % }
    ''') == ["'margin' is declared in % but its formula gives RUB"]
    # Ratios and products of declared units are fine.
    compile_text('''
        metric revenue = sum(orders.amount) { unit RUB }
        metric n = count(orders)
        metric aov = revenue / n { unit RUB }
        metric share = revenue / revenue[-1] { unit % }
        metric all { level strategic }
        all <~ aov, share
    ''')


def test_warnings_unused_strategic_without_drivers_uncontrollable_leaf():
    tree = compile_text('''
        metric revenue = sum(orders.amount) { level strategic }
        metric spare = count(orders)
        metric tax = sum(orders.tax) { controllable no }
        metric net = revenue - tax
        metric world = sum(orders.fx) { controllable no external }
        metric top = net + world { level strategic }
    ''')
    messages = [(d.code, d.message) for d in tree.warnings]
    assert ("unused", "metric 'spare' is not used by any other metric, link, target or alert") in messages
    assert ("no-drivers", "strategic metric 'revenue' has no drivers") in messages
    assert ("uncontrollable-leaf", "'tax' is a leaf that its owner cannot control") in messages
    assert not any("world" in m for _, m in messages)
    assert all(d.severity == "warning" for d in tree.warnings)


def test_metadata_values_are_checked():
    assert problems('metric x = count(orders) { level strategc direction sideways }') == [
        "level must be one of strategic, operational, technical, not 'strategc'",
        "direction must be one of up, down, not 'sideways'"]
    assert problems('metric x = count(orders) { severity critical }') == ["'severity' does not apply to a metric"]


def test_base_and_derived_rules():
    assert problems('metric a = count(orders)\nmetric b = sum(orders.amount) + a') == [
        "'b' aggregates a source and also reads the metric 'a'"]
    assert problems('metric a = count(orders)\nmetric b = a * orders.amount') == [
        "'b' is a formula over metrics but reads the column orders.amount"]
    assert problems('metric a = count(orders)\nmetric b = a * 2 where orders.x == 1') == [
        "'where' filters rows of a source, but 'b' is a formula over metrics"]
    assert problems('metric a = sum(orders.amount) where status == "paid"') == ["unknown name 'status'"]
    assert problems('metric a = sum(sum(orders.amount))') == [
        "aggregations cannot be nested: sum() inside the aggregation of 'a'"]
    assert problems('metric a = count(orders)\nmetric b = sum(a)') == ["the aggregation of 'b' reads the metric 'a'"]
    assert problems('metric a = count(orders)\nmetric b = log(a, a)') == ["log() takes 1 argument(s), got 2"]
    assert problems('metric a = count(orders)\nmetric b = orders + a') == ["'orders' is a source, not a metric"]


def test_rules_are_checked():
    found = problems('''
        metric rate = count(orders)
        target rate >= 30% by 2027-03 where regoin == "x"
        target rate by 2027-03
        alert nothing > 1
    ''')
    assert found == ["unknown dimension 'regoin' in the slice of a target", "a target compares one metric with a number",
                     "unknown metric 'nothing'", "an alert must read at least one metric"]
    tree = compile_text('''
        metric rate = count(orders)
        target rate >= 30% by 2027-03-31 from 2026-10 every month where region == "North"
        alert change(rate) < -10% { severity critical message "falling" }
    ''')
    (target,) = tree.targets
    assert (target.metric, target.op, target.value, target.deadline, target.start, target.every) == (
        "rate", ">=", 0.3, "2027-03-31", "2026-10", "month")
    (alert,) = tree.alerts
    assert (alert.metrics, alert.severity, alert.message) == (("rate",), "critical", "falling")


def test_include_merges_files_and_reports_clashes_and_cycles(tmp_path):
    (tmp_path / "common.tree").write_text(HEADER + "metric revenue = sum(orders.amount)\n", "utf-8")
    main = tmp_path / "main.tree"
    main.write_text('include "common.tree"\nmetric double = revenue * 2\n', "utf-8")
    tree = metrictree.load(main)
    assert set(tree.metrics) == {"revenue", "double"}
    assert str(tree.metrics["revenue"].span).endswith("common.tree:11:8")

    main.write_text('include "common.tree"\nmetric revenue = count(orders)\n', "utf-8")
    with pytest.raises(CompileError, match=r"'revenue' is already defined as a metric at .*common.tree:11:8"):
        metrictree.load(main)

    (tmp_path / "a.tree").write_text('include "b.tree"\n', "utf-8")
    (tmp_path / "b.tree").write_text('include "a.tree"\n', "utf-8")
    with pytest.raises(CompileError, match="include cycle: a.tree → b.tree → a.tree"):
        metrictree.load(tmp_path / "a.tree")

    main.write_text('include "missing.tree"\n', "utf-8")
    with pytest.raises(CompileError, match="cannot include 'missing.tree'"):
        metrictree.load(main)


def test_unknown_library_and_grain():
    assert problems("import crmm\nmetric x = count(orders)")[0] == "unknown library 'crmm'"
    assert problems("grain mnth\nmetric x = count(orders)") == ["unknown grain 'mnth'"]


def test_check_returns_errors_and_warnings_without_raising(tmp_path):
    path = tmp_path / "x.tree"
    path.write_text(HEADER + "metric a = count(orders)\nmetric b = count(orders)\nmetric c = nope\n", "utf-8")
    found = metrictree.check(path)
    assert [(d.severity, d.span.line) for d in found] == [("warning", 11), ("warning", 12), ("warning", 13),
                                                          ("error", 13)]
    path.write_text("metric = 1", "utf-8")
    assert [d.code for d in metrictree.check(path)] == ["syntax"]
    assert metrictree.check(tmp_path / "none.tree")[0].message.startswith("no tree file at")


def test_bundled_tree_compiles_without_warnings():
    from importlib.resources import files

    tree = metrictree.load(str(files("metrictree.trees").joinpath("crm_ltv.tree")))
    assert tree.roots() == ["ltv", "cac"]
    assert tree.metrics["cac"].controllable is False
    assert tree.warnings == ()
    assert tree.graph.edges["churn_rate", "engagement"]["kind"] == "influence"
