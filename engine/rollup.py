"""One grouped pass by the finest slices, rolled up to coarser ones, for the drill-down's counts of entities.

A distinct count or a customer-state count (churned, new, reactivated …) does not add up across
segments, so the drill-down (`drilling`) needs it by several sets of dimensions: by all of them, by each
one alone (to see where it adds up), and by the ones where it does. Evaluating each set is a pass over
the rows. Here the metrics are evaluated once, by every dimension, and each count's `Presence` — the
distinct (entity, slice, period) triples of its rows — is kept. A coarser set of dimensions is then a
matter of those triples: each slice is mapped to its coarser slice, the triples merged (rows summed,
``extra`` at its maximum), and the aggregate's own reduce run on them. That is the same input the
reduce would get from a pass by the coarser dimensions, so the counts are the same, exactly.

Only for the Arrow backend (a SQL engine computes its counts itself, and hands back no triples), and
only for aggregates made of one presence partial with no ``finish`` (count_distinct counts the triples,
which is what its own grouping counts); otherwise `fine_pass` returns ``None`` and the caller evaluates
each set of dimensions as before.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from . import periods
from . import syntax as s
from .backends import backend_for
from .evaluating import evaluate
from .functions import Aggregate, Partial, Registry
from .model import Tree
from .presence import Presence, _fits, _occupancy

_SLICES = "\x1fslices"  # the hidden metric that says which dimension values each slice code stands for


@attrs.frozen(eq=False)
class _Held:
    """What a count's reduce received in the pass: its presence, the reduce itself, its empty value."""

    presence: Presence
    reduce: Any
    empty: Any
    reach: int | None  # how many periods before its own a period's count reads (`Partial.reach`; 0: count_distinct)
    distinct: bool = False  # the reduce counts the triples, nothing else (count_distinct): see `_distinct_counts`

    @property
    def local(self) -> bool:
        """Whether a period's count reads that period's triples only (no look-back: count_distinct)."""
        return self.reach == 0


class _Job:
    """A roll-up begun beside the caller (`Fine.warm`): run once, by whichever thread comes to it first."""

    def __init__(self, compute, siblings: list[_Job]) -> None:
        self._compute = compute
        self._claimed = threading.Lock()
        self._future: Future = Future()
        self._siblings = siblings  # the jobs begun with it, in order (itself among them)

    def run(self) -> None:
        """Compute it, unless another thread has begun it."""
        if not self._claimed.acquire(blocking=False):
            return
        try:
            self._future.set_result(self._compute())
        except BaseException as exc:  # noqa: BLE001 — raised where the result is asked for
            self._future.set_exception(exc)

    def drop(self) -> None:
        """Not to be computed any more, unless begun already (nobody will ask for it)."""
        if self._claimed.acquire(blocking=False):
            self._future.cancel()

    def result(self):
        """Its result: computed here if no thread has begun it; else, while it is computed, the jobs begun with
        it that no thread has begun yet are computed here, then it is waited for."""
        self.run()
        if self._future.cancelled():
            return self._compute()  # dropped (`Fine.settle`): computed as if never begun
        for job in self._siblings:
            if self._future.done():
                break
            job.run()
        return self._future.result()


