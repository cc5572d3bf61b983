"""`metrictree fmt`: one canonical layout, idempotent, comments kept, meaning unchanged."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import metrictree
from metrictree import formatting
from metrictree.cli import main
from metrictree.errors import TreeSyntaxError

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted([*ROOT.glob("trees/*.tree"), *ROOT.glob("plugins/libraries/*.tree")])
DOCS = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md"])


def _doc_blocks() -> list[tuple[str, str]]:
    """Every ```tree… block of the docs that parses, as (where, text)."""
    found = []
    for page in DOCS:
        lines = page.read_text("utf-8").splitlines()
        i = 0
        while i < len(lines):
            if re.match(r"^```tree\S*\s*$", lines[i]):
                j = i + 1
                while not lines[j].startswith("```"):
                    j += 1
                text = "\n".join(lines[i + 1:j]) + "\n"
                try:
                    metrictree.parse(text)
                except TreeSyntaxError:
                    pass  # an example of a syntax error: nothing to format
                else:
                    found.append((f"{page.name}:{i + 1}", text))
                i = j
            i += 1
    return found


EXAMPLES = [(str(p.relative_to(ROOT)), p.read_text("utf-8")) for p in BUNDLED] + _doc_blocks()
IDS = [where for where, _ in EXAMPLES]


def _statements(text: str):
    return metrictree.parse(text).statements


def _compiled(text: str):
    """The compiled tree, or None for a library or fragment that does not compile on its own."""
    try:
        return metrictree.loads(text, "shop.tree")
    except metrictree.MetrictreeError:
        return None


def _comments(text: str) -> list[str]:
    return [str(c).rstrip() for c in formatting._parse(text)[2]]


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=IDS)
def test_bundled_trees_and_doc_examples_are_formatted(where, text):
    assert formatting.format_text(text, where) == text


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=IDS)
def test_formatting_is_idempotent_and_keeps_the_meaning(where, text):
    squeezed = " ".join(text.split()) if "#" not in text else text
    once = formatting.format_text(squeezed)
    assert formatting.format_text(once) == once
    assert _statements(once) == _statements(text)
    before = _compiled(text)
    if before is not None:
        assert _compiled(once) == before


def test_the_example_in_the_authoring_docs_is_what_fmt_does():
    page = (ROOT / "docs" / "authoring.md").read_text("utf-8")
    before, after = re.findall(r"```(?:text|tree-fragment)\n(.*?)```", page.split("For example", 1)[1], re.S)[:2]
    assert formatting.format_text(before) != before
    assert formatting.format_text(before) == after


def test_the_layout():
    messy = """tree   shop "Shop"
grain month
source orders { time order_date   dimensions channel,region entity customer_id }
metric revenue=sum( orders.amount )where orders.status=="paid"{unit RUB}
metric aov = revenue/paid_orders {
  label "AOV" }


metric paid_orders = count(orders) where orders.status == "paid" { label "Paid orders" unit RUB level operational direction up }
metric x = -revenue[-1] + f(a, k=2)*(b-c) where orders.region in ["a","b"] and not orders.x is null
a<~b,c
target aov >= 5% by 2026-Q1 from 2026-01 every month checkpoints { 2026-02: 1%, 2026-03: -2% } where r == "x" { label "t" }
"""
    assert formatting.format_text(messy) == """tree shop "Shop"
grain month
source orders {
    time order_date
    dimensions channel, region
    entity customer_id
}
metric revenue = sum(orders.amount) where orders.status == "paid" { unit RUB }
metric aov = revenue / paid_orders { label "AOV" }

metric paid_orders = count(orders) where orders.status == "paid" {
    label "Paid orders"
    unit RUB
    level operational
    direction up
}
metric x = -revenue[-1] + f(a, k=2) * (b - c)
    where orders.region in ["a", "b"] and not orders.x is null
a <~ b, c
target aov >= 5% by 2026-Q1 from 2026-01 every month
    checkpoints { 2026-02: 1%, 2026-03: -2% }
    where r == "x" { label "t" }
"""


def test_long_formulas_and_lists_break_inside_100_columns():
    names = ", ".join(f"driver_number_{i}" for i in range(12))
    text = (f"metric total = {' + '.join(f'driver_number_{i}' for i in range(12))} {{ unit RUB }}\n"
            f"total <~ {names}\n")
    out = formatting.format_text(text)
    assert max(len(line) for line in out.splitlines()) <= formatting.WIDTH
    assert out.startswith("metric total = driver_number_0\n    + driver_number_1\n")
    assert formatting.format_text(out) == out
    assert _statements(out) == _statements(text)


SAMPLE = (ROOT / "trees" / "crm_ltv.tree").read_text("utf-8")
# Trees with every construct: the bundled ones, and doc examples with bindings, checkpoints, time formats.
_KEYS = ("with orders", "checkpoints", 'format "', "timezone", "currency", "include")
_VARIED = [(w, t) for w, t in EXAMPLES if w.endswith(".tree") or any(key in t for key in _KEYS)]
# The default run takes one example of each construct; the slow run (.ci/steps.d/61-fmt.sh) takes them all.
_FIRST = {"trees/crm_ltv.tree"} | {next(w for w, t in _VARIED if key in t and not w.endswith(".tree"))
                                   for key in _KEYS if any(key in t for _, t in _VARIED)}
VARIED = [pytest.param(w, t, id=w, marks=() if w in _FIRST else pytest.mark.slow) for w, t in _VARIED]


def _respaced(text: str, seed: int) -> str:
    """The same tokens with random spaces and single newlines between them (no comments, no blank lines)."""
    rng = random.Random(seed)
    _, tokens, _ = formatting._parse(text)
    gaps = [" ", "  ", "\n", "\n        ", "\t", " \n "]
    return "".join(str(t) + rng.choice(gaps) for t in tokens)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("where", "text"), VARIED)
