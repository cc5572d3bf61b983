"""explain of a ratio over a distinct count that looks nowhere back (frequency = paid orders ÷ distinct paying
customers): the drill-down's check of where the count adds up is made first and the history takes its
counts from it; the explanation is the same, to the last digit, as when every pass counts for itself."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import metrictree
from metrictree import aggregating, drilling, explaining, rollup

TREE = Path(__file__).resolve().parents[1] / "bench" / "orders.tree"
DIMS = ["channel", "region", "segment"]


@pytest.fixture(scope="module")
def orders(orders_with_nulls):
    return orders_with_nulls  # tests/conftest.py


def _recorded(monkeypatch) -> list[tuple[tuple[str, ...], list[str]]]:
    seen = []
    real = aggregating.aggregate_stream

    def recorded(tree_, source, pieces, metrics, grain, by, *args, **kwargs):
        seen.append((tuple(by), [m.name for m in metrics]))
        return real(tree_, source, pieces, metrics, grain, by, *args, **kwargs)

    monkeypatch.setattr(aggregating, "aggregate_stream", recorded)
    return seen


def _both(monkeypatch, tree, data, baseline, current, metric="frequency"):
    """The explanation with the checks' pass made first, and with every pass counting for itself."""
    seen = _recorded(monkeypatch)
    once = tree.explain(data, metric, baseline, current, by=DIMS)
    made = list(seen)
    monkeypatch.setattr(explaining, "_one_read", lambda *args, **kwargs: ({}, {}))
    monkeypatch.setattr(drilling, "_older_and_checked", lambda *args, **kwargs: None)
    twice = tree.explain(data, metric, baseline, current, by=DIMS)
    monkeypatch.undo()
    return once, twice, made


@pytest.mark.parametrize(("baseline", "current"), [("2026-09", "2026-10"), ("2026-05", "2026-10"),
                                                   ("2026-03..2026-04", "2026-09..2026-10")])
def test_the_history_takes_the_customer_counts_of_the_checks(orders, monkeypatch, baseline, current):
    tree = metrictree.load(TREE)
    once, twice, seen = _both(monkeypatch, tree, {"orders": orders}, baseline, current)
    assert once.to_dict() == twice.to_dict()
    unsliced = [names for by, names in seen if not by]
    assert unsliced == [["paid_orders"]]  # the history counts no customers of its own
    checks = [names for by, names in seen if by == tuple(DIMS) and "customers" in names]
    assert len(checks) == 1  # the pass made first is the drill-down's check
    # The drill-down's history reads only the periods before the compared ones: the checks hold those. Compared
    # months of one period each: the paid orders ride in the customers' pass (one read of the history, by the
    # dimensions where customers add up), and are read by every dimension for the compared months only.
    alone = ".." not in baseline
    coarser = [names for by, names in seen if by and by != tuple(DIMS)]
    assert coarser == ([["paid_orders", "customers"]] if alone else [["customers"]])
    # By every dimension, the checks' pass only — unless the paid orders' segments could change with the slices of
    # the history alone (2026-05: the third and fourth regions' changes tie), when their whole leaves are read.
    settled = (baseline, current) == ("2026-09", "2026-10")
    assert len([names for by, names in seen if by == tuple(DIMS)]) == (1 if settled else 2)
    assert once.segments and (once.root_causes or once.mix or once.reason)  # the drill-down ran


def test_two_months_of_data_only(orders, monkeypatch):
    """No history before the compared months (the localiser has none to judge the noise by)."""
    tree = metrictree.load(TREE)
    month = pc.strftime(orders.column("order_date"), "%Y-%m")
    kept = orders.filter(pc.is_in(month, value_set=pa.array(["2026-09", "2026-10"])))
    once, twice, _ = _both(monkeypatch, tree, {"orders": kept}, "2026-09", "2026-10")
    assert once.to_dict() == twice.to_dict()


def test_a_slice_empty_in_one_period(orders, monkeypatch):
    """A channel with no orders at all in the current month, and a segment with no paying customer in it."""
    tree = metrictree.load(TREE)
    month = pc.strftime(orders.column("order_date"), "%Y-%m")
    october = pc.equal(month, "2026-10")
    gone = pc.and_(october, pc.equal(orders.column("channel"), "app"))
    unpaid = pc.and_(october, pc.equal(orders.column("segment"), "vip"))
    status = pc.if_else(unpaid, pa.scalar("cancelled"), orders.column("status"))
    table = orders.set_column(orders.schema.get_field_index("status"), "status", status).filter(pc.invert(gone))
    once, twice, _ = _both(monkeypatch, tree, {"orders": table}, "2026-09", "2026-10")
    assert once.to_dict() == twice.to_dict()


