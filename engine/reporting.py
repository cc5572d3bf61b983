"""The report: the tree, the explanation and the KPI status as one self-contained HTML page.

``metrictree report TREE --sample -o report.html`` writes one file that opens anywhere, offline:
its style sheet and its one small script are inline, it uses the system's fonts, and a
Content-Security-Policy forbids it to load anything (the script is allowed by its hash).

- **The graph** is laid out by Graphviz's ``dot`` when it is installed (``dot -Tjson``: node
  positions and edge splines); otherwise by `layered_layout`, a layered drawing from
  networkx's ``topological_generations`` with barycenter ordering. Either way the nodes
  are drawn here, as SVG, with the metric's value, change and a sparkline.
- **The charts** — the waterfall and the sparklines — are inline SVG computed from the
  data by `waterfall_svg` and `sparkline_svg`: a few rectangles and a polyline, no
  charting library.
- **Safety**: tree files are user data, so every label, value and formula goes through
  `html.escape`; the script builds no markup (it toggles ``hidden`` and classes, and
  shortens text with ``textContent``).

Everything here is a pure function of its arguments (the tree, an `Explanation`, a
`Status`, an `Evaluation`), except `report`, which computes those from data, and
`graphviz`, `graphviz_layout`, which run ``dot``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import math
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import attrs
import networkx as nx

from . import periods
from .errors import MetrictreeError, UsageError, error
from .narrating import mix_text, number, part_text, sentences, share_of, where_text

if TYPE_CHECKING:  # pragma: no cover
    from .evaluating import Evaluation
    from .explaining import Driver, Explanation
    from .model import Metric, Tree
    from .rules import Status, TargetStatus

NULL = "—"
GRAPHVIZ_HINT = ("install Graphviz: apt-get install graphviz (Debian, Ubuntu), brew install graphviz (macOS); "
                 "or use --format mermaid or --format dot, which need nothing")


def _e(value: Any) -> str:
    """Text for HTML (content and attribute values alike)."""
    return html.escape(str(value), quote=True)


def _f(value: float) -> str:
    """A coordinate for SVG."""
    text = f"{value:.1f}"
    return "0" if text in ("-0.0", "0.0") else text.removesuffix(".0")


@functools.cache
def _asset(name: str) -> str:
    return resources.files("metrictree").joinpath("report_assets", name).read_text("utf-8")


# --------------------------------------------------------------------------- numbers for people


def _number(value: float | None, unit: str | None = None, signed: bool = False) -> str:
    """`metrictree.narrating.number`, with a whole float (a count, after a mean or a sum) shown as a whole number.

    >>> _number(732.0), _number(-649.0, signed=True), _number(1.85), _number(0.25, "%")
    ('732', '−649', '1.85', '25.0%')
    """
    if isinstance(value, float) and value.is_integer() and unit != "%" and abs(value) < 1e15:
        value = int(value)
    return number(value, unit, signed=signed)


def compact(value: float | None, unit: str | None = None) -> str:
    """A value short enough for a node or a bar: millions as ``7.88M``, with its unit.

    >>> compact(7884466.0, "RUB"), compact(23852.4, "RUB"), compact(0.196, "%"), compact(None)
    ('7.88M RUB', '23,852 RUB', '19.6%', '—')
    """
    if value is None or not math.isfinite(value):
        return NULL
    if isinstance(value, float) and value.is_integer() and unit != "%" and abs(value) < 1e6:
        value = int(value)  # counts come back as floats from means and sums
    if unit == "%" or abs(value) < 1e6:
        return number(value, unit)
    scaled, suffix = (value / 1e9, "B") if abs(value) >= 1e9 else (value / 1e6, "M")
    text = f"{scaled:,.2f}{suffix}".replace("-", "−")
    return f"{text} {unit}" if unit else text


def signed_compact(value: float | None, unit: str | None = None) -> str:
    """``+4,326 RUB``, ``−446K RUB``: a contribution on a bar.

    >>> signed_compact(-446369.8, "RUB"), signed_compact(4326.1, "RUB"), signed_compact(-2023845.0)
    ('−446K RUB', '+4,326 RUB', '−2.02M')
    """
    if value is None or not math.isfinite(value):
        return NULL
    sign = "+" if value > 0 else "−" if value < 0 else "±"
    size = abs(value)
    if unit == "%":
        return points(value)
    if size >= 1e9:
        text = f"{size / 1e9:,.2f}B"
    elif size >= 1e6:
        text = f"{size / 1e6:,.2f}M"
    elif size >= 1e5:
        text = f"{size / 1e3:,.0f}K"
    else:
        text = number(size)
    return f"{sign}{text}" + (f" {unit}" if unit else "")


def points(change: float) -> str:
    """A change of a ``%`` metric in percentage points, short: ``+18.6 pp``, ``−5.67 pp``, ``+0.03 pp``.

    >>> points(0.1857), points(-0.0567), points(0.000302), points(0.012), points(0.0)
    ('+18.6 pp', '−5.67 pp', '+0.03 pp', '+1.2 pp', '±0 pp')
    """
    value = change * 100
    text = f"{abs(value):,.{1 if abs(value) >= 10 else 2}f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    if text == "0":
        return "±0 pp"
    return ("+" if value > 0 else "−") + text + " pp"


def signed(value: float | None, unit: str | None) -> str:
    """A change or a contribution, signed, in full: ``−447,973 RUB``; in percentage points for a ``%`` metric.

    >>> signed(-447973.2, "RUB"), signed(-0.0012, "%"), signed(None, None)
    ('−447,973 RUB', '−0.12 pp', '—')
    """
    if value is None:
        return NULL
    return points(value) if unit == "%" else _number(value, unit, signed=True)


def percent(share: float | None) -> str:
    """A share as a whole percentage with a real minus sign: ``−575 %``; empty for none.

    >>> percent(-5.75), percent(0.084), percent(None)
    ('−575 %', '8 %', '')
    """
    return "" if share is None else f"{share * 100:.0f} %".replace("-", "−")


def change_text(baseline: float | None, current: float | None, unit: str | None) -> str:
    """How a value moved: ``−94.9 %`` (relative), ``+18.6 pp`` for a ``%`` metric, signed when from zero.

    >>> change_text(471824.0, 23852.0, "RUB"), change_text(0.01, 0.196, "%"), change_text(0, 5, None)
    ('−94.9 %', '+18.6 pp', '+5')
    """
    if baseline is None or current is None:
        return NULL
    if unit == "%":
        return points(current - baseline)
    if baseline:
        rel = (current - baseline) / abs(baseline) * 100
        if rel == 0:
            return "±0 %"
        digits = 1 if abs(rel) < 1000 else 0
        return f"{rel:+,.{digits}f} %".replace("-", "−")
    return _number(current - baseline, unit, signed=True)


def tone(change: float | None, direction: str | None) -> str:
    """``good`` when a change goes the metric's ``direction``, ``bad`` when against it, else ``neutral``.

    >>> tone(-3.0, "down"), tone(-3.0, "up"), tone(-3.0, None), tone(0.0, "up")
    ('good', 'bad', 'neutral', 'neutral')
    """
    if not change or direction not in ("up", "down"):
        return "neutral"
    return "good" if (change > 0) == (direction == "up") else "bad"


def _text_width(text: str, size: float, bold: bool = False) -> float:
    """A generous estimate of a text's width in px for a sans-serif font (DejaVu Sans is among the widest)."""
    return len(text) * size * (0.68 if bold else 0.62)


def _clip(text: str, room: float, size: float, bold: bool = False) -> str:
    """``text`` shortened with an ellipsis to fit ``room`` px by `_text_width` (the browser refines it)."""
    if _text_width(text, size, bold) <= room:
        return text
    keep = max(1, int(room / (size * (0.68 if bold else 0.62))) - 1)
    return text[:keep].rstrip() + "…"


