"""Plugins: built-ins go through the same hooks as third-party ones; clashes and failures are named."""

import textwrap

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import metrictree
from metrictree import hookspecs, pluginmanager
from metrictree.errors import PluginError

TREE = textwrap.dedent('''
    source orders {
        time day
        dimensions region
    }
    metric revenue = sum(orders.amount)
    metric big_orders = count_over(orders.amount, threshold=100)
    metric doubled = twice(revenue)
    metric top = doubled + big_orders { level strategic }
''')

DATA = {"orders": pa.table({
    "day": pa.array(["2026-01-05", "2026-01-20", "2026-02-03"], pa.string()).cast(pa.timestamp("s")),
    "region": ["N", "S", "N"],
    "amount": [50.0, 150.0, 300.0],
})}


class Doubling:
    """A third-party plugin: a scalar function and an aggregate with a keyword option."""

    @metrictree.hookimpl
    def metrictree_functions(self, register):
        register(metrictree.Scalar("twice", lambda x: pc.multiply(x, 2), doc="x * 2"))
        register(metrictree.Aggregate(
            "count_over", lambda ctx, x, threshold=0: [metrictree.Partial(pc.greater(x, threshold), "sum", 0)],
            keywords={"threshold": 0}, doc="rows above a threshold"))


@pytest.fixture
def plugin():
    """Register a plugin for one test and always unregister it."""
    registered = []

    def add(obj, name=None):
        registered.append(pluginmanager.register(obj, name=name))
        return obj

    try:
        yield add
    finally:
        for name in registered:
            pluginmanager.unregister(name=name)


def test_a_plugin_function_is_usable_in_a_tree(plugin):
    plugin(Doubling(), "doubling")
    tree = metrictree.loads(TREE)
    table = tree.evaluate(DATA)
    assert table.column("period").to_pylist() == ["2026-01", "2026-02"]
    assert table.column("doubled").to_pylist() == [400.0, 600.0]
    assert table.column("big_orders").to_pylist() == [1, 1]
    assert pluginmanager.registry().owner(pluginmanager.registry().scalars["twice"]) == "doubling"


def test_without_the_plugin_the_function_is_unknown():
    with pytest.raises(metrictree.CompileError, match="unknown function 'twice'"):
        metrictree.loads(TREE)


def test_builtins_are_registered_through_the_same_hooks():
    registry = pluginmanager.registry()
    for name in ("sum", "count", "count_distinct", "avg", "min", "max"):
        assert registry.owner(registry.aggregates[name]) == "metrictree.plugins.core"
    for name in ("abs", "log", "exp", "sqrt", "coalesce", "if", "min", "max", "change"):
        assert registry.owner(registry.scalars[name]) == "metrictree.plugins.core"


def test_two_plugins_defining_one_name_is_an_error_naming_both(plugin):
    class Clash:
        @metrictree.hookimpl
        def metrictree_functions(self, register):
            register(metrictree.Scalar("log", lambda x: x))

    plugin(Clash(), "clashing-plugin")
    with pytest.raises(PluginError) as caught:
        pluginmanager.registry()
    assert caught.value.diagnostics[0].message == (
        "function 'log' is defined by two plugins: 'metrictree.plugins.core' and 'clashing-plugin'")


def test_a_failing_plugin_is_named_with_its_hook(plugin):
    class Broken:
        @metrictree.hookimpl
        def metrictree_functions(self, register):
            raise RuntimeError("boom")

    plugin(Broken(), "broken-plugin")
    with pytest.raises(PluginError) as caught:
        metrictree.loads(TREE)
    assert caught.value.diagnostics[0].message == (
        "plugin 'broken-plugin' failed in hook metrictree_functions: RuntimeError: boom")


def test_an_implementation_matching_no_hook_is_rejected():
    class Typo:
        @metrictree.hookimpl
        def metrictree_functons(self, register):
            pass

    with pytest.raises(PluginError, match="implements a hook metrictree does not have"):
        pluginmanager.register(Typo(), name="typo")
    pluginmanager.unregister(name="typo")


def test_registering_something_that_is_not_a_function(plugin):
    class Odd:
        @metrictree.hookimpl
        def metrictree_functions(self, register):
            register("sum")

    plugin(Odd(), "odd")
    with pytest.raises(PluginError, match="plugin 'odd' registered 'sum', which is not"):
        pluginmanager.registry()


def test_libraries_are_imported_into_trees(plugin):
    class Library:
        @metrictree.hookimpl
        def metrictree_libraries(self, register):
            register(metrictree.Library("shop", "metric orders_n = count(orders)\nmetric per_order = revenue / "
                                                "orders_n\n", doc="shop basics"))

    plugin(Library(), "shop-lib")
    tree = metrictree.loads(textwrap.dedent('''
        import shop
        source orders { time day }
        metric revenue = sum(orders.amount)
        metric top = per_order * 2 { level strategic }
    '''))
    assert tree.metrics["per_order"].library == "shop"
    assert tree.evaluate(DATA, metrics=["top"]).column("top").to_pylist() == [200.0, 600.0]


