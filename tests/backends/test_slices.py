"""Status rules with a ``where`` slice on SQL engines: the slice runs in the engine and gives the Arrow results.

The slice becomes the WHERE of the rows the source's queries read (built by the same generator
as a metric's ``where``), so only aggregates leave the engine; the status equals the one computed
from the same tables on Arrow, for every kind of slice, including one that keeps no rows, a null
dimension and a hostile value.
"""

from __future__ import annotations

import datetime as dt

import metrictree
import pyarrow as pa
import pytest
from backend_support import TREES, same_values
from metrictree.errors import DataError

TREE = """\
tree mail "Mailings and orders"
grain month
source emails { time sent_at dimensions segment, region }
source orders { time order_date dimensions region }
metric delivered = sum(emails.delivered)
metric opens     = sum(emails.opened)
metric open_rate = opens / delivered { label "Open rate" unit % level operational }
metric revenue   = sum(orders.amount) { unit RUB }
metric buyers    = count_distinct(orders.customer)
"""

SLICES = ['segment == "new"', 'segment in ["regular", "vip"]', 'segment not in ["vip"]', "segment is null",
          'segment == "new" or region == "South"', 'not (segment == "new") and region != "West"',
          'segment == "nobody"', 'segment == "it\'s; DROP TABLE emails; --"', 'region in ["Ünïcödé ✓"]']


def _tables() -> dict[str, pa.Table]:
    rows = []
    for month in range(1, 7):
        rows.append((dt.date(2026, month, 5), "new", "North", 50, 4 + month))
        rows.append((dt.date(2026, month, 6), "regular", "South", 50, 15))
        rows.append((dt.date(2026, month, 7), None, "Ünïcödé ✓", 10, month % 3))
        rows.append((dt.date(2026, month, 8), "it's; DROP TABLE emails; --", "West", 20, 3))
    rows.append((dt.date(2026, 1, 9), "vip", None, 0, 0))
    emails = pa.table({"sent_at": pa.array([r[0] for r in rows], pa.date32()), "segment": [r[1] for r in rows],
                       "region": [r[2] for r in rows], "delivered": [r[3] for r in rows],
                       "opened": [r[4] for r in rows]})
    orders = pa.table({"order_date": pa.array([dt.date(2026, 1 + i % 6, 10) for i in range(18)], pa.date32()),
                       "region": [["North", "South", None][i % 3] for i in range(18)],
                       "customer": [f"c{i % 7}" for i in range(18)],
                       "amount": [float(10 + i) for i in range(18)]})
    return {"emails": emails, "orders": orders}


def _rules() -> str:
    lines = []
    for i, where in enumerate(SLICES):
        escaped = where.replace("\\", "\\\\")
        lines.append(f"target open_rate >= {25 + i}% by 2026-11 from 2026-01 where {escaped}")
        lines.append(f"alert open_rate < {15 + i}% where {escaped}")
    lines.append('alert revenue < 40 where region == "North"')
    lines.append('target buyers >= 6 by 2026-12 where region in ["South"]')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def tables():
    return _tables()


@pytest.fixture(scope="module")
def bound(load, tables):
    return load(tables)


@pytest.mark.parametrize("at", ["2026-03", "2026-06"])
def test_sliced_rules_give_the_arrow_status(tables, bound, at):
    tree = metrictree.loads(TREE + _rules())
    expected = tree.status(tables, at=at).to_dict()
    engine_data, engine = bound
    engine.log.clear()
    found = tree.status(engine_data, at=at).to_dict()
    assert same_values(expected, found) == []
    states = [t["state"] for t in expected["targets"]]
    assert len(set(states)) > 1  # the slices differ, so a slice that is ignored would show
    sliced = [q.sql for q in engine.log if "__slice" in q.sql]
    assert sliced and all("WHERE" in q for q in sliced)
    # Only aggregates came back: at most one row per month and slice group, never the rows.
    assert all(q.rows <= 6 * 5 for q in engine.log)


def test_a_bundled_tree_with_a_sliced_alert(sample, on_engine):
    tree = metrictree.load(TREES / "email_engagement.tree")
    assert any(a.where is not None for a in tree.alerts)
    bound, _ = on_engine
    assert same_values(tree.status(sample).to_dict(), tree.status(bound).to_dict()) == []


def test_a_slice_over_a_missing_column_is_a_clear_error(bound, tables):
    engine_data, engine = bound
    tree = metrictree.loads(TREE + 'alert open_rate < 20% where segment == "new"')
    without = {**engine_data, "emails": engine_data["orders"]}  # orders has no segment column
    with pytest.raises(DataError, match="has no column 'segment'"):
        tree.status(without)
