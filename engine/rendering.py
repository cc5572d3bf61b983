"""Renderers: results and trees turned into something a person or a program reads.

Every function here is pure: it takes an `Evaluation` (the Arrow result and the
reasons for its nulls), a `Tree` or a `Diagnostic`, and returns text, bytes or a
rich renderable. None of them prints; the CLI decides where output goes and whether
it may be coloured.

- `table_view` — an evaluation as rich tables for a terminal;
- `evaluation_json`, `evaluation_csv` — an evaluation for programs (from `metrictree.exporting`);
- `mermaid`, `dot` — a tree as a graph;
- `styled_diagnostic`, `check_summary` — what ``metrictree check`` says.

Numbers are formatted cell by cell in Python: that only ever touches the result
table (periods × slices, small by construction), never the raw data.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence

from typing import TYPE_CHECKING

import attrs
from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from . import lazy
from .errors import Diagnostic, check_summary
from .escaping import SafeConsole, markdown_text
# For programs (JSON, CSV): written without rich, so that `eval --format json|csv` does not import this module.
from .exporting import evaluation_csv, evaluation_json  # noqa: F401
from .model import Metric, Tree

if TYPE_CHECKING:
    from .evaluating import Evaluation

# Arrow only when an evaluation is rendered: `metrictree check` renders diagnostics and imports none of it.
pa = lazy.module("pyarrow")
pc = lazy.module("pyarrow.compute")

NULL = "—"
PERCENT = "%"

# --------------------------------------------------------------------------- numbers


def format_value(value: int | float | None, unit: str | None = None, spec: str | None = None,
                 decimals: int | None = None) -> str:
    """One number as shown in a table.

    Thousands separators; decimals by magnitude (``36,712,345`` · ``123.4`` · ``1.96`` ·
    ``0.0123``) unless ``decimals`` is given; a ``%`` unit means the value is a fraction
    shown as a percentage (``0.253`` → ``25.3%``); null is ``—``. ``spec``, a metric's
    ``format`` metadata, wins when it is a valid Python format spec (``",.2f"``, ``".1%"``).

    >>> format_value(36712345.2), format_value(1.956), format_value(0.2534, "%"), format_value(None)
    ('36,712,345', '1.96', '25.3%', '—')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NULL
    if spec:
        try:
            return format(value, spec)
        except (ValueError, TypeError):
            pass  # not a Python format spec: fall back to the defaults
    if unit == PERCENT:
        value = value * 100
        places = decimals if decimals is not None else _decimals(abs(value), percent=True)
        return f"{value:,.{places}f}%"
    if isinstance(value, int) and decimals is None:
        return f"{value:,}"
    places = decimals if decimals is not None else _decimals(abs(value))
    return f"{value:,.{places}f}"


def _decimals(size: float, percent: bool = False) -> int:
    """Decimals that show ``size`` readably: none for thousands, about three significant digits below."""
    if size == 0 or not math.isfinite(size) or size >= 1000:
        return 0
    if percent:
        return 1 if size >= 0.1 else min(12, 1 - math.floor(math.log10(size)))
    if size >= 100:
        return 1
    if size >= 1:
        return 2
    return min(12, 2 - math.floor(math.log10(size)))


def _format_column(column: pa.ChunkedArray, metric: Metric | None) -> list[str]:
    """A column's values with one number of decimals for all, from its largest value, so they line up."""
    unit = metric.unit if metric else None
    spec = metric.format if metric else None
    decimals = None
    if not pa.types.is_integer(column.type) or unit == PERCENT:
        finite = pc.filter(column, pc.is_finite(column)) if pa.types.is_floating(column.type) else column
        largest = pc.max(pc.abs(finite)).as_py() if len(finite) else None
        if largest is not None:
            decimals = _decimals(float(largest) * (100 if unit == PERCENT else 1), percent=unit == PERCENT)
    return [format_value(v, unit, spec, decimals) for v in column.to_pylist()]


