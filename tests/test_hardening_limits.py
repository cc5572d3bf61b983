"""Issue 10, item 23: did-you-mean is bounded, and errors about huge files stay cheap.

Speed is measured by bench/compile_time.py in fresh processes, not here; these tests pin the bounds.
"""

from __future__ import annotations

import pytest

import metrictree
from metrictree.compiling import SUGGESTION_BUDGET
from metrictree.errors import CompileError, did_you_mean


def test_did_you_mean_still_finds_the_close_name_in_a_huge_pool():
    pool = [f"metric_{i}" for i in range(50_000)] + ["revenue", "Revenue_total"]
    assert did_you_mean("revnue", pool) == "did you mean 'revenue'?"
    assert did_you_mean("metric_4999x", pool) is not None
    assert did_you_mean("x" * 10_000, pool) is None


def test_only_the_first_unknown_names_get_suggestions():
    n = SUGGESTION_BUDGET + 30
    text = "source orders { time d }\nmetric revenue = sum(orders.amount)\n" + "".join(
        f"metric m{i} = revenu + 0 * {i}\n" for i in range(n))
    with pytest.raises(CompileError) as info:
        metrictree.loads(text)
    unknown = [d for d in info.value.diagnostics if d.code == "unknown-name"]
    assert len(unknown) == n
    assert sum(d.hint == "did you mean 'revenue'?" for d in unknown) == SUGGESTION_BUDGET
    assert all(d.span is not None for d in unknown)
