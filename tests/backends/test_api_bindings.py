"""The Python API bindings — a SQLAlchemy engine or connection, an ADBC connection, an ibis table — on real engines.

SQLite (no server) through SQLAlchemy and ADBC, PostgreSQL through both when
METRICTREE_TEST_POSTGRES_URL is set, and ibis on its DuckDB backend (its own CI step,
.ci/steps.d/56-ibis.sh). For each: hostile table and column names, clear errors (no traceback)
for a wrong URL, a refused connection, a missing table or column, and the statement timeout.
The parity, slice and safety suites run on them too (backend_support.ENGINES).
"""

from __future__ import annotations

import datetime as dt
import socket
import time

import attrs
import metrictree
import pyarrow as pa
import pytest
from backend_support import LOADERS, POSTGRES_URL, TREES, need, same_values
from metrictree import syntax as s
from metrictree.errors import DataError, UsageError
from sqlglot import exp

BINDINGS = ["sqlite-sqlalchemy", "sqlite-adbc", "postgres-sqlalchemy", "postgres-adbc", "ibis-duckdb"]

TABLE = 'or"d\'e;rs -- %s :x ✓'  # no dot: a dot separates schema and table in a binding
AMOUNT = 'amo"unt\'; DROP TABLE orders; -- %(x)s :y'
WHEN = "wh;en ✓"


@pytest.fixture(params=BINDINGS)
def binding(request):
    need(request.param)
    return request.param


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _hostile_tree():
    tree = metrictree.loads("source orders { time at  dimensions région }\n"
                            "metric revenue = sum(orders.amount)\nmetric kinds = count_distinct(orders.région)\n"
                            "metric share = revenue / kinds\n")
    metric = tree.metrics["revenue"]
    formula = s.Call("sum", (s.Column("orders", AMOUNT, span=metric.formula.args[0].span),), span=metric.formula.span)
    return attrs.evolve(tree, sources={"orders": attrs.evolve(tree.sources["orders"], time=WHEN)},
                        metrics={**tree.metrics, "revenue": attrs.evolve(metric, formula=formula)})


def test_hostile_table_and_column_names(binding):
    """Quotes, semicolons, comments, % and :name (driver parameter marks) and Unicode in names stay identifiers."""
    rows = pa.table({WHEN: pa.array([dt.date(2026, 1, 3), dt.date(2026, 1, 20), dt.date(2026, 2, 1)]),
                     "région": ["Nörd ✓", "Süd'; --", "Nörd ✓"], AMOUNT: [1.5, 2.0, 4.0]})
    bound, _ = LOADERS[binding]({TABLE: rows})
    tree = _hostile_tree()
    expected = tree.evaluate({"orders": rows}, by=["région"])
    assert same_values(expected, tree.evaluate({"orders": bound[TABLE]}, by=["région"])) == []
    assert tree.evaluate({"orders": bound[TABLE]}).column("revenue").to_pylist() == [3.5, 4.0]


def test_the_table_helper_and_direct_bindings(sample):
    """``table(con, name)`` takes a SQLAlchemy engine or connection and an ADBC connection; an ibis table binds
    as it is."""
    tree = metrictree.load(TREES / "crm_ltv.tree")
    expected = tree.evaluate(sample, metrics=["revenue", "customers"])
    from metrictree.backends import table

    found = []
    if _have("sqlalchemy"):
        import sqlalchemy as sa

        bound, engine = LOADERS["sqlite-sqlalchemy"](sample)
        path = engine.bind.url.database
        sa_engine = sa.create_engine(f"sqlite:///{path}")
        found.append(tree.evaluate({**sample, "orders": table(sa_engine, "orders")}, metrics=["revenue", "customers"]))
        with sa_engine.connect() as connection:
            found.append(tree.evaluate({**sample, "orders": table(connection, "orders")},
                                       metrics=["revenue", "customers"]))
        if _have("adbc_driver_sqlite"):
            import adbc_driver_sqlite.dbapi

            with adbc_driver_sqlite.dbapi.connect(path) as connection:
                found.append(tree.evaluate({**sample, "orders": table(connection, "orders")},
                                           metrics=["revenue", "customers"]))
    if _have("ibis"):
        import ibis

        con = ibis.duckdb.connect()
        con.con.register("__arrow", sample["orders"])
        con.raw_sql('CREATE TABLE orders AS SELECT * FROM __arrow')
        orders = con.table("orders")
        found.append(tree.evaluate({**sample, "orders": orders}, metrics=["revenue", "customers"]))
        # An ibis expression (a filter, a derived column) is compiled by ibis into the relation the plan reads.
        paid = orders.filter(orders.status == "paid")
        assert same_values(tree.evaluate({**sample, "orders": sample["orders"].filter(
            pa.compute.equal(sample["orders"].column("status"), "paid"))}, metrics=["revenue"]),
            tree.evaluate({**sample, "orders": paid}, metrics=["revenue"])) == []
    if not found:
        pytest.skip("neither SQLAlchemy, ADBC nor ibis is installed: pip install '.[sqlalchemy,adbc]'")
    for result in found:
        assert same_values(expected, result) == []