def _nice_step(span: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 × 10ⁿ) giving about ``ticks`` intervals over ``span``.

    >>> _nice_step(471824), _nice_step(1.0), _nice_step(0.18)
    (200000.0, 0.25, 0.05)
    """
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * power:
            return float(m * power)
    return float(10 * power)  # pragma: no cover


# --------------------------------------------------------------------------- charts


@attrs.frozen
class Bar:
    """One bar of a waterfall: a total (``start``, ``end``) or a step between ``low`` and ``high`` running totals."""

    kind: str
    label: str
    value: float
    before: float
    after: float


def waterfall_bars(start: tuple[str, float], steps: Sequence[tuple[str, float]], end: tuple[str, float]) -> list[Bar]:
    """The bars of a waterfall: the start total, each step from the running total, the end total.

    >>> [(b.kind, b.before, b.after) for b in waterfall_bars(("2026-09", 10.0), [("a", -3.0), ("b", 1.0)],
    ...                                                      ("2026-10", 8.0))]
    [('start', 0.0, 10.0), ('step', 10.0, 7.0), ('step', 7.0, 8.0), ('end', 0.0, 8.0)]
    """
    bars = [Bar("start", start[0], start[1], 0.0, start[1])]
    running = start[1]
    for label, value in steps:
        bars.append(Bar("step", label, value, running, running + value))
        running += value
    bars.append(Bar("end", end[0], end[1], 0.0, end[1]))
    return bars


def _wrap(text: str, width: int, lines: int = 2) -> list[str]:
    """Words into at most ``lines`` lines of about ``width`` characters; the last one ellipsised."""
    out: list[str] = []
    for word in text.split():
        if out and len(out[-1]) + 1 + len(word) <= width:
            out[-1] += " " + word
        else:
            out.append(word)
    if len(out) > lines:
        out = out[:lines - 1] + [" ".join(out[lines - 1:])]
    return [line if len(line) <= width else line[:width - 1].rstrip() + "…" for line in out] or [""]


def waterfall_svg(start: tuple[str, float], steps: Sequence[tuple[str, float]], end: tuple[str, float], *,
                  unit: str | None = None, direction: str | None = None, width: int = 600,
                  height: int = 310) -> str:
    """A waterfall chart as inline SVG: the start value, one floating bar per step, the end value.

    Steps are coloured green / red when the metric has a ``direction`` (good / bad), else blue for
    up and orange for down. Each bar carries ``data-kind``, ``data-label``, ``data-value``,
    ``data-before`` and ``data-after`` (the running totals) for tests and tools.
    """
    bars = waterfall_bars(start, steps, end)
    levels = [0.0] + [b.before for b in bars] + [b.after for b in bars]
    lo, hi = min(levels), max(levels)
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    step = _nice_step(hi - lo)
    lo_tick, hi_tick = math.floor(lo / step) * step, math.ceil(hi / step) * step
    left, right, top, bottom = 64, 10, 26, 46
    plot_w, plot_h = width - left - right, height - top - bottom

    def y(v: float) -> float:
        return top + (hi_tick - v) / (hi_tick - lo_tick) * plot_h

    slot = plot_w / len(bars)
    bar_w = min(74.0, slot * 0.62)
    chars = max(6, int(slot / 6.6))
    parts = [f'<svg class="mt-waterfall" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{_e(_waterfall_words(bars, unit))}">']
    tick = lo_tick
    while tick <= hi_tick + step / 2:
        tick_text = compact(tick, unit if unit == "%" else None)
        parts.append(f'<line class="mt-grid" x1="{left}" x2="{width - right}" y1="{_f(y(tick))}" y2="{_f(y(tick))}"/>'
                     f'<text x="{left - 6}" y="{_f(y(tick) + 4)}" text-anchor="end">{_e(tick_text)}</text>')
        tick += step
    parts.append(f'<line class="mt-zero" x1="{left}" x2="{width - right}" y1="{_f(y(0))}" y2="{_f(y(0))}"/>')
    for i, bar in enumerate(bars):
        cx = left + slot * (i + 0.5)
        y1, y2 = sorted((y(bar.before), y(bar.after)))
        if y2 - y1 < 1.5:  # a step too small to see still gets a hairline
            mid = (y1 + y2) / 2
            y1, y2 = mid - 0.75, mid + 0.75
        if bar.kind == "step":
            css = f"mt-bar-{_step_tone(bar.value, direction)}"
            value_text = signed_compact(bar.value, unit)
        else:
            css = f"mt-bar-{bar.kind}"
            value_text = compact(bar.value, unit)
        title = f"{bar.label}: {value_text}" + (f" ({compact(bar.before, unit)} → {compact(bar.after, unit)})"
                                                if bar.kind == "step" else "")
        parts.append(f'<g class="mt-bar-group"><title>{_e(title)}</title>'
                     f'<rect class="mt-bar {css}" x="{_f(cx - bar_w / 2)}" y="{_f(y1)}" width="{_f(bar_w)}" '
                     f'height="{_f(y2 - y1)}" rx="2" data-kind="{bar.kind}" data-label="{_e(bar.label)}" '
                     f'data-value="{bar.value!r}" data-before="{bar.before!r}" data-after="{bar.after!r}"/>')
        parts.append(f'<text class="mt-bar-value" x="{_f(cx)}" y="{_f(y1 - 6)}" text-anchor="middle">'
                     f'{_e(value_text)}</text>')
        for j, line in enumerate(_wrap(bar.label, chars)):
            parts.append(f'<text class="mt-bar-name" x="{_f(cx)}" y="{_f(height - bottom + 17 + 14 * j)}" '
                         f'text-anchor="middle" data-fit="{_f(slot - 4)}">{_e(line)}</text>')
        parts.append("</g>")
        if i + 1 < len(bars):
            level = y(bar.after)
            parts.append(f'<line class="mt-link" x1="{_f(cx + bar_w / 2)}" x2="{_f(cx + slot - bar_w / 2)}" '
                         f'y1="{_f(level)}" y2="{_f(level)}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _step_tone(value: float, direction: str | None) -> str:
    if not value:
        return "flat"
    if direction in ("up", "down"):
        return tone(value, direction)
    return "up" if value > 0 else "down"


def _waterfall_words(bars: Sequence[Bar], unit: str | None) -> str:
    parts = [f"{bars[0].label}: {compact(bars[0].value, unit)}"]
    parts += [f"{b.label} {signed_compact(b.value, unit)}" for b in bars[1:-1]]
    parts.append(f"{bars[-1].label}: {compact(bars[-1].value, unit)}")
    return "Waterfall: " + ", ".join(parts)


def sparkline_svg(labels: Sequence[str], values: Sequence[float | None], *, width: int = 120, height: int = 28,
                  marks: Mapping[str, str] | None = None, unit: str | None = None, axis: bool = False) -> str:
    """A small line chart of a metric over periods, as inline SVG.

    Nulls break the line (a lone value between nulls is a dot); ``marks`` maps a period label to
    ``baseline`` or ``current``, drawn as a hollow or a filled dot. With ``axis``, the first and
    last period and the lowest and highest value are written beside it.
    """
    marks = marks or {}
    pad_x, pad_y = 3.0, 3.0
    label_h = 12.0 if axis else 0.0
    known = [v for v in values if v is not None and math.isfinite(v)]
    words = "; ".join(f"{p}: {compact(v, unit)}" for p, v in zip(labels, values, strict=True))
    head = (f'<svg class="mt-spark" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" data-points="{len(known)}" '
            f'aria-label="{_e(words or "no data")}"><title>{_e(words or "no data")}</title>')
    if not known:
        mid = _f(height / 2)
        return head + f'<line class="mt-spark-none" x1="{pad_x}" x2="{width - pad_x}" y1="{mid}" y2="{mid}"/></svg>'
    lo, hi = min(known), max(known)
    n = len(values)
    plot_h = height - 2 * pad_y - label_h

    def x(i: int) -> float:
        return pad_x + (width - 2 * pad_x) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return pad_y + (plot_h / 2 if hi == lo else (hi - v) / (hi - lo) * plot_h)

    parts = [head]
    run: list[int] = []
    for i in [*range(n), n]:
        value = values[i] if i < n else None
        if value is not None and math.isfinite(value):
            run.append(i)
            continue
        if len(run) == 1:
            parts.append(f'<circle class="mt-spark-dot" cx="{_f(x(run[0]))}" cy="{_f(y(values[run[0]]))}" r="1.6"/>')
        elif run:
            points = " ".join(f"{_f(x(j))},{_f(y(values[j]))}" for j in run)
            parts.append(f'<polyline class="mt-spark-line" points="{points}"/>')
        run = []
    for i, label in enumerate(labels):
        kind = marks.get(label)
        if kind and values[i] is not None and math.isfinite(values[i]):
            parts.append(f'<circle class="mt-spark-{kind}" cx="{_f(x(i))}" cy="{_f(y(values[i]))}" r="2.6" '
                         f'data-period="{_e(label)}"/>')
    if axis and labels:
        base = _f(height - 1)
        parts.append(f'<text x="{_f(pad_x)}" y="{base}">{_e(labels[0])}</text>'
                     f'<text x="{_f(width - pad_x)}" y="{base}" text-anchor="end">{_e(labels[-1])}</text>'
                     f'<text x="{_f(width / 2)}" y="{base}" text-anchor="middle">'
                     f'{_e(compact(lo, unit))} – {_e(compact(hi, unit))}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------- graph layout


@attrs.frozen
class Box:
    """Where a node is drawn: its centre and size, in px."""

    x: float
    y: float
    width: float
    height: float


@attrs.frozen
class EdgeLine:
    """An edge as drawn: parent → child, its kind, and its SVG path (ending at the child)."""

    parent: str
    child: str
    kind: str
    path: str


@attrs.frozen
class Layout:
    """A drawing of a tree's graph: the boxes of its nodes and the paths of its edges.

    Attributes:
        engine: ``graphviz`` (``dot``) or ``layered`` (networkx, when Graphviz is not installed).
    """

    width: float
    height: float
    boxes: Mapping[str, Box]
    edges: tuple[EdgeLine, ...]
    engine: str


def _dot() -> str | None:
    """The path of Graphviz's ``dot``, or ``None``."""
    return shutil.which("dot")


