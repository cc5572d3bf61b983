"""A SQLAlchemy engine or connection: its tables, queried in SQL of its own dialect.

The dialect is the engine's (``engine.dialect.name``: ``postgresql``, ``sqlite``, ``mysql``,
``mssql``, ``oracle``, ``snowflake``, ``bigquery``, ``trino``, ``duckdb`` …), named the way sqlglot
names it, so the same plans as on the other backends are written for it; columns are read with
SQLAlchemy's inspector. Queries run through the driver as they are (``no_parameters``: no ``%`` or
``:name`` in a value can be taken for a parameter).

Guards, where the database has them:

* PostgreSQL: each query runs in a transaction (a savepoint inside a transaction of yours) made
  read-only, with ``statement_timeout``; it is rolled back afterwards, so your session is unchanged.
* SQLite: ``PRAGMA query_only`` during the query, and the timeout by interrupting the connection
  (``sqlite3.Connection.interrupt``) from a timer.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pyarrow as pa
from sqlglot import exp

from .. import lazy
from ..errors import DataError, UsageError, error
from . import sqlite
from .sql import DEFAULT_TIMEOUT, SqlEngine, SqlTable, Watch, qualified, timeout_seconds

# SQLAlchemy's dialect names → sqlglot's (the same name when absent).
DIALECTS = {"postgresql": "postgres", "mssql": "tsql", "awsathena": "athena", "databricks": "databricks",
            "redshift": "redshift", "snowflake": "snowflake", "bigquery": "bigquery", "trino": "trino",
            "clickhouse": "clickhouse", "duckdb": "duckdb", "sqlite": "sqlite", "mysql": "mysql",
            "mariadb": "mysql", "oracle": "oracle"}


def _module():
    return lazy.optional("sqlalchemy", "binding a SQLAlchemy engine needs SQLAlchemy", "sqlalchemy")


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def arrow_type(kind: Any, zone: str | None) -> pa.DataType:
    """The Arrow type a column of SQLAlchemy type ``kind`` is read as."""
    types = _module().types
    if isinstance(kind, types.Boolean):
        return pa.bool_()
    if isinstance(kind, types.Integer):
        return pa.int64()
    if isinstance(kind, types.Float | types.Numeric):
        return pa.float64()
    if isinstance(kind, types.DateTime):
        return pa.timestamp("us", tz=(zone or "UTC") if getattr(kind, "timezone", False) else None)
    if isinstance(kind, types.Date):
        return pa.date32()
    return pa.string()


class SqlAlchemy(SqlEngine):
    """A SQLAlchemy ``Engine`` (a connection from its pool per query) or ``Connection`` (used as it is)."""

    def __init__(self, bind: Any, timeout: str | float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        sqlalchemy = _module()
        if not isinstance(bind, sqlalchemy.Engine | sqlalchemy.Connection):
            raise UsageError(error(f"cannot read tables from a {type(bind).__name__}",
                                   hint="pass a SQLAlchemy Engine (sqlalchemy.create_engine(url)) or Connection",
                                   code="binding"))
        self.bind = bind
        self.kind = bind.dialect.name
        self.dialect = DIALECTS.get(self.kind, self.kind)
        self.name = f"{self.kind} (SQLAlchemy)"
        self.where = bind.engine.url.render_as_string(hide_password=True)
        self.timeout = timeout
        self._seconds = timeout_seconds(timeout)
        self._zone: str | None = None

    def table(self, name: str) -> SqlTable:
        return SqlTable(self, qualified(name), f"table {name} at {self.where}")

    @classmethod
    def connect(cls, url: str, timeout: str | float = DEFAULT_TIMEOUT, **options: Any) -> SqlAlchemy:
        """An engine for the SQLAlchemy URL ``url`` (``sqlite:///shop.db``, ``postgresql+psycopg://…``);
        ``options`` go to ``sqlalchemy.create_engine``. A URL SQLAlchemy cannot read is a clear error."""
        sqlalchemy = _module()
        try:
            return cls(sqlalchemy.create_engine(url, **options), timeout)
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ImportError) as exc:
            shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True) if "://" in url else url
            raise UsageError(error(f"cannot use the SQLAlchemy URL {shown!r}: {_first_line(exc)}",
                                   hint="write it as dialect+driver://user@host/database, e.g. sqlite:///shop.db or "
                                        "postgresql+psycopg://analyst@db/shop, with the driver installed",
                                   code="binding")) from None

    @contextlib.contextmanager
    def _connection(self):
        sqlalchemy = _module()
        if isinstance(self.bind, sqlalchemy.Connection):
            yield self.bind
            return
        try:
            connection = self.bind.connect()
        except sqlalchemy.exc.DBAPIError as exc:
            raise DataError(error(f"cannot connect to {self.where}: {_first_line(exc)}",
                                  hint="check that the server runs and accepts connections there (or that the "
                                       "database file exists), the user, the database and the password",
                                  code="backend")) from None
        with connection:
            yield connection

    def _base(self, table: SqlTable) -> exp.Table:
        found = table.relation if isinstance(table.relation, exp.Table) else table.relation.find(exp.Table)
        return found

    def schema(self, table: SqlTable) -> pa.Schema:
        sqlalchemy = _module()
        base = self._base(table)
        with self._connection() as connection:
            try:
                columns = sqlalchemy.inspect(connection).get_columns(base.name, schema=base.db or None)
            except sqlalchemy.exc.NoSuchTableError:
                raise DataError(error(f"{self.kind} has no {table.label}",
                                      hint="check the table name (and schema.table), and that this user may see it",
                                      code="no-data")) from None
            except sqlalchemy.exc.SQLAlchemyError as exc:
                raise self.problem(table, exc) from None
            if self.kind == "postgresql" and self._zone is None:
                self._zone = connection.exec_driver_sql("SELECT current_setting('TimeZone')").scalar()
        if not columns:  # SQLite answers an unknown table with no columns
            raise DataError(error(f"{self.kind} has no {table.label}",
                                  hint="check the table name (and schema.table)", code="no-data"))
        return pa.schema([(c["name"], arrow_type(c["type"], self._zone)) for c in columns])

    def fetch(self, table: SqlTable, sql: str) -> pa.Table:
        sqlalchemy = _module()
        with self._connection() as connection:
            raw = connection.execution_options(no_parameters=True)
            try:
                if self.kind == "postgresql":
                    names, rows = self._postgres(connection, raw, sql)
                elif self.kind == "sqlite":
                    names, rows = self._sqlite(table, connection, raw, sql)
                else:
                    result = raw.exec_driver_sql(sql)
                    names, rows = list(result.keys()), result.fetchall()
            except sqlalchemy.exc.DBAPIError as exc:
                if "canceling statement due to statement timeout" in _first_line(exc):
                    raise self.timed_out(table) from None
                raise self.problem(table, exc) from None
        columns = {}
        for i, name in enumerate(names):
            values = [r[i] for r in rows]
            try:
                columns[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                columns[name] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        return pa.table(columns) if columns else pa.table({})

    def _postgres(self, connection, raw, sql: str):
        from .postgres import guard

        transaction = connection.begin_nested() if connection.in_transaction() else connection.begin()
        try:
            raw.exec_driver_sql(guard(self.timeout))
            result = raw.exec_driver_sql(sql)
            return list(result.keys()), result.fetchall()
        finally:
            transaction.rollback()

    def _sqlite(self, table: SqlTable, connection, raw, sql: str):
        sqlalchemy = _module()
        driver = connection.connection.driver_connection
        watch = Watch(getattr(driver, "interrupt", None), self._seconds)
        raw.exec_driver_sql("PRAGMA query_only = 1")
        try:
            with watch:
                result = raw.exec_driver_sql(sql)
                return list(result.keys()), result.fetchall()
        except sqlalchemy.exc.DBAPIError:
            if watch.fired:
                raise self.timed_out(table) from None
            raise
        finally:
            raw.exec_driver_sql("PRAGMA query_only = 0")

    def timed_out(self, table: SqlTable) -> DataError:
        return DataError(error(f"the query on {table.label} took longer than the statement timeout ({self.timeout})",
                               hint="raise it: SqlAlchemy(engine, timeout=\"30min\") from "
                                    "metrictree.backends.sqlalchemy, or add an index on the time column",
                               code="backend"))

    def problem(self, table: SqlTable, exc: Exception) -> DataError:
        return DataError(error(f"{self.name} could not read {table.label}: {_first_line(exc)}",
                               hint="check that the table and its columns exist and that you may read them",
                               code="backend"))
