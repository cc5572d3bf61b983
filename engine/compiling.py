"""Syntax nodes → a validated `Tree`: names resolved, metrics classified, graph built, checks run.

Every check runs before any data is touched and reports *all* the problems of a
file at once (`CompileError` carries a list of diagnostics). The passes, in order:

1. gather — read the file, its ``include``s and ``import``ed libraries into one list of statements;
2. declare — sources, params, metrics, links, rules; duplicates and metadata values;
3. resolve — each formula: names, functions, arities; base metrics read one source only;
4. graph — formula and influence edges; cycles;
5. units — adding RUB to % and the like;
6. lints — unused metrics, strategic metrics with no drivers, uncontrollable leaves (warnings).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import graphlib

import attrs

from . import binding
from . import syntax as s
from .errors import CompileError, Diagnostic, Span, did_you_mean, error, warning
from .functions import Aggregate, Registry, Scalar
from .includes import MAX_INCLUDE_DEPTH, read_tree_file, resolve_include
from .model import DIRECTIONS, GRAINS, LEVELS, SEVERITIES, Alert, Link, Metric, Param, Source, Target
from .tree import Tree
from .parsing import parse
from .pluginmanager import registry as default_registry

# ``unit currency`` (how the libraries mark money): the tree's ``currency``, or no unit when it names none.
CURRENCY = "currency"
_BOOLEAN_WORDS = {"yes": True, "true": True, "no": False, "false": False}


def load(path: str | os.PathLike, registry: Registry | None = None,
         include_paths: Sequence[str | os.PathLike] = ()) -> Tree:
    """Read, parse and compile a tree file. Raises `TreeSyntaxError` or `CompileError`.

    ``include`` reaches the tree's folder and the ``include_paths`` only (see `metrictree.includes`).
    """
    path = Path(path)
    text = read_tree_file(path)
    return compile_module(parse(text, str(path)), registry, file=str(path), include_paths=include_paths)


def loads(text: str, name: str = "<string>", registry: Registry | None = None,
          include_paths: Sequence[str | os.PathLike] = ()) -> Tree:
    """Parse and compile tree-file text (``include`` paths are relative to the working directory)."""
    return compile_module(parse(text, name), registry, file=None, include_paths=include_paths)


def check(path: str | os.PathLike, registry: Registry | None = None,
          include_paths: Sequence[str | os.PathLike] = ()) -> list[Diagnostic]:
    """Every problem in a tree file, errors and warnings, without raising for errors."""
    from .errors import MetrictreeError

    try:
        return list(load(path, registry, include_paths).warnings)
    except MetrictreeError as exc:
        return list(exc.diagnostics)


# --------------------------------------------------------------------------- gather


@attrs.frozen
class _Item:
    statement: s.Statement
    library: str | None = None
    included: bool = False


@attrs.define
class _Imports:
    """What the imports asked for: ``import lib (a, b)`` choices, the bindings, the unbound columns."""

    selections: dict[str, tuple[tuple[str, ...], Span | None]] = attrs.field(factory=dict)
    bound: list[s.ImportStmt] = attrs.field(factory=list)
    unbound: dict[int, binding.Unbound] = attrs.field(factory=dict)
    statement_of: dict[str, s.ImportStmt] = attrs.field(factory=dict)


def _gather(module: s.Module, registry: Registry, problems: list[Diagnostic], imports: _Imports,
            folders: Sequence[Path] = ()) -> list[_Item]:
    """Every statement of the file, its includes and its imported libraries (bound to the tree's data)."""
    items: list[_Item] = []
    seen_files: set[str] = set()
    seen_libraries: set[str] = set()
    selections = imports.selections

    def visit(mod: s.Module, library: str | None, chain: tuple[str, ...], included: bool = False) -> None:
        for statement in mod.statements:
            if isinstance(statement, s.IncludeStmt):
                include(statement, mod, library, chain)
            elif isinstance(statement, s.ImportStmt):
                only = statement.only or ((),) * len(statement.libraries)
                for name, names in zip(statement.libraries, only, strict=True):
                    if names:
                        before = selections.get(name, ((), None))[0]
                        selections[name] = (tuple(dict.fromkeys(before + names)), statement.span)
                parsed = {name: parse_library(name, statement) for name in dict.fromkeys(statement.libraries)}
                parsed = {name: mod for name, mod in parsed.items() if mod is not None}
                if statement.bindings:
                    imports.bound.append(statement)
                    binding.check_names(statement, {n: binding.reads(m) for n, m in parsed.items()}, problems)
                for name, lib in parsed.items():
                    statements, unbound = binding.bind(lib, name, statement.bindings, registry, problems)
                    imports.unbound.update(unbound)
                    imports.statement_of[name] = statement
                    visit(attrs.evolve(lib, statements=tuple(statements)), name, ())
            else:
                items.append(_Item(statement, library, included))

    def include(statement: s.IncludeStmt, mod: s.Module, library: str | None, chain: tuple[str, ...]) -> None:
        named = mod.source and not mod.source.name.startswith("<")
        base = Path(mod.source.name).resolve().parent if named else Path.cwd().resolve()
        if len(chain) > MAX_INCLUDE_DEPTH:
            problems.append(error(f"includes nest more than {MAX_INCLUDE_DEPTH} files deep", statement.span,
                                  "include the shared files from the top tree instead of from each other",
                                  "include"))
            return
        try:
            path = resolve_include(statement.path, base, folders, statement.span)
        except CompileError as exc:
            problems.extend(exc.diagnostics)
            return
        if str(path) in chain:
            cycle = " → ".join(Path(p).name for p in (*chain[chain.index(str(path)):], str(path)))
            problems.append(error(f"include cycle: {cycle}", statement.span,
                                  "remove one of the includes", "include-cycle"))
            return
        if str(path) in seen_files:
            return
        seen_files.add(str(path))
        try:
            text = read_tree_file(path, statement.span, "included file")
        except CompileError as exc:
            problems.extend(exc.diagnostics)
            return
        visit(parse(text, str(path)), library, (*chain, str(path)), included=True)

    def parse_library(name: str, statement: s.ImportStmt) -> s.Module | None:
        span = statement.span
        if name in seen_libraries:
            if statement.bindings or imports.statement_of[name].bindings:
                problems.append(error(f"library '{name}' is imported twice", span,
                                      "import it once, with one binding of its sources", "duplicate"))
            return None
        library = registry.libraries.get(name)
        if library is None:
            known = sorted(registry.libraries)
            hint = did_you_mean(name, known) or (
                f"installed libraries: {', '.join(known)}" if known else
                "no installed plugin provides a metric library; see `metrictree plugins`")
            problems.append(error(f"unknown library '{name}'", span, hint, "unknown-library"))
            return None
        seen_libraries.add(name)
        return parse(library.text, f"<library {name}>")

    root = str(Path(module.source.name).resolve()) if module.source and not module.source.name.startswith("<") else ""
    # Includes reach the tree's folder (the working directory for text) and the explicit include paths.
    folders = [Path(root).parent if root else Path.cwd().resolve(), *folders]
    if root:
        seen_files.add(root)
    visit(module, None, (root,) if root else ())
    return items


# --------------------------------------------------------------------------- declare


def _meta(entries: Iterable[s.MetaEntry], allowed: set[str], what: str, problems: list[Diagnostic]) -> dict:
    values: dict = {}
    for entry in entries:
        if entry.key not in allowed:
            problems.append(error(f"'{entry.key}' does not apply to {what}", entry.span,
                                  f"{what} takes: {', '.join(sorted(allowed))}", "metadata"))
            continue
        value = entry.value
        choices = {"direction": DIRECTIONS, "level": LEVELS, "controllable": tuple(_BOOLEAN_WORDS),
                   "severity": SEVERITIES}.get(entry.key)
        if choices and value not in choices:
            hint = did_you_mean(value, choices) or f"use one of: {', '.join(choices)}"
            problems.append(error(f"{entry.key} must be one of {', '.join(choices)}, not '{value}'", entry.span,
                                  hint, "metadata"))
            continue
        if entry.key == "controllable":
            value = _BOOLEAN_WORDS[value]
        if entry.key == "format":
            try:
                if any(len(n) > 3 for n in re.findall(r"\d+", value)):
                    raise ValueError("a width or precision over 999")  # format() would fill memory
                format(1234.5678, value)
            except (ValueError, TypeError, OverflowError, MemoryError):
                problems.append(error(f"'{value}' is not a number format", entry.span,
                                      'use a Python format spec, e.g. ",.0f" (1,235) or ".1%" (12.3%)', "metadata"))
                continue
        if entry.key in values:
            problems.append(error(f"'{entry.key}' is given twice", entry.span, "keep one", "metadata"))
        values[entry.key] = value
    return values


_METRIC_META = {"label", "description", "unit", "format", "direction", "owner", "level", "controllable", "external"}


@attrs.define
class _Declarations:
    header: s.TreeHeader | None = None
    grain: str = "month"
    grain_span: Span | None = None
    currency: str | None = None
    currency_span: Span | None = None
    sources: dict[str, Source] = attrs.field(factory=dict)
    params: dict[str, Param] = attrs.field(factory=dict)
    metrics: dict[str, tuple[s.MetricDef, str | None]] = attrs.field(factory=dict)
    links: list[s.LinkStmt] = attrs.field(factory=list)
    targets: list[s.TargetStmt] = attrs.field(factory=list)
    alerts: list[s.AlertStmt] = attrs.field(factory=list)
    spans: dict[str, tuple[str, Span | None]] = attrs.field(factory=dict)
    origins: dict[str, str | None] = attrs.field(factory=dict)
    library_links: set[int] = attrs.field(factory=set)


def _declare(items: list[_Item], problems: list[Diagnostic]) -> _Declarations:
    d = _Declarations()

    def claim(name: str, what: str, span: Span | None, library: str | None = None) -> bool:
        if name in d.spans:
            other_what, other = d.spans[name]
            owner = d.origins.get(name)
            if library is not None and owner is None:
                return False  # the tree's own definition replaces the library's
            if library is not None and owner != library:
                problems.append(error(f"'{name}' is defined by two imported libraries: {owner} and {library}",
                                      span, f"import only what you need, e.g. import {library} (…) without "
                                            f"'{name}', or define '{name}' in the tree yourself", "library-clash"))
                return False
            where = f" at {other}" if other else ""
            problems.append(error(f"'{name}' is already defined as a {other_what}{where}", span,
                                  f"rename one of the two {what}s" if what == other_what else
                                  "metrics, params and sources share one namespace: rename one", "duplicate"))
            return False
        d.spans[name] = (what, span)
        d.origins[name] = library
        return True

    # The tree's own statements first, so that they replace library definitions of the same name.
    for item in sorted(items, key=lambda i: i.library is not None):
        st = item.statement
        match st:
            case s.TreeHeader():
                if item.library is None and not item.included:
                    if d.header is not None:
                        problems.append(error("a second 'tree' header", st.span,
                                              f"the tree is already named at {d.header.span}; keep one", "duplicate"))
                    d.header = st
            case s.GrainStmt():
                if item.library is None and not item.included:
                    if d.grain_span is not None:
                        problems.append(error("a second 'grain' statement", st.span,
                                              f"the grain is already set at {d.grain_span}; keep one", "duplicate"))
                    if st.grain not in GRAINS:
                        problems.append(error(f"unknown grain '{st.grain}'", st.span,
                                              did_you_mean(st.grain, GRAINS) or f"use one of: {', '.join(GRAINS)}",
                                              "grain"))
                    else:
                        d.grain, d.grain_span = st.grain, st.span
            case s.SourceDef():
                meta = _meta(st.meta, {"label", "description"}, "a source", problems)
                if st.time is None:
                    problems.append(error(f"source '{st.name}' has no time column", st.span,
                                          "add a line `time <column>` naming its date or timestamp column",
                                          "source"))
                _check_time_options(st, problems)
                if claim(st.name, "source", st.span, item.library):
                    d.sources[st.name] = Source(st.name, st.time, st.dimensions, st.entity,
                                                meta.get("label"), meta.get("description"), st.time_format,
                                                st.timezone, span=st.span)
            case s.CurrencyStmt():
                if item.library is None:
                    if d.currency_span is not None:
                        problems.append(error("a second 'currency' statement", st.span,
                                              f"the currency is already set at {d.currency_span}; keep one",
                                              "duplicate"))
                    else:
                        d.currency, d.currency_span = st.currency, st.span
            case s.ParamDef():
                meta = _meta(st.meta, {"label", "description", "unit"}, "a param", problems)
                if claim(st.name, "param", st.span, item.library):
                    d.params[st.name] = Param(st.name, float(st.value), st.percent, meta.get("label"),
                                              meta.get("description"), span=st.span)
            case s.MetricDef():
                if claim(st.name, "metric", st.name_span, item.library):
                    d.metrics[st.name] = (st, item.library)
            case s.LinkStmt():
                d.links.append(st)
                if item.library is not None:
                    d.library_links.add(id(st))
            case s.TargetStmt():
                d.targets.append(st)
            case s.AlertStmt():
                d.alerts.append(st)
    return d


def _check_time_options(st: s.SourceDef, problems: list[Diagnostic]) -> None:
    """A time format has at least one ``%`` directive; a time zone is one the zone database knows."""
    if st.time_format is not None and "%" not in st.time_format:
        problems.append(error(f"'{st.time_format}' is not a time format", st.format_span,
                              'write it with strptime codes, e.g. "%d/%m/%Y %H:%M" for 01/09/2024 14:05', "time-format"))
    if st.timezone is not None:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(st.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(error(f"unknown time zone '{st.timezone}'", st.timezone_span,
                                  did_you_mean(st.timezone, zoneinfo.available_timezones()) or
                                  'use an IANA zone name, e.g. "Europe/London" or "UTC"', "timezone"))


def _references(st: s.MetricDef) -> set[str]:
    names: set[str] = set()
    for expr in (st.formula, st.where):
        for node in s.walk(expr) if expr is not None else ():
            if isinstance(node, s.Name | s.Shift):
                names.add(node.name)
            elif isinstance(node, s.Column):
                names.add(node.source)
    return names


def _prune_libraries(d: _Declarations, imports: _Imports, problems: list[Diagnostic]) -> None:
    """Keep the library metrics a tree asked for and can compute.

    ``import crm`` asks for every crm metric; ``import crm (ltv)`` for ``ltv`` only. What the
    asked-for metrics read is kept too, from whichever library defines it. Then a kept metric
    whose sources or names the tree lacks, or that reads a column its binding does not give,
    is dropped: silently when the whole library was imported and it lacks a source (with a
    warning when it lacks a bound column); with an error saying what is missing when it was named.
    """
    selections = imports.selections
    owner = {name: lib for name, (_, lib) in d.metrics.items() if lib is not None}
    wanted: list[str] = []
    for name, library in owner.items():
        if library not in selections:
            wanted.append(name)
    for library, (names, span) in selections.items():
        pool = [n for n, lib in owner.items() if lib == library]
        for name in names:
            if owner.get(name) == library:
                wanted.append(name)
            elif name not in d.metrics or d.origins.get(name) is not None:
                problems.append(error(f"library {library} has no metric '{name}'", span,
                                      did_you_mean(name, pool) or f"its metrics: {', '.join(sorted(pool))}",
                                      "unknown-name"))
    keep: set[str] = set()
    stack = list(wanted)
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        keep.add(name)
        stack.extend(ref for ref in _references(d.metrics[name][0]) if ref in owner)
    known = set(d.sources) | set(d.params) | {n for n in d.metrics if n not in owner or n in keep}
    unbound = {name: binding.unbound_reads((d.metrics[name][0].formula, d.metrics[name][0].where), imports.unbound)
               for name in keep}
    missing: dict[str, set[str]] = {}
    changed = True
    while changed:
        changed = False
        for name in sorted(keep - set(missing)):
            absent = {ref for ref in _references(d.metrics[name][0]) if ref not in known or ref in missing}
            absent |= {u.read for u in unbound[name]}
            if absent:
                missing[name] = absent
                changed = True

    def unbound_needs(name: str) -> list[tuple[binding.Unbound, str]]:
        """The unbound columns ``name`` needs, each with the metric that reads it."""
        found: dict[str, tuple[binding.Unbound, str]] = {}
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in seen or current not in keep:
                continue
            seen.add(current)
            for record in unbound[current]:
                found.setdefault(record.read, (record, current))
            todo.extend(ref for ref in _references(d.metrics[current][0]) if ref in owner)
        return sorted(found.values(), key=lambda x: x[0].read)

    def hint(record: binding.Unbound) -> str:
        source = d.sources.get(record.binding.source)
        return record.hint(source.entity if source else None)

    for library, (names, span) in selections.items():
        needed: dict[str, tuple[binding.Unbound, str, list[str]]] = {}
        for name in names:
            if owner.get(name) != library or name not in missing:
                continue
            needs = unbound_needs(name)
            for record, reader in needs:
                needed.setdefault(record.read, (record, reader, []))[2].append(name)
            if not needs:
                listed = ", ".join(sorted(missing[name]))
                problems.append(error(f"{library}'s '{name}' cannot be imported: it needs {listed}", span,
                                      "declare the source (and the metrics) it reads, or import less", "library"))
        for record, reader, wanting in needed.values():
            via = f" (read by '{reader}')" if reader not in wanting else ""
            quoted = [f"'{n}'" for n in wanting]
            who = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
            problems.append(error(f"{library}'s {who} need{'s' if len(wanting) == 1 else ''} {record.read}{via}, "
                                  f"which the binding of {record.binding.library_source} does not give",
                                  record.binding.span, hint(record), "unbound-column"))
    left_out: dict[tuple[str, str], tuple[binding.Unbound, list[str]]] = {}
    for name in sorted(missing):
        if owner[name] in selections:
            continue
        for record, _ in unbound_needs(name):
            left_out.setdefault((owner[name], record.read), (record, []))[1].append(name)
    for (library, read), (record, names) in left_out.items():
        problems.append(warning(f"import {library} leaves out {', '.join(names)}: "
                                f"{'it reads' if len(names) == 1 else 'they read'} {read}, which the binding of "
                                f"{record.binding.library_source} does not give", record.binding.span,
                                f"{hint(record)}, or import only the metrics you need: import {library} (…)",
                                "unbound-column"))
    for name in owner:
        if name not in keep or name in missing:
            d.metrics.pop(name, None)
            d.spans.pop(name, None)
            d.origins.pop(name, None)


# --------------------------------------------------------------------------- resolve


SUGGESTION_BUDGET = 50


@attrs.define
class _Resolver:
    """Resolves the names of one formula and classifies its metric."""

    decl: _Declarations
    registry: Registry
    problems: list[Diagnostic]
    # Suggestions cost a comparison with every name: a file of thousands of unknown names gets
    # suggestions for the first ones only, so that it still compiles in seconds.
    suggestions_left: int = SUGGESTION_BUDGET
    _names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = list(self.decl.metrics) + list(self.decl.params)
        return self._names

    def suggest(self, name: str, pool: Iterable[str]) -> str | None:
        if self.suggestions_left <= 0:
            return None
        self.suggestions_left -= 1
        return did_you_mean(name, pool)

    def unknown(self, name: str, span: Span | None, what: str, pool: Iterable[str], hint: str | None = None) -> None:
        self.problems.append(error(f"unknown {what} '{name}'", span, self.suggest(name, pool) or hint,
                                   "unknown-name"))

    def is_aggregate_call(self, node: s.Expr) -> bool:
        if not isinstance(node, s.Call) or node.name not in self.registry.aggregates:
            return False
        if node.name not in self.registry.scalars:
            return True
        # min/max exist as both: the aggregate takes one argument that reads a source; the scalar takes several.
        fn = self.registry.aggregates[node.name]
        if fn.max_args is not None and len(node.args) > fn.max_args:
            return False
        return any(isinstance(n, s.Column) or (isinstance(n, s.Name) and n.name in self.decl.sources)
                   for a in node.args for n in s.walk(a))

    def metric(self, st: s.MetricDef, library: str | None) -> Metric:
        meta = _meta(st.meta, _METRIC_META, "a metric", self.problems)
        unit = meta.get("unit")
        if unit == CURRENCY:
            unit = self.decl.currency
        common = dict(label=meta.get("label"), description=meta.get("description"), unit=unit,
                      format=meta.get("format"), direction=meta.get("direction"), owner=meta.get("owner"),
                      level=meta.get("level"), controllable=meta.get("controllable"),
                      external=bool(meta.get("external", False)), library=library, span=st.name_span)
        if st.formula is None:
            return Metric(st.name, "group", **common)
        aggregates = [n for n in s.walk(st.formula) if self.is_aggregate_call(n)]
        if aggregates:
            source = self.base(st, aggregates)
            return Metric(st.name, "base", st.formula, source, st.where, params=self.params_of(st), **common)
        if st.where is not None:
            self.problems.append(error(
                f"'where' filters rows of a source, but '{st.name}' is a formula over metrics", st.where.span,
                "put the filter on the base metrics it uses (metric x = sum(orders.amount) where …)", "where"))
        inputs, shifts = self.derived(st)
        return Metric(st.name, "derived", st.formula, inputs=inputs, shifts=shifts, params=self.params_of(st),
                      **common)

    def params_of(self, st: s.MetricDef) -> tuple[str, ...]:
        nodes = list(s.walk(st.formula)) + (list(s.walk(st.where)) if st.where else [])
        return tuple(dict.fromkeys(n.name for n in nodes if isinstance(n, s.Name) and n.name in self.decl.params))

    # -- base metrics: aggregations over one source
    def base(self, st: s.MetricDef, aggregates: list[s.Call]) -> str | None:
        sources: dict[str, Span | None] = {}
        inside = {id(n) for call in aggregates for a in call.children() for n in s.walk(a)}
        for node in s.walk(st.formula):
            if isinstance(node, s.Call) and id(node) not in inside:
                self.check_call(node, aggregate=self.is_aggregate_call(node))
                if self.is_aggregate_call(node):
                    for arg in node.args:
                        if isinstance(arg, s.Name) and arg.name in self.decl.sources:
                            sources.setdefault(arg.name, arg.span)
            if id(node) in inside:
                self.row_level(node, sources, st.name, "aggregation")
            elif isinstance(node, s.Name | s.Shift) and node.name in self.decl.metrics:
                self.problems.append(error(
                    f"'{st.name}' aggregates a source and also reads the metric '{node.name}'", node.span,
                    f"split it: one metric for the aggregation, one formula combining it with '{node.name}'",
                    "mixed-metric"))
            elif isinstance(node, s.Column) and id(node) not in inside:
                self.problems.append(error(f"the column {node.to_source()} is read outside an aggregation",
                                           node.span, f"aggregate it, e.g. sum({node.to_source()})", "column"))
            elif isinstance(node, s.Name) and node.name not in self.decl.params and id(node) not in inside:
                self.unknown(node.name, node.span, "name", self.decl.params)
        if st.where is not None:
            for node in s.walk(st.where):
                self.row_level(node, sources, st.name, "filter", filter_=True)
        if len(sources) > 1:
            first, *others = sources
            self.problems.append(error(
                f"'{st.name}' reads columns of several sources: {', '.join(sources)}",
                sources[others[0]],
                f"a base metric aggregates one source; here it aggregates {first} — move the rest to a metric "
                f"of its own and combine them in a formula", "other-source"))
        return next(iter(sources), None)

    def row_level(self, node: s.Expr, sources: dict[str, Span | None], metric: str, role: str,
                  filter_: bool = False) -> None:
        if isinstance(node, s.Column):
            if node.source not in self.decl.sources:
                self.unknown(node.source, node.span, "source", self.decl.sources)
                return
            if sources and node.source not in sources and filter_:
                first = next(iter(sources))
                self.problems.append(error(
                    f"the filter of '{metric}' reads {node.to_source()}, a column of another source than {first}",
                    node.span, f"filter on a column of {first}; a filter cannot join sources", "other-source"))
                return
            sources.setdefault(node.source, node.span)
        elif isinstance(node, s.Name):
            if node.name in self.decl.params or node.name in self.decl.sources:
                return
            if node.name in self.decl.metrics:
                self.problems.append(error(f"the {role} of '{metric}' reads the metric '{node.name}'", node.span,
                                           "filters and aggregations read source columns (orders.status) "
                                           "and params only", "mixed-metric"))
                return
            owners = list(sources) or list(self.decl.sources)
            columns = [f"{src}.{node.name}" for src in owners]
            guess = self.suggest(node.name, self.names())
            self.problems.append(error(
                f"unknown name '{node.name}'", node.span,
                guess or (f"columns are written with their source: {' or '.join(columns[:3])}" if columns else None),
                "unknown-name"))
        elif isinstance(node, s.Shift):
            self.problems.append(error(f"a time shift cannot be used in the {role} of '{metric}'", node.span,
                                       "shift metrics in formulas over metrics", "shift"))
        elif isinstance(node, s.Call):
            if node.name in self.registry.aggregates and self.is_aggregate_call(node):
                self.problems.append(error(f"aggregations cannot be nested: {node.name}() inside the {role} "
                                           f"of '{metric}'", node.span, "aggregate row-level values only",
                                           "nested-aggregate"))
            elif getattr(self.registry.scalars.get(node.name), "window", False):
                self.problems.append(error(f"{node.name}() compares periods, so it works on metrics, not on the "
                                           f"rows inside the {role} of '{metric}'", node.span,
                                           f"apply it to the metric: {node.name}(my_metric)", "window-in-rows"))
            else:
                self.check_call(node, aggregate=False)
        elif isinstance(node, s.Binary) and node.op in ("==", "!=") and any(
                isinstance(side, s.Literal) and side.value is None for side in (node.left, node.right)):
            self.problems.append(error(f"'{node.to_source()}' is never true: nothing equals null", node.span,
                                       "test for missing values with 'is null' or 'is not null'", "null-compare"))

    # -- derived metrics: formulas over metrics
    def derived(self, st: s.MetricDef) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
        inputs: dict[str, None] = {}
        shifts: dict[tuple[str, int], None] = {}
        for node in s.walk(st.formula):
            match node:
                case s.Name(name=name):
                    if name in self.decl.metrics:
                        inputs[name] = None
                    elif name in self.decl.sources:
                        self.problems.append(error(f"'{name}' is a source, not a metric", node.span,
                                                   f"aggregate it, e.g. count({name})", "source-as-metric"))
                    elif name not in self.decl.params:
                        self.unknown(name, node.span, "name", self.names())
                case s.Shift(name=name, offset=offset):
                    if name not in self.decl.metrics:
                        self.unknown(name, node.span, "metric", self.decl.metrics)
                    elif offset >= 0:
                        self.problems.append(error(
                            f"{node.to_source()} looks {'at the same period' if offset == 0 else 'into the future'}",
                            node.span, f"shift backwards: {name}[-1] is the previous period", "shift"))
                    else:
                        inputs[name] = None
                        shifts[(name, offset)] = None
                case s.Column():
                    self.problems.append(error(
                        f"'{st.name}' is a formula over metrics but reads the column {node.to_source()}", node.span,
                        f"aggregate the column in a base metric, e.g. metric x = sum({node.to_source()})",
                        "column"))
                case s.Call():
                    self.check_call(node, aggregate=False)
        return tuple(inputs), tuple(shifts)

    def check_call(self, node: s.Call, aggregate: bool) -> None:
        table: dict = self.registry.aggregates if aggregate else self.registry.scalars
        fn: Aggregate | Scalar | None = table.get(node.name)
        if fn is None:
            if not aggregate and node.name in self.registry.aggregates:
                self.problems.append(error(
                    f"{node.name}() aggregates a source column, but here it is given metrics", node.span,
                    f"write {node.name}(source.column) in a base metric", "aggregate-on-metrics"))
                return
            pool = list(self.registry.scalars) + list(self.registry.aggregates)
            self.unknown(node.name, node.span, "function", pool,
                         hint="see `metrictree plugins` for the functions installed")
            return
        count = len(node.args)
        most = fn.max_args
        if count < fn.min_args or (most is not None and count > most):
            want = (f"{fn.min_args}" if most == fn.min_args else
                    f"{fn.min_args} or more" if most is None else f"{fn.min_args} to {most}")
            self.problems.append(error(f"{node.name}() takes {want} argument(s), got {count}", node.span,
                                       fn.doc or None, "arity"))
        for key, value in node.kwargs:
            if key not in fn.keywords:
                allowed = ", ".join(fn.keywords) or "none"
                self.problems.append(error(f"{node.name}() has no option '{key}'", value.span,
                                           did_you_mean(key, fn.keywords) or f"its options: {allowed}", "keyword"))


# --------------------------------------------------------------------------- graph


def _graph(metrics: dict[str, Metric], decl: _Declarations, problems: list[Diagnostic]) -> tuple[
        dict[tuple[str, str], str], list[Link]]:
    """Every edge ``(parent, child) → kind`` in the order added, and the links; cycles are reported."""
    edges: dict[tuple[str, str], str] = {}
    links: list[Link] = []
    for metric in metrics.values():
        for child in metric.inputs:
            edges.setdefault((metric.name, child), "formula")
            links.append(Link(metric.name, child, "formula", metric.span))
    for st in decl.links:
        if id(st) in decl.library_links and not all(n in metrics for n in (st.parent, *st.children)):
            continue  # a library's link between metrics this tree did not import
        spans = st.name_spans or (None,) * (len(st.children) + 1)
        if st.parent not in metrics:
            problem = ("is a param, not a metric" if st.parent in decl.params else None)
            if problem:
                problems.append(error(f"'{st.parent}' {problem}", spans[0], "links join metrics", "link"))
            else:
                problems.append(error(f"unknown metric '{st.parent}'", spans[0],
                                      did_you_mean(st.parent, metrics), "unknown-name"))
            continue
        for child, span in zip(st.children, spans[1:], strict=False):
            if child not in metrics:
                problems.append(error(f"unknown metric '{child}'", span, did_you_mean(child, metrics), "unknown-name"))
            elif child == st.parent:
                problems.append(error(f"'{child}' cannot influence itself", span, "remove it from the link", "cycle"))
            elif (st.parent, child) in edges:
                kind = edges[st.parent, child]
                problems.append(warning(
                    f"'{child}' is already {'an' if kind == 'influence' else 'a'} {kind} child of '{st.parent}'", span,
                    "remove the redundant influence link" if kind == "formula" else "remove the repeated link",
                    "redundant-link"))
            else:
                edges[st.parent, child] = "influence"
                links.append(Link(st.parent, child, "influence", span))
    children: dict[str, list[str]] = {name: [] for name in metrics}
    for parent, child in edges:
        children.setdefault(parent, []).append(child)
    try:
        graphlib.TopologicalSorter(children).prepare()
    except graphlib.CycleError:
        _cycles(metrics, edges, problems)
    return edges, links


def _cycles(metrics: dict[str, Metric], edges: dict[tuple[str, str], str], problems: list[Diagnostic]) -> None:
    """One error per cycle (rare: NetworkX is imported only then)."""
    import networkx as nx

    graph = nx.DiGraph()
    for name, metric in metrics.items():
        graph.add_node(name, metric=metric)
    for (parent, child), kind in edges.items():
        graph.add_edge(parent, child, kind=kind)
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1 or any(graph.has_edge(n, n) for n in component):
            order = [n for n in metrics if n in component]
            cycle = nx.find_cycle(graph.subgraph(component), source=order[0])
            path = " → ".join([a for a, _ in cycle] + [cycle[0][0]])
            kinds = {graph.edges[a, b]["kind"] for a, b in cycle}
            via = "formulas and influence links" if len(kinds) > 1 else f"{kinds.pop()}s"
            problems.append(error(f"cycle through {via}: {path}", metrics[cycle[0][0]].span,
                                  "a metric cannot depend on itself; break the cycle (for running totals over time "
                                  "use cumulative_sum(m) or m[-1])", "cycle"))


# --------------------------------------------------------------------------- units


def _units(metrics: dict[str, Metric], problems: list[Diagnostic]) -> None:
    inferred: dict[str, str | None] = {}

    def unit_of(node: s.Expr) -> str | None:
        """``None`` = unknown, ``""`` = a plain number (literals, params)."""
        match node:
            case s.Literal():
                return ""
            case s.Name(name=n) | s.Shift(name=n):
                if n in metrics:
                    return metric_unit(n)
                return ""
            case s.Unary(op="-", operand=x):
                return unit_of(x)
            case s.Binary(op="+" | "-" as op, left=a, right=b):
                ua, ub = unit_of(a), unit_of(b)
                if ua and ub and ua != ub:
                    problems.append(error(f"unit clash: {a.to_source()} is in {ua} but {b.to_source()} is in {ub}",
                                          node.span, f"'{op}' needs both sides in the same unit; convert one side "
                                          "or fix a unit declaration", "unit"))
                return ua if ua is not None and ub is not None else (ua or ub or None)
            case s.Binary(op="*", left=a, right=b):
                ua, ub = unit_of(a), unit_of(b)
                if ua is None or ub is None:
                    return None
                return ua or ub if not (ua and ub) or "%" in (ua, ub) else f"{ua}*{ub}"
            case s.Binary(op="/", left=a, right=b):
                ua, ub = unit_of(a), unit_of(b)
                if ua is None or ub is None:
                    return None
                if ua == ub:
                    return ""
                return ua if not ub or ub == "%" else f"{ua or '1'}/{ub}"
            case s.Call(name="min" | "max" | "coalesce", args=args) if len(args) > 1:
                units = [unit_of(a) for a in args]
                known = [u for u in units if u]
                if len(set(known)) > 1:
                    problems.append(error(f"unit clash in {node.name}(): {', '.join(sorted(set(known)))}", node.span,
                                          "all arguments must share a unit", "unit"))
                return known[0] if known else None
            case _:
                return None

    def metric_unit(name: str) -> str | None:
        if name not in inferred:
            inferred[name] = None  # guards against cycles, reported elsewhere
            metric = metrics[name]
            found = unit_of(metric.formula) if metric.kind == "derived" else None
            declared = metric.unit
            if declared and found and "/" not in found and "*" not in found and found != declared:
                problems.append(error(f"'{name}' is declared in {declared} but its formula gives {found}",
                                      metric.span, f"change its unit to {found} or fix the formula", "unit"))
            inferred[name] = declared or found
        return inferred[name]

    # Dependencies first, so metric_unit never recurses more than one metric deep (chains may be thousands long).
    for name in _dependency_order(metrics):
        metric_unit(name)


def _dependency_order(metrics: dict[str, Metric]) -> list[str]:
    """Every metric after the metrics its formula reads, walked without recursion (cycles are cut)."""
    order: list[str] = []
    seen: set[str] = set()
    for root in metrics:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(metrics[root].inputs))]
        while stack:
            name, children = stack[-1]
            for child in children:
                if child in metrics and child not in seen:
                    seen.add(child)
                    stack.append((child, iter(metrics[child].inputs)))
                    break
            else:
                stack.pop()
                order.append(name)
    return order


