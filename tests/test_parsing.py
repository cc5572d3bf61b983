"""The parser: syntax nodes with spans, and exact error texts for common mistakes."""

import textwrap

import pytest

import metrictree
from metrictree import syntax as s
from metrictree.errors import TreeSyntaxError
from metrictree.parsing import parse


def test_parses_every_statement_kind_into_syntax_nodes():
    module = parse(textwrap.dedent('''
        # a comment
        tree shop "Магазин"
        grain week
        import crm
        include "common.tree"
        param margin = 70% { label "Маржа" }
        source orders {
            time order_date
            dimensions channel, region
            entity customer_id
        }
        metric revenue = sum(orders.amount) where orders.status in ["paid", "done"] and not orders.test {
            label "Выручка"
            unit RUB
            direction up
            controllable no
            external
        }
        metric growth = change(revenue)
        metric engagement
        engagement <~ growth, revenue
        target revenue >= 1000 by 2027-03-31 from 2026-10 every month where region == "North" { label "goal" }
        alert growth < -10% where channel == "app" { severity critical message "down" }
    '''), "shop.tree")
    kinds = [type(st).__name__ for st in module.statements]
    assert kinds == ["TreeHeader", "GrainStmt", "ImportStmt", "IncludeStmt", "ParamDef", "SourceDef", "MetricDef",
                     "MetricDef", "MetricDef", "LinkStmt", "TargetStmt", "AlertStmt"]
    header, grain, imp, inc, param, source, revenue, growth, group, link, target, alert = module.statements
    assert header == s.TreeHeader("shop", "Магазин")
    assert param == s.ParamDef("margin", 0.7, True, (s.MetaEntry("label", "Маржа"),))
    assert source.dimensions == ("channel", "region") and source.entity == "customer_id"
    assert revenue.formula == s.Call("sum", (s.Column("orders", "amount"),))
    assert revenue.where == s.Binary("and",
                                     s.InList(s.Column("orders", "status"), (s.Literal("paid"), s.Literal("done"))),
                                     s.Unary("not", s.Column("orders", "test")))
    assert [m.key for m in revenue.meta] == ["label", "unit", "direction", "controllable", "external"]
    assert group.formula is None
    assert link == s.LinkStmt("engagement", ("growth", "revenue"))
    assert target.deadline == "2027-03-31" and target.start == "2026-10" and target.every == "month"
    assert alert.condition == s.Binary("<", s.Name("growth"), s.Literal(-0.1, percent=True))
    assert growth.formula == s.Call("change", (s.Name("revenue"),))


def test_spans_point_at_the_source():
    module = parse("metric aov =\n    revenue / paid_orders\n", "a.tree")
    metric = module.statements[0]
    assert (metric.name_span.line, metric.name_span.column) == (1, 8)
    formula = metric.formula
    assert (formula.span.line, formula.span.column, formula.span.end_column) == (2, 5, 26)
    assert (formula.right.span.line, formula.right.span.column) == (2, 15)
    assert str(formula.span) == "a.tree:2:5"


@pytest.mark.parametrize("text", [
    "a + b * c", "(a + b) * c", "a - (b - c)", "-a / b", "a[-1] / b[-12] - 1", 'if(a > 5%, b, null)',
    'orders.status == "paid" and (orders.x > 1 or orders.y is not null)', "not a in [1, 2]",
])
def test_printing_round_trips(text):
    expr = parse(f"metric m = {text}").statements[0].formula
    again = parse(f"metric m = {expr.to_source()}").statements[0].formula
    assert again == expr


def test_operator_precedence():
    expr = parse("metric m = a + b * -c / d").statements[0].formula
    assert expr == s.Binary("+", s.Name("a"), s.Binary("/", s.Binary("*", s.Name("b"), s.Unary("-", s.Name("c"))),
                                                       s.Name("d")))


