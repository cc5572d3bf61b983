"""Source spans, diagnostics and the typed exceptions every user mistake becomes.

A user mistake never surfaces as a Python traceback: it is a `MetrictreeError`
carrying one or more `Diagnostic`s, each pointing at a place in a tree file and
saying how to fix it. `Diagnostic.render()` gives the text the CLI prints::

    trees/shop.tree:12:24: error: unknown metric 'revnue'
       12 | metric aov = revnue / paid_orders
          |              ^^^^^^
    hint: did you mean 'revenue'?
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import attrs

Severity = Literal["error", "warning"]


@attrs.frozen
class SourceFile:
    """The text of one tree file, kept so errors can quote its lines.

    Attributes:
        name: the path or pseudo-name (``<string>``) shown in messages.
        text: the whole file.
    """

    name: str
    text: str = attrs.field(repr=False)
    _lines: list[str] | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def line(self, number: int) -> str:
        lines = self._lines
        if lines is None:  # split once, however many errors quote the file
            lines = self.text.splitlines()
            object.__setattr__(self, "_lines", lines)
        return lines[number - 1] if 0 < number <= len(lines) else ""


@attrs.frozen
class Span:
    """Where a construct sits in a tree file (1-based lines and columns, end exclusive).

    Attributes:
        source: the file.
        line, column: the first character.
        end_line, end_column: one past the last character.
    """

    source: SourceFile = attrs.field(eq=False)
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def file(self) -> str:
        return self.source.name

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@attrs.frozen
class Diagnostic:
    """One problem found in a tree file or in the data bound to it.

    Attributes:
        severity: ``"error"`` stops compilation or evaluation; ``"warning"`` does not.
        message: what is wrong, in one line.
        span: where (``None`` when the problem is not in a file, e.g. a missing data file).
        hint: how to fix it.
        code: a stable short name for the kind of problem (``unknown-name``, ``cycle`` …).
    """

    severity: Severity
    message: str
    span: Span | None = None
    hint: str | None = None
    code: str = "error"

    def render(self) -> str:
        """The message as printed: location, the source line, a caret, the hint."""
        head = f"{self.span}: " if self.span else ""
        out = [f"{head}{self.severity}: {self.message}"]
        if self.span is not None:
            out.extend(_quote(self.span))
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)


QUOTE_WIDTH = 100
"""The most characters of a source line an error quotes: a file's secrets never ride along in a message."""


def _quote(span: Span) -> list[str]:
    text = span.source.line(span.line)
    if not text.strip():
        return []
    gutter = f"{span.line:>5} | "
    width = (span.end_column - span.column) if span.end_line == span.line else len(text) - span.column + 1
    width = max(1, min(width, len(text) - span.column + 1))
    column = span.column
    if len(text) > QUOTE_WIDTH:
        # A long line (minified, or not text at all) is quoted as a short window around the fault.
        start = max(0, min(column - 1 - QUOTE_WIDTH // 3, len(text) - QUOTE_WIDTH))
        head, tail = ("…" if start else ""), ("…" if start + QUOTE_WIDTH < len(text) else "")
        text = head + text[start:start + QUOTE_WIDTH] + tail
        column = column - start + len(head)
        width = max(1, min(width, QUOTE_WIDTH - (column - 1 - len(head))))
    # Tabs in the line are kept under the caret so it lines up in a terminal.
    pad = "".join(ch if ch == "\t" else " " for ch in text[: column - 1])
    return [gutter + text.rstrip(), " " * (len(gutter) - 2) + "| " + pad + "^" * width]


class MetrictreeError(Exception):
    """Base class of every error metrictree raises for a user mistake."""

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic]):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__(self.render())

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    def render(self) -> str:
        """The errors as printed (warnings too when there is no error); `diagnostics` keeps them all."""
        shown = self.errors or self.diagnostics
        return "\n\n".join(d.render() for d in shown)


class TreeSyntaxError(MetrictreeError):
    """The tree file does not follow the grammar."""


class CompileError(MetrictreeError):
    """The tree file parses but does not make sense (unknown names, cycles, units …)."""


class DataError(MetrictreeError):
    """The data bound to a tree does not fit it (missing source or column, wrong type, no rows)."""


class UsageError(MetrictreeError):
    """An API or CLI argument is wrong (unknown grain, metric, parameter, period …)."""


class PluginError(MetrictreeError):
    """A plugin failed or clashed with another."""


MAX_SUGGESTION_POOL = 300
"""At most this many candidates are compared (difflib is quadratic in the names' lengths and linear in the pool)."""


def check_summary(path: str, diagnostics: Sequence[Diagnostic]) -> str:
    """``trees/x.tree: ok`` · ``…: ok, 2 warnings`` · ``…: 3 errors, 1 warning`` (what ``metrictree check`` ends
    each file with)."""
    def count(n: int, word: str) -> str:
        return f"{n} {word}" + ("" if n == 1 else "s")

    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = sum(d.severity == "warning" for d in diagnostics)
    parts = [count(errors, "error")] if errors else ["ok"]
    if warnings:
        parts.append(count(warnings, "warning"))
    return f"{path}: {', '.join(parts)}"


def did_you_mean(name: str, candidates: Iterable[str], show: Callable[[str], str] = "'{}'".format) -> str | None:
    """``"did you mean 'x'?"`` for the closest candidate, or ``None``; ``show`` writes the candidate.

    Only candidates of about the same length can be close (difflib's ratio is at most 2·min/(a+b)), so
    the others are left out before comparing, and at most `MAX_SUGGESTION_POOL` of those are compared.
    """
    if len(name) > 200:
        return None
    # ratio >= 0.6 needs 2·min(len) / (len(a) + len(b)) >= 0.6, i.e. the shorter at least 3/7 of the longer.
    low, high = len(name) * 3 / 7, len(name) * 7 / 3
    pool = sorted({c for c in candidates if low <= len(c) <= high})
    if len(pool) > MAX_SUGGESTION_POOL:
        # Typos mostly keep a name's start or end: compare the candidates that share the most of either.
        def kept(c: str) -> int:
            return max(len(os.path.commonprefix([c, name])), len(os.path.commonprefix([c[::-1], name[::-1]])))

        pool = sorted(pool, key=kept, reverse=True)[:MAX_SUGGESTION_POOL]
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        close = [lowered[name.lower()]] if name.lower() in lowered else []
    return f"did you mean {show(close[0])}?" if close else None


def error(message: str, span: Span | None = None, hint: str | None = None, code: str = "error") -> Diagnostic:
    return Diagnostic("error", message, span, hint, code)


def warning(message: str, span: Span | None = None, hint: str | None = None, code: str = "warning") -> Diagnostic:
    return Diagnostic("warning", message, span, hint, code)