# --------------------------------------------------------------------------- lints


def _lints(metrics: dict[str, Metric], edges: dict[tuple[str, str], str], ruled: set[str],
           problems: list[Diagnostic]) -> None:
    own = [m for m in metrics.values() if m.library is None]
    has_parent = {child for _, child in edges}
    has_child = {parent for parent, _ in edges}
    roots = [m for m in own if m.name not in has_parent]
    if len(roots) > 1:
        for metric in roots:
            if metric.level != "strategic" and metric.name not in ruled:
                problems.append(warning(
                    f"metric '{metric.name}' is not used by any other metric, link, target or alert", metric.span,
                    "use it in a formula, link it under a parent with `parent <~ "
                    f"{metric.name}`, or mark it `level strategic` if it is a top goal", "unused"))
    for metric in own:
        if metric.level == "strategic" and metric.name not in has_child:
            problems.append(warning(
                f"strategic metric '{metric.name}' has no drivers", metric.span,
                f"decompose it into a formula over metrics or link drivers with `{metric.name} <~ …`", "no-drivers"))
        if metric.name not in has_child and metric.controllable is False and not metric.external:
            problems.append(warning(
                f"'{metric.name}' is a leaf that its owner cannot control", metric.span,
                "mark it `external` if it is driven from outside (market, tax policy), or give it drivers",
                "uncontrollable-leaf"))