def _have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _engine_of(binding, tables):
    bound, engine = LOADERS[binding](tables)
    return bound, engine


def test_missing_table_and_column_are_clear_errors(binding, sample):
    tree = metrictree.load(TREES / "crm_ltv.tree")
    bound, engine = _engine_of(binding, {"orders": sample["orders"], "spend": sample["spend"]})
    with pytest.raises(DataError, match="source 'orders' has no column"):
        tree.evaluate({**sample, "orders": bound["spend"]}, metrics=["revenue"])
    prefix = ""
    if binding.startswith("postgres"):
        prefix = bound["orders"].relation.find(exp.Table).db + "."
    with pytest.raises(DataError, match="has no table|no table") as caught:
        tree.evaluate({**sample, "orders": engine.table(f"{prefix}no_such_table")}, metrics=["revenue"])
    assert "Traceback" not in str(caught.value)


def test_wrong_urls_and_refused_connections_are_clear_errors(binding, tmp_path):
    kind, via = binding.split("-")
    if via == "sqlalchemy":
        from metrictree.backends.sqlalchemy import SqlAlchemy

        with pytest.raises(UsageError, match="cannot use the SQLAlchemy URL"):
            SqlAlchemy.connect("nosuchdialect://x/y")
        with pytest.raises(UsageError, match="cannot use the SQLAlchemy URL"):
            SqlAlchemy.connect("not a url")
        url = (f"sqlite:///{tmp_path}/missing/folder/shop.db" if kind == "sqlite" else
               f"postgresql+psycopg://nobody@127.0.0.1:{_free_port()}/shop")
        with pytest.raises(DataError, match="cannot connect to"):
            SqlAlchemy.connect(url).table("orders").engine.schema(SqlAlchemy.connect(url).table("orders"))
    elif via == "adbc":
        from metrictree.backends.adbc import Adbc

        with pytest.raises(UsageError, match="no ADBC driver"):
            Adbc.connect("mysql://nobody@host/db")
        if kind == "sqlite":
            with pytest.raises(DataError, match="no SQLite database"):
                Adbc.connect(f"sqlite:///{tmp_path}/missing.db")
        else:
            with pytest.raises(DataError, match="cannot connect to"):
                Adbc.connect(f"postgresql://nobody:secret@127.0.0.1:{_free_port()}/shop")
    else:
        from metrictree.backends.ibis import Ibis

        with pytest.raises(DataError, match="ibis cannot connect") as caught:
            Ibis.connect("nosuchbackend://x")
        assert "Traceback" not in str(caught.value)
        with pytest.raises(DataError, match="ibis cannot connect"):
            Ibis.connect(f"postgres://nobody:secret@127.0.0.1:{_free_port()}/shop")


def test_a_bad_binding_through_the_cli_prints_no_traceback(tmp_path):
    """The errors above are the project's typed errors, which the CLI prints plainly (exit 1)."""
    from click.testing import CliRunner
    from metrictree.cli import main

    result = CliRunner().invoke(main, ["eval", str(TREES / "crm_ltv.tree"), "--sample", "--metrics", "revenue",
                                       "--data", f"orders=duckdb:///{tmp_path}/nothing.duckdb#orders"])
    assert result.exit_code == 1 and "Traceback" not in result.output


def _slow_query(kind: str) -> exp.Expression:
    if kind == "postgres":
        return exp.select(exp.Anonymous(this="pg_sleep", expressions=[exp.Literal.number(3)]))
    if kind == "sqlite":  # 3·10^7 steps of a recursive count: several seconds, so it ends even uninterrupted
        return exp.maybe_parse("WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < 30000000) "
                               "SELECT COUNT(*) FROM r", dialect="sqlite")
    # 10^10 rows: half a minute uninterrupted on one core
    return exp.maybe_parse("SELECT SUM(a.range * b.range) FROM range(100000) AS a CROSS JOIN range(100000) AS b",
                           dialect="duckdb")


