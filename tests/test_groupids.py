"""Group numbers shared by the tables of a stream (`metrictree.groupids`), and a stream whose tables see
different dimension values, rows without a time and null dimensions, against one table."""

from __future__ import annotations

import datetime as dt
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import metrictree
from metrictree import reading
from metrictree.aggregating import PERIOD, GroupKeys
from metrictree.groupids import GroupNumbers


def numbered(numbers: GroupNumbers, period: list, region: list) -> list[int]:
    """Number the groups of one table, encoded by the table's own `GroupKeys`, as the stream does."""
    keys = GroupKeys.encode(pa.array(period, pa.int64()), {"region": pa.chunked_array([pa.array(region, pa.string())])})
    codes = keys.codes.combine_chunks()
    return numbers.number(codes, lambda k: keys.decode(k, dictionary=True)).to_pylist()


def test_the_same_group_gets_the_same_number_in_tables_encoded_differently():
    numbers = GroupNumbers((PERIOD, "region"))
    first = numbered(numbers, [5, 5, 6, 6], ["north", "south", "north", "north"])
    # Another table: its own dictionary (south first, a new value), its own first period.
    second = numbered(numbers, [6, 7, 5, 5], ["south", "east", "south", "north"])
    assert first == [0, 1, 2, 2]
    assert second == [3, 4, 1, 0]
    assert len(numbers) == 5
    values = numbers.values()
    assert values[PERIOD].to_pylist() == [5, 5, 6, 6, 7]
    assert values["region"].to_pylist() == ["north", "south", "north", "south", "east"]
    assert numbers.values(pa.array([4, 0, 4], pa.int32()))["region"].to_pylist() == ["east", "north", "east"]


def test_a_missing_period_or_dimension_is_a_group_of_its_own_and_matches_itself():
    numbers = GroupNumbers((PERIOD, "region"))
    first = numbered(numbers, [None, 5, 5, None], [None, None, "north", "north"])
    second = numbered(numbers, [5, None, None], [None, "north", None])
    assert len(set(first)) == 4
    assert second == [first[1], first[3], first[0]]
    values = numbers.values()
    assert list(zip(values[PERIOD].to_pylist(), values["region"].to_pylist(), strict=True)) == [
        (None, None), (5, None), (5, "north"), (None, "north")]


def test_numbers_of_an_empty_table_and_of_no_table():
    numbers = GroupNumbers((PERIOD, "region"))
    assert numbers.values()[PERIOD].to_pylist() == []
    assert numbered(numbers, [], []) == []
    assert numbered(numbers, [3], ["x"]) == [0]


def test_many_groups_keep_their_numbers_as_tables_come():
    numbers = GroupNumbers((PERIOD, "region"))
    regions = [f"r{i}" for i in range(2000)]
    first = numbered(numbers, [1] * 2000, regions)
    second = numbered(numbers, [1] * 2000 + [2] * 2000, regions[::-1] + regions)
    assert first == list(range(2000))
    assert second == list(range(1999, -1, -1)) + list(range(2000, 4000))


