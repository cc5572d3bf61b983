"""The HTML report, without a browser: the charts' geometry, the layouts, the page's parts, escaping, the CLI.

The browser checks (rendering, clicking, console errors, a screenshot) are in test_report_browser.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import doctest
import hashlib
import html
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pyarrow as pa
import pytest
from click.testing import CliRunner

import metrictree
from metrictree import reporting
from metrictree.cli import main
from metrictree.errors import UsageError
from metrictree.sample import sample_data

SVG = "{http://www.w3.org/2000/svg}"
HAS_DOT = reporting._dot() is not None


@pytest.fixture(scope="module")
def page(tree, data):
    return reporting.report(tree, data, "ltv", "2026-09", "2026-10")


class Elements(HTMLParser):
    """Every start tag of a page with its attributes (a real HTML parser, not regular expressions)."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str | None = None, **wanted: str) -> list[dict[str, str | None]]:
        def matches(attrs):
            for key, value in wanted.items():
                key = key.replace("_", "-").removesuffix("-")
                if key == "class":
                    if value not in (attrs.get("class") or "").split():
                        return False
                elif attrs.get(key) != value:
                    return False
            return True

        return [a for t, a in self.tags if (tag is None or t == tag) and matches(a)]


def formula_drivers(explanation):
    return [d for d in explanation.drivers if d.kind != "influence" and d.contribution is not None]


# --------------------------------------------------------------------------- numbers


def test_doctests_of_the_module_pass():
    result = doctest.testmod(reporting)
    assert result.attempted >= 6 and result.failed == 0


def test_numbers_for_nodes_and_bars():
    assert reporting.compact(2_500_000_000.0, "RUB") == "2.50B RUB"
    assert reporting.compact(-1_500_000.0) == "−1.50M"
    assert reporting.compact(870.0) == "870"  # a count that came back as a float
    assert reporting.compact(float("nan")) == "—"
    assert reporting.signed_compact(0.0) == "±0"
    assert reporting.signed_compact(0.012, "%") == "+1.2 pp"
    assert reporting.change_text(None, 3.0, None) == "—"
    assert reporting.change_text(5.0, 5.0, None) == "±0 %"
    assert reporting.change_text(-10.0, -5.0, None) == "+50.0 %"  # relative to |baseline|
    assert reporting.change_text(0.2, 0.2003, "%") == "+0.03 pp"
    assert reporting.tone(None, "up") == "neutral"
    assert reporting.tone(2.0, "down") == "bad"


# --------------------------------------------------------------------------- waterfall


def _bars(svg: str) -> list[ET.Element]:
    return [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("data-kind")]


def test_waterfall_bars_run_from_the_start_through_each_step_to_the_end():
    bars = reporting.waterfall_bars(("2026-09", 100.0), [("a", -30.0), ("b", 5.0), ("c", -25.0)], ("2026-10", 50.0))
    assert [b.kind for b in bars] == ["start", "step", "step", "step", "end"]
    assert [(b.before, b.after) for b in bars[1:-1]] == [(100.0, 70.0), (70.0, 75.0), (75.0, 50.0)]
    assert bars[-2].after == bars[-1].after == 50.0


def test_waterfall_svg_places_each_step_between_the_running_totals():
    svg = reporting.waterfall_svg(("2026-09", 100.0), [("Average order value", -30.0), ("Frequency", 5.0),
                                                       ("Lifetime", -25.0)], ("2026-10", 50.0))
    rects = _bars(svg)
    assert [r.get("data-kind") for r in rects] == ["start", "step", "step", "step", "end"]
    start, end = rects[0], rects[-1]
    # Pixels per unit from the start bar (from 0 to 100), then every step must sit at its running totals.
    zero = float(start.get("y")) + float(start.get("height"))
    scale = float(start.get("height")) / 100.0
    for rect in rects[1:-1]:
        before, after = float(rect.get("data-before")), float(rect.get("data-after"))
        top, bottom = float(rect.get("y")), float(rect.get("y")) + float(rect.get("height"))
        assert top == pytest.approx(zero - max(before, after) * scale, abs=0.11)
        assert bottom == pytest.approx(zero - min(before, after) * scale, abs=0.11)
    assert float(end.get("y")) == pytest.approx(zero - 50.0 * scale, abs=0.11)
    assert float(end.get("data-value")) == 50.0
    # Without a direction, up and down are told apart without calling either good or bad.
    classes = [r.get("class") for r in rects]
    assert classes[1].endswith("mt-bar-down") and classes[2].endswith("mt-bar-up")
    labels = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text") if "mt-bar-name" in (t.get("class") or "")]
    assert "Average order" in labels and "value" in labels  # a long label wraps onto two lines