# --------------------------------------------------------------------------- tables


@attrs.frozen
class _Column:
    header: str
    cells: list[str]
    numeric: bool = True
    style: str | None = None
    min_width: int = 0

    @property
    def width(self) -> int:
        return max([self.min_width] + [cell_len(line) for line in self.header.split("\n")]
                   + [cell_len(c) for c in self.cells])


def table_view(evaluation: Evaluation, tree: Tree, width: int = 100) -> list[RenderableType]:
    """An evaluation as one or more rich tables that fit ``width`` terminal columns.

    Layout, chosen for reading rather than for machines:

    - without ``by``, metrics are rows and periods are columns. A tree has many metrics
      (17 in ``crm_ltv``) and a time series is read left to right, so one metric's trend
      stays on one line; with metrics as columns the table would be far too wide, and
      letting rich squeeze it would wrap every number.
    - with ``by``, each row is a period × slice and each metric a column, so slices of
      one period sit together and can be compared down a column.

    Either way, when the value columns do not fit ``width``, they are folded into
    several tables, each repeating the row labels, rather than wrapped or cut.
    ``--format csv`` and ``json`` stay one row per period × slice.
    """
    table = evaluation.table
    by = list(evaluation.by)
    metrics = [c for c in table.column_names if c != "period" and c not in by]
    cells = {m: _format_column(table.column(m), tree.metrics.get(m)) for m in metrics}
    periods = [str(p) for p in table.column("period").to_pylist()]
    title = f"{tree.title} ({tree.name})" if tree.title else tree.name
    title += f" · by {evaluation.grain}" + (f" and {', '.join(by)}" if by else "")
    if table.num_rows == 0:
        return [Text(f"{title}: no rows", style="bold")]
    if not by:
        keys = [_Column("metric", metrics, numeric=False, style="bold"),
                _Column("unit", [_unit(tree.metrics.get(m)) for m in metrics], numeric=False, style="dim")]
        values = [_Column(period, [cells[m][i] for m in metrics]) for i, period in enumerate(periods)]
        # One width for every period, so the folded tables line up under each other.
        common = max(c.width for c in values)
        values = [attrs.evolve(c, min_width=common) for c in values]
    else:
        keys = [_Column("period", periods, numeric=False, style="bold")]
        for dim in by:
            keys.append(_Column(dim, [NULL if v is None else str(v) for v in table.column(dim).to_pylist()],
                                numeric=False))
        values = []
        for m in metrics:
            unit = _unit(tree.metrics.get(m))
            header = m if unit in ("", PERCENT) else f"{m}\n{unit}"
            values.append(_Column(header, cells[m]))
    blocks = _fold(keys, values, width)
    out: list[RenderableType] = []
    for i, block in enumerate(blocks):
        out.append(_rich_table(keys + block, title if i == 0 else None))
    return out


def _unit(metric: Metric | None) -> str:
    return (metric.unit or "") if metric else ""


def _table_width(columns: Sequence[_Column]) -> int:
    # box.SIMPLE_HEAD without outer edges: one space of padding each side, one divider between.
    return sum(c.width + 2 for c in columns) + max(0, len(columns) - 1)


def _fold(keys: list[_Column], values: list[_Column], width: int) -> list[list[_Column]]:
    """Split the value columns into consecutive blocks so that keys + block fits ``width``."""
    blocks: list[list[_Column]] = []
    current: list[_Column] = []
    for column in values:
        if current and _table_width(keys + current + [column]) > width:
            blocks.append(current)
            current = []
        current.append(column)
    if current or not blocks:
        blocks.append(current)
    return blocks


def _rich_table(columns: Sequence[_Column], title: str | None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, title=title, title_justify="left",
                  title_style="bold", header_style="bold")
    for column in columns:
        table.add_column(column.header, justify="right" if column.numeric else "left", no_wrap=True,
                         style=column.style, min_width=column.min_width or None)
    for row in zip(*(c.cells for c in columns), strict=True):
        table.add_row(*(Text(cell, style="dim") if cell == NULL else cell for cell in row))
    return table


