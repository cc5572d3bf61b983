"""Distinct counts on integer codes: a (group key, value) pair hashed as one int64.

Whole numbers are coded as their distance from the smallest, text read dictionary-encoded from Parquet
as its dictionary index (`aggregating._value_codes`, `aggregating._coded_pairs`); the batches a Parquet
row group hands on share its dictionary and are joined before the dictionaries are merged
(`reading.one_dictionary`). Every result here is checked against a plain Python count of the rows: nulls
in the value, the time and the dimensions, empty batches, values that repeat across batches and pieces,
and the same text in different groups.
"""

from __future__ import annotations

import datetime as dt
import random
import textwrap
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import metrictree
from metrictree import aggregating, reading

TREE = metrictree.loads(textwrap.dedent("""
    tree d "distinct codes"
    grain month
    source invoices { time day dimensions country entity customer }
    metric invoices_n = count_distinct(invoices.number) where invoices.qty > 0
    metric credit_notes = count_distinct(invoices.number) where invoices.qty < 0
    metric numbers = count_distinct(invoices.number)
    metric products = count_distinct(invoices.product)
    metric customers = count_distinct(invoices.customer)
    metric repeat = repeat_customers(invoices)
    metric churned = churned_customers(invoices)
"""))

FILTERS = {"invoices_n": lambda r: r["qty"] is not None and r["qty"] > 0,
           "credit_notes": lambda r: r["qty"] is not None and r["qty"] < 0,
           "numbers": lambda r: True, "products": lambda r: True, "customers": lambda r: True}
COLUMNS = {"invoices_n": "number", "credit_notes": "number", "numbers": "number", "products": "product",
           "customers": "customer"}


def invoice_rows(n: int = 4000, seed: int = 5) -> pa.Table:
    rng = random.Random(seed)
    days, numbers = [], []
    for _ in range(n):
        day = dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(200))
        days.append(None if rng.random() < 0.01 else day)
        # Invoice numbers repeat within a month and, a few of them, in other months and countries too.
        numbers.append(None if rng.random() < 0.05 else f"{'C' if rng.random() < 0.1 else ''}{rng.randrange(900)}")
    return pa.table({
        "day": pa.array(days, pa.date32()),
        "country": [rng.choice(["UK", "DE", "FR", None]) for _ in range(n)],
        "number": numbers,
        "qty": [rng.choice([None, -2, 1, 3, 6]) for _ in range(n)],
        # Negative and large whole numbers: coded from their smallest value.
        "product": [rng.choice([None, -(2**40), -7, 0, 3, 2**40] + list(range(50))) for _ in range(n)],
        "customer": [rng.choice([None] + list(range(12346, 12346 + 150))) for _ in range(n)],
    })


