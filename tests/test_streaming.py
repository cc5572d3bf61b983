"""Streaming: a source read as several tables and merged gives exactly what one table gives.

`reading.scan` hands a file on in tables of `reading.ROWS_PER_TABLE` rows; here that is made tiny, so
that every kind of partial (sums, counts, minima, means, distinct counts with several filters,
customer states with and without a window) is merged across many batches, with null dimensions, null
customers and rows in no particular order.
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
from metrictree import reading

TREE = metrictree.loads(textwrap.dedent("""
    tree s "streaming"
    grain month
    source orders { time day dimensions region, channel entity customer_id }
    metric revenue = sum(orders.amount) where orders.status == "paid"
    metric orders_n = count(orders)
    metric biggest = max(orders.amount)
    metric smallest = min(orders.amount) where orders.status == "paid"
    metric mean_amount = avg(orders.amount)
    metric customers = count_distinct(orders.customer_id) where orders.status == "paid"
    metric refunders = count_distinct(orders.customer_id) where orders.status == "refunded"
    metric anyone = count_distinct(orders.customer_id)
    metric churned = churned_customers(orders) where orders.status == "paid"
    metric retained = retained_customers(orders) where orders.status == "paid"
    metric new = new_customers(orders) where orders.status == "paid"
    metric back = reactivated_customers(orders, after=1)
    metric repeat = repeat_customers(orders, min_purchases=2, over="ever")
    metric lifetime = customer_lifetime(orders) where orders.status == "paid"
    metric active_30 = active_customers(orders, window=30)
    metric aov = revenue / orders_n
    metric churn_rate = churned / customers[-1]
