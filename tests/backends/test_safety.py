"""No SQL can be injected from a tree file, a binding or the data: every identifier and value is quoted.

Run on DuckDB and on PostgreSQL (when a server is given): hostile column names (SQL keywords,
Unicode, quotes and semicolons built through the Python API), hostile text in ``where`` filters
and in the data, and hostile table names in bindings. After each run the tables are all still
there and the results equal the Arrow backend's.
"""

from __future__ import annotations

import attrs
import metrictree
import pyarrow as pa
import pytest
from backend_support import TREES, same_values
from metrictree import syntax as s
from metrictree.errors import DataError
from sqlglot import exp

HOSTILE = ["paid'; DROP TABLE orders; --", 'quote " and \' both', "/* comment */ paid", "line\nbreak;",
           "Ünïcödé ✓ 😀", "\\'; SELECT 1; --", "paid"]

TREE = """
tree hostile "Labels '; DROP TABLE orders; -- \\" /* ✓ */"
grain month
source orders { time "when"  dimensions "select", région  entity "from" }
"""


def _tables():
    n = len(HOSTILE)
    return {"orders": pa.table({
        "when": pa.array([f"2026-0{1 + i % 3}-1{i % 9}" for i in range(n * 3)]).cast(pa.date32()),
        "select": [HOSTILE[i % n] for i in range(n * 3)],
        "région": [HOSTILE[(i + 2) % n] for i in range(n * 3)],
        "from": [HOSTILE[(i + 4) % n] for i in range(n * 3)],
        "order": [float(i) for i in range(n * 3)],
    })}


def _tree(tmp_path, literal: str):
    escaped = literal.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    text = (f'tree hostile "Labels \'; DROP TABLE orders; -- \\" /* ✓ */"\ngrain month\n'
            "source orders { time when  dimensions select, région  entity from }\n"
            f'metric total = sum(orders.order) where orders.select == "{escaped}" {{ label "x\'; DROP TABLE orders; --" }}\n'
            f'metric kinds = count_distinct(orders.région) where orders.région != "{escaped}"\n'
            f'metric listed = count(orders) where orders.from in ["{escaped}", "paid"]\n'
            "metric new = new_customers(orders)\n"
            "metric share = total / kinds\n")
    path = tmp_path / "hostile.tree"
    path.write_text(text, "utf-8")
    return metrictree.load(path)


@pytest.mark.parametrize("literal", HOSTILE)
def test_hostile_values_and_keyword_columns(literal, load, tmp_path):
    tables = _tables()
    bound, engine = load(tables)
    tree = _tree(tmp_path, literal)
    for by in ([], ["select"], ["select", "région"]):
        assert same_values(tree.evaluate(tables, by=by), tree.evaluate(bound, by=by)) == []
    # The table is still there, whole.
    count = exp.select(exp.Count(this=exp.Star())).from_(bound["orders"].relation)
    assert engine.run(bound["orders"], count).column(0)[0].as_py() == tables["orders"].num_rows


def test_hostile_column_names_from_the_python_api(load, tmp_path):
    """A column name no tree file could write (quotes, a semicolon, a comment) is still one quoted identifier."""
    name = 'amount"; DROP TABLE orders; --'
    tables = {"orders": pa.table({"when": pa.array([0, 31, 40], pa.date32()), name: [1.5, 2.0, 4.0]})}
    bound, _engine = load(tables)
    path = tmp_path / "t.tree"
    path.write_text("source orders { time when }\nmetric revenue = sum(orders.amount)\n", "utf-8")
    tree = metrictree.load(path)
    metric = tree.metrics["revenue"]
    formula = s.Call("sum", (s.Column("orders", name, span=metric.formula.args[0].span),), span=metric.formula.span)
    hostile = attrs.evolve(tree, metrics={**tree.metrics, "revenue": attrs.evolve(metric, formula=formula)})
    assert same_values(hostile.evaluate(tables), hostile.evaluate(bound)) == []
    assert hostile.evaluate(bound).column("revenue").to_pylist() == [1.5, 6.0]


def test_hostile_table_names_in_bindings(load, sample):
    bound, engine = load({"orders": sample["orders"]})
    tree = metrictree.load(TREES / "crm_ltv.tree")
    with pytest.raises(DataError):  # when the binding is made (ibis looks the table up) or evaluated
        sneaky = engine.table('orders"; DROP TABLE orders; --')
        tree.evaluate({**sample, "orders": sneaky}, metrics=["revenue"])
    assert tree.evaluate({**sample, "orders": bound["orders"]}, metrics=["revenue"]).num_rows > 0