def reference(table: pa.Table, by: list[str]) -> dict[tuple, dict[str, int]]:
    """Per (period, dimensions), each distinct count: sets of the values of the rows each filter keeps."""
    seen: dict[tuple, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for row in table.to_pylist():
        if row["day"] is None:
            continue
        key = (f"{row['day']:%Y-%m}", *(row[d] for d in by))
        for metric, keep in FILTERS.items():
            value = row[COLUMNS[metric]]
            if value is not None and keep(row):
                seen[key][metric].add(value)
    return {key: {m: len(v) for m, v in counts.items()} for key, counts in seen.items()}


def check(result: pa.Table, table: pa.Table, by: list[str]) -> int:
    want = reference(table, by)
    checked = 0
    for row in result.to_pylist():
        key = (row["period"], *(row[d] for d in by))
        for metric in FILTERS:
            assert row[metric] == want.get(key, {}).get(metric, 0), (metric, key, row[metric], want.get(key))
            checked += 1
    assert set(want) <= {(r["period"], *(r[d] for d in by)) for r in result.to_pylist()}
    return checked


@pytest.fixture(scope="module")
def invoices(tmp_path_factory):
    table = invoice_rows()
    folder = tmp_path_factory.mktemp("codes")
    # Many row groups, each with its own dictionary of invoice numbers, in no order of time.
    pq.write_table(table, folder / "invoices.parquet", row_group_size=700)
    return table, folder / "invoices.parquet"


@pytest.mark.parametrize("by", [[], ["country"]], ids=["whole", "by-country"])
@pytest.mark.parametrize("rows_per_table", [None, 900], ids=["one-table", "streamed"])
def test_distinct_counts_of_text_and_whole_numbers_from_parquet_are_exact(invoices, monkeypatch, by,
                                                                          rows_per_table):
    table, path = invoices
    real_scan = reading.scan
    pieces = []

    def scan(*args, **kwargs):
        for piece in real_scan(*args, **{**kwargs, "rows_per_table": rows_per_table or 10**9}):
            pieces.append(piece.table.schema.field("number").type)
            yield piece

    monkeypatch.setattr(reading, "scan", scan)
    result = TREE.evaluate({"invoices": str(path)}, by=by)
    assert len(pieces) == (1 if rows_per_table is None else 3)  # runs of two row groups
    assert all(pa.types.is_dictionary(kind) for kind in pieces)  # counted distinct only: read encoded
    assert check(result, table, by) > 0
    # The same numbers as an in-memory table of plain text (hashed as text, not coded).
    plain = TREE.evaluate({"invoices": table}, by=by)
    assert result.to_pylist() == plain.to_pylist()


def test_the_codes_are_used_for_dictionaries_and_whole_numbers(invoices, monkeypatch):
    table, path = invoices
    coded = []
    real = aggregating._coded_pairs

    def spy(part, coding, *rest):
        coded.append((part.schema.field("__x").type, coding.dictionary is not None))
        return real(part, coding, *rest)

    monkeypatch.setattr(aggregating, "_coded_pairs", spy)
    monkeypatch.setattr(aggregating, "_ROWS_PER_PART", 64)  # many key ranges, on several threads
    result = TREE.evaluate({"invoices": str(path)}, by=["country"])
    assert check(result, table, ["country"]) > 0
    kinds = {kind for kind, _ in coded}
    assert pa.int64() in kinds and any(pa.types.is_dictionary(k) for k in kinds)


def test_a_time_range_that_empties_some_batches(invoices):
    table, path = invoices
    result = TREE.evaluate({"invoices": str(path)}, start="2025-03", end="2025-04",
                           metrics=list(FILTERS))
    kept = table.filter(pc.and_(pc.greater_equal(table["day"], pa.scalar(dt.date(2025, 3, 1))),
                                pc.less(table["day"], pa.scalar(dt.date(2025, 5, 1)))))
    assert result.num_rows == 2 and check(result, kept, []) == 2 * len(FILTERS)


def test_the_same_text_in_different_groups_and_pieces_counts_once_per_group(tmp_path, monkeypatch):
    # One invoice number in every month and country, in rows spread over many row groups and pieces.
    days = [dt.date(2025, m, d) for m in (1, 2, 3) for d in (3, 9, 20)] * 40
    table = pa.table({"day": pa.array(days, pa.date32()),
                      "country": [["UK", "DE"][i % 2] for i in range(len(days))],
                      "number": ["536365" if i % 3 else None for i in range(len(days))],
                      "qty": [1] * len(days), "product": [7] * len(days), "customer": [None] * len(days)})
    path = tmp_path / "same.parquet"
    pq.write_table(table, path, row_group_size=50)
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 100)
    result = TREE.evaluate({"invoices": str(path)}, by=["country"], metrics=["invoices_n", "numbers", "customers"])
    assert result.column("invoices_n").to_pylist() == [1] * 6
    assert result.column("numbers").to_pylist() == [1] * 6
    assert result.column("customers").to_pylist() == [0] * 6


# --------------------------------------------------------------------------- the pieces themselves


def pairs_by_grouping(part: pa.Table, rows: bool, sums=(), maxima=()) -> list[tuple]:
    """The same pairs by Arrow's grouping on the two columns, the values decoded, sorted."""
    plain = part.set_column(1, "__x", pc.cast(part.column("__x"), part.schema.field("__x").type.value_type)
                            if pa.types.is_dictionary(part.schema.field("__x").type) else part.column("__x"))
    grouped = plain.group_by([aggregating._KEY, "__x"], use_threads=False).aggregate(
        [*((([], "count_all"),) if rows else ()), *((c, "sum") for c in sums), *((c, "max") for c in maxima)])
    return sorted(tuple(r.values()) for r in grouped.select(
        [aggregating._KEY, "__x", *(["count_all"] if rows else []), *(f"{c}_sum" for c in sums),
         *(f"{c}_max" for c in maxima)]).to_pylist())