def test_waterfall_colours_follow_the_direction_and_cross_zero():
    svg = reporting.waterfall_svg(("a", 5.0), [("down", -8.0)], ("b", -3.0), direction="up")
    rects = _bars(svg)
    assert rects[1].get("class").endswith("mt-bar-bad")
    assert all(float(r.get("height")) > 0 for r in rects)
    # The end bar hangs below the zero line, which the start bar stands on.
    zero = float(rects[0].get("y")) + float(rects[0].get("height"))
    assert float(rects[-1].get("y")) == pytest.approx(zero, abs=0.11)
    assert "mt-bar-good" in reporting.waterfall_svg(("a", 5.0), [("x", -1.0)], ("b", 4.0), direction="down")


def test_waterfall_shows_a_tiny_step_as_a_hairline_and_handles_a_flat_chart():
    svg = reporting.waterfall_svg(("a", 1e6), [("tiny", 1.0)], ("b", 1e6 + 1))
    assert float(_bars(svg)[1].get("height")) >= 1.5
    flat = reporting.waterfall_svg(("a", 0.0), [("none", 0.0)], ("b", 0.0))
    assert [r.get("class").split()[-1] for r in _bars(flat)] == ["mt-bar-start", "mt-bar-flat", "mt-bar-end"]


# --------------------------------------------------------------------------- sparklines


def test_sparkline_breaks_at_nulls_and_marks_the_two_periods():
    labels = ["p1", "p2", "p3", "p4", "p5", "p6"]
    svg = reporting.sparkline_svg(labels, [1.0, None, 2.0, 3.0, None, 4.0], marks={"p4": "baseline", "p6": "current"})
    root = ET.fromstring(svg)
    lines = list(root.iter(f"{SVG}polyline"))
    assert len(lines) == 1 and len(lines[0].get("points").split()) == 2  # p3–p4
    dots = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "mt-spark-dot"]
    assert len(dots) == 2  # p1 and p6 stand alone
    assert {c.get("data-period"): c.get("class") for c in root.iter(f"{SVG}circle") if c.get("data-period")} == {
        "p4": "mt-spark-baseline", "p6": "mt-spark-current"}
    assert root.get("data-points") == "4"
    # The higher value is drawn higher.
    p3, p4 = (tuple(map(float, p.split(","))) for p in lines[0].get("points").split())
    assert p4[1] < p3[1]


def test_sparkline_of_nothing_or_a_constant():
    empty = ET.fromstring(reporting.sparkline_svg(["a", "b"], [None, None]))
    assert empty.get("data-points") == "0" and list(empty.iter(f"{SVG}line"))
    flat = ET.fromstring(reporting.sparkline_svg(["a", "b", "c"], [2.0, 2.0, 2.0], axis=True))
    ys = {p.split(",")[1] for p in next(flat.iter(f"{SVG}polyline")).get("points").split()}
    assert len(ys) == 1 and all(math.isfinite(float(y)) for y in ys)
    one = ET.fromstring(reporting.sparkline_svg(["a"], [5.0]))
    assert len(list(one.iter(f"{SVG}circle"))) == 1


# --------------------------------------------------------------------------- layouts


def _sizes(tree):
    return {name: (150.0, 60.0) for name in tree.graph.nodes}


