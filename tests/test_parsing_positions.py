"""The parser builds syntax nodes as it reduces, tracking positions itself (no lark tree in between).

Its spans must be the ones lark's own ``propagate_positions`` gives, since every located error and the
language server rely on them: each test parses the same text both ways and compares the spans of every
expression and statement.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import attrs
import lark
import pytest
from hypothesis import HealthCheck, given, settings

from metrictree import parsing
from metrictree import syntax as s
from metrictree.errors import MetrictreeError

from test_fuzz_trees import STRUCTURED

ROOT = Path(__file__).resolve().parents[1]
TEXTS = sorted({*ROOT.glob("trees/*.tree"), *ROOT.glob("plugins/**/*.tree"), *ROOT.glob("bench/*.tree")})

# lark rule (alias) names whose tree node becomes one syntax node with the rule's span.
EXPRESSIONS = {"number", "percent", "string", "true", "false", "null", "name", "column", "shift", "call", "add",
               "sub", "mul", "div", "and_", "or_", "compare", "neg", "not_", "in_", "not_in", "is_null",
               "is_not_null"}
STATEMENTS = {"tree_header", "import_stmt", "currency_stmt", "include_stmt", "metric_def", "link_stmt",
              "target_stmt", "alert_stmt"}


@functools.lru_cache(maxsize=1)
def _reference() -> lark.Lark:
    return lark.Lark(parsing.grammar().source_grammar, parser="lalr", propagate_positions=True,
                     maybe_placeholders=True, cache=True)


def _lark_tree(text: str) -> lark.Tree:
    return _reference().parse(text)


def _is_number(node) -> bool:
    return isinstance(node, lark.Tree) and (node.data in ("number", "percent")
                                            or node.data == "neg" and _is_number(node.children[0]))


def _reference_spans(tree: lark.Tree) -> Counter:
    spans: Counter = Counter()
    for node in tree.iter_subtrees():
        if node.data in EXPRESSIONS | STATEMENTS:
            meta = node.meta
            spans[(meta.line, meta.column, meta.end_line, meta.end_column)] += 1
            if node.data == "neg" and _is_number(node.children[0]):
                # -5 is one literal, spanning the sign: the number inside it is no node of its own.
                inner = node.children[0].meta
                spans[(inner.line, inner.column, inner.end_line, inner.end_column)] -= 1
    return +spans


def _our_spans(module: s.Module) -> Counter:
    spans: Counter = Counter()

    def visit(value) -> None:
        if isinstance(value, s.Expr | s.Statement) and not isinstance(value, s.GrainStmt | s.ParamDef |
                                                                      s.SourceDef):
            span = value.span
            spans[(span.line, span.column, span.end_line, span.end_column)] += 1
        if attrs.has(type(value)):
            for field in attrs.fields(type(value)):
                if field.name != "span":
                    visit(getattr(value, field.name))
        elif isinstance(value, tuple | list):
            for item in value:
                visit(item)

    visit(module.statements)
    return spans


def _same_spans(text: str) -> None:
    try:
        module = parsing.parse(text, "t.tree")
    except MetrictreeError:
        return
    assert _our_spans(module) == _reference_spans(_lark_tree(text))


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_spans_of_the_bundled_trees_are_lark_s(path):
    _same_spans(path.read_text("utf-8"))


@pytest.mark.parametrize("text", [
    "metric x = (a + b) * -(c)\n",
    "metric x = ((a))\n",
    "metric x = -5% + -(3) + +2\n",
    "metric x = abs((a), b = (1 + 2))\n",
    'alert not (x in [1, (2), -3]) and y is not null where region == "N" { severity critical }\n',
    "target (x) >= 30% by 2027-03-31 from 2026-01 every month checkpoints { 2026-06: 10%, } where (a == 1)\n",
    'import crm (ltv), saas with orders = invoices { amount = (invoices.q * invoices.p), }\n',
    "tree t \"T\"\ninclude \"x.tree\"\ncurrency RUB\nparent <~ a, b\nmetric g { label \"G\" }\n",
])
def test_spans_of_tricky_constructs_are_lark_s(text):
    _same_spans(text)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(STRUCTURED)
def test_spans_of_generated_trees_are_lark_s(text):
    _same_spans(text)


def test_a_problem_inside_a_statement_does_not_hide_a_later_syntax_error():
    text = "metric x = 1e309\nmetric y = (\n"
    with pytest.raises(MetrictreeError) as info:
        parsing.parse(text, "t.tree")
    assert str(info.value.diagnostics[0].span) == "t.tree:2:12"
    with pytest.raises(MetrictreeError, match="too large for a float") as info:
        parsing.parse("metric x = 1e309\nmetric y = 2\n", "t.tree")
    assert str(info.value.diagnostics[0].span) == "t.tree:1:12"
