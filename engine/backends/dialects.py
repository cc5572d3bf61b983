"""The SQL a tree's base metrics compile to, for any sqlglot dialect — also engines metrictree does not run.

``sql_for(tree, schemas, "snowflake")`` gives, per source, the queries a SQL backend would run
(the grouped partials, then one per custom partial), so the same tree can be checked against
Snowflake, BigQuery, Trino or ClickHouse, or its SQL reviewed. The queries read the source's
table by its own name.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from .. import aggregating, periods
from ..evaluating import normalise_by, resolve_params
from ..model import Tree
from ..pluginmanager import registry as default_registry
from . import sqlplan
from .forms import forms
from .sql import qualified

DIALECTS = ("duckdb", "postgres", "snowflake", "bigquery", "trino", "clickhouse", "spark")


def sql_for(tree: Tree, schemas: Mapping[str, pa.Schema], dialect: str, grain: str | None = None,
            by: list[str] | str = ()) -> dict[str, list[str]]:
    """Per source the tree reads, the SQL of its queries in ``dialect``; ``schemas`` gives each source's columns."""
    registry = default_registry()
    grain = periods.check_grain(grain or tree.grain)
    by = normalise_by(tree, by)
    params = resolve_params(tree, None)
    by_source: dict[str, list] = {}
    for name in tree.requirements([m.name for m in tree.metrics.values() if m.kind != "group"]):
        metric = tree.metrics[name]
        if metric.kind == "base":
            by_source.setdefault(metric.source, []).append(metric)
    out = {}
    for source_name, metrics in by_source.items():
        source = tree.sources[source_name]
        aggregating.needs(tree, metrics, registry, by)  # the same checks as an evaluation
        plan = sqlplan.plan(tree, source, metrics, grain, by, params, registry, forms(), qualified(source_name),
                            schemas[source_name], dialect, dialect)
        out[source_name] = [q.sql(dialect=dialect, identify=True, pretty=True) for q in plan.queries()]
    return out
