"""DuckDB, in process: a ``.duckdb`` file's tables, Parquet and CSV files scanned by DuckDB, a
connection's tables or a relation from the Python API.

Scanning files through DuckDB is also how to evaluate files bigger than memory: DuckDB
streams them, and only the grouped partials come back.

DuckDB has no statement timeout of its own: a timer interrupts the connection
(``connection.interrupt()``) when a query runs longer than ``timeout`` (default 10 minutes).
A relation handed over from the Python API runs on a connection metrictree cannot reach, so
it has no timeout; bind ``table(connection, name)`` to have one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
from sqlglot import exp

from .. import lazy
from ..errors import DataError, did_you_mean, error
from .rowsql import literal
from .sql import DEFAULT_TIMEOUT, SqlEngine, SqlTable, Watch, qualified, timeout_seconds

_SCANS = {".parquet": "read_parquet", ".pq": "read_parquet", ".csv": "read_csv", ".tsv": "read_csv",
          ".txt": "read_csv", ".json": "read_json", ".ndjson": "read_json"}
_RELATION = "__source"


def _module():
    return lazy.optional("duckdb", "the DuckDB backend needs the duckdb package", "duckdb")


class DuckDB(SqlEngine):
    """One DuckDB connection (or relation) that sources are bound to."""

    name = "DuckDB"
    dialect = "duckdb"

    def __init__(self, connection: Any = None, relation: Any = None, where: str = "DuckDB",
                 timeout: str | float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.connection = connection
        self.relation = relation
        self.where = where
        self.timeout = timeout
        self._seconds = timeout_seconds(timeout)

    @classmethod
    def open(cls, path: str | Path | None, timeout: str | float = DEFAULT_TIMEOUT) -> DuckDB:
        """A DuckDB database file, opened read-only (``None``: an in-memory database); queries longer than
        ``timeout`` (``"10min"``, ``"30s"``) are interrupted."""
        duckdb = _module()
        if path is None:
            return cls(duckdb.connect(), where="DuckDB", timeout=timeout)
        path = Path(path).expanduser()
        if not path.exists():
            hint = "check the path in the duckdb:// URL"
            absolute = Path("/", path)
            if not path.is_absolute() and absolute.exists():
                # duckdb:///tmp/shop.duckdb is the relative path tmp/shop.duckdb, as in SQLAlchemy's URLs.
                hint = (f"there is one at {absolute}: an absolute path takes four slashes, "
                        f"duckdb:///{absolute}")
            else:
                hint += f" (relative to {Path.cwd()}; an absolute path takes four slashes: duckdb:////data/shop.duckdb)"
            raise DataError(error(f"no DuckDB database at {path}", hint=hint, code="no-data"))
        try:
            return cls(duckdb.connect(str(path), read_only=True), where=str(path), timeout=timeout)
        except duckdb.Error as exc:
            raise DataError(error(f"cannot open {path} with DuckDB: {str(exc).splitlines()[0]}",
                                  hint="check that it is a DuckDB database file", code="backend")) from None

    @classmethod
    def of_relation(cls, relation: Any) -> SqlTable:
        return SqlTable(cls(relation=relation), exp.Table(this=exp.to_identifier(_RELATION, quoted=True)),
                        "a DuckDB relation")

    def table(self, name: str) -> SqlTable:
        return SqlTable(self, qualified(name), f"table {name} in {self.where}")

    def file(self, path: str | Path) -> SqlTable:
        """A Parquet, CSV or JSON file (or a glob of them) scanned by DuckDB."""
        text = str(Path(path).expanduser()) if "*" not in str(path) else str(path)
        suffix = Path(text).suffix.lower()
        if suffix not in _SCANS:
            raise DataError(error(f"cannot tell the format of {path}",
                                  hint="use a .parquet, .csv, .tsv or .json file", code="format"))
        if "*" not in text and not Path(text).exists():
            raise DataError(error(f"no data file at {text}", hint="check the path given for this source",
                                  code="no-data"))
        scan = exp.Anonymous(this=_SCANS[suffix], expressions=[literal(text)])
        return SqlTable(self, exp.Table(this=scan), text)

    def _execute(self, sql: str):
        if self.relation is not None:
            return self.relation.query(_RELATION, sql)
        return self.connection.sql(sql)

    def fetch(self, table: SqlTable, sql: str) -> pa.Table:
        duckdb = _module()
        watch = Watch(self.connection.interrupt if self.connection is not None else None, self._seconds)
        try:
            with watch:
                result = self._execute(sql)
                return result.to_arrow_table() if hasattr(result, "to_arrow_table") else result.arrow()
        except duckdb.Error as exc:
            if watch.fired:
                raise DataError(error(
                    f"the query on {table.label} took longer than the statement timeout ({self.timeout}), "
                    "so DuckDB was interrupted", hint="raise it: statement_timeout = \"30min\" in the connections "
                    "file, or DuckDB(connection, timeout=\"30min\") / DuckDB.open(path, timeout=…) in Python",
                    code="backend")) from None
            raise self.problem(table, exc) from None

    def schema(self, table: SqlTable) -> pa.Schema:
        probe = exp.select(exp.Star()).from_(table.relation).limit(0)
        return self.fetch(table, self.sql(probe)).schema

    def problem(self, table: SqlTable, exc: Exception) -> DataError:
        """A failed query as the user's problem; a table the database does not have comes with the ones it has."""
        found = super().problem(table, exc)
        if self.connection is None or type(exc).__name__ != "CatalogException":
            return found
        try:
            names = [f"{s}.{n}" if s != "main" else n for s, n in self.connection.sql(
                "select table_schema, table_name from information_schema.tables order by 1, 2").fetchall()]
        except _module().Error:
            return found
        wanted = table.relation.name if isinstance(table.relation, exp.Table) else ""
        shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "") if names else "none"
        hint = (did_you_mean(wanted, names) + " " if wanted and did_you_mean(wanted, names) else "") + \
            f"the tables in {self.where}: {shown}"
        return DataError(attrs.evolve(found.diagnostics[0], hint=hint))