def graphviz(dot_source: str, fmt: str) -> bytes:
    """Render DOT text with Graphviz (``svg`` or ``png``); a clear error when ``dot`` is not installed."""
    binary = _dot()
    if binary is None:
        raise UsageError(error(f"drawing a tree as {fmt.upper()} needs Graphviz's `dot`, which is not installed",
                               hint=GRAPHVIZ_HINT, code="graphviz"))
    try:
        done = subprocess.run([binary, f"-T{fmt}"], input=dot_source.encode("utf-8"), capture_output=True,
                              timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(error(f"Graphviz's `dot` failed: {exc}", hint=GRAPHVIZ_HINT, code="graphviz")) from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip() or f"exit code {done.returncode}"
        raise UsageError(error(f"Graphviz's `dot` failed: {message}", hint="use --format dot and check the file",
                               code="graphviz"))
    return done.stdout


def layout(tree: Tree, sizes: Mapping[str, tuple[float, float]], engine: str = "auto") -> Layout:
    """Lay out the tree's graph, top metric at the top: with Graphviz when it is installed (``auto``,
    ``graphviz``), else — or with ``layered`` — with `layered_layout`."""
    if engine not in ("auto", "graphviz", "layered"):
        raise ValueError(f"unknown layout engine {engine!r}")
    if engine != "layered":
        binary = _dot()
        if binary is not None:
            try:
                return graphviz_layout(tree, sizes, binary)
            except (OSError, ValueError, KeyError, subprocess.SubprocessError):
                if engine == "graphviz":
                    raise
        elif engine == "graphviz":
            raise UsageError(error("the graphviz layout needs Graphviz's `dot`, which is not installed",
                                   hint=GRAPHVIZ_HINT, code="graphviz"))
    return layered_layout(tree, sizes)


def graphviz_layout(tree: Tree, sizes: Mapping[str, tuple[float, float]], binary: str = "dot",
                    margin: float = 8.0) -> Layout:
    """Node positions and edge splines from ``dot -Tjson``; nodes are fixed-size boxes named ``n0 …``, so no
    user text reaches Graphviz."""
    names = list(tree.graph.nodes)
    ids = {name: f"n{i}" for i, name in enumerate(names)}
    lines = ["digraph G {", "graph [rankdir=TB, nodesep=0.22, ranksep=0.5, splines=spline];",
             'node [shape=box, fixedsize=true, label=""];', "edge [arrowsize=0.7];"]
    for name in names:
        w, h = sizes[name]
        lines.append(f"{ids[name]} [width={w / 72:.3f}, height={h / 72:.3f}];")
    edges = tree.edges()
    for parent, child, kind in edges:
        lines.append(f"{ids[parent]} -> {ids[child]}" + (" [style=dashed];" if kind == "influence" else ";"))
    lines.append("}")
    done = subprocess.run([binary, "-Tjson"], input="\n".join(lines).encode(), capture_output=True, timeout=60,
                          check=True)
    drawn = json.loads(done.stdout)
    x0, y0, x1, y1 = (float(v) for v in drawn["bb"].split(","))
    height = y1 - y0

    def point(text: str) -> tuple[float, float]:
        px, py = text.split(",")[-2:]
        return float(px) - x0 + margin, height - (float(py) - y0) + margin

    by_id = {obj["name"]: obj for obj in drawn.get("objects", [])}
    boxes = {}
    for name in names:
        obj = by_id[ids[name]]
        cx, cy = point(obj["pos"])
        boxes[name] = Box(cx, cy, float(obj["width"]) * 72, float(obj["height"]) * 72)
    gvid = {obj["_gvid"]: obj["name"] for obj in drawn.get("objects", [])}
    back = {v: k for k, v in ids.items()}
    kinds = {(p, c): k for p, c, k in edges}
    lines_out = []
    for edge in drawn.get("edges", []):
        parent, child = back[gvid[edge["tail"]]], back[gvid[edge["head"]]]
        tokens = edge["pos"].split()
        tip = next((point(t[2:]) for t in tokens if t.startswith("e,")), None)
        points = [point(t) for t in tokens if not t.startswith(("e,", "s,"))]
        path = f"M{_f(points[0][0])},{_f(points[0][1])}"
        for i in range(1, len(points) - 2, 3):
            (ax, ay), (bx, by), (cx, cy) = points[i:i + 3]
            path += f" C{_f(ax)},{_f(ay)} {_f(bx)},{_f(by)} {_f(cx)},{_f(cy)}"
        if tip is not None:
            path += f" L{_f(tip[0])},{_f(tip[1])}"
        lines_out.append(EdgeLine(parent, child, kinds.get((parent, child), "formula"), path))
    return Layout(x1 - x0 + 2 * margin, height + 2 * margin, boxes, tuple(lines_out), "graphviz")


def layered_layout(tree: Tree, sizes: Mapping[str, tuple[float, float]], gap_x: float = 20.0,
                   gap_y: float = 52.0, margin: float = 8.0) -> Layout:
    """A layered drawing without Graphviz: layers from networkx's ``topological_generations`` (every metric
    below all of its parents), the order within each layer from a few barycenter sweeps (fewer crossings),
    each layer centred; edges are vertical S-curves."""
    graph = tree.graph
    layers = [list(layer) for layer in nx.topological_generations(graph)]
    declared = {name: i for i, name in enumerate(graph.nodes)}
    for layer in layers:
        layer.sort(key=declared.__getitem__)

    def barycentre(n: str, where: Mapping[str, float], neighbours) -> tuple[float, int]:
        near = [where[m] for m in neighbours(n)]
        return (sum(near) / len(near) if near else where[n], declared[n])

    for _ in range(4):  # down (by parents), then up (by children), a few times
        for neighbours in (graph.predecessors, graph.successors):
            where = {n: (i + 0.5) / len(layer) for layer in layers for i, n in enumerate(layer)}
            for layer in layers:
                layer.sort(key=functools.partial(barycentre, where=where, neighbours=neighbours))
    row_h = [max(sizes[n][1] for n in layer) for layer in layers]
    row_w = [sum(sizes[n][0] for n in layer) + gap_x * (len(layer) - 1) for layer in layers]
    width = max(row_w, default=0.0)
    boxes: dict[str, Box] = {}
    top = margin
    for layer, h, w in zip(layers, row_h, row_w, strict=True):
        x = margin + (width - w) / 2
        for n in layer:
            nw, nh = sizes[n]
            boxes[n] = Box(x + nw / 2, top + h / 2, nw, nh)
            x += nw + gap_x
        top += h + gap_y
    edges = []
    for parent, child, kind in tree.edges():
        a, b = boxes[parent], boxes[child]
        x1, y1, x2, y2 = a.x, a.y + a.height / 2, b.x, b.y - b.height / 2 - 1
        mid = (y1 + y2) / 2
        edges.append(EdgeLine(parent, child, kind, f"M{_f(x1)},{_f(y1)} C{_f(x1)},{_f(mid)} {_f(x2)},{_f(mid)} "
                                                   f"{_f(x2)},{_f(y2)}"))
    return Layout(width + 2 * margin, top - gap_y + margin, boxes, tuple(edges), "layered")


# --------------------------------------------------------------------------- what the report shows per metric


@attrs.frozen
class MetricView:
    """One metric as the report shows it.

    Attributes:
        baseline, current: its values in the two periods compared (``None``: no value, or no values given).
        series: its value in each period of ``labels`` of the `ReportData`.
        contributions: ``(parent label, contribution, share, method)`` for each place it has in the explanation.
        driver: its node in the explanation (its first place in the sum, else its first influence link).
        association: for an influence child, ``(parent label, Association or None)``.
    """

    name: str
    baseline: float | None = None
    current: float | None = None
    series: tuple[float | None, ...] = ()
    contributions: tuple[tuple[str, float | None, float | None, str], ...] = ()
    driver: Driver | None = None
    association: Any = None


@attrs.frozen
class ReportData:
    """What the page is drawn from: the tree, and optionally an explanation, a status and the history."""

    tree: Tree
    explanation: Explanation | None
    status: Status | None
    labels: tuple[str, ...]
    views: Mapping[str, MetricView]
    edge_shares: Mapping[tuple[str, str], float]


def _span_labels(text: str, labels: Sequence[str], grain: str) -> list[int]:
    """Positions in ``labels`` of a period or a range ``A..B``."""
    first, _, last = str(text).partition("..")
    lo, hi = periods.parse(first, grain), periods.parse(last or first, grain, end=True)
    found = []
    for i, label in enumerate(labels):
        try:
            index = periods.parse(label, grain)
        except MetrictreeError:  # a label of another grain is simply not in the span
            continue
        if lo <= index <= hi:
            found.append(i)
    return found


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None and math.isfinite(v)]
    return sum(known) / len(known) if known else None


