"""Time formats and time zones of a source's time column: `time InvoiceDate format "…" timezone "…"`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import metrictree
import pyarrow as pa
import pyarrow.csv as csv
import pytest
from metrictree.errors import CompileError, DataError, TreeSyntaxError

DATA = Path(__file__).resolve().parent / "data"

UK = '''
source invoices { time InvoiceDate format "%d/%m/%Y %H:%M" dimensions Country }
metric lines = count(invoices)
metric quantity = sum(invoices.Quantity)
'''


def evaluate(text: str, data, **options) -> list[dict]:
    return metrictree.loads(text, "t.tree").evaluate(data, **options).to_pylist()


def test_uk_dates_in_a_csv_file_are_read_with_their_format():
    got = evaluate(UK, {"invoices": DATA / "retail.csv"})
    # By hand from tests/data/retail.csv: 11 lines in September, 13 in October, 11 in November.
    assert [(r["period"], r["lines"]) for r in got] == [("2024-09", 11), ("2024-10", 13), ("2024-11", 11)]
    table = csv.read_csv(DATA / "retail.csv")
    months = [d.split(" ")[0][3:] for d in table.column("InvoiceDate").to_pylist()]
    for row in got:
        month = row["period"][5:] + "/" + row["period"][:4]
        assert row["quantity"] == sum(q for q, m in zip(table.column("Quantity").to_pylist(), months) if m == month)


def test_the_day_comes_first():
    # 01/09 is the 1st of September, not January 9th; 13/12 cannot be read month-first at all.
    table = pa.table({"InvoiceDate": ["01/09/2024 10:00", "13/12/2024 09:30"], "Quantity": [1, 2],
                      "Country": ["UK", "UK"]})
    got = evaluate(UK, {"invoices": table})
    assert [(r["period"], r["quantity"]) for r in got] == [("2024-09", 1), ("2024-10", 0), ("2024-11", 0),
                                                           ("2024-12", 2)]


def test_a_range_is_applied_after_the_times_are_parsed():
    got = evaluate(UK, {"invoices": DATA / "retail.csv"}, start="2024-10", end="2024-10")
    assert [(r["period"], r["lines"]) for r in got] == [("2024-10", 13)]


def test_a_value_the_format_does_not_match_is_an_error_quoting_it_and_its_row(tmp_path):
    lines = (DATA / "retail.csv").read_text().splitlines()
    lines[3] = lines[3].replace("01/09/2024 08:28", "2024-09-01 08:28")
    lines[5] = lines[5].replace("03/09/2024", "3 Sep 2024")
    path = tmp_path / "retail.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as caught:
        evaluate(UK, {"invoices": path})
    (d,) = caught.value.diagnostics
    assert d.message == ('the time column \'InvoiceDate\' of source \'invoices\' has "2024-09-01 08:28" in row 3, '
                         'which does not match the format "%d/%m/%Y %H:%M" (1 more row does not match either)')
    assert d.code == "time-format" and (d.span.line, d.span.column) == (2, 8)
    assert "%d day" in d.hint and "after a CSV file's header" in d.hint


def test_empty_times_are_missing_not_wrong():
    table = pa.table({"InvoiceDate": ["01/09/2024 10:00", "", None, " 02/10/2024 11:00 "], "Quantity": [1, 2, 3, 4],
                      "Country": ["UK"] * 4})
    got = evaluate(UK, {"invoices": table})
    assert [(r["period"], r["quantity"]) for r in got] == [("2024-09", 1), ("2024-10", 4)]


def test_a_format_on_a_column_that_already_holds_timestamps_is_accepted():
    table = pa.table({"InvoiceDate": pa.array([dt.datetime(2024, 9, 1, 10), dt.datetime(2024, 10, 2)],
                                              pa.timestamp("s")), "Quantity": [1, 2], "Country": ["UK", "UK"]})
    got = evaluate(UK, {"invoices": table})
    assert [(r["period"], r["quantity"]) for r in got] == [("2024-09", 1), ("2024-10", 2)]


def test_whole_number_dates():
    # CSV readers take 20240901 for a number: the format still reads it.
    text = 'source s { time day format "%Y%m%d" }\nmetric n = count(s)\n'
    got = evaluate(text, {"s": pa.table({"day": [20240901, 20240930, 20241001]})})
    assert [(r["period"], r["n"]) for r in got] == [("2024-09", 2), ("2024-10", 1)]


def test_a_time_zone_places_times_with_an_offset_in_local_periods():
    text = 'source s { time t format "%Y-%m-%dT%H:%M:%S%z" timezone "Europe/London" }\nmetric n = count(s)\n'
    # 23:30 UTC on 30 September is 00:30 on 1 October in London (summer time).
    table = pa.table({"t": ["2024-09-30T23:30:00+0000", "2024-09-30T22:30:00+0000", "2024-10-15T10:00:00+0200"]})
    assert [(r["period"], r["n"]) for r in evaluate(text, {"s": table})] == [("2024-09", 1), ("2024-10", 2)]
    utc = text.replace(' timezone "Europe/London"', "")
    assert [(r["period"], r["n"]) for r in evaluate(utc, {"s": table})] == [("2024-09", 2), ("2024-10", 1)]


def test_a_time_zone_makes_naive_times_local_and_converts_aware_ones():
    text = 'source s {\n    time t\n    timezone "America/New_York"\n}\nmetric n = count(s)\n'
    naive = pa.table({"t": pa.array([dt.datetime(2024, 9, 30, 23, 30)], pa.timestamp("s"))})
    assert [(r["period"], r["n"]) for r in evaluate(text, {"s": naive})] == [("2024-09", 1)]
    aware = pa.table({"t": pa.array([dt.datetime(2024, 10, 1, 2, 0, tzinfo=dt.UTC)],
                                    pa.timestamp("s", "UTC"))})  # 22:00 on 30 September in New York
    assert [(r["period"], r["n"]) for r in evaluate(text, {"s": aware})] == [("2024-09", 1)]


def test_a_text_time_column_without_a_format_says_how_to_name_it():
    text = 'source invoices { time InvoiceDate }\nmetric n = count(invoices)\n'
    with pytest.raises(DataError) as caught:
        evaluate(text, {"invoices": DATA / "retail.csv"})
    assert 'time InvoiceDate format "%d/%m/%Y %H:%M"' in caught.value.diagnostics[0].hint


def test_the_source_keeps_its_format_and_zone():
    tree = metrictree.loads('source s { time t format "%d/%m/%Y" timezone "UTC" }\nmetric n = count(s)\n')
    assert (tree.sources["s"].time_format, tree.sources["s"].timezone) == ("%d/%m/%Y", "UTC")


@pytest.mark.parametrize("entry, message, hint", [
    ('time t timezone "Europe/Londn"', "unknown time zone 'Europe/Londn'", "did you mean 'Europe/London'?"),
    ('time t format "dd/mm/yyyy"', "'dd/mm/yyyy' is not a time format",
     'write it with strptime codes, e.g. "%d/%m/%Y %H:%M" for 01/09/2024 14:05'),
])
def test_wrong_formats_and_zones_are_compile_errors(entry, message, hint):
    with pytest.raises(CompileError) as caught:
        metrictree.loads(f"source s {{ {entry} }}\nmetric n = count(s)\n", "t.tree")
    (d,) = caught.value.errors
    assert (d.message, d.hint) == (message, hint)
    assert d.span.line == 1 and d.span.column > 12


def test_a_zone_given_twice_is_a_syntax_error():
    with pytest.raises(TreeSyntaxError) as caught:
        metrictree.parse('source s { time t timezone "UTC" timezone "UTC" }', "t.tree")
    assert caught.value.diagnostics[0].message == "source 's' gives 'timezone' twice"


def test_an_impossible_day_is_an_error_not_a_day_of_the_next_month():
    table = pa.table({"InvoiceDate": ["01/09/2024 10:00", "31/09/2024 10:00"], "Quantity": [1, 2],
                      "Country": ["UK", "UK"]})
    with pytest.raises(DataError) as caught:
        evaluate(UK, {"invoices": table})
    assert caught.value.diagnostics[0].message == (
        "the time column 'InvoiceDate' of source 'invoices' has \"31/09/2024 10:00\" in row 2, which is not a real "
        "date or time (it would be read as 01/10/2024 10:00)")


def test_days_and_hours_of_one_digit_and_extra_spaces_are_real_dates():
    table = pa.table({"InvoiceDate": ["1/9/2024 4:05", "29/02/2024  00:00"], "Quantity": [1, 2],
                      "Country": ["UK", "UK"]})
    got = evaluate(UK, {"invoices": table})
    assert [(r["period"], r["quantity"]) for r in got if r["quantity"]] == [("2024-02", 2), ("2024-09", 1)]
