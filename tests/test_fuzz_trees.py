"""Fuzzing tree files: every text either loads or raises metrictree's own error, located at file:line:col.

Three kinds of input, all from hypothesis:

- statements built from the grammar (sources, params, metrics with random expressions, links,
  targets, alerts, includes, imports), some of them then broken;
- token soup: the language's words, names, numbers, strings and symbols in random order;
- the bundled trees, mutated (a slice deleted, repeated or replaced, a random token put in, the
  file cut short).

The default run tries a few hundred inputs of each kind. The long campaign (``-m slow``, run by
.ci/steps.d/40-fuzz.sh) tries ``METRICTREE_FUZZ_EXAMPLES`` of each (default 40,000; .ci/steps.d/40-fuzz.sh sets 140,000, so 420,000 in all).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metrictree
from metrictree.errors import MetrictreeError

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = [p.read_text("utf-8") for p in sorted((ROOT / "trees").glob("*.tree"))]
NAME = "fuzz.tree"

NAMES = st.sampled_from(["revenue", "orders", "amount", "status", "region", "aov", "m1", "m2", "x", "d",
                         "customer_id", "churn", "margin", "_a", "Ünïcode", "select", "metric", "where"])
NUMBERS = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr),
                    st.sampled_from(["0", "1e308", "1e309", "9" * 30, "0.5%", "150%", "-3", "007"]))
STRINGS = st.text(max_size=12).map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"')
PERIODS = st.sampled_from(["2026-10", "2026-Q4", "2026-W41", "2026-10-05", "2026", "2026-13", "2026-W60", "0001-01",
                           "9999-12"])
FUNCTIONS = st.sampled_from(["sum", "count", "count_distinct", "avg", "min", "max", "abs", "round", "coalesce", "if",
                             "change", "rolling_sum", "cumulative_sum", "unknown_fn", "exp", "power"])


def _expressions():
    atoms = st.one_of(NAMES, NUMBERS, STRINGS, st.sampled_from(["true", "false", "null"]),
                      st.tuples(NAMES, NAMES).map(".".join),
                      st.tuples(NAMES, st.integers(-5, 2)).map(lambda p: f"{p[0]}[{p[1]}]"))

    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "==", "!=", "<", ">=", "and", "or"]), inner)
            .map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda e: f"({e})"), inner.map(lambda e: f"-{e}"), inner.map(lambda e: f"not {e}"),
            st.tuples(FUNCTIONS, st.lists(inner, max_size=4)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
            st.tuples(inner, st.lists(inner, max_size=3)).map(lambda t: f"{t[0]} in [{', '.join(t[1])}]"),
            inner.map(lambda e: f"{e} is not null"))

    return st.recursive(atoms, extend, max_leaves=12)


EXPR = _expressions()
META = st.lists(st.one_of(
    STRINGS.map(lambda s: f"label {s}"), STRINGS.map(lambda s: f"format {s}"),
    st.sampled_from(["unit RUB", "unit %", "direction up", "direction sideways", "level strategic", "external",
                     "controllable yes", "severity critical", 'message "x"', 'owner "me"', "lable \"x\""])),
    max_size=3).map(lambda entries: (" { " + " ".join(entries) + " }") if entries else "")

STATEMENTS = st.one_of(
    st.tuples(NAMES, st.one_of(st.none(), STRINGS)).map(lambda t: f"tree {t[0]}" + (f" {t[1]}" if t[1] else "")),
    st.sampled_from(["grain month", "grain week", "grain fortnight", "import crm", "import crm (ltv)",
                     "import nope", 'include "other.tree"', 'include "/etc/passwd"', 'include "../x.tree"']),
    st.tuples(NAMES, NUMBERS, META).map(lambda t: f"param {t[0]} = {t[1]}{t[2]}"),
    st.tuples(NAMES, NAMES, st.lists(NAMES, max_size=3), st.one_of(st.none(), NAMES)).map(
        lambda t: f"source {t[0]} {{ time {t[1]}" + (f" dimensions {', '.join(t[2])}" if t[2] else "")
        + (f" entity {t[3]}" if t[3] else "") + " }"),
    st.tuples(NAMES, EXPR, st.one_of(st.none(), EXPR), META).map(
        lambda t: f"metric {t[0]} = {t[1]}" + (f" where {t[2]}" if t[2] else "") + t[3]),
    st.tuples(NAMES, st.lists(NAMES, min_size=1, max_size=3)).map(lambda t: f"{t[0]} <~ {', '.join(t[1])}"),
    st.tuples(EXPR, PERIODS, st.one_of(st.none(), PERIODS), st.lists(st.tuples(PERIODS, NUMBERS), max_size=2)).map(
        lambda t: f"target {t[0]} by {t[1]}" + (f" from {t[2]}" if t[2] else "")
        + (" checkpoints { " + ", ".join(f"{p}: {v}" for p, v in t[3]) + " }" if t[3] else "")),
    st.tuples(EXPR, st.one_of(st.none(), EXPR), META).map(
        lambda t: f"alert {t[0]}" + (f" where {t[1]}" if t[1] else "") + t[2]),
)
# A small valid core, so that many inputs get past parsing into the compiler's checks.
CORE = ('source orders { time d dimensions region, status entity customer_id }\n'
        'metric revenue = sum(orders.amount) where orders.status == "paid"\n')
STRUCTURED = st.tuples(st.booleans(), st.lists(STATEMENTS, max_size=8)).map(
    lambda t: (CORE if t[0] else "") + "\n".join(t[1]) + "\n")

TOKENS = st.one_of(NAMES, NUMBERS, STRINGS, PERIODS, st.sampled_from(
    ["tree", "grain", "import", "include", "param", "source", "metric", "target", "alert", "time", "dimensions",
     "entity", "where", "by", "from", "every", "checkpoints", "label", "unit", "format", "{", "}", "(", ")", "[", "]",
     ",", ":", "=", "==", "<~", "+", "-", "*", "/", "%", ".", "\n", "#", "\t", "\x00", "\x1b", "×", "'", ";", "\r"]))
SOUP = st.lists(TOKENS, max_size=40).map(" ".join)


@st.composite
def _mutants(draw):
    text = draw(st.sampled_from(BUNDLED))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        j = draw(st.integers(i, min(len(text), i + 80)))
        action = draw(st.sampled_from(["delete", "repeat", "insert", "replace", "cut"]))
        if action == "delete":
            text = text[:i] + text[j:]
        elif action == "repeat":
            text = text[:j] + text[i:j] + text[j:]
        elif action == "insert":
            text = text[:i] + " " + draw(st.one_of(TOKENS, EXPR)) + " " + text[i:]
        elif action == "replace":
            text = text[:i] + draw(st.text(max_size=6)) + text[j:]
        else:
            text = text[:i]
    return text


def check(text: str) -> None:
    """The property: a Tree, or metrictree's own error with every error located in a file."""
    try:
        tree = metrictree.loads(text, NAME)
    except MetrictreeError as exc:
        errors = exc.errors or exc.diagnostics
        assert errors, "an error without diagnostics"
        for diagnostic in errors:
            assert diagnostic.span is not None, f"no location: {diagnostic.render()}"
            assert diagnostic.span.line >= 1 and diagnostic.span.column >= 1, diagnostic.render()
            rendered = diagnostic.render()
            assert str(diagnostic.span) in rendered and len(rendered) < 4000
        return
    assert tree.metrics
    hash(tree)


KINDS = {"structured": STRUCTURED, "soup": SOUP, "mutant": _mutants()}
QUICK = settings(max_examples=150, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LONG = settings(max_examples=int(os.environ.get("METRICTREE_FUZZ_EXAMPLES", "40000")), deadline=None,
                database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fuzzed_trees_load_or_fail_with_a_located_error(kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # includes resolve in an empty folder

    @QUICK
    @given(KINDS[kind])
    def run(text):
        check(text)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fuzz_campaign(kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    @LONG
    @given(KINDS[kind])
    def run(text):
        check(text)

    run()


def test_the_bundled_trees_pass_the_property():
    for text in BUNDLED:
        check(text)
