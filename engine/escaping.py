"""Text from tree files and data made safe for where it is shown: a terminal, Markdown, a spreadsheet.

Labels, descriptions and dimension values come from people and from data, so they may
hold anything. Three places read more into text than its characters:

- a terminal runs escape sequences (ESC, CSI, OSC …: recolouring, moving the cursor,
  setting the window title), so every control character except tab and newline is
  stripped from what is printed, as are the bidirectional overrides that make text
  read differently from how it is stored (`printable`, `SafeConsole`);
- Markdown passes raw HTML through, so ``<`` and ``>`` outside code spans become
  ``&lt;`` and ``&gt;`` (`markdown_text`);
- a spreadsheet runs a cell starting with ``=``, ``+``, ``-`` or ``@`` (and tab or carriage
  return) as a formula, so such text cells get a leading ``'`` (`csv_cell`, the OWASP advice
  for CSV injection). Numbers are written as numbers and are never changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` without control characters (tab and newline kept) or bidirectional overrides.

    >>> printable("North\\x1b]0;pwned\\x07")
    'North]0;pwned'
    """
    return _CONTROL.sub("", text)




def _safe_console() -> type:
    from rich.console import Console
    from rich.segment import Segment

    class SafeConsole(Console):
        """A rich console that strips control characters from the text it renders, never from its own styling."""

        def render(self, renderable, options=None) -> Iterable[Segment]:
            for segment in super().render(renderable, options):
                if segment.control or not _CONTROL.search(segment.text):
                    yield segment
                else:
                    yield Segment(printable(segment.text), segment.style, segment.control)

    SafeConsole.__module__ = __name__
    return SafeConsole


def __getattr__(name: str):
    # `SafeConsole` is built on first use, so that printing plain text (``metrictree check`` piped) never
    # imports rich.
    if name == "SafeConsole":
        globals()["SafeConsole"] = cls = _safe_console()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# A code span as CommonMark reads it, conservatively: one line, no backtick or table pipe inside,
# not opened by an escaped backtick. Text that leaves a backtick outside such spans is escaped whole.
_CODE_SPAN = re.compile(r"(?<![`\\])(`+)([^`\n|]+?)\1(?!`)")


def _escape_html(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")


def markdown_text(text: str) -> str:
    """Markdown with no raw HTML: ``<`` and ``>`` outside code spans escaped, control characters stripped.

    >>> markdown_text("| <img src=x onerror=alert(1)> | `a > b` |")
    '| &lt;img src=x onerror=alert(1)&gt; | `a > b` |'
    """
    text = printable(text)
    if "<" not in text and ">" not in text:
        return text
    pieces: list[tuple[bool, str]] = []
    last = 0
    for match in _CODE_SPAN.finditer(text):
        pieces += [(False, text[last:match.start()]), (True, match.group(0))]
        last = match.end()
    pieces.append((False, text[last:]))
    if any("`" in piece for code, piece in pieces if not code):
        return _escape_html(text)  # backticks this reading is not sure of: escape everything, code included
    return "".join(piece if code else _escape_html(piece) for code, piece in pieces)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula.

    >>> csv_cell("=HYPERLINK(\\"http://x\\")"), csv_cell("North")
    ('\\'=HYPERLINK("http://x")', 'North')
    """
    return "'" + text if text.startswith(_FORMULA_START) else text