MISTAKES = {
    "misspelt statement": ("metrc aov = a / b", """\
shop.tree:1:1: error: unknown statement 'metrc'
    1 | metrc aov = a / b
      | ^^^^^
hint: did you mean 'metric'?"""),
    "formula ends": ("metric aov = revenue /", """\
shop.tree:1:22: error: the file ends in the middle of a statement
    1 | metric aov = revenue /
      |                      ^
hint: expected a value: a name, a number, a percentage, a string in double quotes or '('"""),
    "single equals": ('metric x = sum(orders.amount) where orders.status = "paid"', """\
shop.tree:1:51: error: '=' cannot compare values
    1 | metric x = sum(orders.amount) where orders.status = "paid"
      |                                                   ^
hint: use '==' to test equality"""),
    "unicode times": ("metric x = a × b", """\
shop.tree:1:14: error: unexpected character '×'
    1 | metric x = a × b
      |              ^
hint: multiply with '*'"""),
    "misspelt metadata": ('metric x = a { lable "x" }', """\
shop.tree:1:16: error: unknown word 'lable'
    1 | metric x = a { lable "x" }
      |                ^^^^^
hint: did you mean 'label'?"""),
    "unclosed block": ("source orders {\n    time order_date\n", """\
shop.tree:2:19: error: the file ends inside a block
    2 |     time order_date
      |                   ^
hint: close the block with '}'"""),
    "name starts with a digit": ("metric 2x = a", """\
shop.tree:1:8: error: expected a name, found the number 2
    1 | metric 2x = a
      |        ^
hint: names start with a letter or '_' (e.g. m2_revenue)"""),
    "column in quotes": ('source orders {\n    time "Order Date"\n}', """\
shop.tree:2:10: error: expected a name, found the string "Order Date"
    2 |     time "Order Date"
      |          ^^^^^^^^^^^^
hint: a name that is not one word is written in backticks, not quotes: `Order Date`"""),
    "one-word column in quotes": ('metric x = sum(orders."amount")', """\
shop.tree:1:23: error: expected a name, found the string "amount"
    1 | metric x = sum(orders."amount")
      |                       ^^^^^^^^
hint: write the name without quotes: amount"""),
    "unclosed bracket": ("metric x = sum(orders.amount", """\
shop.tree:1:28: error: the file ends inside brackets
    1 | metric x = sum(orders.amount
      |                            ^
hint: close the bracket with ')'"""),
    "single quotes": ("metric x = sum(orders.a) where orders.s == 'paid'", """\
shop.tree:1:44: error: unexpected character '''
    1 | metric x = sum(orders.a) where orders.s == 'paid'
      |                                            ^
hint: strings are written in double quotes: "paid\""""),
    "unterminated string": ('metric x = "abc', """\
shop.tree:1:12: error: unterminated string
    1 | metric x = "abc
      |            ^
hint: close the string with '"' on the same line"""),
    "link without child": ("churn <~", """\
shop.tree:1:8: error: the file ends in the middle of a statement
    1 | churn <~
      |        ^
hint: expected a name"""),
    "bad deadline": ("target x >= 30% by soon", """\
shop.tree:1:20: error: unexpected 'soon'
    1 | target x >= 30% by soon
      |                    ^^^^
hint: expected a period (2026-10, 2026-Q4, 2026-W41, 2026-10-05 or 2026)"""),
    "two names": ("metric x = a b", """\
shop.tree:1:14: error: unexpected name 'b'
    1 | metric x = a b
      |              ^
hint: a statement starts with a keyword (metric, source, param, target, alert …) or is an influence link \
'parent <~ child'; inside a formula, join names with an operator (+ - * /)"""),
    "semicolon": ("metric x = a;", """\
shop.tree:1:13: error: unexpected character ';'
    1 | metric x = a;
      |             ^
hint: statements need no ';' — start the next statement on a new line"""),
    "misspelt source entry": ("source orders { tme order_date }", """\
shop.tree:1:17: error: unknown word 'tme'
    1 | source orders { tme order_date }
      |                 ^^^
hint: did you mean 'time'?"""),
    "missing operand": ("metric x = (a + ) * 2", """\
shop.tree:1:17: error: unexpected ')'
    1 | metric x = (a + ) * 2
      |                 ^
hint: expected a value: a name, a number, a percentage, a string in double quotes or '('"""),
    "misspelt statement on a later line": ("metric x = a\nmetrik y = b", """\
shop.tree:2:1: error: unknown statement 'metrik'
    2 | metrik y = b
      | ^^^^^^
hint: did you mean 'metric'?"""),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_syntax_errors_read_exactly(name):
    text, expected = MISTAKES[name]
    with pytest.raises(TreeSyntaxError) as caught:
        parse(text, "shop.tree")
    assert str(caught.value) == expected
    assert len(caught.value.diagnostics) == 1 and caught.value.diagnostics[0].span.file == "shop.tree"


def test_syntax_errors_are_metrictree_errors_from_load(tmp_path):
    path = tmp_path / "broken.tree"
    path.write_text("metric x = (1 +\n", "utf-8")
    with pytest.raises(metrictree.MetrictreeError) as caught:
        metrictree.load(path)
    assert str(caught.value).startswith(f"{path}:1:")


# --------------------------------------------------------------------------- names in backticks


def test_a_name_in_backticks_is_the_text_between_them():
    module = parse('source orders { time `Order Date` dimensions `Sales channel` }\n'
                   'metric `where` = sum(orders.`Net amount (EUR)`) where orders.`Sales channel` == "web"\n')
    source, metric = module.statements
    assert source.time == "Order Date" and source.dimensions == ("Sales channel",)
    assert metric.name == "where"
    assert metric.formula.args[0] == s.Column("orders", "Net amount (EUR)")
    assert metric.formula.to_source() == "sum(orders.`Net amount (EUR)`)"
    assert parse(f"metric m = {metric.formula.to_source()}\n").statements[0].formula == metric.formula


@pytest.mark.parametrize(("name", "written"), [("revenue", "revenue"), ("Order Date", "`Order Date`"),
                                               ("where", "`where`"), ("2024", "`2024`"), ("день", "день")])
def test_spell_writes_a_name_as_a_tree_file_does(name, written):
    assert s.spell(name) == written


def test_keywords_are_the_grammars_words():
    import importlib.resources
    import re

    grammar = importlib.resources.files("metrictree.grammars").joinpath("metrictree.lark").read_text("utf-8")
    assert s.KEYWORDS == set(re.findall(r'"([a-z_]+)"', grammar))


@pytest.mark.parametrize("text", ["metric x = orders.`a\n", "metric y = 1 + ``\n"])
def test_an_unclosed_or_empty_backtick_name_is_a_located_error(text):
    with pytest.raises(TreeSyntaxError) as info:
        parse(text, "t.tree")
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.message == "unterminated name in backticks"
    assert diagnostic.span.line == 1 and "close the name with '`'" in diagnostic.hint


def test_a_column_that_is_not_one_word_is_suggested_in_backticks(tmp_path):
    import datetime as dt

    import pyarrow as pa

    from metrictree.errors import DataError

    tree = metrictree.loads("source orders { time Order_Date }\nmetric revenue = sum(orders.`Net amount`)\n")
    data = pa.table({"Order Date": [dt.date(2026, 1, 1)], "Net amount": [2.5]})
    with pytest.raises(DataError) as info:
        tree.evaluate({"orders": data})
    hint = info.value.diagnostics[0].hint
    assert hint.startswith("did you mean `Order Date`? its columns: `Order Date`, `Net amount`")
    fixed = metrictree.loads("source orders { time `Order Date` }\nmetric revenue = sum(orders.`Net amount`)\n")
    assert fixed.evaluate({"orders": data}).to_pydict() == {"period": ["2026-01"], "revenue": [2.5]}
