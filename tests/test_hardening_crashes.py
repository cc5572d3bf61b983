"""Issue 10: the reproducers that gave a traceback or a silently wrong number, each now a clear error or a right answer."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import metrictree
from metrictree.cli import main
from metrictree.errors import CompileError, DataError, MetrictreeError, TreeSyntaxError, UsageError
from metrictree.parsing import MAX_NESTING
from metrictree.sample import sample_data

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "source orders { time d dimensions region }\nmetric revenue = sum(orders.amount)\n"
DATA = {"orders": pa.table({"d": [dt.date(2026, 1, 5), dt.date(2026, 2, 5), dt.date(2026, 2, 9)],
                            "region": ["North", "South", "North"], "amount": [1.0, 2.0, 4.0]})}


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def _located(exc: MetrictreeError, line: int) -> None:
    assert exc.diagnostics[0].span is not None and exc.diagnostics[0].span.line == line, str(exc)


# --------------------------------------------------------------------------- 1, 2: depth


@pytest.mark.parametrize("formula", [
    "not " * 600 + "revenue",
    "-" * 489 + "revenue",
    " + ".join(["revenue"] * 489),
    "abs(" * 245 + "revenue" + ")" * 245,
])
def test_deep_expressions_are_a_located_error(formula):
    with pytest.raises(TreeSyntaxError, match=f"nests more than {MAX_NESTING} levels deep") as info:
        metrictree.loads(SOURCE + f"metric x = {formula}\n")
    _located(info.value, 3)


@pytest.mark.parametrize("formula", [
    "-" * 190 + "revenue",
    " + ".join(["revenue"] * 190),
    "abs(" * 190 + "revenue" + ")" * 190,
    "(" * 300 + "revenue" + ")" * 300 + " * " + "(" * 300 + "revenue" + ")" * 300,  # brackets add no depth
])
def test_expressions_just_under_the_limit_work_in_every_stage(formula):
    tree = metrictree.loads(SOURCE + f"metric x = {formula}\n")
    assert tree.evaluate(DATA).num_rows == 2
    explanation = tree.explain(DATA, "x", "2026-01", "2026-02")
    assert explanation.to_markdown() and explanation.to_dict()
    assert tree.simulate(DATA, {"revenue": "+10%"}).effects
    assert tree.status(DATA) is not None


def test_a_long_include_chain_is_a_located_error(tmp_path):
    for i in range(600):
        (tmp_path / f"f{i}.tree").write_text(f'include "f{i + 1}.tree"\n', "utf-8")
    (tmp_path / "f600.tree").write_text("metric x = 1\n", "utf-8")
    with pytest.raises(CompileError, match="includes nest more than 32 files deep") as info:
        metrictree.load(tmp_path / "f0.tree")
    _located(info.value, 1)


@pytest.mark.parametrize("depth", [350, 500, 700, 1500])
def test_deep_valid_trees_compile_and_evaluate(depth):
    text = SOURCE + "".join(f"metric m{i} = m{i + 1} + revenue\n" for i in range(depth - 1))
    tree = metrictree.loads(text + f"metric m{depth - 1} = revenue\n")
    table = tree.evaluate(DATA)
    assert table.column("m0").to_pylist() == [depth * 1.0, depth * 6.0]
    assert tree.requirements(["m0"])[0] == "revenue" and tree.requirements(["m0"])[-1] == "m0"
    assert tree.simulate(DATA, {"revenue": "+10%"}).effects


def _chain(depth: int) -> str:
    """``metric m0 = m1 + revenue`` … ``metric m{depth-1} = revenue``: a valid tree ``depth`` metrics deep."""
    return SOURCE + "".join(f"metric m{i} = m{i + 1} + revenue\n" for i in range(depth - 1)) + \
        f"metric m{depth - 1} = revenue {{ level strategic }}\n"


@pytest.mark.parametrize("depth", [1000, 3000])
def test_deep_chains_explain_and_render(depth):
    tree = metrictree.loads(_chain(depth))
    explanation = tree.explain(DATA, "m0", "2026-01", "2026-02")
    # Every level adds one 'revenue' (1 → 6): the change is depth × 5, split exactly down the chain.
    assert explanation.change == pytest.approx(depth * 5.0)
    assert explanation.residual == pytest.approx(0.0, abs=1e-6)
    assert explanation.to_markdown() and explanation.to_dict()["drivers"]
    assert tree.status(DATA) is not None
    assert tree.simulate(DATA, {"revenue": "+10%"}).effects


@pytest.mark.parametrize("depth", [1000, pytest.param(3000, marks=pytest.mark.slow)])
def test_deep_chains_on_the_command_line(depth, tmp_path, monkeypatch):
    tree_file, data_file = tmp_path / "deep.tree", tmp_path / "orders.csv"
    tree_file.write_text(_chain(depth), "utf-8")
    data_file.write_text("d,region,amount\n2026-01-05,North,1\n2026-02-05,South,2\n2026-02-09,North,4\n",
                         "utf-8")
    data = ["--data", f"orders={data_file}"]
    # Graphviz takes minutes over a chain thousands deep; the report's own layered layout is what is tested.
    monkeypatch.setenv("PATH", str(tmp_path))
    for args in (["explain", "--metric", "m0"], ["explain", "--metric", "m0", "--format", "markdown"],
                 ["explain", "--metric", "m0", "--format", "json"], ["status"],
                 ["whatif", "--set", "revenue=+10%"], ["report", "--metric", "m0", "-o", str(tmp_path / "r.html")]):
        result = _runner().invoke(main, [args[0], str(tree_file), *data, *args[1:]])
        assert result.exit_code == 0, (args, result.output, result.stderr)
        assert "Traceback" not in result.stderr
    assert "m999" in (tmp_path / "r.html").read_text("utf-8")


def test_a_chain_deeper_than_explain_follows_compiles_and_is_refused_clearly():
    from metrictree.stack import MAX_DEPTH

    tree = metrictree.loads(_chain(MAX_DEPTH))  # m0 … m9999, then revenue: 10,001 metrics deep
    assert tree.evaluate(DATA, metrics=["m0"]).column("m0").to_pylist() == [MAX_DEPTH * 1.0, MAX_DEPTH * 6.0]
    with pytest.raises(UsageError, match=f"chain of {MAX_DEPTH + 1} metrics; explain follows at most") as info:
        tree.explain(DATA, "m0", "2026-01", "2026-02")
    _located(info.value, 3)
    assert tree.explain(DATA, f"m{MAX_DEPTH - 10}", "2026-01", "2026-02").change == pytest.approx(50.0)


# --------------------------------------------------------------------------- 3, 4, 12: numbers and formats


@pytest.mark.parametrize("text, line", [
    (SOURCE + "metric x = revenue * " + "9" * 4400 + "\n", 3),
    (SOURCE + "param p = " + "9" * 4400 + "\nmetric x = revenue * p\n", 3),
    (SOURCE + "metric x = revenue[-" + "9" * 4400 + "]\n", 3),
    (SOURCE + "target revenue >= 5 by 2026-12 checkpoints { 2026-06: " + "9" * 4400 + " }\n", 3),
    (SOURCE + "metric x = revenue * 1e400\n", 3),
    (SOURCE + "metric x = revenue * 9223372036854775808\n", 3),
])
def test_huge_numbers_are_a_located_error(text, line):
    with pytest.raises(TreeSyntaxError, match="does not fit in 64 bits|too large for a float") as info:
        metrictree.loads(text)
    _located(info.value, line)
    assert len(str(info.value)) < 800


def test_the_largest_whole_number_is_exact():
    tree = metrictree.loads(SOURCE + "metric x = 9223372036854775807 + revenue * 0\n")
    assert tree.metrics["x"].formula.left.value == 2**63 - 1


@pytest.mark.parametrize("spec", ["999999999999", "1000", ".5000f", "0>99999"])
def test_huge_format_widths_are_a_located_error(spec):
    with pytest.raises(CompileError, match="is not a number format") as info:
        metrictree.loads(SOURCE + f'metric x = revenue {{ format "{spec}" }}\n')
    _located(info.value, 3)


def test_round_with_constant_arguments():
    tree = metrictree.loads(SOURCE + "metric x = round(3.14159, 2) + revenue * 0\n")
    assert tree.evaluate(DATA).column("x").to_pylist() == [3.14, 3.14]
    with pytest.raises(DataError) as info:
        metrictree.loads(SOURCE + "metric x = round(revenue, revenue)\n").evaluate(DATA)
    assert "pyarrow" not in str(info.value) and "one number of digits" in str(info.value)


# --------------------------------------------------------------------------- 6, 13: integer sums never wrap


TREE_INT = "source orders { time d dimensions region }\nmetric revenue = sum(orders.amount)\n" \
           "metric n = count(orders)\nmetric aov = revenue / n\nmetric doubled = revenue * 2 - revenue\n"


@pytest.mark.parametrize("values", [[2**62, 2**62], [2**63 - 1, 2**63 - 1], [-(2**63), -(2**63)], [5, 7]])
@pytest.mark.parametrize("kind", ["table", "parquet", "csv"])
def test_integer_sums_are_widened_not_wrapped(tmp_path, values, kind):
    table = pa.table({"d": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)], "region": ["a", "a"],
                      "amount": pa.array(values, pa.int64())})
    given = {"table": table, "parquet": tmp_path / "o.parquet", "csv": tmp_path / "o.csv"}[kind]
    pq.write_table(table, tmp_path / "o.parquet")
    pacsv.write_csv(table, tmp_path / "o.csv")
    tree = metrictree.loads(TREE_INT)
    for by in ((), ("region",)):
        row = tree.evaluate({"orders": given}, by=by).to_pylist()[0]
        exact = sum(values)
        assert row["revenue"] == exact if abs(exact) < 2**63 else math.isclose(row["revenue"], exact, rel_tol=1e-15)
        assert math.isclose(row["aov"], exact / 2, rel_tol=1e-15)
        assert math.isclose(row["doubled"], exact, rel_tol=1e-15)
    assert tree.explain({"orders": given}, "aov", "2026-01", "2026-01").change == 0


# --------------------------------------------------------------------------- 7: encodings


def test_a_cp1251_csv_is_a_clear_error_naming_the_file(tmp_path):
    data = tmp_path / "orders.csv"
    data.write_bytes("d,region,amount\n2026-01-01,Москва,10\n2026-02-01,Казань,20\n".encode("cp1251"))
    tree_file = tmp_path / "shop.tree"
    tree_file.write_text(SOURCE.replace("metric revenue =", "metric revenue =") +
                         "metric top = revenue { level strategic }\n", "utf-8")
    for args in (["eval", "--by", "region"], ["explain", "--metric", "top"]):
        result = _runner().invoke(main, [args[0], str(tree_file), "--data", f"orders={data}", *args[1:]])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.stderr
        assert "orders.csv is not UTF-8 text" in result.stderr and "'region'" in result.stderr
        assert "encoding" in result.stderr


# --------------------------------------------------------------------------- 11: polars, pandas, DuckDB


def _inputs(kind: str) -> dict:
    data = sample_data()
    if kind == "pandas":
        pytest.importorskip("pandas")
        return {k: v.to_pandas() for k, v in data.items()}
    if kind == "polars":
        pl = pytest.importorskip("polars")
        return {k: pl.from_arrow(v) for k, v in data.items()}
    if kind == "polars lazy":
        pl = pytest.importorskip("polars")
        return {k: pl.from_arrow(v).lazy() for k, v in data.items()}
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    out = {}
    for name, table in data.items():
        con.register(f"t_{name}", table)
        out[name] = con.sql(f"select * from t_{name}")
    return out


@pytest.mark.parametrize("kind", ["pandas", "polars", "polars lazy", "duckdb"])
@pytest.mark.parametrize("tree_file", sorted((ROOT / "trees").glob("*.tree")), ids=lambda p: p.stem)
def test_every_bundled_tree_on_dataframe_input(kind, tree_file):
    tree = metrictree.load(tree_file)
    inputs, arrow = _inputs(kind), sample_data()
    by = [tree.dimensions[0]] if tree.dimensions else []
    expected = tree.evaluate(arrow, by=by)
    got = tree.evaluate(inputs, by=by)
    assert got.column_names == expected.column_names
    for name in expected.column_names:
        assert got.column(name).to_pylist() == pytest.approx(expected.column(name).to_pylist(), nan_ok=True) \
            if name not in ("period", *by) else got.column(name).to_pylist() == expected.column(name).to_pylist()
    top = next(m for m in tree.roots() if tree.metrics[m].kind != "group")
    assert tree.explain(inputs, top).change == pytest.approx(tree.explain(arrow, top).change)


def test_a_polars_query_that_fails_is_a_data_error_for_its_source():
    pl = pytest.importorskip("polars")
    tree = metrictree.load(ROOT / "trees" / "crm_ltv.tree")
    data = sample_data()
    broken = pl.from_arrow(data["orders"]).lazy().select(pl.col("no_such_column"))
    with pytest.raises(DataError) as caught:
        tree.evaluate({**data, "orders": broken})
    message = str(caught.value)
    assert "cannot read the data for source 'orders': the polars LazyFrame failed" in message
    assert "no_such_column" in message and "Traceback" not in message


# --------------------------------------------------------------------------- 15: rows with no time


def test_rows_with_a_null_time_are_counted_and_reported(tmp_path):
    table = pa.table({"d": [dt.date(2026, 1, 5), None, dt.date(2026, 1, 9)], "region": ["a", "a", "b"],
                      "amount": [200.0, 100.5, 0.0]})
    tree = metrictree.loads(SOURCE)
    evaluation = tree.evaluation({"orders": table})
    assert evaluation.table.column("revenue").to_pylist() == [200.0]
    assert evaluation.warnings == ("source 'orders': 1 row(s) have no d (null), so they belong to no period and "
                                   "no metric counts them",)
    pq.write_table(table, tmp_path / "o.parquet")
    tree_file = tmp_path / "t.tree"
    tree_file.write_text(SOURCE, "utf-8")
    for fmt in ("table", "json"):
        result = _runner().invoke(main, ["eval", str(tree_file), "--data", f"orders={tmp_path / 'o.parquet'}",
                                         "--format", fmt])
        assert result.exit_code == 0 and "1 row(s) have no d" in result.stderr


# --------------------------------------------------------------------------- 17: mixed folders


def test_a_folder_of_mixed_formats_is_refused_clearly(tmp_path):
    folder = tmp_path / "orders"
    folder.mkdir()
    pq.write_table(DATA["orders"], folder / "a.parquet")
    pacsv.write_csv(DATA["orders"], folder / "b.csv")
    (folder / "notes.md").write_text("hello", "utf-8")
    tree = metrictree.loads(SOURCE)
    with pytest.raises(DataError, match="mixes files of several formats") as info:
        tree.evaluate({"orders": folder})
    assert "a.parquet" in str(info.value) and "b.csv" in str(info.value) and "notes.md" in str(info.value)
    (folder / "b.csv").unlink()
    (folder / "notes.md").rename(folder / "_notes.md")  # names Arrow skips are not data
    assert tree.evaluate({"orders": folder}).column("revenue").to_pylist() == [1.0, 6.0]
