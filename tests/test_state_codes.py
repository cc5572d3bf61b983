"""Customer states over a stream: the pairs' customers coded into the stream's vocabulary, the presence built
chunk by chunk from the held pairs (`metrictree.aggregating._presence`), against one table read at once (the
customers numbered by a hash).

The data has what makes the codes go wrong if anything does: guests (no customer id), rows of no region, a
region that one customer alone buys in, customers who move between channels and regions from order to order,
rows in no order of time (every piece holds most months), customers seen first in a late piece, customers who
only ever buy what the filters leave out, and customer numbers of eight bytes in some pieces only (the
vocabulary held as numbers, then turned back into text).
"""

from __future__ import annotations

import datetime as dt
import random
import textwrap

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import metrictree
from metrictree import aggregating, reading

TREE_TEXT = textwrap.dedent("""
    tree c "codes"
    grain month
    source orders { time day dimensions region, channel entity customer_id }
    metric customers = count_distinct(orders.customer_id) where orders.status == "paid"
    metric anyone = count_distinct(orders.customer_id)
    metric active = active_customers(orders)
    metric active_30 = active_customers(orders, window=30) where orders.status == "paid"
    metric churned = churned_customers(orders) where orders.status == "paid"
    metric retained = retained_customers(orders) where orders.status == "paid"
    metric returning = returning_customers(orders)
    metric new = new_customers(orders) where orders.status == "paid"
    metric back = reactivated_customers(orders, after=2) where orders.status == "paid"
    metric repeat = repeat_customers(orders)
    metric repeat_ever = repeat_customers(orders, min_purchases=3, over="ever") where orders.status == "paid"
    metric lifetime = customer_lifetime(orders) where orders.status == "paid"
    metric churn_rate = churned / customers[-1]
""")
TREE = metrictree.loads(TREE_TEXT)
STATES = ["customers", "anyone", "active", "active_30", "churned", "retained", "returning", "new", "back", "repeat",
          "repeat_ever", "lifetime"]


def orders(n: int = 5000, seed: int = 3, width: str = "eight") -> pa.Table:
    """``width``: "eight" (every customer number eight bytes), "late" (a piece near the end has others),
    "early" (the first rows have others)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        customer = rng.randrange(260)
        day = dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(330))
        if customer >= 240:  # seen only late in the year: new codes in the later pieces
            day = dt.date(2025, 10, 1) + dt.timedelta(days=rng.randrange(60))
        region = rng.choice(["north", "south", "east", None])
        if customer == 7:
            region = "island"  # one customer's region
        status = "refunded" if customer in (11, 12) else rng.choice(["paid", "paid", "paid", "refunded"])
        text = f"C{customer:07d}"
        if (width == "late" and n - 600 <= i < n - 300) or (width == "early" and i < 40):
            text = f"C{customer}"
        rows.append({"day": day, "region": region, "channel": rng.choice(["web", "app", "shop"]),
                     "customer_id": None if i % 19 == 0 else text, "status": status})
    return pa.Table.from_pylist(rows, schema=pa.schema([("day", pa.date32()), ("region", pa.string()),
                                                       ("channel", pa.string()), ("customer_id", pa.string()),
                                                       ("status", pa.string())]))


def _file(table: pa.Table, folder, rows_per_group: int = 350) -> str:
    """The rows as a Parquet file of small row groups: read back in several pieces (`reading.scan`)."""
    path = folder / "orders.parquet"
    pq.write_table(table, path, row_group_size=rows_per_group)
    return str(path)


def _by_key(result, by: list[str]) -> dict:
    return {(row["period"], *(row[d] for d in by)): {m: row[m] for m in STATES} for row in result.to_pylist()}


def _assert_same(streamed, whole, by):
    got, want = _by_key(streamed, by), _by_key(whole, by)
    assert got.keys() == want.keys()
    assert got == want
    assert any(v["churned"] for v in want.values()) and any(v["back"] for v in want.values())


@pytest.mark.parametrize("width", ["eight", "late", "early"])
@pytest.mark.parametrize("by", [[], ["region"], ["region", "channel"]])
def test_states_streamed_in_pieces_are_those_of_one_table(monkeypatch, tmp_path, width, by):
    table = orders(width=width)
    path = _file(table, tmp_path)
    whole = TREE.evaluate({"orders": table}, by=by)
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 700)
    monkeypatch.setattr(aggregating, "_PRESENCE_CHUNK", 333)  # the presence built from many chunks
    built = []
    real_presence = aggregating._presence

    def presence_spy(*args, **kwargs):
        out = real_presence(*args, **kwargs)
        built.append(out)
        return out

    monkeypatch.setattr(aggregating, "_presence", presence_spy)
    _assert_same(TREE.evaluate({"orders": path}, by=by), whole, by)
    # The entities are the vocabulary's codes, 0 … entities-1 (customers 11 and 12 only ever refund: their codes
    # have no pair under the paid filter).
    assert built and all(not len(p) or (pc.min(p.entity).as_py() >= 0 and pc.max(p.entity).as_py() < p.entities)
                         for p in built)


def test_states_streamed_without_pair_codes_are_those_of_one_table(monkeypatch, tmp_path):
    """Where (group key, code) would not fit one int64 (`_MAX_PAIR_CODE`), the pairs are grouped by two
    columns, the codes as a dictionary: the same states."""
    table = orders(n=3000, seed=5)
    by = ["region", "channel"]
    whole = TREE.evaluate({"orders": table}, by=by)
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 500)
    monkeypatch.setattr(aggregating, "_MAX_PAIR_CODE", 1)
    _assert_same(TREE.evaluate({"orders": _file(table, tmp_path)}, by=by), whole, by)


def test_explanations_streamed_and_from_one_table_are_the_same(monkeypatch, tmp_path):
    """Segments, contributions and root causes of a customer-state ratio, drilled down by two dimensions: the
    same to the last digit, whether the rows come as one table or as many pieces."""
    table = orders(n=6000, seed=9)
    args = dict(metric="churn_rate", baseline="2025-09", current="2025-10", by=["region", "channel"])
    whole = TREE.explain({"orders": table}, **args).to_dict()
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 800)
    monkeypatch.setattr(aggregating, "_PRESENCE_CHUNK", 500)
    assert TREE.explain({"orders": _file(table, tmp_path)}, **args).to_dict() == whole


WIDE = ["a", "b", "c", "d", "e", "f"]


def test_six_wide_dimensions_streamed_are_those_of_one_table(monkeypatch, tmp_path):
    """Slice codes of six dimensions of ~1,000 values each overflow an int64 (the group keys renumbered in
    stages): streamed, every state is still that of one table."""
    table = orders(n=3000, seed=13)
    rng = random.Random(17)
    combos: dict = {}
    wide = {d: [] for d in WIDE}
    for customer in table.column("customer_id").to_pylist():
        if customer not in combos or rng.random() < 0.15:  # customers move between combinations
            combos[customer] = [f"{d}{rng.randrange(1000)}" for d in WIDE]
        for d, value in zip(WIDE, combos[customer], strict=True):
            wide[d].append(value)
    for d in WIDE:
        table = table.append_column(d, pa.array(wide[d]))
    tree = metrictree.loads(TREE_TEXT.replace("dimensions region, channel", "dimensions " + ", ".join(WIDE)))
    whole = tree.evaluate({"orders": table}, by=WIDE)
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 400)
    monkeypatch.setattr(aggregating, "_PRESENCE_CHUNK", 250)
    streamed = tree.evaluate({"orders": _file(table, tmp_path)}, by=WIDE)
    assert _by_key(streamed, WIDE) == _by_key(whole, WIDE)

