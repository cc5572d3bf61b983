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

import threading

import attrs
import pyarrow as pa
import pyarrow.compute as pc


@attrs.frozen(eq=False)
class Presence:
    """Who was active when: the distinct (entity, slice, period) triples of the rows a metric keeps.

    Everything is an integer array, one element per triple (in no particular order), so customer
    states are lookups of a triple's neighbours in time: no joins over strings and no sorting. The
    lookups go through a dense grid of (entity, slice) × period cells, one byte each, built once by a
    scatter of the triples; where that grid would be much larger than the triples (few of the
    combinations occur), they are hash lookups of integer codes instead.

    Attributes:
        entity: the entity's code (0 … entities-1).
        slice: the slice's code (0 … slices-1; 0 when the evaluation is not sliced).
        period: the period's offset from the first period of the data (0 … periods-1).
        rows: how many kept rows the triple has (an `overall` presence adds them up when first asked).
        extra: the maximum of the partial's ``extra`` over those rows (``None`` without one).
        periods: the number of periods the data spans.
        entities, slices: how many codes there are.
    """

    entity: pa.Array
    slice: pa.Array
    period: pa.Array
    _rows: pa.Array | None  # ``None``: summed when first asked (`rows`)
    extra: pa.Array | None
    periods: int
    entities: int
    slices: int
    _cache: dict = attrs.field(factory=dict, init=False, repr=False)  # lookups shared by every state

    def __len__(self) -> int:
        return len(self.entity)

    @property
    def rows(self) -> pa.Array:
        """How many kept rows each triple has."""
        return self._rows if self._rows is not None else self._cached("rows", self._cache["sum rows"])

    def _cached(self, key, compute):
        # The reduces over one presence may run on several threads at once (`aggregating._reduced`): each lookup
        # is computed once, by the first thread to ask; the others wait for it. (A lookup's computation only asks
        # for lookups it is built from, never the other way round, so no two threads wait for each other.)
        try:
            return self._cache[key]
        except KeyError:
            pass
        with self._cache.setdefault(("lock", key), threading.Lock()):
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
        group, _ = self.groups()
        return pc.add(pc.multiply(group, self.span), pc.add(self.period, shift) if shift else self.period)

    def groups(self) -> tuple[pa.Array, int]:
        """Each triple's (entity, slice) as one int64 code, and how many codes there can be (0 … n-1).

        The code is ``entity × slices + slice``, unless that product would leave no room in an int64 for
        the periods (many wide dimensions: the slice codes of six dimensions of a thousand values each);
        then the slice codes that occur are numbered first — never more than the triples — so that no
        code wraps around. Either way a code times `span` plus a period offset fits an int64."""
        return self._cached("group", self._build_group)

    def _build_group(self) -> tuple[pa.Array, int]:
        if self.slices <= 1:
            return self.entity, self.entities
        slices = self.slices
        slice_ = self.slice
        if max(self.entities, 1) * slices * self.span >= _ROOM:
            slice_, slices = _numbered(self.slice, self.slices, len(self))
            if max(self.entities, 1) * max(slices, 1) * self.span >= _ROOM:
                raise OverflowError(f"{self.entities:,} entities × {slices:,} slices do not fit 64-bit codes")
        return pc.add(pc.multiply(self.entity, slices), slice_), self.entities * slices

    def follows(self, step: int = 1) -> pa.Array:
        """True where the same (entity, slice) is present ``step`` periods earlier."""
        return self._cached(("follows", step), lambda: self._present_at(-step))

    def precedes(self, step: int = 1) -> pa.Array:
        """True where the same (entity, slice) is present ``step`` periods later."""
        return self._cached(("follows", -step), lambda: self._present_at(step))

    def _present_at(self, shift: int) -> pa.Array:
        """True where the same (entity, slice) is present ``shift`` periods later (earlier when negative)."""
        grid = self._grid()
        if grid is None:
            return pc.is_in(self.codes(shift), value_set=self.codes())
        cell, occupied = grid
        # period + shift within 0 … periods-1 (``shift`` is not 0): one comparison.
        inside = pc.less(self.period, self.periods - shift) if shift > 0 else pc.greater_equal(self.period, -shift)
        # Outside the periods nobody is present; any index that exists stands in for those triples.
        index = pc.if_else(inside, pc.add(cell, shift), pa.scalar(0, pa.int64()))
        return pc.and_(inside, _looked_up(occupied, index))

    def _grid(self) -> tuple[pa.Array, pa.Array] | None:
        """Each triple's cell in a dense grid of (entity, slice) × period, and whether each cell is occupied
        (an int8 per cell), when the grid is small enough (see `_fits`); ``None`` otherwise."""
        return self._cached("grid", self._build_grid)

    def _build_grid(self) -> tuple[pa.Array, pa.Array] | None:
        group, groups = self.groups()
        if group is self.entity and self._entity_cells() is not None:
            # Not sliced: the cells are those of (entity, period), which the first periods read too.
            return self._entity_cells()
        if not _fits(groups * self.periods, len(self)):
            # Few of the (entity, slice) combinations occur (a sliced evaluation): number those that do — the
            # slice codes that occur first (36 of 80 by channel × region × segment), so that the combinations
            # fit a small grid of their own more often.
            if self.slices > 1 and groups == self.entities * self.slices:
                used, count = _numbered(self.slice, self.slices, len(self))
                if count < self.slices:
                    group, groups = pc.add(pc.multiply(self.entity, count), used), self.entities * count
            group, groups = _numbered(group, groups, len(self))
            if not _fits(groups * self.periods, len(self)):
                return None
        cell = pc.add(pc.multiply(group, self.periods), self.period)
        return cell, _occupancy(cell, groups * self.periods)

    def _entity_cells(self) -> tuple[pa.Array, pa.Array] | None:
        """Each triple's cell in a grid of (entity, period), and whether each cell is occupied, when that grid is
        small enough (`_fits`); ``None`` otherwise. Shared by the grid of an unsliced presence, the first periods
        and `overall`."""
        return self._cached("entity cells", self._build_entity_cells)

    def _build_entity_cells(self) -> tuple[pa.Array, pa.Array] | None:
        cells = self.entities * self.periods
        if not _fits(cells, len(self)):
            return None
        cell = pc.add(pc.multiply(self.entity, self.periods), self.period)
        return cell, _occupancy(cell, cells)

    def first_period(self) -> pa.Array:
        """Each triple's entity's first period, over every slice."""
        return self._cached("first", self._first_period)

    def _first_period(self) -> pa.Array:
        if not len(self):
            return pa.array([], pa.int64())
        grid = self._entity_cells()
        if grid is not None:
            # The occupied (entity, period) cells in order are the triples sorted by entity and period: an
            # entity's first cell is its first period.
            occupied = pc.cast(pc.indices_nonzero(grid[1]), pa.int64())
            owner = pc.divide(occupied, self.periods)
            starts = pc.fill_null(pc.not_equal(pc.pairwise_diff(owner), 0), True)
            firsts, owners = pc.filter(occupied, starts), pc.filter(owner, starts)
            first = pc.subtract(firsts, pc.multiply(owners, self.periods))
            return pc.take(pc.scatter(first, owners, max_index=self.entities - 1), self.entity)
        firsts = pa.table({"e": self.entity, "p": self.period}).group_by(["e"], use_threads=False).aggregate(
            [("p", "min")])
        by_entity = pc.scatter(firsts.column("p_min").combine_chunks(), firsts.column("e").combine_chunks(),
                               max_index=self.entities - 1)
        return pc.take(by_entity, self.entity)

    def overall(self) -> Presence:
        """The same presence with every slice merged: distinct (entity, period), rows summed."""
        if self.slices == 1:
            return self
        return self._cached("overall", self._overall)

    def _overall(self) -> Presence:
        return self.coarsened(None, 1)

    def coarsened(self, coarse: pa.Array | None, slices: int) -> Presence:
        """The presence with its slices replaced by coarser ones (``coarse``: each triple's coarser slice code,
        0 … slices-1; ``None``: one slice): the triples merged, rows summed, ``extra`` at its maximum — what a
        pass by the coarser dimensions would have grouped."""
        cells = self.entities * max(slices, 1) * self.periods
        if self.extra is None and _fits(cells, len(self)):
            # The occupied cells of a grid of (entity, coarser slice, period) are the distinct triples, in order:
            # no hashing. One slice: the (entity, period) grid the lookups and first periods share. Their rows
            # are summed when a state reads them (most do not: churned, new …).
            grid = self._entity_cells() if coarse is None else None
            key, occupied = grid if grid is not None else (self._coarse_key(coarse, slices), None)
            if occupied is None:
                occupied = _occupancy(key, cells)
            distinct = pc.cast(pc.indices_nonzero(occupied), pa.int64())
            merged = self._from_keys(distinct, slices, None, None)
            merged._cache["sum rows"] = lambda: _summed(key, self.rows, distinct)
            if coarse is None:
                # One slice: the merged presence's own (entity, period) grid is this one — its cells are the keys.
                merged._cache["entity cells"] = (distinct, occupied)
            return merged
        columns = {"k": self._coarse_key(coarse, slices), "r": self.rows}
        aggregations = [("r", "sum")]
        if self.extra is not None:
            columns["x"] = self.extra
            aggregations.append(("x", "max"))
        merged = pa.table(columns).group_by(["k"], use_threads=False).aggregate(aggregations)

        def column(name: str) -> pa.Array:
            return merged.column(name).combine_chunks()

        return self._from_keys(column("k"), slices, column("r_sum"),
                               column("x_max") if self.extra is not None else None)

    def _coarse_key(self, coarse: pa.Array | None, slices: int) -> pa.Array:
        """One int64 per (entity, coarser slice, period), so that a grouping hashes one narrow column (~30 %
        faster than two)."""
        group = self.entity if coarse is None else pc.add(pc.multiply(self.entity, slices),
                                                          pc.cast(coarse, pa.int64()))
        return pc.add(pc.multiply(group, self.periods), self.period)

    def _from_keys(self, key: pa.Array, slices: int, rows: pa.Array | None, extra: pa.Array | None) -> Presence:
        """The presence of the (entity, coarser slice, period) triples whose `_coarse_key` is ``key``."""
        cell = pc.divide(key, self.periods)
        entity = pc.divide(cell, slices) if slices > 1 else cell
        slice_ = pc.subtract(cell, pc.multiply(entity, slices)) if slices > 1 else \
            pa.repeat(pa.scalar(0, pa.int64()), len(key))
        return Presence(entity, slice_, pc.subtract(key, pc.multiply(cell, self.periods)), rows, extra,
                        self.periods, self.entities, slices)

    def sliced_by_entity(self, slice: pa.Array, slices: int) -> Presence:
        """The same triples, in the same order, put in ``slices`` slices where each entity falls in one
        (``slice`` is a function of the entity; for an `overall` presence). Every lookup in time — who is
        there a period earlier or later, when each was first seen — is then the same as here, so the two
        share their cache: a state counted both overall and by such slices pays for each lookup once."""
        sliced = Presence(self.entity, slice, self.period, self._rows, self.extra, self.periods, self.entities,
                          slices)
        object.__setattr__(sliced, "_cache", self._cache)  # frozen: the cache itself is the shared part
        self._cache.setdefault("overall", self.overall())
        return sliced

    def holds(self, other: Presence, flags: pa.Array) -> pa.Array:
        """True for each triple whose (entity, period) is flagged in ``other`` (an `overall` presence)."""
        if other is self or (other.entity is self.entity and other.period is self.period):
            return flags  # the same triples in the same order (an unsliced presence is its own `overall`)

        def code(p: Presence) -> pa.Array:
            return pc.add(pc.multiply(p.entity, self.periods), p.period)

        cells = self.entities * self.periods
        if _fits(cells, len(self)):
            return _looked_up(_occupancy(pc.filter(code(other), flags), cells), code(self))
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


