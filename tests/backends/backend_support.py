"""Helpers of the backend tests: the same data loaded into each engine, and result comparison.

Each engine gets the tables through its own client (DuckDB from Arrow, PostgreSQL by COPY), and the parity tests compare what the tree gives on the engine with what it
gives on the same Arrow tables (the Arrow backend), within 1e-9 relative.
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

TREES = Path(__file__).resolve().parents[2] / "trees"
BUNDLED = sorted(p.stem for p in TREES.glob("*.tree"))
POSTGRES_URL = os.environ.get("METRICTREE_TEST_POSTGRES_URL")


def same_values(a, b, path="") -> list[str]:
    """Where two results differ (beyond 1e-9 relative for floats); empty when they agree."""
    if isinstance(a, pa.Table):
        problems = [] if a.column_names == b.column_names else [f"{path}: columns {a.column_names} != {b.column_names}"]
        if a.num_rows != b.num_rows:
            return problems + [f"{path}: {a.num_rows} rows != {b.num_rows}"]
        for name in a.column_names:
            if name in b.column_names:
                if a.schema.field(name).type != b.schema.field(name).type:
                    problems.append(f"{path}.{name}: {a.schema.field(name).type} != {b.schema.field(name).type}")
                problems += same_values(a.column(name).to_pylist(), b.column(name).to_pylist(), f"{path}.{name}")
        return problems
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [p for k in a for p in same_values(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        return [p for i, (x, y) in enumerate(zip(a, b, strict=True)) for p in same_values(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
            return []
        return [f"{path}: {a!r} != {b!r}"]
    return [] if a == b or (isinstance(b, float) and same_values(b, a) == []) else [f"{path}: {a!r} != {b!r}"]


def load_duckdb(tables: dict[str, pa.Table], timezone: str | None = None):
    import duckdb
    from metrictree.backends.duckdb import DuckDB

    con = duckdb.connect()
    if timezone:
        con.sql(f"SET TimeZone = '{timezone}'")  # a constant of the tests
    for name, table in tables.items():
        con.register("__arrow", table)
        con.sql(f'CREATE TABLE "{name}" AS SELECT * FROM __arrow')
        con.unregister("__arrow")
    engine = DuckDB(con)
    return {name: engine.table(name) for name in tables}, engine


_PG_TYPES = {"int64": "bigint", "int32": "integer", "double": "double precision", "string": "text",
             "large_string": "text", "bool": "boolean", "date32[day]": "date"}


def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_dictionary(t):
        return _pg_type(t.value_type)
    return _PG_TYPES[str(t)]


def load_postgres(tables: dict[str, pa.Table], timezone: str | None = None):
    """Each table in a fresh schema of the test database, by COPY; bound through a read-only session."""
    import psycopg
    from metrictree.backends.postgres import Postgres
    from psycopg import sql

    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
        con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for name, table in tables.items():
            target = sql.Identifier(schema, name)
            columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(_pg_type(f.type)))
                                         for f in table.schema)
            con.execute(sql.SQL("CREATE TABLE {} ({})").format(target, columns))
            names = sql.SQL(", ").join(sql.Identifier(n) for n in table.column_names)
            with con.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, names)) as copy:
                for row in table.to_pylist():
                    copy.write_row(tuple(row.values()))
    engine = Postgres.connect(POSTGRES_URL, timezone=timezone)
    return {name: engine.table(f"{schema}.{name}") for name in tables}, engine


def load_spark(tables: dict[str, pa.Table], timezone: str | None = None):
    """Each table as a temporary view of a local-mode session (one per process)."""
    from metrictree.backends.spark import Spark

    engine = Spark.local(timezone=timezone)
    bound = {}
    for name, table in tables.items():
        view = f"t_{uuid.uuid4().hex[:10]}_{name}"
        engine.session.createDataFrame(table).createOrReplaceTempView(view)  # pyspark ≥ 4 takes Arrow tables
        bound[name] = engine.table(view)
    return bound, engine


def _zoned(tables: dict[str, pa.Table]) -> bool:
    return any(pa.types.is_timestamp(f.type) and f.type.tz for t in tables.values() for f in t.schema)


def _sqlalchemy_type(t: pa.DataType):
    import sqlalchemy as sa

    if pa.types.is_dictionary(t):
        return _sqlalchemy_type(t.value_type)
    if pa.types.is_timestamp(t):
        return sa.DateTime(timezone=bool(t.tz))
    return {"int64": sa.BigInteger(), "int32": sa.Integer(), "double": sa.Float(), "string": sa.Text(),
            "large_string": sa.Text(), "bool": sa.Boolean(), "date32[day]": sa.Date()}[str(t)]


def _sqlite_file(tables: dict[str, pa.Table]):
    """A fresh SQLite database file holding ``tables``, written through SQLAlchemy's own types."""
    import tempfile

    import sqlalchemy as sa

    if _zoned(tables):
        pytest.skip("SQLite has no time zones")
    path = Path(tempfile.mkdtemp(prefix="metrictree-sqlite-")) / "shop.sqlite"
    writer = sa.create_engine(f"sqlite:///{path}")
    meta = sa.MetaData()
    for name, table in tables.items():
        target = sa.Table(name, meta, *(sa.Column(f.name, _sqlalchemy_type(f.type)) for f in table.schema))
        meta.create_all(writer, tables=[target])
        with writer.begin() as con:
            if table.num_rows:
                con.execute(target.insert(), table.to_pylist())
    writer.dispose()
    return path


