"""The DuckDB backend: files, database files, relations, URLs; errors; what leaves the engine."""

from __future__ import annotations

import metrictree
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from backend_support import TREES, same_values
from metrictree.errors import DataError

duckdb = pytest.importorskip("duckdb")


@pytest.fixture(scope="module")
def tree():
    return metrictree.load(TREES / "crm_ltv.tree")


@pytest.fixture(scope="module")
def files(tmp_path_factory, sample):
    folder = tmp_path_factory.mktemp("shop")
    paths = {}
    for name, table in sample.items():
        paths[name] = folder / f"{name}.parquet"
        pq.write_table(table, paths[name])
    database = folder / "shop.duckdb"
    con = duckdb.connect(str(database))
    for name, path in paths.items():
        con.sql(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{path}')")
    con.close()
    return paths, database


def test_parquet_files_scanned_by_duckdb(tree, sample, files):
    from metrictree.backends.duckdb import DuckDB

    paths, _ = files
    engine = DuckDB.open(None)
    bound = {name: engine.file(path) for name, path in paths.items()}
    assert same_values(tree.evaluate(sample, by=["channel"]), tree.evaluate(bound, by=["channel"])) == []
    assert all("read_parquet" in q.sql.lower() for q in engine.log)


def test_a_duckdb_file_by_url(tree, sample, files):
    _, database = files
    bound = {name: f"duckdb:///{database}#{name}" for name in sample}
    assert same_values(tree.evaluate(sample), tree.evaluate(bound)) == []


def test_a_relation_from_the_python_api(tree, sample):
    con = duckdb.connect()
    bound = {name: con.from_arrow(table) for name, table in sample.items()}
    assert same_values(tree.evaluate(sample, by=["region"]), tree.evaluate(bound, by=["region"])) == []


def test_a_connection_and_table_name(tree, sample):
    from metrictree.backends import table

    con = duckdb.connect()
    for name, data in sample.items():
        con.register("__t", data)
        con.sql(f"CREATE TABLE {name} AS SELECT * FROM __t")
        con.unregister("__t")
    bound = {name: table(con, name) for name in sample}
    assert same_values(tree.evaluate(sample), tree.evaluate(bound)) == []


def test_only_aggregates_leave_the_engine(tree, sample, on_engine):
    """Evaluating and explaining move at most the aggregated cube out of the engine, never raw rows."""
    bound, engine = on_engine
    engine.log.clear()
    tree.explain(bound, "ltv", "2026-09", "2026-10")
    moved = sum(q.rows for q in engine.log)
    dims = list(tree.sources["orders"].dimensions)
    # The finest cube explain could need: every month × every combination of the orders' dimensions.
    orders = sample["orders"]
    keys = pa.table({"m": orders.column("order_date").cast(pa.date32()).cast(pa.string()).to_pylist(),
                     **{d: orders.column(d) for d in dims}})
    months = {r["m"][:7] for r in keys.select(["m"]).to_pylist()}
    combos = keys.group_by(dims).aggregate([]).num_rows
    queries = len(engine.log)
    assert moved <= queries * len(months) * combos < orders.num_rows
    assert all(q.rows <= len(months) * combos for q in engine.log)


def test_missing_table_column_and_file_are_clear_errors(tree, sample, files):
    from metrictree.backends.duckdb import DuckDB

    _, database = files
    with pytest.raises(DataError, match="no table|does not exist|Catalog"):
        tree.evaluate({**sample, "orders": f"duckdb:///{database}#no_such_table"})
    con = duckdb.connect()
    con.sql("CREATE TABLE orders AS SELECT 1 AS x, DATE '2026-01-01' AS order_date")
    with pytest.raises(DataError, match="source 'orders' has no column"):
        tree.evaluate({**sample, "orders": DuckDB(con).table("orders")})
    with pytest.raises(DataError, match="no DuckDB database"):
        tree.evaluate({**sample, "orders": "duckdb:///nowhere/shop.duckdb#orders"})


def test_a_table_the_database_lacks_comes_with_the_tables_it_has(tree, sample, files):
    _, database = files
    with pytest.raises(DataError) as caught:
        tree.evaluate({**sample, "orders": f"duckdb:///{database}#order"})
    hint = caught.value.diagnostics[0].hint
    assert hint == f"did you mean 'orders'? the tables in {database}: emails, orders, spend, subscriptions, surveys, " \
                   "traffic"


def test_an_absolute_path_written_with_three_slashes_is_pointed_out(tree, sample, files, monkeypatch):
    _, database = files
    monkeypatch.chdir(database.parent.parent)  # so that the relative path reading of /tmp/… does not exist
    with pytest.raises(DataError) as caught:
        tree.evaluate({**sample, "orders": f"duckdb://{database}#orders"})
    diagnostic = caught.value.diagnostics[0]
    assert diagnostic.message == f"no DuckDB database at {str(database).lstrip('/')}"
    assert diagnostic.hint == (f"there is one at {database}: an absolute path takes four slashes, "
                               f"duckdb:///{database}")


def test_an_aggregate_without_a_sql_form_is_named(tmp_path, sample):
    from metrictree import pluginmanager
    from metrictree.functions import Aggregate, Partial

    class Median:
        @metrictree.hookimpl
        def metrictree_functions(self, register):
            register(Aggregate("spread", lambda ctx, x: [Partial(x, "max", None), Partial(x, "min", None)],
                               lambda hi, lo: pa.compute.subtract(hi, lo), doc="max − min"))

    name = pluginmanager.register(Median(), "spread-plugin")
    try:
        path = tmp_path / "t.tree"
        path.write_text("source orders { time order_date }\nmetric spread = spread(orders.amount)\n", "utf-8")
        tree = metrictree.load(path)
        con = duckdb.connect()
        with pytest.raises(DataError) as caught:
            tree.evaluate({"orders": con.from_arrow(sample["orders"])})
        message = str(caught.value)
        assert "spread() has no SQL form" in message and "DuckDB" in message and "spread-plugin" in message
        assert tree.evaluate({"orders": sample["orders"]}).num_rows > 0  # on Arrow it runs
    finally:
        pluginmanager.unregister(name=name)


def test_url_forms_and_a_connections_file(tree, sample, files, tmp_path, monkeypatch):
    paths, database = files
    monkeypatch.chdir(database.parent)
    relative = {name: f"duckdb:///shop.duckdb#main.{name}" for name in sample}
    assert same_values(tree.evaluate(sample), tree.evaluate(relative)) == []
    scanned = {name: f"duckdb:///{path.name}" for name, path in paths.items()}
    assert same_values(tree.evaluate(sample), tree.evaluate(scanned)) == []
    (tmp_path / "connections.toml").write_text(f'[local]\nurl = "duckdb:///{database}"\n', "utf-8")
    monkeypatch.setenv("METRICTREE_CONNECTIONS", str(tmp_path / "connections.toml"))
    named = {name: f"@local#{name}" for name in sample}
    assert same_values(tree.evaluate(sample), tree.evaluate(named)) == []


@pytest.mark.parametrize(("binding", "message"), [
    ("duckdb://", "name a file"),
    ("duckdb:///orders.xlsx", "cannot tell the format"),
    ("duckdb:///missing.parquet", "no data file"),
    ("@nowhere#orders", "no connections file|has no connection"),
    ("@local", "add the table after #"),
    ("spark:", "name a table"),
    ("duckdb:///shop.duckdb#a..b", "not a table name"),
])
def test_bad_bindings_are_clear_errors(tree, sample, files, monkeypatch, binding, message):
    from metrictree.errors import MetrictreeError

    monkeypatch.chdir(files[1].parent)
    monkeypatch.delenv("METRICTREE_CONNECTIONS", raising=False)
    with pytest.raises(MetrictreeError, match=message):
        tree.evaluate({**sample, "orders": binding}, metrics=["revenue"])


def test_the_cli_scans_a_parquet_file_with_duckdb(files):
    from click.testing import CliRunner
    from metrictree.cli import main

    paths, database = files
    runner = CliRunner()
    via_duckdb = runner.invoke(main, ["eval", str(TREES / "crm_ltv.tree"), "--sample", "--metrics", "revenue,customers",
                                      "--data", f"orders=duckdb:///{paths['orders']}", "--format", "csv"])
    direct = runner.invoke(main, ["eval", str(TREES / "crm_ltv.tree"), "--sample", "--metrics", "revenue,customers",
                                  "--data", f"orders={paths['orders']}", "--format", "csv"])
    assert via_duckdb.exit_code == 0, via_duckdb.output
    assert via_duckdb.output == direct.output
    missing = runner.invoke(main, ["eval", str(TREES / "crm_ltv.tree"), "--sample",
                                   "--data", f"orders=duckdb:///{database}#nothing"])
    assert missing.exit_code == 1 and "Traceback" not in missing.output


def test_a_source_time_zone(tmp_path, sample):
    """``timezone`` in the source: zoned times are seen in that zone on DuckDB as on Arrow."""
    import datetime as dt

    utc = dt.UTC
    times = [dt.datetime(2026, 1, 31, 16, 30, tzinfo=utc), dt.datetime(2026, 2, 28, 14, 59, tzinfo=utc),
             dt.datetime(2026, 2, 28, 15, 0, tzinfo=utc), dt.datetime(2026, 3, 31, 23, 0, tzinfo=utc)]
    rows = pa.table({"at": pa.array(times, pa.timestamp("us", tz="UTC")), "amount": [1.0, 2.0, 4.0, 8.0]})
    path = tmp_path / "tz.tree"
    path.write_text('source orders { time at  timezone "Asia/Tokyo" }\nmetric revenue = sum(orders.amount)\n', "utf-8")
    tree = metrictree.load(path)
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    expected = tree.evaluate({"orders": rows}, grain="month")
    # 16:30 UTC on Jan 31 is Feb 1 in Tokyo; 15:00 UTC on Feb 28 is Mar 1 there.
    assert expected.column("period").to_pylist() == ["2026-02", "2026-03", "2026-04"]
    assert expected.column("revenue").to_pylist() == [3.0, 4.0, 8.0]
    for grain in ("month", "day", "week"):
        assert same_values(tree.evaluate({"orders": rows}, grain=grain),
                           tree.evaluate({"orders": con.from_arrow(rows)}, grain=grain)) == []


def test_a_query_over_the_timeout_is_interrupted_with_a_clear_error():
    """DuckDB has no statement timeout: a timer interrupts the connection, and the error says how to raise it."""
    import time

    from metrictree.backends.duckdb import DuckDB
    from metrictree.backends.sql import SqlTable
    from sqlglot import exp

    engine = DuckDB(duckdb.connect(), timeout="200ms")
    table = SqlTable(engine, exp.to_table("x"), "a test")
    # 10^10 rows: about half a minute uninterrupted on one core, so it ends even if the interrupt failed.
    ranges = [exp.Anonymous(this="range", expressions=[exp.Literal.number(100_000)]).as_(n) for n in "ab"]
    slow = exp.select(exp.Sum(this=exp.Mul(this=exp.column("range", "a"), expression=exp.column("range", "b"))))
    slow = slow.from_(exp.Table(this=ranges[0].this, alias=exp.TableAlias(this=exp.to_identifier("a"))))
    slow = slow.join(exp.Table(this=ranges[1].this, alias=exp.TableAlias(this=exp.to_identifier("b"))),
                     join_type="cross")
    started = time.monotonic()
    with pytest.raises(DataError, match=r"longer than the statement timeout \(200ms\)") as caught:
        engine.run(table, slow)
    assert time.monotonic() - started < 20
    assert "statement_timeout" in str(caught.value) and "timeout=" in str(caught.value)
    # The connection is usable again, and a quick query is not interrupted by a late timer.
    assert engine.run(table, exp.select(exp.Literal.number(42))).column(0).to_pylist() == [42]
    time.sleep(0.3)
    assert engine.run(table, exp.select(exp.Literal.number(7))).column(0).to_pylist() == [7]


def test_the_timeout_from_the_connections_file_and_bad_timeouts(files, tmp_path, monkeypatch):
    from metrictree.backends.bindings import parse
    from metrictree.backends.duckdb import DuckDB
    from metrictree.errors import UsageError

    _, database = files
    (tmp_path / "c.toml").write_text(f'[local]\nurl = "duckdb:///{database}"\nstatement_timeout = "90s"\n', "utf-8")
    monkeypatch.setenv("METRICTREE_CONNECTIONS", str(tmp_path / "c.toml"))
    bound = parse("@local#orders")
    assert bound.engine.timeout == "90s" and bound.engine._seconds == 90
    assert parse(f"duckdb:///{database}#orders").engine._seconds == 600  # the default, as on PostgreSQL
    with pytest.raises(UsageError, match="not a statement timeout"):
        DuckDB(duckdb.connect(), timeout="soon")
