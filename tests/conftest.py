import os
from pathlib import Path

import pytest

# Tests see only the built-in plugins, whatever else is installed on the machine.
os.environ.setdefault("METRICTREE_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture(scope="module")
def sample_shop():
    """The bundled sample data, the bundled CRM tree, and its explanation for 2026-09 → 2026-10."""
    import metrictree
    from metrictree.sample import sample_data

    data = sample_data()
    tree = metrictree.load(Path(__file__).resolve().parents[1] / "trees" / "crm_ltv.tree")
    return data, tree, tree.explain(data, "ltv", "2026-09", "2026-10")


@pytest.fixture(scope="module")
def orders_with_nulls():
    """The sample shop's orders with nulls where they hurt: guests (no customer id, every 17th order) and
    orders of no known region (every 23rd)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from metrictree.sample import sample_data

    table = sample_data()["orders"]
    n = table.num_rows
    for column, every in (("customer_id", 17), ("region", 23)):
        hit = pa.array([i % every == 0 for i in range(n)])
        table = table.set_column(table.schema.get_field_index(column), column,
                                 pc.if_else(hit, pa.scalar(None, pa.string()), table.column(column)))
    return table


@pytest.fixture(scope="module")
def data(sample_shop):
    return sample_shop[0]


@pytest.fixture(scope="module")
def tree(sample_shop):
    return sample_shop[1]


@pytest.fixture(scope="module")
def explanation(sample_shop):
    return sample_shop[2]


@pytest.fixture
def piece_sizes(monkeypatch):
    """The number of rows of every piece `reading.scan` hands on, in order, for the test's evaluations."""
    from metrictree import reading

    sizes, real = [], reading.scan

    def scan(*args, **kwargs):
        for piece in real(*args, **kwargs):
            sizes.append(piece.table.num_rows)
            yield piece

    monkeypatch.setattr(reading, "scan", scan)
    return sizes
