"""Where a source's base aggregations run: on Arrow in this process, or in the engine that holds the data.

Every backend answers one question — the partials of one source's base metrics per
(period, slice), as a small `aggregating.SourceAggregate` — through one method::

    backend.aggregate(request, binding) -> SourceAggregate

* `ArrowBackend` (arrow.py): reads the columns into Arrow (`reading`) and aggregates them
  there (`aggregating`). Anything Arrow-readable: tables, files, datasets, DataFrames.
* `SqlBackend` (sql.py): compiles the partials to SQL with sqlglot (`sqlplan`, `rowsql`, the
  plugins' `forms.SqlForm`s) and runs them where the data lives; only the aggregates come back.
  The engines: DuckDB (duckdb.py), PostgreSQL (postgres.py) and Spark (spark.py); the Python API's
  SQLAlchemy engines (sqlalchemy.py), ADBC connections (adbc.py) and ibis tables (ibis.py), each in
  its database's dialect (SQLite's gaps filled by sqlite.py); the same plans generate SQL for other
  sqlglot dialects (Snowflake, BigQuery, Trino, ClickHouse: `dialects`).

Derived formulas, explain, rules and renderers run on the small result either way. A source is
bound to a backend by what its data is: a `SqlTable` (from `table` — over a DuckDB, psycopg,
SQLAlchemy or ADBC connection or a Spark session —, a ``duckdb://`` or ``postgresql://`` URL, see
`bindings`), a DuckDB relation, an ibis table or a Spark DataFrame goes to its engine; anything
else to Arrow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

from ..aggregating import SourceAggregate
from ..functions import Registry
from ..model import Metric, Source, Tree
from ..reading import Need

# Text bindings naming a table of an engine (see `bindings`); anything else is a file for Arrow.
SCHEMES = ("duckdb:", "postgresql:", "postgres:", "spark:", "@")


@attrs.frozen
class Request:
    """What one source's base aggregations need: the metrics, the grain and slices, the time range.

    Attributes:
        tree: the tree.
        source: the source.
        metrics: its base metrics to compute.
        needs: the columns they read, each with the tree line that needs it.
        grain: the time grain.
        by: the dimensions asked for (the source's own are used).
        params: the params in force.
        registry: the functions.
        since, until: the rows read have ``since <= time < until`` (``None``: unbounded).
    """

    tree: Tree
    source: Source
    metrics: tuple[Metric, ...]
    needs: tuple[Need, ...]
    grain: str
    by: tuple[str, ...]
    params: Mapping[str, float]
    registry: Registry
    since: dt.date | None = None
    until: dt.date | None = None


@attrs.define(eq=False)
class Rider:
    """A request of another evaluation that rides in a scan of the same source and time range: aggregated
    from the very tables that scan reads (Arrow only, `arrow._Tee`), so that its evaluation reads nothing.

    Attributes:
        request: what the other evaluation would ask of its backend.
        result: its partials, exactly those of a scan of its own, once the scan is over; ``None`` when it did
            not ride (another backend, another range, an error): its evaluation then reads the rows itself.
        null_times: the rows without a time, as that scan counted them.
    """

    request: Request
    result: SourceAggregate | None = None
    null_times: int | None = None


class Backend(Protocol):
    """Computes the base partials of one source where its data is."""

    name: str

    def aggregate(self, request: Request, binding: Any, counts: dict[str, int] | None = None) -> SourceAggregate:
        """The partials of ``request.metrics`` per (period, slice) of the data ``binding``; ``counts``, if
        given, gets ``null_times``: how many rows have no time (they belong to no period)."""


def _in_engine(binding: Any) -> bool:
    """Whether ``binding`` lives in a SQL engine (checked without importing any engine's client)."""
    kind = type(binding)
    module, name = kind.__module__ or "", kind.__name__
    return ((module == "metrictree.backends.sql" and name == "SqlTable")
            or (module.startswith(("duckdb", "_duckdb")) and name == "DuckDBPyRelation")
            or (module.startswith("pyspark") and name == "DataFrame")
            or (module.startswith("ibis") and name == "Table")
            or (isinstance(binding, str) and binding.startswith(SCHEMES)))


def backend_for(binding: Any) -> Backend:
    """The backend that runs a source bound to ``binding``."""
    if _in_engine(binding):
        from .sql import as_sql_table

        return as_sql_table(binding).engine
    from .arrow import ArrowBackend

    return ArrowBackend()


def aggregate(request: Request, data: Mapping[str, Any], counts: dict[str, int] | None = None,
              riders: Sequence[Rider] = ()) -> SourceAggregate:
    """One source's partials, computed by the backend its data is bound to (``counts``: see `Backend`).
    ``riders``: other requests aggregated from the same scan where the backend can (Arrow), see `Rider`."""
    binding = data.get(request.source.name)
    if _in_engine(binding):
        from .sql import as_sql_table

        table = as_sql_table(binding)
        return table.engine.aggregate(request, table, counts)
    from .arrow import ArrowBackend

    return ArrowBackend().aggregate(request, data, counts, riders)


def as_engine_table(binding: Any) -> Any:
    """``binding`` as a table of its SQL engine (`sql.SqlTable`), or ``None`` for Arrow data."""
    if not _in_engine(binding):
        return None
    from .sql import as_sql_table

    return as_sql_table(binding)


def sliced(table: Any, where: Any, schema: Any) -> Any:
    """The rows of an engine's table a rule's slice keeps, still in the engine (see `sql.sliced`)."""
    from .sql import sliced as in_engine

    return in_engine(table, where, schema)


def table(connection: Any, name: str) -> Any:
    """A table of a database connection, to bind a source to: ``data={"orders": table(con, "orders")}``.

    ``connection``: a DuckDB connection, a psycopg connection, a SQLAlchemy engine or connection, an ADBC
    connection or a Spark session. ``name`` may carry a schema (``analytics.orders``).
    """
    from .sql import table_of

    return table_of(connection, name)


def __getattr__(name: str):
    # The SQL forms need sqlglot (the `sql` extra): imported only when a plugin or backend asks for them.
    if name in ("SqlContext", "SqlForm", "SqlPartial", "SqlRows"):
        from . import forms

        return getattr(forms, name)
    raise AttributeError(name)


__all__ = ["Backend", "Request", "Rider", "SqlContext", "SqlForm", "SqlPartial", "SqlRows", "aggregate", "as_engine_table",
           "backend_for", "sliced", "table"]
