"""Time grains (metrictree.periods): period indexes, labels, and reading period arguments.

Expected labels come from Python's own calendar (``date.isocalendar()`` for ISO weeks),
never from the module under test.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metrictree
from metrictree import periods

D = dt.date
GRAINS = ("day", "week", "month", "quarter", "year")


def expected_label(day: dt.date, grain: str) -> str:
    if grain == "day":
        return day.isoformat()
    if grain == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if grain == "month":
        return f"{day.year}-{day.month:02d}"
    if grain == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return str(day.year)


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize(("day", "labels"), [
    (D(2026, 10, 5), ["2026-10-05", "2026-W41", "2026-10", "2026-Q4", "2026"]),
    # ISO weeks across the year boundary: 2026 has 53 weeks, and Jan 1-3 2027 belong to its last one.
    (D(2026, 12, 28), ["2026-12-28", "2026-W53", "2026-12", "2026-Q4", "2026"]),
    (D(2026, 12, 31), ["2026-12-31", "2026-W53", "2026-12", "2026-Q4", "2026"]),
    (D(2027, 1, 1), ["2027-01-01", "2026-W53", "2027-01", "2027-Q1", "2027"]),
    (D(2027, 1, 3), ["2027-01-03", "2026-W53", "2027-01", "2027-Q1", "2027"]),
    (D(2027, 1, 4), ["2027-01-04", "2027-W01", "2027-01", "2027-Q1", "2027"]),
    # ... and the other way: Dec 29 2025 is in week 1 of 2026.
    (D(2025, 12, 29), ["2025-12-29", "2026-W01", "2025-12", "2025-Q4", "2025"]),
    # Before 1970 (negative day numbers): floor, not truncation toward zero.
    (D(1969, 12, 28), ["1969-12-28", "1969-W52", "1969-12", "1969-Q4", "1969"]),
    (D(1969, 12, 29), ["1969-12-29", "1970-W01", "1969-12", "1969-Q4", "1969"]),
    (D(1969, 12, 31), ["1969-12-31", "1970-W01", "1969-12", "1969-Q4", "1969"]),
    (D(1960, 3, 1), ["1960-03-01", "1960-W09", "1960-03", "1960-Q1", "1960"]),
    (D(2024, 2, 29), ["2024-02-29", "2024-W09", "2024-02", "2024-Q1", "2024"]),
])
def test_labels_of_a_day_at_every_grain(day, labels):
    column = pa.array([day], pa.date32())
    for grain, label in zip(GRAINS, labels, strict=True):
        i = periods.index(column, grain)[0].as_py()
        assert i == periods.of_date(day, grain)
        assert periods.label(i, grain) == label
        assert periods.first_day(i, grain) <= day


@settings(max_examples=150, deadline=None)
@given(st.dates(min_value=D(1900, 1, 1), max_value=D(2100, 12, 31)))
def test_index_label_and_first_day_agree_with_python_calendar(day):
    column = pa.array([day], pa.date32())
    for grain in GRAINS:
        i = periods.index(column, grain)[0].as_py()
        assert i == periods.of_date(day, grain)
        assert periods.label(i, grain) == expected_label(day, grain)
        start = periods.first_day(i, grain)
        # The period is exactly [first_day(i), first_day(i + 1)).
        assert start <= day < periods.first_day(i + 1, grain)
        assert periods.of_date(start, grain) == i


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dates(min_value=D(1950, 1, 1), max_value=D(2050, 12, 31)), min_size=1, max_size=20))
def test_consecutive_periods_differ_by_one(days):
    """The grid relies on it: the index of the next period is the index plus one."""
    for grain in GRAINS:
        for day in days:
            i = periods.of_date(day, grain)
            after = periods.first_day(i + 1, grain)
            assert periods.of_date(after, grain) == i + 1
            assert periods.of_date(after - dt.timedelta(days=1), grain) == i


def test_labels_runs_over_consecutive_periods():
    first = periods.of_date(D(2026, 12, 21), "week")
    assert periods.labels(first, 4, "week") == ["2026-W52", "2026-W53", "2027-W01", "2027-W02"]
    first = periods.of_date(D(2026, 11, 1), "quarter")
    assert periods.labels(first, 3, "quarter") == ["2026-Q4", "2027-Q1", "2027-Q2"]
    assert periods.labels(periods.of_date(D(1969, 11, 1), "month"), 3, "month") == ["1969-11", "1969-12", "1970-01"]


@pytest.mark.parametrize("type_", [pa.date32(), pa.date64(), pa.timestamp("s"), pa.timestamp("ms"),
                                   pa.timestamp("us"), pa.timestamp("ns")])
def test_index_accepts_dates_and_timestamps(type_):
    if pa.types.is_timestamp(type_):
        values = pa.array([dt.datetime(1969, 12, 31, 23, 59), dt.datetime(2027, 1, 1, 0, 1)], type_)
    else:
        values = pa.array([D(1969, 12, 31), D(2027, 1, 1)], type_)
    got = {g: [periods.label(i, g) for i in periods.index(values, g).to_pylist()] for g in GRAINS}
    assert got == {"day": ["1969-12-31", "2027-01-01"], "week": ["1970-W01", "2026-W53"],
                   "month": ["1969-12", "2027-01"], "quarter": ["1969-Q4", "2027-Q1"], "year": ["1969", "2027"]}


def test_index_keeps_nulls():
    assert periods.index(pa.array([None, D(2026, 1, 1)], pa.date32()), "month").to_pylist() == [None, 2026 * 12]


# --------------------------------------------------------------------------- period arguments


@pytest.mark.parametrize(("text", "first", "last"), [
    ("2026-10-05", D(2026, 10, 5), D(2026, 10, 5)),
    ("2026-W41", D(2026, 10, 5), D(2026, 10, 11)),
    ("2026-W1", D(2025, 12, 29), D(2026, 1, 4)),
    ("2026-W53", D(2026, 12, 28), D(2027, 1, 3)),
    ("2026-10", D(2026, 10, 1), D(2026, 10, 31)),
    ("2024-02", D(2024, 2, 1), D(2024, 2, 29)),
    ("2026-12", D(2026, 12, 1), D(2026, 12, 31)),
    ("2026-Q4", D(2026, 10, 1), D(2026, 12, 31)),
    ("2026-Q1", D(2026, 1, 1), D(2026, 3, 31)),
    ("2026", D(2026, 1, 1), D(2026, 12, 31)),
    (" 1969-12 ", D(1969, 12, 1), D(1969, 12, 31)),
])
def test_date_range_of_a_period_label(text, first, last):
    assert periods.date_range(text) == (first, last)


def test_parse_takes_the_first_or_last_day_at_the_grain():
    # At a week grain, October 2026 runs from the week of Thu Oct 1 (W40) to the week of Sat Oct 31 (W44).
    assert periods.label(periods.parse("2026-10", "week"), "week") == "2026-W40"
    assert periods.label(periods.parse("2026-10", "week", end=True), "week") == "2026-W44"
    assert periods.label(periods.parse("2026-W53", "month"), "month") == "2026-12"
    assert periods.label(periods.parse("2026-W53", "month", end=True), "month") == "2027-01"
    assert periods.label(periods.parse("2026-Q4", "month", end=True), "month") == "2026-12"
    assert periods.label(periods.parse("2026-10-05", "year"), "year") == "2026"


@pytest.mark.parametrize(("text", "message"), [
    ("2027-W53", "'2027-W53' is not a valid period"),  # 2027 has 52 ISO weeks
    ("2026-W00", "'2026-W00' is not a valid period"),
    ("2026-13", "'2026-13' is not a valid period: month must be in 1..12"),
    ("2026-02-30", "'2026-02-30' is not a valid period: day is out of range for month"),
    ("2026-Q5", "'2026-Q5' is not a period"),
    ("26-10", "'26-10' is not a period"),
    ("October", "'October' is not a period"),
])
def test_bad_period_arguments_are_usage_errors(text, message):
    with pytest.raises(metrictree.UsageError) as info:
        periods.date_range(text)
    assert message in str(info.value)
    assert "hint:" in str(info.value) and "2026-Q4" in str(info.value)


def test_unknown_grain_suggests_the_closest():
    with pytest.raises(metrictree.UsageError) as info:
        periods.check_grain("mnth")
    assert str(info.value) == "error: unknown grain 'mnth'\nhint: did you mean 'month'?"
    with pytest.raises(metrictree.UsageError) as info:
        periods.check_grain("fortnight")
    assert "use one of: day, week, month, quarter, year" in str(info.value)
    assert [periods.check_grain(g) for g in GRAINS] == list(GRAINS)
