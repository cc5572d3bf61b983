"""Who was active when: the customer-state functions' view of a source's rows.

A `Presence` is what a ``how="presence"`` partial's reduce receives (see `metrictree.functions.Partial`):
the distinct (entity, slice, period) triples of the rows a metric keeps, as integer arrays, with the
lookups every customer state is built from — is the same customer present in the same slice one
period earlier (`Presence.follows`), one period later (`Presence.precedes`), when was it first seen
(`Presence.first_period`) — and the per-slice, per-period counts a reduce returns (`Presence.count`).
`metrictree.aggregating` builds one presence per entity column, filter and ``extra``, shared by every
customer-state function and distinct count over them, and caches the lookups, so a tree with churned,
retained, new and reactivated customers pays for each lookup once.
"""

from __future__ import annotations

import attrs
import pyarrow as pa
import pyarrow.compute as pc


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

    def sliced_by_entity(self, slice: pa.Array, slices: int) -> Presence:
        """The same triples, in the same order, put in ``slices`` slices where each entity falls in one
        (``slice`` is a function of the entity; for an `overall` presence). Every lookup in time — who is
        there a period earlier or later, when each was first seen — is then the same as here, so the two
        share their cache: a state counted both overall and by such slices pays for each lookup once."""
        sliced = Presence(self.entity, slice, self.period, self.rows, self.extra, self.periods, self.entities,
                          slices)
        object.__setattr__(sliced, "_cache", self._cache)  # frozen: the cache itself is the shared part
        self._cache.setdefault("overall", self.overall())
        return sliced

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
