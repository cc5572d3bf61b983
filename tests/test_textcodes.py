"""Distinct counts of eight-byte text counted as the int64s of its bytes (`metrictree.textcodes`).

Every count is checked against a plain Python count of the rows and against the same evaluation with the
numbers switched off (text hashed as text): nulls in the value and the time, values of other widths (the whole
column, or one piece of a stream, falls back to text), values that repeat across pieces, multi-byte text.
"""

from __future__ import annotations

import datetime as dt
import random
import textwrap
from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import metrictree
from metrictree import aggregating, reading, textcodes

TREE = metrictree.loads(textwrap.dedent("""
    tree t "eight-byte text"
    grain month
    source orders { time day dimensions region entity customer }
    metric customers = count_distinct(orders.customer)
    metric paying = count_distinct(orders.customer) where orders.paid
    metric orders_n = count(orders)
"""))


def order_rows(n: int = 3000, seed: int = 11, odd_at: int | None = None) -> pa.Table:
    rng = random.Random(seed)
    days = sorted(dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(180)) for _ in range(n))
    customers = [None if rng.random() < 0.05 else f"C{rng.randrange(400):07d}" for _ in range(n)]
    if odd_at is not None:
        customers[odd_at] = "C12"  # another width: that piece (or the whole column) is counted as text
    return pa.table({
        "day": pa.array([None if rng.random() < 0.01 else d for d in days], pa.date32()),
        "region": [rng.choice(["N", "S", None]) for _ in range(n)],
        "customer": customers,
        "paid": [rng.random() < 0.8 for _ in range(n)],
    })


def reference(table: pa.Table) -> dict[tuple, dict[str, int]]:
    seen: dict[tuple, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for row in table.to_pylist():
        if row["day"] is None or row["customer"] is None:
            continue
        key = (f"{row['day']:%Y-%m}", row["region"])
        seen[key]["customers"].add(row["customer"])
        if row["paid"]:
            seen[key]["paying"].add(row["customer"])
    return {k: {m: len(v) for m, v in c.items()} for k, c in seen.items()}


def checked(result: pa.Table, table: pa.Table) -> None:
    want = reference(table)
    for row in result.to_pylist():
        got = want.get((row["period"], row["region"]), {})
        assert row["customers"] == got.get("customers", 0) and row["paying"] == got.get("paying", 0), row


@pytest.mark.parametrize("odd_at", [None, 10, 2990], ids=["all-eight-bytes", "first-piece-other", "last-piece-other"])
@pytest.mark.parametrize("rows_per_table", [None, 700], ids=["one-table", "streamed"])
def test_counts_with_and_without_the_numbers_are_the_same(tmp_path, monkeypatch, odd_at, rows_per_table):
    table = order_rows(odd_at=odd_at)
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=350)
    if rows_per_table:
        monkeypatch.setattr(reading, "ROWS_PER_TABLE", rows_per_table)
    made = []
    real = textcodes.as_numbers

    def spy(values):
        out = real(values)
        made.append(out is not None)
        return out

    monkeypatch.setattr(textcodes, "as_numbers", spy)
    coded = TREE.evaluate({"orders": str(path)}, by=["region"])
    checked(coded, table)
    if odd_at is None:
        assert made and all(made)  # every piece's text counted as numbers
    elif rows_per_table is None:
        assert made == [False]  # one table, one value of another width: text
    else:
        assert any(made) and not all(made)  # every piece but the one with another width
    monkeypatch.setattr(textcodes, "as_numbers", lambda values: None)
    assert TREE.evaluate({"orders": str(path)}, by=["region"]).to_pylist() == coded.to_pylist()


def test_a_stream_that_falls_back_to_text_merges_the_pairs_held_as_numbers(tmp_path, monkeypatch):
    # The same customers in every piece; the middle piece has one of another width.
    table = order_rows(n=2100, odd_at=1050)
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=300)
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 600)
    kinds = []
    real = aggregating._same_values

    def spy(held):
        kinds.append({t.schema.field("__x").type for t in held})
        return real(held)

    monkeypatch.setattr(aggregating, "_same_values", spy)
    checked(TREE.evaluate({"orders": str(path)}, by=["region"]), table)
    assert any(len(k) == 2 for k in kinds)  # numbers and text held at once, made one type


def test_numbers_are_the_bytes_and_turn_back_into_the_text():
    text = pa.array(["C0000000", None, "C0499998", "ÄÖÜ12", "abcdefgh", "\x00\x00\x00\x00\x00\x00\x00\x00"])
    for values in (text, text.slice(1), pa.chunked_array([text.slice(0, 2), text.slice(2)])):
        numbers = textcodes.as_numbers(values)
        assert numbers.type == pa.int64() and numbers.null_count == values.null_count
        assert textcodes.as_text(numbers, pa.string()).to_pylist() == values.to_pylist()
    distinct = textcodes.as_numbers(text).to_pylist()
    assert len(set(distinct) - {None}) == 5  # one number per text


@pytest.mark.parametrize("values", [pa.array(["C000000", "C0000000"]), pa.array(["abcdefghi"]),
                                    pa.array([1, 2]), pa.array(["abcdefgh"]).dictionary_encode()],
                         ids=["shorter", "longer", "whole-numbers", "dictionary"])
def test_other_values_are_not_numbers(values):
    assert textcodes.as_numbers(values) is None


STATES = metrictree.loads(textwrap.dedent("""
    tree s "customer states over eight-byte text"
    grain month
    source orders { time day dimensions region entity customer }
    metric customers = count_distinct(orders.customer) where orders.paid
    metric active = active_customers(orders) where orders.paid
    metric new = new_customers(orders) where orders.paid
    metric churned = churned_customers(orders) where orders.paid
    metric retained = retained_customers(orders)
    metric back = reactivated_customers(orders, after=1) where orders.paid
    metric repeat = repeat_customers(orders) where orders.paid
    metric tenure = customer_lifetime(orders)
"""))


@pytest.mark.parametrize("odd_at", [None, 10, 1050, 2990], ids=["all-eight-bytes", "first-piece-other",
                                                               "middle-piece-other", "last-piece-other"])
@pytest.mark.parametrize("rows_per_table", [None, 600], ids=["one-table", "streamed"])
@pytest.mark.parametrize("by", [[], ["region"]], ids=["unsliced", "by-region"])
def test_customer_states_are_the_same_with_the_customers_as_numbers(tmp_path, monkeypatch, odd_at, rows_per_table,
                                                                     by):
    # A presence's customers are eight-byte text counted as numbers; a piece of another width turns the
    # stream's customers (held as codes of a vocabulary of numbers) back into text.
    table = order_rows(odd_at=odd_at)
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=300)
    if rows_per_table:
        monkeypatch.setattr(reading, "ROWS_PER_TABLE", rows_per_table)
    coded = STATES.evaluate({"orders": str(path)}, by=by).to_pylist()
    monkeypatch.setattr(textcodes, "as_numbers", lambda values: None)
    as_text = STATES.evaluate({"orders": str(path)}, by=by).to_pylist()
    assert coded == as_text
    assert any(row["churned"] for row in coded) and any(row["back"] for row in coded)