def collect(tree: Tree, explanation: Explanation | None = None, status: Status | None = None,
            history: Evaluation | None = None) -> ReportData:
    """Every metric's values, history and contributions, gathered once for the page."""
    labels: tuple[str, ...] = ()
    columns: dict[str, list[float | None]] = {}
    if history is not None and "period" in history.table.column_names:
        table = history.table
        labels = tuple(table.column("period").to_pylist())
        columns = {name: table.column(name).to_pylist() for name in table.column_names if name in tree.metrics}
    spans = {}
    if explanation is not None and labels:
        spans = {k: _span_labels(p.period, labels, tree.grain)
                 for k, p in (("baseline", explanation.baseline), ("current", explanation.current))}
    views: dict[str, dict[str, Any]] = {}
    for name in tree.metrics:
        series = tuple(columns.get(name, [None] * len(labels)))
        view: dict[str, Any] = {"name": name, "series": series}
        if series and spans:
            view["baseline"] = _mean(series[i] for i in spans["baseline"])
            view["current"] = _mean(series[i] for i in spans["current"])
        views[name] = view
    edge_shares: dict[tuple[str, str], float] = {}
    if explanation is not None:
        root = views[explanation.metric]
        root["baseline"], root["current"] = explanation.baseline.value, explanation.current.value

        def visit(driver: Driver, parent: str, parent_label: str) -> None:
            if driver.metric in views:
                view = views[driver.metric]
                held = view.get("driver")
                if held is None or (held.kind == "influence" and driver.kind != "influence"):
                    view["driver"] = driver  # its first place in the sum, else its first influence
                if driver.kind == "influence":
                    view.setdefault("association", (parent_label, driver.association))
                else:
                    view.setdefault("contributions", []).append(
                        (parent_label, driver.contribution, driver.share, driver.method))
                    if driver.share is not None:
                        key = (parent, driver.metric)
                        edge_shares[key] = edge_shares.get(key, 0.0) + abs(driver.share)
                # The explanation's two states are exact (a range is the mean of its base values).
                if driver.baseline is not None or driver.current is not None:
                    view["baseline"], view["current"] = driver.baseline, driver.current
            for child in driver.drivers:
                visit(child, driver.metric, driver.label)

        for driver in explanation.drivers:
            visit(driver, explanation.metric, explanation.label)
    return ReportData(tree, explanation, status, labels,
                      {name: MetricView(**{**v, "contributions": tuple(v.get("contributions", ()))})
                       for name, v in views.items()}, edge_shares)


# --------------------------------------------------------------------------- the graph


LABEL_SIZE = 12.5
SPARK_WIDTH = 44
NODE_WIDTHS = (118.0, 176.0)  # a node with values: narrow, its label on up to two lines
PLAIN_WIDTHS = (110.0, 230.0)  # a node of a tree without values


def _wrapped(title: str, room: float) -> list[str]:
    """Words into lines of at most ``room`` px (by `_text_width`), greedily; a word longer than that stays whole."""
    lines: list[str] = []
    for word in title.split():
        if lines and _text_width(f"{lines[-1]} {word}", LABEL_SIZE, bold=True) <= room:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines or [""]


def _fits(title: str, room: float) -> bool:
    lines = _wrapped(title, room)
    return len(lines) <= 2 and all(_text_width(line, LABEL_SIZE, bold=True) <= room for line in lines)


def _label_lines(title: str, room: float) -> list[str]:
    """A label on at most two lines of ``room`` px, words kept whole; what does not fit is ellipsised."""
    lines = _wrapped(title, room)
    if len(lines) > 2:
        lines = [lines[0], " ".join(lines[1:])]
    return [_clip(line, room, LABEL_SIZE, bold=True) for line in lines]


def _node_shape(metric: Metric, view: MetricView | None) -> tuple[float, float, list[str]]:
    """A node's width, height and label lines. Graphs are wide and may be tall, so a long label takes a second
    line rather than widening its box. ``view`` is ``None`` for a tree drawn without values."""
    label = _text_width(metric.title, LABEL_SIZE, bold=True)
    if view is None:
        low, high = PLAIN_WIDTHS
        content = _text_width(_node_meta(metric), 11)
    else:
        low, high = NODE_WIDTHS
        moved = change_text(view.baseline, view.current, metric.unit)
        content = max(_text_width(compact(view.current, metric.unit), 13), _text_width(moved, 11.5, bold=True))
        content += SPARK_WIDTH + 8 if view.series and metric.kind != "group" else 0
    width = min(max(content + 22, low), high)
    if label + 22 > width:  # two lines rather than a wider box, as long as it takes
        while width < high and not _fits(metric.title, width - 22):
            width = min(width + 6, high)
    lines = _label_lines(metric.title, width - 22)
    extra = 14.0 * (len(lines) - 1)
    return width, (62.0 if view is not None else 48.0) + extra, lines


def _node_meta(metric: Metric) -> str:
    parts = [metric.name + (f" [{metric.unit}]" if metric.unit else "")]
    if metric.kind == "base" and metric.source:
        parts.append(f"from {metric.source}")
    if metric.kind == "group":
        parts.append("group")
    return " · ".join(parts)


def _ids(tree: Tree) -> dict[str, str]:
    """Element ids by metric: ``mt-d0`` … (never the user's text)."""
    return {name: f"mt-d{i}" for i, name in enumerate(tree.metrics)}


def graph_svg(data: ReportData, engine: str = "auto", clickable: bool = True) -> tuple[str, Layout]:
    """The tree as an SVG graph (and its layout): each node with its label, value, change and
    sparkline, coloured by its direction; formula edges solid, influence edges dashed, top metric on top."""
    tree = data.tree
    with_values = data.explanation is not None or bool(data.labels)
    shapes = {name: _node_shape(tree.metrics[name], data.views.get(name, MetricView(name)) if with_values else None)
              for name in tree.graph.nodes}
    sizes = {name: (w, h) for name, (w, h, _) in shapes.items()}
    drawn = layout(tree, sizes, engine)
    ids = _ids(tree)
    root = data.explanation.metric if data.explanation is not None else None
    parts = [f'<svg class="mt-graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_f(drawn.width)} '
             f'{_f(drawn.height)}" width="{_f(drawn.width)}" height="{_f(drawn.height)}" role="group" '
             f'aria-label="{_e("Metric tree " + (tree.title or tree.name))}" data-layout="{drawn.engine}">',
             '<defs><marker id="mt-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
             'markerUnits="userSpaceOnUse" orient="auto"><path class="mt-arrow" d="M0,1 L10,5 L0,9 z"/></marker>'
             "</defs>"]
    for edge in drawn.edges:
        share = data.edge_shares.get((edge.parent, edge.child))
        css = f"mt-edge mt-{edge.kind}" + (" mt-carries" if share is not None and share >= 0.05 else "")
        stroke = f' style="stroke-width:{_f(1.3 + 4.2 * min(share, 1.0))}px"' if share is not None and share >= 0.05 \
            else ""
        parts.append(f'<path class="{css}" d="{edge.path}" marker-end="url(#mt-arrow)" '
                     f'data-from="{ids[edge.parent]}" data-to="{ids[edge.child]}"{stroke}/>')
    for name in tree.graph.nodes:
        parts.append(_node_svg(data, name, drawn.boxes[name], shapes[name][2], ids[name], root, with_values,
                               clickable))
    parts.append("</svg>")
    return "".join(parts), drawn


def _node_svg(data: ReportData, name: str, box: Box, lines: list[str], element_id: str, root: str | None,
              with_values: bool, clickable: bool) -> str:
    metric = data.tree.metrics[name]
    view = data.views.get(name, MetricView(name))
    x, y = box.x - box.width / 2, box.y - box.height / 2
    has_value = view.current is not None
    change = None if view.baseline is None or view.current is None else view.current - view.baseline
    css = [f"mt-node mt-kind-{metric.kind}", f"mt-tone-{tone(change, metric.direction)}"]
    if name == root:
        css.append("mt-root")
    if with_values and metric.kind != "group" and not has_value:
        css.append("mt-nodata")
    title = f"{metric.title} ({name})"
    if with_values and has_value:
        title += f": {compact(view.baseline, metric.unit)} → {compact(view.current, metric.unit)}"
    attrs_ = f' data-target="{element_id}" tabindex="0" role="button" aria-pressed="false"' if clickable else ""
    room = box.width - 20
    out = [f'<g class="{" ".join(css)}" transform="translate({_f(x)},{_f(y)})" data-metric="{_e(name)}"{attrs_}>',
           f"<title>{_e(title)}</title>",
           f'<rect class="mt-box" width="{_f(box.width)}" height="{_f(box.height)}" rx="8"/>',
           f'<rect class="mt-strip" x="0.6" y="8" width="3.4" height="{_f(box.height - 16)}" rx="1.5"/>']
    line_y = 17.0
    for i, line in enumerate(lines):
        line_y = 17.0 + 14.0 * i
        out.append(f'<text class="mt-node-label" x="11" y="{_f(line_y)}" data-fit="{_f(room)}">{_e(line)}</text>')
    if not with_values:
        out.append(f'<text class="mt-node-meta" x="11" y="{_f(line_y + 18)}" data-fit="{_f(room)}">'
                   f"{_e(_clip(_node_meta(metric), room, 11))}</text>")
    elif metric.kind == "group":
        out.append(f'<text class="mt-node-meta" x="11" y="{_f(line_y + 20)}">group</text>'
                   f'<text class="mt-node-meta" x="11" y="{_f(line_y + 36)}">influence only</text>')
    else:
        value_y = line_y + 20
        value_room = room - (SPARK_WIDTH + 6 if view.series else 0)
        out.append(f'<text class="mt-node-value" x="11" y="{_f(value_y)}" data-fit="{_f(value_room)}">'
                   f"{_e(compact(view.current, metric.unit))}</text>")
        moved = change_text(view.baseline, view.current, metric.unit) if has_value else "no value"
        out.append(f'<text class="mt-node-change" x="11" y="{_f(value_y + 16)}" data-fit="{_f(value_room)}">'
                   f"{_e(moved)}</text>")
        if view.series:
            spark = sparkline_svg(data.labels, view.series, width=SPARK_WIDTH, height=26, marks=_marks(data),
                                  unit=metric.unit)
            out.append(f'<g transform="translate({_f(box.width - SPARK_WIDTH - 8)},{_f(value_y - 13)})">{spark}</g>')
    out.append("</g>")
    return "".join(out)