TREE = metrictree.loads(textwrap.dedent("""
    tree g "group numbers"
    grain month
    source orders { time day dimensions region, channel entity customer_id }
    metric customers = count_distinct(orders.customer_id) where orders.status == "paid"
    metric anyone = count_distinct(orders.customer_id)
    metric churned = churned_customers(orders) where orders.status == "paid"
    metric new = new_customers(orders)
    metric revenue = sum(orders.amount)
"""))


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    """Rows in time order whose regions change as time goes (a region only in the first rows, one only in the
    last), with null regions, rows without a day, and customers met again in later tables."""
    n = 3000
    start = dt.date(2025, 1, 1)
    days = [None if i % 97 == 0 else start + dt.timedelta(days=i * 300 // n) for i in range(n)]
    table = pa.table({
        "day": pa.array(days, pa.date32()),
        "region": [None if i % 13 == 0 else ("old" if i < n // 3 else "late" if i > 2 * n // 3 else "mid")
                   for i in range(n)],
        "channel": ["web" if i % 3 else "app" for i in range(n)],
        "customer_id": [None if i % 17 == 0 else f"c{(i * 7) % 250}" for i in range(n)],
        "status": ["refunded" if i % 5 == 0 else "paid" for i in range(n)],
        "amount": [float(i % 50) for i in range(n)],
    })
    path = tmp_path_factory.mktemp("groupids") / "drifting.parquet"
    pq.write_table(table, path, row_group_size=250)
    return table, path


@pytest.mark.parametrize("by", [[], ["region"], ["region", "channel"]])
def test_a_stream_whose_tables_see_different_dimension_values_gives_what_one_table_gives(drifting, monkeypatch, by):
    table, path = drifting
    whole = TREE.evaluation({"orders": table}, by=by).table.to_pylist()
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 250)
    streamed = TREE.evaluation({"orders": str(path)}, by=by).table.to_pylist()
    assert streamed == whole


WIDE = metrictree.loads(textwrap.dedent("""
    tree w "six wide dimensions"
    grain month
    source orders { time day dimensions a, b, c, d, e, f entity customer_id }
    metric customers = count_distinct(orders.customer_id)
    metric rows_n = count(orders)
"""))


def test_group_keys_too_wide_for_int64_are_numbered_across_tables(tmp_path, monkeypatch):
    """Six dimensions of ~1500 values a table each: 1500**6 combinations overflow int64, so each table's group keys
    are renumbered in stages (`GroupKeys.encode`); the stream's group numbers still match across tables."""
    n = 3000
    start = dt.date(2025, 1, 1)
    table = pa.table({
        "day": pa.array([start + dt.timedelta(days=(i * 200) // n) for i in range(n)], pa.date32()),
        **{name: [None if i % (11 + k) == 0 else f"{name}{(i * (k + 1)) % 2999}" for i in range(n)]
           for k, name in enumerate("abcdef")},
        "customer_id": [f"c{(i * 7) % 40}" for i in range(n)],
    })
    path = tmp_path / "wide.parquet"
    pq.write_table(table, path, row_group_size=1500)  # two tables of 1500 rows, ~1500 values a dimension each
    staged = []
    real_encode = GroupKeys.encode.__func__

    def encode(cls, period, dims):
        keys = real_encode(cls, period, dims)
        staged.append(any(stage is not None for stage in keys.stages))
        return keys

    by = list("abcdef")
    whole = WIDE.evaluation({"orders": table}, by=by).table.to_pylist()
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 1500)
    monkeypatch.setattr(GroupKeys, "encode", classmethod(encode))
    streamed = WIDE.evaluation({"orders": str(path)}, by=by).table.to_pylist()
    assert len(staged) >= 3 and all(staged)  # each table's keys, and the final encoding, renumbered in stages
    assert streamed == whole


PLAIN = metrictree.loads(textwrap.dedent("""
    tree p "plain distinct counts, no customer states"
    grain month
    source orders { time day dimensions region, channel entity customer_id }
    metric customers = count_distinct(orders.customer_id) where orders.status == "paid"
    metric refunders = count_distinct(orders.customer_id) where orders.status == "refunded"
    metric anyone = count_distinct(orders.customer_id)
    metric orders_n = count(orders)
"""))


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("by", [[], ["region", "channel"]])
def test_plain_distinct_counts_held_as_kept_rows_count_each_pair_once(drifting, tmp_path, monkeypatch, ordered, by):
    """Distinct counts of text with no customer state over the column hold a stream's kept rows, repeats and
    all (several filters, null customers, rows without a day), and count each pair once when final."""
    table, path = drifting
    if not ordered:  # no period is final before the end: the repeated pairs are merged as they grow
        path = tmp_path / "shuffled.parquet"
        pq.write_table(table.take(pa.array([(i * 7919) % table.num_rows for i in range(table.num_rows)])), path,
                       row_group_size=250)
    whole = PLAIN.evaluation({"orders": table}, by=by).table.to_pylist()
    repeated = []
    from metrictree import aggregating

    real = aggregating._StreamState.finish

    def finish(self, *args):
        repeated.append(set(self.repeated))
        return real(self, *args)

    monkeypatch.setattr(aggregating._StreamState, "finish", finish)
    monkeypatch.setattr(aggregating, "_ROWS_PER_PART", 4)  # merge the held rows early and often
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 250)
    streamed = PLAIN.evaluation({"orders": str(path)}, by=by).table.to_pylist()
    assert len(repeated) == 1 and len(repeated[0]) == 1  # the one column counted distinct held its kept rows
    assert streamed == whole
