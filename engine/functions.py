"""What a DSL function is, and the registry plugins fill.

Two kinds of function exist, because they run at two different places of the flow:

* `Aggregate` — over raw rows of one source, per (period, slice). An aggregate does
  not compute its result itself: it *plans* a few `Partial` columns (a sum, a count,
  a distinct count …) that the evaluator computes for every base metric of a source
  in one grouped pass, and then *finishes* them into the metric's values on the small
  aggregate table. That is what keeps a plugin's aggregation (``nps(score)``) as fast
  as a built-in one.
* `Scalar` — over metric columns of the small aggregate table (``log(x)``,
  ``if(c, a, b)``). A ``window`` scalar also gets the `Frame`, to look at earlier
  periods of the same slice (``change(m)``, ``rolling_avg(m, 3)``).

Undefined results are null with a reason: a function returns `Computed` with a mask
and a sentence for each kind of undefined value, never inf or a silent 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from .errors import PluginError, error

if TYPE_CHECKING:
    import pyarrow as pa

    Values = pa.Array | pa.ChunkedArray


def __getattr__(name: str):
    # ``Values`` at run time, without importing pyarrow when this module is imported (`metrictree check`
    # compiles trees with the registry and needs no Arrow).
    if name == "Values":
        import pyarrow as pa

        return pa.Array | pa.ChunkedArray
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@attrs.frozen
class Computed:
    """A function result with the reasons some values are null.

    Attributes:
        values: the result, one value per row.
        notes: ``(mask, reason)`` pairs; ``mask`` is true where the value is null for ``reason``.
    """

    values: Values
    notes: tuple[tuple[Values, str], ...] = ()


def as_computed(result: Values | Computed) -> Computed:
    return result if isinstance(result, Computed) else Computed(result)


# --------------------------------------------------------------------------- aggregates

How = Literal["sum", "count", "count_all", "min", "max", "mean", "count_distinct", "any", "all", "custom", "presence"]


@attrs.frozen
class Partial:
    """One per-group column an aggregate needs.

    Attributes:
        values: the row-level input (``None`` with ``how="count_all"``: count rows).
        how: the grouped reduction; ``"custom"`` hands the rows to ``reduce``.
        empty: the value for a (period, slice) with no rows: 0 for sums and counts, null otherwise.
        reduce: for ``how="custom"``: ``reduce(rows, keys) -> table``. ``rows`` has the group key columns
            ``keys`` (``__period`` first, then the slice dimensions), ``__value`` (``values``) and ``__time``,
            holding only the rows the metric's filter keeps; it returns one row per group it has a value for,
            with the ``keys`` columns and ``__value``. Groups may include periods with no rows of their own
            (customers who churned in a period where the slice had no orders).
            For ``how="presence"`` (``values`` is an entity column): ``reduce(presence) -> table`` gets the
            `metrictree.presence.Presence` of the kept rows and returns ``__slice``, ``__period`` (offsets, as in `Presence`) and
            ``__value``. Every presence partial over the same entity and filter shares one grouping of the
            rows, with the distinct counts of that column; rows whose entity is null are left out (and counted).
            The reduces over one presence may run at once on several threads (at most `pyarrow.cpu_count`),
            so a reduce reads its presence and returns a table, and changes nothing shared.
        extra: for ``how="presence"``: a row-level integer whose maximum over the rows of each (entity, slice,
            period) the presence carries as ``extra`` (e.g. how many periods after it a row keeps a customer
            active).
        reach: for ``how="presence"``: how many periods before its own a period's value reads (churned
            customers: 1, who was there the period before); ``None``, the default: any of them (a customer's
            first period). A drill-down that wants only a few periods' counts keeps only the triples of those
            periods and the ``reach`` before them (`metrictree.rollup`); a period's own count is 0.
    """

    values: Values | None
    how: How
    empty: Any = None
    reduce: Callable[..., Any] | None = None
    extra: Values | None = None
    reach: int | None = None


@attrs.frozen
class AggregateContext:
    """What an aggregate's planner may use besides its arguments.

    Attributes:
        source: the source name.
        rows: the number of rows.
        period: the period index of every row (int32; consecutive periods differ by 1).
        entity: the source's entity column, if it declares one.
        mask: true on the rows the metric's ``where`` keeps (``None``: all rows).
        grain: the time grain of the evaluation (``month`` …).
        time: the source's time column.
    """

    source: str
    rows: int
    period: Values
    entity: Values | None = None
    mask: Values | None = None
    grain: str = "month"
    time: Values | None = None


@attrs.frozen
class Aggregate:
    """A function over the rows of a source, e.g. ``sum(orders.amount)``.

    Attributes:
        name: the name in tree files.
        plan: ``plan(ctx, *args, **kwargs) -> [Partial, …]``; ``args`` are row-level arrays,
            or `ROWS` where the author passed a source name (``count(orders)``).
        finish: ``finish(*partials) -> values``; default: the single partial as it is.
        min_args, max_args: how many positional arguments it takes.
        keywords: the keyword arguments it accepts, with their defaults.
        check: ``check(*arg_types) -> problem or None`` to reject wrong column types early.
        entity: whether the planner reads ``ctx.entity`` (the source must declare ``entity``).
        lookback: whether a period's value depends on earlier periods' rows (churned customers),
            so rows before the first period asked for must still be read.
        doc: one line for ``metrictree plugins`` and the docs.
    """

    name: str
    plan: Callable[..., Sequence[Partial]]
    finish: Callable[..., Values | Computed] | None = None
    min_args: int = 1
    max_args: int = 1
    keywords: dict[str, Any] = attrs.field(factory=dict)
    check: Callable[..., str | None] | None = None
    entity: bool = False
    lookback: bool = False
    doc: str = ""
    kind: str = attrs.field(default="aggregate", init=False)


class _Rows:
    """The argument of ``count(orders)``: the source's rows themselves."""

    def __repr__(self) -> str:
        return "ROWS"