def _marks(data: ReportData) -> dict[str, str]:
    if data.explanation is None or not data.labels:
        return {}
    marks = {}
    for kind, period in (("baseline", data.explanation.baseline), ("current", data.explanation.current)):
        for i in _span_labels(period.period, data.labels, data.tree.grain):
            marks[data.labels[i]] = kind
    return marks


def _legend(with_values: bool, engine: str) -> str:
    def swatch(css: str) -> str:
        return (f'<svg width="22" height="12" aria-hidden="true"><rect x="1" y="1" width="20" height="10" rx="3" '
                f'style="fill:var(--mt-{css}-fill, #fff);stroke:var(--mt-{css}-line, #94a3b8)"/></svg>')

    def line(dashed: bool) -> str:
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        return f'<svg width="30" height="10" aria-hidden="true"><line x1="1" y1="5" x2="29" y2="5" ' \
               f'stroke="#8894a5" stroke-width="1.6"{dash}/></svg>'

    items = [f"<span>{line(False)}formula input</span>", f"<span>{line(True)}influence (not in the formula)</span>"]
    if with_values:
        items += [f"<span>{swatch('good')}moved the good way</span>", f"<span>{swatch('bad')}moved the bad way</span>",
                  f"<span>{swatch('neutral')}no direction set</span>",
                  "<span>thicker arrows carry more of the change</span>"]
    laid = "Graphviz dot" if engine == "graphviz" else "layered, without Graphviz"
    items.append(f'<span class="mt-faint">layout: {_e(laid)}</span>')
    return f'<div class="mt-legend">{"".join(items)}</div>'


# --------------------------------------------------------------------------- details of one metric


def _details(data: ReportData, name: str, element_id: str, shown: bool) -> str:
    tree = data.tree
    metric = tree.metrics[name]
    view = data.views.get(name, MetricView(name))
    unit = metric.unit
    root_unit = data.explanation.unit if data.explanation is not None else None
    head = [f"<h3>{_e(metric.title)}</h3>",
           f'<div class="mt-muted mt-small"><code>{_e(name)}</code> · {_e(metric.kind)} metric'
           + (f" · {_e(metric.level)}" if metric.level else "")
           + (f" · owner {_e(metric.owner)}" if metric.owner else "") + "</div>"]
    if metric.description:
        head.append(f'<p class="mt-small">{_e(metric.description)}</p>')
    # The panel is a few blocks: one column beside the graph, side by side under a wide one.
    blocks: list[list[str]] = [[], [], [], []]
    facts, why, where, more = blocks
    rows: list[tuple[str, str]] = []
    if metric.kind == "base":
        formula = metric.formula.to_source() if metric.formula is not None else NULL
        if metric.where is not None:
            formula += f" where {metric.where.to_source()}"
        rows.append(("formula", f"<code>{_e(formula)}</code>"))
        if metric.source:
            source = tree.sources.get(metric.source)
            label = source.label if source is not None and source.label else metric.source
            rows.append(("source", _e(label)))
    elif metric.kind == "derived" and metric.formula is not None:
        rows.append(("formula", f"<code>{_e(name)} = {_e(metric.formula.to_source())}</code>"))
    else:
        influencers = [tree.metrics[c].title for c in tree.drivers(name)]
        rows.append(("influenced by", _e(", ".join(influencers) or NULL)))
    if unit:
        rows.append(("unit", _e(unit)))
    if metric.direction:
        rows.append(("good direction", _e(metric.direction)))
    if data.explanation is not None and metric.kind != "group":
        e = data.explanation
        rows.append((_e(e.baseline.period), _e(_number(view.baseline, unit))))
        rows.append((_e(e.current.period), _e(_number(view.current, unit))))
        change = None if view.baseline is None or view.current is None else view.current - view.baseline
        moved = tone(change, metric.direction)
        relative = f" ({change_text(view.baseline, view.current, unit)})" if unit != "%" and change is not None else ""
        rows.append(("change", f'<span class="mt-{moved}">{_e(signed(change, unit))}{_e(relative)}</span>'))
    elif data.labels and metric.kind != "group":
        last = next(((p, v) for p, v in zip(reversed(data.labels), reversed(view.series), strict=True)
                     if v is not None), None)
        if last:
            rows.append((_e(last[0]), _e(_number(last[1], unit))))
    facts.append("<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>")
    if view.series and any(v is not None for v in view.series):
        facts.append('<div class="mt-spark-big">' + sparkline_svg(data.labels, view.series, width=270, height=62,
                                                                  marks=_marks(data), unit=unit, axis=True)
                   + "</div>")
    if data.explanation is not None:
        e = data.explanation
        if name != e.metric and view.contributions:
            why.append("<h4>Part of the change of " + _e(e.label) + "</h4><table><tbody>")
            for parent, contribution, share, _method in view.contributions:
                share_text = percent(share)
                why.append(f"<tr><td>via {_e(parent)}</td><td class='mt-num'>"
                           f"{_e(signed(contribution, root_unit))}</td>"
                           f"<td class='mt-num mt-muted'>{_e(share_text)}</td></tr>")
            why.append("</tbody></table>")
        children = e.drivers if name == e.metric else (view.driver.drivers if view.driver is not None else ())
        parts = [d for d in children if d.kind != "influence" and d.contribution is not None]
        if parts:
            why.append(f"<h4>Its drivers' parts</h4><p class='mt-small mt-muted' style='margin:0 0 4px'>"
                       f"in the units of {_e(e.label)}</p><table><tbody>")
            for d in parts:
                share_text = percent(share_of(d.contribution, e.change))
                why.append(f"<tr><td>{_e(d.label)}</td><td class='mt-num mt-{tone(d.contribution, e.direction)}'>"
                           f"{_e(signed(d.contribution, root_unit))}</td>"
                           f"<td class='mt-num mt-muted'>{_e(share_text)}</td></tr>")
            why.append("</tbody></table>")
        if view.association is not None:
            parent, assoc = view.association
            if assoc is None:
                text = f"Influences {parent}; an influence is shown beside the exact sum, never added into it."
            elif assoc.elasticity is not None:
                text = (f"Influence on {parent}, not in the sum: elasticity {assoc.elasticity:+.2f}"
                        + (f", correlation {assoc.correlation:+.2f}" if assoc.correlation is not None else "")
                        + f" over {assoc.periods} periods.")
            else:
                text = f"Influence on {parent}, not in the sum: too few periods to estimate ({assoc.periods})."
            why.append(f"<h4>Influence</h4><p class='mt-small'>{_e(text)}</p>")
        segments = e.segments if name == e.metric else (view.driver.segments if view.driver is not None else ())
        if segments:
            where.append(_segments_table(segments, unit, root_unit))
        causes = [(c, p) for c in e.root_causes for p in c.parts if p.metric == name]
        if causes:
            more.append("<h4>Root causes in it</h4><ul class='mt-small'>")
            for c, p in causes:
                more.append(f"<li>{_e(where_text(c.where))}: {_e(part_text(p))}, "
                            f"{_e(signed(p.contribution, root_unit))}"
                            + (f" ({percent(share_of(p.contribution, e.change))})" if e.change else "") + "</li>")
            more.append("</ul>")
    if data.status is not None:
        targets = [t for t in data.status.targets if t.metric == name]
        if targets:
            more.append("<h4>Targets</h4><ul class='mt-small'>")
            for t in targets:
                more.append(f"<li>{_e(t.title)}: {_state_badge(t.state)}</li>")
            more.append("</ul>")
    hidden = "" if shown else " hidden"
    return (f'<section class="mt-details" id="{element_id}" data-metric="{_e(name)}"{hidden}>'
            f'<div class="mt-details-head">{"".join(head)}</div><div class="mt-blocks">'
            + "".join(f'<div class="mt-block">{"".join(b)}</div>' for b in blocks if b) + "</div></section>")


def _segment_carrier(e: Explanation) -> Driver | None:
    """The formula driver with segments that carries the most of the change: where to look first."""
    found = [d for top in e.drivers for d in top.walk() if d.kind == "formula" and d.segments
             and d.contribution is not None]
    return max(found, key=lambda d: abs(d.contribution), default=None)


