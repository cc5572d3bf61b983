"""An ibis table expression: compiled to SQL by ibis on its own backend, aggregated there by metrictree's plan.

Why compile rather than re-express the partials as ibis expressions: the plans (`sqlplan`, the
plugins' SQL forms) are already sqlglot expressions, the same for every engine and under parity
tests; building a second generator in ibis would give two places that must agree on every partial.
So the ibis table — whatever filters, joins or columns it holds — becomes the relation the plan
reads (``ibis.to_sql``: ibis's compiler, in its backend's dialect), and the one grouped query runs on
that backend through ibis (``backend.sql(query).to_pyarrow()``). The aggregation stays in the
engine; only the aggregates come back, as Arrow.

Backends without SQL (polars, pandas) cannot run a query: an error says to pass the data itself.
On ibis' DuckDB backend a query over ``timeout`` is interrupted (``connection.interrupt()``).
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from .. import lazy
from ..errors import DataError, UsageError, error
from .sql import DEFAULT_TIMEOUT, SqlEngine, SqlTable, Watch, timeout_seconds

# ibis backend names → sqlglot dialects.
DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "sqlite": "sqlite", "snowflake": "snowflake",
            "bigquery": "bigquery", "trino": "trino", "clickhouse": "clickhouse", "mysql": "mysql", "mssql": "tsql",
            "pyspark": "spark", "databricks": "databricks", "oracle": "oracle", "risingwave": "postgres",
            "athena": "athena", "exasol": "exasol", "impala": "hive", "druid": "druid"}


def _module():
    return lazy.optional("ibis", "binding an ibis table needs ibis", "ibis")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Ibis(SqlEngine):
    """One ibis backend (connection) whose tables sources are bound to."""

    def __init__(self, backend: Any, timeout: str | float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self._ibis = _module()
        self.backend = backend
        self.kind = getattr(backend, "name", type(backend).__name__)
        self.dialect = DIALECTS.get(self.kind)
        if self.dialect is None:
            raise UsageError(error(f"the ibis backend {self.kind} runs no SQL, so the aggregation cannot run in it",
                                   hint="pass its data instead (table.to_pyarrow()), or use a SQL backend of ibis",
                                   code="binding"))
        self.name = f"{self.kind} (ibis)"
        self.timeout = timeout
        self._seconds = timeout_seconds(timeout)

    @classmethod
    def connect(cls, url: str, timeout: str | float = DEFAULT_TIMEOUT) -> Ibis:
        """The ibis backend of ``url`` (``ibis.connect``: ``duckdb://shop.duckdb``, ``postgres://…``)."""
        ibis = _module()
        try:
            backend = ibis.connect(url)
        except Exception as exc:  # ibis' own errors and the driver's, whatever their kind
            where = re.sub(r"(//[^:/@]+):[^@]*@", r"\1@", url)
            raise DataError(error(f"ibis cannot connect to {where}: {_first_line(exc)}",
                                  hint="check the URL (backend://…, e.g. duckdb://shop.duckdb), that the backend's "
                                       "extra is installed (ibis-framework[duckdb]) and that the server accepts "
                                       "connections", code="backend")) from None
        return cls(backend, timeout)

    @classmethod
    def of_table(cls, expression: Any, timeout: str | float = DEFAULT_TIMEOUT) -> SqlTable:
        """The table expression ``expression``, on the backend that holds it."""
        ibis = _module()
        try:
            backend = ibis.get_backend(expression)
        except Exception as exc:  # ibis' own errors (an unbound table, tables of several backends)
            raise UsageError(error(f"cannot tell which ibis backend holds this table: {_first_line(exc)}",
                                   hint="bind a table of one ibis connection (con.table(\"orders\"))",
                                   code="binding")) from None
        return cls(backend, timeout).table(expression)

    def table(self, expression: Any) -> SqlTable:
        """An ibis table expression of this backend (or the name of one of its tables) as the plan's relation."""
        if isinstance(expression, str):
            try:
                return self.table(self.backend.table(expression))
            except Exception as exc:  # the backend's own "not found", whatever its kind
                raise DataError(error(f"ibis' {self.kind} backend has no table {expression!r}: {_first_line(exc)}",
                                      hint="check the table name", code="no-data")) from None
        text = self._ibis.to_sql(expression, dialect=self.dialect)
        try:
            compiled = sqlglot.parse_one(text, read=self.dialect)
        except sqlglot.errors.ParseError as exc:
            raise DataError(error(f"cannot read the SQL ibis compiled for this table: {_first_line(exc)}",
                                  hint="simplify the ibis expression, or pass table.to_pyarrow()",
                                  code="backend")) from None
        alias = exp.TableAlias(this=exp.to_identifier("__ibis", quoted=True))
        return SqlTable(self, exp.Subquery(this=compiled, alias=alias), f"an ibis table on {self.kind}")

    def schema(self, table: SqlTable) -> pa.Schema:
        probe = self.sql(exp.select(exp.Star()).from_(table.relation).limit(0))
        schema = self._fetching(table, lambda: self.backend.sql(probe, dialect=self.dialect).schema().to_pyarrow())
        if self.kind in ("duckdb", "postgres") and any(pa.types.is_timestamp(f.type) and f.type.tz for f in schema):
            # ibis types every zoned column as UTC; the session's TimeZone says which local day an instant is
            # on, as on the DuckDB and PostgreSQL backends.
            zone = self.sql(exp.select(exp.Anonymous(this="current_setting", expressions=[
                exp.Literal.string("TimeZone")]).as_("zone")))
            found = self._fetching(table, lambda: self.backend.sql(zone, dialect=self.dialect).to_pyarrow())
            local = found.column(0)[0].as_py()
            schema = pa.schema([pa.field(f.name, pa.timestamp(f.type.unit, local))
                                if pa.types.is_timestamp(f.type) and f.type.tz else f for f in schema])
        return schema

    def fetch(self, table: SqlTable, sql: str) -> pa.Table:
        return self._fetching(table, lambda: self.backend.sql(sql, dialect=self.dialect).to_pyarrow())

    def _fetching(self, table: SqlTable | None, run):
        connection = getattr(self.backend, "con", None) if self.kind == "duckdb" else None
        watch = Watch(getattr(connection, "interrupt", None), self._seconds)
        try:
            with watch:
                return run()
        except Exception as exc:  # the backend's driver errors, whatever their kind
            label = table.label if table is not None else f"ibis' {self.kind} backend"
            if watch.fired:
                raise DataError(error(
                    f"the query on {label} took longer than the statement timeout ({self.timeout}), so it was "
                    "interrupted", hint="raise it: Ibis(con, timeout=\"30min\") or Ibis.of_table(table, "
                                        "timeout=\"30min\") from metrictree.backends.ibis", code="backend")) from None
            first = _first_line(exc)
            hint = "check that the table and its columns exist and that you may read them"
            if "fetch_arrow_table" in first:  # ibis ≤ 12 calls what duckdb 2 removed
                hint = "ibis' DuckDB backend needs duckdb below 2: pip install 'metrictree[ibis]'"
            raise DataError(error(f"{self.name} could not read {label}: {first}", hint=hint,
                                  code="backend")) from None
