"""Distinct counts of kept rows counted key run by key run (`aggregating._counted_in_runs`): the counts of the
grouping by (key, value) they replace, for every filter, in and out of streams and explanations."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import metrictree
from metrictree import aggregating, explaining, reading

TREE = Path(__file__).resolve().parents[1] / "bench" / "orders.tree"
DIMS = ["channel", "region", "segment"]
# Two distinct counts of one column with different filters (a flag per filter), one of every order.
FILTERS = TREE.read_text() + """
metric refunders = count_distinct(orders.customer_id) where orders.status == "refunded" { label "Refunders" }
metric buyers = count_distinct(orders.customer_id) { label "Buyers" }
"""


def _by_hand(rows: pa.Table, mask_keys: list[str], flags: dict[str, str]) -> dict[int, list[int]]:
    seen: dict[int, list[set]] = {}
    for row in rows.to_pylist():
        sets = seen.setdefault(row["__key"], [set() for _ in mask_keys])
        for i, m in enumerate(mask_keys):
            if row["__x"] is not None and (not (m and flags) or row[flags[m]] > 0):
                sets[i].add(row["__x"])
    return {key: [len(s) for s in sets] for key, sets in seen.items()}


@pytest.mark.parametrize("kind", [pa.int64(), pa.string(), pa.int32()])
@pytest.mark.parametrize("filters", [1, 3])
def test_runs_count_what_a_count_by_hand_counts(kind, filters, monkeypatch):
    monkeypatch.setattr(aggregating, "_ROWS_PER_RUN", 1)
    rng = random.Random(7 + filters)
    n = 4000
    keys = [rng.choice([5, 1, 9, 2, 40, 7]) for _ in range(n)]  # unsorted, with gaps
    values = [rng.randrange(300) for _ in range(n)]
    columns = {"__key": pa.array(keys, pa.int32()),
               "__x": pa.array([str(v) if kind == pa.string() else v for v in values], kind)}
    mask_keys = [""] if filters == 1 else ["a", "b", "c"]
    flags = {} if filters == 1 else {m: f"__f{i}" for i, m in enumerate(mask_keys)}
    for i, column in enumerate(flags.values()):
        # The first filter keeps nothing of key 40 (its count is 0), the others half the rows.
        columns[column] = pa.array([0 if (i == 0 and k == 40) or rng.random() < 0.5 else 1
                                    for k in keys], pa.int8())
    rows = pa.Table.from_batches(pa.table(columns).to_batches(max_chunksize=700))  # several chunks
    counted = aggregating._counted_in_runs(rows, pc.value_counts(rows.column("__key")), mask_keys, flags)
    assert counted is not None
    got = {r["__key"]: [r[f"__n{i}"] for i in range(len(mask_keys))] for r in counted.to_pylist()}
    assert got == _by_hand(rows, mask_keys, flags)
    assert counted.column("__key").to_pylist() == sorted(set(keys))


def test_more_rows_than_runs_take_are_left_to_the_grouping(monkeypatch):
    """Past `_ROWS_IN_RUNS` rows at once the runs' sort would hold 12 bytes a row beside them: the rows are left
    to the grouping by ranges of keys, whose memory is bounded (its counts: the tests above, runs forced off)."""
    monkeypatch.setattr(aggregating, "_ROWS_PER_RUN", 1)
    rng = random.Random(3)
    rows = pa.table({"__key": pa.array([rng.choice([1, 2, 3]) for _ in range(500)], pa.int32()),
                     "__x": pa.array([rng.randrange(50) for _ in range(500)], pa.int64())})
    per_key = pc.value_counts(rows.column("__key"))
    assert aggregating._counted_in_runs(rows, per_key, [""], {}) is not None
    monkeypatch.setattr(aggregating, "_ROWS_IN_RUNS", 499)
    assert aggregating._counted_in_runs(rows, per_key, [""], {}) is None


@pytest.mark.parametrize("kind", [pa.int64(), pa.string()])
@pytest.mark.parametrize("rows", [False, True])
def test_pairs_in_runs_are_the_pairs_of_the_grouping(kind, rows, monkeypatch):
    monkeypatch.setattr(aggregating, "_ROWS_PER_RUN", 1)
    rng = random.Random(11)
    keys = [rng.choice([3, 8, 1, 30]) for _ in range(3000)]
    values = [rng.randrange(200) for _ in range(3000)]
    part = pa.Table.from_batches(pa.table({
        "__key": pa.array(keys, pa.int16()),
        "__x": pa.array([str(v) if kind == pa.string() else v for v in values], kind)}).to_batches(max_chunksize=500))
    pairs = aggregating._pairs_in_runs(part, rows)
    assert pairs is not None and pairs.schema.field("__key").type == pa.int16()
    grouped = part.group_by(["__key", "__x"]).aggregate([([], "count_all")] if rows else [])
    columns = ["__key", "__x", *(["count_all"] if rows else [])]
    assert sorted(tuple(r.values()) for r in pairs.select(columns).to_pylist()) == \
        sorted(tuple(r.values()) for r in grouped.select(columns).to_pylist())


def test_short_runs_and_floating_point_values_are_left_to_the_grouping():
    rows = pa.table({"__key": pa.array([1, 2, 3, 1], pa.int32()), "__x": pa.array([1, 2, 3, 1], pa.int64())})
    assert aggregating._counted_in_runs(rows, pc.value_counts(rows.column("__key")), [""], {}) is None
    floats = pa.table({"__key": pa.array([1] * 4096, pa.int32()), "__x": pa.array([0.5] * 4096)})
    assert aggregating._counted_in_runs(floats, pc.value_counts(floats.column("__key")), [""], {}) is None
    assert aggregating._pairs_in_runs(rows, True) is None and aggregating._pairs_in_runs(floats, True) is None


@pytest.fixture(scope="module")
def shuffled(orders_with_nulls, tmp_path_factory):
    """The orders with nulls (tests/conftest.py) out of time order, in small row groups; one segment that
    only one month has, and customers of tied counts there."""
    table = orders_with_nulls
    month = pc.strftime(table.column("order_date"), format="%Y-%m")
    solo = pc.and_(pc.equal(month, "2026-07"), pc.equal(pc.utf8_slice_codeunits(table.column("customer_id"), 7),
                                                       "3"))
    table = table.set_column(table.schema.get_field_index("segment"), "segment",
                             pc.if_else(pc.fill_null(solo, False), "solo", table.column("segment")))
    order = list(range(table.num_rows))
    random.Random(3).shuffle(order)
    path = tmp_path_factory.mktemp("runs") / "orders.parquet"
    pq.write_table(table.take(pa.array(order)), path, row_group_size=table.num_rows // 12)
    return str(path)


def _ran(monkeypatch) -> list[bool]:
    calls = []
    for name in ("_counted_in_runs", "_pairs_in_runs"):
        def spy(*args, real=getattr(aggregating, name)):
            out = real(*args)
            calls.append(out is not None)
            return out

        monkeypatch.setattr(aggregating, name, spy)
    return calls


@pytest.mark.parametrize("sorted_by_time", [False, True])
def test_explanations_and_evaluations_are_those_of_the_grouping(shuffled, orders_with_nulls, monkeypatch, tmp_path,
                                                                piece_sizes, sorted_by_time):
    data = {"orders": shuffled}
    if sorted_by_time:
        path = tmp_path / "sorted.parquet"
        pq.write_table(orders_with_nulls.sort_by("order_date"), path, row_group_size=orders_with_nulls.num_rows // 20)
        data = {"orders": str(path)}
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 6000)
    monkeypatch.setattr(explaining, "ROWS_PER_TABLE", 4000)
    tree, both = metrictree.load(TREE), metrictree.loads(FILTERS)
    crm = metrictree.load(TREE.parent / "crm.tree")  # customer states: pairs with their rows, by key run too
    calls = _ran(monkeypatch)

    def results() -> tuple:
        return (tree.explain(data, "frequency", "2026-09", "2026-10", by=DIMS).to_dict(),
                tree.explain(data, "frequency", "2026-06", "2026-07", by=DIMS).to_dict(),
                both.evaluate(data, by=["region", "segment"]).to_pylist(),
                both.evaluate(data, by=["channel"], start="2026-02", end="2026-05").to_pylist(),
                crm.evaluate(data, by=["region"]).to_pylist())

    monkeypatch.setattr(aggregating, "_ROWS_PER_RUN", 1)
    runs = results()
    assert any(calls) and len(piece_sizes) > 10  # counted in runs, over streams of many pieces
    monkeypatch.setattr(aggregating, "_ROWS_PER_RUN", 1 << 62)
    calls.clear()
    grouped = results()
    assert calls and not any(calls)
    assert runs == grouped