def _segments_table(segments, unit: str | None, root_unit: str | None, heading: bool = True) -> str:
    """Segments as a narrow table (it fits the details panel): the slice with its values before → now under it
    (and, for a ratio, the mix and rate halves of its effect), then its part of the change or its effect."""
    mix_rate = any(s.mix is not None for s in segments)
    parts = not mix_rate and any(s.contribution is not None for s in segments)
    own = "%" if unit == "%" else None  # a % value stays a percentage; other units go to the header
    right, right_unit = ("effect", unit) if mix_rate else ("part of the change", root_unit) if parts else \
        ("before → now", unit)
    unit_note = f" <span class='mt-faint'>{_e(right_unit)}</span>" if right_unit and right_unit != "%" else ""
    head = (("<h4>Segments</h4>" if heading else "") + "<div class='mt-table-wrap'><table class='mt-segments'>"
            f"<thead><tr><th>segment</th><th class='mt-num'>{_e(right)}{unit_note}</th></tr></thead><tbody>")
    rows = []
    for seg in segments:
        moved = f"{compact(seg.baseline, own)} → {compact(seg.current, own)}"
        if mix_rate:
            effect = None if seg.mix is None or seg.rate is None else seg.mix + seg.rate
            under = f"{moved} · mix {signed_compact(seg.mix, own)} · rate {signed_compact(seg.rate, own)}"
            value = signed_compact(effect, own)
        elif parts:
            under, value = moved, signed_compact(seg.contribution, "%" if root_unit == "%" else None)
        else:
            under, value = "", moved
        rows.append(f"<tr><td>{_e(where_text(seg.where))}"
                    + (f"<div class='mt-muted mt-small'>{_e(under)}</div>" if under else "")
                    + f"</td><td class='mt-num'>{_e(value)}</td></tr>")
    return head + "".join(rows) + "</tbody></table></div>"


# --------------------------------------------------------------------------- the explanation


def _lead(e: Explanation, status: Status | None) -> str:
    moved = tone(e.change, e.direction)
    rel = f" ({change_text(e.baseline.value, e.current.value, e.unit)})" if e.unit != "%" else ""
    said = sentences(e)
    chips = _chips(status)
    return (f'<section class="mt-card" id="mt-summary"><div class="mt-lead">'
            f'<div><div class="mt-kpi-label">{_e(e.label)} · {_e(e.current.period)}</div>'
            f'<div class="mt-kpi" data-value="{e.current.value!r}">{_e(_number(e.current.value, e.unit))}</div>'
            f'<div class="mt-kpi-from">from {_e(_number(e.baseline.value, e.unit))} in {_e(e.baseline.period)}</div>'
            f'<div class="mt-delta mt-{moved}">{_e(signed(e.change, e.unit))}{_e(rel)}</div></div>'
            f'<ul class="mt-sentences">{"".join(f"<li>{_e(s)}</li>" for s in said)}</ul>'
            f"</div>{chips}</section>")


def _chips(status: Status | None) -> str:
    if status is None or (not status.targets and not status.alerts):
        return ""
    chips = []
    fired = status.fired
    if status.alerts:
        css = "mt-bad" if any(a.severity == "critical" for a in fired) else "mt-warn" if fired else "mt-good"
        chips.append(f'<span class="mt-chip {css}">{len(fired)} of {len(status.alerts)} alerts fired</span>')
    counts: dict[str, int] = {}
    for t in status.targets:
        counts[t.state] = counts.get(t.state, 0) + 1
    for state, n in counts.items():
        css = {"mt-state-good": "mt-good", "mt-state-bad": "mt-bad"}.get(_state_class(state), "mt-warn")
        chips.append(f'<span class="mt-chip {css}">{n} target{"s" if n != 1 else ""} {_e(state)}</span>')
    return f'<div class="mt-chips" style="margin-top:12px">{"".join(chips)}</div>'


def waterfall_of(e: Explanation) -> str:
    """The explanation's waterfall: the root's baseline, its top-level formula drivers' contributions (they add
    up to the change), its current value."""
    steps = [(d.label, d.contribution) for d in e.drivers if d.kind != "influence" and d.contribution is not None]
    if not steps:
        steps = [("change", e.change)]
    return waterfall_svg((e.baseline.period, e.baseline.value), steps, (e.current.period, e.current.value),
                         unit=e.unit, direction=e.direction)


def _top_drivers(e: Explanation) -> str:
    """Under the waterfall, its steps as numbers: each top-level driver's values and part of the change."""
    drivers = [d for d in e.drivers if d.kind != "influence" and d.contribution is not None]
    if not drivers:
        return ""
    rows = "".join(
        f"<tr><td>{_e(d.label)}</td><td class='mt-num mt-muted'>{_e(compact(d.baseline, d.unit))} → "
        f"{_e(compact(d.current, d.unit))}</td><td class='mt-num mt-{tone(d.contribution, e.direction)}'>"
        f"{_e(signed(d.contribution, e.unit))}</td><td class='mt-num mt-muted'>{_e(percent(d.share))}</td></tr>"
        for d in drivers)
    return (f"<div class='mt-table-wrap'><table class='mt-steps'><thead><tr><th>driver</th>"
            f"<th class='mt-num'>{_e(e.baseline.period)} → {_e(e.current.period)}</th><th class='mt-num'>part</th>"
            f"<th class='mt-num'>share</th></tr></thead><tbody>{rows}</tbody></table></div>")


def _causes(e: Explanation) -> str:
    out = ['<section class="mt-card" id="mt-causes"><h2>Root causes</h2>']
    if e.root_causes:
        out.append(f'<p class="mt-hint">The slices of the data that explain most of the change, by '
                   f'{_e(", ".join(e.by))}.</p><ol class="mt-causes">')
        direction = "rise" if e.change > 0 else "fall"
        for i, c in enumerate(e.root_causes, 1):
            share = (f"{c.share * 100:.0f} % of the {direction}" if c.share is not None and c.share > 0
                     else f"against the {direction}")
            moved = tone(c.contribution, e.direction)
            detail = "; ".join(part_text(p) + (f" ({signed(p.contribution, e.unit)})" if len(c.parts) > 1 else "")
                               for p in c.parts)
            out.append(f'<li data-metric="{_e(c.metric)}"><span class="mt-rank">{i}</span>'
                       f'<span class="mt-cause-where">{_e(where_text(c.where))}</span>'
                       f'<span class="mt-cause-value mt-{moved}">'
                       f"{_e(signed(c.contribution, e.unit))}</span>"
                       f'<span class="mt-cause-detail">{_e(detail)} · {_e(share)}</span></li>')
        out.append("</ol>")
    elif e.reason:
        out.append(f'<p class="mt-empty">{_e(e.reason[0].upper() + e.reason[1:])}.</p>')
    elif e.by:
        out.append('<p class="mt-empty">No single slice stands out: the change is spread across the segments.</p>')
    else:
        out.append('<p class="mt-empty">No dimensions were drilled into.</p>')
    if e.mix:
        out.append("<h4>Mix, not a cause</h4><ul class='mt-small'>"
                   + "".join(f"<li>{_e(mix_text(m, e))}</li>" for m in e.mix) + "</ul>")
    carrier = _segment_carrier(e)
    if carrier is not None:
        out.append(f"<h4>Where {_e(carrier.label)} moved</h4>"
                   + _segments_table(carrier.segments[:4], carrier.unit, e.unit, heading=False))
    if e.notes:
        out.append('<ul class="mt-notes">' + "".join(f"<li>{_e(n)}</li>" for n in e.notes) + "</ul>")
    out.append("</section>")
    return "".join(out)


def _drivers_table(e: Explanation, ids: Mapping[str, str] | None) -> str:
    out = ['<section class="mt-card" id="mt-drivers"><details open><summary>Every driver</summary>',
           "<div class='mt-table-wrap'><table><thead><tr><th>driver</th><th class='mt-num'>"
           f"{_e(e.baseline.period)}</th><th class='mt-num'>{_e(e.current.period)}</th><th class='mt-num'>change</th>"
           "<th class='mt-num'>part of the change</th><th class='mt-num'>share</th></tr></thead><tbody>"]

    def row(d: Driver, depth: int) -> None:
        target = f' data-target="{ids[d.metric]}"' if ids and d.metric in ids else ""
        tag = '<span class="mt-influence-tag">influence, not in the sum</span>' if d.kind == "influence" else ""
        share = share_of(d.contribution, e.change)
        meter = (f'<span class="mt-meter mt-{tone(d.contribution, e.direction)}"><span style="width:'
                 f'{min(abs(share), 1.0) * 100:.0f}%"></span></span>{percent(share)}') if share is not None else ""
        part = _e(signed(d.contribution, e.unit)) if d.contribution is not None else ""
        out.append(f"<tr{target}><td class='mt-driver-name'><span class='mt-indent' style='width:{depth * 16}px'>"
                   f"</span>{'↳ ' if depth else ''}{_e(d.label)}{tag}</td>"
                   f"<td class='mt-num'>{_e(_number(d.baseline, d.unit))}</td>"
                   f"<td class='mt-num'>{_e(_number(d.current, d.unit))}</td>"
                   f"<td class='mt-num mt-{tone(d.change, d.direction)}'>{_e(signed(d.change, d.unit))}</td>"
                   f"<td class='mt-num'>{part}"
                   f"</td><td class='mt-num'>{meter}</td></tr>")
        for child in d.drivers:
            row(child, depth + 1)

    for driver in e.drivers:
        row(driver, 0)
    out.append("</tbody></table></div>")
    out.append("<p class='mt-hint' style='margin-top:8px'>The parts add up to the change exactly. "
               "Influence links are shown with their own change and are never "
               "added into the sum.</p></details></section>")
    return "".join(out)