@attrs.frozen(eq=False)
class Fine:
    """The pass by every dimension, and what it takes to roll its counts up.

    Attributes:
        raw: the evaluation by ``dims`` (``period``, the dimensions, the metrics) without the ``deferred`` counts'
            columns (see `table`).
        covered: the evaluation's first and last periods with rows (labels), or ``None``.
        dims: the dimensions of the pass.
        held: per count of entities, its presence.
        slices: the dimension values of each slice code (``__code`` and the dimensions).
        base: the period index of the presences' offset 0.
    """

    raw: pa.Table
    covered: tuple[str, str] | None
    dims: tuple[str, ...]
    held: Mapping[str, _Held]
    slices: pa.Table
    base: int
    grain: str
    start: str = ""  # the first period asked of the pass
    # Customer states that look a few periods back (churned): counted at the finest slices only when read, and
    # then only for the periods read (`checked`); most reads are of coarser slices (`rolled`).
    deferred: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # every column of `table`, in order
    _merges: dict = attrs.field(factory=dict, init=False, repr=False)
    _filled: dict = attrs.field(factory=dict, init=False, repr=False)
    _started: dict = attrs.field(factory=dict, init=False, repr=False)  # roll-ups begun beside the caller (`warm`)

    def warm(self, within: Sequence[tuple[int, int]], names: Sequence[str]) -> None:
        """Begin, on a thread beside the caller, what the drill-down's checks ask first of this pass when they
        read the periods ``within`` (ranges of period indices) of the counts ``names``: `checked`, then `rolled`
        by each dimension alone. The caller goes on meanwhile (the history's totals, the formulas' split); a
        call with the same arguments later takes the result, waits for it, or — not begun yet — computes it
        itself; any other call computes its own. The same numbers either way: each is a function of the pass
        alone. Nothing with one core."""
        if pa.cpu_count() < 2 or not names or not all(name in self.held for name in names) or self._started:
            return
        within = [tuple(r) for r in within]
        jobs: list[_Job] = []
        jobs.append(_Job(lambda: self._checked(within), jobs))
        self._started[("checked", tuple(within))] = jobs[0]
        if len(self.dims) > 1:
            for dim in self.dims:
                jobs.append(_Job(lambda dim=dim: self._rolled([dim], names, within), jobs))
                self._started[self._rolled_key([dim], names, within)] = jobs[-1]

        def run() -> None:
            for job in jobs:
                job.run()

        threading.Thread(target=contextvars.copy_context().run, args=(run,), name="metrictree-rollups",
                         daemon=True).start()

    def settle(self) -> None:
        """The roll-ups begun by `warm` that nobody has asked for and no thread has begun are dropped (the
        drill-down is over: a count that adds up across every dimension at once is not read by each alone)."""
        for job in self._started.values():
            job.drop()

    @staticmethod
    def _rolled_key(to, names, within) -> tuple:
        return ("rolled", tuple(to), frozenset(names), None if within is None else tuple(tuple(r) for r in within))

    @property
    def table(self) -> pa.Table:
        """The evaluation by ``dims`` over every period of the pass, every count filled."""
        if not self.deferred:
            return self.raw
        if "all" not in self._filled:
            self._filled["all"] = self._counted(self.raw, None)
        return self._filled["all"]

    def reading(self, names: Sequence[str]) -> pa.Table:
        """`table`, or `raw` when none of ``names`` is deferred (their columns are filled already)."""
        return self.table if set(names) & set(self.deferred) else self.raw

    def checked(self, within: Sequence[tuple[int, int]]) -> pa.Table:
        """The rows of `table` in these ranges of period indices only: a deferred count is counted for those
        periods (and the few before that it reads), not for every period."""
        begun = self._started.get(("checked", tuple(tuple(r) for r in within)))
        return begun.result() if begun is not None else self._checked(within)

    def _checked(self, within: Sequence[tuple[int, int]]) -> pa.Table:
        if not self.deferred:
            return self.raw
        labels = self.raw.column("period").unique().to_pylist()
        kept = [label for label in labels if any(a <= periods.parse(label, self.grain) <= b for a, b in within)]
        rows = self.raw.filter(pc.is_in(self.raw.column("period"), value_set=pa.array(kept, pa.string())))
        return self._counted(rows, within)

    def _counted(self, rows: pa.Table, within: Sequence[tuple[int, int]] | None) -> pa.Table:
        """``rows`` of `raw` with the deferred counts filled in: each one's reduce over the triples of the periods
        ``within`` and the ``reach`` before them (every triple without ``within``), laid on the rows' slices."""
        labels = rows.column("period").unique().to_pylist()
        index_of = pc.index_in(rows.column("period"), value_set=pa.array(labels, pa.string()))
        period = pc.take(pa.array([periods.parse(label, self.grain) for label in labels], pa.int64()), index_of)
        code = pc.take(self.slices.column("__code"), pc.index_in(_keys(rows, self.dims),
                                                                  value_set=_keys(self.slices, self.dims)))
        restricted: dict[int, tuple[Presence, int]] = {}
        for name in self.deferred:
            held = self.held[name]
            presence, first = held.presence, 0
            if within is not None:
                if id(presence) not in restricted:
                    back = max(self.held[n].reach for n in self.deferred if self.held[n].presence is presence)
                    restricted[id(presence)] = _compacted(presence, [(a - back - self.base, b - self.base)
                                                                     for a, b in within])
                presence, first = restricted[id(presence)]
            result = held.reduce(presence)
            width = max(presence.slices, 1)
            found = pc.add(pc.multiply(pc.add(pc.cast(result.column("__period"), pa.int64()), self.base + first),
                                       width), pc.cast(result.column("__slice"), pa.int64()))
            wanted = pc.add(pc.multiply(period, width), code)
            values = pc.take(result.column("__value"), pc.index_in(wanted, value_set=found))
            if held.empty is not None:
                values = pc.fill_null(values, pa.scalar(held.empty, values.type) if not pa.types.is_null(values.type)
                                      else pa.scalar(held.empty))
            rows = rows.append_column(name, values)
        return rows.select(list(self.columns))

    def rolls(self, names: Sequence[str]) -> bool:
        """Whether every one of ``names`` can be rolled up (its presence was kept and its slices are known)."""
        return all(name in self.held for name in names)

    def rolled(self, to: Sequence[str], names: Sequence[str],
               within: Sequence[tuple[int, int]] | None = None) -> pa.Table:
        """The counts ``names`` by the dimensions ``to`` (a subset of `dims`), laid out as `evaluate` lays
        them: every period of the pass (or only those ``within`` these ranges of period indices) × every
        slice of ``to`` the pass has, the empty value where a slice has no triple."""
        begun = self._started.get(self._rolled_key(to, names, within))
        if begun is not None:
            return begun.result().select(["period", *to, *names])
        return self._rolled(to, names, within)

    def _rolled(self, to: Sequence[str], names: Sequence[str],
                within: Sequence[tuple[int, int]] | None = None) -> pa.Table:
        to = list(to)
        if to == list(self.dims) and within is None:
            return self.reading(names).select(["period", *to, *names])
        labels = self.raw.column("period").unique().to_pylist()
        if within is not None:
            labels = [label for label in labels
                      if any(a <= periods.parse(label, self.grain) <= b for a, b in within)]
        indices = pa.array([periods.parse(label, self.grain) for label in labels], pa.int64())
        grid = self.raw.select(to).group_by(to).aggregate([]).sort_by([(d, "ascending") for d in to]) if to \
            else pa.table({"\x1fone": [0]}).drop(["\x1fone"])
        width = grid.num_rows if to else 1
        coarse_key = _keys(grid, to) if to else None
        # Each fine slice code → the row of its coarser slice in `grid`.
        if to:
            coarse_of_code = pc.index_in(_keys(self.slices, to), value_set=coarse_key)
        else:
            coarse_of_code = pa.array([0] * self.slices.num_rows, pa.int64())
        out = {"period": pa.array([label for label in labels for _ in range(width)], pa.string())}
        for dim in to:
            out[dim] = pa.concat_arrays([grid.column(dim).combine_chunks()] * len(labels)) if labels else \
                pa.array([], pa.string())
        # A count whose periods read only a few before them (count_distinct: none; churned: one) needs only
        # the triples of the periods asked for and those few before: one set of ranges per presence, wide
        # enough for every count over it, so that they share one merge.
        reach: dict[int, int | None] = {}
        for name in names:
            held = self.held[name]
            known = reach.get(id(held.presence), 0)
            reach[id(held.presence)] = None if known is None or held.reach is None else max(known, held.reach)

        with_states = {id(self.held[name].presence) for name in names if not self.held[name].distinct}
        codes = self.slices.column("__code").combine_chunks()

        def coarse(presence: Presence) -> pa.Array:
            return _coarser(presence, codes, pc.cast(coarse_of_code, pa.int64()))

        for name in names:
            held = self.held[name]
            presence = held.presence
            back = reach[id(presence)]
            keep = None if within is None or back is None else tuple((a - back, b) for a, b in within)
            # Counts over the same triples (customers and churned of the same filter) share one merge, and
            # with it the lookups a presence caches.
            # A distinct count over some periods needs the number of distinct triples only (the merged presence
            # over every period stays shared with the customer states, whose lookups it caches) — unless a
            # state over the same triples is rolled up here too: then it shares that state's merge.
            distinct = held.distinct and keep is not None and id(presence) not in with_states
            cached = (id(presence), tuple(to), keep, distinct)
            if cached not in self._merges:
                first = 0  # the period offset of the merged presence's first period
                if distinct:
                    kept, first = _compacted(presence, [(a - self.base, b - self.base) for a, b in keep])
                    merged = _distinct_counts(kept, coarse(kept), width)
                else:
                    # Where each entity is in one coarser slice, the overall presence relabelled (its lookups
                    # shared with every such roll-up); otherwise a merge of the triples kept.
                    merged = _by_entity(presence, coarse(presence), width)
                    if merged is None:
                        if keep is not None:
                            presence, first = _compacted(presence, [(a - self.base, b - self.base) for a, b in keep])
                        merged = presence.coarsened(coarse(presence), width)
                self._merges[cached] = merged, first
            merged, first = self._merges[cached]
            result = merged if distinct else held.reduce(merged)
            index = pc.add(result.column("__period"), self.base + first)
            row = pc.index_in(index, value_set=indices)  # the output rows are in the labels' order
            cell = pc.add(pc.multiply(pc.cast(row, pa.int64()), width), pc.cast(result.column("__slice"), pa.int64()))
            lookup = pc.index_in(pa.array(range(len(labels) * width), pa.int64()), value_set=pc.drop_null(cell))
            values = pc.take(pc.filter(result.column("__value"), pc.is_valid(cell)), lookup)
            if held.empty is not None:
                values = pc.fill_null(values, pa.scalar(held.empty, values.type) if not pa.types.is_null(values.type)
                                      else pa.scalar(held.empty))
            out[name] = values
        return pa.table(out)


    def totals(self, names: Sequence[str]) -> dict[str, tuple[pa.Array, pa.Array]]:
        """The counts ``names`` rolled up to no dimension: name → (period indices, one value each), what an
        unsliced evaluation counts in those periods (`evaluating.evaluate`'s ``given``)."""
        table = self.rolled([], names)
        indices = pa.array([periods.parse(label, self.grain) for label in table.column("period").to_pylist()],
                           pa.int64())
        return {name: (indices, table.column(name).combine_chunks()) for name in names}


