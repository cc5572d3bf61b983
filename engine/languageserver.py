"""``metrictree lsp``: a language server for tree files, over stdio (pygls).

What an editor gets:

- diagnostics — the errors and warnings of ``metrictree check``, same messages, same spans;
- hover — a metric's formula, label, unit, description and the library it came from;
  a source's columns; a param's value; a function's one-line doc;
- go to definition — of metrics, sources and params (into included files and bundled
  libraries too), of ``include "file"`` and ``import library``;
- completion — metric, source, param and function names, and after ``source.`` the
  columns the tree knows for that source;
- formatting — through `metrictree.formatting` (``metrictree fmt``).

The analysis works on what the author is typing: when the tree does not compile, the
names still come from the parsed statements (and from whatever parses of the files and
libraries it pulls in).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path

import attrs
from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from . import __version__, syntax as s
from .compiling import compile_module
from .errors import Diagnostic, MetrictreeError, Span
from .formatting import format_text
from .model import Tree
from .parsing import parse
from .pluginmanager import registry as default_registry

KEYWORDS = ("tree", "grain", "import", "include", "param", "source", "metric", "target", "alert", "where", "by",
            "from", "every", "checkpoints", "time", "dimensions", "entity", "label", "description", "unit", "format",
            "direction", "owner", "level", "controllable", "external", "severity", "message", "and", "or", "not",
            "in", "is", "null", "true", "false")


# --------------------------------------------------------------------------- analysis


@attrs.frozen
class Symbol:
    """A name a tree defines: a metric, source or param, where it is and what it says."""

    kind: str
    name: str
    statement: s.Statement
    span: Span | None
    library: str | None = None


@attrs.frozen
class Analysis:
    """One document as the editor has it: its problems, its names, its compiled tree when it compiles."""

    path: str
    diagnostics: tuple[Diagnostic, ...]
    symbols: dict[str, Symbol]
    columns: dict[str, tuple[str, ...]]
    module: s.Module | None
    tree: Tree | None


def analyse(text: str, path: str) -> Analysis:
    """Parse, gather names and compile a document; never raises for a mistake in it."""
    try:
        module = parse(text, path)
    except MetrictreeError as exc:
        return Analysis(path, exc.diagnostics, {}, {}, None, None)
    symbols: dict[str, Symbol] = {}
    columns: dict[str, dict[str, None]] = {}
    _collect(module, None, symbols, columns, set())
    tree = None
    try:
        tree = compile_module(module, file=path)
        diagnostics = tree.warnings
    except MetrictreeError as exc:
        diagnostics = exc.diagnostics
    return Analysis(path, tuple(diagnostics), symbols,
                    {name: tuple(cols) for name, cols in columns.items()}, module, tree)


def _collect(module: s.Module, library: str | None, symbols: dict[str, Symbol],
             columns: dict[str, dict[str, None]], seen: set[str]) -> None:
    """Every name of the module, its includes and its imported libraries (the module's own first)."""
    later = []
    for st in module.statements:
        match st:
            case s.MetricDef():
                symbols.setdefault(st.name, Symbol("metric", st.name, st, st.name_span or st.span, library))
                for expr in (st.formula, st.where):
                    for node in s.walk(expr) if expr is not None else ():
                        if isinstance(node, s.Column):
                            columns.setdefault(node.source, {})[node.column] = None
            case s.SourceDef():
                symbols.setdefault(st.name, Symbol("source", st.name, st, st.span, library))
                known = columns.setdefault(st.name, {})
                for name in (st.time, *st.dimensions, st.entity):
                    if name:
                        known[name] = None
            case s.ParamDef():
                symbols.setdefault(st.name, Symbol("param", st.name, st, st.span, library))
            case s.IncludeStmt():
                later.append(st)
            case s.ImportStmt():
                later.append(st)
                for binding in getattr(st, "bindings", ()):
                    for column in binding.columns:
                        for node in s.walk(column.expr):
                            if isinstance(node, s.Column):
                                columns.setdefault(node.source, {})[node.column] = None
    for st in later:
        if isinstance(st, s.IncludeStmt):
            target = include_path(module, st)
            if target is not None and str(target) not in seen:
                seen.add(str(target))
                try:
                    _collect(parse(target.read_text("utf-8"), str(target)), library, symbols, columns, seen)
                except (OSError, MetrictreeError):
                    pass  # compile reports it
        else:
            for name in st.libraries:
                found = default_registry().libraries.get(name)
                if found is not None and f"<library {name}>" not in seen:
                    seen.add(f"<library {name}>")
                    try:
                        _collect(parse(found.text, f"<library {name}>"), name, symbols, columns, seen)
                    except MetrictreeError:
                        pass


def include_path(module: s.Module, st: s.IncludeStmt) -> Path | None:
    name = module.source.name if module.source else ""
    base = Path(name).parent if name and not name.startswith("<") else Path.cwd()
    path = (base / st.path).resolve()
    return path if path.is_file() else None


def library_path(name: str) -> Path | None:
    """The file of a bundled library, when the loaded library is that file's text."""
    library = default_registry().libraries.get(name)
    candidate = files("metrictree.plugins").joinpath("libraries", f"{name}.tree")
    try:
        if library is not None and candidate.is_file() and candidate.read_text("utf-8") == library.text:
            return Path(str(candidate))
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------- positions


def lsp_range(span: Span | None) -> lsp.Range:
    if span is None:
        return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    return lsp.Range(lsp.Position(span.line - 1, span.column - 1), lsp.Position(span.end_line - 1, span.end_column - 1))


def lsp_diagnostic(d: Diagnostic, path: str) -> lsp.Diagnostic:
    """A metrictree diagnostic as the editor shows it (a problem in another file is shown at the top)."""
    message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
    span = d.span
    if span is not None and span.file != path:
        message = f"{span}: {message}"
        span = None
    severity = lsp.DiagnosticSeverity.Error if d.severity == "error" else lsp.DiagnosticSeverity.Warning
    return lsp.Diagnostic(lsp_range(span), message, severity=severity, code=d.code, source="metrictree")


_WORD = re.compile(r"(?!\d)\w+")


def word_at(line: str, character: int) -> tuple[str | None, str, int, int]:
    """``(source, name, start, end)`` of the word under the cursor: ``orders.amount`` gives ``("orders", "amount")``."""
    for match in _WORD.finditer(line):
        if match.start() <= character <= match.end():
            before = line[:match.start()]
            owner = re.search(r"((?!\d)\w+)\.$", before)
            return (owner.group(1) if owner else None), match.group(), match.start(), match.end()
    return None, "", character, character


def _location(span: Span | None, library: str | None) -> lsp.Location | None:
    if span is None:
        return None
    if span.file.startswith("<library "):
        path = library_path(library or span.file[len("<library "):-1])
        if path is None:
            return None
        return lsp.Location(from_fs_path(str(path)), lsp_range(span))
    if span.file.startswith("<"):
        return None
    return lsp.Location(from_fs_path(str(Path(span.file).resolve())), lsp_range(span))


# --------------------------------------------------------------------------- hover text


def describe(analysis: Analysis, symbol: Symbol) -> str:
    st = symbol.statement
    lines = []
    if symbol.kind == "metric":
        metric = analysis.tree.metrics.get(symbol.name) if analysis.tree else None
        meta = {e.key: e.value for e in st.meta}
        # The compiled formula, when there is one: for a library metric it is the one bound to the tree's columns.
        source_formula, source_where = (metric.formula, metric.where) if metric else (st.formula, st.where)
        formula = source_formula.to_source() if source_formula is not None else None
        if formula and source_where is not None:
            formula += f" where {source_where.to_source()}"
        label = metric.label if metric else meta.get("label")
        kind = metric.kind if metric else ("group" if st.formula is None else "metric")
        lines.append(f"**{symbol.name}**" + (f" — {label}" if label else "") + f" ({kind} metric)")
        if formula:
            lines += ["", "```metrictree", f"{symbol.name} = {formula}", "```"]
        unit = metric.unit if metric else meta.get("unit")
        description = metric.description if metric else meta.get("description")
        facts = [f"unit: {unit}"] if unit else []
        facts += [f"{key}: {meta[key]}" for key in ("direction", "level", "owner") if key in meta]
        if facts:
            lines += ["", " · ".join(facts)]
        if description:
            lines += ["", description]
    elif symbol.kind == "source":
        lines.append(f"**{symbol.name}** (source)")
        label = next((e.value for e in st.meta if e.key == "label"), None)
        if label:
            lines[0] += f" — {label}"
        facts = [f"time: {st.time}"] if st.time else []
        facts += [f"dimensions: {', '.join(st.dimensions)}"] if st.dimensions else []
        facts += [f"entity: {st.entity}"] if st.entity else []
        cols = [c for c in analysis.columns.get(symbol.name, ()) if c not in (st.time, st.entity, *st.dimensions)]
        facts += [f"columns read: {', '.join(cols)}"] if cols else []
        lines += ["", " · ".join(facts)] if facts else []
    else:
        value = f"{st.value * 100:g}%" if st.percent else f"{st.value:g}"
        lines.append(f"**{symbol.name}** = {value} (param)")
    if symbol.library:
        lines += ["", f"from the library `{symbol.library}`"]
    return "\n".join(lines)


def describe_function(name: str) -> str | None:
    registry = default_registry()
    function = registry.aggregates.get(name) or registry.scalars.get(name)
    if function is None:
        return None
    kind = "aggregate function" if name in registry.aggregates else "function"
    owner = registry.owners.get((kind, name)) or next((p for (k, n), p in registry.owners.items() if n == name), None)
    text = f"**{name}()** ({kind}" + (f", from the plugin `{owner}`" if owner else "") + ")"
    return text + (f"\n\n{function.doc}" if getattr(function, "doc", "") else "")


# --------------------------------------------------------------------------- the server


def make_server() -> LanguageServer:
    server = LanguageServer("metrictree", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Full)
    analyses: dict[str, Analysis] = {}

    def refresh(uri: str) -> Analysis:
        document = server.workspace.get_text_document(uri)
        path = to_fs_path(uri) or uri
        analysis = analyse(document.source, path)
        previous = analyses.get(uri)
        if analysis.module is None and previous is not None:
            # Half-typed text does not parse: complete and hover with the names of the last version that did.
            analysis = attrs.evolve(analysis, symbols=previous.symbols, columns=previous.columns,
                                    tree=previous.tree)
        analyses[uri] = analysis
        server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri, [lsp_diagnostic(d, path) for d in analysis.diagnostics], version=document.version))
        return analysis

    def current(uri: str) -> Analysis:
        return analyses.get(uri) or refresh(uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
        refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
        refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: lsp.DidSaveTextDocumentParams) -> None:
        refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
        analyses.pop(params.text_document.uri, None)

    def line_of(uri: str, position: lsp.Position) -> str:
        lines = server.workspace.get_text_document(uri).lines
        return lines[position.line] if position.line < len(lines) else ""

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(params: lsp.HoverParams) -> lsp.Hover | None:
        uri = params.text_document.uri
        analysis = current(uri)
        owner, word, start, end = word_at(line_of(uri, params.position), params.position.character)
        if not word:
            return None
        text = None
        if owner is not None and owner in analysis.symbols:
            source = analysis.symbols[owner]
            role = "time column" if word == source.statement.time else "entity" if word == source.statement.entity \
                else "dimension" if word in source.statement.dimensions else "column"
            text = f"**{owner}.{word}** — {role} of the source `{owner}`"
        elif word in analysis.symbols:
            text = describe(analysis, analysis.symbols[word])
        else:
            text = describe_function(word)
        if text is None:
            return None
        line = params.position.line
        return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, text),
                         lsp.Range(lsp.Position(line, start), lsp.Position(line, end)))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(params: lsp.DefinitionParams) -> list[lsp.Location] | None:
        uri = params.text_document.uri
        analysis = current(uri)
        line = line_of(uri, params.position)
        owner, word, _, _ = word_at(line, params.position.character)
        statement = _statement_at(analysis, params.position.line + 1)
        if isinstance(statement, s.IncludeStmt) and analysis.module is not None:
            target = include_path(analysis.module, statement)
            return [lsp.Location(from_fs_path(str(target)), lsp_range(None))] if target else None
        if isinstance(statement, s.ImportStmt) and word in statement.libraries:
            target = library_path(word)
            return [lsp.Location(from_fs_path(str(target)), lsp_range(None))] if target else None
        name = owner if owner is not None and owner in analysis.symbols else word
        symbol = analysis.symbols.get(name)
        if symbol is None:
            return None
        location = _location(symbol.span, symbol.library)
        return [location] if location else None

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["."]))
    def completion(params: lsp.CompletionParams) -> lsp.CompletionList:
        uri = params.text_document.uri
        analysis = current(uri)
        line = line_of(uri, params.position)[:params.position.character]
        dotted = re.search(r"((?!\d)\w+)\.(\w*)$", line)
        if dotted:
            cols = analysis.columns.get(dotted.group(1), ())
            return lsp.CompletionList(False, [lsp.CompletionItem(c, kind=lsp.CompletionItemKind.Field,
                                                                 detail=f"column of {dotted.group(1)}")
                                              for c in cols])
        return lsp.CompletionList(False, list(_completions(analysis)))

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def formatting(params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
        document = server.workspace.get_text_document(params.text_document.uri)
        try:
            formatted = format_text(document.source, to_fs_path(params.text_document.uri) or "<document>")
        except MetrictreeError:
            return None  # the diagnostics already say why it does not parse
        if formatted == document.source:
            return []
        end = lsp.Position(len(document.lines), 0)
        return [lsp.TextEdit(lsp.Range(lsp.Position(0, 0), end), formatted)]

    return server


def _statement_at(analysis: Analysis, line: int) -> s.Statement | None:
    if analysis.module is None:
        return None
    for st in analysis.module.statements:
        span = st.span
        if span is not None and span.line <= line <= span.end_line:
            return st
    return None


def _completions(analysis: Analysis) -> Iterable[lsp.CompletionItem]:
    kinds = {"metric": lsp.CompletionItemKind.Variable, "source": lsp.CompletionItemKind.Class,
             "param": lsp.CompletionItemKind.Constant}
    for symbol in analysis.symbols.values():
        label = next((e.value for e in symbol.statement.meta if e.key == "label"), None) \
            if hasattr(symbol.statement, "meta") else None
        detail = symbol.kind + (f" from {symbol.library}" if symbol.library else "") + (f" — {label}" if label else "")
        yield lsp.CompletionItem(symbol.name, kind=kinds[symbol.kind], detail=detail)
    registry = default_registry()
    for table, what in ((registry.aggregates, "aggregate function"), (registry.scalars, "function")):
        for name, function in table.items():
            yield lsp.CompletionItem(name, kind=lsp.CompletionItemKind.Function, detail=what,
                                     documentation=getattr(function, "doc", None) or None)
    for word in KEYWORDS:
        yield lsp.CompletionItem(word, kind=lsp.CompletionItemKind.Keyword)


def serve() -> None:
    """Run the language server on stdin and stdout until the editor closes it."""
    make_server().start_io()


__all__ = ["Analysis", "analyse", "make_server", "serve"]
