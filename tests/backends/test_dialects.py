"""Every bundled tree's SQL in the dialects metrictree does not run (Snowflake, BigQuery, Trino, ClickHouse),
kept under snapshot tests: a change in the generated SQL shows up as a diff to review.

Refresh the snapshots after an intended change with ``METRICTREE_UPDATE_SNAPSHOTS=1 python -m pytest
tests/backends/test_dialects.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import metrictree
import pytest
import sqlglot
from backend_support import BUNDLED, TREES
from metrictree.backends.dialects import sql_for

SNAPSHOTS = Path(__file__).parent / "snapshots"
DIALECTS = ["snowflake", "bigquery", "trino", "clickhouse"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_tree_sql(name, dialect, sample):
    tree = metrictree.load(TREES / f"{name}.tree")
    schemas = {source: table.schema for source, table in sample.items()}
    queries = sql_for(tree, schemas, dialect, by=list(tree.dimensions[:1]))
    text = "\n\n".join(f"-- source {source}, query {i + 1}\n{q};" for source, qs in queries.items()
                       for i, q in enumerate(qs)) + "\n"
    for qs in queries.values():
        for q in qs:
            sqlglot.parse_one(q, read=dialect)  # what is generated parses back in its dialect
    path = SNAPSHOTS / f"{name}.{dialect}.sql"
    if os.environ.get("METRICTREE_UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(text, "utf-8")
    assert path.read_text("utf-8") == text