# --------------------------------------------------------------------------- rules


def _dimension_check(where: s.Expr | None, dimensions: set[str], what: str, problems: list[Diagnostic]) -> None:
    if where is None:
        return
    for node in s.walk(where):
        if isinstance(node, s.Name) and node.name not in dimensions:
            problems.append(error(f"unknown dimension '{node.name}' in the slice of {what}", node.span,
                                  did_you_mean(node.name, dimensions) or
                                  f"the tree's dimensions: {', '.join(sorted(dimensions)) or 'none'}", "unknown-name"))
        elif isinstance(node, s.Column | s.Shift | s.Call):
            problems.append(error(f"the slice of {what} can only compare dimensions with values", node.span,
                                  'e.g. where segment == "new"', "slice"))


def _rule_metrics(condition: s.Expr, metrics: dict[str, Metric], decl: _Declarations, what: str,
                  resolver: _Resolver) -> tuple[str, ...]:
    used: dict[str, None] = {}
    for node in s.walk(condition):
        if isinstance(node, s.Name | s.Shift):
            if node.name in metrics:
                used[node.name] = None
            elif not (isinstance(node, s.Name) and node.name in decl.params):
                resolver.unknown(node.name, node.span, "metric", metrics)
        elif isinstance(node, s.Call):
            resolver.check_call(node, aggregate=False)
        elif isinstance(node, s.Column):
            resolver.problems.append(error(f"{what} reads the column {node.to_source()}", node.span,
                                           "rules are on metrics; make a metric for it", "column"))
    return tuple(used)


