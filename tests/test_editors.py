"""The TextMate grammar under editors/: valid, its regexes compile, and it colours a bundled tree as it should."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lark.lexer import PatternStr

from metrictree.formatting import _grammar

ROOT = Path(__file__).resolve().parents[1]
GRAMMAR = json.loads((ROOT / "editors" / "metrictree.tmLanguage.json").read_text("utf-8"))
REPOSITORY = GRAMMAR["repository"]


def _rules():
    for include in GRAMMAR["patterns"]:
        yield include["include"][1:], REPOSITORY[include["include"][1:]]


def _regexes():
    for name, rule in REPOSITORY.items():
        for key in ("match", "begin", "end"):
            if key in rule:
                yield f"{name}.{key}", rule[key]
        for inner in rule.get("patterns", ()):
            yield f"{name}.patterns", inner["match"]


def test_the_grammar_is_complete_json_for_editors():
    assert GRAMMAR["scopeName"] == "source.metrictree" and GRAMMAR["fileTypes"] == ["tree"]
    assert {include["include"][1:] for include in GRAMMAR["patterns"]} == set(REPOSITORY)
    package = json.loads((ROOT / "editors" / "package.json").read_text("utf-8"))
    (contributed,) = package["contributes"]["grammars"]
    assert (ROOT / "editors" / contributed["path"]).resolve() == ROOT / "editors" / "metrictree.tmLanguage.json"
    assert package["contributes"]["languages"][0]["extensions"] == [".tree"]
    json.loads((ROOT / "editors" / "language-configuration.json").read_text("utf-8"))


@pytest.mark.parametrize(("where", "pattern"), list(_regexes()), ids=[w for w, _ in _regexes()])
def test_every_regex_compiles(where, pattern):
    re.compile(pattern)


def _scopes(rule: dict, match: re.Match) -> list[tuple[str, str]]:
    if "captures" in rule:
        return [(match.group(int(i)), c["name"]) for i, c in rule["captures"].items() if match.group(int(i))]
    return [(match.group(), rule["name"])]


def tokenize(line: str) -> list[tuple[str, str]]:
    """What an editor does with one line: at each place, the leftmost match of the top-level patterns
    (the first pattern wins a tie); a string runs from its `begin` to its `end`."""
    out, position = [], 0
    compiled = [(name, rule, re.compile(rule.get("match") or rule["begin"])) for name, rule in _rules()]
    while position < len(line):
        best = None
        for name, rule, regex in compiled:
            found = regex.search(line, position)
            if found and (best is None or found.start() < best[2].start()):
                best = (name, rule, found)
        if best is None:
            break
        name, rule, found = best
        if "begin" in rule:
            end = re.compile(rule["end"]).search(line, found.end())
            stop = end.end() if end else len(line)
            while end and line[end.start() - 1:end.start()] == "\\" and end.group():
                end = re.compile(rule["end"]).search(line, end.end())
                stop = end.end() if end else len(line)
            out.append((line[found.start():stop], rule["name"]))
            position = stop
        else:
            out.extend(_scopes(rule, found))
            position = max(found.end(), position + 1)
    return out


def _all_tokens(path: Path) -> set[tuple[str, str]]:
    return {token for line in path.read_text("utf-8").splitlines() for token in tokenize(line)}


def test_a_bundled_tree_is_coloured():
    tokens = _all_tokens(ROOT / "trees" / "crm_ltv.tree")
    expected = {
        ("# The CRM LTV tree: why did customer lifetime value move?", "comment.line.number-sign.metrictree"),
        ("metric", "storage.type.metrictree"),
        ("revenue", "entity.name.function.metrictree"),
        ("where", "keyword.other.metrictree"),
        ("label", "keyword.other.metrictree"),
        ("grain", "keyword.control.metrictree"),
        ("alert", "keyword.control.metrictree"),
        ("sum", "support.function.metrictree"),
        ("churned_customers", "support.function.metrictree"),
        ("orders", "variable.other.object.metrictree"),
        ("amount", "variable.other.property.metrictree"),
        ('"paid"', "string.quoted.double.metrictree"),
        ("30%", "constant.numeric.metrictree"),
        ("2027-03-31", "constant.other.period.metrictree"),
        ("-1", "constant.numeric.shift.metrictree"),
        ("<~", "keyword.operator.metrictree"),
        ("==", "keyword.operator.metrictree"),
        ("in", "keyword.operator.logical.metrictree"),
    }
    assert expected <= tokens, expected - tokens


def test_strings_with_escapes_and_comments_inside_strings():
    assert tokenize('label "a \\"b\\" # not a comment"  # a comment') == [
        ("label", "keyword.other.metrictree"),
        ('"a \\"b\\" # not a comment"', "string.quoted.double.metrictree"),
        ("# a comment", "comment.line.number-sign.metrictree"),
    ]


def test_every_keyword_of_the_language_is_highlighted():
    words = {t.pattern.value for t in _grammar().terminals
             if isinstance(t.pattern, PatternStr) and t.pattern.value.isalpha()}
    highlighted = set()
    for name in ("statement", "keyword", "constant", "logic"):
        highlighted |= {w for w in words if re.fullmatch(REPOSITORY[name]["match"], w)}
    assert words - highlighted == set(), "add the new keywords to editors/metrictree.tmLanguage.json"


def test_a_name_in_backticks_is_one_name():
    assert ("`Order Date`", "variable.other.quoted.metrictree") in tokenize('source orders { time `Order Date` }')
    assert ("`where`", "variable.other.quoted.metrictree") in tokenize("metric `where` = 1")
