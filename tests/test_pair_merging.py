"""Merging the distinct (key, value) pairs of several pieces (`aggregating._deduplicated`): the pairs found in more
than one piece are merged (rows summed, extras at their maximum) whether they are found by sorting integer codes or
by grouping values of any type."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from metrictree.aggregating import _deduplicated, _split_repeated

_PAIR = st.tuples(st.integers(0, 6), st.integers(0, 9), st.integers(1, 5), st.floats(-10, 10, allow_nan=False))


def _pieces(pieces: list[list[tuple[int, int, int, float]]], text: bool) -> list[pa.Table]:
    tables = []
    for rows in pieces:
        distinct = {}
        for key, value, count, extra in rows:  # each piece holds a pair once, as the pass makes them
            before = distinct.get((key, value))
            distinct[key, value] = (count, extra) if before is None else (before[0] + count, max(before[1], extra))
        keys = [k for k, _ in distinct]
        values = [f"c{v}" if text else v for _, v in distinct]
        tables.append(pa.table({"__key": pa.array(keys, pa.int16()),
                                "__x": pa.array(values, pa.string() if text else pa.int32()),
                                "count_all": pa.array([c for c, _ in distinct.values()], pa.int64()),
                                "__e0": pa.array([e for _, e in distinct.values()], pa.float64())}))
    return tables


def _as_dict(table: pa.Table) -> dict:
    rows = table.to_pylist()
    found = {(r["__key"], r["__x"]): (r["count_all"], r["__e0"]) for r in rows}
    assert len(found) == len(rows), "a pair is held twice"
    return found


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_PAIR, max_size=25), min_size=1, max_size=5), st.booleans())
def test_merged_pairs_are_the_distinct_pairs_of_every_piece(pieces, text):
    tables = _pieces(pieces, text)
    expected: dict = {}
    for table in tables:
        for pair, (count, extra) in _as_dict(table).items():
            before = expected.get(pair)
            expected[pair] = (count, extra) if before is None else (before[0] + count, max(before[1], extra))
    merged = _deduplicated(tables)
    assert merged.column_names == tables[0].column_names
    assert _as_dict(merged) == expected


def test_repeated_pairs_are_found_by_their_codes():
    pairs = pa.table({"__key": pa.array([3, 1, 3, 2, 1, 3], pa.int8()), "__x": pa.array([7, 7, 7, 0, 7, 8], pa.int32())})
    once, twice = _split_repeated(pairs)
    assert sorted(once.to_pylist()) == [3, 5]
    assert sorted(twice.to_pylist()) == [0, 1, 2, 4]


def test_pairs_that_one_int64_cannot_hold_are_left_to_the_grouping():
    text = pa.table({"__key": pa.array([1, 1], pa.int8()), "__x": pa.array(["a", "a"])})
    wide = pa.table({"__key": pa.array([1 << 40, 1], pa.int64()), "__x": pa.array([1 << 40, 1], pa.int64())})
    nulls = pa.table({"__key": pa.array([1, 1], pa.int8()), "__x": pa.array([None, 2], pa.int32())})
    for pairs in (text, wide, nulls):
        assert _split_repeated(pairs) == (None, None)
    assert pc.sum(_deduplicated([
        pa.table({"__key": pa.array([1 << 40], pa.int64()), "__x": pa.array([1 << 40], pa.int64()),
                  "count_all": pa.array([2], pa.int64())}),
        pa.table({"__key": pa.array([1 << 40], pa.int64()), "__x": pa.array([1 << 40], pa.int64()),
                  "count_all": pa.array([3], pa.int64())})]).column("count_all")).as_py() == 5
