"""Start-up: commands import only what they need (the time itself is measured by bench/, not here)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

TREE = textwrap.dedent("""
    tree t "t"
    grain month
    source orders { time day dimensions region entity customer_id }
    metric revenue = sum(orders.amount)
    metric customers = count_distinct(orders.customer_id)
    metric churned = churned_customers(orders)
    metric churn_rate = churned / customers[-1] { level strategic }
""")


def modules_after(code: str, tmp_path) -> set[str]:
    (tmp_path / "t.tree").write_text(TREE)
    probe = "import sys\n" + code + '\nprint(",".join(sorted(sys.modules)))\n'
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    return set(out.stdout.strip().splitlines()[-1].split(","))


def test_check_imports_no_arrow_and_no_pandas(tmp_path):
    loaded = modules_after(textwrap.dedent("""
        from metrictree.cli import main
        try:
            main(["check", "t.tree"])
        except SystemExit as stop:
            assert stop.code == 0, stop.code
    """), tmp_path)
    assert "metrictree.plugins.crm" in loaded  # the functions were checked against the plugins
    assert not {m for m in loaded if m.split(".")[0] in ("pyarrow", "pandas", "numpy")}


# What `metrictree check` never needs: NetworkX (the compiled tree keeps its own edges, and a cycle is found
# with the standard library), rich (plain text when piped), the evaluation, explanation and report stacks.
NOT_FOR_CHECK = ("networkx", "rich", "pygments", "markdown_it", "sqlglot", "duckdb", "polars", "jinja2")
NOT_FOR_CHECK_OWN = ("metrictree.rendering", "metrictree.evaluating", "metrictree.explaining", "metrictree.drilling",
                     "metrictree.reporting", "metrictree.aggregating", "metrictree.reading", "metrictree.states",
                     "metrictree.backends", "metrictree.localising", "metrictree.rules", "metrictree.simulating")


@pytest.mark.parametrize("tree_file", ["t.tree", "cycle.tree", "bad.tree"])
def test_check_imports_no_networkx_no_rich_and_no_stage(tmp_path, tree_file):
    (tmp_path / "cycle.tree").write_text(TREE + "metric a = b + 1\nmetric b = a * 2\n")
    (tmp_path / "bad.tree").write_text(TREE + "metric c = nosuch(orders.amount)\n")
    loaded = modules_after(textwrap.dedent(f"""
        from metrictree.cli import main
        try:
            main(["check", "{tree_file}"])
        except SystemExit as stop:
            print("exit", stop.code)
    """), tmp_path)
    heavy = {m for m in loaded if m.split(".")[0] in NOT_FOR_CHECK}
    if tree_file == "cycle.tree":
        heavy = {m for m in heavy if m.split(".")[0] != "networkx"}  # a cycle's path is found with NetworkX
    assert not heavy
    assert not {m for m in loaded if m in NOT_FOR_CHECK_OWN or m.startswith("metrictree.backends.")}


def test_a_checked_tree_answers_graph_questions_without_networkx(tmp_path):
    loaded = modules_after(textwrap.dedent("""
        import metrictree
        tree = metrictree.load("t.tree")
        assert tree.drivers("churn_rate") == ["churned", "customers"], tree.drivers("churn_rate")
        assert tree.parents("customers") == ["churn_rate"]
        assert tree.roots() == ["revenue", "churn_rate"], tree.roots()
        assert tree.requirements(["churn_rate"]) == ["customers", "churned", "churn_rate"]
        assert [e[:2] for e in tree.edges()] == [("churn_rate", "churned"), ("churn_rate", "customers")]
    """), tmp_path)
    assert "networkx" not in loaded


def test_the_graph_view_is_the_tree_s_edges():
    import networkx as nx

    import metrictree

    tree = metrictree.loads(TREE + "churn_rate <~ revenue\n")
    graph = tree.graph
    assert nx.is_frozen(graph)
    assert list(graph.nodes) == list(tree.metrics)
    assert list(graph.edges(data="kind")) == [("churn_rate", "churned", "formula"), ("churn_rate", "customers", "formula"),
                                              ("churn_rate", "revenue", "influence")]
    assert graph.nodes["revenue"]["metric"] is tree.metrics["revenue"]
    assert tree.graph is graph  # built once


def test_import_metrictree_loads_no_evaluation_stack(tmp_path):
    loaded = modules_after("import metrictree; metrictree.load('t.tree')", tmp_path)
    assert "pyarrow.dataset" not in loaded and "pandas" not in loaded
    assert "metrictree.evaluating" not in loaded


def test_lazy_names_still_resolve():
    import metrictree

    assert metrictree.Evaluation.__name__ == "Evaluation"
    assert callable(metrictree.null_reasons)


def test_a_module_of_a_missing_extra_says_how_to_install_it():
    from metrictree import lazy
    from metrictree.errors import DataError

    assert lazy.optional("json", "unused", "none").dumps([1]) == "[1]"
    with pytest.raises(DataError) as info:
        lazy.optional("metrictree_no_such_module", "the Foo backend needs foo", "foo")
    diagnostic = info.value.diagnostics[0]
    assert (diagnostic.message, diagnostic.hint) == ("the Foo backend needs foo", "pip install 'metrictree[foo]'")


# What evaluating over a Parquet file never needs, from the Python API or `metrictree eval --format json|csv`
# (JSON and CSV come from `metrictree.exporting`; only the table for people is drawn with rich).
NOT_FOR_EVAL = ("networkx", "rich", "pygments", "markdown_it", "sqlglot", "duckdb", "polars", "jinja2", "click")
NOT_FOR_EVAL_OWN = ("metrictree.rendering", "metrictree.explaining", "metrictree.drilling", "metrictree.reporting",
                    "metrictree.localising", "metrictree.rules", "metrictree.simulating", "metrictree.narrating")


def _orders_file(tmp_path) -> None:
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i % 59) for i in range(300)]
    pq.write_table(pa.table({"day": pa.array(days, pa.date32()),
                             "region": [("north", "south")[i % 2] for i in range(300)],
                             "customer_id": [f"c{i % 40}" for i in range(300)],
                             "amount": [float(i % 17) for i in range(300)]}), tmp_path / "orders.parquet")


def test_evaluate_from_the_python_api_imports_no_renderer_and_no_graph_library(tmp_path):
    _orders_file(tmp_path)
    loaded = modules_after(textwrap.dedent("""
        import metrictree
        table = metrictree.load("t.tree").evaluate({"orders": "orders.parquet"}, by=["region"])
        assert table.num_rows == 4, table
    """), tmp_path)
    assert "metrictree.evaluating" in loaded
    assert not {m for m in loaded if m.split(".")[0] in NOT_FOR_EVAL}
    assert not {m for m in loaded if m in NOT_FOR_EVAL_OWN}


@pytest.mark.parametrize("metric", ["churn_rate", "per_customer"])
def test_explain_from_the_python_api_imports_no_graph_library(tmp_path, metric):
    """explain walks the tree without NetworkX, and so do the trees its passes evaluate (time shifts as hidden
    metrics, the drill-down's pass by every dimension, a distinct count's share among its segments)."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i % 120) for i in range(600)]
    pq.write_table(pa.table({"day": pa.array(days, pa.date32()),
                             "region": [("north", "south")[i % 2] for i in range(600)],
                             "customer_id": [f"c{i % 70}" for i in range(600)],
                             "amount": [float(i % 17) for i in range(600)]}), tmp_path / "orders.parquet")
    loaded = modules_after(textwrap.dedent(f"""
        import metrictree
        tree = metrictree.loads(open("t.tree").read() + "metric per_customer = revenue / customers\\n")
        explained = tree.explain({{"orders": "orders.parquet"}}, "{metric}", "2026-02", "2026-03", by=["region"])
        assert explained.metric == "{metric}"
    """), tmp_path)
    assert "metrictree.drilling" in loaded and "networkx" not in loaded


