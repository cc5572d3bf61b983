"""The drill-down's first checks of a pass by every dimension, begun on a thread beside the caller (`Fine.warm`):
the same tables as computed when asked, taken by the calls that ask for them, and errors raised there."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest

import metrictree
from metrictree import periods, rollup
from metrictree.pluginmanager import registry as default_registry

TREE = metrictree.load(Path(__file__).resolve().parents[1] / "bench" / "crm.tree")
DIMS = ["channel", "region", "segment"]
COUNTS = ["customers", "churned"]
NAMES = ["revenue", "paid_orders", *COUNTS]


@pytest.fixture(scope="module")
def orders(orders_with_nulls):
    return orders_with_nulls  # guests and orders of no region: tests/conftest.py


def _pass(orders) -> rollup.Fine:
    return rollup.fine_pass(TREE, {"orders": orders}, default_registry(), DIMS, NAMES, COUNTS, "month", {},
                            "2025-08", "2026-10")


WITHIN = [(periods.parse("2026-09", "month"), periods.parse("2026-10", "month")),
          (periods.parse("2026-08", "month"), periods.parse("2026-09", "month"))]


def test_begun_beside_the_caller_the_same_as_when_asked(orders):
    warmed, cold = _pass(orders), _pass(orders)
    warmed.warm(WITHIN, COUNTS)
    assert warmed.checked(WITHIN).equals(cold.checked(WITHIN))
    for dim in DIMS:
        # Asked in another order of the counts: the same columns, in the order asked.
        assert warmed.rolled([dim], COUNTS[::-1], WITHIN).equals(cold.rolled([dim], COUNTS[::-1], WITHIN))
    # What was not begun is computed when asked.
    assert warmed.rolled(["region", "segment"], COUNTS).equals(cold.rolled(["region", "segment"], COUNTS))


def test_the_explanation_takes_what_was_begun(orders, monkeypatch):
    """explain ltv begins the checks of customers and churned over the compared months and the months before
    them (customers[-1]); the drill-down's checks take them; the explanation is that without the thread."""
    taken = []
    real = rollup.Fine.checked

    def checked(self, within):
        taken.append(("checked", tuple(tuple(r) for r in within)) in self._started)
        return real(self, within)

    monkeypatch.setattr(rollup.Fine, "checked", checked)
    data = {"orders": orders}
    once = TREE.explain(data, "ltv", "2026-09", "2026-10", by=DIMS)
    assert taken == [True]
    monkeypatch.setattr(rollup.Fine, "warm", lambda *args, **kwargs: None)
    assert once.to_dict() == TREE.explain(data, "ltv", "2026-09", "2026-10", by=DIMS).to_dict()


def test_an_error_is_raised_where_the_result_is_asked(orders, monkeypatch):
    fine = _pass(orders)

    def broken(self, within):
        raise RuntimeError("broken roll-up")

    monkeypatch.setattr(rollup.Fine, "_checked", broken)
    fine.warm(WITHIN, COUNTS)
    with pytest.raises(RuntimeError, match="broken roll-up"):
        fine.checked(WITHIN)


def test_nothing_begun_on_one_core(orders):
    fine = _pass(orders)
    before = pa.cpu_count()
    pa.set_cpu_count(1)
    try:
        fine.warm(WITHIN, COUNTS)
    finally:
        pa.set_cpu_count(before)
    assert not fine._started  # no thread: everything is computed when asked


def test_what_nobody_asked_for_is_dropped(orders, monkeypatch):
    """After the drill-down (`Fine.settle`), the roll-ups no thread has begun are not computed; asked for
    afterwards, a roll-up is computed as if never begun."""
    fine = _pass(orders)
    began = threading.Event()
    release = threading.Event()
    real = rollup.Fine._checked

    def slow(self, within):
        began.set()
        release.wait(10)
        return real(self, within)

    monkeypatch.setattr(rollup.Fine, "_checked", slow)
    fine.warm(WITHIN, COUNTS)
    assert began.wait(10)  # the thread is inside the first roll-up
    fine.settle()
    release.set()
    jobs = list(fine._started.values())
    assert not jobs[0]._future.cancelled() and all(job._future.cancelled() for job in jobs[1:])
    assert jobs[0].result().equals(_pass(orders).checked(WITHIN))
    cold = _pass(orders)
    assert fine.rolled(["channel"], COUNTS, WITHIN).equals(cold.rolled(["channel"], COUNTS, WITHIN))


def test_an_explanation_that_fails_drops_what_was_begun(orders, monkeypatch):
    """An error after the pass (here in the two states, before the drill-down) still settles it: nothing goes
    on being computed on the thread for an explanation that is over (a server answers the next request)."""
    from metrictree import explaining

    settled = []
    real = rollup.Fine.settle

    def settle(self):
        settled.append(self)
        real(self)

    def broken(*args, **kwargs):
        raise RuntimeError("broken states")

    monkeypatch.setattr(rollup.Fine, "settle", settle)
    monkeypatch.setattr(explaining, "states", broken)
    with pytest.raises(RuntimeError, match="broken states"):
        TREE.explain({"orders": orders}, "ltv", "2026-09", "2026-10", by=DIMS)
    assert settled and all(fine._started for fine in settled)  # the pass had begun its roll-ups, and was settled
