"""The HTML report in a real browser: headless Chromium, driven by Playwright.

Chromium is Debian's (``apt-get install chromium``; .ci/run installs it); Playwright's own browser
download is never used. The tests are skipped, saying why, only when no Chromium binary is found
(``METRICTREE_CHROMIUM`` may name one).

``METRICTREE_SCREENSHOT=docs/images/report.png python -m pytest tests/test_report_browser.py`` also
writes the README's screenshot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import networkx as nx
import pytest

from metrictree import reporting
from metrictree.narrating import where_text

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}


def _chromium() -> str | None:
    named = os.environ.get("METRICTREE_CHROMIUM")
    if named:
        return named
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary found: apt-get install chromium "
                                                          "(or set METRICTREE_CHROMIUM to one)")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        pytest.fail("Chromium is installed but Playwright is not: pip install '.[test]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Page:
    """A page opened from a file, with everything the browser complained about or asked for."""

    def __init__(self, browser, path: Path):
        self.url = path.resolve().as_uri()
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page = browser.new_page(viewport=VIEWPORT)
        self.page.on("console", lambda m: m.type in ("error", "warning")
                     and self.problems.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(self.url)
        self.page.wait_for_selector('body[data-ready="1"]', timeout=10_000)

    def boxes(self, selector: str) -> list[dict]:
        return self.page.eval_on_selector_all(selector, """els => els.map(el => {
            const r = el.getBoundingClientRect();
            return {x: r.x, y: r.y, right: r.right, bottom: r.bottom, width: r.width, height: r.height,
                    metric: el.getAttribute('data-metric'), kind: el.getAttribute('data-kind'),
                    label: el.getAttribute('data-label'), value: parseFloat(el.getAttribute('data-value')),
                    after: parseFloat(el.getAttribute('data-after'))};
        })""")

    def close(self):
        self.page.close()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def _no_overlap(boxes: list[dict]) -> None:
    for i, a in enumerate(boxes):
        assert a["width"] > 20 and a["height"] > 20, a
        for b in boxes[i + 1:]:
            apart = a["right"] <= b["x"] + 0.5 or b["right"] <= a["x"] + 0.5 or a["bottom"] <= b["y"] + 0.5 \
                or b["bottom"] <= a["y"] + 0.5
            assert apart, (a["metric"], b["metric"])


def _texts_fit(page) -> None:
    """Every label that has a width to fit in (data-fit) fits, in the browser's real font."""
    over = page.eval_on_selector_all("svg text[data-fit]", """els => els
        .filter(t => t.getComputedTextLength() > parseFloat(t.getAttribute('data-fit')) + 0.5)
        .map(t => t.textContent)""")
    assert over == []


def test_the_report_renders_in_chromium(browser, tmp_path, tree, data, explanation):
    path = _write(tmp_path, "report.html", reporting.report(tree, data, "ltv", "2026-09", "2026-10"))
    view = Page(browser, path)
    try:
        # The graph: a node for every metric, none overlapping, all labels fitting their boxes.
        nodes = view.boxes("svg.mt-graph g.mt-node")
        assert sorted(n["metric"] for n in nodes) == sorted(tree.metrics)
        _no_overlap(nodes)
        _texts_fit(view.page)
        root = next(n for n in nodes if n["metric"] == "ltv")
        assert all(root["y"] <= n["y"] + 0.5 for n in nodes)  # the top metric on top
        below = nx.descendants(tree.graph, "ltv")
        assert all(root["bottom"] < n["y"] for n in nodes if n["metric"] in below)

        # The waterfall: a bar per top-level formula driver, the bars chained from the baseline to the current.
        drivers = [d for d in explanation.drivers if d.kind != "influence"]
        bars = view.boxes("svg.mt-waterfall rect.mt-bar")
        steps = [b for b in bars if b["kind"] == "step"]
        assert [b["label"] for b in steps] == [d.label for d in drivers]
        start, end = bars[0], bars[-1]
        assert start["value"] == pytest.approx(explanation.baseline.value)
        assert end["value"] == pytest.approx(explanation.current.value)
        assert steps[-1]["after"] == pytest.approx(explanation.current.value, rel=1e-9)
        px_per_unit = start["height"] / explanation.baseline.value

        def level(bar):  # where a bar ends, in page pixels
            return bar["bottom"] if bar["value"] < 0 else bar["y"]

        chain = [start, *steps]
        for before, step in zip(chain, steps, strict=False):
            top_of_before = before["y"] if before["kind"] == "start" else level(before)
            start_of_step = step["y"] if step["value"] < 0 else step["bottom"]
            if step["height"] > 2:  # hairlines are centred on their level
                assert start_of_step == pytest.approx(top_of_before, abs=1.0)
        last = steps[-1]
        if last["height"] > 2:
            assert level(last) == pytest.approx(end["y"], abs=1.0)
        assert end["height"] == pytest.approx(explanation.current.value * px_per_unit, abs=1.5)

        # Sparklines drawn, the status there, nothing went wrong, nothing was fetched.
        assert view.page.locator("svg.mt-spark polyline").count() >= len(tree.metrics)
        assert view.page.locator("#mt-status tr[data-state='fired']").count() >= 1
        assert view.problems == []
        assert view.requests == [view.url]

        shot = tmp_path / "report.png"
        view.page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        wanted = os.environ.get("METRICTREE_SCREENSHOT")
        if wanted:
            # The README's picture: the story at a glance, down to the bottom of the graph.
            bottom = view.page.eval_on_selector("#mt-graph", "el => el.getBoundingClientRect().bottom")
            Path(wanted).parent.mkdir(parents=True, exist_ok=True)
            view.page.screenshot(path=wanted, full_page=True, clip={"x": 0, "y": 0, "width": VIEWPORT["width"],
                                                    "height": bottom + 12})
    finally:
        view.close()