def to_text(renderables: RenderableType | Sequence[RenderableType], width: int = 100) -> str:
    """Renderables as plain text (no colour), ``width`` columns wide; blank lines between several."""
    if not isinstance(renderables, Sequence) or isinstance(renderables, str):
        renderables = [renderables]
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, width=width, force_terminal=False, color_system=None, highlight=False,
                      emoji=False, markup=False)
    console.print(Group(*_spaced(renderables)))
    return buffer.getvalue()


def _spaced(renderables: Sequence[RenderableType]) -> list[RenderableType]:
    out: list[RenderableType] = []
    for i, r in enumerate(renderables):
        if i:
            out.append(Text(""))
        out.append(r)
    return out


def spaced(renderables: Sequence[RenderableType]) -> Group:
    """Several renderables as one, with a blank line between them (how tables are printed)."""
    return Group(*_spaced(renderables))


# --------------------------------------------------------------------------- graphs

_LEGEND = (
    "Arrows point from a metric to what drives it (parent -> child).",
    "Solid arrow: the child is an input of the parent's formula.",
    "Dashed arrow: the child influences the parent (declared with `parent <~ child`); no formula.",
)


def _node_lines(metric: Metric) -> list[str]:
    unit = f" [{metric.unit}]" if metric.unit else ""
    lines = [metric.label, f"{metric.name}{unit}"] if metric.label else [f"{metric.name}{unit}"]
    if metric.kind == "base" and metric.source:
        lines.append(f"from {metric.source}")
    if metric.kind == "group":
        lines.append("group")
    return lines


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


_MERMAID_RESERVED = {"end", "graph", "flowchart", "subgraph", "style", "classdef", "class", "click", "linkstyle",
                     "direction", "default", "call", "href", "callback"}
_MERMAID_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_MERMAID_ESCAPES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;"}


def _mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ESCAPES.get(ch, ch) for ch in _one_line(text))


def _mermaid_ids(tree: Tree) -> dict[str, str]:
    ids: dict[str, str] = {}
    for i, name in enumerate(tree.metrics):
        safe = _MERMAID_ID.fullmatch(name) and name.lower() not in _MERMAID_RESERVED \
            and not name.lower().startswith("end")
        ids[name] = name if safe else f"m{i}"
    return ids