@pytest.mark.parametrize("rows", [False, True])
@pytest.mark.parametrize("aggregates", [False, True])
@pytest.mark.parametrize("kind", ["text", "whole"])
def test_coded_pairs_are_the_pairs_of_a_grouping(rows, aggregates, kind):
    rng = random.Random(3)
    n = 3000
    keys = pa.array([rng.randrange(40) for _ in range(n)], pa.int16())
    if kind == "text":
        # A dictionary with entries no row uses, the same text under many keys.
        dictionary = pa.array([f"inv{i}" for i in range(500)])
        values = pa.DictionaryArray.from_arrays(pa.array([rng.randrange(250) * 2 for _ in range(n)], pa.int32()),
                                                dictionary)
    else:
        values = pa.array([rng.randrange(-5000, 5000) for _ in range(n)], pa.int64())
    part = pa.table({aggregating._KEY: keys, "__x": values,
                     "__f0": pa.array([rng.randrange(2) for _ in range(n)], pa.int8()),
                     "__e0": pa.array([rng.randrange(9) for _ in range(n)], pa.int64())})
    coding = aggregating._value_codes(part.column("__x"), 39)
    assert coding is not None
    sums, maxima = (("__f0",), ("__e0",)) if aggregates else ((), ())
    got = aggregating._coded_pairs(part, coding, rows, sums, maxima)
    assert got.schema.field(aggregating._KEY).type == pa.int16()
    assert got.column_names == [aggregating._KEY, "__x", *(["count_all"] if rows else []), *sums, *maxima]
    assert sorted(tuple(r.values()) for r in got.to_pylist()) == pairs_by_grouping(part, rows, sums, maxima)
    # No rows at all: no pairs, the same columns.
    empty = aggregating._coded_pairs(part.slice(0, 0), coding, rows, sums, maxima)
    assert empty.num_rows == 0 and empty.column_names == got.column_names


def test_values_that_cannot_be_coded_fall_back_to_the_grouping():
    assert aggregating._value_codes(pa.chunked_array([pa.array([1.5, 2.5])]), 10) is None  # not whole numbers
    assert aggregating._value_codes(pa.chunked_array([pa.array(["a", "b"])]), 10) is None  # text, not encoded
    assert aggregating._value_codes(pa.chunked_array([pa.array([None, None], pa.int64())]), 10) is None
    # Codes beyond int64: a range of 2**62 values under 8 keys.
    assert aggregating._value_codes(pa.chunked_array([pa.array([-(2**61), 2**61], pa.int64())]), 7) is None
    assert aggregating._value_codes(pa.chunked_array([pa.array([2**63 + 5], pa.uint64())]), 1) is None
    a = pa.DictionaryArray.from_arrays(pa.array([0, 1], pa.int32()), pa.array(["x", "y"]))
    b = pa.DictionaryArray.from_arrays(pa.array([0, 1], pa.int32()), pa.array(["y", "x"]))
    assert aggregating._value_codes(pa.chunked_array([a, b]), 3) is None  # two dictionaries
    assert aggregating._value_codes(pa.chunked_array([a, a]), 3) == aggregating._ValueCodes(2, 0, a.dictionary)
    assert aggregating._value_codes(pa.chunked_array([pa.array([-3, 4, None], pa.int8())]), 3) == \
        aggregating._ValueCodes(8, -3)
    assert aggregating._value_codes(pa.chunked_array([pa.array([1])]), None) is None  # no keys at all


def test_one_dictionary_joins_the_batches_of_a_row_group_then_merges(tmp_path):
    # Each row group has its own numbers (overlapping the next one's), and the same countries.
    table = pa.table({"number": [f"n{i % 300 + i // 1000 * 100}" for i in range(3000)], "qty": list(range(3000)),
                      "country": [["UK", None, "DE"][i % 3] for i in range(3000)]})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=1000)
    file = pq.ParquetFile(path, read_dictionary=["number", "country"])
    batches = list(file.iter_batches(batch_size=128))
    read = pa.Table.from_batches(batches)
    assert read.column("number").num_chunks == len(batches) > 3
    one = reading.one_dictionary(read)
    for name, runs in (("number", 3), ("country", 2)):  # row groups 1 and 2 list the countries in one order
        column = one.column(name)
        assert all(c.dictionary.equals(column.chunks[0].dictionary) for c in column.chunks)
        assert len(column.chunks[0].dictionary) == len(pc.unique(table.column(name).drop_null()))
        assert column.num_chunks == runs  # one run of batches per dictionary
        assert pc.cast(column, pa.string()).to_pylist() == table.column(name).to_pylist()
    assert one.column("qty").to_pylist() == table.column("qty").to_pylist()
    assert reading.one_dictionary(read.slice(0, 0)).num_rows == 0
    # Batches of different dictionaries that happen to be equal are merged as before.
    two = pa.Table.from_batches([pa.record_batch({"v": pa.array(["a", "b"]).dictionary_encode()}),
                                 pa.record_batch({"v": pa.array(["b", "a"]).dictionary_encode()})])
    merged = reading.one_dictionary(two).column("v")
    assert pc.cast(merged, pa.string()).to_pylist() == ["a", "b", "b", "a"]
    assert merged.chunks[0].dictionary.equals(merged.chunks[1].dictionary)
