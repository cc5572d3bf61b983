"""What an aggregate is in SQL: the ``SqlForm`` a plugin registers beside its `Aggregate`.

An `Aggregate` plans `Partial` columns over Arrow arrays; its SQL form plans the *same*
partials, in the same order, as SQL expressions built with sqlglot's expression builder,
so that the aggregate's ``finish`` runs unchanged on what the engine sends back::

    nps(surveys.score)  →  SUM(score >= 9), SUM(score <= 6), COUNT(score)

A partial with ``how="custom"`` gives a ``query(rows)`` instead of a value: a SELECT over
the kept rows (``rows.table``, with ``__period``, the slice ``keys``, ``__value`` and
``__time``) returning one row per group with the ``keys`` and ``__value`` — the SQL twin
of the Arrow partial's ``reduce(rows, keys)``.

Plugins register their forms through the ``metrictree_sql_forms`` hook, exactly like their
functions; an aggregate without a SQL form cannot run on a SQL backend, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
from sqlglot import exp

from ..functions import How


@attrs.frozen
class SqlContext:
    """What a SQL form's planner may use besides its arguments (the twin of `AggregateContext`).

    Attributes:
        source: the source name.
        grain: the time grain of the evaluation.
        dialect: the sqlglot dialect the query is generated for (``duckdb``, ``postgres`` …).
        period: the row-level expression of the period index (an integer, consecutive periods differ by 1).
        time: the source's time column.
        entity: the source's entity column, when the aggregate reads it.
        period_of: ``period_of(time_expression)``: the period index of another time expression.
        time_is_timestamp: whether the time column holds timestamps (else dates).
    """

    source: str
    grain: str
    dialect: str
    period: exp.Expression
    time: exp.Expression
    entity: exp.Expression | None
    period_of: Callable[[exp.Expression], exp.Expression]
    time_is_timestamp: bool = True


@attrs.frozen
class SqlRows:
    """The rows a custom partial reduces, as a table of the query being built.

    Attributes:
        table: the name of the table of kept rows (columns ``__period``, the ``keys``, ``__value``, ``__time``).
        keys: the group key columns: ``__period`` first, then the slice dimensions.
        context: the `SqlContext` of the call.
    """

    table: str
    keys: tuple[str, ...]
    context: SqlContext

    def column(self, name: str, table: str | None = None) -> exp.Column:
        return exp.column(name, table=table, quoted=True)

    def same_keys(self, left: str, right: str, keys: Sequence[str] | None = None) -> exp.Expression:
        """``left.k = right.k`` for every key, matching null slices too (as the Arrow reductions do)."""
        keys = self.keys if keys is None else keys
        tests = [exp.NullSafeEQ(this=self.column(k, left), expression=self.column(k, right)) for k in keys]
        return exp.and_(*tests) if tests else exp.true()


@attrs.frozen
class SqlPartial:
    """One partial column in SQL, the twin of `metrictree.functions.Partial`.

    Attributes:
        value: the row-level expression (``None`` with ``how="count_all"``: count rows).
        how: the grouped reduction, as in `Partial`; ``"custom"`` uses ``query``.
        empty: the value for a group with no rows.
        query: for ``how="custom"``: ``query(rows: SqlRows) -> exp.Select``.
    """

    value: exp.Expression | None
    how: How
    empty: Any = None
    query: Callable[[SqlRows], exp.Select] | None = None


@attrs.frozen
class SqlForm:
    """The SQL form of the aggregate function ``name``.

    Attributes:
        name: the aggregate's name in tree files (``nps``).
        plan: ``plan(ctx: SqlContext, *args, **kwargs) -> [SqlPartial, …]``: the same partials, in the
            same order, as the aggregate's Arrow ``plan``. ``args`` are sqlglot expressions, or
            `metrictree.functions.ROWS` for the source itself; ``kwargs`` are Python values.
    """

    name: str
    plan: Callable[..., Sequence[SqlPartial]]


def forms() -> dict[str, SqlForm]:
    """The SQL forms every registered plugin provides, by aggregate name."""
    from ..errors import PluginError, error
    from ..pluginmanager import plugin_manager

    pm = plugin_manager()
    key = tuple(sorted(id(p) for p in pm.get_plugins()))
    if _cache and _cache[0] == key:
        return _cache[1]
    found: dict[str, SqlForm] = {}
    owners: dict[str, str] = {}
    for impl in pm.hook.metrictree_sql_forms.get_hookimpls():
        owner = impl.plugin_name

        def register(form, _owner=owner) -> None:
            if not isinstance(form, SqlForm):
                raise PluginError(error(f"plugin '{_owner}' registered {form!r}, which is not a SqlForm",
                                        hint="register metrictree.backends.SqlForm objects", code="plugin"))
            if form.name in found:
                raise PluginError(error(f"the SQL form of '{form.name}' is defined by two plugins: "
                                        f"'{owners[form.name]}' and '{_owner}'",
                                        hint="uninstall or disable one of them", code="plugin-clash"))
            found[form.name] = form
            owners[form.name] = _owner

        impl.function(register=register)
    for form in _engine_forms():
        found.setdefault(form.name, form)
    _cache[:] = [key, found]
    return found


_cache: list = []


# --------------------------------------------------------------------------- building blocks for SQL forms


def col(name: str, table: str | None = None) -> exp.Column:
    """A quoted column reference."""
    return exp.column(name, table=table, quoted=True)


def table(name: str, alias: str | None = None) -> exp.Table:
    """A quoted table (or common table) reference."""
    ref = exp.Table(this=exp.to_identifier(name, quoted=True))
    if alias is not None:
        ref.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
    return ref


def count_rows() -> exp.Expression:
    return exp.Count(this=exp.Star())


def window(function: exp.Expression, partition: list[exp.Expression], order: exp.Expression,
           running: bool = False) -> exp.Window:
    """``function OVER (PARTITION BY … ORDER BY order NULLS LAST [ROWS UNBOUNDED PRECEDING … CURRENT ROW])``."""
    spec = exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW") if running \
        else None
    return exp.Window(this=function, partition_by=partition,
                      order=exp.Order(expressions=[exp.Ordered(this=order, nulls_first=False)]), spec=spec)


def with_tables(query: exp.Select, tables: list[tuple[str, exp.Select]]) -> exp.Select:
    """``query`` with common tables (names quoted)."""
    ctes = [exp.CTE(this=q, alias=exp.TableAlias(this=exp.to_identifier(n, quoted=True))) for n, q in tables]
    query.set("with_", exp.With(expressions=ctes))
    return query


def _engine_forms() -> tuple[SqlForm, ...]:
    """The SQL forms of the engine's own hidden aggregates (explain's shared distinct counts)."""

    def distinct_share(rows: SqlRows) -> exp.Select:
        """Each distinct value counts 1 per period, shared equally among the slices it appears in."""
        keys = [col(k) for k in rows.keys]
        pairs = exp.select(*keys, col("__value")).distinct().from_(table(rows.table)).where(
            exp.Not(this=exp.Is(this=col("__value"), expression=exp.null())))
        slices = exp.select(col("__period"), col("__value"), count_rows().as_("__n", quoted=True)).from_(
            table("__pairs")).group_by(col("__period"), col("__value"))
        weight = exp.Div(this=exp.cast(exp.Literal.number(1), exp.DataType.build("double")),
                         expression=col("__n", "s"))
        on = exp.and_(exp.EQ(this=col("__period", "p"), expression=col("__period", "s")),
                      exp.EQ(this=col("__value", "p"), expression=col("__value", "s")))
        shared = exp.select(*(col(k, "p").as_(k, quoted=True) for k in rows.keys),
                            exp.Sum(this=weight).as_("__value", quoted=True)).from_(table("__pairs", "p")).join(
            table("__slices", "s"), on=on).group_by(*(col(k, "p") for k in rows.keys))
        return with_tables(shared, [("__pairs", pairs), ("__slices", slices)])

    return (SqlForm("__distinct_share", lambda ctx, values: [SqlPartial(values, "custom", 0.0,
                                                                          query=distinct_share)]),)
