"""How base metrics are aggregated (metrictree.aggregating): every planning shortcut gives
exactly what a plain pyarrow grouping of the filtered rows gives.

The references below filter the rows with the metric's condition and group them by
period and dimensions with pyarrow directly; the engine instead folds period and
dimensions into one integer key, applies filters as grouping keys, shares one
(key, value) grouping between the distinct counts of a column and splits it into key
ranges, and evaluates filters over dictionaries' values.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal
import textwrap

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import metrictree
from metrictree import aggregating, periods, pluginmanager
from metrictree.errors import DataError

STATUSES = ["paid", "refunded", "cancelled", None]


def load(body: str, grain: str = "month") -> metrictree.Tree:
    return metrictree.loads(f"tree t\ngrain {grain}\n" + textwrap.dedent(body))


def orders(n: int = 2400, seed: int = 7) -> pa.Table:
    """Orders over four months with nulls in every column but the time."""
    rnd = random.Random(seed)

    def maybe(value, p=0.08):
        return None if rnd.random() < p else value

    start = dt.date(2026, 1, 1)
    return pa.table({
        "day": pa.array(sorted(start + dt.timedelta(days=rnd.randrange(120)) for _ in range(n)), pa.date32()),
        "region": [maybe(rnd.choice("NSE")) for _ in range(n)],
        "channel": pa.array([maybe(rnd.choice([1, 2, 3])) for _ in range(n)], pa.int64()),
        "status": [rnd.choice(STATUSES) for _ in range(n)],
        "customer": [maybe(f"c{rnd.randrange(150)}") for _ in range(n)],
        "amount": [maybe(round(rnd.uniform(1, 500), 2)) for _ in range(n)],
        "qty": pa.array([maybe(rnd.randrange(1, 9)) for _ in range(n)], pa.int64()),
        "flag": [maybe(rnd.random() < 0.3, 0.2) for _ in range(n)],
        "price": pa.array([maybe(Decimal(rnd.randrange(100, 99999)) / 100) for _ in range(n)],
                          pa.decimal128(9, 2)),
    })


SHOP = load("""
    source orders {
        time day
        dimensions region, channel
        entity customer
    }
    metric paying = count_distinct(orders.customer) where orders.status == "paid"
    metric refunding = count_distinct(orders.customer) where orders.status == "refunded"
    metric anyone = count_distinct(orders.customer)
    metric settled = count_distinct(orders.customer) where orders.status in ["paid", "refunded"]
    metric statuses = count_distinct(orders.status)
    metric revenue = sum(orders.amount) where orders.status == "paid"
    metric paid_orders = count(orders) where orders.status == "paid"
    metric refunded_amounts = count(orders.amount) where orders.status == "refunded"
    metric smallest = min(orders.amount) where orders.status == "paid"
    metric largest = max(orders.qty)
    metric mean_refund = avg(orders.amount) where orders.status == "refunded"
    metric unknown_status = count(orders) where orders.status is null