def test_clicking_a_metric_shows_its_details(browser, tmp_path, tree, data, explanation):
    path = _write(tmp_path, "report.html", reporting.report(tree, data, "ltv", "2026-09", "2026-10"))
    view = Page(browser, path)
    page = view.page
    # The driver with segments that carries most of the change (whatever the tree's formulas are today).
    carrier = reporting._segment_carrier(explanation)
    assert carrier is not None
    metric = tree.metrics[carrier.metric]
    try:
        visible = page.locator("section.mt-details:visible")
        assert visible.count() == 1 and visible.get_attribute("data-metric") == "ltv"

        node = page.locator(f'svg.mt-graph g.mt-node[data-metric="{metric.name}"]')
        node.click()
        assert visible.count() == 1 and visible.get_attribute("data-metric") == metric.name
        text = visible.text_content()
        assert metric.title in text and metric.formula.to_source() in text
        assert f"Part of the change of {explanation.label}" in text
        assert all(f"via {tree.metrics[p].title}" in text for p in tree.parents(metric.name)
                   if tree.graph.edges[p, metric.name]["kind"] == "formula" and p in _explained(explanation))
        assert where_text(carrier.segments[0].where) in text  # its segments
        assert "mt-selected" in node.get_attribute("class").split()
        assert node.get_attribute("aria-pressed") == "true"
        touching = sum(1 for a, b in tree.graph.edges if metric.name in (a, b))
        assert page.locator("path.mt-edge.mt-lit").count() == touching

        # By keyboard: an influence child says whom it influences.
        parent, child = next((a, b) for a, b, k in tree.graph.edges(data="kind") if k == "influence")
        page.locator(f'svg.mt-graph g.mt-node[data-metric="{child}"]').focus()
        page.keyboard.press("Enter")
        assert visible.get_attribute("data-metric") == child
        assert tree.metrics[parent].title in visible.text_content()
        # From a row of the metrics table.
        row = page.locator("#mt-metrics tr[data-target]").filter(has_text=tree.metrics["aov"].title).first
        row.click()
        assert visible.get_attribute("data-metric") == "aov"
        assert page.locator("section.mt-details:visible").count() == 1
        assert view.problems == []
    finally:
        view.close()


def _explained(explanation) -> set[str]:
    return {d.metric for top in explanation.drivers for d in top.walk() if d.kind == "formula"} | {explanation.metric}


def test_the_layered_fallback_reads_in_chromium(browser, tmp_path, tree, data):
    page = reporting.report(tree, data, "ltv", engine="layered")
    view = Page(browser, _write(tmp_path, "layered.html", page))
    try:
        assert view.page.get_attribute("svg.mt-graph", "data-layout") == "layered"
        nodes = view.boxes("svg.mt-graph g.mt-node")
        assert len(nodes) == len(tree.metrics)
        _no_overlap(nodes)
        _texts_fit(view.page)
        graph = view.boxes("svg.mt-graph")[0]
        assert all(graph["x"] - 0.5 <= n["x"] and n["right"] <= graph["right"] + 0.5 for n in nodes)
        assert view.problems == []
    finally:
        view.close()


def test_explain_and_status_pages_on_their_own(browser, tmp_path, tree, data, explanation):
    status = tree.status(data, at="2026-10")
    for name, text in (("explain.html", reporting.explanation_html(explanation)),
                       ("status.html", reporting.status_html(status))):
        view = Page(browser, _write(tmp_path, name, text))
        try:
            if name == "explain.html":
                steps = view.page.locator("svg.mt-waterfall rect.mt-bar[data-kind='step']")
                assert steps.count() == len([d for d in explanation.drivers if d.kind != "influence"])
                _texts_fit(view.page)
            else:
                assert view.page.locator("#mt-status table.mt-targets tr[data-state]").count() == len(status.targets)
                assert view.page.locator("#mt-status table.mt-alerts tr").count() == len(status.fired) + 1
            assert view.problems == [] and view.requests == [view.url]
        finally:
            view.close()


def test_hostile_labels_and_data_stay_text(browser, tmp_path):
    from test_report import hostile_tree_and_data

    tree, data = hostile_tree_and_data()
    view = Page(browser, _write(tmp_path, "evil.html", reporting.report(tree, data, "aov", by=["region"])))
    try:
        page = view.page
        assert page.evaluate("window.pwned") is None
        assert view.dialogs == []
        assert page.evaluate("document.scripts.length") == 1
        assert page.locator("img").count() == 0
        page.locator('svg.mt-graph g.mt-node[data-metric="revenue"]').click()
        assert "<script>window.pwned=1</script>" in page.locator("section.mt-details:visible").inner_text()
        assert view.requests == [view.url]
    finally:
        view.close()