ROWS = _Rows()


# --------------------------------------------------------------------------- scalars


class Frame(Protocol):
    """The periods × slices layout of the aggregate table, for window functions."""

    periods: int

    def shift(self, values: Values, offset: int) -> pa.Array:
        """The value ``offset`` periods away in the same slice (negative = earlier); null outside the data."""

    def cumulative_sum(self, values: Values) -> pa.Array:
        """Running total over the periods of each slice (nulls count as 0)."""


@attrs.frozen
class Scalar:
    """A function over metric values, e.g. ``log(x)`` or ``change(m)``.

    Attributes:
        name: the name in tree files.
        impl: ``impl(*args, **kwargs)`` (``impl(frame, *args, **kwargs)`` when ``window``) returning
            an array or `Computed`.
        min_args, max_args: positional arity (``max_args=None``: any number).
        keywords: accepted keyword arguments with defaults.
        window: whether it looks at other periods (and so gets the `Frame`).
        doc: one line for ``metrictree plugins`` and the docs.
    """

    name: str
    impl: Callable[..., Values | Computed]
    min_args: int = 1
    max_args: int | None = 1
    keywords: dict[str, Any] = attrs.field(factory=dict)
    window: bool = False
    doc: str = ""
    kind: str = attrs.field(default="scalar", init=False)


Function = Aggregate | Scalar


# --------------------------------------------------------------------------- libraries


@attrs.frozen
class Library:
    """A metric library an author pulls in with ``import name``: tree-language text.

    Its metrics read sources and columns under the library's own names; a tree binds them to its
    data in the import (``import name with orders = invoices { amount = … }``, `metrictree.binding`).
    Money metrics are written ``unit currency``, which becomes the importing tree's ``currency``.

    Attributes:
        name: the name after ``import``.
        text: tree-file text (sources, params, metrics) merged into the importing tree.
        doc: one line for ``metrictree plugins``.
    """

    name: str
    text: str
    doc: str = ""

    @classmethod
    def bundled(cls, name: str, doc: str) -> Library:
        """A library shipped with metrictree, in ``metrictree.plugins/libraries/<name>.tree``."""
        from importlib.resources import files

        return cls(name, files("metrictree.plugins").joinpath("libraries", f"{name}.tree").read_text("utf-8"), doc)


@attrs.frozen
class TreeFile:
    """A ready-made tree a plugin ships, runnable by name.

    Attributes:
        name: the name people type (``crm_ltv``).
        path: where the ``.tree`` file is.
        doc: one line for ``metrictree plugins``.
    """

    name: str
    path: Any
    doc: str = ""

    @classmethod
    def bundled(cls, name: str, doc: str) -> TreeFile:
        """A tree shipped with metrictree, in ``metrictree.trees/<name>.tree``."""
        from importlib.resources import files

        return cls(name, files("metrictree.trees").joinpath(f"{name}.tree"), doc)


# --------------------------------------------------------------------------- registry


@attrs.define
class Registry:
    """Every function and library the loaded plugins provide, with who provided each.

    Filled through the ``register`` callbacks the plugin manager hands to each plugin,
    so a clash can name both plugins.
    """

    aggregates: dict[str, Aggregate] = attrs.field(factory=dict)
    scalars: dict[str, Scalar] = attrs.field(factory=dict)
    libraries: dict[str, Library] = attrs.field(factory=dict)
    trees: dict[str, TreeFile] = attrs.field(factory=dict)
    owners: dict[tuple[str, str], str] = attrs.field(factory=dict)

    def add(self, item: Function | Library | TreeFile, plugin: str) -> None:
        if isinstance(item, Aggregate):
            table, kind = self.aggregates, "aggregate function"
        elif isinstance(item, Scalar):
            table, kind = self.scalars, "function"
        elif isinstance(item, Library):
            table, kind = self.libraries, "library"
        elif isinstance(item, TreeFile):
            table, kind = self.trees, "tree"
        else:
            raise PluginError(error(
                f"plugin '{plugin}' registered {item!r}, which is not an Aggregate, Scalar, Library or TreeFile",
                hint="register metrictree.functions.Aggregate, Scalar, Library or TreeFile objects", code="plugin"))
        if item.name in table:
            first = self.owners[(kind, item.name)]
            raise PluginError(error(
                f"{kind} '{item.name}' is defined by two plugins: '{first}' and '{plugin}'",
                hint=f"uninstall or disable one of them, or rename the {kind} in one plugin", code="plugin-clash"))
        table[item.name] = item
        self.owners[(kind, item.name)] = plugin

    def owner(self, item: Function | Library | TreeFile) -> str:
        kind = "tree" if isinstance(item, TreeFile) else {"aggregate": "aggregate function", "scalar": "function"}.get(
            getattr(item, "kind", ""), "library")
        return self.owners[(kind, item.name)]

    def contributions(self, plugin: str) -> dict[str, list[str]]:
        """What one plugin adds, by kind: ``{"aggregate function": [...], "function": [...], ...}``."""
        found: dict[str, list[str]] = {}
        for (kind, name), owner in self.owners.items():
            if owner == plugin:
                found.setdefault(kind, []).append(name)
        return found