def _is_condition(expr: s.Expr) -> bool:
    return (isinstance(expr, s.Binary) and expr.op in (*s.COMPARISONS, "and", "or")
            or isinstance(expr, s.Unary) and expr.op == "not" or isinstance(expr, s.InList | s.IsNull))


def _check_period(text: str, span: Span | None, problems: list[Diagnostic]) -> None:
    from . import periods
    from .errors import UsageError

    try:
        periods.date_range(text)
    except UsageError as exc:
        problems.append(error(exc.diagnostics[0].message, span, exc.diagnostics[0].hint, "period"))


def _check_target_periods(st: s.TargetStmt, problems: list[Diagnostic]) -> None:
    """The start before the deadline, and the checkpoints between them."""
    from . import periods
    from .errors import UsageError

    try:
        first, deadline = periods.date_range(st.deadline)
        start = periods.date_range(st.start)[0] if st.start else None
        if start is not None and start > deadline:
            problems.append(error(f"the target starts ({st.start}) after its deadline ({st.deadline})", st.span,
                                  "swap them, or move the deadline later", "target"))
        for period, _ in st.checkpoints:
            day = periods.date_range(period)[1]
            if day > deadline or (start is not None and day <= start):
                problems.append(error(f"checkpoint {period} is outside the target's span "
                                      f"({st.start or 'start'} … {st.deadline})", st.span,
                                      "put checkpoints after the start and no later than the deadline", "target"))
    except UsageError:
        pass  # invalid periods are reported by _check_period