def mermaid(tree: Tree) -> str:
    """The tree as a Mermaid flowchart (paste into Markdown on GitHub, GitLab, Notion …).

    Derived metrics are rectangles, base metrics cylinders (they read a source),
    group metrics hexagons; formula edges ``-->``, influence edges ``-.->``.
    """
    ids = _mermaid_ids(tree)
    # Comments go after the diagram type: some Mermaid versions fail on a comment before it.
    lines = ["flowchart TD", f"%% {_one_line(tree.name)}" + (f": {_one_line(tree.title)}" if tree.title else "")]
    lines += [f"%% {line}" for line in _LEGEND]
    lines += ["%% Shapes: rectangle = derived metric, cylinder = base metric (an aggregate over a source), "
              "hexagon = group (no formula)."]
    shapes = {"derived": ('["', '"]'), "base": ('[("', '")]'), "group": ('{{"', '"}}')}
    for name, metric in tree.metrics.items():
        open_, close = shapes[metric.kind]
        label = "<br/>".join(_mermaid_text(line) for line in _node_lines(metric))
        lines.append(f"    {ids[name]}{open_}{label}{close}")
    for parent, child, kind in tree.edges():
        arrow = "-.->" if kind == "influence" else "-->"
        lines.append(f"    {ids[parent]} {arrow} {ids[child]}")
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(tree: Tree) -> str:
    """The tree as a Graphviz DOT digraph (``metrictree graph t.tree --format dot | dot -Tsvg``).

    Derived metrics are rounded boxes, base metrics cylinders, group metrics hexagons;
    influence edges are dashed.
    """
    title = f", label={_dot_string(_one_line(tree.title))}, labelloc=t" if tree.title else ""
    lines = [f"// {_one_line(tree.name)}" + (f": {_one_line(tree.title)}" if tree.title else "")]
    lines += [f"// {line}" for line in _LEGEND]
    lines += ["// Shapes: rounded box = derived metric, cylinder = base metric (an aggregate over a source), "
              "hexagon = group (no formula).",
              f"digraph {_dot_string(tree.name)} {{",
              f'    graph [rankdir=TB, fontname="Helvetica"{title}];',
              '    node [shape=box, style=rounded, fontname="Helvetica"];']
    shapes = {"derived": "", "base": "shape=cylinder, style=solid, ",
              "group": "shape=hexagon, style=dashed, "}
    for name, metric in tree.metrics.items():
        label = "\n".join(_one_line(line) for line in _node_lines(metric))
        lines.append(f"    {_dot_string(name)} [{shapes[metric.kind]}label={_dot_string(label)}];")
    for parent, child, kind in tree.edges():
        style = " [style=dashed]" if kind == "influence" else ""
        lines.append(f"    {_dot_string(parent)} -> {_dot_string(child)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- diagnostics


def styled_diagnostic(diagnostic: Diagnostic) -> Text:
    """`Diagnostic.render()` with colour: the severity, the caret and ``hint:`` stand out."""
    plain = diagnostic.render()
    text = Text(plain)
    head = f"{diagnostic.span}: " if diagnostic.span else ""
    colour = "red" if diagnostic.severity == "error" else "yellow"
    first_end = plain.find("\n") if "\n" in plain else len(plain)
    text.stylize("bold", 0, first_end)
    text.stylize(f"bold {colour}", len(head), len(head) + len(diagnostic.severity) + 1)
    for match in re.finditer(r"(?m)^ +\| [ \t]*(\^+)$", plain):
        text.stylize(f"bold {colour}", match.start(1), match.end(1))
    for match in re.finditer(r"(?m)^ *\d+ \| ", plain):
        text.stylize("dim", match.start(), match.end())
    for match in re.finditer(r"(?m)^hint:", plain):
        text.stylize("bold cyan", match.start(), match.end())
    return text


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


__all__ = ["check_summary", "dot", "evaluation_csv", "evaluation_json", "format_value", "mermaid", "spaced",
           "styled_diagnostic", "table_view", "to_text"]


# --------------------------------------------------------------------------- explanations


def _bar(share: float | None, width: int = 12) -> str:
    """A bar for a share of the root's change: ``████▌`` (eighths of a cell)."""
    if share is None:
        return ""
    eighths = round(min(abs(share), 1.0) * width * 8)
    return "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]


def _tone(change: float | None, direction: str | None) -> str:
    """Green when a change goes the metric's good way, red when it goes the bad way."""
    if not change or direction not in ("up", "down"):
        return ""
    good = change > 0 if direction == "up" else change < 0
    return "green" if good else "red"


def _largest_segments(segments, top: int) -> list:
    """The ``top`` segments with the largest contributions, whatever their dimension."""
    return sorted(segments, key=lambda seg: -abs(seg.contribution or 0.0))[:top]


def explanation_view(explanation, depth: int | None = None, top: int = 3, verbose: bool = False) -> Group:
    """An `Explanation` for a terminal: the sentences, the driver tree with bars, the root causes.

    Each driver shows baseline → current, its change, its contribution to the root's change (in the
    root's units) with a bar, and its share. Influence children are dimmed and labelled: they are
    not part of the sum. ``depth`` limits the levels shown; ``top`` the segments per driver. A share has
    its contribution's sign. ``verbose`` adds how each split was made (lmdi, shapley …) and the residual.
    """
    from rich.tree import Tree as RichTree

    from .narrating import amount as number
    from .narrating import change_in_points, mix_text, part_text, percent, share_of, where_text

    e = explanation
    title = Text(f"{e.label} ({e.metric}) · {e.baseline.period} → {e.current.period}", style="bold")
    story = Text("\n".join(e.summary()))
    root = RichTree(Text.assemble((f"{e.label}  ", "bold"), f"{number(e.baseline.value, e.unit)} → "
                                  f"{number(e.current.value, e.unit)}  ",
                                  (change_in_points(e.change, e.unit, True), _tone(e.change, e.direction)),
                                  (f"   [{e.method}]" if verbose else "", "dim")))

    def segment_line(seg, unit: str | None) -> Text:
        part = f"{change_in_points(seg.contribution, e.unit, True)}" if seg.contribution is not None else ""
        mix = (f"  (mix {change_in_points(seg.mix, e.unit, True)}, rate {change_in_points(seg.rate, e.unit, True)})"
               if seg.mix is not None else "")
        return Text(f"{where_text(seg.where)}: {number(seg.baseline, unit)} → {number(seg.current, unit)}  "
                    f"{part}{mix}", style="dim")

    def add(node, driver, level: int) -> None:
        if driver.kind == "influence":
            assoc = driver.association
            facts = ""
            if assoc is not None and assoc.elasticity is not None:
                facts = f"  elasticity {assoc.elasticity:+.2f} over {assoc.periods} periods"
            elif assoc is not None:
                facts = f"  (too little history: {assoc.periods} periods)"
            label = Text.assemble((f"{driver.label}", "dim italic"), ("  influence, not in the sum  ", "dim"),
                                  (f"{number(driver.baseline, driver.unit)} → {number(driver.current, driver.unit)}"
                                   if driver.baseline is not None else "", "dim"), (facts, "dim"))
        else:
            share = f"{percent(share_of(driver.contribution, e.change)):>5}"
            label = Text.assemble(
                (f"{driver.label}", "bold" if level == 1 else ""), "  ",
                f"{number(driver.baseline, driver.unit)} → {number(driver.current, driver.unit)}  ",
                (change_in_points(driver.change, driver.unit, True), _tone(driver.change, driver.direction)), "   ",
                (f"{change_in_points(driver.contribution, e.unit, True)} ", "bold"),
                (_bar(driver.share), "red" if (driver.contribution or 0) * (e.change or 0) > 0 and
                 _tone(e.change, e.direction) == "red" else "cyan"), f" {share}",
                (f"  [{driver.method}]" if driver.drivers and verbose else "", "dim"))
        branch = node.add(label)
        places = occurrences.get(driver.metric, [])
        if driver.kind != "influence" and len(places) > 1:
            # A metric the formulas use in several places: what it does in all of them together.
            net = sum(c for _, c in places)
            net = 0.0 if abs(net) <= 1e-9 * abs(e.change or 1.0) else net
            if places[0][1] is driver.contribution:
                where = ", ".join(f"{change_in_points(c, e.unit, True)} under {parent}" for parent, c in places)
                branch.add(Text(f"in all: {change_in_points(net, e.unit, True)} ({where})", style="dim"))
        for seg in _largest_segments(driver.segments, top):
            branch.add(segment_line(seg, driver.unit))
        if depth is None or level < depth:
            for child in driver.drivers:
                add(branch, child, level + 1)

    occurrences: dict[str, list] = {}

    def collect(driver, parent: str) -> None:
        if driver.kind != "influence" and driver.contribution is not None:
            occurrences.setdefault(driver.metric, []).append((parent, driver.contribution))
        for child in driver.drivers:
            collect(child, driver.label)

    for driver in e.drivers:
        collect(driver, e.label)
    for seg in _largest_segments(e.segments, top):
        root.add(segment_line(seg, e.unit))
    for driver in e.drivers:
        add(root, driver, 1)
    parts: list[RenderableType] = [title, story, Text(""), root]
    if e.root_causes:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, title="Root causes", title_justify="left",
                      title_style="bold", header_style="bold")
        for header, justify in (("#", "right"), ("segment", "left"), ("what moved there", "left"),
                                ("effect", "right"), ("share", "right")):
            table.add_column(header, justify=justify, no_wrap=header in ("#", "effect", "share"))
        for i, cause in enumerate(e.root_causes, 1):
            moved = "\n".join(part_text(p) + (f"  {change_in_points(p.contribution, e.unit, True)}"
                                              if len(cause.parts) > 1 else "") for p in cause.parts)
            table.add_row(str(i), where_text(cause.where), moved, change_in_points(cause.contribution, e.unit, True),
                          percent(share_of(cause.contribution, e.change)) or NULL)
        parts += [Text(""), table]
    elif e.reason:
        parts += [Text(""), Text("Root causes: " + e.reason + ".")]
    if e.mix:
        parts.append(Text("Mix, not causes:", style="bold"))
        parts += [Text(f"  {mix_text(seg, e)}") for seg in e.mix]
    for note in e.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    if verbose:
        parts.append(Text(f"Formula contributions add up to the change (residual {e.residual:.1e}).", style="dim"))
    return Group(*parts)