""")

# metric -> (filter over the rows, reduction, column, value for a cell with no rows)
REFERENCE = {
    "paying": (lambda t: pc.equal(t["status"], "paid"), "count_distinct", "customer", 0),
    "refunding": (lambda t: pc.equal(t["status"], "refunded"), "count_distinct", "customer", 0),
    "anyone": (None, "count_distinct", "customer", 0),
    "settled": (lambda t: pc.is_in(t["status"], pa.array(["paid", "refunded"])), "count_distinct", "customer", 0),
    "statuses": (None, "count_distinct", "status", 0),
    "revenue": (lambda t: pc.equal(t["status"], "paid"), "sum", "amount", 0),
    "paid_orders": (lambda t: pc.equal(t["status"], "paid"), "count_all", None, 0),
    "refunded_amounts": (lambda t: pc.equal(t["status"], "refunded"), "count", "amount", 0),
    "smallest": (lambda t: pc.equal(t["status"], "paid"), "min", "amount", None),
    "largest": (None, "max", "qty", None),
    "mean_refund": (lambda t: pc.equal(t["status"], "refunded"), "mean", "amount", None),
    "unknown_status": (lambda t: pc.is_null(t["status"]), "count_all", None, 0),
}


def expected(table: pa.Table, by: list[str], where, how: str, column: str | None) -> dict[tuple, object]:
    """{(month, *dims): value} from a plain pyarrow grouping of the rows ``where`` keeps."""
    rows = table.append_column("__month", pc.strftime(pc.cast(table["day"], pa.timestamp("s")), format="%Y-%m"))
    for dim in by:  # the result gives dimension values as text
        rows = rows.set_column(rows.schema.get_field_index(dim), dim, pc.cast(rows[dim], pa.string()))
    if where is not None:
        rows = rows.filter(pc.fill_null(where(rows), False))
    options = {"count": pc.CountOptions(mode="only_valid"), "count_distinct": pc.CountOptions(mode="only_valid"),
               "sum": pc.ScalarAggregateOptions(min_count=0)}.get(how)
    spec = ([], "count_all") if how == "count_all" else (column, how, options)
    grouped = rows.group_by(["__month", *by]).aggregate([spec])
    values = grouped.column(grouped.num_columns - 1).to_pylist()
    keys = zip(*(grouped[c].to_pylist() for c in ["__month", *by]), strict=True)
    return dict(zip(keys, values, strict=True))


def check_against_reference(result: pa.Table, table: pa.Table, by: list[str], metrics=REFERENCE) -> int:
    checked = 0
    for name, (where, how, column, empty) in metrics.items():
        want = expected(table, by, where, how, column)
        got = result.select(["period", *by, name]).to_pylist()
        assert len(got) == result.num_rows
        for row in got:
            key = (row["period"], *(row[d] for d in by))
            value, reference = row[name], want.get(key, empty)
            if isinstance(reference, Decimal):
                reference = float(reference)
            if isinstance(reference, float) and value is not None:
                assert math.isclose(value, reference, rel_tol=1e-9), (name, key, value, reference)
            else:
                assert value == reference, (name, key, value, reference)
            checked += 1
        assert set(want) <= {(r["period"], *(r[d] for d in by)) for r in got}, name
    return checked


@pytest.mark.parametrize("by", [[], ["region"], ["region", "channel"]], ids=["whole", "by-region", "by-two"])
def test_every_partial_equals_a_plain_grouping_of_the_filtered_rows(by):
    table = orders()
    assert check_against_reference(SHOP.evaluate({"orders": table}, by=by), table, by) > 0


@pytest.mark.parametrize("shuffled", [False, True], ids=["time-ordered", "shuffled"])
@pytest.mark.parametrize("by", [[], ["region", "channel"]], ids=["whole", "by-two"])
def test_distinct_counts_split_into_key_ranges_and_threads_are_exact(monkeypatch, by, shuffled):
    # A few dozen rows per part: many key ranges, grouped on several threads; in batches of
    # 100 rows, each holding a few keys (time order) or most of them (shuffled).
    monkeypatch.setattr(aggregating, "_ROWS_PER_PART", 40)
    table = orders()
    if shuffled:
        table = table.take(pa.array(random.Random(5).sample(range(table.num_rows), table.num_rows)))
    table = pa.Table.from_batches(table.to_batches(max_chunksize=100))
    assert check_against_reference(SHOP.evaluate({"orders": table}, by=by), table, by) > 0


def test_key_ranges_reach_the_largest_code_of_the_narrowest_key(monkeypatch):
    # One month (and null times) by 63 stores (and null): exactly 2 × 64 = 128 codes, int8, up to 127.
    monkeypatch.setattr(aggregating, "_ROWS_PER_PART", 40)
    rnd = random.Random(3)
    n = 1500
    table = pa.table({
        "day": pa.array([None if i % 50 == 0 else dt.date(2026, 3, 1 + i % 28) for i in range(n)], pa.date32()),
        "store": [None if i % 7 == 0 else f"s{rnd.randrange(63):02d}" for i in range(n)],
        "customer": [f"c{rnd.randrange(40)}" for _ in range(n)],
    })
    assert len(set(table["store"].to_pylist())) == 64
    tree = load("""
        source orders {
            time day
            dimensions store
            entity customer
        }
        metric buyers = count_distinct(orders.customer)
    """)
    codes = aggregating.GroupKeys.encode(aggregating.period_index(table["day"], "month"),
                                         {"store": table["store"]}).codes
    assert codes.type == pa.int8() and pc.max(codes).as_py() == 127
    result = tree.evaluate({"orders": table}, by=["store"])
    march = table.filter(pc.is_valid(table["day"]))
    want = march.group_by("store").aggregate([("customer", "count_distinct")])
    assert dict(zip(result["store"].to_pylist(), result["buyers"].to_pylist(), strict=True)) == dict(
        zip(want["store"].to_pylist(), want["customer_count_distinct"].to_pylist(), strict=True))


def test_distinct_counts_equal_pyarrow_count_distinct_on_one_group():
    # One period and no split: a single key, so no ranges, for both shared and single-filter counts.
    table = orders().filter(pc.less(orders()["day"], pa.scalar(dt.date(2026, 2, 1), pa.date32())))
    result = SHOP.evaluate({"orders": table}, metrics=["paying", "refunding", "anyone", "settled"])
    paid = table.filter(pc.fill_null(pc.equal(table["status"], "paid"), False))
    refunded = table.filter(pc.fill_null(pc.equal(table["status"], "refunded"), False))
    settled = table.filter(pc.fill_null(pc.is_in(table["status"], pa.array(["paid", "refunded"])), False))
    assert result.to_pydict() == {
        "period": ["2026-01"],
        "paying": [pc.count_distinct(paid["customer"]).as_py()],
        "refunding": [pc.count_distinct(refunded["customer"]).as_py()],
        "anyone": [pc.count_distinct(table["customer"]).as_py()],
        "settled": [pc.count_distinct(settled["customer"]).as_py()],
    }


@pytest.mark.parametrize("filter_only", [False, True], ids=["status-counted", "status-filter-only"])
def test_a_multi_row_group_parquet_file_with_dictionary_columns(tmp_path, filter_only):
    # Each row group brings its own dictionaries for the dimension and, when only filters read
    # it, for the status column.
    table = orders()
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=300)
    assert pq.ParquetFile(path).metadata.num_row_groups == 8
    by = ["region", "channel"]
    metrics = {k: v for k, v in REFERENCE.items() if not (filter_only and k == "statuses")}
    result = SHOP.evaluate({"orders": path}, by=by, metrics=list(metrics))
    assert check_against_reference(result, table, by, metrics) > 0


def test_filter_columns_are_read_dictionary_encoded_and_formula_columns_are_not():
    needs = aggregating.needs(SHOP, [m for m in SHOP.metrics.values() if m.kind == "base"],
                              pluginmanager.registry(), ["region"])
    dictionary = {n.column for n in needs if n.dictionary}
    # status is only compared by filters and counted distinct (statuses): encoded. The entity, customer, is
    # counted distinct too, but read as it is (customer states code it their own way).
    assert dictionary == {"status"}
    tree = load("""
        source orders {
            time day
        }
        metric revenue = sum(orders.amount) where orders.status == "paid"
    """)
    needs = aggregating.needs(tree, [tree.metrics["revenue"]], pluginmanager.registry(), [])
    assert [(n.column, n.dictionary) for n in needs] == [("day", False), ("amount", False), ("status", True)]


def test_columns_only_counted_distinct_are_read_dictionary_encoded_and_others_are_not():
    tree = load("""
        source invoices {
            time day
            dimensions country
        }
        metric invoices_n = count_distinct(invoices.number) where invoices.qty > 0
        metric products = count_distinct(invoices.product)
        metric product_codes = sum(invoices.product)
        metric countries = count_distinct(invoices.country)
    """)
    needs = aggregating.needs(tree, list(tree.metrics.values()), pluginmanager.registry(), ["country"])
    dictionary = {n.column for n in needs if n.dictionary}
    # product is summed as well, so it is read as it is; country is a dimension (encoded as one anyway); qty
    # is only filtered on (marked too; Parquet encodes only text).
    assert dictionary == {"number", "qty"}


FILTERS = [
    'orders.status == "paid"',
    'orders.status != "paid"',
    'orders.status in ["paid", "refunded"]',
    'orders.status not in ["paid"]',
    "orders.status is null",
    "orders.status is not null",
    'not orders.status == "cancelled"',
    'orders.status == "paid" or orders.status is null',
]


@pytest.mark.parametrize("condition", FILTERS)
def test_a_filter_over_a_dictionary_column_keeps_the_rows_a_plain_one_does(condition):
    tree = load(f"""
        source orders {{
            time day
        }}
        metric kept = count(orders) where {condition}
        metric kept_sum = sum(orders.amount) where {condition}
    """)
    plain = orders()
    encoded = plain.set_column(plain.schema.get_field_index("status"), "status",
                               pa.chunked_array([plain["status"].combine_chunks().dictionary_encode()]))
    assert tree.evaluate({"orders": encoded}).equals(tree.evaluate({"orders": plain}))


def test_a_filter_over_a_dictionary_column_that_is_not_a_condition_is_an_error():
    tree = load("""
        source orders {
            time day
        }
        metric m = count(orders) where orders.status
    """)
    encoded = orders()
    encoded = encoded.set_column(encoded.schema.get_field_index("status"), "status",
                                 encoded["status"].dictionary_encode())
    with pytest.raises(DataError, match="the filter of 'm' is not a condition"):
        tree.evaluate({"orders": encoded})


@pytest.fixture
def plugin():
    """Register a plugin for one test and always unregister it."""
    names = []
    try:
        yield lambda obj: names.append(pluginmanager.register(obj))
    finally:
        for name in names:
            pluginmanager.unregister(name=name)


class Probes:
    """One aggregate per kind of partial, each passing its column through as that partial."""

    @metrictree.hookimpl
    def metrictree_functions(self, register):
        for how, empty in [("sum", 0), ("count", 0), ("count_all", 0), ("min", None), ("max", None),
                           ("mean", None), ("count_distinct", 0), ("any", None), ("all", None)]:
            register(metrictree.Aggregate(f"probe_{how}", lambda ctx, x, how=how, empty=empty: [
                metrictree.Partial(None if how == "count_all" else x, how, empty)], check=None))


# Module-level, so that they live as long as the tests: pluginmanager.registry() caches by the
# id() of the registered plugins, which a new plugin object could otherwise reuse.
PROBES = Probes()


@pytest.mark.parametrize("by", [[], ["region"]], ids=["whole", "by-region"])
def test_every_kind_of_plugin_partial_with_and_without_a_filter(plugin, by):
    plugin(PROBES)
    cases = {  # metric: (column, how)
        "s_qty": ("qty", "sum"), "s_flag": ("flag", "sum"), "s_price": ("price", "sum"),
        "c_amount": ("amount", "count"), "n_rows": ("amount", "count_all"),
        "lo_qty": ("qty", "min"), "hi_amount": ("amount", "max"),
        "mean_qty": ("qty", "mean"), "mean_price": ("price", "mean"),
        "d_qty": ("qty", "count_distinct"), "any_flag": ("flag", "any"), "all_flag": ("flag", "all"),
    }
    lines = []
    for name, (col, how) in cases.items():
        lines.append(f"metric {name} = probe_{how}(orders.{col})")
        lines.append(f'metric {name}_paid = probe_{how}(orders.{col}) where orders.status == "paid"')
    tree = load("source orders {\n time day\n dimensions region\n}\n" + "\n".join(lines))
    table = orders()
    result = tree.evaluate({"orders": table}, by=by)
    reference = {}
    for name, (col, how) in cases.items():
        empty = 0 if how in ("sum", "count", "count_all", "count_distinct") else None
        reduce = "count_all" if how == "count_all" else how
        reference[name] = (None, reduce, col, empty)
        reference[f"{name}_paid"] = (lambda t: pc.equal(t["status"], "paid"), reduce, col, empty)
    # The engine gives every metric as a number: compare as floats (flags sum as 0/1, decimals as floats).
    numbers = result
    for name in result.column_names[1 + len(by):]:
        numbers = numbers.set_column(numbers.schema.get_field_index(name), name, pc.cast(result[name], pa.float64()))
    assert check_against_reference(numbers, table, by, reference) > 0


class SumWithoutDefault:
    """A sum whose empty value is null: only a period with no rows at all is null, not one its filter empties."""

    @metrictree.hookimpl
    def metrictree_functions(self, register):
        register(metrictree.Aggregate("total", lambda ctx, x: [metrictree.Partial(x, "sum", None)]))


SUM_WITHOUT_DEFAULT = SumWithoutDefault()


def test_a_group_whose_rows_the_filter_drops_sums_to_zero_not_null(plugin):
    plugin(SUM_WITHOUT_DEFAULT)
    tree = load("""
        source orders {
            time day
        }
        metric paid = total(orders.amount) where orders.status == "paid"
        metric maximum = max(orders.amount) where orders.status == "paid"
    """)
    days = [dt.date(2026, 1, 5), dt.date(2026, 2, 5), dt.date(2026, 4, 5)]
    table = pa.table({"day": pa.array(days, pa.date32()), "status": ["refunded", "paid", "paid"],
                      "amount": [1.0, 2.0, 4.0]})
    assert tree.evaluate({"orders": table}).to_pydict() == {
        "period": ["2026-01", "2026-02", "2026-03", "2026-04"],
        "paid": [0.0, 2.0, None, 4.0],  # January has rows, none paid: 0; March has no rows at all
        "maximum": [None, 2.0, None, 4.0],
    }


@pytest.mark.parametrize("call", ["sum(orders)", "count_distinct(orders)", "min(orders)"])
def test_aggregating_a_source_itself_rather_than_a_column_is_an_error(call):
    tree = load(f"""
        source orders {{
            time day
        }}
        metric m = {call} where orders.status == "paid"
    """)
    with pytest.raises(DataError) as caught:
        tree.evaluate({"orders": orders()})
    name = call.split("(")[0]
    assert caught.value.diagnostics[0].render().splitlines()[0] == (
        f"<string>:7:12: error: {name}() cannot aggregate the source 'orders' itself")
    assert f"like {name}(orders.<column>); count(orders) counts its rows" in str(caught.value)


# --------------------------------------------------------------------------- periods and keys


@pytest.mark.parametrize("grain", ["day", "week", "month", "quarter", "year"])
@pytest.mark.parametrize("kind", ["date32", "date64", "timestamp", "Asia/Tokyo", "UTC", "Europe/Paris",
                                  "Pacific/Kiritimati", "Etc/GMT+12"])
def test_period_index_equals_periods_index(grain, kind):
    """Zoned timestamps (a day lookup over their wall-clock time) across midnight, DST changes, ±12–14 h."""
    rnd = random.Random(grain + kind)
    moments = [dt.datetime(1969, 12, 31, 23, 59), dt.datetime(1970, 1, 1), None, dt.datetime(2024, 2, 29, 12),
               *(dt.datetime(1960, 1, 1) + dt.timedelta(minutes=rnd.randrange(40 * 365 * 24 * 60))
                 for _ in range(500))]
    if kind.startswith("date"):
        times = pa.array([m.date() if m else None for m in moments], pa.date32() if kind == "date32" else pa.date64())
    else:
        times = pa.array(moments, pa.timestamp("us", tz=None if kind == "timestamp" else kind))
    times = pa.chunked_array([times[:100], times[100:]])
    assert aggregating.period_index(times, grain).to_pylist() == periods.index(times, grain).to_pylist()


def test_group_keys_round_trip_with_nulls_numbers_and_odd_dictionaries():
    period = pa.chunked_array([pa.array([24312, None, 24315, 24312, 24313], pa.int32())])
    repeated = pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 2, 1], pa.int32()), pa.array(["a", "a", "b"]))
    with_null = pa.DictionaryArray.from_arrays(pa.array([0, 1, 1, 2, 0], pa.int32()), pa.array(["x", None, "y"]))
    dims = {"d1": pa.chunked_array([repeated]), "d2": pa.chunked_array([with_null]),
            "d3": pa.chunked_array([pa.array([7, 7, None, 9, 8], pa.int64())])}
    keys = aggregating.GroupKeys.encode(period, dims)
    decoded = keys.decode(keys.codes.combine_chunks())
    assert decoded[aggregating.PERIOD].to_pylist() == period.to_pylist()
    assert decoded["d1"].to_pylist() == ["a", "a", None, "b", "a"]
    assert decoded["d2"].to_pylist() == ["x", None, None, "y", "x"]
    assert decoded["d3"].to_pylist() == [7, 7, None, 9, 8]
    # Equal values get equal codes, different ones different codes.
    assert keys.codes.to_pylist()[0] != keys.codes.to_pylist()[4]
    assert len(set(keys.codes.to_pylist())) == 5


@pytest.mark.parametrize("values", [pa.nulls(4), pa.array([1.5, None, float("nan"), 1.5]),
                                    pa.array([True, None, False, True]),
                                    pa.array([dt.date(2026, 1, 1), None, dt.date(2026, 1, 2), dt.date(2026, 1, 1)]),
                                    pa.nulls(4, pa.null()).dictionary_encode()],
                         ids=["null-type", "float-nan", "bool", "date", "dictionary-of-nulls"])
def test_any_kind_of_dimension_groups_its_equal_values(values):
    tree = load("source o {\n time day\n dimensions r\n}\nmetric n = count(o)\n")
    table = pa.table({"day": pa.array([dt.date(2026, 1, 1)] * 4, pa.date32()), "r": values})
    result = tree.evaluate({"o": table}, by="r")
    plain = pc.cast(values.dictionary_decode() if pa.types.is_dictionary(values.type) else values, pa.string())
    want = pa.table({"r": plain}).group_by("r").aggregate([([], "count_all")])
    assert sorted(zip(result["r"].to_pylist(), result["n"].to_pylist()), key=str) == sorted(
        zip(want["r"].to_pylist(), want["count_all"].to_pylist()), key=str)


def test_group_keys_renumber_when_the_combinations_overflow_int64():
    # Three dimensions with two million possible values each: 8e18 combinations.
    big = pa.array(range(1 << 21), pa.int32())
    rows = [5, 1 << 20, 17, 5]
    dims = {f"d{i}": pa.chunked_array([pa.DictionaryArray.from_arrays(pa.array([(r * (i + 1)) % (1 << 21)
                                                                                  for r in rows], pa.int32()), big)])
            for i in range(3)}
    period = pa.chunked_array([pa.array([1, 2, 1, 1], pa.int32())])
    keys = aggregating.GroupKeys.encode(period, dims)
    assert any(stage is not None for stage in keys.stages)
    assert keys.codes.type == pa.int64()
    decoded = keys.decode(keys.codes.combine_chunks())
    assert decoded[aggregating.PERIOD].to_pylist() == [1, 2, 1, 1]
    for i in range(3):
        assert decoded[f"d{i}"].to_pylist() == [(r * (i + 1)) % (1 << 21) for r in rows]
    codes = keys.codes.to_pylist()
    assert codes[0] == codes[3] and len(set(codes)) == 3


@pytest.mark.parametrize("nulls", [False, True])
def test_filters_over_a_dictionary_column_are_those_over_its_text(tmp_path, nulls):
    """A ``where`` that reads one dictionary-encoded column is computed on the dictionary's values and spread to
    the rows (by comparing the rows' codes with the codes that hold, when no row lacks a value): the same rows
    kept as the filter over the plain text, whether it holds for no value, one or several, and with nulls."""
    import random

    rng = random.Random(4)
    n = 3000
    status = [rng.choice(["paid", "refunded", "open", "void"]) for _ in range(n)]
    if nulls:
        status = [None if i % 7 == 0 else v for i, v in enumerate(status)]
    table = pa.table({"day": pa.array([dt.date(2025, 1, 1) + dt.timedelta(days=i % 200) for i in range(n)]),
                      "status": status, "amount": [float(i % 13) for i in range(n)]})
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=500)
    tree = load("""
        source orders {
            time day
        }
        metric paid = count(orders) where orders.status == "paid"
        metric settled = sum(orders.amount) where orders.status in ["paid", "refunded"]
        metric unpaid = count(orders) where orders.status not in ["paid"]
        metric never = count(orders) where orders.status == "shipped"
        metric missing = count(orders) where orders.status is null
        metric other = count(orders) where orders.status != "void"
    """)
    names = ["paid", "settled", "unpaid", "never", "missing", "other"]
    needs = aggregating.needs(tree, [tree.metrics[m] for m in names], pluginmanager.registry(), [])
    assert {n.column for n in needs if n.dictionary} == {"status"}  # read dictionary-encoded from the file
    from_file = tree.evaluate({"orders": str(path)}, metrics=names).to_pylist()
    from_text = tree.evaluate({"orders": table}, metrics=names).to_pylist()
    assert from_file == from_text
    assert any(row["paid"] for row in from_text) and any(row["settled"] for row in from_text)
    assert all(row["never"] == 0 for row in from_text)
    assert any(row["missing"] for row in from_text) == nulls
