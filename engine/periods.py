"""Time grains: which period a row falls in, period labels, and reading period arguments.

A period is an integer index at a grain (months since year 0, ISO weeks since the
epoch …) so that consecutive periods differ by exactly one; labels are made only for
the few distinct periods of a result::

    day 2026-10-05 · week 2026-W41 · month 2026-10 · quarter 2026-Q4 · year 2026
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

import pyarrow as pa
import pyarrow.compute as pc

from .errors import UsageError, did_you_mean, error
from .model import GRAINS

_EPOCH = dt.date(1970, 1, 1)
# 1970-01-01 was a Thursday: the Monday of week 0 is 1969-12-29, three days earlier.
_MONDAY_OFFSET = 3


def check_grain(grain: str) -> str:
    if grain not in GRAINS:
        raise UsageError(error(f"unknown grain '{grain}'", hint=did_you_mean(grain, GRAINS)
                               or f"use one of: {', '.join(GRAINS)}", code="grain"))
    return grain


def index(times: pa.ChunkedArray | pa.Array, grain: str) -> pa.ChunkedArray | pa.Array:
    """The period index (int32) of every value of a date or timestamp column."""
    if grain in ("day", "week"):
        days = pc.cast(pc.cast(times, pa.date32()), pa.int32())
        if grain == "day":
            return days
        shifted = pc.add(days, _MONDAY_OFFSET)
        # Floor division that stays right for dates before 1970.
        return pc.cast(pc.floor(pc.divide(pc.cast(shifted, pa.float64()), 7.0)), pa.int32())
    year = pc.cast(pc.year(times), pa.int32())
    if grain == "year":
        return year
    if grain == "quarter":
        return pc.add(pc.multiply(year, 4), pc.subtract(pc.cast(pc.quarter(times), pa.int32()), 1))
    return pc.add(pc.multiply(year, 12), pc.subtract(pc.cast(pc.month(times), pa.int32()), 1))


def first_day(i: int, grain: str) -> dt.date:
    """The first calendar day of period ``i``."""
    if grain == "day":
        return _EPOCH + dt.timedelta(days=i)
    if grain == "week":
        return _EPOCH + dt.timedelta(days=i * 7 - _MONDAY_OFFSET)
    if grain == "month":
        return dt.date(i // 12, i % 12 + 1, 1)
    if grain == "quarter":
        return dt.date(i // 4, (i % 4) * 3 + 1, 1)
    return dt.date(i, 1, 1)


def of_date(day: dt.date, grain: str) -> int:
    """The index of the period containing ``day``."""
    if grain == "day":
        return (day - _EPOCH).days
    if grain == "week":
        return ((day - _EPOCH).days + _MONDAY_OFFSET) // 7
    if grain == "month":
        return day.year * 12 + day.month - 1
    if grain == "quarter":
        return day.year * 4 + (day.month - 1) // 3
    return day.year


def label(i: int, grain: str) -> str:
    day = first_day(i, grain)
    if grain == "day":
        return day.isoformat()
    if grain == "week":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"
    # Four-digit years, as the labels are read back (year 1 is 0001-01, not 1-01).
    if grain == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if grain == "quarter":
        return f"{day.year:04d}-Q{i % 4 + 1}"
    return f"{day.year:04d}"


def labels(first: int, count: int, grain: str) -> list[str]:
    return [label(first + k, grain) for k in range(count)]


_FORMS = (
    (re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"), "day"),
    (re.compile(r"^(\d{4})-W(\d{1,2})$"), "week"),
    (re.compile(r"^(\d{4})-(\d{2})$"), "month"),
    (re.compile(r"^(\d{4})-Q([1-4])$"), "quarter"),
    (re.compile(r"^(\d{4})$"), "year"),
)


_EXAMPLES = {"day": "2026-10-05", "week": "2026-W41", "month": "2026-10", "quarter": "2026-Q4", "year": "2026"}


def grain_of(text: str) -> str | None:
    """The grain a period label is written at (``2026-W41`` → ``week``), or ``None`` for no label."""
    text = str(text).strip()
    return next((form for pattern, form in _FORMS if pattern.match(text)), None)


def parse_at(text: str, grain: str, *, end: bool = False) -> int:
    """The period index of a label that must be written at ``grain`` (`parse`, but strict): ``2026-W41`` at
    grain week; ``2026-10`` at grain week is an error rather than the weeks of October."""
    form = grain_of(text)
    if form is not None and form != grain:
        raise UsageError(error(f"'{text}' is a {form}, but the periods are {grain}s",
                               hint=f"write a {grain} such as {_EXAMPLES[grain]}, or pass --grain {form}",
                               code="period"))
    return parse(text, grain, end=end)


def date_range(text: str) -> tuple[dt.date, dt.date]:
    """The first and last day a period label covers (``2026-10`` → Oct 1 … Oct 31)."""
    text = str(text).strip()
    for pattern, form in _FORMS:
        match = pattern.match(text)
        if not match:
            continue
        parts = [int(g) for g in match.groups()]
        try:
            if form == "day":
                day = dt.date(*parts)
                return day, day
            if form == "week":
                monday = dt.date.fromisocalendar(parts[0], parts[1], 1)
                return monday, monday + dt.timedelta(days=min(6, (dt.date.max - monday).days))
            if form == "month":
                first = dt.date(parts[0], parts[1], 1)
                return first, first.replace(day=calendar.monthrange(parts[0], parts[1])[1])
            if form == "quarter":
                first = dt.date(parts[0], (parts[1] - 1) * 3 + 1, 1)
                return first, dt.date(parts[0], first.month + 2, calendar.monthrange(parts[0], first.month + 2)[1])
            return dt.date(parts[0], 1, 1), dt.date(parts[0], 12, 31)
        except (ValueError, OverflowError) as exc:
            raise UsageError(error(f"'{text}' is not a valid period: {exc}",
                                   hint="e.g. 2026-10, 2026-Q4, 2026-W41, 2026-10-05 or 2026", code="period")) from None
    raise UsageError(error(f"'{text}' is not a period", hint="write it as 2026-10 (month), 2026-Q4, 2026-W41, "
                                                             "2026-10-05 (day) or 2026 (year)", code="period"))


def parse(text: str, grain: str, *, end: bool = False) -> int:
    """The period index of a label at ``grain``: its first day's period, or its last day's with ``end``."""
    first, last = date_range(text)
    return of_date(last if end else first, grain)
