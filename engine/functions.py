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
from typing import Any, Literal, Protocol

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from .errors import PluginError, error

Values = pa.Array | pa.ChunkedArray


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
            `Presence` of the kept rows and returns ``__slice``, ``__period`` (offsets, as in `Presence`) and
            ``__value``. Every presence partial over the same entity and filter shares one grouping of the
            rows, with the distinct counts of that column; rows whose entity is null are left out (and counted).
        extra: for ``how="presence"``: a row-level integer whose maximum over the rows of each (entity, slice,
            period) the presence carries as ``extra`` (e.g. how many periods after it a row keeps a customer
            active).
    """

    values: Values | None
    how: How
    empty: Any = None
    reduce: Callable[..., Any] | None = None
    extra: Values | None = None


@attrs.frozen(eq=False)
class Presence:
    """Who was active when: the distinct (entity, slice, period) triples of the rows a metric keeps.

    Everything is an integer array, one element per triple (in no particular order), so customer
    states are lookups of a triple's neighbours in time — hash lookups of integer codes, no joins over
    strings and no sorting.

    Attributes:
        entity: the entity's code (0 … entities-1).
        slice: the slice's code (0 … slices-1; 0 when the evaluation is not sliced).
        period: the period's offset from the first period of the data (0 … periods-1).
        rows: how many kept rows the triple has.
        extra: the maximum of the partial's ``extra`` over those rows (``None`` without one).
        periods: the number of periods the data spans.
        entities, slices: how many codes there are.
    """

    entity: pa.Array
    slice: pa.Array
    period: pa.Array
    rows: pa.Array
    extra: pa.Array | None
    periods: int
    entities: int
    slices: int
    _cache: dict = attrs.field(factory=dict, init=False, repr=False)  # lookups shared by every state

    def __len__(self) -> int:
        return len(self.entity)

    def _cached(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def span(self) -> int:
        """The distance between the codes of two (entity, slice)s: room for a shift of the periods either way."""
        return 2 * self.periods + 1

    def codes(self, shift: int = 0) -> pa.Array:
        """One int64 per triple, ``(entity × slices + slice) × span + period + shift``: equal for the same
        (entity, slice) and period."""
        group = pc.add(pc.multiply(self.entity, self.slices), self.slice) if self.slices > 1 else self.entity
        return pc.add(pc.multiply(group, self.span), pc.add(self.period, shift) if shift else self.period)

    def follows(self, step: int = 1) -> pa.Array:
        """True where the same (entity, slice) is present ``step`` periods earlier."""
        return self._cached(("follows", step), lambda: pc.is_in(self.codes(-step), value_set=self.codes()))

    def precedes(self, step: int = 1) -> pa.Array:
        """True where the same (entity, slice) is present ``step`` periods later."""
        return self._cached(("follows", -step), lambda: pc.is_in(self.codes(step), value_set=self.codes()))

    def first_period(self) -> pa.Array:
        """Each triple's entity's first period, over every slice."""
        return self._cached("first", self._first_period)

    def _first_period(self) -> pa.Array:
        firsts = pa.table({"e": self.entity, "p": self.period}).group_by(["e"], use_threads=False).aggregate(
            [("p", "min")])
        # Every entity code 0 … entities-1 appears once: put the minima in code order, then look them up.
        by_code = pc.take(firsts.column("p_min"), pc.sort_indices(firsts.column("e")))
        return pc.take(by_code.combine_chunks() if isinstance(by_code, pa.ChunkedArray) else by_code, self.entity)

    def overall(self) -> Presence:
        """The same presence with every slice merged: distinct (entity, period), rows summed."""
        if self.slices == 1:
            return self
        return self._cached("overall", self._overall)

    def _overall(self) -> Presence:
        columns = {"e": self.entity, "p": self.period, "r": self.rows}
        aggregations = [("r", "sum")]
        if self.extra is not None:
            columns["x"] = self.extra
            aggregations.append(("x", "max"))
        merged = pa.table(columns).group_by(["e", "p"], use_threads=False).aggregate(aggregations)

        def column(name: str) -> pa.Array:
            return merged.column(name).combine_chunks()

        return Presence(column("e"), pa.repeat(pa.scalar(0, pa.int64()), merged.num_rows), column("p"),
                        column("r_sum"), column("x_max") if self.extra is not None else None, self.periods,
                        self.entities, 1)

    def holds(self, other: Presence, flags: pa.Array) -> pa.Array:
        """True for each triple whose (entity, period) is flagged in ``other`` (an `overall` presence)."""
        def code(p: Presence) -> pa.Array:
            return pc.add(pc.multiply(p.entity, self.periods), p.period)

        return pc.is_in(code(self), value_set=pc.filter(code(other), flags))

    def count(self, flags: pa.Array | None = None, shift: int = 0) -> pa.Table:
        """How many triples are flagged, per slice and period (moved ``shift`` periods later)."""
        return self.total(None, flags, shift)

    def total(self, values: pa.Array | None, flags: pa.Array | None = None, shift: int = 0,
              how: str = "sum") -> pa.Table:
        """``how`` (sum, mean …) of ``values`` (default: 1 a triple) over the flagged triples, per slice and
        period (moved ``shift`` periods later): the ``__slice``, ``__period``, ``__value`` table a reduce returns."""
        cell = pc.add(pc.multiply(self.slice, self.span), pc.add(self.period, shift + self.periods))
        columns = {"c": cell}
        if values is not None:
            columns["v"] = values
        table = pa.table(columns)
        if flags is not None:
            table = table.filter(flags)
        aggregation = ([], "count_all") if values is None else ("v", how)
        grouped = table.group_by(["c"], use_threads=False).aggregate([aggregation])
        cell = grouped.column("c")
        slice_ = pc.divide(cell, self.span)
        period = pc.subtract(pc.subtract(cell, pc.multiply(slice_, self.span)), self.periods)
        value = grouped.column("count_all" if values is None else f"v_{how}")
        return pa.table({"__slice": slice_, "__period": period, "__value": value})


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