def test_streamed_parquet(orders, monkeypatch, tmp_path):
    """Row groups streamed in pieces: the same explanation either way."""
    import pyarrow.parquet as pq

    from metrictree import reading

    path = tmp_path / "orders.parquet"
    pq.write_table(orders.sort_by("order_date"), path, row_group_size=max(1, orders.num_rows // 9))
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", max(1, orders.num_rows // 5))
    tree = metrictree.load(TREE)
    once, twice, _ = _both(monkeypatch, tree, {"orders": str(path)}, "2026-09", "2026-10")
    assert once.to_dict() == twice.to_dict()
    assert once.to_dict() == tree.explain({"orders": orders}, "frequency", "2026-09", "2026-10", by=DIMS).to_dict()


@pytest.mark.parametrize("metric", ["frequency", "refund_rate"])
def test_explain_reads_in_pieces_of_its_own(orders, monkeypatch, tmp_path, metric):
    """explain's scans hand on tables of `explaining.ROWS_PER_TABLE` rows (at most evaluate's), evaluate's of
    `reading.ROWS_PER_TABLE` (also after an explanation, and after one that failed); the explanation is the same whatever their size
    (of counts: a sum of fractional amounts may round differently in its last digit when cut elsewhere)."""
    import pyarrow.parquet as pq

    from metrictree import reading

    path = tmp_path / "orders.parquet"
    pq.write_table(orders.sort_by("order_date"), path, row_group_size=max(1, orders.num_rows // 20))
    sizes, real = [], reading.scan

    def scan(*args, **kwargs):
        pieces = list(real(*args, **kwargs))
        sizes.append((args[7] if len(args) > 7 else kwargs.get("rows_per_table"), len(pieces)))
        yield from pieces

    monkeypatch.setattr(reading, "scan", scan)
    tree = metrictree.load(TREE)
    data = {"orders": str(path)}
    whole = tree.explain(data, metric, "2026-09", "2026-10", by=DIMS).to_dict()
    assert sizes and all(rows == explaining.ROWS_PER_TABLE for rows, _ in sizes)
    monkeypatch.setattr(explaining, "ROWS_PER_TABLE", max(1, orders.num_rows // 7))
    sizes.clear()
    assert tree.explain(data, metric, "2026-09", "2026-10", by=DIMS).to_dict() == whole
    assert any(count > 1 for _, count in sizes)  # streamed in several pieces
    with pytest.raises(metrictree.MetrictreeError):
        tree.explain(data, "no_such_metric", "2026-09", "2026-10", by=DIMS)
    sizes.clear()
    tree.evaluate(data, by=["channel"])
    assert [rows for rows, _ in sizes] == [reading.ROWS_PER_TABLE]


def test_no_pass_first_without_a_distinct_count(orders, monkeypatch):
    """aov reads sums and counts only: nothing to check, no pass made before the history."""
    tree = metrictree.load(TREE)
    calls = []
    real = rollup.fine_pass
    monkeypatch.setattr(rollup, "fine_pass", lambda *a, **k: calls.append(a) or real(*a, **k))
    tree.explain({"orders": orders}, "aov", "2026-09", "2026-10", by=DIMS)
    assert not calls


@pytest.mark.parametrize("grid", [True, False])
def test_distinct_triples_counted_without_merging(orders, monkeypatch, grid):
    """A distinct count rolled up over some periods counts the distinct (customer, coarser slice, period)
    triples directly (a dense grid's occupied cells, or the unique codes when the grid would be too big): the
    same counts as the reduce over the merged presence."""
    from metrictree import periods

    if not grid:
        monkeypatch.setattr(rollup, "_fits", lambda cells, triples: False)
    tree = metrictree.load(TREE)
    registry = metrictree.pluginmanager.registry()
    fine = rollup.fine_pass(tree, {"orders": orders}, registry, DIMS, ["customers"], ["customers"], "month", {},
                            "2026-01", "2026-10")
    presence = fine.held["customers"].presence
    within = [(periods.parse("2026-02", "month"), periods.parse("2026-03", "month")),
              (periods.parse("2026-10", "month"),) * 2]
    kept = rollup._only(presence, [(a - fine.base, b - fine.base) for a, b in within])
    for width in (1, 3, 7):
        coarse = pc.cast(pc.bit_wise_and(kept.slice, width - 1 if width > 1 else 0), pa.int64()) if width != 3 \
            else pc.cast(pc.divide(kept.slice, max(1, kept.slices // 3 + 1)), pa.int64())
        counted = rollup._distinct_counts(kept, coarse, width).sort_by([("__slice", "ascending"),
                                                                       ("__period", "ascending")])
        merged = kept.coarsened(coarse, width).count().sort_by([("__slice", "ascending"),
                                                                      ("__period", "ascending")])
        assert counted.equals(merged)
        assert counted.num_rows


def test_streamed_distinct_count_of_a_range_ending_before_the_data(orders, monkeypatch, tmp_path):
    """Rows in time order, read in pieces, a range that ends months before the data: every distinct pair is
    final before the stream ends (none left to merge at the end), and the counts are those of one table."""
    import pyarrow.parquet as pq

    from metrictree import reading
    from metrictree.evaluating import evaluate

    path = tmp_path / "orders.parquet"
    pq.write_table(orders.sort_by("order_date"), path, row_group_size=max(1, orders.num_rows // 9))
    tree = metrictree.load(TREE)
    direct = evaluate(tree, {"orders": orders}, by=["region", "segment"], metrics=["customers", "paid_orders"],
                      start="2025-12", end="2026-05")
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", max(1, orders.num_rows // 5))
    streamed = evaluate(tree, {"orders": str(path)}, by=["region", "segment"], metrics=["customers", "paid_orders"],
                        start="2025-12", end="2026-05")
    assert streamed.table.equals(direct.table)


def _shifted(orders: pa.Table) -> pa.Table:
    """Slices that have rows in one range of periods only: channel 'app' ends in 2026-08, a channel 'kiosk'
    opens in 2026-09, and the region 'North' has no paying customer before 2026-09."""
    month = pc.strftime(orders.column("order_date"), "%Y-%m")
    late = pc.greater_equal(month, "2026-09")
    channel = orders.column("channel")
    kept = orders.filter(pc.invert(pc.and_(late, pc.equal(channel, "app"))))
    month, late, channel = (pc.strftime(kept.column("order_date"), "%Y-%m"), None, kept.column("channel"))
    late = pc.greater_equal(month, "2026-09")
    kiosk = pc.and_(late, pc.equal(pc.fill_null(kept.column("region"), ""), "South"))
    kept = kept.set_column(kept.schema.get_field_index("channel"), "channel",
                           pc.if_else(kiosk, pa.scalar("kiosk"), channel))
    north = pc.and_(pc.invert(late), pc.equal(pc.fill_null(kept.column("region"), ""), "North"))
    return kept.set_column(kept.schema.get_field_index("status"), "status",
                           pc.if_else(north, pa.scalar("cancelled"), kept.column("status")))


@pytest.mark.parametrize("on", [DIMS, ["region", "segment"], ["segment"]])
def test_older_periods_and_the_checks_are_one_pass(orders, on):
    """The periods before the compared ones read on their own, the compared ones from the checks' pass: the
    same table as one evaluation of the whole range (slices present in one range only are 0 in the other)."""
    from metrictree import periods
    from metrictree.evaluating import evaluate

    tree = metrictree.load(TREE)
    data = {"orders": _shifted(orders)}
    registry = metrictree.pluginmanager.registry()
    names = ["paid_orders", "customers"] if on == DIMS else ["customers"]
    checks = rollup.fine_pass(tree, data, registry, DIMS, ["paid_orders", "customers"], ["customers"], "month", {},
                              "2026-09", "2026-10")
    month = lambda label: periods.parse(label, "month")  # noqa: E731

    def older(first, last):
        return evaluate(tree, data, by=on, metrics=names, start=periods.label(first, "month"),
                        end=periods.label(last, "month"), registry=registry)

    table, covered = drilling._older_and_checked(checks, tuple(on), names, tree, DIMS, month("2025-06"),
                                                 month("2026-09"), month("2026-10"), older)
    whole = evaluate(tree, data, by=on, metrics=names, start="2025-06", end="2026-10", registry=registry)
    keys = [(c, "ascending") for c in ["period", *on]]
    assert table.sort_by(keys).equals(whole.table.select(["period", *on, *names]).sort_by(keys))
    assert covered[0] == whole.covered[0]


def test_slices_of_one_range_only_explained_the_same(orders, monkeypatch):
    tree = metrictree.load(TREE)
    once, twice, _ = _both(monkeypatch, tree, {"orders": _shifted(orders)}, "2026-09", "2026-10")
    assert once.to_dict() == twice.to_dict()


@pytest.mark.parametrize("by", [["channel"], ["channel", "region"], ["segment"]])
def test_by_dimensions_a_distinct_count_does_not_add_up_across(orders, monkeypatch, by):
    """By channel the paying customers do not add up (one customer buys on the web and in the app): their twin,
    shared among the channels, is read over the whole range as before; the explanation is the same."""
    tree = metrictree.load(TREE)
    data = {"orders": orders}
    once = tree.explain(data, "frequency", "2026-09", "2026-10", by=by)
    monkeypatch.setattr(explaining, "_one_read", lambda *args, **kwargs: ({}, {}))
    monkeypatch.setattr(drilling, "_older_and_checked", lambda *args, **kwargs: None)
    twice = tree.explain(data, "frequency", "2026-09", "2026-10", by=by)
    assert once.to_dict() == twice.to_dict()
    if by == ["channel"]:
        assert any("shared equally" in note for note in once.notes)


def _one_month_slice(orders: pa.Table) -> pa.Table:
    """The orders with a channel seen in one month of the history only (a few orders of 2026-03) and a segment
    seen in the current month only (a few paid orders of 2026-10, of customers of their own)."""
    month = pc.strftime(orders.column("order_date"), "%Y-%m")
    march = orders.filter(pc.equal(month, "2026-03")).slice(0, 40)
    march = march.set_column(march.schema.get_field_index("channel"), "channel", pa.array(["kiosk"] * 40))
    october = orders.filter(pc.and_(pc.equal(month, "2026-10"), pc.equal(orders.column("status"), "paid"))).slice(0, 30)
    october = october.set_column(october.schema.get_field_index("segment"), "segment", pa.array(["newcomer"] * 30))
    october = october.set_column(october.schema.get_field_index("customer_id"), "customer_id",
                                 pa.array([f"N{i % 12}" for i in range(30)]))
    return pa.concat_tables([orders, march, october])


@pytest.mark.parametrize("layout", ["in time order", "unsorted", "one-month slice"])
def test_row_groups_one_a_table_give_the_explanation_of_one_table(orders, monkeypatch, tmp_path, layout,
                                                                   piece_sizes):
    """explain reads Parquet row groups in runs that stop short of its table size (`reading.pieces_of` with
    ``at_most``): row groups a little smaller than the table come one a table, not two. With nulls (guests, no
    region), rows in no order of time and a slice present in one month only, the explanation is the one an
    in-memory table gives, and the one runs of two row groups give, to the last digit."""
    import pyarrow.parquet as pq

    from metrictree import reading

    table = _one_month_slice(orders) if layout == "one-month slice" else orders
    if layout == "unsorted":
        table = table.take(pc.sort_indices(table, [("customer_id", "descending"), ("amount", "ascending")]))
    else:
        table = table.sort_by("order_date")
    path = tmp_path / "orders.parquet"
    group = max(1, table.num_rows // 12)
    pq.write_table(table, path, row_group_size=group)
    limit = group + group // 2  # between one row group and two
    monkeypatch.setattr(explaining, "ROWS_PER_TABLE", limit)
    tree = metrictree.load(TREE)
    got = tree.explain({"orders": str(path)}, "frequency", "2026-09", "2026-10", by=DIMS).to_dict()
    # One row group a table (with the last few rows: 13 groups).
    assert max(piece_sizes) <= limit and len(piece_sizes) > 2
    real_pieces = reading.pieces_of
    monkeypatch.setattr(reading, "pieces_of", lambda rows, at_most=False: real_pieces(rows))  # as before
    piece_sizes.clear()
    assert tree.explain({"orders": str(path)}, "frequency", "2026-09", "2026-10", by=DIMS).to_dict() == got
    assert max(piece_sizes) > limit  # two row groups a table this time
    monkeypatch.undo()
    assert tree.explain({"orders": table}, "frequency", "2026-09", "2026-10", by=DIMS).to_dict() == got
    if layout == "one-month slice":
        assert "newcomer" in str(got)  # the current month's new segment is among the segments found


@pytest.mark.parametrize("case", ["nulls", "unsorted", "one-month slice", "a tie", "a unit of its own", "ranges"])
def test_paid_orders_riding_in_the_customers_history_say_what_a_pass_of_their_own_says(orders, monkeypatch, tmp_path,
                                                                                     case):
    """The paid orders ride in the history pass of the customers by region × segment (`drilling._riders`): by
    every dimension only their compared months are read. The explanation is the one their own pass over the
    history gives — with guests and unknown regions, rows in no order of time (streamed from small row groups), a
    channel seen in one month of the history only, a tie among the regions' changes (their whole leaves read),
    paid orders that carry weight outside the ratio (a unit of their own: read in full), compared ranges (no
    riding)."""
    import pyarrow.parquet as pq

    tree = metrictree.load(TREE)
    table = _one_month_slice(orders) if case == "one-month slice" else orders
    data: dict = {"orders": table}
    baseline, current, metric = "2026-09", "2026-10", "frequency"
    if case == "unsorted":
        path = tmp_path / "orders.parquet"
        pq.write_table(table.take(pc.sort_indices(table, [("customer_id", "descending"), ("amount", "ascending")])),
                       path, row_group_size=max(1, table.num_rows // 9))
        data = {"orders": str(path)}
    elif case == "a tie":
        baseline = "2026-05"
    elif case == "ranges":
        baseline, current = "2026-03..2026-04", "2026-09..2026-10"
    elif case == "a unit of its own":
        tree = metrictree.loads(TREE.read_text() + "\nmetric score = frequency * 1000 + paid_orders\n")
        metric = "score"
    rode, fuller, real_riders, real_settled = [], [], drilling._riders, drilling._segments_settled

    def riders(*args, **kwargs):
        found = real_riders(*args, **kwargs)
        rode.append(found)
        return found

    def settled(*args, **kwargs):
        fuller.append(not real_settled(*args, **kwargs))
        return not fuller[-1]

    monkeypatch.setattr(drilling, "_riders", riders)
    monkeypatch.setattr(drilling, "_segments_settled", settled)
    seen = _recorded(monkeypatch)
    got = tree.explain(data, metric, baseline, current, by=DIMS).to_dict()
    own = [names for by, names in seen if by == tuple(DIMS) and names == ["paid_orders"]]
    monkeypatch.setattr(drilling, "_riders", lambda *args, **kwargs: {})
    assert tree.explain(data, metric, baseline, current, by=DIMS).to_dict() == got
    # Customers add up by segment only here (a guest's order of no region puts a customer in two regions).
    assert rode[0] == ({} if case == "ranges" else {"paid_orders": ("segment",)})
    assert fuller == ([] if case == "ranges" else [case == "a tie"])
    # Their own pass by every dimension over the history: only where needed (and without riding).
    assert len(own) == (1 if case in ("a tie", "a unit of its own", "ranges") else 0)
    assert got["segments"] or got["root_causes"] or got["mix"] or got["reason"]


@pytest.mark.parametrize(("metric", "two_a_table"), [("frequency", False), ("refund_rate", False), ("churn_rate", True)])
def test_runs_of_row_groups_stop_short_unless_a_metric_looks_back(orders, monkeypatch, tmp_path, metric, two_a_table,
                                                                  piece_sizes):
    """explain's runs of row groups stop short of its table size — except where a metric below the one explained
    looks back (churned customers): its passes hold their pairs to the end anyway, and more tables would only
    mean more merges."""
    import pyarrow.parquet as pq

    tree = metrictree.loads(TREE.read_text() + '\nmetric churned = churned_customers(orders) where orders.status == "paid"'
                            "\nmetric churn_rate = churned / customers[-1]\n")
    path = tmp_path / "orders.parquet"
    group = max(1, orders.num_rows // 12)
    pq.write_table(orders.sort_by("order_date"), path, row_group_size=group)
    monkeypatch.setattr(explaining, "ROWS_PER_TABLE", group + group // 2)
    got = tree.explain({"orders": str(path)}, metric, "2026-09", "2026-10", by=DIMS).to_dict()
    assert (max(piece_sizes) > group + group // 2) == two_a_table
    monkeypatch.undo()
    assert tree.explain({"orders": orders}, metric, "2026-09", "2026-10", by=DIMS).to_dict() == got
