"""One canonical layout for tree files: what ``metrictree fmt`` writes and the language server applies.

The formatter only moves whitespace. It parses the file with the project's own
grammar (every token kept, ``keep_all_tokens``), recovers the comments with a
lexer pass over the same grammar, and lays the tokens out again with a small
Wadler-style pretty printer (groups that go on one line when they fit, and break
at their line breaks when they do not). Before returning, it checks that the
output has exactly the tokens and comments of the input, in the same order: the
formatted tree always means what the original meant.

The layout, in words:

- one statement per line; blank lines between statements are kept (at most one);
- a ``{ … }`` block goes on one line when it has at most three entries and the
  whole statement fits in 100 columns, otherwise one entry per line, indented by 4;
  a source's block goes on one line only with at most two entries, neither a label
  nor a description;
- a long list of names (``parent <~ a, b, …``, ``import``) fills each line and
  goes on, indented, on the next;
- a formula that does not fit puts ``where`` on the next line, then breaks before
  ``+ - * / and or`` and inside brackets;
- one space around operators and after commas, none inside brackets, ``f(x)``,
  ``orders.amount``, ``m[-1]``, ``key=value``;
- comments stay where they were written: a comment on its own line stays on its
  own line (indented like the code it precedes), a comment after code stays at the
  end of that line, two spaces after the code.
"""

from __future__ import annotations

import bisect
import functools
import importlib.resources
import threading
from collections.abc import Iterator

import attrs
from lark import Lark, Token, Tree

from .errors import MetrictreeError, TreeSyntaxError, error
from .parsing import parse

WIDTH = 100
INDENT = 4
INLINE_ENTRIES = 3


class FormatError(MetrictreeError):
    """The formatter would change the meaning of a file (a bug in metrictree, never a user mistake)."""


def format_text(text: str, filename: str = "<string>") -> str:
    """The tree-file text in the canonical layout. Raises `TreeSyntaxError` when the text does not parse."""
    parse(text, filename)  # the friendly diagnostics for a file that does not parse
    try:
        tree, tokens, comments = _parse(text)
        out = _render(_Layout(text, tokens, comments).document(tree), WIDTH)
    except RecursionError:
        raise TreeSyntaxError(error(f"{filename} nests brackets too deeply to be laid out", None,
                                    "remove brackets that group a single value: ((x)) is x", "nesting")) from None
    ordered = sorted([*tokens, *comments], key=lambda t: t.start_pos)
    _check_same_tokens([str(t).rstrip() if t.type == "COMMENT" else str(t) for t in ordered], out, filename)
    return out


def is_formatted(text: str, filename: str = "<string>") -> bool:
    return format_text(text, filename) == text


# --------------------------------------------------------------------------- tokens and comments


_collected = threading.local()


def _collect_comment(token: Token) -> Token:
    _collected.comments.append(token)
    return token


@functools.lru_cache(maxsize=1)
def _grammar() -> Lark:
    """The tree grammar with every token kept (so brackets, commas and keywords have positions),
    and each comment the lexer skips collected on the way."""
    text = importlib.resources.files("metrictree.grammars").joinpath("metrictree.lark").read_text("utf-8")
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True, keep_all_tokens=True,
                lexer_callbacks={"COMMENT": _collect_comment})


def _parse(text: str) -> tuple[Tree, list[Token], list[Token]]:
    """The parse tree, its tokens and the comments, each in the order of the text."""
    _collected.comments = []
    try:
        tree = _grammar().parse(text)
        comments = _collected.comments
    finally:
        _collected.comments = []
    return tree, list(_tokens(tree)), comments