def _check_layout(tree, drawn):
    assert set(drawn.boxes) == set(tree.metrics)
    for parent, child in tree.graph.edges:
        assert drawn.boxes[parent].y < drawn.boxes[child].y, (parent, child)  # top metric at the top
    boxes = list(drawn.boxes.items())
    for i, (a, p) in enumerate(boxes):
        assert 0 <= p.x - p.width / 2 and p.x + p.width / 2 <= drawn.width + 0.5
        assert 0 <= p.y - p.height / 2 and p.y + p.height / 2 <= drawn.height + 0.5
        for b, q in boxes[i + 1:]:
            apart = abs(p.x - q.x) >= (p.width + q.width) / 2 - 0.5 or abs(p.y - q.y) >= (p.height + q.height) / 2 - 0.5
            assert apart, (a, b)
    assert len(drawn.edges) == tree.graph.number_of_edges()
    kinds = {(e.parent, e.child): e.kind for e in drawn.edges}
    assert kinds[("churn_rate", "engagement")] == "influence" and kinds[("ltv", "aov")] == "formula"
    assert all(e.path.startswith("M") for e in drawn.edges)


def test_layered_layout_needs_no_graphviz(tree):
    drawn = reporting.layered_layout(tree, _sizes(tree))
    assert drawn.engine == "layered"
    _check_layout(tree, drawn)


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_graphviz_layout(tree):
    drawn = reporting.layout(tree, _sizes(tree))
    assert drawn.engine == "graphviz"
    _check_layout(tree, drawn)
    assert drawn.boxes["ltv"].width == pytest.approx(150.0, abs=0.5)


def test_without_graphviz_the_report_falls_back_and_svg_output_says_what_to_install(monkeypatch, tree):
    monkeypatch.setattr(reporting, "_dot", lambda: None)
    assert reporting.layout(tree, _sizes(tree)).engine == "layered"
    with pytest.raises(UsageError) as caught:
        reporting.graphviz("digraph {}", "svg")
    assert "apt-get install graphviz" in caught.value.render()
    with pytest.raises(UsageError):
        reporting.layout(tree, _sizes(tree), engine="graphviz")
    assert 'data-layout="layered"' in reporting.tree_fragment(tree)


# --------------------------------------------------------------------------- the page


def test_the_report_has_a_node_and_a_details_panel_for_every_metric(tree, page):
    found = Elements(page)
    nodes = found.find("g", class_="mt-node")
    assert sorted(n["data-metric"] for n in nodes) == sorted(tree.metrics)
    panels = found.find("section", class_="mt-details")
    assert sorted(p["data-metric"] for p in panels) == sorted(tree.metrics)
    # Each node opens its own panel; only the explained metric's panel shows at first.
    ids = {p["id"]: p["data-metric"] for p in panels}
    assert all(ids[n["data-target"]] == n["data-metric"] for n in nodes)
    assert [p["data-metric"] for p in panels if "hidden" not in p] == ["ltv"]
    assert found.find("g", class_="mt-root")[0]["data-metric"] == "ltv"
    # Influence edges are dashed (their own class), formula edges solid.
    edges = found.find("path", class_="mt-edge")
    assert len(edges) == tree.graph.number_of_edges()
    assert sum("mt-influence" in e["class"].split() for e in edges) == sum(
        1 for *_, k in tree.graph.edges(data="kind") if k == "influence")


def test_the_waterfall_has_a_bar_per_top_level_driver_and_ends_at_the_current_value(page, explanation):
    bars = Elements(page).find("rect", class_="mt-bar")
    steps = [b for b in bars if b["data-kind"] == "step"]
    drivers = formula_drivers(explanation)
    assert [b["data-label"] for b in steps] == [d.label for d in drivers]
    start, end = bars[0], bars[-1]
    assert float(start["data-value"]) == explanation.baseline.value
    assert float(end["data-value"]) == explanation.current.value
    assert float(steps[-1]["data-after"]) == pytest.approx(explanation.current.value, rel=1e-9)


