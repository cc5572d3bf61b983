"""The PostgreSQL backend against a real server: URLs, the connections file, read-only sessions, timeouts, errors.

Needs METRICTREE_TEST_POSTGRES_URL (.ci/setup.d/30-postgres.sh starts a server and sets it).
"""

from __future__ import annotations

import socket

import metrictree
import pytest
from backend_support import POSTGRES_URL, TREES, load_postgres, same_values
from metrictree.errors import DataError, UsageError

psycopg = pytest.importorskip("psycopg")
pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="no PostgreSQL server: set METRICTREE_TEST_POSTGRES_URL "
                                                         "(.ci/setup.d/30-postgres.sh does)")


@pytest.fixture(scope="module")
def loaded(sample):
    return load_postgres(sample)


@pytest.fixture(scope="module")
def tree():
    return metrictree.load(TREES / "crm_ltv.tree")


def _url_of(bound) -> str:
    return bound.label.split(" ", 1)[1]


def test_a_url_binding(tree, sample, loaded):
    bound, _ = loaded
    table = bound["orders"].relation
    urls = {name: f"{POSTGRES_URL}#{b.relation.args['db'].name}.{b.relation.name}" for name, b in bound.items()}
    assert same_values(tree.evaluate(sample, by=["region"]), tree.evaluate(urls, by=["region"])) == []
    assert table.name == "orders"


def test_a_connections_file_with_the_password_from_the_environment(tree, sample, loaded, tmp_path, monkeypatch):
    bound, _ = loaded
    schema = bound["orders"].relation.args["db"].name
    path = tmp_path / "connections.toml"
    path.write_text(f'[shop]\nurl = "{POSTGRES_URL}"\npassword_env = "SHOP_TEST_PASSWORD"\n'
                    'statement_timeout = "1min"\n', "utf-8")
    monkeypatch.setenv("METRICTREE_CONNECTIONS", str(path))
    monkeypatch.setenv("SHOP_TEST_PASSWORD", "unused-with-trust-auth")
    data = {**sample, "orders": f"@shop#{schema}.orders"}
    assert same_values(tree.evaluate(sample), tree.evaluate(data)) == []
    path.write_text(f'[shop]\nurl = "{POSTGRES_URL}"\npassword = "secret"\n', "utf-8")
    with pytest.raises(UsageError, match="holds a password"):
        tree.evaluate({**sample, "orders": f"@shop#{schema}.orders"})


def test_sessions_are_read_only_with_a_statement_timeout(loaded):
    _, engine = loaded
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        engine.connection.execute("CREATE TABLE should_not_exist (x int)")
    assert engine.connection.execute("SHOW statement_timeout").fetchone()[0] == "10min"


def test_a_query_over_the_timeout_is_a_clear_error(loaded):
    from metrictree.backends.postgres import Postgres
    from metrictree.backends.sql import SqlTable
    from sqlglot import exp

    engine = Postgres.connect(POSTGRES_URL, timeout="50ms")
    slow = exp.select(exp.Anonymous(this="pg_sleep", expressions=[exp.Literal.number(2)]))
    with pytest.raises(DataError, match="statement timeout"):
        engine.run(SqlTable(engine, exp.to_table("x"), "a test"), slow)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_clear_errors(tree, sample, loaded):
    bound, _ = loaded
    schema = bound["orders"].relation.args["db"].name
    with pytest.raises(DataError, match="cannot connect to PostgreSQL"):
        tree.evaluate({**sample, "orders": f"postgresql://nobody@127.0.0.1:{_free_port()}/shop#orders"})
    with pytest.raises(UsageError, match="add the table after #"):
        tree.evaluate({**sample, "orders": POSTGRES_URL})
    with pytest.raises(UsageError, match="not a PostgreSQL URL"):
        tree.evaluate({**sample, "orders": "postgresql://a@b/x?nonsense=1#orders"})
    with pytest.raises(DataError, match="PostgreSQL has no table"):
        tree.evaluate({**sample, "orders": f"{POSTGRES_URL}#{schema}.no_such_table"})
    with pytest.raises(DataError, match="source 'orders' has no column"):
        tree.evaluate({**sample, "orders": f"{POSTGRES_URL}#{schema}.spend"}, metrics=["revenue"])


def test_the_cli_reads_a_postgres_binding(loaded, tmp_path):
    from click.testing import CliRunner
    from metrictree.cli import main

    bound, _ = loaded
    schema = bound["orders"].relation.args["db"].name
    result = CliRunner().invoke(main, ["eval", str(TREES / "crm_ltv.tree"), "--sample", "--metrics", "revenue",
                                       "--data", f"orders={POSTGRES_URL}#{schema}.orders", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "revenue" in result.output.splitlines()[0]
    result = CliRunner().invoke(main, ["eval", str(TREES / "crm_ltv.tree"), "--sample", "--metrics", "revenue",
                                       "--data", f"orders={POSTGRES_URL}#{schema}.nothing_here"])
    assert result.exit_code == 1 and "Traceback" not in result.output and "no table" in result.output


def test_a_connection_of_yours_is_guarded_per_query_and_left_as_it_was(loaded, sample, tree):
    """``table(psycopg_connection, name)``: each query read-only under the timeout, in a rolled-back transaction."""
    from metrictree.backends import table
    from metrictree.backends.postgres import Postgres
    from metrictree.backends.sql import SqlTable
    from sqlglot import exp

    bound, _ = loaded
    schema = bound["orders"].relation.args["db"].name
    with psycopg.connect(POSTGRES_URL) as connection:  # not autocommit: queries run inside its transaction
        data = {**sample, "orders": table(connection, f"{schema}.orders")}
        assert same_values(tree.evaluate(sample), tree.evaluate(data)) == []
        engine = Postgres(connection, timeout="50ms")
        probe = SqlTable(engine, exp.to_table("x"), "a test")
        assert engine.fetch(probe, "SELECT current_setting('statement_timeout') AS t, "
                                   "current_setting('transaction_read_only') AS r").to_pylist() == [
            {"t": "50ms", "r": "on"}]
        with pytest.raises(DataError, match=r"statement timeout \(50ms\)"):
            engine.run(probe, exp.select(exp.Anonymous(this="pg_sleep", expressions=[exp.Literal.number(2)])))
        with pytest.raises(DataError, match="read-only"):
            engine.fetch(probe, "CREATE TABLE should_not_exist (x int)")
        shown = connection.execute("SELECT current_setting('statement_timeout'), "
                                   "current_setting('transaction_read_only')").fetchone()
        assert shown == ("0", "off")