_DENSE_SLICES = 1 << 16  # slice codes looked up through a table indexed by code up to this many (beyond 8 a code)


def _coarser(presence: Presence, codes: pa.Array, coarse: pa.Array) -> pa.Array:
    """Each triple's coarser slice, ``coarse[i]`` for the slice ``codes[i]`` (null for a code not there)."""
    if len(codes) and 0 < presence.slices <= 8 * len(codes) + _DENSE_SLICES and \
            pc.max(codes).as_py() < presence.slices:
        # Slice codes are small integers: a table indexed by code, no hashing of the triples.
        return pc.take(pc.scatter(coarse, codes, max_index=presence.slices - 1), presence.slice)
    return pc.take(coarse, pc.index_in(presence.slice, value_set=codes))


def _keys(table: pa.Table, dims: Sequence[str]) -> pa.Array:
    """One text key per row of the dimension values (a null value as a control character)."""
    parts = [pc.fill_null(pc.cast(table.column(d), pa.string()), "\x00") for d in dims]
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def _distinct_counts(presence: Presence, coarse: pa.Array, slices: int) -> pa.Table:
    """How many distinct (entity, coarser slice) each coarser slice has per period: what ``presence.count()``
    gives on `Presence.coarsened`'s presence, without merging the rows. Each triple as one int64; the distinct ones are
    the occupied cells of a dense grid when it is small enough (`presence._fits`: a scatter, no hashing),
    else the unique codes."""
    width = presence.periods
    code = pc.add(pc.multiply(pc.add(pc.multiply(presence.entity, slices), coarse), width), presence.period)
    cells = presence.entities * slices * width
    if _fits(cells, len(presence)):
        codes = pc.cast(pc.indices_nonzero(_occupancy(code, cells)), pa.int64())
    else:
        codes = pc.unique(code)
    per_cell = pc.value_counts(pc.subtract(codes, pc.multiply(pc.divide(codes, slices * width), slices * width)))
    cell = pc.cast(per_cell.field("values"), pa.int64())
    slice_ = pc.divide(cell, width)
    return pa.table({"__slice": slice_, "__period": pc.subtract(cell, pc.multiply(slice_, width)),
                     "__value": pc.cast(per_cell.field("counts"), pa.int64())})