# --------------------------------------------------------------------------- plugins


def plugin_view(name: str, origin: str, contributions: dict[str, list[str]], registry) -> Group:
    """One plugin: where it comes from, and each function, library and tree it adds with its one-line doc."""
    lines: list[RenderableType] = [Text.assemble((name, "bold"), (f"  ({origin})", "dim"))]
    tables = {"aggregate function": registry.aggregates, "function": registry.scalars,
              "library": registry.libraries, "tree": registry.trees}
    for kind in ("aggregate function", "function", "library", "tree"):
        names = contributions.get(kind, [])
        if not names:
            continue
        table = Table(box=None, show_header=False, padding=(0, 2), pad_edge=False)
        table.add_column(no_wrap=True)
        table.add_column(style="dim")
        for item in sorted(names):
            table.add_row(f"  {item}" + ("()" if "function" in kind else ""), tables[kind][item].doc)
        heading = {"aggregate function": "aggregations", "function": "functions", "library": "libraries",
                   "tree": "trees"}[kind]
        lines += [Text(f"  {heading}:", style="italic"), table]
    if len(lines) == 1:
        lines.append(Text("  (adds nothing)", style="dim"))
    return Group(*lines, Text(""))


# --------------------------------------------------------------------------- what-if


def scenario_view(scenario) -> Group:
    """A `Scenario` for a terminal: every metric reached, before → after, and the targets."""
    from .narrating import change_in_points, number

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold",
                  title=f"What if {', '.join(f'{c.metric} {c.text}' for c in scenario.changes)} "
                        f"({scenario.period})", title_justify="left", title_style="bold")
    for header, justify in (("metric", "left"), ("before", "right"), ("after", "right"), ("change", "right"),
                            ("", "right"), ("", "left")):
        table.add_column(header, justify=justify, no_wrap=True)
    for e in scenario.effects:
        rel = f"{e.relative * 100:+.1f}%" if e.relative is not None else ""
        table.add_row(e.label, number(e.before, e.unit), number(e.after, e.unit), change_in_points(e.change, e.unit),
                      rel, Text("set" if e.changed else "", style="dim"))
    parts: list[RenderableType] = [table]
    for t in scenario.targets:
        after = "no data" if t.met_after is None else "met" if t.met_after else "not met"
        before = "no data" if t.met_before is None else "met" if t.met_before else "not met"
        parts.append(Text(f"target {t.condition} by {t.deadline}: {before} → {after}",
                          style="green" if t.met_after else "red" if t.met_after is False else "yellow"))
    parts += [Text(note, style="dim") for note in scenario.notes]
    return Group(*parts)


