"""The SQL backends' common part: bind a source to a table of an engine, run its plan there.

An engine (DuckDB, PostgreSQL, Spark) only knows how to tell a relation's columns as an
Arrow schema and how to run one generated query into a small Arrow table; planning
(`sqlplan`) and turning the answer into a `SourceAggregate` are the same for all of them.
Every query an engine runs is kept in ``engine.log`` with the number of rows it sent back,
so that a caller (or a test) can see that only aggregates left the engine.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from .. import reading
from ..aggregating import PERIOD, SourceAggregate
from ..errors import DataError, UsageError, error
from . import sqlplan
from .forms import forms


@attrs.frozen
class SqlTable:
    """A source bound to a relation of a SQL engine.

    Attributes:
        engine: the engine that holds it.
        relation: the relation as a sqlglot expression (a quoted table name, or a file scan).
        label: how people call it in messages (``orders in shop.duckdb``).
    """

    engine: Any
    relation: exp.Expression
    label: str


@attrs.frozen
class Query:
    """One query an engine ran: its SQL and the rows it sent back."""

    sql: str
    rows: int


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
DEFAULT_TIMEOUT = "10min"


def timeout_seconds(timeout: str | float | int) -> float:
    """A statement timeout (``"10min"``, ``"30s"``, ``"500ms"``, a bare number of milliseconds as PostgreSQL
    reads it) in seconds."""
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        value, unit = float(timeout), "ms"
    else:
        found = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-z]*)\s*", str(timeout))
        value, unit = (float(found.group(1)), found.group(2) or "ms") if found else (0.0, "?")
    if unit not in _UNITS or value <= 0:
        raise UsageError(error(f"'{timeout}' is not a statement timeout", hint="write it as 30s, 5min, 1h or 500ms",
                               code="binding"))
    return value * _UNITS[unit]


class Watch:
    """Calls ``interrupt`` (a connection's ``interrupt()``, a cursor's cancel) from a timer thread if the block
    it guards runs longer than ``seconds``; ``fired`` tells afterwards whether it did. ``None``: no timer."""

    def __init__(self, interrupt: Callable[[], Any] | None, seconds: float) -> None:
        self.interrupt = interrupt
        self.seconds = seconds
        self.fired = False
        self._lock = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None

    def _interrupt(self) -> None:
        with self._lock:  # never after the block ended: the interrupt would hit the connection's next query
            if not self._done:
                self.fired = True
                self.interrupt()

    def __enter__(self) -> Watch:
        if self.interrupt is not None:
            self._timer = threading.Timer(self.seconds, self._interrupt)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()


def qualified(name: str) -> exp.Table:
    """``analytics.orders`` as a table reference with every part quoted (``"analytics"."orders"``)."""
    parts = [p for p in name.split(".")]
    if not parts or any(not p for p in parts) or len(parts) > 3:
        raise UsageError(error(f"'{name}' is not a table name", hint="write it as table, schema.table or "
                                                                     "catalog.schema.table", code="binding"))
    ids = [exp.to_identifier(p, quoted=True) for p in parts]
    return exp.Table(this=ids[-1], db=ids[-2] if len(ids) > 1 else None, catalog=ids[-3] if len(ids) > 2 else None)


class SqlEngine:
    """A SQL engine a source's partials run in. Subclasses set ``name`` and ``dialect`` and implement
    ``schema`` and ``fetch``."""

    name = "sql"
    dialect = "duckdb"

    def __init__(self) -> None:
        self.log: list[Query] = []

    def schema(self, table: SqlTable) -> pa.Schema:
        """The relation's columns, as the Arrow types the engine sends them in."""
        raise NotImplementedError

    def fetch(self, table: SqlTable, sql: str) -> pa.Table:
        """Run one query (``sql``, generated for ``self.dialect``) and return its rows."""
        raise NotImplementedError

    def sql(self, query: exp.Expression) -> str:
        if self.dialect == "sqlite":
            from .sqlite import adapt

            query = adapt(query)
        return query.sql(dialect=self.dialect, identify=True)

    def run(self, table: SqlTable, query: exp.Expression) -> pa.Table:
        text = self.sql(query)
        result = self.fetch(table, text)
        self.log.append(Query(text, result.num_rows))
        return result

    def plan(self, request, table: SqlTable, schema: pa.Schema) -> sqlplan.SourcePlan:
        return sqlplan.plan(request.tree, request.source, list(request.metrics), request.grain, list(request.by),
                            request.params, request.registry, forms(), table.relation, schema, self.dialect,
                            self.name, request.since, request.until)

    def aggregate(self, request, table: SqlTable, counts: dict[str, int] | None = None) -> SourceAggregate:
        source = request.source
        schema = self.schema(table)
        reading.check_schema(source, schema, list(request.needs))
        plan = self.plan(request, table, schema)
        main = _typed(self.run(table, plan.main), plan.types)
        # Rows with no time come back as the group of no period, whatever the range: counted, then left out.
        timeless = pc.is_null(main.column(PERIOD))
        if counts is not None:
            counts["null_times"] = pc.sum(pc.filter(main.column(sqlplan.ROWS), timeless)).as_py() or 0
        main = main.drop_columns([sqlplan.ROWS])
        if request.since is not None or request.until is not None:
            main = main.filter(pc.invert(timeless))
        if main.num_rows == 0:
            raise reading.no_rows(source, request.since, request.until)
        extra = []
        for column, query in plan.extra:
            result = self.run(table, query)
            result = result.rename_columns([column if c == "__value" else c for c in result.column_names])
            extra.append(_typed(result.select([PERIOD, *plan.dimensions, column]), plan.types))
        return SourceAggregate(source, main, plan.calls, plan.dimensions, tuple(extra))

    def problem(self, table: SqlTable, exc: Exception) -> DataError:
        """A failed query as the user's problem: what failed, where, and what to check."""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DataError(error(f"{self.name} could not read {table.label}: {first}",
                               hint="check that the table and its columns exist and that you may read them",
                               code="backend"))


