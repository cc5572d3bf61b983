"""Binding data to a tree's sources: every accepted input gives the same numbers, and every
mismatch between tree and data is a DataError naming the source, the column and the tree line.

The numbers are computed by hand from ORDERS below.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import textwrap

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.dataset as ds
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

import metrictree

D = dt.date

TREE = textwrap.dedent("""\
    tree shop
    grain month

    source orders {
        time day
        dimensions region
    }

    metric revenue = sum(orders.amount)
    metric orders_n = count(orders)
    metric north = sum(orders.amount) where orders.region == "N"
""")
SOURCE_LINE = "source orders {"

ORDERS = pa.table({
    "day": pa.array([D(2026, 1, 5), D(2026, 1, 20), D(2026, 3, 1), D(2026, 3, 31)], pa.date32()),
    "region": ["N", "S", "N", "S"],
    "amount": [10.5, 2.5, 4.25, 1.0],
})
# By hand: January N 10.5 + S 2.5; February nothing; March N 4.25 + S 1.
BY_REGION = {
    "period": ["2026-01", "2026-01", "2026-02", "2026-02", "2026-03", "2026-03"],
    "region": ["N", "S", "N", "S", "N", "S"],
    "revenue": [10.5, 2.5, 0.0, 0.0, 4.25, 1.0],
    "orders_n": [1, 1, 0, 0, 1, 1],
    "north": [10.5, 0.0, 0.0, 0.0, 4.25, 0.0],
}
FROM_MARCH = {"period": ["2026-03"], "revenue": [5.25], "orders_n": [2], "north": [4.25]}


@pytest.fixture(scope="module")
def tree():
    return metrictree.loads(TREE)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    pq.write_table(ORDERS, folder / "orders.parquet")
    pcsv.write_csv(ORDERS, folder / "orders.csv")
    pcsv.write_csv(ORDERS, folder / "orders.tsv", pcsv.WriteOptions(delimiter="\t"))
    feather.write_feather(ORDERS, folder / "orders.arrow")
    feather.write_feather(ORDERS, folder / "orders.feather")
    by_region = ds.partitioning(pa.schema([("region", pa.string())]), flavor="hive")
    ds.write_dataset(ORDERS, folder / "hive_parquet", format="parquet", partitioning=by_region)
    ds.write_dataset(ORDERS, folder / "hive_csv", format="csv", partitioning=by_region)
    return folder


class Stream:
    """Only the Arrow PyCapsule stream interface, like a polars frame or any other producer."""

    def __init__(self, table: pa.Table):
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def _pandas(table):
    pytest.importorskip("pandas")
    return table.to_pandas()


def _pandas_datetimes(table):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame({"day": pd.to_datetime([str(d) for d in table["day"].to_pylist()]),
                         "region": pd.Categorical(table["region"].to_pylist()),
                         "amount": table["amount"].to_pylist()})


def _duckdb(table):
    if importlib.util.find_spec("duckdb") is None:
        pytest.skip("duckdb is not installed")
    import duckdb

    return duckdb.connect().from_arrow(table)


INPUTS = {
    "table": lambda t, f: t,
    "chunked table": lambda t, f: pa.concat_tables([t.slice(0, 1), t.slice(1, 2), t.slice(3)]),
    "record batch": lambda t, f: t.to_batches()[0],
    "dataset": lambda t, f: ds.dataset(t),
    "dictionary dimension": lambda t, f: t.set_column(1, "region", t["region"].dictionary_encode()),
    "timestamp time": lambda t, f: t.set_column(0, "day", t["day"].cast(pa.timestamp("us"))),
    "date64 time": lambda t, f: t.set_column(0, "day", t["day"].cast(pa.date64())),
    "parquet path": lambda t, f: f / "orders.parquet",
    "parquet str": lambda t, f: str(f / "orders.parquet"),
    "csv": lambda t, f: f / "orders.csv",
    "tsv": lambda t, f: f / "orders.tsv",
    "arrow ipc": lambda t, f: f / "orders.arrow",
    "feather": lambda t, f: f / "orders.feather",
    "hive parquet folder": lambda t, f: f / "hive_parquet",
    "hive csv folder": lambda t, f: f / "hive_csv",
    "arrow c stream": lambda t, f: Stream(t),
    "record batch reader": lambda t, f: pa.RecordBatchReader.from_batches(t.schema, t.to_batches()),
    "pandas": lambda t, f: _pandas(t),
    "pandas datetime + category": lambda t, f: _pandas_datetimes(t),
    "duckdb relation": lambda t, f: _duckdb(t),
}


@pytest.mark.parametrize("kind", list(INPUTS))
def test_every_input_kind_gives_the_same_numbers(tree, files, kind):
    table = tree.evaluate({"orders": INPUTS[kind](ORDERS, files)}, by=["region"])
    assert table.to_pydict() == BY_REGION
    assert table.schema.field("region").type == pa.string()


@pytest.mark.parametrize("kind", ["table", "dataset", "parquet path", "csv", "hive parquet folder", "pandas"])
def test_the_range_filters_rows_at_reading(tree, files, kind):
    table = tree.evaluate({"orders": INPUTS[kind](ORDERS, files)}, start="2026-03", end="2026-03")
    assert table.to_pydict() == FROM_MARCH


def test_a_file_needs_only_the_columns_the_metrics_read(tree, tmp_path):
    # No amount column: fine when only count(orders) is asked for.
    pq.write_table(ORDERS.drop(["amount"]), tmp_path / "orders.parquet")
    table = tree.evaluate({"orders": tmp_path / "orders.parquet"}, metrics=["orders_n"])
    assert table.to_pydict() == {"period": ["2026-01", "2026-02", "2026-03"], "orders_n": [2, 0, 2]}


def test_a_tilde_path_is_expanded(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    pq.write_table(ORDERS, tmp_path / "orders.parquet")
    table = tree.evaluate({"orders": "~/orders.parquet"}, metrics=["revenue"])
    assert table["revenue"].to_pylist() == [13.0, 0.0, 5.25]


# --------------------------------------------------------------------------- mistakes


def _error(tree, data, kind=metrictree.DataError, **kwargs) -> str:
    with pytest.raises(kind) as info:
        tree.evaluate(data, **kwargs)
    assert info.value.diagnostics, "a MetrictreeError carries its diagnostics"
    return str(info.value)


def test_missing_source_names_it_and_the_sources_given(tree):
    message = _error(tree, {"ordres": ORDERS})
    assert "<string>:4:8: error: no data for source 'orders'" in message
    assert SOURCE_LINE in message and "^^^^^^" in message
    assert "data given for: ordres" in message and "did you mean 'ordres'?" in message


def test_missing_column_names_source_column_and_the_line_that_reads_it(tree):
    message = _error(tree, {"orders": ORDERS.drop(["amount"])})
    assert message.startswith("<string>:9:22: error: source 'orders' has no column 'amount' (read by metric "
                              "'revenue')")
    assert "metric revenue = sum(orders.amount)" in message
    assert "its columns: day, region" in message


def test_missing_column_read_only_by_a_filter(tree):
    message = _error(tree, {"orders": ORDERS.drop(["region"])}, metrics=["north"])
    assert "source 'orders' has no column 'region' (read by metric 'north')" in message
    assert 'metric north = sum(orders.amount) where orders.region == "N"' in message


def test_missing_column_suggests_a_close_name(tree):
    message = _error(tree, {"orders": ORDERS.rename_columns(["day", "region", "Amount"])})
    assert "has no column 'amount'" in message and "did you mean 'Amount'?" in message


def test_missing_time_column(tree):
    message = _error(tree, {"orders": ORDERS.rename_columns(["date", "region", "amount"])})
    assert "source 'orders' has no column 'day' (its time column)" in message
    assert SOURCE_LINE in message


def test_missing_dimension_column_when_slicing(tree):
    data = {"orders": ORDERS.drop(["region"])}
    assert tree.evaluate(data, metrics=["revenue"])["revenue"].to_pylist() == [13.0, 0.0, 5.25]
    message = _error(tree, data, by=["region"], metrics=["revenue"])
    assert "source 'orders' has no column 'region' (the dimension 'region')" in message


@pytest.mark.parametrize(("column", "shown", "hint"), [
    # Text and whole numbers that a format reads: the hint names it (metrictree.timeformats).
    (pa.array(["2026-01-05", "2026-01-20", "2026-03-01", "2026-03-31"]), "string",
     'hint: its values look like "2026-01-20": name the format in the source, time day format "%Y-%m-%d"'),
    (pa.array([20260105, 20260120, 20260301, 20260331]), "int64",
     'hint: its values look like "20260120": name the format in the source, time day format "%Y%m%d"'),
    (pa.array([dt.time(1), dt.time(2), dt.time(3), dt.time(4)]), "time64[us]",
     "hint: store it as a date or timestamp"),
])
def test_time_column_that_is_not_a_date(tree, column, shown, hint):
    message = _error(tree, {"orders": ORDERS.set_column(0, "day", column)})
    assert f"the time column 'day' of source 'orders' holds {shown}, not dates or timestamps" in message
    assert SOURCE_LINE in message and hint in message


def test_csv_with_dates_that_are_not_iso_is_a_time_type_error(tree, tmp_path):
    (tmp_path / "orders.csv").write_text("day,region,amount\n05.01.2026,N,10\n")
    message = _error(tree, {"orders": tmp_path / "orders.csv"})
    assert "the time column 'day' of source 'orders' holds string" in message


def test_wrong_column_type_names_the_function_and_line(tree):
    message = _error(tree, {"orders": ORDERS.set_column(2, "amount", pa.array(["10.5", "2.5", "4.25", "1"]))})
    assert message.startswith("<string>:9:18: error: sum() needs a numeric column, but the column holds string: "
                              "orders.amount (in source 'orders')")
    assert "its values are text, like '10.5'" in message
    assert "metric revenue = sum(orders.amount)" in message


def test_wrong_column_type_shows_a_value_that_is_not_a_number(tree):
    message = _error(tree, {"orders": ORDERS.set_column(2, "amount", pa.array(["10.5", "2.5", "$4.25", "1"]))})
    assert "its values are text, like '$4.25'" in message


def test_decimal_points_and_commas_in_one_column_are_named(tree):
    message = _error(tree, {"orders": ORDERS.set_column(2, "amount", pa.array(["10.5", "2,5", "4,25", None]))})
    assert ("some have a decimal point ('10.5') and some a decimal comma ('2,5', 2 of 3 values here); write them "
            "all one way") in message


def test_empty_data(tree):
    message = _error(tree, {"orders": ORDERS.slice(0, 0)})
    assert "<string>:4:8: error: source 'orders' has no rows" in message
    assert SOURCE_LINE in message and "hint: check the data passed for it" in message


def test_no_rows_in_the_range(tree):
    message = _error(tree, {"orders": ORDERS}, start="2027-01", end="2027-02")
    assert "source 'orders' has no rows between 2027-01-01 and 2027-02-28" in message
    assert "--from/--to range" in message and SOURCE_LINE in message
    message = _error(tree, {"orders": ORDERS}, start="2026-04")
    assert "source 'orders' has no rows between 2026-04-01 and the end" in message


def test_time_column_null_in_every_row(tree):
    message = _error(tree, {"orders": ORDERS.set_column(0, "day", pa.nulls(4, pa.date32()))})
    assert "the time column 'day' of source 'orders' is null in every row" in message
    assert SOURCE_LINE in message


def test_no_file_at_the_path(tree, tmp_path):
    message = _error(tree, {"orders": tmp_path / "nope.parquet"})
    assert f"no data file for source 'orders' at {tmp_path / 'nope.parquet'}" in message
    assert SOURCE_LINE in message


def test_unknown_file_format(tree, tmp_path):
    (tmp_path / "orders.xlsx").write_bytes(b"PK")
    message = _error(tree, {"orders": tmp_path / "orders.xlsx"})
    assert "cannot tell the format of" in message and ".parquet" in message


def test_folder_without_data_files(tree, tmp_path):
    (tmp_path / "notes.txt.bak").write_text("nothing")
    message = _error(tree, {"orders": tmp_path})
    assert "holds no Parquet, CSV, Arrow or JSON Lines files" in message


def test_corrupt_parquet_file(tree, tmp_path):
    (tmp_path / "orders.parquet").write_bytes(b"this is not parquet")
    message = _error(tree, {"orders": tmp_path / "orders.parquet"})
    assert "cannot read" in message and "orders.parquet" in message


def test_data_of_a_kind_that_cannot_be_read(tree):
    message = _error(tree, {"orders": 42})
    assert "cannot read the data for source 'orders' from a int" in message
    assert SOURCE_LINE in message and "__arrow_c_stream__" in message


def test_data_that_is_not_a_mapping(tree):
    message = _error(tree, ORDERS, kind=metrictree.UsageError)
    assert "data must map source names to tables, got a Table" in message
    assert "data={'orders': table}" in message


# --------------------------------------------------------------------------- known bugs (reading.py)


def test_range_on_a_time_zone_aware_timestamp_column(tree):
    # 2026-01-31 22:00 UTC is 2026-02-01 01:00 in Moscow: a February order there.
    moscow = pa.timestamp("us", tz="Europe/Moscow")
    times = pa.array([dt.datetime(2026, 1, 31, 22, tzinfo=dt.UTC), dt.datetime(2026, 2, 15, tzinfo=dt.UTC),
                      dt.datetime(2026, 2, 28, 22, tzinfo=dt.UTC)], moscow)
    data = {"orders": pa.table({"day": times, "region": ["N"] * 3, "amount": [1.0, 2.0, 4.0]})}
    whole = tree.evaluate(data, metrics=["revenue"]).to_pydict()
    assert whole == {"period": ["2026-02", "2026-03"], "revenue": [3.0, 4.0]}
    assert tree.evaluate(data, metrics=["revenue"], start="2026-02", end="2026-02").to_pydict() == {
        "period": ["2026-02"], "revenue": [3.0]}


def test_csv_folder_whose_files_infer_different_column_types(tree, tmp_path):
    (tmp_path / "region=N").mkdir()
    (tmp_path / "region=S").mkdir()
    (tmp_path / "region=N" / "part-0.csv").write_text("day,amount\n2026-01-05,10\n")
    (tmp_path / "region=S" / "part-0.csv").write_text("day,amount\n2026-01-20,2.5\n")
    table = tree.evaluate({"orders": tmp_path}, by=["region"], metrics=["revenue"])
    assert table.to_pydict() == {"period": ["2026-01", "2026-01"], "region": ["N", "S"], "revenue": [10.0, 2.5]}


def test_an_empty_csv_field_is_missing_in_a_text_column_too(tmp_path):
    # A guest order exported with an empty customer id is no customer: the CSV reader gives the same
    # count as the same rows handed over with a null (and as DuckDB's read_csv, pandas and polars).
    tree = metrictree.loads(textwrap.dedent("""\
        source orders { time day entity customer }
        metric buyers = count_distinct(orders.customer)
        metric channels = count_distinct(orders.channel)
        """))
    path = tmp_path / "orders.csv"
    path.write_text("day,customer,channel,amount\n2026-01-03,c1,web,1\n2026-01-05,c2,,2\n2026-01-20,,web,3\n")
    from_csv = tree.evaluate({"orders": path}).to_pydict()
    given = pa.table({"day": [D(2026, 1, 3), D(2026, 1, 5), D(2026, 1, 20)], "customer": ["c1", "c2", None],
                      "channel": ["web", None, "web"]})
    assert from_csv == tree.evaluate({"orders": given}).to_pydict() == {
        "period": ["2026-01"], "buyers": [2], "channels": [1]}


def test_the_format_hint_writes_a_time_column_that_is_not_one_word_in_backticks(tmp_path):
    tree = metrictree.loads('tree t\nsource orders {\n    time `Order Date`\n}\nmetric n = count(orders)\n', "t.tree")
    (tmp_path / "orders.csv").write_text("Order Date,x\n05.01.2026,1\n")
    message = _error(tree, {"orders": tmp_path / "orders.csv"})
    assert 'time `Order Date` format "%d.%m.%Y"' in message
    (tmp_path / "orders.csv").write_text("Order Date,x\n5th of January,1\n")  # no format fits: the general advice
    message = _error(tree, {"orders": tmp_path / "orders.csv"})
    assert 'or name its format: time `Order Date` format "%d/%m/%Y %H:%M"' in message