"""))


@pytest.fixture(scope="module")
def orders(tmp_path_factory):
    rng = random.Random(11)
    n = 6000
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(365)) for _ in range(n)]
    table = pa.table({
        "day": pa.array(days, pa.date32()),
        "region": [rng.choice(["north", "south", "east", None]) for _ in range(n)],
        "channel": [rng.choice(["web", "app"]) for _ in range(n)],
        "customer_id": [rng.choice([None] + [f"c{i}" for i in range(300)]) for _ in range(n)],
        "status": [rng.choice(["paid", "paid", "paid", "refunded"]) for _ in range(n)],
        "amount": [round(rng.uniform(1, 500), 2) for _ in range(n)],
    })
    folder = tmp_path_factory.mktemp("stream")
    pq.write_table(table, folder / "orders.parquet", row_group_size=500)  # rows in no order of time
    # In time order, as logs are written: the statistics of the row groups tell which periods are final.
    pq.write_table(table.sort_by("day"), folder / "ordered.parquet", row_group_size=500)
    # One row group far bigger than a table: read batch by batch inside it.
    pq.write_table(table.sort_by("day"), folder / "one_group.parquet", row_group_size=n)
    return table, folder / "orders.parquet"


def rows(evaluation) -> list[dict]:
    return evaluation.table.to_pylist()


@pytest.mark.parametrize("layout", ["orders", "ordered", "one_group"])
@pytest.mark.parametrize("by", [[], ["region"], ["region", "channel"]])
def test_many_small_tables_give_what_one_table_gives(orders, monkeypatch, by, layout):
    table, path = orders
    path = path.with_name(f"{layout}.parquet")
    whole = TREE.evaluation({"orders": table}, by=by)
    seen = []
    real_scan = reading.scan

    def small_scan(*args, **kwargs):
        for piece in real_scan(*args, **{**kwargs, "rows_per_table": 300}):
            seen.append(piece.table.num_rows)
            yield piece

    monkeypatch.setattr(reading, "scan", small_scan)
    streamed = TREE.evaluation({"orders": str(path)}, by=by)
    assert len(seen) >= 5 and sum(seen) == table.num_rows
    assert streamed.table.column_names == whole.table.column_names
    for got, expected in zip(rows(streamed), rows(whole), strict=True):
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-12), (key, got, expected)
            else:
                assert got[key] == value, (key, got, expected)
    assert [(s.metric, s.rows) for s in streamed.skipped] == [(s.metric, s.rows) for s in whole.skipped]
    assert whole.skipped  # the guest rows were counted in both


def test_final_periods_of_a_time_ordered_file_are_counted_and_dropped(orders, monkeypatch):
    from metrictree import aggregating

    table, path = orders
    finalised = []
    real = aggregating._StreamState._finalised

    def spy(self, name, held, before, *rest):
        kept = real(self, name, held, before, *rest)
        finalised.append((before, sum(t.num_rows for t in held), sum(t.num_rows for t in kept)))
        return kept

    monkeypatch.setattr(aggregating._StreamState, "_finalised", spy)
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 1000)
    streamed = TREE.evaluate({"orders": str(path.with_name("ordered.parquet"))}, metrics=["customers", "revenue"])
    whole = TREE.evaluate({"orders": table}, metrics=["customers", "revenue"])
    assert streamed.column("customers").to_pylist() == whole.column("customers").to_pylist()
    assert streamed.column("revenue").to_pylist() == pytest.approx(whole.column("revenue").to_pylist(), rel=1e-12)
    assert finalised and any(kept < held for _, held, kept in finalised)


def test_scan_reports_progress_and_rows(orders):
    from metrictree import progress

    _, path = orders
    steps = []
    with progress.reporting(steps.append):
        TREE.evaluate({"orders": str(path)}, metrics=["revenue"])
    assert steps and steps[-1].done == 6000 and steps[-1].total == 6000
    assert all(s.stage == "orders: reading" for s in steps)
    assert [s.done for s in steps] == sorted(s.done for s in steps)


def test_scan_of_an_empty_range_is_the_usual_error(orders):
    _, path = orders
    with pytest.raises(metrictree.DataError, match="has no rows between"):
        TREE.evaluate({"orders": str(path)}, metrics=["revenue"], start="2030-01", end="2030-02")


def test_pieces_read_ahead_report_progress_to_the_callers_callback(orders, monkeypatch):
    """From the third piece on, pieces are read on another thread: the progress still reaches the caller."""
    from metrictree import progress

    _, path = orders
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 1000)
    steps = []
    with progress.reporting(steps.append):
        TREE.evaluate({"orders": str(path)}, metrics=["revenue", "customers"])
    assert len(steps) >= 5 and steps[-1].done == 6000
    assert [s.done for s in steps] == sorted(s.done for s in steps)


def test_reading_ahead_keeps_the_order_and_raises_where_the_piece_is_asked_for():
    def pieces():
        for i in range(3):
            yield reading.Piece(pa.table({"i": [i]}))
        raise OSError("disk gone")

    got = reading.ahead(pieces())
    assert [next(got).table.column("i")[0].as_py() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(OSError, match="disk gone"):
        next(got)
    with pytest.raises(StopIteration):
        next(got)


def test_a_big_row_group_read_batch_by_batch_keeps_the_time_range(orders, monkeypatch):
    """Inside one row group far bigger than a table the rows come from the Parquet file reader, filtered."""
    table, path = orders
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 300)
    one_group = str(path.with_name("one_group.parquet"))
    got = TREE.evaluate({"orders": one_group}, start="2025-03", end="2025-08")
    expected = TREE.evaluate({"orders": table}, start="2025-03", end="2025-08")
    assert got.column("period").to_pylist() == expected.column("period").to_pylist()
    for name in ("orders_n", "customers", "churned", "new"):
        assert got.column(name).to_pylist() == expected.column(name).to_pylist(), name


def test_row_group_batches_fall_back_to_the_dataset_scan_when_the_types_differ(orders):
    import pyarrow.dataset as ds

    table, path = orders
    one_group = path.with_name("one_group.parquet")
    schema = pq.read_schema(one_group)
    wider = pa.schema([pa.field("amount", pa.float32()) if f.name == "amount" else f for f in schema])
    for given, amount_type in ((None, pa.float64()), (wider, pa.float32())):
        dataset = ds.dataset(one_group, schema=given, format="parquet")
        fragment = next(dataset.get_fragments()).split_by_row_group()[0]
        batches = list(reading._row_group_batches(dataset, fragment, ["day", "amount"], ds.field("amount") > 250,
                                                  size=1000))
        got = pa.Table.from_batches(batches)
        assert got.schema.field("amount").type == amount_type
        assert got.num_rows == pc.sum(pc.greater(table.column("amount"), 250)).as_py()


@pytest.mark.parametrize("at_most, sizes", [(False, [1000] * 6), (True, [500] * 12)])
def test_runs_of_row_groups_stop_short_of_the_size_when_asked(orders, piece_sizes, at_most, sizes):
    """Row groups of 500 rows, tables of 800: a run ends at the first row group that reaches 800 (two a table),
    or, within `reading.pieces_of(..., at_most=True)`, before the one that would pass it (one a table). The
    same numbers either way (a sum of fractional amounts may round differently in its last digit)."""
    table, path = orders
    ordered = str(path.with_name("ordered.parquet"))
    with reading.pieces_of(800, at_most=at_most):
        got = TREE.evaluate({"orders": ordered}, by=["region"])
    assert piece_sizes == sizes
    assert reading.table_rows() == reading.ROWS_PER_TABLE  # the block's size is gone after it
    with reading.pieces_of(800):
        expected = TREE.evaluate({"orders": ordered}, by=["region"])
    for row, other in zip(got.to_pylist(), expected.to_pylist(), strict=True):
        assert row.keys() == other.keys()
        for key, value in other.items():
            assert row[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
