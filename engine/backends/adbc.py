"""An ADBC connection (Arrow Database Connectivity: ``adbc_driver_postgresql``, ``adbc_driver_sqlite``,
``adbc_driver_snowflake`` …): its tables, queried in the SQL of its database, answered in Arrow.

The dialect comes from the driver's ``vendor_name`` (``Adbc(connection, dialect="…")`` names one
the driver does not tell); columns from ``adbc_get_table_schema`` (SQLite: the declared types, as
ADBC reads a SQLite date as text); the answer from ``cursor.fetch_arrow_table()``, no Python rows.

Guards: on PostgreSQL each query runs under a savepoint (a transaction if the connection is in
autocommit) made read-only with ``statement_timeout``, and rolled back afterwards, so the session is
unchanged. A failed query leaves a PostgreSQL transaction aborted: the connection is then rolled back.
Other drivers get the timeout by ``cursor.adbc_cancel()`` from a timer where they support it
(the SQLite driver does not: no timeout there).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlglot import exp

from ..errors import DataError, UsageError, error
from . import sqlite
from .sql import DEFAULT_TIMEOUT, SqlEngine, SqlTable, Watch, qualified, timeout_seconds

VENDORS = {"postgresql": "postgres", "sqlite": "sqlite", "duckdb": "duckdb", "snowflake": "snowflake",
           "bigquery": "bigquery", "google bigquery": "bigquery", "mysql": "mysql", "trino": "trino",
           "databricks": "databricks", "microsoft sql server": "tsql", "clickhouse": "clickhouse"}
_SAVEPOINT = "__metrictree"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    for prefix in ("INVALID_ARGUMENT: ", "NOT_FOUND: ", "IO: ", "CANCELLED: ", "INTERNAL: ", "INVALID_STATE: "):
        text = text.removeprefix(prefix)
    return text.splitlines()[0] if text else type(exc).__name__


class Adbc(SqlEngine):
    """One ADBC DB-API connection (``adbc_driver_manager.dbapi.Connection``) that sources are bound to."""

    def __init__(self, connection: Any, dialect: str | None = None, timeout: str | float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        if not hasattr(connection, "adbc_get_info"):
            raise UsageError(error(f"a {type(connection).__name__} is not an ADBC connection",
                                   hint="pass adbc_driver_postgresql.dbapi.connect(url) or the like", code="binding"))
        self.connection = connection
        vendor = str(connection.adbc_get_info().get("vendor_name") or "")
        self.vendor = vendor
        self.dialect = dialect or VENDORS.get(vendor.lower())
        if self.dialect is None:
            raise UsageError(error(f"cannot tell which SQL the ADBC driver of {vendor or 'an unknown database'} "
                                   "speaks", hint="name it: Adbc(connection, dialect=\"snowflake\") from "
                                                  "metrictree.backends.adbc", code="binding"))
        self.name = f"{vendor or self.dialect} (ADBC)"
        self.timeout = timeout
        self._seconds = timeout_seconds(timeout)
        self._zone: str | None = None

    @classmethod
    def connect(cls, url: str, timeout: str | float = DEFAULT_TIMEOUT) -> Adbc:
        """A connection through the ADBC driver ``url`` names: ``postgresql://user@host/db`` (adbc_driver_postgresql)
        or ``sqlite:///shop.db`` (adbc_driver_sqlite). A URL no driver takes, or a server that refuses, is a
        clear error."""
        import importlib

        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        driver = {"postgresql": "adbc_driver_postgresql", "postgres": "adbc_driver_postgresql",
                  "sqlite": "adbc_driver_sqlite"}.get(scheme)
        if driver is None:
            raise UsageError(error(f"no ADBC driver for {url.split('@')[-1]!r}",
                                   hint="write postgresql://user@host/database or sqlite:///shop.db, or connect "
                                        "with your driver and pass Adbc(connection)", code="binding"))
        try:
            dbapi = importlib.import_module(f"{driver}.dbapi")
        except ImportError:
            raise DataError(error(f"the ADBC binding of {scheme} needs {driver}", hint="pip install 'metrictree[adbc]'",
                                  code="backend")) from None
        target = url.removeprefix("sqlite:///") if driver == "adbc_driver_sqlite" else url
        if driver == "adbc_driver_sqlite" and not Path(target).is_file():
            raise DataError(error(f"no SQLite database at {target}", hint="check the path after sqlite:///",
                                  code="no-data"))
        import adbc_driver_manager

        try:
            connection = dbapi.connect(target)
        except adbc_driver_manager.Error as exc:
            where = re.sub(r"(//[^:/@]+):[^@]*@", r"\1@", url)
            raise DataError(error(f"cannot connect to {where}: {_first_line(exc)}",
                                  hint="check that the server runs and accepts connections there, the user, the "
                                       "database and the password (PGPASSWORD)", code="backend")) from None
        return cls(connection, timeout=timeout)

    def table(self, name: str) -> SqlTable:
        return SqlTable(self, qualified(name), f"table {name} in {self.vendor or self.dialect}")

    def _errors(self):
        import adbc_driver_manager

        return adbc_driver_manager.Error

    def _query(self, sql: str) -> pa.Table:
        with self.connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetch_arrow_table()

    def schema(self, table: SqlTable) -> pa.Schema:
        base = table.relation if isinstance(table.relation, exp.Table) else table.relation.find(exp.Table)
        try:
            if self.dialect == "sqlite":
                info = exp.select("name", "type").from_(exp.Anonymous(
                    this="pragma_table_info", expressions=[exp.Literal.string(base.name)]))
                found = self._query(info.sql(dialect="sqlite")).to_pylist()
                if not found:
                    raise DataError(error(f"SQLite has no {table.label}", hint="check the table name",
                                          code="no-data"))
                return pa.schema([(r["name"], sqlite.arrow_type(r["type"])) for r in found])
            schema = self.connection.adbc_get_table_schema(base.name, db_schema_filter=base.db or None)
            if self.dialect == "postgres":
                if self._zone is None:
                    self._zone = self._query("SELECT current_setting('TimeZone') AS zone").column(0)[0].as_py()
                schema = pa.schema([pa.field(f.name, pa.timestamp(f.type.unit, self._zone))
                                    if pa.types.is_timestamp(f.type) and f.type.tz else f for f in schema])
            return schema
        except self._errors() as exc:
            self._recover()
            message = _first_line(exc)
            if "not found" in message.lower() or "does not exist" in message.lower() or "no such" in message.lower():
                raise DataError(error(f"{self.vendor} has no {table.label}",
                                      hint="check the table name (and schema.table), and that this user may see it",
                                      code="no-data")) from None
            raise self.problem(table, exc) from None

    def _autocommit(self) -> bool:
        return bool(getattr(self.connection, "_autocommit", False))

    def _recover(self) -> None:
        if self.dialect == "postgres" and not self._autocommit():
            try:
                self.connection.rollback()  # PostgreSQL aborts the transaction a failed statement was in
            except self._errors():
                pass

    def fetch(self, table: SqlTable, sql: str) -> pa.Table:
        try:
            if self.dialect == "postgres":
                return self._guarded(sql)
            with self.connection.cursor() as cursor:
                watch = Watch(self._canceller(cursor), self._seconds)
                try:
                    with watch:
                        cursor.execute(sql)
                        return cursor.fetch_arrow_table()
                except self._errors():
                    if watch.fired:
                        raise self.timed_out(table) from None
                    raise
        except self._errors() as exc:
            self._recover()
            if "canceling statement due to statement timeout" in str(exc):
                raise self.timed_out(table) from None
            raise self.problem(table, exc) from None

    def _canceller(self, cursor):
        errors = self._errors()

        def cancel():
            try:
                cursor.adbc_cancel()
            except errors:
                pass  # a driver that cannot cancel (SQLite): the query runs to its end
        return cancel

    def _guarded(self, sql: str) -> pa.Table:
        from .postgres import guard

        begin, end = (("BEGIN", "ROLLBACK") if self._autocommit() else
                      (f'SAVEPOINT "{_SAVEPOINT}"', f'ROLLBACK TO SAVEPOINT "{_SAVEPOINT}"'))
        with self.connection.cursor() as cursor:
            cursor.execute(begin)
            cursor.execute(guard(self.timeout))
            cursor.fetchall()
            cursor.execute(sql)
            result = cursor.fetch_arrow_table()
            cursor.execute(end)
            if not self._autocommit():
                cursor.execute(f'RELEASE SAVEPOINT "{_SAVEPOINT}"')
        return result

    def timed_out(self, table: SqlTable) -> DataError:
        return DataError(error(f"the query on {table.label} took longer than the statement timeout ({self.timeout})",
                               hint="raise it: Adbc(connection, timeout=\"30min\") from metrictree.backends.adbc, "
                                    "or add an index on the time column", code="backend"))

    def problem(self, table: SqlTable, exc: Exception) -> DataError:
        return DataError(error(f"{self.name} could not read {table.label}: {_first_line(exc)}",
                               hint="check that the table and its columns exist and that you may read them",
                               code="backend"))