def _explanation_body(e: Explanation, status: Status | None, ids: Mapping[str, str] | None) -> str:
    return (f'<div class="mt-row mt-row-lead">{_lead(e, status)}</div>'
            f'<div class="mt-row mt-row-why"><section class="mt-card" id="mt-waterfall">'
            f"<h2>From {_e(e.baseline.period)} to {_e(e.current.period)}, driver by driver</h2>"
            f'<p class="mt-hint">{_e(e.label)}: the part of the change each top-level driver carries; the bars add up '
            f"from the first value to the last exactly.</p>{waterfall_of(e)}{_top_drivers(e)}</section>"
            f"{_causes(e)}</div>")


# --------------------------------------------------------------------------- the KPI status


_GOOD_STATES = ("met", "on track", "met at deadline", "not fired")
_BAD_STATES = ("off track", "missed", "fired")


def _state_class(state: str) -> str:
    return "mt-state-good" if state in _GOOD_STATES else "mt-state-bad" if state in _BAD_STATES else "mt-state-wait"


def _state_badge(state: str) -> str:
    return f'<span class="mt-badge {_state_class(state)}">{_e(state)}</span>'


def _checkpoints_text(t: TargetStatus, at: str | None) -> str:
    if not t.checkpoints:
        return ""
    past = [c for c in t.checkpoints if at is not None and c.grain_period <= at]
    shown = past[-2:] + list(t.checkpoints[len(past):len(past) + 2])
    bits = [f"{c.period} {t.show(c.planned)}" + (" ✓" if c.reached else " ✗" if c.reached is False else "")
            for c in shown]
    return ("checkpoints: " + ("… " if len(past) > 2 else "") + " · ".join(bits)
            + (" …" if len(past) + 2 < len(t.checkpoints) else ""))


def status_section(status: Status, ids: Mapping[str, str] | None = None) -> str:
    """The KPI status: targets by level (now, plan, gap, done, state, pace needed, checkpoints) and alerts."""
    from .rules import SYMBOLS, pace_text

    out = [f'<section class="mt-card" id="mt-status"><h2>KPI status at {_e(status.at or NULL)}</h2>']
    if status.params:
        out.append('<p class="mt-hint">params: ' + _e(", ".join(f"{k} = {v:g}" for k, v in status.params.items()))
                   + "</p>")
    if not status.targets and not status.alerts:
        out.append('<p class="mt-empty">The tree has no targets or alerts.</p>')
    if status.targets:
        out.append("<div class='mt-table-wrap'><table class='mt-targets'><thead><tr><th>target</th><th class='mt-num'>"
                   "now</th><th class='mt-num'>plan now</th><th class='mt-num'>gap</th><th>done</th><th>state</th>"
                   "<th>pace needed</th></tr></thead><tbody>")
        for level, targets in status.by_level():
            out.append(f"<tr class='mt-level'><td colspan='7'>{_e((level or 'other').capitalize())}</td></tr>")
            for t in targets:
                target = f' data-target="{ids[t.metric]}"' if ids and t.metric in ids else ""
                sub = f"{SYMBOLS[t.op]} {t.show(t.goal)} by {t.deadline_period}" + (f" · where {t.where}" if t.where
                                                                                       else "")
                notes = [x for x in ([t.reason] if t.reason else []) + list(t.notes) + [_checkpoints_text(t, status.at)]
                         if x]
                done = ""
                if t.progress is not None:
                    css = "mt-good" if t.state in _GOOD_STATES else "mt-bad" if t.state in _BAD_STATES else ""
                    share = percent(t.progress)
                    done = (f'<span class="mt-meter {css}"><span style="width:{min(max(t.progress, 0), 1) * 100:.0f}%">'
                            f"</span></span>{share}")
                gap = NULL if t.gap is None else signed(t.gap, t.unit)
                out.append(f"<tr{target} data-state='{_e(t.state)}'>"
                           f"<td><strong>{_e(t.label or t.metric_label)}</strong>"
                           f"<div class='mt-muted mt-small'>{_e(sub)}</div>"
                           + "".join(f"<div class='mt-muted mt-small'>{_e(n)}</div>" for n in notes)
                           + f"</td><td class='mt-num'>{_e(t.show(t.current))}</td>"
                           f"<td class='mt-num'>{_e(t.show(t.planned))}</td><td class='mt-num'>{_e(gap)}</td>"
                           f"<td class='mt-num'>{done}</td><td>{_state_badge(t.state)}</td>"
                           f"<td class='mt-muted'>{_e(pace_text(t, status.grain))}</td></tr>")
        out.append("</tbody></table></div>")
    if status.alerts:
        fired = [a for a in status.alerts if a.fired]
        order = ("critical", "warning", "info")
        out.append(f"<h4>Alerts · {len(fired)} of {len(status.alerts)} fired</h4>")
        if fired:
            out.append("<div class='mt-table-wrap'><table class='mt-alerts'><thead><tr><th>severity</th><th>alert</th>"
                       "<th class='mt-num'>value</th><th>slice</th></tr></thead><tbody>")
            for a in sorted(fired, key=lambda a: order.index(a.severity) if a.severity in order else len(order)):
                out.append(f"<tr data-state='fired'><td><span class='mt-badge mt-sev-{_e(a.severity)}'>{_e(a.severity)}"
                           f"</span></td><td><strong>{_e(a.message or a.condition)}</strong>"
                           + (f"<div><code>{_e(a.condition)}</code></div>" if a.message else "")
                           + f"</td><td class='mt-num'>{_e(a.value_text)}</td><td>{_e(a.where or 'all')}</td></tr>")
            out.append("</tbody></table></div>")
        for a in status.alerts:
            if a.state == "no data":
                out.append(f"<p class='mt-small mt-muted'>no data: <code>{_e(a.condition)}</code>"
                           f"{_e(' [' + a.where + ']' if a.where else '')}: {_e(a.reason or '')}</p>")
        quiet = [a for a in status.alerts if a.state == "not fired"]
        if quiet:
            out.append("<p class='mt-small mt-muted'>not fired: " + ", ".join(
                f"<code>{_e(a.condition)}</code>" + (_e(f" [{a.where}]") if a.where else "") for a in quiet) + "</p>")
    out.append("</section>")
    return "".join(out)


# --------------------------------------------------------------------------- metrics table


def _metrics_table(data: ReportData, ids: Mapping[str, str]) -> str:
    tree, e = data.tree, data.explanation
    head_b = _e(e.baseline.period) if e is not None else "first"
    head_c = _e(e.current.period) if e is not None else "last"
    out = ['<section class="mt-card" id="mt-metrics"><h2>Every metric</h2>',
           f"<p class='mt-hint'>History over {_e(data.labels[0])} – {_e(data.labels[-1])}; "
           "click a row for its details.</p>" if data.labels else "",
           f"<div class='mt-table-wrap'><table><thead><tr><th>metric</th><th class='mt-num'>{head_b}</th>"
           f"<th class='mt-num'>{head_c}</th><th class='mt-num'>change</th><th>history</th></tr></thead><tbody>"]
    marks = _marks(data)
    for name, metric in tree.metrics.items():
        if metric.kind == "group":
            continue
        view = data.views[name]
        b, c = view.baseline, view.current
        if e is None and view.series:
            known = [v for v in view.series if v is not None]
            b, c = (known[0], known[-1]) if known else (None, None)
        change = None if b is None or c is None else c - b
        spark = sparkline_svg(data.labels, view.series, width=150, height=26, marks=marks, unit=metric.unit) \
            if data.labels else ""
        out.append(f"<tr data-target='{ids[name]}'><td><strong>{_e(metric.title)}</strong> "
                   f"<span class='mt-muted mt-small'>{_e(name)}</span></td>"
                   f"<td class='mt-num'>{_e(_number(b, metric.unit))}</td>"
                   f"<td class='mt-num'>{_e(_number(c, metric.unit))}"
                   f"</td><td class='mt-num mt-{tone(change, metric.direction)}'>"
                   f"{_e(change_text(b, c, metric.unit))}</td><td>{spark}</td></tr>")
    out.append("</tbody></table></div></section>")
    return "".join(out)


# --------------------------------------------------------------------------- pages


def _page(title: str, body: str) -> str:
    """A whole HTML document: inline style and script, allowed by a Content-Security-Policy that loads nothing."""
    script = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    policy = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:; "
              "base-uri 'none'; form-action 'none'")
    from . import __version__

    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="metrictree {_e(__version__)}">'
            f"<title>{_e(title)}</title><style>{_asset('report.css')}</style></head>"
            f'<body class="mt-page"><main class="mt-report mt-page-main">{body}</main>'
            f"<script>{script}</script></body></html>\n")


def _fragment(body: str) -> str:
    """A piece of HTML for a notebook: the scoped style sheet and the body, no script."""
    return f'<div class="mt-report mt-fragment"><style>{_asset("report.css")}</style>{body}</div>'