def _targets(decl: _Declarations, metrics: dict[str, Metric], dims: set[str], resolver: _Resolver) -> list[Target]:
    targets = []
    for st in decl.targets:
        cond = st.condition
        if not (isinstance(cond, s.Binary) and cond.op in s.COMPARISONS and isinstance(cond.left, s.Name)
                and isinstance(cond.right, s.Literal) and isinstance(cond.right.value, int | float)):
            resolver.problems.append(error("a target compares one metric with a number", cond.span,
                                           "e.g. target open_rate >= 30% by 2027-03-31", "target"))
            continue
        if cond.left.name not in metrics:
            resolver.unknown(cond.left.name, cond.left.span, "metric", metrics)
            continue
        if metrics[cond.left.name].kind == "group":
            resolver.problems.append(error(f"'{cond.left.name}' is a grouping node with no values: it cannot have "
                                           "a target", cond.left.span, "put the target on one of its drivers",
                                           "group-rule"))
            continue
        for text in (st.deadline, st.start, *(p for p, _ in st.checkpoints)):
            if text is not None:
                _check_period(text, st.span, resolver.problems)
        _dimension_check(st.where, dims, "a target", resolver.problems)
        meta = _meta(st.meta, {"label", "description"}, "a target", resolver.problems)
        if st.every is not None and st.every not in GRAINS:
            resolver.problems.append(error(f"unknown checkpoint cadence '{st.every}'", st.span,
                                           did_you_mean(st.every, GRAINS) or f"use one of: {', '.join(GRAINS)}",
                                           "grain"))
        _check_target_periods(st, resolver.problems)
        targets.append(Target(cond.left.name, cond.op, float(cond.right.value), st.deadline, st.start, st.every,
                              st.checkpoints, st.where, cond, meta.get("label"), span=st.span,
                              description=meta.get("description")))
    return targets


