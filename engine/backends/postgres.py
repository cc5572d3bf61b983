"""PostgreSQL through psycopg 3: a real server's tables, read in read-only sessions with a statement timeout.

Each query runs in its own read-only transaction (``default_transaction_read_only``), under
``statement_timeout`` (default 10 minutes), with the session's ``TimeZone`` deciding which
local day a ``timestamptz`` falls on (default: the server's; ``timezone=`` sets it). Only the
grouped partials come back over the wire.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
from sqlglot import exp

from .. import lazy
from ..errors import DataError, UsageError, error
from .sql import DEFAULT_TIMEOUT, SqlEngine, SqlTable, qualified, timeout_seconds

_TYPES = {"int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(), "float4": pa.float32(),
          "float8": pa.float64(), "numeric": pa.float64(), "bool": pa.bool_(), "date": pa.date32(),
          "timestamp": pa.timestamp("us"), "text": pa.string(), "varchar": pa.string(), "bpchar": pa.string(),
          "uuid": pa.string(), "name": pa.string()}


def _module():
    return lazy.optional("psycopg", "the PostgreSQL backend needs psycopg", "postgres")


def _where(url: str) -> str:
    """A URL without its password, for messages."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1@", url)


def guard(timeout: str | float) -> str:
    """The statement that makes the current transaction read-only under ``timeout`` (until it ends), for
    PostgreSQL sessions metrictree is handed rather than opens (SQLAlchemy, ADBC)."""
    timeout_seconds(timeout)  # a timeout PostgreSQL would read
    settings = [("transaction_read_only", "on"), ("statement_timeout", str(timeout))]
    calls = [exp.Anonymous(this="set_config", expressions=[exp.Literal.string(n), exp.Literal.string(v), exp.true()])
             for n, v in settings]
    return exp.select(*calls).sql(dialect="postgres")


class Postgres(SqlEngine):
    """One psycopg connection that sources are bound to."""

    name = "PostgreSQL"
    dialect = "postgres"

    def __init__(self, connection: Any, where: str = "PostgreSQL", timeout: str = DEFAULT_TIMEOUT) -> None:
        """``connection``: a psycopg connection of yours; each query then runs in a transaction (a savepoint
        inside yours) made read-only under ``timeout`` and rolled back, so your session is unchanged."""
        super().__init__()
        self.connection = connection
        self.where = where
        self.timeout = timeout
        timeout_seconds(timeout)
        self._zone = None
        self._guarded = True  # until `configure` sets the whole session (a connection metrictree opened)

    @classmethod
    def connect(cls, url: str, password: str | None = None, timeout: str = DEFAULT_TIMEOUT,
                timezone: str | None = None, connect_timeout: int = 10) -> Postgres:
        """A read-only session on the server at ``url`` (``postgresql://user@host:port/database``)."""
        psycopg = _module()
        where = _where(url)
        try:
            kwargs = {"password": password} if password is not None else {}
            connection = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout, **kwargs)
        except psycopg.ProgrammingError as exc:
            raise UsageError(error(f"'{where}' is not a PostgreSQL URL: {str(exc).strip().splitlines()[0]}",
                                   hint="write it as postgresql://user@host:5432/database#schema.table",
                                   code="binding")) from None
        except psycopg.OperationalError as exc:
            raise DataError(error(f"cannot connect to PostgreSQL at {where}: {str(exc).strip().splitlines()[-1]}",
                                  hint="check that the server runs and accepts connections there, the user and "
                                       "database names, and the password (from an environment variable: "
                                       "PGPASSWORD, or password_env in the connections file)",
                                  code="backend")) from None
        engine = cls(connection, where)
        engine.configure(timeout, timezone)
        return engine

    def configure(self, timeout: str = DEFAULT_TIMEOUT, timezone: str | None = None) -> None:
        """Read-only transactions, the statement timeout, and the time zone, as bound parameters."""
        psycopg = _module()
        settings = [("default_transaction_read_only", "on"), ("statement_timeout", str(timeout))]
        if timezone:
            settings.append(("TimeZone", timezone))
        try:
            for name, value in settings:
                self.connection.execute("SELECT set_config(%s, %s, false)", (name, value))
            self._zone = self.connection.execute("SELECT current_setting('TimeZone')").fetchone()[0]
            self._guarded = False
            self.timeout = timeout
        except psycopg.Error as exc:
            raise DataError(error(f"PostgreSQL refused a session setting: {str(exc).strip().splitlines()[0]}",
                                  hint="check the statement timeout (e.g. 5min) and the time zone "
                                       "(e.g. Europe/Berlin)", code="backend")) from None

    def table(self, name: str) -> SqlTable:
        return SqlTable(self, qualified(name), f"table {name} at {self.where}")

    def _cursor(self, table: SqlTable, sql: str):
        psycopg = _module()
        try:
            if not self._guarded:
                return self.connection.execute(sql)
            if self._zone is None:
                self._zone = self.connection.execute("SELECT current_setting('TimeZone')").fetchone()[0]
            with self.connection.transaction(force_rollback=True):
                self.connection.execute(guard(self.timeout))
                return self.connection.execute(sql)  # its rows are held by the cursor, read after the rollback
        except psycopg.errors.UndefinedTable:
            raise DataError(error(f"PostgreSQL has no {table.label}", hint="check the schema and table name after "
                                  "# in the URL (schema.table), and that this user may see it",
                                  code="no-data")) from None
        except psycopg.errors.QueryCanceled:
            raise DataError(error(f"the query on {table.label} took longer than the statement timeout "
                                  f"({self.timeout})", hint="raise statement_timeout in the connections file (or "
                                  "Postgres.connect(url, timeout=\"30min\")), or add an index on the time column",
                                  code="backend")) from None
        except psycopg.Error as exc:
            raise self.problem(table, exc) from None

    def _type(self, oid: int) -> pa.DataType:
        info = self.connection.adapters.types.get(oid)
        name = info.name if info is not None else ""
        if name == "timestamptz":
            return pa.timestamp("us", tz=self._zone or "UTC")
        return _TYPES.get(name, pa.string())

    def schema(self, table: SqlTable) -> pa.Schema:
        cursor = self._cursor(table, self.sql(exp.select(exp.Star()).from_(table.relation).limit(0)))
        return pa.schema([(d.name, self._type(d.type_code)) for d in cursor.description])

    def fetch(self, table: SqlTable, sql: str) -> pa.Table:
        cursor = self._cursor(table, sql)
        rows = cursor.fetchall()
        columns = {}
        for i, d in enumerate(cursor.description):
            values = [r[i] for r in rows]
            kind = self._type(d.type_code)
            try:
                columns[d.name] = pa.array(values, kind)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                columns[d.name] = pa.array(values)  # e.g. SUM of integers, a numeric: cast by the caller
        return pa.table(columns) if columns else pa.table({})