def test_the_layout_does_not_depend_on_the_original_spacing(where, text, seed):
    plain = _respaced(text, -1)
    assert formatting.format_text(_respaced(text, seed)) == formatting.format_text(plain)


@pytest.mark.parametrize("own_line", [False, True], ids=["trailing", "own-line"])
@pytest.mark.parametrize(("where", "original"), VARIED)
def test_a_comment_after_any_token_is_kept_in_place(where, original, own_line):
    _, tokens, _ = formatting._parse(original)
    pieces = []
    for i, token in enumerate(tokens):
        pieces.append(str(token))
        pieces.append(f"\n# note {i}\n" if own_line else f"  # note {i}\n")
    text = "".join(pieces)
    out = formatting.format_text(text)
    assert _comments(out) == [f"# note {i}" for i in range(len(tokens))]
    assert formatting.format_text(out) == out
    assert _statements(out) == _statements(original)
    assert _compiled(out) == _compiled(original)
    # Each comment stays next to its token: on the token's line, or on its own line before the next.
    lines = out.splitlines()
    for i, token in enumerate(tokens[:-1]):
        (line_no,) = [n for n, line in enumerate(lines) if line.strip().endswith(f"# note {i}")]
        if own_line:
            assert lines[line_no].strip() == f"# note {i}"
        else:
            assert lines[line_no].split("  # note")[0].rstrip().endswith(str(token))


def test_comments_in_blocks_headers_and_at_the_end():
    text = """# header

# about the tree
tree shop  # trailing on the header
source orders {
    label "Orders"
    # before time
    time order_date  # after time

    # before the closing brace
}
metric revenue = sum(orders.amount) {
    unit RUB  # in a block
    # last in the block
}
# at the end

# after a blank line
"""
    out = formatting.format_text(text)
    assert out == text


def test_a_comment_after_a_statement_does_not_break_its_block():
    text = 'metric revenue = sum(orders.amount) { unit RUB }  # paid only\nmetric x = f(a,  # why\n  b)\n'
    assert formatting.format_text(text) == (
        "metric revenue = sum(orders.amount) { unit RUB }  # paid only\nmetric x = f(\n    a,  # why\n    b\n)\n")


def test_an_empty_file_stays_empty_and_the_last_line_ends():
    assert formatting.format_text("") == formatting.format_text("\n \n") == ""
    assert formatting.format_text("metric x = 1") == "metric x = 1\n"


def test_blank_lines_are_kept_but_never_more_than_one():
    text = "\n\n# a\n\n\n\nsource orders { time t }\n\n\n\nmetric r = sum(orders.amount)\n\n\n"
    assert formatting.format_text(text) == "# a\n\nsource orders { time t }\n\nmetric r = sum(orders.amount)\n"


def test_a_file_that_does_not_parse_gets_the_usual_diagnostic():
    with pytest.raises(TreeSyntaxError) as caught:
        formatting.format_text("metric aov = revenue / \n", "shop.tree")
    assert caught.value.diagnostics[0].render().startswith("shop.tree:")


def test_brackets_nested_too_deeply_are_a_clear_error_not_a_crash():
    deep = "source o { time t }\nmetric x = " + "(" * 3000 + "sum(o.a)" + ")" * 3000 + "\n"
    try:
        out = formatting.format_text(deep)
    except TreeSyntaxError as exc:
        assert "nest" in exc.diagnostics[0].message
    else:
        assert formatting.format_text(out) == out


# --------------------------------------------------------------------------- the command


MESSY = "source orders {time order_date\n}\nmetric revenue=sum(orders.amount)\n"
TIDY = "source orders { time order_date }\nmetric revenue = sum(orders.amount)\n"


def test_fmt_rewrites_files_in_place_and_folders_recursively(tmp_path):
    (tmp_path / "sub").mkdir()
    a, b = tmp_path / "a.tree", tmp_path / "sub" / "b.tree"
    a.write_text(MESSY)
    b.write_text(TIDY)
    result = CliRunner().invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert a.read_text() == TIDY and b.read_text() == TIDY
    assert "reformatted" in result.output and "1 file reformatted, 1 file left unchanged" in result.output


def test_fmt_check_and_diff_change_nothing(tmp_path):
    path = tmp_path / "shop.tree"
    path.write_text(MESSY)
    result = CliRunner().invoke(main, ["fmt", "--check", str(path)])
    assert result.exit_code == 1
    assert f"would reformat {path}" in result.output
    result = CliRunner().invoke(main, ["fmt", "--diff", str(path)])
    assert result.exit_code == 0
    assert "\n-metric revenue=sum(orders.amount)\n" in result.output
    assert "\n+metric revenue = sum(orders.amount)\n" in result.output
    assert result.output.startswith(f"--- {path}\n+++ {path}\n")
    assert path.read_text() == MESSY
    path.write_text(TIDY)
    result = CliRunner().invoke(main, ["fmt", "--check", str(path)])
    assert result.exit_code == 0 and "1 file left unchanged" in result.output


def test_fmt_reads_stdin_and_reports_syntax_errors(tmp_path):
    result = CliRunner().invoke(main, ["fmt", "-"], input=MESSY)
    assert result.exit_code == 0 and result.output == TIDY
    bad = tmp_path / "bad.tree"
    bad.write_text("metric = 1\n")
    good = tmp_path / "good.tree"
    good.write_text(MESSY)
    result = CliRunner().invoke(main, ["fmt", str(bad), str(good)])
    assert result.exit_code == 1
    assert f"{bad}:1:8: error" in result.output
    assert good.read_text() == TIDY  # the other files are still formatted