def _alerts(decl: _Declarations, metrics: dict[str, Metric], dims: set[str], resolver: _Resolver) -> list[Alert]:
    alerts = []
    for st in decl.alerts:
        used = _rule_metrics(st.condition, metrics, decl, "an alert", resolver)
        if not _is_condition(st.condition):
            resolver.problems.append(error(f"'{st.condition.to_source()}' is not a condition", st.condition.span,
                                           "compare a metric with a value, e.g. alert churn_rate > 5%", "alert"))
        for name in used:
            if metrics[name].kind == "group":
                resolver.problems.append(error(f"'{name}' is a grouping node with no values: an alert cannot "
                                               "watch it", st.condition.span, "watch one of its drivers",
                                               "group-rule"))
        if not used:
            resolver.problems.append(error("an alert must read at least one metric", st.condition.span,
                                           "e.g. alert churn_rate > 5%", "alert"))
        _dimension_check(st.where, dims, "an alert", resolver.problems)
        meta = _meta(st.meta, {"severity", "message", "label", "description"}, "an alert", resolver.problems)
        alerts.append(Alert(st.condition, used, st.where, meta.get("severity", "warning"), meta.get("message"),
                            span=st.span, label=meta.get("label"), description=meta.get("description")))
    return alerts


# --------------------------------------------------------------------------- the pipeline


