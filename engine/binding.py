"""Bind an imported library to the tree's data: its sources and columns become the tree's.

``import crm (ltv) with orders = invoices { amount = invoices.Quantity * invoices.UnitPrice, … }``
rewrites every formula and filter of the library before the compiler sees it: the
library's ``orders.amount`` becomes ``invoices.Quantity * invoices.UnitPrice``, its
``count(orders)`` becomes ``count(invoices)``. A column the binding does not give is
kept as an *unbound* read; the compiler reports it only for the metrics the tree
really imports (`unbound_needs`). A filter a binding makes constant (``status = "paid"``
turns ``orders.status == "paid"`` into ``"paid" == "paid"``) is folded away here, so
that no row-level work is left for it.

Without ``with`` a library reads the tree's sources of the same names, and their
columns under the library's names, as before.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from . import syntax as s
from .errors import Diagnostic, did_you_mean, error
from .functions import Registry


@attrs.frozen
class Unbound:
    """A column a library reads that its binding does not give.

    Attributes:
        library: the library.
        binding: the binding of the column's source.
        column: the library's column name.
    """

    library: str
    binding: s.SourceBinding
    column: str

    @property
    def read(self) -> str:
        return f"{self.binding.library_source}.{self.column}"

    def hint(self, entity: str | None = None) -> str:
        b = self.binding
        written = b.library_source if b.source == b.library_source else f"{b.library_source} = {b.source}"
        example = entity if entity and self.column.endswith("_id") else "<column>"
        return f"add `{self.column} = {b.source}.{example}` inside `with {written} {{ … }}`"


def reads(module: s.Module) -> dict[str, set[str]]:
    """The sources a library's metrics read, each with the columns read (``count(orders)`` reads none)."""
    defined = {st.name for st in module.statements if isinstance(st, s.MetricDef | s.ParamDef)}
    found: dict[str, set[str]] = {}
    for st in module.statements:
        if not isinstance(st, s.MetricDef):
            continue
        for expr in (st.formula, st.where):
            for node in s.walk(expr) if expr is not None else ():
                if isinstance(node, s.Column):
                    found.setdefault(node.source, set()).add(node.column)
                elif isinstance(node, s.Call):
                    for arg in node.args:
                        if isinstance(arg, s.Name) and arg.name not in defined:
                            found.setdefault(arg.name, set())
    return found


def check_names(statement: s.ImportStmt, libraries: dict[str, dict[str, set[str]]],
                problems: list[Diagnostic]) -> None:
    """Every bound source and column is one the statement's libraries read (with a did-you-mean)."""
    names = ", ".join(libraries) or "the library"
    for binding in statement.bindings:
        read = [lib[binding.library_source] for lib in libraries.values() if binding.library_source in lib]
        if not read:
            pool = {src for lib in libraries.values() for src in lib}
            problems.append(error(f"{names} reads no source '{binding.library_source}'", binding.span,
                                  did_you_mean(binding.library_source, pool) or
                                  f"its sources: {', '.join(sorted(pool)) or 'none'}", "unknown-name"))
            continue
        columns = set().union(*read)
        for column in binding.columns:
            if column.column not in columns:
                problems.append(error(
                    f"{names} reads no column '{column.column}' of {binding.library_source}", column.span,
                    did_you_mean(column.column, columns) or
                    f"its columns of {binding.library_source}: {', '.join(sorted(columns)) or 'none'}",
                    "unknown-name"))


def check_sources(statement: s.ImportStmt, sources: Iterable[str], problems: list[Diagnostic]) -> None:
    """Each binding names a source of the tree, and its expressions read that source only."""
    sources = set(sources)
    for binding in statement.bindings:
        if binding.source not in sources:
            problems.append(error(f"unknown source '{binding.source}'", binding.source_span,
                                  did_you_mean(binding.source, sources) or
                                  f"declare it with `source {binding.source} {{ time … }}`", "unknown-name"))
            continue
        for column in binding.columns:
            for node in s.walk(column.expr):
                if isinstance(node, s.Column) and node.source != binding.source:
                    problems.append(error(
                        f"the binding of {binding.library_source}.{column.column} reads {node.to_source()}, "
                        f"a column of another source than {binding.source}", node.span,
                        f"bind it to columns of {binding.source}, e.g. {binding.source}.{node.column}",
                        "other-source"))