def _by_entity(presence: Presence, coarse: pa.Array, slices: int) -> Presence | None:
    """When each entity falls in one coarser slice (a customer's region), the coarser presence is the overall
    one with each entity's slice — no grouping, and its lookups in time shared with the overall presence
    (`Presence.sliced_by_entity`); ``None`` when some entity is in several."""
    if slices == 1:
        return presence.overall()
    if len(presence) and presence.entities:
        # Each entity's coarser slice, one triple's (a scatter, no hashing); it is its only one when every
        # triple of the entity agrees with it.
        of_entity = pc.scatter(coarse, presence.entity, max_index=presence.entities - 1)
        if not pc.all(pc.equal(pc.take(of_entity, presence.entity), coarse)).as_py():
            return None
        overall = presence.overall()
        return overall.sliced_by_entity(pc.take(of_entity, overall.entity), slices)
    pairs = pc.unique(pc.add(pc.multiply(presence.entity, slices), coarse))
    entity = pc.divide(pairs, slices)
    if len(pc.unique(entity)) != len(pairs):
        return None
    overall = presence.overall()
    at = pc.index_in(overall.entity, value_set=entity)
    return overall.sliced_by_entity(pc.take(pc.subtract(pairs, pc.multiply(entity, slices)), at), slices)


def _only(presence: Presence, offsets: Sequence[tuple[int, int]]) -> Presence:
    """The triples of some ranges of period offsets."""
    inside = None
    for a, b in offsets:
        one = pc.and_(pc.greater_equal(presence.period, a), pc.less_equal(presence.period, b))
        inside = one if inside is None else pc.or_(inside, one)

    def kept(values: pa.Array | None) -> pa.Array | None:
        return None if values is None else pc.filter(values, inside)

    if presence._rows is not None or "rows" in presence._cache:
        return Presence(kept(presence.entity), kept(presence.slice), kept(presence.period), kept(presence.rows),
                        kept(presence.extra), presence.periods, presence.entities, presence.slices)
    # Rows not made yet (`Presence.rows`): the kept ones are taken when first asked.
    only = Presence(kept(presence.entity), kept(presence.slice), kept(presence.period), None, kept(presence.extra),
                    presence.periods, presence.entities, presence.slices)
    only._cache["sum rows"] = lambda: kept(presence.rows)
    return only