def sensitivity_view(table: pa.Table, tree: Tree, metric: str, markdown: bool = False) -> RenderableType | str:
    """The ranked drivers of a metric: the effect on it of moving each by 1 %."""
    from .narrating import number

    unit = tree.metrics[metric].unit
    rows = table.to_pylist()
    if markdown:
        lines = [f"# What moves {metric} most? (each driver +1 %)", "", "| driver | value | effect | elasticity |",
                 "|---|---:|---:|---:|"]
        for r in rows:
            u = tree.metrics[r["driver"]].unit if r["driver"] in tree.metrics else None
            el = f"{r['elasticity']:+.2f}" if r["elasticity"] is not None else NULL
            lines.append(f"| {r['label']} | {number(r['value'], u)} | {number(r['effect'], unit, signed=True)} | "
                         f"{el} |")
        return markdown_text("\n".join(lines) + "\n")
    out = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", title_justify="left",
                title=f"What moves {tree.metrics[metric].title} most? Each driver +1 %", title_style="bold")
    for header, justify in (("driver", "left"), ("value", "right"), ("effect", "right"), ("elasticity", "right")):
        out.add_column(header, justify=justify, no_wrap=True)
    for r in rows:
        u = tree.metrics[r["driver"]].unit if r["driver"] in tree.metrics else None
        el = f"{r['elasticity']:+.2f}" if r["elasticity"] is not None else NULL
        out.add_row(r["label"] + (" (param)" if r["kind"] == "param" else ""), number(r["value"], u),
                    number(r["effect"], unit, signed=True), el)
    return out