def compile_module(module: s.Module, registry: Registry | None = None, file: str | None = None,
                   include_paths: Sequence[str | os.PathLike] = ()) -> Tree:
    """Run every pass over a parsed module; raise `CompileError` listing every error found."""
    registry = registry or default_registry()
    problems: list[Diagnostic] = []
    imports = _Imports()
    folders = [Path(p).expanduser().resolve() for p in include_paths]
    items = _gather(module, registry, problems, imports, folders)
    decl = _declare(items, problems)
    for statement in imports.bound:
        binding.check_sources(statement, decl.sources, problems)
    _prune_libraries(decl, imports, problems)
    resolver = _Resolver(decl, registry, problems)
    metrics = {name: resolver.metric(st, library) for name, (st, library) in decl.metrics.items()}
    edges, links = _graph(metrics, decl, problems)
    _units(metrics, problems)
    dims = {d for src in decl.sources.values() for d in src.dimensions}
    targets = _targets(decl, metrics, dims, resolver)
    alerts = _alerts(decl, metrics, dims, resolver)
    ruled = {t.metric for t in targets} | {m for a in alerts for m in a.metrics}
    _lints(metrics, edges, ruled, problems)
    if not metrics and not any(p.severity == "error" for p in problems):
        start = Span(module.source, 1, 1, 1, 2) if module.source is not None else None
        problems.append(error("the tree defines no metrics", start, "add at least one `metric name = …`", "empty"))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise CompileError(sorted(problems, key=_position))
    header = decl.header
    name = header.name if header else (Path(file).stem if file else "tree")
    return Tree(name=name, title=header.title if header else None, grain=decl.grain, sources=dict(decl.sources),
                params=dict(decl.params), metrics=metrics, links=tuple(links), targets=tuple(targets),
                alerts=tuple(alerts), adjacency=tuple((p, c, k) for (p, c), k in edges.items()),
                warnings=tuple(sorted(problems, key=_position)), file=file,
                dimensions=tuple(dict.fromkeys(d for src in decl.sources.values() for d in src.dimensions)))


def _position(d: Diagnostic) -> tuple:
    span = d.span
    return (span.file, span.line, span.column) if span else ("", 0, 0)