@pytest.mark.parametrize("binding", ["sqlite-sqlalchemy", "postgres-sqlalchemy", "postgres-adbc", "ibis-duckdb"])
def test_a_query_over_the_timeout_is_a_clear_error(binding):
    need(binding)
    kind, via = binding.split("-")
    if via == "sqlalchemy":
        import sqlalchemy as sa
        from metrictree.backends.sqlalchemy import SqlAlchemy

        url = "sqlite://" if kind == "sqlite" else POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = SqlAlchemy(sa.create_engine(url), timeout="200ms")
    elif via == "adbc":
        from metrictree.backends.adbc import Adbc

        engine = Adbc.connect(POSTGRES_URL, timeout="200ms")
    else:
        import ibis
        from metrictree.backends.ibis import Ibis

        engine = Ibis(ibis.duckdb.connect(), timeout="200ms")
    table = metrictree.backends.sql.SqlTable(engine, exp.to_table("x"), "a test")
    started = time.monotonic()
    with pytest.raises(DataError, match=r"longer than the statement timeout \(200ms\)") as caught:
        engine.run(table, _slow_query(kind))
    assert time.monotonic() - started < 20
    assert "timeout=" in str(caught.value)
    assert engine.run(table, exp.select(exp.Literal.number(42).as_("n"))).column(0).to_pylist() == [42]


@pytest.mark.parametrize("binding", ["postgres-sqlalchemy", "postgres-adbc"])
def test_postgres_guards_are_read_only_and_leave_the_session_as_it_was(binding):
    """Each query runs read-only under the timeout in a transaction (or savepoint) rolled back afterwards."""
    need(binding)
    table_sql = "CREATE TABLE metrictree_should_not_exist (x int)"
    if binding.endswith("sqlalchemy"):
        import sqlalchemy as sa
        from metrictree.backends.sqlalchemy import SqlAlchemy

        connection = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)).connect()
        engine = SqlAlchemy(connection)

        def setting(name):
            return connection.exec_driver_sql(f"SELECT current_setting('{name}')").scalar()
    else:
        import adbc_driver_postgresql.dbapi
        from metrictree.backends.adbc import Adbc

        connection = adbc_driver_postgresql.dbapi.connect(POSTGRES_URL)
        engine = Adbc(connection)

        def setting(name):
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT current_setting('{name}')")
                return cursor.fetchone()[0]
    table = metrictree.backends.sql.SqlTable(engine, exp.to_table("x"), "a test")
    before = setting("statement_timeout"), setting("transaction_read_only")
    assert engine.fetch(table, "SELECT current_setting('statement_timeout') AS t, "
                               "current_setting('transaction_read_only') AS r").to_pylist() == [
        {"t": "10min", "r": "on"}]
    assert (setting("statement_timeout"), setting("transaction_read_only")) == before == ("0", "off")
    with pytest.raises(DataError, match="read-only"):
        engine.fetch(table, table_sql)
    assert engine.fetch(table, "SELECT 1 AS one").to_pylist() == [{"one": 1}]  # usable after the failure
    connection.close()


def test_sqlite_sessions_are_query_only():
    need("sqlite-sqlalchemy")
    bound, engine = LOADERS["sqlite-sqlalchemy"]({"t": pa.table({"x": [1]})})
    with pytest.raises(DataError, match="readonly|read-only|query_only"):
        engine.fetch(bound["t"], 'DELETE FROM "t"')
    assert engine.fetch(bound["t"], 'SELECT COUNT(*) AS n FROM "t"').to_pylist() == [{"n": 1}]


def test_an_unknown_adbc_vendor_asks_for_the_dialect():
    pytest.importorskip("adbc_driver_sqlite")
    import adbc_driver_sqlite.dbapi
    from metrictree.backends.adbc import Adbc

    with adbc_driver_sqlite.dbapi.connect() as connection:
        assert Adbc(connection).dialect == "sqlite"
        assert Adbc(connection, dialect="duckdb").dialect == "duckdb"
    with pytest.raises(UsageError, match="not an ADBC connection"):
        Adbc(object())


def test_a_non_sql_ibis_backend_is_a_clear_error():
    pytest.importorskip("ibis")
    from metrictree.backends.ibis import Ibis

    class Frames:  # what ibis' polars or pandas backends are to metrictree: no SQL to run
        name = "polars"

    with pytest.raises(UsageError, match="runs no SQL"):
        Ibis(Frames())