def _fake_distribution(root, module_body, module="fakeplug_mod"):
    (root / f"{module}.py").write_text(module_body, "utf-8")
    info = root / "fakeplug-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.2\n", "utf-8")
    (info / "entry_points.txt").write_text(f"[metrictree]\nfake = {module}\n", "utf-8")


def test_entry_point_plugins_load_unless_disabled(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, textwrap.dedent('''
        import pyarrow.compute as pc
        import metrictree

        @metrictree.hookimpl
        def metrictree_functions(register):
            register(metrictree.Scalar("triple", lambda x: pc.multiply(x, 3)))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(pluginmanager.DISABLE_AUTOLOAD, raising=False)
    pluginmanager.reset()
    try:
        assert "triple" in pluginmanager.registry().scalars
        plugin = dict(pluginmanager.plugins())["fake"]
        assert pluginmanager.distribution_of(plugin) == "fakeplug 1.2"
        tree = metrictree.loads("source orders { time day }\nmetric r = sum(orders.amount)\nmetric t = triple(r)")
        assert tree.evaluate(DATA, metrics=["t"]).column("t").to_pylist() == [600.0, 900.0]

        monkeypatch.setenv(pluginmanager.DISABLE_AUTOLOAD, "1")
        pluginmanager.reset()
        assert "triple" not in pluginmanager.registry().scalars
    finally:
        pluginmanager.reset()


def test_every_hook_has_a_test():
    source = open(__file__, encoding="utf-8").read()
    for hook in pluginmanager.hook_names():
        assert f"def {hook}(" in source, f"hook {hook} has no test"
    assert set(pluginmanager.hook_names()) == {n for n in dir(hookspecs) if n.startswith("metrictree_")}


def test_plugin_trees_are_runnable_by_name(plugin, tmp_path):
    path = tmp_path / "mini.tree"
    path.write_text("source orders { time day }\nmetric revenue = sum(orders.amount)\n", "utf-8")

    class Trees:
        @metrictree.hookimpl
        def metrictree_trees(self, register):
            register(metrictree.TreeFile("mini", path, doc="a tiny tree"))

    plugin(Trees(), "tree-plugin")
    registry = pluginmanager.registry()
    assert registry.trees["mini"].path == path
    assert registry.contributions("tree-plugin") == {"tree": ["mini"]}
    from click.testing import CliRunner

    from metrictree.cli import main

    data = tmp_path / "orders.parquet"
    import pyarrow.parquet as pq

    pq.write_table(DATA["orders"], data)
    result = CliRunner().invoke(main, ["eval", "mini", "--data", f"orders={data}", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ['"period","revenue"', '"2026-01",200', '"2026-02",300']


def test_plugins_command_lists_origins_and_contributions(plugin):
    from click.testing import CliRunner

    from metrictree.cli import main

    plugin(Doubling(), "doubling")
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0
    text = result.output
    assert "metrictree.plugins.core  (built-in)" in text
    assert "metrictree.plugins.crm  (built-in)" in text
    assert "doubling  (registered at run time)" in text
    assert "twice()" in text and "count_over()" in text
    assert "crm_ltv" in text and "churned_customers()" in text


def test_a_plugin_that_fails_to_import_is_named_with_its_distribution(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "raise ImportError('needs a missing library')\n", module="brokenplug_mod")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(pluginmanager.DISABLE_AUTOLOAD, raising=False)
    pluginmanager.reset()
    try:
        with pytest.raises(PluginError) as caught:
            pluginmanager.registry()
        assert caught.value.diagnostics[0].message == (
            "plugin 'fake' from fakeplug 1.2 failed to load: ImportError: needs a missing library")
        assert "METRICTREE_DISABLE_PLUGIN_AUTOLOAD=1" in caught.value.diagnostics[0].hint
    finally:
        pluginmanager.reset()


def test_a_plugin_aggregate_runs_in_sql_through_its_sql_form(plugin, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    pytest.importorskip("sqlglot")
    import pyarrow as pa
    import pyarrow.compute as pc
    from sqlglot import exp

    from metrictree.backends import SqlForm, SqlPartial
    from metrictree.functions import Aggregate, Partial

    class Range:
        @metrictree.hookimpl
        def metrictree_functions(self, register):
            register(Aggregate("value_range", lambda ctx, x: [Partial(x, "max"), Partial(x, "min")],
                               lambda hi, lo: pc.subtract(hi, lo), doc="max − min"))

        @metrictree.hookimpl
        def metrictree_sql_forms(self, register):
            register(SqlForm("value_range", lambda ctx, x: [SqlPartial(x, "max"), SqlPartial(exp.Neg(this=exp.Neg(
                this=x)), "min")]))

    plugin(Range(), "range-plugin")
    path = tmp_path / "t.tree"
    path.write_text("source orders { time day }\nmetric spread = value_range(orders.amount)\n", "utf-8")
    tree = metrictree.load(path)
    rows = pa.table({"day": pa.array([0, 1, 40], pa.date32()), "amount": [5.0, 2.0, 7.5]})
    con = duckdb.connect()
    assert tree.evaluate({"orders": con.from_arrow(rows)}).column("spread").to_pylist() == [3.0, 0.0]