def _header(title: str, sub: str) -> str:
    return (f'<header class="mt-header"><div><h1>{_e(title)}</h1><div class="mt-sub">{_e(sub)}</div></div>'
            "</header>")


WIDE_GRAPH = 960  # px: about the room the graph has beside the details panel on a laptop's screen


def _graph_block(data: ReportData, engine: str, ids: Mapping[str, str], selected: str | None,
                 clickable: bool = True) -> str:
    svg, drawn = graph_svg(data, engine, clickable)
    graph = ('<section class="mt-card" id="mt-graph"><h2>The tree</h2>'
             + ('<p class="mt-hint">Click a metric for its formula, values, part of the change and segments.</p>'
                if clickable else "")
             + f'<div class="mt-graph-wrap">{svg}</div>'
             + _legend(data.explanation is not None or bool(data.labels), drawn.engine)
             + "</section>")
    if not clickable:
        return graph
    panels = "".join(_details(data, name, ids[name], name == selected) for name in data.tree.metrics)
    # A graph that fits beside the details keeps them at its side; a wider one takes the page's width, and the
    # details go under it.
    wide = " mt-wide" if drawn.width > WIDE_GRAPH else ""
    return (f'<div class="mt-row mt-row-graph{wide}">{graph}<aside class="mt-card mt-details-col" '
            f'id="mt-details-panel">{panels}</aside></div>')


def report_html(tree: Tree, explanation: Explanation, status: Status | None = None,
                history: Evaluation | None = None, *, engine: str = "auto", notes: Sequence[str] = ()) -> str:
    """The whole report as one self-contained HTML page: the summary, the waterfall and the root causes, the tree
    as a clickable graph with a details panel, the KPI status, every metric with its sparkline, every driver."""
    data = collect(tree, explanation, status, history)
    ids = _ids(tree)
    e = explanation
    title = tree.title or tree.name
    sub = f"{tree.name} · {e.label} · {e.baseline.period} → {e.current.period}"
    body = [_header(title, sub), _explanation_body(e, status, ids), _graph_block(data, engine, ids, e.metric)]
    if status is not None:
        body.append(status_section(status, ids))
    if notes:
        body.append('<section class="mt-card" id="mt-report-notes"><ul class="mt-notes">'
                    + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul></section>")
    if data.labels:
        body.append(_metrics_table(data, ids))
    body.append(_drivers_table(e, ids))
    body.append(_footer(tree))
    return _page(f"{title} · {e.label} {e.baseline.period} → {e.current.period}", "".join(body))


def _footer(tree: Tree | None, explained: bool = True) -> str:
    from . import __version__

    source = f" from {tree.file}" if tree is not None and tree.file else ""
    method = (" Contributions are exact: additive splits for sums, the log-mean Divisia index for products and "
              "ratios, Shapley values for the rest.") if explained else ""
    return f'<footer class="mt-footer">Made by metrictree {_e(__version__)}{_e(source)}.{_e(method)}</footer>'


def explanation_html(explanation: Explanation) -> str:
    """An explanation on its own as an HTML page: the summary, the waterfall, the root causes, every driver."""
    e = explanation
    body = (_header(f"Why did {e.label} move?", f"{e.tree} · {e.baseline.period} → {e.current.period}")
            + _explanation_body(e, None, None) + _drivers_table(e, None) + _footer(None))
    return _page(f"Why did {e.label} move? {e.baseline.period} → {e.current.period}", body)


def status_html(status: Status) -> str:
    """A KPI status on its own as an HTML page."""
    title = status.title or status.tree
    body = _header(title, f"{status.tree} · status at {status.at or NULL} · grain {status.grain}") \
        + status_section(status) + _footer(None, explained=False)
    return _page(f"{title} · status at {status.at or NULL}", body)


def tree_fragment(tree: Tree, engine: str = "auto") -> str:
    """A tree's graph for a notebook (`Tree._repr_html_`): labels, names, units; no values."""
    data = collect(tree)
    title = f'<h2>{_e(tree.title or tree.name)} <span class="mt-muted">({_e(tree.name)})</span></h2>'
    return _fragment(title + _graph_block(data, engine, _ids(tree), None, clickable=False))


def explanation_fragment(explanation: Explanation) -> str:
    """An explanation for a notebook (`Explanation._repr_html_`)."""
    return _fragment(_explanation_body(explanation, None, None) + _drivers_table(explanation, None))


def status_fragment(status: Status) -> str:
    """A status for a notebook (`Status._repr_html_`)."""
    return _fragment(status_section(status))


def tree_markdown(tree: Tree) -> str:
    """A tree for a notebook's Markdown view: its title and its graph as a Mermaid diagram."""
    from .rendering import mermaid

    head = f"**{tree.title}** (`{tree.name}`)" if tree.title else f"`{tree.name}`"
    return f"{head}\n\n```mermaid\n{mermaid(tree)}```\n"


# --------------------------------------------------------------------------- from data


def _reading(tree: Tree, sources: Sequence[str]) -> set[str]:
    """The metrics whose formulas read one of ``sources``, however indirectly (one walk up the graph, not one
    walk down per metric: trees may be thousands of metrics deep)."""
    stack = [n for n, m in tree.metrics.items() if m.kind == "base" and m.source in sources]
    found: set[str] = set()
    while stack:
        name = stack.pop()
        if name not in found:
            found.add(name)
            stack.extend(p for p, _, kind in tree.graph.in_edges(name, data="kind") if kind == "formula")
    return found


def report(tree: Tree, data: Mapping[str, Any], metric: str, baseline: str | None = None,
           current: str | None = None, by: Sequence[str] | str | None = None,
           params: Mapping[str, Any] | None = None, top: int | None = None, engine: str = "auto",
           grain: str | None = None) -> str:
    """Explain ``metric`` between two periods, take the KPI status at the current one and the history up to it,
    and return the report (`report_html`); ``grain`` overrides the tree's."""
    from . import periods, rules
    from .backends import Rider
    from .evaluating import evaluate, requests
    from .explaining import _span, explain, reads_every_row_once, shared_history

    missing = [name for name in tree.sources if name not in data]
    blocked = _reading(tree, missing)
    readable = [name for name, m in tree.metrics.items() if m.kind != "group" and name not in blocked]
    # One evaluation of the history, for the sparklines and for the status's rules on the whole data (the
    # hidden metrics its alerts are judged by included): the status does not evaluate it again. When the
    # current period is given (so where the history ends is known first), it also holds what the explanation
    # reads (the time shifts among them), and the explanation reads nothing of its own for its first step.
    ruled = bool(tree.targets or tree.alerts)
    augmented, rule_metrics = rules.with_rule_metrics(tree) if ruled else (tree, [])
    blocked = _reading(augmented, missing) if rule_metrics else blocked
    readable += [name for name in rule_metrics if name not in blocked]
    shared, hidden, riders = None, [], []
    on_grain = grain or tree.grain
    explained = metric in tree.metrics and tree.metrics[metric].kind != "group" and metric not in blocked
    if current and explained:
        last = periods.label(_span(current, periods.check_grain(on_grain))[1], on_grain)
        if readable and reads_every_row_once(tree, metric, baseline, current, by, grain):
            # The drill-down first makes a pass by every dimension over every row up to the current period
            # (`explaining._one_read`): the history rides in its scans and reads nothing itself.
            riders = [Rider(r) for r in requests(augmented, grain=grain, end=last, metrics=readable, params=params)]
        else:
            # The history first; the explanation's step 1 takes its values from it and reads nothing.
            with_shifts, hidden = shared_history(augmented, metric)
            shared = evaluate(with_shifts, data, grain=grain, params=params, end=last,
                              metrics=[*readable, *hidden])
    explanation = explain(tree, data, metric, baseline, current, by=by, grain=grain, params=params, top=top,
                          evaluation=shared, riders=riders)
    last = explanation.current.period.partition("..")[2] or explanation.current.period
    if shared is not None:
        history = attrs.evolve(shared, table=shared.table.drop_columns(hidden)) if hidden else shared
    else:
        # Aggregated already where the riders rode; read here where they did not.
        history = evaluate(augmented, data, grain=grain, params=params, end=last, metrics=readable,
                           ridden=riders) if readable else None
    status, notes = None, []
    if ruled:
        try:
            status = rules.status(tree, data, at=last, params=params, grain=grain, evaluation=history)
        except MetrictreeError as exc:
            if not missing:
                raise
            notes.append(f"The KPI status is not shown: {exc.diagnostics[0].message} (data given for "
                         f"{', '.join(data) or 'no source'}; not for {', '.join(missing)}).")
    return report_html(tree, explanation, status, history, engine=engine, notes=notes)


__all__ = ["Bar", "Box", "EdgeLine", "Layout", "MetricView", "ReportData", "change_text", "collect", "compact",
           "percent", "points", "signed",
           "explanation_fragment", "explanation_html", "graph_svg", "graphviz", "graphviz_layout", "layered_layout",
           "layout", "report", "report_html", "signed_compact", "sparkline_svg", "status_fragment", "status_html",
           "status_section", "tone", "tree_fragment", "tree_markdown", "waterfall_bars", "waterfall_of",
           "waterfall_svg"]
