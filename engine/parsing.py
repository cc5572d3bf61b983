"""Parse tree-file text into syntax nodes, or into a `TreeSyntaxError` a person can act on.

The grammar is package data (``metrictree.grammars/metrictree.lark``), loaded once.
Lark's own exceptions never leave this module: they become diagnostics with the
file, line and column, the line with a caret, and a hint in words ("expected a
name or '('", "did you mean 'metric'?").
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.resources
import operator
import re
from collections.abc import Iterator

import attrs
import lark
import lark.grammar
from lark import Lark, Token
from lark.lexer import PatternStr

from . import syntax as s
from .errors import Diagnostic, SourceFile, Span, TreeSyntaxError, did_you_mean, error


@functools.lru_cache(maxsize=1)
def grammar() -> Lark:
    text = importlib.resources.files("metrictree.grammars").joinpath("metrictree.lark").read_text("utf-8")
    # cache=True: the LALR tables are computed once per grammar and lark version, then loaded from a file in
    # the temporary folder (a third of the start-up of `metrictree check` otherwise). Positions are tracked by
    # `_Reduce`, which builds syntax nodes as the parser reduces, so lark builds no parse tree.
    return Lark(text, parser="lalr", maybe_placeholders=True, cache=True, lexer_callbacks={"NAME": _bare})


def _bare(token: lark.Token) -> lark.Token:
    """A name written in backticks (`` `Order Date` ``) stands for the text between them."""
    return token.update(value=token[1:-1]) if token.startswith("`") else token


MAX_NESTING = 200
"""How deeply constructs may nest (brackets, calls, ``not``, the terms of one sum): later stages walk
expressions recursively, and no real formula comes near this."""

INT64 = 2**63


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a big file is read and compiled.

    Parsing and compiling allocate hundreds of thousands of long-lived, acyclic objects; the collector
    would walk them again and again (a 50k-metric tree took 33 s with it, 5 s without). Objects are still
    freed by reference counting, and the collector runs again afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse(text: str, filename: str = "<string>") -> s.Module:
    """Parse one tree file. Raises `TreeSyntaxError` with a friendly diagnostic."""
    with collector_paused():
        return _parse(text, filename)


def _parse(text: str, filename: str) -> s.Module:
    source = SourceFile(filename, text)
    build = _Build(source)
    parser = grammar().parse_interactive(text)
    # The LALR parser calls these at each reduction: syntax nodes are built as the text is read, with no
    # lark parse tree in between (half the time of a big file went to building and walking that tree).
    parser.parser_state.parse_conf.callbacks = {plan.rule: _FIRST if plan.passthrough else _Reduce(plan, build)
                                                for plan in _plans()}
    try:
        start = parser.resume_parse()
    except lark.exceptions.UnexpectedInput as exc:
        raise TreeSyntaxError(_diagnose(exc, source)) from None
    # A syntax error anywhere comes first, then too-deep nesting, then the first other problem in the text.
    if build.too_deep or build.problem:
        raise build.too_deep or build.problem
    return s.Module(tuple(start.value.children), source)


# --------------------------------------------------------------------------- reductions


@attrs.frozen
class _Plan:
    """How one grammar rule's matched symbols become the arguments of a `_Build` method.

    The same filtering lark applies when it builds a tree: anonymous tokens (keywords, punctuation) are
    dropped, ``_rules`` are inlined into their parent, ``[optional]`` parts left out become ``None``, and a
    ``?rule`` with one child is that child.
    """

    rule: lark.grammar.Rule
    name: str
    keep: tuple[tuple[int, bool, int], ...]  # (index, inline it, Nones to add before it)
    trailing: int  # Nones to add at the end
    expand1: bool
    inlined: bool
    adds_depth: bool

    @property
    def passthrough(self) -> bool:
        """A one-symbol ?rule (sum: term) passes its child up unchanged: most reductions are these."""
        return self.expand1 and len(self.rule.expansion) == 1 and self.keep == ((0, False, 0),) and not self.trailing


_FIRST = operator.itemgetter(0)


@functools.lru_cache(maxsize=1)
def _plans() -> tuple[_Plan, ...]:
    plans = []
    for rule in grammar().rules:
        empty = rule.options.empty_indices
        # empty_indices marks, between the symbols, where a left-out [optional] part stood.
        gaps = [len(ones) for ones in "".join(str(int(b)) for b in empty).split("0")] if empty else \
            [0] * (len(rule.expansion) + 1)
        keep, pending = [], 0
        for i, symbol in enumerate(rule.expansion):
            pending += gaps[i]
            if rule.options.keep_all_tokens or not (symbol.is_term and symbol.filter_out):
                keep.append((i, not symbol.is_term and symbol.name.startswith("_"), pending))
                pending = 0
        name = rule.alias or rule.options.template_source or rule.origin.name
        plans.append(_Plan(rule, str(name), tuple(keep), pending + gaps[len(rule.expansion)],
                           bool(rule.options.expand1 and not rule.alias), str(rule.origin.name).startswith("_"),
                           name != "arguments"))
    return tuple(plans)


class _Node:
    """A reduced rule on the parser's stack: its value and where it was written.

    ``line``…``end_column`` are the construct's own span; ``c*`` is its container, which grows to take in
    the brackets around a ``(sub-expression)``. These are the positions lark's ``propagate_positions``
    gives, so spans are the same as when a lark tree was built and transformed.
    """

    __slots__ = ("value", "empty", "line", "column", "end_line", "end_column", "cline", "ccolumn",
                 "cend_line", "cend_column", "depth")


def _start(children: list) -> tuple[int, int] | None:
    for child in children:
        if child.__class__ is _Node:
            if not child.empty:
                return child.cline, child.ccolumn
        elif isinstance(child, Token):
            return child.line, child.column
    return None


def _end(children: list) -> tuple[int, int] | None:
    for child in reversed(children):
        if child.__class__ is _Node:
            if not child.empty:
                return child.cend_line, child.cend_column
        elif isinstance(child, Token):
            return child.end_line, child.end_column
    return None


class _Reduce:
    """The callback for one rule: filter the matched symbols, track positions and depth, call `_Build`."""

    __slots__ = ("plan", "build", "method", "keep", "trailing")

    def __init__(self, plan: _Plan, build: _Build):
        self.plan = plan
        self.build = build
        self.keep = plan.keep
        self.trailing = plan.trailing
        self.method = None if plan.inlined else getattr(build, plan.name, None)

    def __call__(self, children: list):
        filtered: list = []
        for i, inline, nones in self.keep:
            if nones:
                filtered += [None] * nones
            if inline:
                if filtered:
                    filtered += children[i].value
                else:  # left recursion (statement*): grow the one list instead of copying it
                    filtered = children[i].value
            else:
                filtered.append(children[i])
        if self.trailing:
            filtered += [None] * self.trailing
        start, end = _start(children), _end(children)
        if self.plan.expand1 and len(filtered) == 1:
            child = filtered[0]
            if child.__class__ is _Node:
                if child.empty and start is not None:
                    child.line, child.column = start
                    child.end_line, child.end_column = end
                    child.empty = False
                if start is not None:
                    child.cline, child.ccolumn = start
                    child.cend_line, child.cend_column = end
            return child
        node = _Node()
        depth = 0
        for child in children:  # not `filtered`: an inlined child already holds the depth of what it inlines
            if child.__class__ is _Node and child.depth > depth:
                depth = child.depth
        if self.plan.inlined:
            node.depth = depth
        else:
            node.depth = depth = depth + self.plan.adds_depth
        if start is None:
            node.empty = True
        else:
            node.empty = False
            node.line, node.column = node.cline, node.ccolumn = start
            node.end_line, node.end_column = node.cend_line, node.cend_column = end
        build = self.build
        if depth > MAX_NESTING + 1 and build.too_deep is None:
            build.too_deep = TreeSyntaxError(error(
                f"this expression nests more than {MAX_NESTING} levels deep", build._sp(node),
                "split it into metrics of their own (metric part = …), or shorten a very long sum", "too-deep"))
        if self.plan.inlined:
            node.value = filtered
        elif build.too_deep or build.problem:
            # The file is already wrong: only read on, so that a later syntax error is still the one reported.
            node.value = None
        else:
            values = [c.value if c.__class__ is _Node else c for c in filtered]
            try:
                node.value = self.method(node, values) if self.method is not None else lark.Tree(self.plan.name,
                                                                                                 values)
            except TreeSyntaxError as exc:
                build.problem = exc
        return node


# --------------------------------------------------------------------------- syntax nodes


def _span(source: SourceFile, meta_or_token) -> Span | None:
    line = getattr(meta_or_token, "line", None)
    if line is None:
        return None
    return Span(source, line, meta_or_token.column, meta_or_token.end_line, meta_or_token.end_column)


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


class _NumberProblem(ValueError):
    pass


_WHOLE = re.compile(r"[+-]?\d+")


def _number(text: str) -> float | int:
    """A number literal: whole numbers exactly (they must fit in 64 bits), others as floats (finite)."""
    if _WHOLE.fullmatch(text):
        digits = text.lstrip("+-").lstrip("0")
        if len(digits) > 19 or not -INT64 <= int(text) < INT64:
            raise _NumberProblem(f"the whole number {_excerpt(text)} does not fit in 64 bits",
                                 "write it as a decimal with an exponent (e.g. 1.5e20) if a float is meant")
        return int(text)
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NumberProblem(f"the number {_excerpt(text)} is too large for a float", "the largest is about 1.8e308")
    return value


def _excerpt(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Build:
    """Matched grammar rules → syntax nodes. One small method per grammar alias, given the rule's position
    (``meta``: line, column, end_line, end_column) and its children, already built."""

    def __init__(self, source: SourceFile):
        self.source = source
        # The first problems met while building (a number too large, a source bound twice, too deep),
        # raised once the whole file has parsed.
        self.too_deep: TreeSyntaxError | None = None
        self.problem: TreeSyntaxError | None = None

    def _sp(self, meta) -> Span | None:
        return None if getattr(meta, "empty", False) else _span(self.source, meta)

    # -- literals and names
    def _num(self, token, text: str | None = None) -> float | int:
        try:
            return _number(str(token) if text is None else text)
        except _NumberProblem as exc:
            message, hint = exc.args
            raise TreeSyntaxError(error(message, _span(self.source, token), hint, "number")) from None

    def number(self, meta, c):
        return s.Literal(self._num(c[0]), span=self._sp(meta))

    def percent(self, meta, c):
        return s.Literal(self._num(c[0], c[0][:-1]) / 100, percent=True, span=self._sp(meta))

    def string(self, meta, c):
        return s.Literal(_unquote(c[0]), span=self._sp(meta))

    def true(self, meta, c):
        return s.Literal(True, span=self._sp(meta))

    def false(self, meta, c):
        return s.Literal(False, span=self._sp(meta))

    def null(self, meta, c):
        return s.Literal(None, span=self._sp(meta))

    def name(self, meta, c):
        return s.Name(str(c[0]), span=self._sp(meta))

    def column(self, meta, c):
        return s.Column(str(c[0]), str(c[1]), span=self._sp(meta))

    def shift(self, meta, c):
        offset = self._num(c[1])
        return s.Shift(str(c[0]), offset, span=self._sp(meta))

    def call(self, meta, c):
        args = c[1] or []
        positional = tuple(a for a in args if not isinstance(a, tuple))
        keywords = tuple(a for a in args if isinstance(a, tuple))
        return s.Call(str(c[0]), positional, keywords, span=self._sp(meta))

    def arguments(self, meta, c):
        return list(c)

    def keyword_argument(self, meta, c):
        return (str(c[0]), c[1])

    def list(self, meta, c):
        return tuple(x for x in c if x is not None)

    # -- operators
    def _binary(op):  # noqa: N805 - a method factory used in the class body
        return lambda self, meta, c: s.Binary(op, c[0], c[-1], span=self._sp(meta))

    add, sub, mul, div = _binary("+"), _binary("-"), _binary("*"), _binary("/")
    and_, or_ = _binary("and"), _binary("or")

    def compare(self, meta, c):
        return s.Binary(str(c[1]), c[0], c[2], span=self._sp(meta))

    def neg(self, meta, c):
        if isinstance(c[0], s.Literal) and isinstance(c[0].value, int | float) and not isinstance(c[0].value, bool):
            return s.Literal(-c[0].value, percent=c[0].percent, span=self._sp(meta))
        return s.Unary("-", c[0], span=self._sp(meta))

    def not_(self, meta, c):
        return s.Unary("not", c[0], span=self._sp(meta))

    def in_(self, meta, c):
        return s.InList(c[0], c[1], span=self._sp(meta))

    def not_in(self, meta, c):
        return s.InList(c[0], c[1], negated=True, span=self._sp(meta))

    def is_null(self, meta, c):
        return s.IsNull(c[0], span=self._sp(meta))

    def is_not_null(self, meta, c):
        return s.IsNull(c[0], negated=True, span=self._sp(meta))

    def signed_number(self, meta, c):
        text = str(c[0])
        if text.endswith("%"):
            return (self._num(c[0], text[:-1]) / 100, True)
        return (self._num(c[0]), False)

    # -- metadata
    def _meta(key, convert=str):  # noqa: N805
        return lambda self, meta, c: s.MetaEntry(key, convert(c[0]) if c else True, self._sp(meta))

    meta_label = _meta("label", _unquote)
    meta_description = _meta("description", _unquote)
    meta_format = _meta("format", _unquote)
    meta_owner = _meta("owner", _unquote)
    meta_message = _meta("message", _unquote)
    meta_direction = _meta("direction")
    meta_level = _meta("level")
    meta_controllable = _meta("controllable")
    meta_severity = _meta("severity")
    meta_external = _meta("external")
    meta_unit = _meta("unit", lambda u: u)

    def unit(self, meta, c):
        text = str(c[0])
        return _unquote(text) if text.startswith('"') else text

    def meta(self, meta, c):
        return tuple(c)

    # -- statements
    def tree_header(self, meta, c):
        return s.TreeHeader(str(c[0]), _unquote(c[1]) if c[1] else None, span=self._sp(meta))

    def grain_stmt(self, meta, c):
        return s.GrainStmt(str(c[0]), span=_span(self.source, c[0]))

    def library(self, meta, c):
        return str(c[0]), tuple(str(t) for t in c[1:] if t is not None)

    def import_stmt(self, meta, c):
        *libraries, bindings = c
        return s.ImportStmt(tuple(name for name, _ in libraries), tuple(names for _, names in libraries),
                            tuple(bindings or ()), span=self._sp(meta))

    def bindings(self, meta, c):
        seen: dict[str, s.SourceBinding] = {}
        for binding in c:
            if binding.library_source in seen:
                raise TreeSyntaxError(error(f"the library source '{binding.library_source}' is bound twice",
                                            binding.span, "keep one binding and put every column in it", "syntax"))
            seen[binding.library_source] = binding
        return tuple(c)

    def source_binding(self, meta, c):
        library_source, source, *columns = c
        names: set[str] = set()
        for column in columns:
            if column.column in names:
                raise TreeSyntaxError(error(f"the column '{column.column}' of {library_source} is bound twice",
                                            column.span, "keep one of the two lines", "syntax"))
            names.add(column.column)
        target = source if source is not None else library_source
        end = source if source is not None else library_source
        span = Span(self.source, library_source.line, library_source.column, end.end_line, end.end_column)
        return s.SourceBinding(str(library_source), str(target), tuple(columns), span, _span(self.source, target))

    def column_binding(self, meta, c):
        return s.ColumnBinding(str(c[0]), c[1], _span(self.source, c[0]))

    def currency_stmt(self, meta, c):
        return s.CurrencyStmt(c[0], span=self._sp(meta))

    def currency(self, meta, c):
        text = str(c[0])
        return _unquote(text) if text.startswith('"') else text

    def include_stmt(self, meta, c):
        return s.IncludeStmt(_unquote(c[0]), span=self._sp(meta))

    def param_def(self, meta, c):
        value, percent = c[1]
        return s.ParamDef(str(c[0]), value, percent, c[2] or (), span=_span(self.source, c[0]))

    def source_time(self, meta, c):
        return ("time", c[0], c[1], c[2])

    def time_format(self, meta, c):
        return c[0]

    def time_zone(self, meta, c):
        return c[0]

    def source_timezone(self, meta, c):
        return ("timezone", c[0])

    def source_entity(self, meta, c):
        return ("entity", c[0])

    def source_dimensions(self, meta, c):
        return ("dimensions", c)

    def source_def(self, meta, c):
        fields: dict = {"time": None, "entity": None, "dimensions": (), "format": None, "timezone": None}
        spans = []
        entries = []
        seen: set[str] = set()
        for entry in c[1:]:
            if isinstance(entry, s.MetaEntry):
                entries.append(entry)
                continue
            if entry[0] == "time":
                _, value, time_format, zone = entry
                if time_format is not None:
                    fields["format"] = _unquote(time_format)
                    fields["format_span"] = _span(self.source, time_format)
                if zone is not None:
                    self._once(c[0], "timezone", zone, seen)
                    fields["timezone"] = _unquote(zone)
                    fields["timezone_span"] = _span(self.source, zone)
                entry = ("time", value)
            elif entry[0] == "timezone":
                self._once(c[0], "timezone", entry[1], seen)
                fields["timezone"] = _unquote(entry[1])
                fields["timezone_span"] = _span(self.source, entry[1])
                continue
            key, value = entry
            if key in seen:
                first = value[0] if isinstance(value, list) else value
                raise TreeSyntaxError(error(f"source '{c[0]}' gives '{key}' twice", _span(self.source, first),
                                            f"keep one '{key}' line" + (" and list every dimension on it"
                                                                       if key == "dimensions" else ""), "syntax"))
            seen.add(key)
            if key == "dimensions":
                fields[key] = tuple(str(v) for v in value)
                spans.extend((str(v), _span(self.source, v)) for v in value)
            else:
                fields[key] = str(value)
                spans.append((str(value), _span(self.source, value)))
        return s.SourceDef(str(c[0]), fields["time"], fields["dimensions"], fields["entity"], tuple(entries),
                           fields["format"], fields["timezone"], tuple(spans), fields.get("format_span"),
                           fields.get("timezone_span"), span=_span(self.source, c[0]))

    def _once(self, source, key: str, token, seen: set[str]) -> None:
        if key in seen:
            raise TreeSyntaxError(error(f"source '{source}' gives '{key}' twice", _span(self.source, token),
                                        f"keep one '{key}'", "syntax"))
        seen.add(key)

    def formula(self, meta, c):
        return (c[0], c[1])

    def where(self, meta, c):
        return c[0]

    def metric_def(self, meta, c):
        formula, where = c[1] if c[1] else (None, None)
        return s.MetricDef(str(c[0]), formula, where, c[2] or (), name_span=_span(self.source, c[0]),
                           span=self._sp(meta))

    def link_stmt(self, meta, c):
        return s.LinkStmt(str(c[0]), tuple(str(t) for t in c[1:]),
                          tuple(_span(self.source, t) for t in c), span=self._sp(meta))

    def target_from(self, meta, c):
        return ("start", str(c[0]))

    def target_every(self, meta, c):
        return ("every", str(c[0]))

    def checkpoint(self, meta, c):
        value, _ = c[1]
        return (str(c[0]), value)

    def checkpoints(self, meta, c):
        return ("checkpoints", tuple(c))

    def target_stmt(self, meta, c):
        options = dict(x for x in c[2:5] if x)
        return s.TargetStmt(c[0], str(c[1]), options.get("start"), options.get("every"),
                            options.get("checkpoints", ()), c[5], c[6] or (), span=self._sp(meta))

    def alert_stmt(self, meta, c):
        return s.AlertStmt(c[0], c[1], c[2] or (), span=self._sp(meta))


# --------------------------------------------------------------------------- errors

_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string in double quotes",
    "NUMBER": "a number",
    "PERCENT": "a percentage",
    "SIGNED_NUMBER": "a number",
    "SIGNED_PERCENT": "a percentage",
    "SIGNED_INT": "a whole number",
    "PERIOD": "a period (2026-10, 2026-Q4, 2026-W41, 2026-10-05 or 2026)",
    "COMPARE": "a comparison (==, !=, <, <=, >, >=)",
    "PERCENT_SIGN": "'%'",
    "$END": "the end of the file",
    "_LINK": "'<~'",
}

_STATEMENT_KEYWORDS = ("tree", "grain", "import", "include", "currency", "param", "source", "metric", "target",
                       "alert")
_SYMBOL_HINTS = {
    "×": "multiply with '*'",
    "÷": "divide with '/'",
    "−": "subtract with '-' (an ASCII hyphen)",
    "'": "strings are written in double quotes: \"paid\"",
    "“": "strings are written in plain double quotes: \"paid\"",
    "&": "combine conditions with 'and'",
    "|": "combine conditions with 'or'",
    "!": "negate with 'not', or compare with '!='",
    ";": "statements need no ';' — start the next statement on a new line",
}


def _describe(terminal: str) -> str:
    if terminal in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[terminal]
    term = next((t for t in grammar().terminals if t.name == terminal), None)
    if term is not None and isinstance(term.pattern, PatternStr):
        return f"'{term.pattern.value}'"
    return terminal.lower()


def _keyword_terminals(expected) -> dict[str, str]:
    """Expected terminals that are words (keywords), by their text."""
    words = {}
    for term in grammar().terminals:
        if term.name in expected and isinstance(term.pattern, PatternStr) and term.pattern.value.isalpha():
            words[term.pattern.value] = term.name
    return words


def _expected_text(expected) -> str:
    if {"NAME", "NUMBER", "LPAR"} <= set(expected):
        return "expected a value: a name, a number, a percentage, a string in double quotes or '('"
    names = sorted({_describe(t) for t in expected}, key=lambda x: (not x.startswith("a"), x))
    if len(names) > 8:
        names = names[:8] + ["…"]
    return "expected " + (" or ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " or " + names[-1])


def _token_text(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "STRING":
        return f"string {token}"
    return f"'{token}'"


def _stray_name(text: str, source: SourceFile, pos: int) -> Diagnostic:
    """A statement that starts with a name but is not a link: a misspelt keyword or a broken formula."""
    match = re.search(r"((?!\d)\w+)\s*$", text[:pos])
    start = match.start(1) if match else pos
    word = match.group(1) if match else ""
    line, column = _position(text, start)
    span = Span(source, line, column, line, column + max(1, len(word)))
    guess = did_you_mean(word, _STATEMENT_KEYWORDS)
    if guess:
        return error(f"unknown statement '{word}'", span, guess, "syntax")
    if re.search(r"\bimport\s[^\n]*$", text[:start]) and did_you_mean(word, ["with"]):
        return error(f"unexpected name '{word}'", span, "did you mean 'with'? (import crm with orders = invoices "
                                                         "{ amount = invoices.Total })", "syntax")
    return error(f"unexpected name '{word}'", span,
                 "a statement starts with a keyword (metric, source, param, target, alert …) or is an influence "
                 "link 'parent <~ child'; inside a formula, join names with an operator (+ - * /)", "syntax")


def _position(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, column


def _diagnose(exc: lark.exceptions.UnexpectedInput, source: SourceFile) -> Diagnostic:
    text = source.text
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        char = text[exc.pos_in_stream]
        span = Span(source, exc.line, exc.column, exc.line, exc.column + 1)
        if char == '"':
            return error("unterminated string", span, "close the string with '\"' on the same line", "syntax")
        if char == "`":
            return error("unterminated name in backticks", span,
                         "close the name with '`' on the same line (`Order Date`); it cannot be empty", "syntax")
        hint = _SYMBOL_HINTS.get(char) or _expected_text(exc.allowed or ())
        return error(f"unexpected character '{char}'", span, hint, "syntax")

    token: Token = exc.token
    expected = set(exc.expected) if hasattr(exc, "expected") else set()
    if token.type == "$END" and expected == {"_LINK"}:
        return _stray_name(text, source, len(text.rstrip()))
    if token.type == "$END":
        line, column = _position(text, len(text.rstrip()))
        span = Span(source, line, max(1, column - 1), line, column)
        if "RBRACE" in expected:
            return error("the file ends inside a block", span, "close the block with '}'", "syntax")
        if "RPAR" in expected:
            return error("the file ends inside brackets", span, "close the bracket with ')'", "syntax")
        return error("the file ends in the middle of a statement", span, _expected_text(expected), "syntax")

    span = Span(source, token.line, token.column, token.end_line or token.line,
                token.end_column or token.column + len(token))
    keywords = _keyword_terminals(expected)
    # A misspelt keyword where one was expected: `lable "x"` in a metadata block.
    if token.type == "NAME" and keywords and "NAME" not in expected:
        guess = did_you_mean(str(token), keywords)
        if guess:
            return error(f"unknown word '{token}'", span, guess, "syntax")
    if expected == {"_LINK"}:
        return _stray_name(text, source, token.start_pos)
    if token.type == "EQUAL" and "COMPARE" in expected:
        return error("'=' cannot compare values", span, "use '==' to test equality", "syntax")
    if token.type in ("NUMBER", "SIGNED_INT", "SIGNED_NUMBER") and expected == {"NAME"}:
        return error(f"expected a name, found the number {token}", span,
                     "names start with a letter or '_' (e.g. m2_revenue)", "syntax")
    if token.type == "STRING" and "NAME" in expected and "STRING" not in expected:
        # A column written as text: `time "Order Date"`.
        name = token[1:-1]
        return error(f"expected a name, found the string {token}", span,
                     f"write the name without quotes: {name}" if re.fullmatch(r"(?!\d)\w+", name) else
                     f"a name that is not one word is written in backticks, not quotes: `{name}`", "syntax")
    return error(f"unexpected {_token_text(token)}", span, _expected_text(expected), "syntax")