def _tokens(tree: Tree) -> Iterator[Token]:
    """The tokens under a node, in order (walked without recursion: brackets may nest deeply)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Token):
            yield node
        elif isinstance(node, Tree):
            stack.extend(reversed(node.children))


def _words(text: str) -> list[str]:
    _, tokens, comments = _parse(text)
    ordered = sorted([*tokens, *comments], key=lambda t: t.start_pos)
    return [str(t).rstrip() if t.type == "COMMENT" else str(t) for t in ordered]


def _check_same_tokens(before: list[str], after: str, filename: str) -> None:
    if before != _words(after):
        raise FormatError(error(f"formatting {filename} would change its tokens", None,
                                "this is a bug in metrictree: please report it with the file", "format"))


# --------------------------------------------------------------------------- documents


@attrs.frozen
class _Text:
    text: str


@attrs.frozen
class _Line:
    """A place to break: ``flat`` when the group fits on one line, else a newline (``blank``: and an empty line)."""

    flat: str = " "
    hard: bool = False


@attrs.frozen
class _Blank:
    """An empty line here, when the enclosing group is broken (a blank line the author left)."""


@attrs.frozen
class _Comment:
    text: str
    trailing: bool
    blank_before: bool = False


@attrs.frozen
class _Nest:
    parts: list


@attrs.frozen
class _Fill:
    """Items separated by lines, each line broken only when the item after it does not fit."""

    parts: list


@attrs.frozen
class _FillRest:
    parts: list


@attrs.frozen
class _Group:
    parts: list
    broken: bool


_SPACE = _Text(" ")
_LINE = _Line(" ")
_SOFT = _Line("")
_HARD = _Line(" ", hard=True)


def _breaks(doc) -> bool:
    """Whether a document forces its group onto several lines (a comment or a hard line in it)."""
    if isinstance(doc, list):
        return any(_breaks(d) for d in doc)
    if isinstance(doc, _Nest | _Fill):
        return _breaks(doc.parts)
    if isinstance(doc, _Group):
        return doc.broken
    return isinstance(doc, _Comment) or isinstance(doc, _Line) and doc.hard


def _group(parts: list, broken: bool = False) -> _Group:
    return _Group(parts, broken or _breaks(parts))


# --------------------------------------------------------------------------- layout rules


_NO_SPACE_BEFORE = {",", ")", "]", ".", ":"}
_NO_SPACE_AFTER = {"(", "[", "."}
_CHAINS = {"add": "sum", "sub": "sum", "mul": "term", "div": "term", "and_": "and", "or_": "or"}


class _Layout:
    """Lark parse tree (every token kept) → document, with each comment attached to a token."""

    def __init__(self, text: str, tokens: list[Token], comments: list[Token]):
        self.text = text
        self.leading: dict[int, list[_Comment]] = {}
        self.trailing: dict[int, _Comment] = {}
        self.blank_before: set[int] = set()
        self.line_starts: set[int] = set()
        self.end_comments: list[_Comment] = []
        starts = [t.start_pos for t in tokens]
        previous_end = 0
        for comment in comments:
            i = bisect.bisect_left(starts, comment.start_pos)
            before = tokens[i - 1] if i else None
            gap_start = max(before.end_pos if before is not None else 0, previous_end)
            if before is not None and "\n" not in text[before.end_pos:comment.start_pos]:
                self.trailing[before.start_pos] = _Comment(str(comment).rstrip(), True)
            else:
                blank = self._blank(gap_start, comment.start_pos)
                note = _Comment(str(comment).rstrip(), False, blank)
                if i < len(tokens):
                    self.leading.setdefault(tokens[i].start_pos, []).append(note)
                else:
                    self.end_comments.append(note)
            previous_end = comment.end_pos
        ends = sorted([t.end_pos for t in tokens] + [c.end_pos for c in comments])
        for token in tokens:
            j = bisect.bisect_right(ends, token.start_pos)
            if j and self._blank(ends[j - 1], token.start_pos):
                self.blank_before.add(token.start_pos)

    def _blank(self, start: int, end: int) -> bool:
        return self.text.count("\n", start, end) >= 2

    # -- tokens

    def tok(self, token: Token) -> list:
        parts: list = list(self.leading.get(token.start_pos, ()))
        if token.start_pos in self.line_starts and token.start_pos in self.blank_before:
            parts.append(_Blank())
        parts.append(_Text(str(token)))
        if token.start_pos in self.trailing:
            parts.append(self.trailing[token.start_pos])
        return parts

    def starts_line(self, node) -> None:
        first = next(_tokens(node), None) if isinstance(node, Tree) else node
        if first is not None:
            self.line_starts.add(first.start_pos)

    def doc(self, node) -> list:
        if node is None:
            return []
        if isinstance(node, Token):
            return self.tok(node)
        method = getattr(self, "rule_" + node.data, None)
        return method(node.children) if method else self.spaced(node.children)

    def spaced(self, children) -> list:
        """Tokens and sub-rules with one space between them, none inside brackets or before commas."""
        parts: list = []
        previous = None
        for child in children:
            if child is None:
                continue
            first = next(_tokens(child), None) if isinstance(child, Tree) else child
            if previous is not None and first is not None and str(first) not in _NO_SPACE_BEFORE \
                    and str(previous) not in _NO_SPACE_AFTER:
                parts.append(_SPACE)
            parts.extend(self.doc(child))
            last = list(_tokens(child)) if isinstance(child, Tree) else [child]
            previous = last[-1] if last else previous
        return parts

    def joined(self, children) -> list:
        return [part for child in children if child is not None for part in self.doc(child)]

    # -- the file

    def document(self, tree: Tree) -> list:
        parts: list = []
        for statement in tree.children:
            self.starts_line(statement)
        for statement in tree.children:
            # A comment after a statement's last token ends the line: it does not break the statement's groups.
            last = list(_tokens(statement))[-1] if isinstance(statement, Tree) else statement
            after = self.trailing.pop(last.start_pos, None)
            parts.extend(self.doc(statement))
            parts.extend([after, _HARD] if after is not None else [_HARD])
        parts.extend(self.end_comments)
        return parts

    # -- blocks

    def block(self, open_: Token, entries: list[list], close: Token, expand: bool = False) -> list:
        """``{ entry entry }`` on one line if it fits and is short (and not ``expand``), else one entry per line."""
        if not entries and close.start_pos not in self.leading:
            return [*self.tok(open_), *self.tok(close)]
        for entry in entries:
            self.starts_line(entry[0])
        inner: list = []
        for entry in entries:
            inner.append(_LINE)
            inner.extend(self.joined(entry))
        closing = self.leading.pop(close.start_pos, [])
        inner.extend(closing)
        return [_group([*self.tok(open_), _Nest(inner), _LINE, *self.tok(close)],
                       broken=expand or len(entries) > INLINE_ENTRIES)]

    def rule_meta(self, c):
        return self.block(c[0], [[e] for e in c[1:-1]], c[-1])

    def rule_source_def(self, c):
        entries = c[3:-1]
        prose = any(isinstance(e, Tree) and e.data in ("meta_label", "meta_description") for e in entries)
        return [*self.tok(c[0]), _SPACE, *self.tok(c[1]), _SPACE,
                *self.block(c[2], [[e] for e in entries], c[-1], expand=prose or len(entries) > 2)]

    def rule_checkpoints(self, c):
        items: list[list] = []
        for child in c[2:-1]:
            if isinstance(child, Token) and str(child) == ",":
                items[-1].append(child)
            else:
                items.append([child])
        return [*self.tok(c[0]), _SPACE, *self.block(c[1], items, c[-1])]

    def _with_block(self, head: list, meta) -> list:
        return head + ([_SPACE, *self.doc(meta)] if meta is not None else [])

    # -- statements

    def rule_metric_def(self, c):
        head = [*self.tok(c[0]), _SPACE, *self.tok(c[1])]
        formula = c[2]
        if formula is not None:
            equals, expr, where = formula.children
            head += [_SPACE, *self.tok(equals), _SPACE, _group([*self.doc(expr), *self.clause(where)])]
        return self._with_block(head, c[3])

    def clause(self, where) -> list:
        if where is None:
            return []
        keyword, condition = where.children
        return [_Nest([_LINE, *self.tok(keyword), _SPACE, *self.doc(condition)])]

    def rule_alert_stmt(self, c):
        head = [*self.tok(c[0]), _SPACE, _group([*self.doc(c[1]), *self.clause(c[2])])]
        return self._with_block(head, c[3])

    def rule_target_stmt(self, c):
        head = self.spaced(c[:4] + [x for x in c[4:6] if x is not None])
        clauses: list = []
        if c[6] is not None:
            clauses += [_LINE, *self.doc(c[6])]
        if c[7] is not None:
            keyword, condition = c[7].children
            clauses += [_LINE, *self.tok(keyword), _SPACE, *self.doc(condition)]
        if clauses:
            head = [_group([*head, _Nest(clauses)])]
        return self._with_block(head, c[8])

    def names(self, children) -> _Fill:
        """``a, b, c`` as a fill: the comma stays with the name before it."""
        items: list[list] = []
        for child in children:
            if isinstance(child, Token) and str(child) == ",":
                items[-1].extend(self.tok(child))
            elif child is not None:
                items.append(self.doc(child))
        parts: list = []
        for i, item in enumerate(items):
            parts += ([_LINE] if i else []) + [item]
        return _Fill(parts)

    def rule_link_stmt(self, c):  # NAME <~ NAME ("," NAME)*
        return [*self.tok(c[0]), _SPACE, *self.tok(c[1]), _SPACE, _Nest([self.names(c[2:])])]

    def rule_import_stmt(self, c):  # "import" library ("," library)* [bindings]
        head = [*self.tok(c[0]), _SPACE, _Nest([self.names(c[1:-1])])]
        return head if c[-1] is None else [*head, _SPACE, *self.doc(c[-1])]

    def rule_bindings(self, c):  # "with" source_binding ("," source_binding)*
        """One binding after ``with``; several on one line if they fit, else each on a line of its own."""
        if len(c) == 2:
            return [*self.tok(c[0]), _SPACE, *self.doc(c[1])]
        parts: list = []
        for child in c[1:]:
            if isinstance(child, Token) and str(child) == ",":
                parts += self.tok(child)
            else:
                parts += [_LINE, *self.doc(child)]
        return [*self.tok(c[0]), _group([_Nest(parts)])]

    def rule_source_binding(self, c):  # NAME ["=" NAME] "{" (column_binding ","?)* "}"
        head = self.spaced([x for x in c[:3] if x is not None])
        entries: list[list] = []
        for child in c[4:-1]:
            if isinstance(child, Token) and str(child) == ",":
                entries[-1].append(child)
            else:
                entries.append([child])
        # Entries not separated by commas read as one run of words on one line: one a line then.
        bare = any(not (isinstance(e[-1], Token) and str(e[-1]) == ",") for e in entries[:-1])
        return [*head, _SPACE, *self.block(c[3], entries, c[-1], expand=bare)]

    def rule_column_binding(self, c):  # NAME "=" expr
        return [*self.tok(c[0]), _SPACE, *self.tok(c[1]), _SPACE, _Nest(self.doc(c[2]))]

    def rule_library(self, c):  # NAME ["(" NAME ("," NAME)* ")"]
        if c[1] is None:
            return self.tok(c[0])
        return [*self.tok(c[0]), _SPACE, *self.tok(c[1]), self.names(c[2:-1]), *self.tok(c[-1])]

    def rule_param_def(self, c):
        return self._with_block(self.spaced(c[:4]), c[4])

    # -- expressions

    def _chain(self, node: Tree) -> list:
        family = _CHAINS[node.data]
        operands: list = []

        def flatten(n):
            if isinstance(n, Tree) and _CHAINS.get(n.data) == family:
                left, op, right = n.children
                flatten(left)
                operands.append((op, right))
            else:
                operands.append((None, n))

        flatten(node)
        first, rest = self.doc(operands[0][1]), []
        for op, operand in operands[1:]:
            rest += [_LINE, *self.tok(op), _SPACE, *self.doc(operand)]
        return [_group([*first, _Nest(rest)])]

    def rule_add(self, c):
        return self._chain(Tree("add", c))

    def rule_sub(self, c):
        return self._chain(Tree("sub", c))

    def rule_mul(self, c):
        return self._chain(Tree("mul", c))

    def rule_div(self, c):
        return self._chain(Tree("div", c))

    def rule_and_(self, c):
        return self._chain(Tree("and_", c))

    def rule_or_(self, c):
        return self._chain(Tree("or_", c))

    def bracketed(self, open_: Token, inner: list, close: Token) -> list:
        return [_group([*self.tok(open_), _Nest([_SOFT, *inner]), _SOFT, *self.tok(close)])]

    def items(self, children) -> list:
        """``a, b, c`` with a break after each comma."""
        parts: list = []
        for child in children:
            if child is None:
                continue
            if isinstance(child, Token) and str(child) == ",":
                parts += [*self.tok(child), _LINE]
            else:
                parts += self.doc(child)
        return parts

    def rule_atom(self, c):  # "(" expr ")"
        return self.bracketed(c[0], self.doc(c[1]), c[2])

    def rule_call(self, c):  # NAME "(" [arguments] ")"
        inner = self.items(c[2].children) if c[2] is not None else []
        return [*self.tok(c[0]), *self.bracketed(c[1], inner, c[3])]

    def rule_list(self, c):  # "[" [expr ("," expr)*] "]"
        return self.bracketed(c[0], self.items(c[1:-1]), c[-1])

    def rule_arguments(self, c):
        return self.items(c)

    def rule_keyword_argument(self, c):
        return self.joined(c)

    def rule_column(self, c):
        return self.joined(c)

    def rule_shift(self, c):
        return self.joined(c)

    def rule_neg(self, c):
        return self.joined(c)

    def rule_factor(self, c):  # unary plus
        return self.joined(c)

    def rule_checkpoint(self, c):  # PERIOD ":" number
        return [*self.tok(c[0]), *self.tok(c[1]), _SPACE, *self.doc(c[2])]


# --------------------------------------------------------------------------- the printer

_FLAT, _BREAK = 0, 1


def _render(doc: list, width: int) -> str:
    """Lay a document out in ``width`` columns (the Wadler/Leijen "prettier" algorithm)."""
    lines = [""]
    pending = False  # a comment ended the line: the next text starts a new one
    stack: list[tuple[int, int, object]] = [(0, _BREAK, doc)]

    def has_content() -> bool:
        return bool(lines[-1].strip())

    def break_line(indent: int) -> None:
        nonlocal pending
        lines[-1] = lines[-1].rstrip()
        lines.append(" " * indent)
        pending = False

    def blank_line(indent: int) -> None:
        """An empty line before what comes next; none at the top of the file, after '{' or after another."""
        if has_content() or pending:
            break_line(indent)
        done = lines[:-1]
        if done and done[-1].strip() and not done[-1].rstrip().endswith("{"):
            lines[-1] = ""
            lines.append(" " * indent)

    while stack:
        indent, mode, d = stack.pop()
        if isinstance(d, list):
            stack.extend((indent, mode, part) for part in reversed(d))
        elif isinstance(d, _Text):
            if pending:
                break_line(indent)
            lines[-1] += d.text
        elif isinstance(d, _Comment):
            if d.trailing:
                lines[-1] = lines[-1].rstrip() + "  " + d.text
            else:
                if has_content() or pending:
                    break_line(indent)
                if d.blank_before:
                    blank_line(indent)
                lines[-1] = " " * indent + d.text
            pending = True
        elif isinstance(d, _Blank):
            if mode == _BREAK:
                blank_line(indent)
        elif isinstance(d, _Line):
            if mode == _FLAT and not pending and not d.hard:
                lines[-1] += d.flat
            elif has_content() or pending:
                break_line(indent)
        elif isinstance(d, _Nest):
            stack.append((indent + INDENT, mode, d.parts))
        elif isinstance(d, _Fill):
            if d.parts:
                stack.append((indent, mode, _FillRest(d.parts[1:])))
                stack.append((indent, mode, d.parts[0]))
        elif isinstance(d, _FillRest):
            if d.parts:
                separator, item, rest = d.parts[0], d.parts[1], d.parts[2:]
                flat = mode == _FLAT or _fits([separator, item], [], width - len(lines[-1]))
                stack.append((indent, mode, _FillRest(rest)))
                stack.append((indent, mode, item))
                stack.append((indent, _FLAT if flat else _BREAK, separator))
        elif isinstance(d, _Group):
            if mode == _FLAT and not d.broken:
                stack.append((indent, _FLAT, d.parts))
            else:
                flat = not d.broken and _fits(d.parts, stack, width - len(lines[-1]))
                stack.append((indent, _FLAT if flat else _BREAK, d.parts))
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(line.rstrip() for line in lines) + "\n" if lines else ""


def _fits(parts: list, rest: list, width: int) -> bool:
    """Whether ``parts`` flat, then what follows up to its first line break, fit in ``width``."""
    pending: list[tuple[int, object]] = [(_FLAT, parts)]
    rest_index = len(rest)
    while width >= 0:
        if not pending:
            if rest_index == 0:
                return True
            rest_index -= 1
            _, mode, d = rest[rest_index]
            pending.append((mode, d))
            continue
        mode, d = pending.pop()
        if isinstance(d, list):
            pending.extend((mode, part) for part in reversed(d))
        elif isinstance(d, _Text):
            width -= len(d.text)
        elif isinstance(d, _Comment):
            return True
        elif isinstance(d, _Line):
            if mode == _BREAK or d.hard:
                return True
            width -= len(d.flat)
        elif isinstance(d, _Nest | _Fill | _FillRest):
            pending.append((mode, d.parts))
        elif isinstance(d, _Group):
            pending.append((_BREAK if d.broken else mode, d.parts))
    return False


__all__ = ["WIDTH", "FormatError", "format_text", "is_formatted"]
