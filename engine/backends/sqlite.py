"""What SQLite needs from the generated SQL: its declared column types as Arrow types, and rewrites of the
functions it lacks.

SQLite stores dates and times as ISO text under a declared type (``DATE``, ``TIMESTAMP``); a
column's declared type says how metrictree reads it. sqlglot's SQLite dialect already writes
``CAST(… AS DATE)`` as ``DATE(…)`` and day differences with ``JULIANDAY``; `adapt` rewrites what
is left: ``EXTRACT`` (as ``STRFTIME``), adding an interval to a time (``DATETIME(t, '+N seconds')``)
and a ``VALUES`` list with named columns (a ``UNION ALL`` of one-row SELECTs).
SQLite has no time zones: a zoned time column is an error naming the column.
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from ..errors import DataError, error

_PARTS = {"YEAR": "%Y", "MONTH": "%m", "DAY": "%d"}
_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}


def arrow_type(declared: str) -> pa.DataType:
    """The Arrow type of a SQLite column declared as ``declared`` (SQLite's affinity rules, plus times)."""
    name = (declared or "").upper()
    if name.startswith(("DATETIME", "TIMESTAMP")):
        return pa.timestamp("us")
    if name.startswith("DATE"):
        return pa.date32()
    if "BOOL" in name:
        return pa.bool_()
    if "INT" in name:
        return pa.int64()
    if any(word in name for word in ("CHAR", "CLOB", "TEXT")) or not name:
        return pa.string()
    if any(word in name for word in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
        return pa.float64()
    return pa.string()


def _integer(value: exp.Expression) -> exp.Expression:
    return exp.cast(value, exp.DataType.build("int"))


def _strftime(pattern: str, value: exp.Expression) -> exp.Expression:
    return _integer(exp.Anonymous(this="STRFTIME", expressions=[exp.Literal.string(pattern), value]))


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Extract):
        unit, value = node.this.name.upper(), adapt(node.expression)
        if unit in _PARTS:
            return _strftime(_PARTS[unit], value)
        if unit == "QUARTER":
            months = exp.Paren(this=exp.Add(this=_strftime("%m", value), expression=exp.Literal.number(2)))
            return exp.Paren(this=exp.IntDiv(this=months, expression=exp.Literal.number(3)))
    if isinstance(node, exp.AtTimeZone):
        raise DataError(error(f"SQLite has no time zones, so {node.this.sql()} cannot be seen in "
                              f"{node.args['zone'].sql()}", hint="store local times in SQLite, or drop the source's "
                                                                 "timezone", code="time-type"))
    if isinstance(node, exp.Add) and isinstance(node.expression, exp.Interval):
        interval = node.expression
        unit = interval.unit.name.upper() if interval.unit is not None else "SECOND"
        seconds = float(interval.this.name) * _SECONDS.get(unit, 1)
        return exp.Anonymous(this="DATETIME", expressions=[adapt(node.this),
                                                           exp.Literal.string(f"+{seconds:g} seconds")])
    if isinstance(node, exp.Values) and node.alias_column_names:
        # VALUES (0), (1) AS t(step): SQLite names no columns of a VALUES list; a UNION ALL of SELECTs does.
        names = node.alias_column_names
        rows = [exp.select(*(value.copy().as_(name, quoted=True) for value, name in zip(row.expressions, names,
                                                                                          strict=True)))
                for row in node.expressions]
        union = rows[0]
        for row in rows[1:]:
            union = exp.union(union, row, distinct=False)
        return exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier(node.alias, quoted=True)))
    return node


def adapt(query: exp.Expression) -> exp.Expression:
    """``query`` with what SQLite lacks written in what it has."""
    return query.transform(_rewrite)
