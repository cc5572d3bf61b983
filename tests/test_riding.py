"""The explanation's history rides in the drill-down's pass by every dimension (`backends.Rider`): its sums and
plain counts are aggregated from the very tables that pass reads, so the history reads nothing — and every
number is that of a history reading the rows itself, to the last digit (float sums included: the same rows,
cut into the same tables, aggregated by the same code)."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import metrictree
from metrictree import aggregating, evaluating, explaining, reading
from metrictree.backends import Rider
from metrictree.backends.arrow import ArrowBackend, _Tee

TREE = metrictree.load(Path(__file__).resolve().parents[1] / "bench" / "crm.tree")
DIMS = ["channel", "region", "segment"]


def _moved(orders: pa.Table) -> pa.Table:
    """The orders with a channel seen in one month only (a kiosk in 2026-09), some customers moving between
    regions from order to order (every 5th order of a customer number ending in 3 lands in the South), and
    orders with no date."""
    month = pc.strftime(orders.column("order_date"), "%Y-%m")
    n = orders.num_rows
    kiosk = pc.and_(pc.equal(month, "2026-09"), pa.array([i % 11 == 0 for i in range(n)]))
    channel = pc.if_else(kiosk, pa.scalar("kiosk"), orders.column("channel"))
    ends_in_3 = pc.fill_null(pc.ends_with(orders.column("customer_id"), "3"), False)
    moving = pc.and_(ends_in_3, pa.array([i % 5 == 0 for i in range(n)]))
    region = pc.if_else(moving, pa.scalar("South"), orders.column("region"))
    table = orders.set_column(orders.schema.get_field_index("channel"), "channel", channel)
    table = table.set_column(table.schema.get_field_index("region"), "region", region)
    # And orders with no date (every 29th): in no period, and a warning of the history's.
    undated = pa.array([i % 29 == 0 for i in range(n)])
    return table.set_column(table.schema.get_field_index("order_date"), "order_date", pc.if_else(
        undated, pa.scalar(None, table.schema.field("order_date").type), table.column("order_date")))


@pytest.fixture(scope="module")
def orders(orders_with_nulls):
    return _moved(orders_with_nulls)  # guests (no customer id) and orders of no region: tests/conftest.py


def _explained(monkeypatch, data, metric="ltv", baseline="2026-09", current="2026-10", riding=True):
    """The explanation, the history it was built on, and the reads of the Arrow backend (by, metrics)."""
    histories, reads = [], []
    real_history, real_aggregate = explaining.history, ArrowBackend.aggregate

    def history(*args, **kwargs):
        histories.append(real_history(*args, **kwargs))
        return histories[-1]

    def aggregate(self, request, *args, **kwargs):
        reads.append((request.by, [m.name for m in request.metrics]))
        return real_aggregate(self, request, *args, **kwargs)

    monkeypatch.setattr(explaining, "history", history)
    monkeypatch.setattr(ArrowBackend, "aggregate", aggregate)
    if not riding:
        monkeypatch.setattr(explaining, "history_requests", lambda *args, **kwargs: [])
    try:
        explanation = TREE.explain(data, metric, baseline, current, by=DIMS)
    finally:
        monkeypatch.undo()
    return explanation, histories[0], reads


def _same_both_ways(monkeypatch, data, **kwargs):
    once, ridden, reads = _explained(monkeypatch, data, **kwargs)
    twice, read, reads_alone = _explained(monkeypatch, data, riding=False, **kwargs)
    assert once.to_dict() == twice.to_dict()
    assert ridden.table.equals(read.table)
    assert (ridden.warnings, ridden.skipped, ridden.covered) == (read.warnings, read.skipped, read.covered)
    assert any("no order_date" in w for w in read.warnings)
    return once, reads, reads_alone


@pytest.mark.parametrize(("metric", "sums"), [("ltv", ["revenue", "paid_orders"]), ("frequency", ["paid_orders"])])
def test_the_history_reads_nothing_and_is_the_same(orders, monkeypatch, metric, sums):
    """One table in memory: the pass by every dimension is the only unsliced-or-not read of the whole range;
    without the rider the history reads the orders once more, unsliced, for its sums and plain counts."""
    once, reads, reads_alone = _same_both_ways(monkeypatch, {"orders": orders}, metric=metric)
    assert once.root_causes or once.reason
    assert all(by for by, _ in reads)  # no unsliced read at all
    assert [names for by, names in reads_alone if not by] == [sums]
    assert len(reads_alone) == len(reads) + 1


def test_no_pass_made_first_no_rider(orders, monkeypatch):
    """aov counts no customers: no pass by every dimension is made before the history, which reads for itself."""
    _, reads, reads_alone = _same_both_ways(monkeypatch, {"orders": orders}, metric="aov")
    assert reads == reads_alone and [names for by, names in reads if not by] == [["revenue", "paid_orders"]]


def test_streamed_in_small_pieces(orders, monkeypatch, tmp_path, piece_sizes):
    """A Parquet file of small row groups, read in tables of a few hundred rows: the rider aggregates the very
    same tables, in order, and its float sums are the history's own to the last digit."""
    path = tmp_path / "orders.parquet"
    pq.write_table(orders, path, row_group_size=1500)
    monkeypatch.setattr(explaining, "ROWS_PER_TABLE", 4000)
    with monkeypatch.context() as patch:
        patch.setattr(reading, "ROWS_PER_TABLE", 4000)
        once, reads, _ = _same_both_ways(patch, {"orders": str(path)})
    assert len(piece_sizes) > 20 and max(piece_sizes) <= 4500
    assert all(by for by, _ in reads)
    # The same figures as from one table, up to the order of the additions.
    whole, _, _ = _explained(monkeypatch, {"orders": orders})
    assert once.baseline.value == pytest.approx(whole.baseline.value, rel=1e-12)