def sliced(table: SqlTable, where, schema: pa.Schema) -> SqlTable:
    """The rows of ``table`` a rule's slice keeps (``where``, in tree syntax), still in the engine: the slice
    becomes the WHERE of a subquery the source's plan reads, built by the same generator as its filters."""
    from .rowsql import slice_condition

    condition = slice_condition(where, schema, table.engine.name)
    inner = exp.select(exp.Star()).from_(table.relation).where(condition)
    alias = exp.TableAlias(this=exp.to_identifier("__slice", quoted=True))
    return SqlTable(table.engine, exp.Subquery(this=inner, alias=alias),
                    f"{table.label} (the slice where {where.to_source()})")


def _typed(table: pa.Table, types) -> pa.Table:
    """The engine's columns as the Arrow backend types them (int64 sums, int32 periods …)."""
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        wanted = types.get(name)
        if wanted is not None and column.type != wanted:
            if pa.types.is_dictionary(wanted):
                wanted = wanted.value_type
            if pa.types.is_integer(wanted) and pa.types.is_decimal(column.type):
                column = pc.cast(column, pa.int64())  # SUM of integers comes back as a wide decimal
            column = pc.cast(column, wanted)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def as_sql_table(binding: Any) -> SqlTable | None:
    """A binding that lives in a SQL engine as a `SqlTable` (``None`` for Arrow data)."""
    if isinstance(binding, SqlTable):
        return binding
    module = type(binding).__module__ or ""
    if module.startswith(("duckdb", "_duckdb")) and type(binding).__name__ == "DuckDBPyRelation":
        from .duckdb import DuckDB

        return DuckDB.of_relation(binding)
    if module.startswith("pyspark") and type(binding).__name__ == "DataFrame":
        from .spark import Spark

        return Spark.of_dataframe(binding)
    if module.startswith("ibis") and type(binding).__name__ == "Table":
        from .ibis import Ibis

        return Ibis.of_table(binding)
    from .bindings import is_binding, parse

    if is_binding(binding):
        return parse(binding)
    return None


def table_of(connection: Any, name: str) -> SqlTable:
    module = type(connection).__module__ or ""
    if module.startswith(("duckdb", "_duckdb")):
        from .duckdb import DuckDB

        return DuckDB(connection).table(name)
    if module.startswith("psycopg"):
        from .postgres import Postgres

        return Postgres(connection).table(name)
    if module.startswith("pyspark"):
        from .spark import Spark

        return Spark(connection).table(name)
    if module.startswith("sqlalchemy"):
        from .sqlalchemy import SqlAlchemy

        return SqlAlchemy(connection).table(name)
    if module.startswith("adbc_driver") and hasattr(connection, "adbc_get_info"):
        from .adbc import Adbc

        return Adbc(connection).table(name)
    raise UsageError(error(f"cannot read tables from a {type(connection).__name__}",
                           hint="pass a DuckDB, psycopg, SQLAlchemy or ADBC connection, a SQLAlchemy engine or a "
                                "Spark session", code="binding"))
