"""Check a compiled tree against the data it will read, from the data's schemas alone.

`metrictree check TREE --data orders=FILE` runs this after compiling: every column the
tree's base metrics, dimensions, entities and time columns read must be in the data,
and a time column must hold dates or timestamps, or text with a ``format``. No row is
read (a CSV file's types are inferred from its first block), so a missing column is
found in a moment instead of at the end of a long evaluation. A column an imported
library reads under its own name (``import crm`` on data without ``amount``) comes with
the binding that maps it onto the data's own columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from .aggregating import needs
from .errors import DataError, Diagnostic, error
from .functions import Registry
from .model import Metric, Source, Tree
from .reading import as_arrow, missing_column_hint, time_format_hint, time_values


def check_data(tree: Tree, data: Mapping[str, Any], registry: Registry | None = None) -> list[Diagnostic]:
    """Every mismatch between the tree and the schemas of ``data`` (source name → anything `evaluate` takes)."""
    from .pluginmanager import registry as default_registry

    registry = registry or default_registry()
    problems: list[Diagnostic] = []
    by_source: dict[str, list[Metric]] = {}
    for metric in tree.metrics.values():
        if metric.kind == "base" and metric.source is not None:
            by_source.setdefault(metric.source, []).append(metric)
    for name, metrics in by_source.items():
        source = tree.sources[name]
        if name not in data:
            problems.append(error(f"no data for source '{name}'", source.span,
                                  f"pass it with --data {name}=PATH", "no-data"))
            continue
        try:
            arrow = as_arrow(data[name], source, [])
        except DataError as exc:
            problems.extend(exc.diagnostics)
            continue
        problems.extend(_source_problems(tree, source, metrics, arrow.schema, registry,
                                         lambda arrow=arrow, source=source: time_values(arrow, source.time)))
    return problems


def _source_problems(tree: Tree, source: Source, metrics: list[Metric], schema: pa.Schema,
                     registry: Registry, values_of_time=None) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    names = set(schema.names)
    reported: set[str] = set()
    for metric in metrics:
        try:
            wanted = needs(tree, [metric], registry, list(source.dimensions))
        except DataError as exc:
            problems.extend(d for d in exc.diagnostics if d.message not in {p.message for p in problems})
            continue
        for need in wanted:
            if need.column in names or need.column in reported:
                continue
            reported.add(need.column)
            hint = missing_column_hint(need.column, schema.names)
            library = metric.library if need.span is not None and need.span.file.startswith("<library ") else None
            if library is not None:
                hint += "; " + _binding_hint(library, source.name, need.column)
            problems.append(error(f"source '{source.name}' has no column '{need.column}' ({need.why})", need.span,
                                  hint, "missing-column"))
    if source.time in names:
        kind = schema.field(source.time).type
        text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind) or (
            pa.types.is_dictionary(kind) and pa.types.is_string(kind.value_type))
        timed = pa.types.is_temporal(kind) and not pa.types.is_time(kind) and not pa.types.is_duration(kind)
        if not timed and not (text and source.time_format):
            problems.append(error(
                f"the time column '{source.time}' of source '{source.name}' holds {kind}, not dates or timestamps",
                source.span, time_format_hint(source, values_of_time() if values_of_time else None) if text else
                "store it as a date or timestamp", "time-type"))
    return problems


def _binding_hint(library: str, source: str, column: str) -> str:
    return (f"{library} reads {source}.{column} under its own name: bind it to a column of yours in the import, "
            f"e.g. import {library} (…) with {source} {{ {column} = {source}.<column>, … }}")


def with_binding_hint(exc: DataError, source: Source, wanted: list) -> DataError:
    """A missing-column error for a column a library reads under its own name, with the binding to write."""
    diagnostics = []
    for d in exc.diagnostics:
        need = next((n for n in wanted if d.span is not None and n.span == d.span and n.span.file == d.span.file),
                    None)
        if d.code == "missing-column" and need is not None and need.span.file.startswith("<library "):
            library = need.span.file[len("<library "):-1]
            hint = f"{d.hint}; {_binding_hint(library, source.name, need.column)}"
            d = Diagnostic(d.severity, d.message, d.span, hint, d.code)
        diagnostics.append(d)
    return DataError(diagnostics)