def test_a_csv_file_streamed(orders, monkeypatch, tmp_path):
    """A CSV file (record batches, not row groups)."""
    path = tmp_path / "orders.csv"
    pacsv.write_csv(orders, path)
    with monkeypatch.context() as patch:
        patch.setattr(reading, "ROWS_PER_TABLE", 5000)
        patch.setattr(explaining, "ROWS_PER_TABLE", 5000)
        _same_both_ways(patch, {"orders": str(path)})


def test_ranges_of_months_and_a_month_long_ago(orders, monkeypatch):
    _same_both_ways(monkeypatch, {"orders": orders}, baseline="2026-03..2026-04", current="2026-09..2026-10")
    _same_both_ways(monkeypatch, {"orders": orders}, baseline="2026-01", current="2026-10")


def _pieces(table: pa.Table, size: int):
    for start in range(0, table.num_rows, size):
        yield reading.Piece(table.slice(start, size))


def _rider(metrics=("revenue", "paid_orders")) -> Rider:
    (request,) = evaluating.requests(TREE, metrics=list(metrics))
    return Rider(request)


def _aggregated(rider: Rider, pieces) -> pa.Table:
    request = rider.request
    return aggregating.aggregate_stream(request.tree, request.source, pieces, list(request.metrics), request.grain,
                                        list(request.by), request.params, request.registry).table


def test_a_rider_aggregates_what_a_scan_of_its_own_would(orders, monkeypatch):
    rider = _rider()
    monkeypatch.setattr(_Tee, "_WAITING", 1)  # the rider holds one piece at most: the scan waits for it
    tee = _Tee(_pieces(orders, 1000), [rider], {"null_times": 0})
    for _ in tee:
        pass
    tee.stop()
    assert rider.result is not None and rider.result.table.equals(_aggregated(rider, _pieces(orders, 1000)))
    assert rider.null_times == 0


def test_no_result_from_a_scan_cut_short(orders):
    """The caller's aggregation stopped before the last piece (an error there): the rider has no result, and
    its thread ends."""
    rider = _rider()
    tee = _Tee(_pieces(orders, 1000), [rider], None)
    for _, _piece in zip(range(5), tee, strict=False):
        pass
    tee.stop()
    assert rider.result is None
    assert not any(t.name == "metrictree-rider" and t.is_alive() for t in threading.enumerate())


def test_an_error_in_the_rider_leaves_the_scan_going(orders):
    """A rider whose aggregation fails (a column the pieces lack) gets no result; the scan goes on to its end
    without waiting for it, whatever the number of pieces."""
    rider = _rider()
    broken = orders.drop_columns(["amount"])
    tee = _Tee(_pieces(broken, 500), [rider], None)
    assert sum(piece.table.num_rows for piece in tee) == broken.num_rows
    tee.stop()
    assert rider.result is None


def test_a_rider_of_another_time_range_does_not_ride(orders):
    """The backend hands a rider only the scans of its own rows: another range, and it is left without result
    (its evaluation reads for itself)."""
    (request,) = evaluating.requests(TREE, by=DIMS, metrics=["revenue", "customers"], start="2026-09",
                                     end="2026-10")
    (own,) = evaluating.requests(TREE, metrics=["revenue"], start="2026-08", end="2026-10")
    rider = Rider(own)
    ArrowBackend().aggregate(request, {"orders": orders}, {}, [rider])
    assert rider.result is None
    same = Rider(evaluating.requests(TREE, metrics=["revenue"], start="2026-09", end="2026-10")[0])
    ArrowBackend().aggregate(request, {"orders": orders}, {}, [same])
    assert same.result is not None