# --------------------------------------------------------------------------- status (targets and alerts)

STATE_STYLES = {"met": "green", "on track": "green", "met at deadline": "green", "off track": "red", "missed": "red",
                "no data": "yellow", "not started": "cyan", "fired": "red", "not fired": "green"}
SEVERITY_STYLES = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def progress_bar(share: float | None, width: int = 10) -> str:
    """The share of a target's way done as a bar, clamped to 0…100 %: ``██████▌░░░`` (eighths of a cell).

    >>> progress_bar(0.5), progress_bar(-1.0), progress_bar(None)
    ('█████░░░░░', '░░░░░░░░░░', '')
    """
    if share is None:
        return ""
    eighths = round(min(max(share, 0.0), 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[part]
    return bar + "░" * (width - len(bar))


def _share_text(share: float | None) -> str:
    """A share as a whole percentage with a real minus sign: ``−200%``."""
    return NULL if share is None else f"{share * 100:.0f}%".replace("-", "−")


def _short(t, value: float | None) -> str:
    """A target's value for a narrow column: millions as ``2.76M RUB`` unless the metric has a ``format``."""
    if value is None or t.format or t.unit == PERCENT or abs(value) < 1e6:
        return t.show(value)
    from .rules import value_text

    scaled, suffix = (value / 1e9, "B") if abs(value) >= 1e9 else (value / 1e6, "M")
    return value_text(scaled, None, ",.2f") + suffix + (f" {t.unit}" if t.unit else "")


def _target_details(t, at: str | None) -> list[Text]:
    """The lines under the targets table: a target's reason, notes and nearest checkpoints."""
    lines = [Text(f"  {t.title}: {line}", style="yellow" if t.state == "no data" else "dim")
             for line in ([t.reason] if t.reason else []) + list(t.notes)]
    if t.checkpoints:
        # The two latest checkpoints and the two next ones: what a weekly look at a KPI needs.
        past = [c for c in t.checkpoints if at is not None and c.grain_period <= at]
        shown = past[-2:] + list(t.checkpoints[len(past):len(past) + 2])
        line = Text(f"  {t.title} · checkpoints: " + ("… " if len(past) > 2 else ""), style="dim")
        for i, c in enumerate(shown):
            if i:
                line.append(" · ", style="dim")
            line.append(f"{c.period} {t.show(c.planned)}", style="dim")
            line.append(" ✓" if c.reached else " ✗" if c.reached is False else "",
                        style="green" if c.reached else "red")
        if len(past) + 2 < len(t.checkpoints):
            line.append(" …", style="dim")
        lines.append(line)
    return lines


def status_view(status) -> Group:
    """A `Status` for a terminal: the targets by level (now → goal, deadline, progress bar, plan, state,
    pace needed), each target's checkpoints and reasons, then the alerts that fired."""
    from .rules import pace_text

    title = status.title or status.tree
    head = Text.assemble((f"{title}", "bold"), (f" ({status.tree})" if status.title else "", "dim"),
                         f" · status at {status.at or NULL}", (f" · grain {status.grain}", "dim"))
    parts: list[RenderableType] = [head]
    if status.params:
        parts.append(Text("params: " + ", ".join(f"{k} = {v:g}" for k, v in status.params.items()), style="dim"))
    if not status.targets and not status.alerts:
        parts += [Text(""), Text("The tree has no targets or alerts.", style="dim")]
    if status.targets:
        from .rules import SYMBOLS

        table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
        for header, justify in (("target", "left"), ("now", "right"), ("plan now", "right"), ("done", "left"),
                                ("state, pace", "left")):
            # Only the bar never wraps: long numbers (millions of RUB) wrap at their spaces on a narrow terminal.
            table.add_column(header, justify=justify, no_wrap=header == "done")
        details: list[RenderableType] = []
        for number_of_level, (level, targets) in enumerate(status.by_level()):
            if number_of_level:
                table.add_section()
            table.add_row(Text((level or "other").capitalize(), style="bold"))
            for t in targets:
                style = STATE_STYLES.get(t.state, "")
                name = Text(t.label or t.metric_label)
                if t.where:
                    name.append(f" [{t.where}]", style="dim")
                name.append(f"\n{SYMBOLS[t.op]} {t.show(t.goal)} by {t.deadline_period}", style="dim")
                done = Text(progress_bar(t.progress, 6), style=style)
                done.append(f" {_share_text(t.progress):>5}")
                state = Text(t.state, style=style)
                if t.required_pace is not None:
                    state.append(f"\n{pace_text(t, status.grain)}", style="dim")
                table.add_row(name, _short(t, t.current), _short(t, t.planned), done, state)
                details += _target_details(t, status.at)
        parts += [Text(""), table, *details]
    if status.alerts:
        fired = [a for a in status.alerts if a.fired]
        parts += [Text(""), Text(f"Alerts · {len(fired)} of {len(status.alerts)} fired", style="bold")]
        if fired:
            table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
            for header, justify in (("severity", "left"), ("alert", "left"), ("value", "right"), ("slice", "left")):
                table.add_column(header, justify=justify, no_wrap=header != "alert", ratio=1 if header == "alert" else None)
            order = ("critical", "warning", "info")
            for a in sorted(fired, key=lambda a: order.index(a.severity) if a.severity in order else len(order)):
                alert = Text(a.message or a.condition)
                if a.message:
                    alert.append(f"\n{a.condition}", style="dim")
                table.add_row(Text(a.severity, style=SEVERITY_STYLES.get(a.severity, "")), alert,
                              a.value_text, a.where or "all")
            parts.append(table)
        for a in status.alerts:
            if a.state == "no data":
                where = f" [{a.where}]" if a.where else ""
                parts.append(Text(f"  no data: {a.condition}{where}: {a.reason}", style="yellow"))
        quiet = [a for a in status.alerts if a.state == "not fired"]
        if quiet:
            parts.append(Text("  not fired: " + ", ".join(a.condition + (f" [{a.where}]" if a.where else "")
                                                          for a in quiet), style="dim"))
    return Group(*parts)