def bind(module: s.Module, library: str, bindings: tuple[s.SourceBinding, ...], registry: Registry,
         problems: list[Diagnostic]) -> tuple[list[s.Statement], dict[int, Unbound]]:
    """The library's statements with ``bindings`` applied, and its unbound reads by id of their node."""
    if not bindings:
        return list(module.statements), {}
    by_source = {b.library_source: b for b in bindings}
    unbound: dict[int, Unbound] = {}

    def substitute(node: s.Expr) -> s.Expr:
        match node:
            case s.Column(source=src, column=col) if src in by_source:
                binding = by_source[src]
                given = next((c.expr for c in binding.columns if c.column == col), None)
                if given is not None:
                    return given
                placeholder = s.Column(binding.source, col, span=node.span)
                unbound[id(placeholder)] = Unbound(library, binding, col)
                return placeholder
            case s.Name(name=src) if src in by_source:
                return s.Name(by_source[src].source, span=node.span)
            case s.Call(args=args, kwargs=kwargs):
                return attrs.evolve(node, args=tuple(substitute(a) for a in args),
                                    kwargs=tuple((k, substitute(v)) for k, v in kwargs))
            case s.Unary(operand=x):
                return attrs.evolve(node, operand=substitute(x))
            case s.Binary(left=a, right=b):
                return attrs.evolve(node, left=substitute(a), right=substitute(b))
            case s.InList(operand=x, items=items):
                return attrs.evolve(node, operand=substitute(x), items=tuple(substitute(i) for i in items))
            case s.IsNull(operand=x):
                return attrs.evolve(node, operand=substitute(x))
        return node

    out: list[s.Statement] = []
    for st in module.statements:
        if isinstance(st, s.MetricDef) and st.formula is not None:
            where = substitute(st.where) if st.where is not None else None
            if where is not None and _constant(where):
                if not _fold(where, registry):
                    binding = next((b for b in bindings if _reads(st.where, b.library_source)), bindings[0])
                    problems.append(error(
                        f"with this binding the filter of {library}'s '{st.name}' ({st.where.to_source()}) "
                        f"keeps no row", binding.span,
                        "bind the filter's column to an expression over the source's columns, or to the value "
                        "the filter keeps", "binding"))
                where = None
            st = attrs.evolve(st, formula=substitute(st.formula), where=where)
        out.append(st)
    return out, unbound


def _reads(expr: s.Expr, source: str) -> bool:
    return any(isinstance(n, s.Column) and n.source == source for n in s.walk(expr))


def _constant(expr: s.Expr) -> bool:
    """Whether an expression reads no column, name or function: its value is known now."""
    return all(isinstance(n, s.Literal | s.Unary | s.Binary | s.InList | s.IsNull) for n in s.walk(expr))


def _fold(expr: s.Expr, registry: Registry) -> bool:
    """The value of a constant filter: true keeps every row."""
    from .formulas import Scope, evaluate

    def no_name(node):  # pragma: no cover - `_constant` admits no names
        raise AssertionError(node)

    value = evaluate(expr, Scope(name=no_name, scalars=registry.scalars, length=1))
    value = value.as_py() if hasattr(value, "as_py") else value[0].as_py()
    return value is True


def unbound_reads(statements: Iterable[s.Expr | None], unbound: dict[int, Unbound]) -> list[Unbound]:
    """The unbound columns the given formulas and filters read."""
    found: dict[tuple[str, str], Unbound] = {}
    for expr in statements:
        for node in s.walk(expr) if expr is not None else ():
            record = unbound.get(id(node))
            if record is not None:
                found.setdefault((record.read, record.library), record)
    return list(found.values())