def test_a_tree_with_more_metrics_is_the_same_with_or_without_its_graph_built():
    import metrictree
    from metrictree.model import Metric
    from metrictree import syntax as s

    extra = {"__shift0": Metric("__shift0", "derived", s.Name("customers"), inputs=("customers",))}
    edges = [("__shift0", "customers")]
    plain = metrictree.loads(TREE).with_metrics(extra, edges)
    built = metrictree.loads(TREE)
    assert built.graph is not None  # built before: its copy grows instead
    built = built.with_metrics(extra, edges)
    for tree in (plain, built):
        assert list(tree.metrics) == [*metrictree.loads(TREE).metrics, "__shift0"]
        assert tree.drivers("__shift0") == ["customers"] and tree.parents("customers") == ["churn_rate", "__shift0"]
        assert tree.requirements(["__shift0"]) == ["customers", "__shift0"]
    assert list(plain.graph.edges(data="kind")) == list(built.graph.edges(data="kind"))


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_eval_to_csv_or_json_imports_no_rich_and_no_renderer(tmp_path, fmt):
    _orders_file(tmp_path)
    loaded = modules_after(textwrap.dedent(f"""
        from metrictree.cli import main
        try:
            main(["eval", "t.tree", "--data", "orders=orders.parquet", "--format", "{fmt}", "-o", "out.{fmt}"])
        except SystemExit as stop:
            assert stop.code == 0, stop.code
    """), tmp_path)
    text = (tmp_path / f"out.{fmt}").read_text()
    assert "revenue" in text and "2026-02" in text
    assert "metrictree.exporting" in loaded
    assert not {m for m in loaded if m.split(".")[0] in NOT_FOR_EVAL and m.split(".")[0] != "click"}
    assert not {m for m in loaded if m in NOT_FOR_EVAL_OWN}


def test_the_command_ends_without_the_last_garbage_collections(tmp_path):
    """Python's collections at exit walk every object pyarrow and pandas loaded (0.1-0.3 s): the CLI freezes
    them from an atexit hook. A hook registered before the command runs after that one, and sees it done."""
    (tmp_path / "t.tree").write_text(TREE)
    probe = textwrap.dedent("""
        import atexit, gc, sys
        atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0, flush=True))
        from metrictree.cli import main
        main(["check", "t.tree"])
    """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "frozen True"


@pytest.mark.parametrize("given", [None, "1"])
def test_the_command_asks_arrow_s_allocator_for_no_huge_pages_unless_told(tmp_path, given):
    """mimalloc reads MIMALLOC_ALLOW_THP when pyarrow loads: the command sets it first, keeping a user's own."""
    import os

    _orders_file(tmp_path)
    probe = textwrap.dedent("""
        import os, sys
        from metrictree.cli import main
        try:
            main(["eval", "t.tree", "--data", "orders=orders.parquet", "--format", "csv", "-o", "out.csv"])
        except SystemExit as stop:
            assert stop.code == 0, stop.code
        print("thp", os.environ.get("MIMALLOC_ALLOW_THP"), "pyarrow" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if k != "MIMALLOC_ALLOW_THP"}
    if given is not None:
        env["MIMALLOC_ALLOW_THP"] = given
    (tmp_path / "t.tree").write_text(TREE)
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == f"thp {given or '0'} True"