def test_the_report_shows_history_status_and_the_story(tree, page, explanation):
    found = Elements(page)
    sparks = found.find("svg", class_="mt-spark")
    assert len(sparks) >= 2 * sum(m.kind != "group" for m in tree.metrics.values())  # in the nodes and the table
    assert found.find("section", id="mt-status")
    assert len(found.find("tr", data_state="fired")) == len(tree.status(sample_data(), at="2026-10").fired)
    assert all(html.escape(sentence) in page for sentence in explanation.summary())


def test_the_page_loads_nothing_and_its_script_is_allowed_by_hash(page):
    found = Elements(page)
    assert not found.find("link") and not found.find("img") and not found.find("iframe")
    assert all("src" not in attrs for _, attrs in found.tags)
    hrefs = [a.get("href") for _, a in found.tags if "href" in a]
    assert hrefs == []
    assert re.findall(r"url\(([^)]*)\)", page) == ["#mt-arrow"] * page.count("url(#mt-arrow)")
    assert "@import" not in page and "eval(" not in page and "innerHTML" not in page
    policy = found.find("meta", http_equiv="Content-Security-Policy")[0]["content"]
    assert "default-src 'none'" in policy
    script = page.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy
    assert page.count("<script") == 1


def test_a_range_baseline_and_a_base_metric(tree, data):
    page = reporting.report(tree, data, "revenue", "2026-07..2026-09", "2026-10", by=["region"])
    found = Elements(page)
    bars = found.find("rect", class_="mt-bar")
    assert [b["data-kind"] for b in bars] == ["start", "step", "end"]  # a base metric: one step, the change
    assert bars[0]["data-label"] == "2026-07..2026-09"
    marked = found.find("circle", class_="mt-spark-baseline")
    assert {c["data-period"] for c in marked} == {"2026-07", "2026-08", "2026-09"}


def test_a_tree_without_targets_has_no_status_section(data):
    tree = metrictree.loads('tree t\ngrain month\nsource orders { time order_date dimensions region }\n'
                            'metric revenue = sum(orders.amount)\nmetric orders_n = count(orders)\n'
                            'metric aov = revenue / orders_n { unit RUB direction up }\n')
    page = reporting.report(tree, data, "aov")
    assert 'id="mt-status"' not in page
    bars = Elements(page).find("rect", class_="mt-bar")
    assert {b["class"].split()[-1] for b in bars if b["data-kind"] == "step"} <= {"mt-bar-good", "mt-bar-bad"}


# --------------------------------------------------------------------------- safety


HOSTILE = '<img src=x onerror="window.pwned=1">'


def hostile_tree_and_data():
    text = f'''tree evil "<b>bold</b> & <i>co</i>"
grain month
source orders {{ label "{HOSTILE.replace('"', "'")}" time order_date dimensions region }}
metric revenue = sum(orders.amount) {{ label "<script>window.pwned=1</script>" unit "</text><script>x</script>" }}
metric orders_n = count(orders) {{ description "\\"><svg onload=alert(1)>" }}
metric aov = revenue / orders_n {{ label "A & B <aov>" owner "<u>me</u>" }}
target aov >= 100 by 2026-12 {{ label "<target>" }}
alert aov < 1000000 {{ message "<alert>" severity critical }}
'''
    tree = metrictree.loads(text)
    days = [dt.date(2026, 9, 5), dt.date(2026, 9, 6), dt.date(2026, 10, 5), dt.date(2026, 10, 7)]
    orders = pa.table({"order_date": days, "amount": [100.0, 200.0, 50.0, 400.0],
                       "region": ['<script>window.pwned=1</script>', "North", HOSTILE, "North"]})
    return tree, {"orders": orders}


def test_every_label_value_and_segment_is_escaped():
    tree, data = hostile_tree_and_data()
    page = reporting.report(tree, data, "aov", by=["region"])
    assert page.count("<script") == 1  # ours
    for raw in ("<script>window", "<img", "<svg onload", "<b>bold", "<u>me", "<target>", "<alert>", "<aov>",
                "</text><script>"):
        assert raw not in page, raw
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert "region = &lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;" in page  # a segment from the data
    assert "A &amp; B &lt;aov&gt;" in page
    for fragment in (tree._repr_html_(), tree.explain(data, "aov", by=["region"])._repr_html_(),
                     tree.status(data)._repr_html_()):
        assert "<script" not in fragment and "<img" not in fragment