def _compacted(presence: Presence, offsets: Sequence[tuple[int, int]]) -> tuple[Presence, int]:
    """The triples of some ranges of period offsets (`_only`), their periods counted from the first of the
    ranges; and that first period's offset, to add to the periods of what a reduce counts on them.

    Only for counts whose periods read a bounded few before them (`Partial.reach`): the lookups in time are
    relative (the same customer one period later), and outside the ranges there is no triple either way, so the
    counts of the periods asked for are the same; the presence's grids span those periods only (four months of
    fourteen, say), so they fit where the whole span's would not."""
    low = max(0, min((a for a, _ in offsets), default=0))
    high = min(presence.periods - 1, max((b for _, b in offsets), default=0))
    kept = _only(presence, offsets)
    if low <= 0 or high < low:
        return kept, 0
    compact = Presence(kept.entity, kept.slice, pc.subtract(kept.period, low), kept._rows, kept.extra,
                       high - low + 1, kept.entities, kept.slices)
    if kept._rows is None:
        compact._cache["sum rows"] = lambda: kept.rows
    return compact, low


def _slice_codes(presence: Presence) -> pa.Table:
    """Every slice code of the presence, at its last period: the pass's table then says what each stands for."""
    codes = pc.unique(presence.slice)
    return pa.table({"__slice": codes, "__period": pa.repeat(pa.scalar(presence.periods - 1, pa.int64()), len(codes)),
                     "__value": pc.cast(codes, pa.int64())})