def load_sqlite_sqlalchemy(tables: dict[str, pa.Table], timezone: str | None = None):
    """Each table in a SQLite file (no server), bound through a SQLAlchemy engine."""
    import sqlalchemy as sa
    from metrictree.backends.sqlalchemy import SqlAlchemy

    engine = SqlAlchemy(sa.create_engine(f"sqlite:///{_sqlite_file(tables)}"))
    return {name: engine.table(name) for name in tables}, engine


def load_postgres_sqlalchemy(tables: dict[str, pa.Table], timezone: str | None = None):
    """The tables on the test server (as `load_postgres`), bound through a SQLAlchemy engine (psycopg driver)."""
    import sqlalchemy as sa
    from metrictree.backends.sqlalchemy import SqlAlchemy

    bound, _ = load_postgres(tables)
    args = {"connect_args": {"options": f"-c TimeZone={timezone}"}} if timezone else {}
    engine = SqlAlchemy(sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1), **args))
    return {name: engine.table(f"{b.relation.args['db'].name}.{name}") for name, b in bound.items()}, engine


def load_sqlite_adbc(tables: dict[str, pa.Table], timezone: str | None = None):
    """Each table in a SQLite file, bound through an ADBC connection (adbc_driver_sqlite)."""
    import adbc_driver_sqlite.dbapi
    from metrictree.backends.adbc import Adbc

    engine = Adbc(adbc_driver_sqlite.dbapi.connect(str(_sqlite_file(tables))))
    return {name: engine.table(name) for name in tables}, engine


def load_postgres_adbc(tables: dict[str, pa.Table], timezone: str | None = None):
    """The tables on the test server (as `load_postgres`), bound through an ADBC connection."""
    import adbc_driver_postgresql.dbapi
    from metrictree.backends.adbc import Adbc

    bound, _ = load_postgres(tables)
    connection = adbc_driver_postgresql.dbapi.connect(POSTGRES_URL)
    if timezone:
        with connection.cursor() as cursor:
            cursor.execute(f"SET TimeZone = '{timezone}'")  # a constant of the tests
        connection.commit()
    engine = Adbc(connection)
    return {name: engine.table(f"{b.relation.args['db'].name}.{name}") for name, b in bound.items()}, engine


def load_ibis_duckdb(tables: dict[str, pa.Table], timezone: str | None = None):
    """Each table in an ibis DuckDB backend, bound as an ibis table expression."""
    import ibis
    from metrictree.backends.ibis import Ibis

    con = ibis.duckdb.connect()
    if timezone:
        con.raw_sql(f"SET TimeZone = '{timezone}'")  # a constant of the tests
    for name, table in tables.items():
        con.con.register("__arrow", table)
        quoted = name.replace('"', '""')
        con.raw_sql(f'CREATE TABLE "{quoted}" AS SELECT * FROM __arrow')
        con.con.unregister("__arrow")
    engine = Ibis(con)
    return {name: engine.table(con.table(name)) for name in tables}, engine


def need(engine: str):
    if engine == "duckdb":
        pytest.importorskip("duckdb")
    elif engine == "postgres":
        pytest.importorskip("psycopg")
        if not POSTGRES_URL:
            pytest.skip("no PostgreSQL server: set METRICTREE_TEST_POSTGRES_URL (.ci/setup.d/30-postgres.sh does)")
    elif engine == "spark":
        pytest.importorskip("pyspark")
    if engine.endswith("-sqlalchemy"):
        pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed: pip install '.[sqlalchemy]'")
    if engine.endswith("-adbc"):
        driver = f"adbc_driver_{engine.split('-')[0].replace('postgres', 'postgresql')}"
        pytest.importorskip(driver, reason=f"{driver} is not installed: pip install '.[adbc]'")
    if engine.startswith("ibis"):
        pytest.importorskip("ibis", reason="ibis is not installed: pip install '.[ibis]' (.ci/steps.d/56-ibis.sh)")
    if engine.startswith("postgres"):
        pytest.importorskip("psycopg")
        if not POSTGRES_URL:
            pytest.skip("no PostgreSQL server: set METRICTREE_TEST_POSTGRES_URL (.ci/setup.d/30-postgres.sh does)")


LOADERS = {"duckdb": load_duckdb, "postgres": load_postgres, "spark": load_spark,
           "sqlite-sqlalchemy": load_sqlite_sqlalchemy, "postgres-sqlalchemy": load_postgres_sqlalchemy,
           "sqlite-adbc": load_sqlite_adbc, "postgres-adbc": load_postgres_adbc, "ibis-duckdb": load_ibis_duckdb}
# PostgreSQL through SQLAlchemy or ADBC runs the SQL the PostgreSQL backend runs: its whole suite is slow
# (.ci/steps.d/55-bindings.sh); their own guards and errors are tested by test_api_bindings.py in the default run.
ENGINES = ["duckdb", "postgres", "sqlite-sqlalchemy", pytest.param("postgres-sqlalchemy", marks=pytest.mark.slow),
           "sqlite-adbc", pytest.param("postgres-adbc", marks=pytest.mark.slow), "ibis-duckdb",
           pytest.param("spark", marks=pytest.mark.slow)]


