"""An evaluation for programs: JSON and CSV (what ``metrictree eval --format json|csv`` writes).

Kept apart from `metrictree.rendering`, which draws rich renderables for people: writing JSON or CSV
needs neither rich nor the renderers, so those commands do not import them.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

from . import lazy

if TYPE_CHECKING:
    from .evaluating import Evaluation
    from .model import Tree

pa = lazy.module("pyarrow")
pc = lazy.module("pyarrow.compute")


def finite(table: pa.Table) -> pa.Table:
    """NaN and ±inf as null (the engine never returns them; this keeps JSON valid if one ever slips through)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_floating(field.type):
            column = table.column(i)
            bad = pc.or_(pc.is_nan(column), pc.is_inf(column))
            table = table.set_column(i, field, pc.if_else(bad, pa.scalar(None, field.type), column))
    return table


def evaluation_json(evaluation: Evaluation, tree: Tree) -> str:
    """The evaluation as a JSON document: one object per period × slice; nulls are JSON null.

    ``{"tree", "grain", "by", "columns", "rows": [{column: value}], "nulls": [{metric, reason, rows, first, at}]}``,
    with ``"left_out": [{metric, rows, reason, at}]`` when a metric's function left rows out (no amount, no
    customer, a value its filter misses by case alone) and ``"warnings"`` when there is something else to say.
    """
    table = finite(evaluation.table)
    document = {
        "tree": tree.name,
        "grain": evaluation.grain,
        "by": list(evaluation.by),
        "columns": table.column_names,
        "rows": table.to_pylist(),
        "nulls": [reason.to_dict() for reason in evaluation.nulls],
    }
    if evaluation.skipped:
        document["left_out"] = [skip.to_dict() for skip in evaluation.skipped]
    if evaluation.warnings:
        document["warnings"] = list(evaluation.warnings)
    return json.dumps(document, ensure_ascii=False, indent=2, allow_nan=False)


def evaluation_csv(table: pa.Table) -> bytes:
    """The result table as CSV (UTF-8, a header line, nulls as empty fields).

    Text cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or carriage
    return) get a leading ``'``; numbers are written as they are (see `metrictree.escaping`).
    """
    sink = io.BytesIO()
    import pyarrow.csv as pacsv

    pacsv.write_csv(_neutralise_formulas(finite(table.replace_schema_metadata(None))), sink)
    return sink.getvalue()


def _neutralise_formulas(table: pa.Table) -> pa.Table:
    for i, field in enumerate(table.schema):
        column = table.column(i)
        if pa.types.is_dictionary(field.type):
            column = column.cast(field.type.value_type)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
                or pa.types.is_string_view(column.type)):
            continue
        column = column.cast(pa.string())
        risky = pc.fill_null(pc.match_substring_regex(column, r"^[=+\-@\t\r]"), False)
        if pc.any(risky).as_py():
            quoted = pc.binary_join_element_wise(pa.scalar("'"), column, pa.scalar(""))
            table = table.set_column(i, field.name, pc.if_else(risky, quoted, column))
    return table