def fine_pass(tree: Tree, data: Mapping[str, Any], registry: Registry, dims: Sequence[str], names: Sequence[str],
              counting: Sequence[str], grain: str, params, start: str, end: str, defer: bool = True,
              riders: Sequence[Any] = ()) -> Fine | None:
    """Evaluate ``names`` by ``dims`` from ``start`` to ``end``, keeping the presence of each of ``counting``
    that can be rolled up (`Fine.rolls`); ``None``, and nothing evaluated, when none can (see the module
    docstring). ``riders``: another evaluation's requests aggregated from the same scans (`backends.Rider`)."""
    if not dims or not counting:
        return None
    sources = {tree.metrics[n].source for n in names}
    if any(getattr(backend_for(data.get(source)), "name", None) != "arrow" for source in sources):
        return None
    held: dict[str, _Held] = {}
    partials: dict[str, Partial] = {}
    metrics = dict(tree.metrics)
    aggregates = dict(registry.aggregates)
    for name in counting:
        metric = tree.metrics[name]
        call = metric.formula
        fn = registry.aggregates.get(call.name) if isinstance(call, s.Call) else None
        if fn is None or fn.finish is not None or not (fn.entity or call.name == "count_distinct"):
            return None
        captured = f"\x1fheld {name}"
        aggregates[captured] = attrs.evolve(fn, name=captured, plan=_holding(fn, name, held, partials, defer))
        metrics[name] = attrs.evolve(metric, formula=attrs.evolve(call, name=captured))
    # One more count over the first one's very triples (the same values, filter and extra: no grouping of
    # its own) says which dimension values each slice code stands for.
    first = counting[0]
    shown = attrs.evolve(metrics[first], name=_SLICES, formula=attrs.evolve(metrics[first].formula, name=_SLICES))
    original = registry.aggregates[tree.metrics[first].formula.name]
    aggregates[_SLICES] = attrs.evolve(original, name=_SLICES,
                                       plan=lambda ctx, *args, **kwargs: [attrs.evolve(
                                           partials[first], reduce=_slice_codes, empty=None)] if first in partials
                                       else [Partial(None, "count_all", None)])
    metrics[_SLICES] = shown
    on_tree = tree.with_metrics({**metrics, _SLICES: shown})
    on_registry = attrs.evolve(registry, aggregates=aggregates)
    evaluation = evaluate(on_tree, data, grain=grain, by=list(dims), metrics=[*names, _SLICES], params=params,
                          start=start, end=end, registry=on_registry, riders=riders)
    table = evaluation.table
    slices, base = _slice_map(table, held.get(first), dims, grain)
    # What cannot be rolled up (a count of a plugin's own shape; slices the map does not show) is evaluated
    # by the caller as before; the table by every dimension serves either way.
    rollable = {} if slices is None else {
        name: h for name, h in held.items() if not len(h.presence.slice) or not pc.any(pc.is_null(pc.index_in(
            pc.unique(h.presence.slice), value_set=slices.column("__code")))).as_py()}
    deferred = tuple(name for name, h in held.items() if h.reach and defer)
    if any(name not in rollable for name in deferred):
        # A deferred count the slice map cannot lay out: the pass once more, every count by the finest slices.
        for rider in riders:
            rider.result = None  # read again below, and ridden again
        return fine_pass(tree, data, registry, dims, names, counting, grain, params, start, end, defer=False,
                         riders=riders)
    table = table.drop_columns([_SLICES])
    return Fine(table.drop_columns(list(deferred)), evaluation.covered, tuple(dims), rollable,
                slices if slices is not None else pa.table({"__code": pa.array([], pa.int64())}), base, grain, start,
                deferred, tuple(table.column_names))


def _slice_map(table: pa.Table, held: _Held | None, dims: Sequence[str], grain: str) -> tuple[pa.Table | None, int]:
    """The dimension values of each slice code, from the hidden count's column, and the period index of the
    presences' offset 0; ``None`` when the column does not show every slice of the presence."""
    if held is None:
        return None, 0
    found = table.filter(pc.is_valid(table.column(_SLICES)))
    codes = found.column(_SLICES).combine_chunks()
    labels = found.column("period").unique().to_pylist()
    if found.num_rows != len(pc.unique(held.presence.slice)) or len(pc.unique(codes)) != found.num_rows or \
            len(labels) > 1:
        return None, 0
    base = (periods.parse(labels[0], grain) if labels else 0) - (held.presence.periods - 1)
    return pa.table({"__code": pc.cast(codes, pa.int64()), **{d: found.column(d) for d in dims}}), base


def _holding(fn: Aggregate, name: str, held: dict[str, _Held], partials: dict[str, Partial], deferring: bool):
    """``fn``'s plan, with a reduce that keeps the presence it gets (count_distinct: the triples counted)."""

    def plan(ctx, *args, **kwargs):
        if fn.name == "count_distinct":
            planned = [Partial(args[0], "presence", 0, reduce=lambda presence: presence.count())]
        else:
            planned = list(fn.plan(ctx, *args, **kwargs))
        if len(planned) != 1 or planned[0].how != "presence":
            return planned  # nothing held: `fine_pass` then rolls nothing up
        partial = planned[0]
        reduce = partial.reduce

        def holding(presence: Presence) -> pa.Table:
            # What does not look back reads its own period's triples only; what does says how far (or not).
            held[name] = _Held(presence, reduce, partial.empty, partial.reach if fn.lookback else 0,
                               fn.name == "count_distinct")
            if held[name].reach and deferring:
                # Counted when read (`Fine.table`, `Fine.checked`): no value by the finest slices yet.
                return pa.table({c: pa.array([], pa.int64()) for c in ("__slice", "__period", "__value")})
            return reduce(presence)

        partials[name] = partial
        return [attrs.evolve(partial, reduce=holding)]

    return plan


__all__ = ["Fine", "fine_pass"]