# A dense grid of cells is used for the lookups when it has at most this many cells per triple (or this
# many cells in all): one byte a cell, against a hash set's ~16 bytes a triple.
_CELLS_PER_TRIPLE = 8
_SMALL_GRID = 1 << 22
_NUMBERING_CELLS = 4


def _fits(cells: int, triples: int) -> bool:
    return 0 < cells <= max(_CELLS_PER_TRIPLE * triples, _SMALL_GRID)


def _summed(key: pa.Array, rows: pa.Array, distinct: pa.Array) -> pa.Array:
    """The sum of ``rows`` per value of ``key``, for each of the ``distinct`` keys in turn."""
    grouped = pa.table({"k": key, "r": rows}).group_by(["k"], use_threads=False).aggregate([("r", "sum")])
    at = pc.index_in(distinct, value_set=grouped.column("k").combine_chunks())
    return pc.take(grouped.column("r_sum").combine_chunks(), at)


_ROOM = 2 ** 62  # codes stay below it: an int64 with room for a shift either way


def _numbered(codes: pa.Array, size: int, triples: int) -> tuple[pa.Array, int]:
    """The codes 0 … size-1 renumbered 0 … n-1 over the n that occur (as int64), and n.

    When the codes fit a small grid of their own (at most `_NUMBERING_CELLS` a code: the running count
    takes 4 bytes a cell, a hash table ~16 bytes a code), the occupied cells in order are the numbering: a
    scatter and a running count, no hashing (3× faster than `dictionary_encode` on 6M codes spread over as
    many cells; no faster at 6–7 cells a code); otherwise a hash numbering. Either way equal codes get
    equal numbers, which is all the lookups need."""
    if 0 < size <= _NUMBERING_CELLS * triples:
        occupied = _occupancy(codes, size)
        running = pc.cumulative_sum(pc.cast(occupied, pa.int32() if size < 2 ** 31 else pa.int64()))
        count = running[len(running) - 1].as_py() if len(running) else 0
        return pc.subtract(pc.cast(pc.take(running, codes), pa.int64()), 1), count
    encoded = pc.dictionary_encode(codes)
    return pc.cast(encoded.indices, pa.int64()), len(encoded.dictionary)


def _occupancy(cells: pa.Array, size: int) -> pa.Array:
    """An int8 per cell 0 … size-1: 1 where some element of ``cells`` is, 0 elsewhere."""
    ones = pc.cast(pc.is_valid(cells), pa.int8())
    return pc.fill_null(pc.scatter(ones, cells, max_index=size - 1), pa.scalar(0, pa.int8()))


def _looked_up(occupancy: pa.Array, cells: pa.Array) -> pa.Array:
    """Whether each of ``cells`` is occupied."""
    return pc.cast(pc.take(occupancy, cells), pa.bool_())