# --------------------------------------------------------------------------- notebooks


def test_notebook_views(tree, explanation, data):
    shown = tree._repr_html_()
    assert sorted(n["data-metric"] for n in Elements(shown).find("g", class_="mt-node")) == sorted(tree.metrics)
    # Nothing to click without a script.
    assert "<script" not in shown and all("data-target" not in attrs for _, attrs in Elements(shown).tags)
    markdown = tree._repr_markdown_()
    assert markdown.startswith("**Why did LTV move?** (`crm_ltv`)") and "```mermaid\nflowchart TD" in markdown
    shown = explanation._repr_html_()
    steps = [b for b in Elements(shown).find("rect", class_="mt-bar") if b["data-kind"] == "step"]
    assert len(steps) == len(formula_drivers(explanation))
    status = tree.status(data, at="2026-10")
    assert 'id="mt-status"' in status._repr_html_() and "Open rate" in status._repr_html_()
    assert explanation._repr_markdown_() == explanation.to_markdown()


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def runner():
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def test_cli_report_writes_one_page(runner, tmp_path, tree):
    out = tmp_path / "r.html"
    result = runner.invoke(main, ["report", "trees/crm_ltv.tree", "--sample", "--baseline", "2026-09", "--current",
                                  "2026-10", "--by", "region,channel", "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text("utf-8")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert sorted(n["data-metric"] for n in Elements(page).find("g", class_="mt-node")) == sorted(tree.metrics)
    assert "by region, channel" in page


def test_cli_report_errors_are_messages(runner, tmp_path):
    result = runner.invoke(main, ["report", "trees/crm_ltv.tree", "--sample", "--metric", "ltvv"])
    assert result.exit_code == 1
    assert "unknown metric 'ltvv'" in result.stderr and "did you mean 'ltv'?" in result.stderr
    result = runner.invoke(main, ["report", "trees/crm_ltv.tree"])
    assert result.exit_code == 1 and "--sample" in result.stderr


def test_cli_explain_and_status_as_html(runner, tmp_path):
    result = runner.invoke(main, ["explain", "crm_ltv", "--sample", "--format", "html"])
    assert result.exit_code == 0
    assert result.stdout.startswith("<!doctype html>") and 'class="mt-waterfall"' in result.stdout
    result = runner.invoke(main, ["status", "crm_ltv", "--sample", "--format", "html", "-o", str(tmp_path / "s.html")])
    assert result.exit_code == 0
    page = (tmp_path / "s.html").read_text("utf-8")
    states = {t.state for t in metrictree.load("trees/crm_ltv.tree").status(sample_data()).targets}
    assert 'id="mt-status"' in page and 'class="mt-waterfall"' not in page
    assert all(f">{state}</span>" in page for state in states)


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_cli_graph_as_svg_and_png(runner, tmp_path):
    result = runner.invoke(main, ["graph", "trees/crm_ltv.tree", "--format", "svg"])
    assert result.exit_code == 0 and "<svg" in result.stdout and "Customer lifetime value" in result.stdout
    result = runner.invoke(main, ["graph", "trees/crm_ltv.tree", "--format", "png", "-o", str(tmp_path / "g.png")])
    assert result.exit_code == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_graph_without_graphviz_names_the_package(runner, monkeypatch):
    monkeypatch.setattr(reporting, "_dot", lambda: None)
    result = runner.invoke(main, ["graph", "trees/crm_ltv.tree", "--format", "png"])
    assert result.exit_code == 1
    assert "needs Graphviz's `dot`, which is not installed" in result.stderr
    assert "apt-get install graphviz" in result.stderr and "Traceback" not in result.stderr
    result = runner.invoke(main, ["graph", "trees/crm_ltv.tree", "--format", "mermaid"])
    assert result.exit_code == 0 and result.stdout.startswith("flowchart TD")
