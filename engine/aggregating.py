"""Base metrics: aggregate the raw rows of one source per (period, slice).

Every base metric of a source is planned into `Partial` columns (sums, counts,
distinct counts …); identical partials are shared between metrics. The result is
small: one row per period and slice that has data. `evaluating` lays it on the full
grid of periods × slices and *finishes* each aggregate there.

How the partials are computed matters on big sources (bench/README.md has the
figures); the plan works the same for every plugin's partials:

* The period and the ``by`` dimensions of a row become one integer *group key*
  (dictionary codes and period offsets multiplied out), so every grouping below hashes
  one small integer column instead of several string ones.
* Filters are not applied by copying columns. The ``where`` masks join the key of one
  grouped pass over all rows; a filtered partial then combines the sub-groups its mask
  keeps (sum of sums, minimum of minima …) on that small result.
* Distinct counts dominate the cost. All the distinct counts of one column share one
  grouping of the rows any of their filters keep by (group key, value) — with a flag per
  filter, when there are several — and each is then a count per group key. That grouping
  runs over ranges of group keys holding about 256k rows each, several at once on several
  cores, so that its hash tables stay small: faster, and far lighter on memory than one
  grouping of every row. When the rows come in time order, a range reads only the batches
  that hold its keys. Values that number densely — whole numbers, and text read
  dictionary-encoded (a column only counted distinct) — make each pair one int64 code,
  ``key × width + value``, hashed by one ``unique`` instead of a grouping by two columns.
  Kept rows of text held across the pieces of a stream (customer ids) are counted when
  their periods are final by sorting them by key (a counting sort of small integers) and
  counting each key's run of values distinct on its own, the runs split among the cores:
  about half the CPU of grouping them by (key, value), when the runs are long. The
  (key, value) pairs a customer state keeps are found the same way (each run's
  ``value_counts``) when they carry no filter flags or extras.
* Periods are looked up per calendar day, and periods and keys are computed batch by
  batch, so that their temporaries are small and the allocator reuses them.
* A ``where`` over one dictionary-encoded column (how `reading` reads the filter
  columns of a Parquet file) is evaluated on the dictionary's few values, then spread
  to the rows by their codes.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from . import periods, textcodes
from . import syntax as s
from .errors import DataError, error
from .formulas import Scope, as_array, evaluate
from .functions import ROWS, Aggregate, AggregateContext, Partial, Registry
from .groupids import GroupNumbers
from .lookalikes import folded
from .presence import Presence
from .model import Metric, Source, Tree
from .reading import Need, ahead

PERIOD = "__period"
_KEY = "__key"

# How the results of one partial over sub-groups combine into the result over their union.
_COMBINE = {"sum": "sum", "count": "sum", "count_all": "sum", "min": "min", "max": "max", "any": "any",
            "all": "all"}
# What a reduction gives a group none of whose rows its filter keeps (as the grouped kernels
# give an all-null group): 0 for sums and counts, null for the others.
_ZERO_IF_NO_ROWS = {"sum", "count", "count_all", "count_distinct"}
# Row-level expressions that work value by value, so they may run on a dictionary's values.
_ELEMENTWISE = (s.Literal, s.Name, s.Column, s.Unary, s.Binary, s.InList, s.IsNull)
# Distinct counts group about this many rows at a time (small hash tables are fast), in at most this many parts;
# four times as many when the rows come in no order of key, so that each part must scan most of them.
_ROWS_PER_PART = 1 << 18
_MAX_PARTS = 64
# Calendar lookups are built for at most this many days (2,700 years); beyond, periods.index runs per row.
_MAX_CALENDAR_DAYS = 1 << 20
# Time zone names whose wall-clock time is UTC.
_UTC = frozenset({"UTC", "Etc/UTC", "Z", "+00:00", "GMT", "Etc/GMT"})


@attrs.frozen
class CallPlan:
    """The partial columns of one aggregate call, by name in `SourceAggregate.table`."""

    call: s.Call
    function: Aggregate
    columns: tuple[str, ...]
    empties: tuple[object, ...]
    undefined: tuple[tuple[str, str], ...] = ()  # (column counting undefined rows, why) per row-level note


@attrs.frozen
class SourceAggregate:
    """One source's base metrics before they are laid on the grid.

    Attributes:
        source: the source.
        table: ``__period``, the ``by`` dimensions, one column per distinct partial; one row per group.
        calls: for each base metric, the plans of its aggregate calls, in formula order.
        dimensions: the ``by`` dimensions the source has (all of them, or it is not split at all).
        extra: the results of custom partials, each a table of ``__period``, the dimensions and its
            column; their groups need not be the groups of ``table`` (customers churn in a period
            where their slice has no rows).
    """

    source: Source
    table: pa.Table
    calls: Mapping[str, tuple[CallPlan, ...]]
    dimensions: tuple[str, ...]
    extra: tuple[pa.Table, ...] = ()
    skipped: tuple[tuple[str, int, str], ...] = ()  # (metric, rows, why) for rows a function could not count


def _type_hint(args) -> str:
    """How to fix a text column given to a numeric aggregate, with one of its values as an example."""
    for a in args:
        if a is not ROWS and not isinstance(a, pa.Scalar) and (pa.types.is_string(a.type)
                                                               or pa.types.is_large_string(a.type)):
            valid = pc.drop_null(a)
            if len(valid):
                # The first value that is not a number (others may be: "28.90" beside "12,50").
                numbers = pc.match_substring_regex(valid, r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
                bad = pc.filter(valid, pc.invert(numbers))
                example = str((bad if len(bad) else valid)[0].as_py())[:20]
                points = pc.filter(valid, pc.match_substring_regex(valid, r"^\s*[-+]?\d*\.\d+\s*$"))
                if re.fullmatch(r"-?\d+,\d+", example.strip()) and len(points):
                    return (f"its values are text: some have a decimal point ({str(points[0].as_py())[:20]!r}) and "
                            f"some a decimal comma ({example!r}, {len(bad):,} of {len(valid):,} values here); write "
                            "them all one way, or cast the column when exporting")
                if re.fullmatch(r"-?\d+,\d+", example.strip()):
                    return (f"its values are text, like {example!r}: numbers with a decimal comma; for a CSV file, "
                            "name it after the path, e.g. --data orders=orders.csv?decimal=, (the same in the Python "
                            "API), or write numbers with a decimal point")
                return (f"its values are text, like {example!r}: write numbers with a decimal point and no "
                        "currency sign or thousands separator (10.5, not 10,5 or $10.50), or cast it when exporting")
    return "check the column's type in the data, or cast it when exporting"


def aggregate_calls(metric: Metric, registry: Registry) -> list[s.Call]:
    """The aggregate calls of a base metric's formula (not their nested scalar calls)."""
    calls, stack = [], [metric.formula]
    while stack:
        node = stack.pop()
        if isinstance(node, s.Call) and node.name in registry.aggregates and _reads_source(node):
            calls.append(node)
            continue
        stack.extend(reversed(node.children()))
    return calls


def _reads_source(call: s.Call) -> bool:
    return any(isinstance(n, s.Column | s.Name) for a in call.args for n in s.walk(a))


def needs(tree: Tree, metrics: list[Metric], registry: Registry, by: list[str]) -> list[Need]:
    """The columns of one source its base metrics read, each with the tree line that needs it.

    Columns only ``where`` filters read are marked ``dictionary``: they are compared with a
    few values (``status == "paid"``), so reading them dictionary-encoded is cheaper. So are the
    columns only counted distinct (``count_distinct(invoices.InvoiceNo)``): a Parquet file stores
    them as a dictionary already, and their distinct pairs are found on its integer indices.
    """
    source = tree.sources[metrics[0].source]
    found: list[Need] = [Need(source.time, source.span, "its time column")]
    for dim in by:
        if dim in source.dimensions:
            found.append(Need(dim, source.span, f"the dimension '{dim}'"))
    aggregated = {n.column for m in metrics for n in s.walk(m.formula) if isinstance(n, s.Column)}
    counted = _counted_distinct_only(metrics) - {source.time, source.entity, *by}
    for metric in metrics:
        found.extend(Need(n.column, n.span, f"read by metric '{metric.name}'", n.column in counted)
                     for n in s.walk(metric.formula) if isinstance(n, s.Column))
        if metric.where is not None:
            found.extend(Need(n.column, n.span, f"read by metric '{metric.name}'", n.column not in aggregated)
                         for n in s.walk(metric.where) if isinstance(n, s.Column))
        if any(registry.aggregates[c.name].entity for c in aggregate_calls(metric, registry)):
            if source.entity is None:
                raise DataError(error(
                    f"metric '{metric.name}' needs customers (an entity), but source '{source.name}' declares none",
                    metric.span, f"add `entity <column>` to source {source.name}", "entity"))
            found.append(Need(source.entity, source.span, "its entity column"))
    return found


def _counted_distinct_only(metrics: list[Metric]) -> set[str]:
    """The columns the metrics' formulas read only as the whole argument of ``count_distinct`` (invoice numbers):
    read dictionary-encoded, their distinct pairs are found on the dictionary's indices, not by hashing text."""
    distinct, other = set(), set()
    for metric in metrics:
        bare = {id(n.args[0]): n.args[0].column for n in s.walk(metric.formula) if isinstance(n, s.Call)
                and n.name == "count_distinct" and len(n.args) == 1 and isinstance(n.args[0], s.Column)}
        distinct.update(bare.values())
        other.update(n.column for n in s.walk(metric.formula) if isinstance(n, s.Column) and id(n) not in bare)
    return distinct - other


@attrs.frozen(eq=False)
class _Spec:
    """One partial column to compute: ``how`` over ``values`` (``None``: the rows) where mask ``mask`` holds."""

    column: str
    how: str
    values: Any
    mask: str  # a key of the masks; "" for every row
    extra: Any = None  # presence: the row-level integer whose maximum each triple carries
    reduce: Any = None  # presence: the function from the `Presence` to its counts


@attrs.frozen(eq=False)
class _Planned:
    """One table's partials, planned: what `compute_partials` (or one step of a stream) computes."""

    plans: Mapping[str, tuple[CallPlan, ...]]
    specs: tuple[_Spec, ...]
    masks: Mapping[str, Any]
    keys: GroupKeys
    rows: int
    dims: tuple[str, ...]
    custom: tuple[pa.Table, ...]
    presences: Mapping[str, s.Call]
    skipped: Mapping[tuple[str, str], int]  # (metric, why) → how many rows: rows a metric's function left out

    @property
    def streams(self) -> bool:
        """Whether the partials merge across batches of rows (custom reduces need all the rows at once)."""
        return not self.custom and all(_mergeable(sp) for sp in self.specs)


def _mergeable(sp: _Spec) -> bool:
    return sp.how in _COMBINE or sp.how in ("count_distinct", "presence") or (
        sp.how == "mean" and _is_plain_number(sp.values))


def _skipped(planned_skips: Mapping[tuple[str, str], int], source: Source) -> tuple[tuple[str, int, str], ...]:
    return tuple((metric, rows, f"{rows:,} row(s) of source '{source.name}' {why}")
                 for (metric, why), rows in planned_skips.items() if rows)


def aggregate(tree: Tree, source: Source, table: pa.Table, metrics: list[Metric], grain: str, by: list[str],
              params: Mapping[str, float], registry: Registry) -> SourceAggregate:
    planned = _plan(tree, source, table, metrics, grain, by, params, registry)
    grouped, found = compute_partials(planned.keys, list(planned.specs), planned.masks, planned.rows)
    custom = [*planned.custom, *_presence_tables(planned.keys, found, planned.presences, source)]
    return SourceAggregate(source, grouped, planned.plans, planned.dims, tuple(custom),
                           _skipped(planned.skipped, source))


def aggregate_stream(tree: Tree, source: Source, pieces: Iterable, metrics: list[Metric], grain: str,
                     by: list[str], params: Mapping[str, float], registry: Registry) -> SourceAggregate:
    """`aggregate` over a stream of tables (`metrictree.reading.Piece`: batches of rows of one source, of the
    same columns).

    Each batch is reduced to a *partial state* — its sums, counts, minima … per (group key, filter), and
    for distinct counts and customer states its distinct (group key, value) pairs, the group keys as
    numbers shared by the whole stream (`metrictree.groupids`) — and the states are merged as they come,
    so the memory held depends on the number of groups and of distinct values, not on the number of rows.
    (A plain distinct count of text hands on its kept rows instead, grouped once when their periods are
    final or when they outgrow what was merged last: a batch repeats few of its pairs.) When the files' statistics say that no later piece holds rows of a period (rows
    written in time order), the distinct counts of the groups of that period are final: they are counted
    and their pairs dropped. Partials that need every row at once (a plugin's custom reduce) make the
    stream be gathered into one table first.
    """
    pieces = iter(pieces)
    first = next(pieces)
    if first.last:
        return aggregate(tree, source, first.table, metrics, grain, by, params, registry)
    # Each later piece is read while the one before is aggregated.
    pieces = ahead(pieces)
    planned = _plan(tree, source, first.table, metrics, grain, by, params, registry)
    if not planned.streams:
        whole = pa.concat_tables([first.table, *(p.table for p in pieces)],
                                 promote_options="permissive").unify_dictionaries()
        return aggregate(tree, source, whole, metrics, grain, by, params, registry)
    state = _StreamState(planned.dims)
    try:
        state.add(planned, _period_of(first, source, grain))
        del first
        piece = next(pieces, None)
        while piece is not None:
            # Drop each piece's plan (which holds its columns) once aggregated; the last one's is needed to finish.
            planned = None
            planned = _plan(tree, source, piece.table, metrics, grain, by, params, registry)
            state.add(planned, _period_of(piece, source, grain))
            piece = None
            piece = next(pieces, None)
        return state.finish(source, planned)
    finally:
        state.settle()


def _period_of(piece, source: Source, grain: str) -> int | None:
    """The period of a piece's watermark: no later piece has rows in an earlier period."""
    if piece.after is None:
        return None
    time_type = piece.table.schema.field(source.time).type
    return period_index(pa.array([piece.after], time_type), grain)[0].as_py()


class _StreamState:
    """The merged partial state of the batches seen so far (see `aggregate_stream`)."""

    def __init__(self, dims: tuple[str, ...]) -> None:
        self.dims = dims
        self.groups: list[pa.Table] = []  # decoded (period, dims, filters) sub-groups, with their reductions
        # Per column (its first spec): its distinct pairs, ``__key`` a group's number in ``self.numbers``.
        self.pairs: dict[str, list[pa.Table]] = {}
        self.numbers = GroupNumbers((PERIOD, *dims))
        self.merged_rows: dict[str, int] = {}
        self.repeated: set[str] = set()  # columns whose held tables may repeat a pair (kept rows, not yet grouped)
        self.settled: dict[str, list[pa.Table]] = {}  # per customer state's column: its final periods' pairs, merged
        self.vocabulary: dict[str, pa.Array] = {}  # per column: its distinct values, in code order
        self.counted_by: dict[str, tuple] = {}  # per column: its filters, their flag columns, whether states read it
        self.done: dict[str, list[pa.Table]] = {}  # per column: distinct counts of the periods already final
        self.how: dict[str, str] = {}
        self.skipped: dict[tuple[str, str], int] = {}
        self.wanted = self.steps = self.mask_columns = None
        self._holding: ThreadPoolExecutor | None = None  # merges each piece's pairs while the next is worked on
        self._pending: list = []

    def add(self, planned: _Planned, complete_before: int | None = None) -> None:
        specs = list(planned.specs)
        combinable = [sp for sp in specs if sp.how in _COMBINE or sp.how == "mean"]
        distinct = [sp for sp in specs if sp.how in ("count_distinct", "presence")]
        self.mask_columns = {m: f"__m{i}" for i, m in enumerate(dict.fromkeys(sp.mask for sp in combinable + distinct
                                                                              if sp.mask))}
        first, self.wanted, self.steps = _first_grouping(planned.keys.codes, combinable, planned.masks,
                                                         self.mask_columns, planned.rows)
        self.how = {out: _COMBINE[h] for (_, h), out in self.steps.items()}
        self.groups = self._merged(self.groups, self._decoded(planned.keys, first),
                                   [*self.mask_columns.values()], {c: self.how[c] for c in self.how})
        if distinct:
            found = _distinct_counts(planned.keys.codes, distinct, planned.masks, planned.rows, first,
                                     self.mask_columns, pairs_only=True)
            groups: dict[int, list[_Spec]] = {}
            for sp in distinct:
                groups.setdefault(id(sp.values), []).append(sp)
            for group in groups.values():
                mask_keys = list(dict.fromkeys(sp.mask for sp in group))
                self.counted_by[group[0].column] = (mask_keys, _flags(group),
                                                    any(sp.how == "presence" for sp in group))
            self._hold(planned.keys, found, complete_before)
        for skip, rows in planned.skipped.items():
            self.skipped[skip] = self.skipped.get(skip, 0) + rows

    def _hold(self, keys: GroupKeys, found: dict, complete_before: int | None) -> None:
        """Merge a piece's distinct pairs into those held (`_held`). Customer states' values are coded on one
        core (`_coded`): that runs on a thread of its own, one piece after another in the order they came, while
        the caller goes on with the next piece (its periods, filters and first grouping, on one core too). Plain
        distinct counts are merged in the caller's thread (their final periods are counted on every core
        already, and merging them beside the next piece would hold both at once), as is everything when Arrow
        has one core."""
        if pa.cpu_count() < 2 or not any(self.counted_by[name][2] for name in found):
            while self._pending:  # the pieces before first, in order
                self._pending.pop(0).result()
            self._held(keys, found, complete_before)
            return
        if self._holding is None:
            self._holding = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrictree-pairs")
        self._pending.append(self._holding.submit(self._held, keys, found, complete_before))
        # At most one piece's pairs wait: the memory held stays that of one piece more (as when reading ahead).
        while len(self._pending) > 1:
            self._pending.pop(0).result()

    def settle(self) -> None:
        """Wait for the pieces' pairs still being merged (an error there is raised here), and stop the thread."""
        try:
            while self._pending:
                self._pending.pop(0).result()
        finally:
            if self._holding is not None:
                self._holding.shutdown(wait=True, cancel_futures=True)
                self._holding = None

    def _held(self, keys: GroupKeys, found: dict, complete_before: int | None) -> None:
        """A piece's distinct pairs merged into those held: customer states' values coded, group keys numbered;
        plain distinct counts of the periods now final counted and dropped."""
        for name, (pairs, repeats) in found.items():
            if repeats:
                self.repeated.add(name)
            held = self.pairs.setdefault(name, [])
            mask_keys, flags, states = self.counted_by[name]
            if states:
                # Customer states hold their pairs to the end: as integer codes, 4 bytes each.
                pairs = pairs.set_column(pairs.schema.get_field_index("__x"), "__x",
                                         self._coded(name, pairs.column("__x")))
            held.append(self._numbered(keys, pairs))
            held[:] = _same_values(held)
            if complete_before is not None and not states:
                # Every pair final (a range of periods ending before the data does): an empty table still
                # says what the pairs' columns are when the state finishes.
                held[:] = self._finalised(name, held, complete_before, mask_keys, flags) or [held[-1].slice(0, 0)]
            elif complete_before is not None:
                # A customer state's pairs of the periods now final are merged here, beside the reading of the
                # next pieces, not all at the end (`finish`): no later piece adds to them.
                finals, rest = self._split_at(held, complete_before)
                if finals:
                    self.settled.setdefault(name, []).append(_deduplicated(finals))
                held[:] = rest or [held[-1].slice(0, 0)]
            # Pairs repeated across batches (a customer active in the same month in two of them) are held
            # once they outgrow what was merged last: amortised, each pair is merged a bounded number of times.
            size = sum(p.num_rows for p in held)
            if size > 2 * max(self.merged_rows.get(name, 0), _ROWS_PER_PART * 64):
                merged = _deduplicated(held)
                self.pairs[name] = [merged]
                self.merged_rows[name] = merged.num_rows

    def _coded(self, name: str, values) -> pa.Array:
        """The values of a column's pairs as integer codes shared by every piece (a vocabulary that grows), so
        that pairs merge as integers, and take 4 bytes a pair whatever the values are."""
        values = _array(values)
        seen = self.vocabulary.get(name)
        if seen is not None and not pa.types.is_dictionary(values.type) and seen.type != values.type:
            # Text counted as numbers in some pieces and as text in others (`textcodes`): text for both.
            if seen.type == pa.int64():
                seen = self.vocabulary[name] = textcodes.as_text(seen, values.type)
            elif values.type == pa.int64():
                values = textcodes.as_text(values, seen.type)
        if seen is not None and not pa.types.is_dictionary(values.type):
            # Most of a later piece's customers were seen before: each value looked up in the vocabulary (one
            # hash set of it), and only the values it lacks numbered, in the order they first occur — the codes
            # that numbering every value first would give, for a fifth less CPU.
            codes = pc.index_in(values, value_set=seen)
            missing = pc.is_null(codes)
            codes = pc.cast(codes, pa.int32())
            if codes.null_count:
                fresh = pc.dictionary_encode(pc.filter(values, missing))
                numbers = pc.add(pc.cast(fresh.indices, pa.int32()), pa.scalar(len(seen), pa.int32()))
                codes = pc.replace_with_mask(codes, missing, numbers)
                if len(fresh.dictionary):
                    self.vocabulary[name] = pa.concat_arrays([seen, fresh.dictionary.cast(seen.type)])
            return codes
        encoded = values if pa.types.is_dictionary(values.type) else pc.dictionary_encode(values)
        if seen is None:
            self.vocabulary[name] = encoded.dictionary
            return pc.cast(encoded.indices, pa.int32())
        codes = pc.index_in(encoded.dictionary, value_set=seen)
        new = pc.is_null(codes)
        if pc.any(new).as_py():
            fresh = pc.filter(encoded.dictionary, new)
            numbers = pa.array(range(len(seen), len(seen) + len(fresh)), pa.int32())
            codes = pc.replace_with_mask(pc.cast(codes, pa.int32()), new, numbers)
            self.vocabulary[name] = pa.concat_arrays([seen, fresh.cast(seen.type)])
        return pc.take(pc.cast(codes, pa.int32()), encoded.indices)

    def _numbered(self, keys: GroupKeys, table: pa.Table) -> pa.Table:
        """``table`` with its group keys replaced by the stream's group numbers (`GroupNumbers`)."""
        numbers = self.numbers.number(_array(table.column(_KEY)), lambda k: keys.decode(k, dictionary=True))
        return table.set_column(table.schema.get_field_index(_KEY), _KEY, numbers)

    def _group_values(self, table: pa.Table) -> pa.Table:
        """``table`` with its group numbers replaced by their period and dimension values."""
        values = self.numbers.values(_array(table.column(_KEY)))
        return pa.table({**values, **{c: table.column(c) for c in table.column_names if c != _KEY}})

    def _finalised(self, name: str, held: list[pa.Table], before: int | None, mask_keys: list[str],
                   flags: dict[str, str]) -> list[pa.Table]:
        """Count the pairs of the periods before ``before`` (no later piece has rows there; ``None``: every
        period, and the rows without one) and drop them."""
        finals, rest = self._split_at(held, before) if before is not None else ([t for t in held if t.num_rows], [])
        if finals:
            final = pa.concat_tables(finals, promote_options="permissive").unify_dictionaries() \
                if len(finals) > 1 else finals[0]
            if len(finals) > 1 or name in self.repeated:
                # A period that spans two pieces has pairs in both: each counted once, key range by key range.
                done = self._counted_once(final, mask_keys, flags)
            else:
                counts = {f"__n{i}": pc.cast(pc.greater(final.column(flags[m]), 0) if m and flags else
                                             pc.is_valid(final.column("__x")), pa.int64())
                          for i, m in enumerate(mask_keys)}
                done = pa.table({_KEY: final.column(_KEY), **counts}).group_by(
                    [_KEY], use_threads=False).aggregate([(c, "sum") for c in counts])
                done = self._group_values(done.rename_columns([c.removesuffix("_sum") for c in done.column_names]))
            self.done.setdefault(name, []).append(done)
        return rest

    def _split_at(self, held: list[pa.Table], before: int) -> tuple[list[pa.Table], list[pa.Table]]:
        """The pairs of the periods before ``before`` (none empty), and the others: only the tables that straddle
        ``before`` are split (copied); the others move as they are."""
        finals, rest = [], []
        period_of = self.numbers.values()[PERIOD]
        for table in held:
            period = pc.take(period_of, table.column(_KEY))
            low, high = (v.as_py() for v in pc.min_max(period).values())
            if high is not None and high < before and not period.null_count:
                finals.append(table)
            elif low is not None and low >= before:
                rest.append(table)
            elif table.num_rows:
                early = pc.less(period, pa.scalar(before, period.type))
                finals.append(table.filter(early))
                rest.append(table.filter(pc.invert(early)))  # rows without a time fall in no period
        return [t for t in finals if t.num_rows], rest

    def _counted_once(self, pairs: pa.Table, mask_keys: list[str], flags: dict[str, str]) -> pa.Table:
        """Per (period, dimensions): how many distinct values ``pairs`` (by group number, some repeated) have
        under each filter (``__n0`` …). The repeats are merged one range of group numbers at a time (about
        `_ROWS_PER_PART` pairs each, as `_distinct_counts` does), so that no hash table holds every pair with its
        text at once — or, when the keys are few for the rows, counted key run by key run (`_counted_in_runs`)."""
        flag_columns = list(dict.fromkeys(flags.values()))
        coded = pairs.select([_KEY, "__x", *flag_columns])
        per_key = pc.value_counts(coded.column(_KEY))
        runs = _counted_in_runs(coded, per_key, mask_keys, flags)
        if runs is not None:
            return self._group_values(runs)
        ranges = _key_ranges(pa.table({_KEY: per_key.field("values"), "count_all": per_key.field("counts")}), [],
                             _ROWS_PER_PART)
        batches = coded.to_batches()
        spans = [tuple(v.as_py() for v in pc.min_max(b.column(0)).values()) for b in batches]
        if sum(len(_batches_holding(batches, spans, *r)) for r in ranges) > 4 * len(batches):
            ranges = _key_ranges(pa.table({_KEY: per_key.field("values"), "count_all": per_key.field("counts")}), [],
                                 4 * _ROWS_PER_PART)

        def count(bounds: tuple[int, int] | None) -> pa.Table:
            if bounds is None:
                part = coded
            else:
                candidates = pa.Table.from_batches(_batches_holding(batches, spans, *bounds), coded.schema)
                part = candidates.filter(_between(candidates.column(_KEY), *bounds))
            merged = part.group_by([_KEY, "__x"], use_threads=False).aggregate(
                [([], "count_all"), *((f, "max") for f in flag_columns)])
            counts = {f"__n{i}": pc.cast(pc.greater(merged.column(f"{flags[m]}_max"), 0) if m and flags else
                                         pc.is_valid(merged.column("__x")), pa.int64())
                      for i, m in enumerate(mask_keys)}
            counted = pa.table({_KEY: merged.column(_KEY), **counts}).group_by([_KEY], use_threads=False).aggregate(
                [(c, "sum") for c in counts])
            return counted.rename_columns([c.removesuffix("_sum") for c in counted.column_names])

        if not ranges:
            parts = [count(None)]
        else:
            with ThreadPoolExecutor(max_workers=min(len(ranges), pa.cpu_count())) as pool:
                parts = list(pool.map(count, ranges))
        return self._group_values(pa.concat_tables(parts))

    @staticmethod
    def _rekeyed(table: pa.Table, key_of: pa.Array) -> pa.Table:
        """Pairs by group number, by the final group key instead (``key_of``: the key of each number)."""
        return table.set_column(table.schema.get_field_index(_KEY), _KEY, pc.take(key_of, table.column(_KEY)))

    def _decoded(self, keys: GroupKeys, table: pa.Table) -> pa.Table:
        """``table`` with its group keys replaced by their period and dimension values."""
        decoded = keys.decode(_array(table.column(_KEY)), dictionary=True)
        return pa.table({**decoded, **{c: table.column(c) for c in table.column_names if c != _KEY}})

    def _merged(self, held: list[pa.Table], new: pa.Table | None, keys: list[str], ops: dict[str, str]) -> list:
        tables = [*held, new] if new is not None else held
        if len(tables) == 1:
            return tables
        table = pa.concat_tables(tables, promote_options="permissive").unify_dictionaries()
        by = [PERIOD, *self.dims, *keys]
        merged = table.group_by(by, use_threads=False).aggregate([(c, op, _options(op)) for c, op in ops.items()])
        return [merged.select([*by, *(f"{c}_{op}" for c, op in ops.items())]).rename_columns([*by, *ops])]

    def _encoded(self, tables: list[pa.Table]) -> tuple[GroupKeys, list[pa.Table]]:
        """One group key encoding over the period and dimensions of ``tables``; each with ``__key`` instead."""
        period = pa.chunked_array([t.column(PERIOD).combine_chunks() for t in tables])
        kinds = {d: tables[0].schema.field(d).type for d in self.dims}
        dims = {d: pa.chunked_array([t.column(d).combine_chunks().cast(kinds[d]) for t in tables]) for d in self.dims}
        keys = GroupKeys.encode(period, dims)
        codes = _array(keys.codes)
        offsets = list(itertools.accumulate([0, *(t.num_rows for t in tables)]))
        coded = [t.drop_columns([PERIOD, *self.dims]).add_column(0, _KEY, codes.slice(lo, hi - lo))
                 for t, lo, hi in zip(tables, offsets, offsets[1:], strict=False)]
        return keys, coded

    def finish(self, source: Source, planned: _Planned) -> SourceAggregate:
        """The merged state as a `SourceAggregate`: one group key encoding over every group and pair."""
        self.settle()
        for name, held in self.pairs.items():
            mask_keys, flags, states = self.counted_by[name]
            if not states and held:
                # Plain distinct counts need no pairs any more: counted range by range, as final periods are.
                empty = held[0].slice(0, 0)
                self._finalised(name, held, None, mask_keys, flags)
                self.pairs[name] = [empty]
        names = list(self.pairs)
        done_names = [n for n in names if self.done.get(n)]
        done_tables = [pa.concat_tables(self.done[n], promote_options="permissive") for n in done_names]
        # The pairs' group numbers become keys of the final encoding through the table of every numbered group.
        numbered = [pa.table(self.numbers.values())] if names else []
        keys, coded = self._encoded([*self.groups, *numbered, *done_tables])
        finished = dict(zip(done_names, coded[len(coded) - len(done_tables):], strict=True))
        groups = coded[:len(self.groups)]
        key_of = _array(coded[len(self.groups)].column(_KEY)) if names else None
        first = groups[0] if len(groups) == 1 else _regrouped(pa.concat_tables(groups), [*self.mask_columns.values()],
                                                            self.how)
        # Each settled table holds periods of its own, merged already: only the pieces' pairs still held can repeat.
        pair_tables = {n: _deduplicated([self._rekeyed(p, key_of) for p in [*self.settled.get(n, []), *self.pairs[n]]])
                       for n in names}

        specs = list(planned.specs)
        combinable = [sp for sp in specs if sp.how in _COMBINE or sp.how == "mean"]
        present = _array(pc.unique(first.column(_KEY)) if self.mask_columns else first.column(_KEY))
        results = _combined(first, present, combinable, self.mask_columns, self.wanted, self.steps)
        shared, reduces = {}, []
        by_values: dict[int, list[_Spec]] = {}
        for sp in specs:
            if sp.how in ("count_distinct", "presence"):
                by_values.setdefault(id(sp.values), []).append(sp)
        for group in by_values.values():
            pairs_table = pair_tables[group[0].column]
            extras = _extras(group)
            mask_keys = list(dict.fromkeys(sp.mask for sp in group))
            parts = [_from_pairs(pairs_table, mask_keys, _flags(group), tuple(extras.values()))]
            if group[0].column in finished:
                # The periods counted as they became final: their counts, in the same shape.
                done = finished[group[0].column]
                parts.append({m: (done.column(_KEY), done.column(f"__n{i}")) for i, m in enumerate(mask_keys)})
            counted = _gathered(group, parts, extras)
            for sp, value in counted.items():
                if sp.how == "presence":
                    same = (sp.mask, id(sp.extra))
                    if same not in shared:
                        shared[same] = _presence(keys, *value, entities=len(self.vocabulary[group[0].column]))
                    reduces.append((sp, shared[same]))
                else:
                    results[sp.column] = _align(present, *value, 0)
        found = _reduced(reduces)
        table = pa.table({**keys.decode(present), **{sp.column: results[sp.column] for sp in specs
                                                     if sp.how != "presence"}})
        extra = _presence_tables(keys, found, planned.presences, source)
        skipped = _skipped(self.skipped, source)
        return SourceAggregate(source, table, planned.plans, planned.dims, tuple(extra), skipped)


def _regrouped(table: pa.Table, keys: list[str], ops: Mapping[str, str]) -> pa.Table:
    """Rows of ``table`` with the same ``__key`` and ``keys`` merged: each column by its ``ops``."""
    by = [_KEY, *keys]
    merged = table.group_by(by, use_threads=False).aggregate([(c, op, _options(op)) for c, op in ops.items()])
    return merged.select([*by, *(f"{c}_{op}" for c, op in ops.items())]).rename_columns([*by, *ops])


# A key's distinct values are counted by sorting the rows by key and counting each key's run on its own
# (`_counted_in_runs`) when the runs average at least this many rows: one call per run then costs less than
# hashing its rows with their key.
_ROWS_PER_RUN = 1 << 10
# ... and only for at most this many rows at once: sorting them takes 12 bytes a row beside them (their keys in one
# array, and their order), 50 MB here, and each run's values are taken out besides; more rows (the 200M-row
# benchmark's months, 14M rows each) are merged one range of keys at a time as before, whose memory is bounded by
# `_ROWS_PER_PART` (with runs of 14M rows that evaluation peaked at 2.2-2.4 GB, against 1.3 GB).
_ROWS_IN_RUNS = 1 << 22
_RUN_TYPES = (pa.types.is_integer, pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
              pa.types.is_large_binary, pa.types.is_fixed_size_binary)


def _key_runs(rows: pa.Table, per_key: pa.StructArray) -> tuple[pa.Array, list[tuple[int, int]], pa.Array] | None:
    """``rows`` (``__key``, ``__x`` …) by key run: the keys in order, each one's run as (start, size) in ``order``,
    and ``order`` — the rows' indices sorted by key (a counting sort: keys are small integers; each run's rows are
    then taken where they are, with no sorted copy of every value). ``per_key``: the rows' ``value_counts`` of
    ``__key``. ``None`` when the runs are short (many keys: a call per run would cost more than hashing saves),
    the rows too many at once (`_ROWS_IN_RUNS`), or the values neither whole numbers nor text."""
    keys = per_key.field("values")
    if not rows.num_rows or len(keys) * _ROWS_PER_RUN > rows.num_rows or rows.num_rows > _ROWS_IN_RUNS or \
            keys.null_count or not any(test(rows.schema.field("__x").type) for test in _RUN_TYPES):
        return None
    order = pc.sort_indices(rows.column(_KEY).combine_chunks())  # one array: a counting sort, not a merge of chunks
    in_order = pc.sort_indices(keys)
    sizes = pc.take(per_key.field("counts"), in_order).to_pylist()
    starts = itertools.accumulate(sizes[:-1], initial=0)
    return pc.take(keys, in_order), list(zip(starts, sizes, strict=True)), order


def _counted_in_runs(rows: pa.Table, per_key: pa.StructArray, mask_keys: list[str],
                     flags: dict[str, str]) -> pa.Table | None:
    """Per key, how many distinct values ``rows`` (``__key``, ``__x`` and the filters' flags; a pair may repeat)
    have under each filter (``__n0`` …): the counts a grouping by (key, value) gives, without hashing the key.

    Each key's run of values (`_key_runs`) is counted distinct on its own, the runs split among the cores.
    ``None`` (the caller groups by (key, value)) where `_key_runs` takes no runs: floating-point values, for
    one, are counted by the grouping, as everywhere else."""
    found = _key_runs(rows, per_key)
    if found is None:
        return None
    keys, runs, order = found

    def count(run: tuple[int, int]) -> list[int]:
        at = order.slice(*run)
        run_values = pc.take(rows.column("__x"), at)
        return [pc.count_distinct(run_values if not (m and flags) else pc.filter(
            run_values, pc.greater(pc.take(rows.column(flags[m]), at), 0)), mode="only_valid").as_py()
                for m in mask_keys]

    if pa.cpu_count() < 2 or len(runs) < 2:
        counts = [count(run) for run in runs]
    else:
        with ThreadPoolExecutor(max_workers=min(len(runs), pa.cpu_count())) as pool:
            counts = list(pool.map(count, runs))
    return pa.table({_KEY: keys, **{f"__n{i}": pa.array([c[i] for c in counts], pa.int64())
                                     for i in range(len(mask_keys))}})


def _pairs_in_runs(part: pa.Table, rows: bool) -> pa.Table | None:
    """The distinct (``__key``, ``__x``) pairs of ``part`` (with their number of rows as ``count_all`` when
    ``rows``), as a grouping by the two columns gives them but by key run (see `_counted_in_runs`): the rows
    sorted by key, each run's values counted (`value_counts`). ``None`` under the same conditions."""
    runs = _key_runs(part, pc.value_counts(part.column(_KEY)))
    if runs is None:
        return None
    keys, spans, order = runs
    found = [pc.value_counts(pc.take(part.column("__x"), order.slice(*span))) for span in spans]
    keys = keys.to_pylist()
    kind = part.schema.field("__x").type
    key_type = part.schema.field(_KEY).type
    out = {_KEY: pa.chunked_array([pa.repeat(pa.scalar(k, key_type), len(f)) for k, f in zip(keys, found,
                                                                                           strict=True)], key_type),
           "__x": pa.chunked_array([f.field("values") for f in found], kind)}
    if rows:
        out["count_all"] = pa.chunked_array([f.field("counts") for f in found], pa.int64())
    return pa.table(out)


def _same_values(held: list[pa.Table]) -> list[pa.Table]:
    """A column's pairs with one type of values: where some pieces' text was counted as numbers
    (`textcodes.as_numbers`) and others' as text, the numbers turned back into the same text."""
    kinds = {t.schema.field("__x").type for t in held}
    if len(kinds) < 2:
        return held
    text = next(k for k in kinds if k != pa.int64())
    at = held[0].schema.get_field_index("__x")
    return [t.set_column(at, "__x", textcodes.as_text(t.column("__x"), text)) if t.schema.field("__x").type ==
            pa.int64() else t for t in held]


def _deduplicated(pieces: list[pa.Table]) -> pa.Table:
    """Distinct (key, value) pairs of several batches as one table: the pairs of a key found in more than one
    batch are merged (their rows summed, extras maximised); the others, most of them when the rows come in
    time order, are taken as they are."""
    if len(pieces) == 1:
        return pieces[0]
    ops = {c: ("max" if c.startswith("__e") else "sum") for c in pieces[0].column_names if c not in (_KEY, "__x")}
    seen = pa.chunked_array([pc.unique(p.column(_KEY)) for p in pieces])
    counted = pc.value_counts(seen)
    shared = pc.filter(counted.field("values"), pc.greater(counted.field("counts"), 1))
    if not len(shared):
        return pa.concat_tables(pieces)
    apart, together = [], []
    for piece in pieces:
        repeated = pc.is_in(piece.column(_KEY), value_set=shared)
        apart.append(piece.filter(pc.invert(repeated)))
        together.append(piece.filter(repeated))
    merging = pa.concat_tables(together, promote_options="permissive").unify_dictionaries()
    # Of those pairs, most are in one piece only (a customer active in the month's part in one of them): only the
    # pairs found more than once are merged. Found by sorting one int64 a pair: 5.1M pairs (by channel x region x
    # segment, ten pieces) in 0.5 s, against 1.6 s to group them all by two columns and 3.2 s to count them in a hash
    # table (nearly all distinct). Two cores do not help: it is the first touch of fresh memory that costs.
    once, twice = _split_repeated(merging)
    if once is not None:
        apart.append(merging.take(once))
        merging = merging.take(twice)
    merged = _regrouped(merging, ["__x"], ops)
    return pa.concat_tables([*apart, merged.select(pieces[0].column_names)], promote_options="permissive")


def _split_repeated(pairs: pa.Table) -> tuple[pa.Array, pa.Array] | tuple[None, None]:
    """The rows of the (key, value) pairs found once in ``pairs``, and those of the pairs found more than once; ``None``
    twice when the pairs are not both integers that one int64 can hold (values not coded: text, nulls)."""
    key, value = _array(pairs.column(_KEY)), _array(pairs.column("__x"))
    if not len(key) or not (pa.types.is_integer(key.type) and pa.types.is_integer(value.type)) or \
            key.null_count or value.null_count:
        return None, None
    keys, values = pc.min_max(key), pc.min_max(value)
    if keys["min"].as_py() < 0 or values["min"].as_py() < 0 or \
            (keys["max"].as_py() + 1) * (values["max"].as_py() + 1) >= 1 << 63:
        return None, None
    code = pc.add(pc.multiply(pc.cast(key, pa.int64()), values["max"].as_py() + 1), pc.cast(value, pa.int64()))
    order = pc.sort_indices(code)
    ordered = pc.take(code, order)
    same = pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))  # equal to the next one
    no = pa.array([False])
    repeated = pc.or_(pa.concat_arrays([no, same]), pa.concat_arrays([same, no]))
    return pc.filter(order, pc.invert(repeated)), pc.filter(order, repeated)


def _presence_tables(keys: GroupKeys, found: Mapping[str, pa.Table], presences: Mapping[str, s.Call],
                     source: Source) -> list[pa.Table]:
    tables = []
    for column_name, result in found.items():
        call = presences[column_name]
        if not {"__slice", "__period", "__value"} <= set(result.column_names):
            raise DataError(error(f"{call.name}() failed on source '{source.name}': its reduce returned "
                                  f"{result.column_names}, not __slice, __period and __value", call.span,
                                  "this is a problem in the plugin that provides the function", "function"))
        tables.append(keys.presence_groups(result, column_name))
    return tables


def _plan(tree: Tree, source: Source, table: pa.Table, metrics: list[Metric], grain: str, by: list[str],
          params: Mapping[str, float], registry: Registry) -> _Planned:
    period = period_index(table.column(source.time), grain)
    dims = tuple(d for d in by if d in source.dimensions)
    columns: dict[str, pa.ChunkedArray] = {}
    masks: dict[str, pa.ChunkedArray] = {}
    specs: dict[tuple, _Spec] = {}
    held: list[object] = []  # every planned values array stays alive, so no two share an id()
    custom: list[pa.Table] = []
    plans: dict[str, tuple[CallPlan, ...]] = {}
    presences: dict[str, s.Call] = {}
    skipped: dict[tuple[str, str], int] = {}
    near_misses: dict[str, dict[str, int]] = {}  # per filter: the rows it leaves out by case or spacing alone
    guests: set[str] = set()  # the metrics whose rows without an entity are counted
    nulls_kept: dict[tuple[int, str], int] = {}

    def kept_nulls(values: pa.ChunkedArray | pa.Array, mask, mask_key: str) -> int:
        """How many rows the filter keeps have no value in ``values`` (counted once per column and filter)."""
        if (id(values), mask_key) not in nulls_kept:
            nulls = values.null_count
            if nulls and mask is not None:
                nulls = pc.sum(pc.cast(pc.and_(mask, pc.is_null(values)), pa.int64())).as_py() or 0
            nulls_kept[(id(values), mask_key)] = nulls
        return nulls_kept[(id(values), mask_key)]

    def column(node: s.Column):
        if node.column not in columns:
            columns[node.column] = table.column(node.column)
        return columns[node.column]

    def name(node: s.Name):
        if node.name in tree.sources:
            return ROWS
        return pa.scalar(float(params[node.name]))

    def mask_of(metric: Metric):
        if metric.where is None:
            return None, ""
        key = metric.where.to_source()
        if key not in masks:
            value = _row_condition(metric, column, name, registry, table.num_rows)
            masks[key] = pc.fill_null(as_array(value, table.num_rows), False)
        return masks[key], key

    def add_custom(partial: Partial, mask, call: s.Call) -> str:
        """A custom partial: its ``reduce`` gets the kept rows with their group keys and returns one value a group."""
        column = f"__pc{len(custom)}"
        keys = [PERIOD, *dims]
        rows = pa.table({PERIOD: period, **{d: table.column(d) for d in dims},
                         "__value": as_array(partial.values, table.num_rows), "__time": table.column(source.time)})
        if mask is not None:
            rows = rows.filter(mask)
        try:
            result = partial.reduce(rows, keys)
            result = result.select([*keys, "__value"]).rename_columns([*keys, column])
        except (ValueError, TypeError, KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(error(f"{call.name}() failed on source '{source.name}': {exc}", call.span,
                                  "this is a problem in the plugin that provides the function", "function")) from None
        custom.append(result)
        return column

    def add_presence(partial: Partial, mask, mask_key: str, metric: Metric, call: s.Call) -> str:
        """A presence partial: its reduce gets the (entity, slice, period) triples of the kept rows."""
        values = partial.values
        held.extend([values, partial.extra])
        if metric.name not in guests:
            # The kept rows without an entity (once a metric).
            guests.add(metric.name)
            why = (f"have no {source.entity or 'entity'} (guest rows) and are not counted as customers by "
                   f"{call.name}()")
            skipped[metric.name, why] = kept_nulls(values, mask, mask_key)
        key = ("presence", len(specs))
        specs[key] = _Spec(f"__p{len(specs)}", "presence", values, mask_key, partial.extra, partial.reduce)
        presences[specs[key].column] = call
        return specs[key].column

    def add_partial(partial: Partial, mask_key: str) -> str:
        values, how = partial.values, partial.how
        if values is None or how == "count_all":
            identity, how, values = ("rows",), "count_all", None
        else:
            held.append(values)
            identity = ("values", id(values))
        key = (*identity, mask_key, how)
        if key not in specs:
            specs[key] = _Spec(f"__p{len(specs)}", how, values, mask_key)
        return specs[key].column

    for metric in metrics:
        mask, mask_key = mask_of(metric)
        if metric.where is not None:
            if mask_key not in near_misses:
                near_misses[mask_key] = _near_misses(metric.where, column)
            for why, rows in near_misses[mask_key].items():
                skipped[metric.name, why] = rows
        call_plans = []
        for call in aggregate_calls(metric, registry):
            fn = registry.aggregates[call.name]
            scope = Scope(name=name, column=column, scalars=registry.scalars, length=table.num_rows)
            args = [evaluate(a, scope) for a in call.args]
            kwargs = {k: _constant(evaluate(v, scope)) for k, v in call.kwargs}
            if fn.check is not None:
                problem = fn.check(*(None if a is ROWS else a.type for a in args))
                if problem:
                    column_type = any(a is not ROWS for a in args)
                    read = ", ".join(a.to_source() for a in call.args)
                    raise DataError(error(f"{problem}: {read} (in source '{source.name}')", call.span,
                                          _type_hint(args) if column_type and "source itself" not in problem
                                          else None, "type"))
            if call.name != "count" and call.args and isinstance(args[0], (pa.Array, pa.ChunkedArray)) and \
                    args[0].null_count:
                # Rows the filter keeps with no value to aggregate are left out, and said so (count() of a column
                # counts its values: that is what it asks). A row-level expression's rows that are undefined (a
                # division by zero) are not among them: they make the group's value null, with their own reason.
                read = call.args[0]
                if isinstance(read, s.Column):
                    kind = "guest rows" if read.column == source.entity else "null"
                    why = f"have no {s.spell(read.column)} ({kind}) and are left out of {call.name}()"
                    rows = kept_nulls(args[0], mask, mask_key)
                else:
                    why = f"have no value of {read.to_source()} (null) and are left out of {call.name}()"
                    missing = pc.is_null(args[0])
                    for undefined, _ in scope.notes:
                        if not isinstance(undefined, pa.Scalar):
                            missing = pc.and_(missing, pc.invert(pc.fill_null(undefined, False)))
                    if mask is not None:
                        missing = pc.and_(mask, missing)
                    rows = pc.sum(pc.cast(missing, pa.int64())).as_py() or 0
                skipped[metric.name, why] = max(skipped.get((metric.name, why), 0), rows)
            ctx = AggregateContext(source.name, table.num_rows, period,
                                   column(s.Column(source.name, source.entity)) if fn.entity else None, mask, grain,
                                   table.column(source.time))
            try:
                planned = fn.plan(ctx, *args, **kwargs)
            except (ValueError, TypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                options = ", ".join(f"{k}={v!r}" for k, v in fn.keywords.items())
                raise DataError(error(f"invalid use of {call.name}(): {exc}", call.span,
                                      f"{fn.doc} Options and defaults: {options}" if options else fn.doc or None,
                                      "function")) from None
            if any(p.values is ROWS for p in planned):
                raise DataError(error(f"{call.name}() cannot aggregate the source '{source.name}' itself",
                                      call.span, f"pass one of its columns, like {call.name}({source.name}.<column>); "
                                                 f"count({source.name}) counts its rows", "function"))
            cols = tuple(add_custom(p, mask, call) if p.how == "custom" else
                         add_presence(p, mask, mask_key, metric, call) if p.how == "presence" else
                         add_partial(p, mask_key) for p in planned)
            # Rows whose input is undefined (a division by zero in the row-level expression) must not
            # vanish from the sum silently: count them per group, so the group's value becomes null.
            undefined = tuple((add_partial(Partial(pc.fill_null(note_mask, False), "sum", 0), mask_key),
                               f"{reason} in some rows of {call.to_source()}") for note_mask, reason in scope.notes
                              if not isinstance(note_mask, pa.Scalar))
            call_plans.append(CallPlan(call, fn, cols, tuple(p.empty for p in planned), undefined))
        plans[metric.name] = tuple(call_plans)

    keys = GroupKeys.encode(period, {d: table.column(d) for d in dims})
    return _Planned(plans, tuple(specs.values()), masks, keys, table.num_rows, dims, tuple(custom), presences,
                    skipped)


def _row_condition(metric: Metric, column: Callable, name: Callable, registry: Registry, rows: int):
    """A metric's ``where`` over the rows; over a dictionary's values when it reads one dictionary column."""
    nodes = list(s.walk(metric.where))
    read = [n for n in nodes if isinstance(n, s.Column)]
    if read and len({n.column for n in read}) == 1 and all(isinstance(n, _ELEMENTWISE) for n in nodes):
        values = column(read[0])
        if pa.types.is_dictionary(values.type):
            return _on_dictionary(metric, values, name, registry)
    scope = Scope(name=name, column=column, scalars=registry.scalars, length=rows)
    return _checked_condition(metric, evaluate(metric.where, scope))


def _on_dictionary(metric: Metric, values: pa.ChunkedArray, name: Callable, registry: Registry) -> pa.ChunkedArray:
    pieces, done = [], None
    for chunk in values.chunks:
        if done is None or not chunk.dictionary.equals(done[0]):
            # One more entry, null, stands for the rows whose value is null.
            domain = pa.concat_arrays([chunk.dictionary, pa.nulls(1, chunk.dictionary.type)])
            scope = Scope(name=name, column=lambda node, d=domain: d, scalars=registry.scalars, length=len(domain))
            held = as_array(_checked_condition(metric, evaluate(metric.where, scope)), len(domain))
            values_held = held.slice(0, len(chunk.dictionary))
            # The codes the condition holds for, when it is true or false (never null) for every value.
            codes = pc.cast(pc.indices_nonzero(values_held), chunk.indices.type) if not values_held.null_count \
                else None
            done = (chunk.dictionary, held, codes)
        if done[2] is not None and not chunk.indices.null_count:
            # No row without a value: the rows' codes compared with the few that hold (a tenth of the CPU of a
            # lookup of every row's code, and no copy of the codes to fill nulls).
            codes = done[2]
            pieces.append(pc.equal(chunk.indices, codes[0]) if len(codes) == 1 else
                          pc.is_in(chunk.indices, value_set=codes))
            continue
        pieces.append(pc.take(done[1], pc.fill_null(chunk.indices, len(chunk.dictionary))))
    return pa.chunked_array(pieces, pa.bool_())


def _near_misses(where: s.Expr, column: Callable) -> dict[str, int]:
    """The rows a filter's text tests (``status == "paid"``, ``channel in ["web", "app"]``) leave out although their
    value differs from one it keeps only in case or spacing ('PAID', 'Web '): why, and how many rows. The values
    are the column's dictionary, or its distinct values (text that is not dictionary-encoded)."""
    found: dict[str, int] = {}
    for node in s.walk(where):
        test = None
        if isinstance(node, s.Binary) and node.op == "==":
            for one, other in ((node.left, node.right), (node.right, node.left)):
                if isinstance(one, s.Column) and isinstance(other, s.Literal) and isinstance(other.value, str):
                    test = one, [other.value]
        elif isinstance(node, s.InList) and not node.negated and isinstance(node.operand, s.Column) and \
                all(isinstance(i, s.Literal) and isinstance(i.value, str) for i in node.items):
            test = node.operand, [i.value for i in node.items]
        if test is None:
            continue
        read, kept = test
        values = column(read)
        kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            continue
        # The distinct values: each dictionary once (the chunks of a piece mostly share one), or the text's own.
        if pa.types.is_dictionary(values.type):
            domains = []
            for chunk in values.chunks if isinstance(values, pa.ChunkedArray) else [values]:
                if not domains or not chunk.dictionary.equals(domains[-1]):
                    domains.append(chunk.dictionary)
        else:
            domains = [pc.unique(values)]
        targets = {folded(v) for v in kept}
        near = sorted({v for domain in domains if len(domain) <= _NEAR_MISS_VALUES for v in domain.to_pylist()
                       if v is not None and v not in kept and folded(v) in targets})
        if not near:
            continue
        text = pc.cast(values, kind) if pa.types.is_dictionary(values.type) else values
        rows = pc.sum(pc.is_in(text, value_set=pa.array(near, kind))).as_py() or 0
        shown = " or ".join(repr(v) for v in near[:4]) + (" …" if len(near) > 4 else "")
        found[f"have {s.spell(read.column)} {shown}, which the filter {where.to_source()} does not keep (it compares "
              "text exactly, case and spaces included)"] = rows
    return found


# A filter's column is searched for values that differ from the ones it keeps only in case or spacing when it has at
# most this many distinct values (a status, a channel; not a customer id).
_NEAR_MISS_VALUES = 10_000


def _checked_condition(metric: Metric, value):
    if not pa.types.is_boolean(value.type):
        raise DataError(error(f"the filter of '{metric.name}' is not a condition", metric.where.span,
                              'compare a column with a value, e.g. orders.status == "paid"', "type"))
    return value


def period_index(times: pa.ChunkedArray | pa.Array, grain: str) -> pa.ChunkedArray | pa.Array:
    """`periods.index`, computed once per calendar day of the data and spread to the rows by their day.

    Chunk by chunk, so that the day numbers are small temporaries the allocator reuses. A timestamp
    with a time zone falls in the period of its wall-clock time there (as `periods.index` reads it).
    """
    t = times.type
    if not (pa.types.is_date(t) or pa.types.is_timestamp(t)):
        return periods.index(times, grain)
    zoned = pa.types.is_timestamp(t) and t.tz is not None
    low, high = (_day_number(v) for v in pc.min_max(times).values())
    if zoned and low is not None:
        # The wall-clock days lie within a day and a bit (an offset of at most 14 hours) of the UTC days.
        low, high = low - 2, high + 2
    if low is None or high - min(low, 0) >= _MAX_CALENDAR_DAYS:
        return periods.index(times, grain)
    start = min(low, 0)  # from 1970-01-01 if the data starts later, so the days index the calendar as they are
    calendar = _calendar(start, high, grain)

    def spread(chunk: pa.Array) -> pa.Array:
        if zoned:
            # In UTC the wall clock is the stored value: dropping the zone is free (the zone lookup is not).
            chunk = chunk.cast(pa.timestamp(t.unit)) if t.tz in _UTC else pc.local_timestamp(chunk)
        days = pc.cast(pc.cast(chunk, pa.date32()), pa.int32())  # the second cast is free: same layout
        return pc.take(calendar, days if start == 0 else pc.subtract(days, start))

    if isinstance(times, pa.Array):
        return spread(times)
    return pa.chunked_array([spread(c) for c in times.chunks], calendar.type)


@functools.lru_cache(maxsize=16)
def _calendar(start: int, end: int, grain: str) -> pa.Array:
    """The period of every day from day ``start`` to day ``end`` (days since 1970-01-01), both included.

    The same for every piece of a stream and every pass over the same data: computed once (3 ms for
    55 years of days, paid per piece before).
    """
    return periods.index(pc.cast(pa.array(range(start, end + 1), pa.int32()), pa.date32()), grain)


def _day_number(value: pa.Scalar) -> int | None:
    """Days since 1970-01-01 of a date or timestamp (the calendar day it falls on; in UTC for a zoned one)."""
    if not value.is_valid:
        return None
    if pa.types.is_timestamp(value.type) and value.type.tz is not None:
        value = value.cast(pa.timestamp(value.type.unit))
    return value.cast(pa.date32()).cast(pa.int32()).as_py()


# --------------------------------------------------------------------------- group keys


@attrs.frozen
class _Component:
    """One part of the group key: the value of each of its ``size`` codes (the last code is null)."""

    name: str
    values: pa.Array
    size: int


@attrs.frozen
class GroupKeys:
    """The period and dimensions of every row folded into one integer, and the way back.

    ``codes`` has the narrowest integer type that holds every combination (int8 for a year
    of months by two small dimensions). When the combinations of many large dimensions
    would overflow even int64, the codes seen so far are renumbered densely (``stages``)
    before the next dimension is multiplied in.
    """

    codes: pa.ChunkedArray
    components: tuple[_Component, ...]
    stages: tuple[pa.Array | None, ...]

    @classmethod
    def encode(cls, period: pa.ChunkedArray | pa.Array, dims: Mapping[str, pa.ChunkedArray]) -> GroupKeys:
        encoded = {name: _dictionary(_chunked(values)) for name, values in dims.items()}
        low, high = (v.as_py() for v in pc.min_max(period).values())
        periods_seen = [] if low is None else list(range(low, high + 1))
        parts = [_Component(PERIOD, pa.array([*periods_seen, None], period.type), len(periods_seen) + 1)]
        for name, values in encoded.items():
            dictionary = values.chunks[0].dictionary if values.num_chunks else pa.array([], values.type.value_type)
            parts.append(_Component(name, pa.concat_arrays([dictionary, pa.nulls(1, dictionary.type)]),
                                    len(dictionary) + 1))
        total = functools.reduce(lambda a, b: a * b, (p.size for p in parts), 1)
        dtype = next((t for t in (pa.int8(), pa.int16(), pa.int32()) if total <= 2 ** (t.bit_width - 1)),
                     pa.int64())

        period = _chunked(period)
        if total <= 2**62:
            # Batch by batch (the columns' chunks aligned), so the arithmetic's temporaries stay small.
            aligned = pa.table({PERIOD: period, **encoded}).to_batches()
            codes = pa.chunked_array([_combined_codes(batch, parts, low, dtype) for batch in aligned], dtype)
            return cls(codes, tuple(parts), (None,) * len(parts))
        # Too many combinations for int64: multiply in one dimension at a time, renumbering the
        # codes seen so far densely whenever the next product would overflow.
        codes = period if low is None else pc.subtract(period, pa.scalar(low, period.type))
        codes = _fill(pc.cast(codes, dtype), parts[0].size - 1)
        size, stages = parts[0].size, [None]
        for part, values in zip(parts[1:], encoded.values(), strict=True):
            stage = None
            if size * part.size > 2**62:
                renumbered = _unified(pc.dictionary_encode(codes))
                stage = renumbered.chunks[0].dictionary if renumbered.num_chunks else pa.array([], dtype)
                codes, size = _indices(renumbered, dtype), len(stage)
            own = _fill(_indices(values, dtype), part.size - 1)
            codes = pc.add(pc.multiply(codes, pa.scalar(part.size, dtype)), own)
            size *= part.size
            stages.append(stage)
        return cls(codes, tuple(parts), tuple(stages))

    @property
    def slices(self) -> int:
        """How many slice codes there are: every combination of the dimensions' codes (with their null slot)."""
        return functools.reduce(lambda a, b: a * b, (p.size for p in self.components[1:]), 1)

    def split(self, codes: pa.Array) -> tuple[pa.Array, pa.Array]:
        """The period offset (``periods`` for rows without a time) and the slice code of some group keys."""
        codes = pc.cast(codes, pa.int64())
        if len(self.components) == 1:  # not sliced: the key is the period
            return codes, pa.repeat(pa.scalar(0, pa.int64()), len(codes))
        if all(stage is None for stage in self.stages):
            period = pc.divide(codes, self.slices)
            return period, pc.subtract(codes, pc.multiply(period, self.slices))
        # Renumbered keys (too many combinations): a slice's code is its place among the slices of every key.
        decoded = self.decode(codes)
        period = pc.index_in(decoded[PERIOD], value_set=self.components[0].values)
        every = self._slice_names(_array(self.codes.unique()) if self.codes.num_chunks else pa.array([], pa.int64()))
        at = pc.index_in(self._slice_names(codes), value_set=pc.unique(every))
        return pc.cast(period, pa.int64()), pc.cast(at, pa.int64())

    def _slice_names(self, codes: pa.Array) -> pa.Array:
        decoded = self.decode(codes)
        names = [pc.fill_null(pc.cast(decoded[p.name], pa.string()), "\x00") for p in self.components[1:]]
        return pc.binary_join_element_wise(*names, "\x1f") if len(names) > 1 else names[0]

    @property
    def periods(self) -> int:
        """How many periods the keys span (their offsets are 0 … periods-1)."""
        return self.components[0].size - 1

    def presence_groups(self, result: pa.Table, column: str) -> pa.Table:
        """A presence reduce's ``__slice``, ``__period`` (offset), ``__value`` as ``__period``, the dimensions, ``column``."""
        first = self.components[0].values[0].as_py() if self.periods else 0
        offsets = pc.cast(result.column("__period"), pa.int64())
        slices = _array(pc.cast(result.column("__slice"), pa.int64()))
        out = {PERIOD: pc.cast(pc.add(offsets, first), self.components[0].values.type)}
        if len(self.components) > 1:
            if all(stage is None for stage in self.stages):
                decoded = self.decode(slices)  # period code 0: the slice code is the key
            else:
                decoded = self._decode_slices(slices)
            out.update({p.name: decoded[p.name] for p in self.components[1:]})
        out[column] = result.column("__value")
        return pa.table(out)

    def _decode_slices(self, slices: pa.Array) -> dict[str, pa.Array]:
        keys = _array(self.codes.unique()) if self.codes.num_chunks else pa.array([], self.codes.type)
        _, codes = self.split(keys)
        at = pc.index_in(slices, value_set=codes)
        return {name: pc.take(values, at) for name, values in self.decode(keys).items()}

    def decode(self, codes: pa.Array, dictionary: bool = False) -> dict[str, pa.Array]:
        """The period and dimension values of some codes (of `codes`' type), by column name; with
        ``dictionary``, the dimensions dictionary-encoded (cheap for many codes)."""
        codes = pc.cast(codes, pa.int64())
        out = {}
        for part, stage in zip(reversed(self.components), reversed(self.stages), strict=True):
            if part is self.components[0]:
                own = codes
            else:
                own = pc.subtract(codes, pc.multiply(pc.divide(codes, part.size), part.size))
                codes = pc.divide(codes, part.size)
                if stage is not None:
                    codes = pc.take(stage, codes)
            if dictionary and part is not self.components[0]:
                indices = pc.cast(own, pa.int32())
                indices = pc.if_else(pc.equal(indices, part.size - 1), pa.scalar(None, pa.int32()), indices)
                out[part.name] = pa.DictionaryArray.from_arrays(_array(indices), part.values.slice(0, part.size - 1))
            else:
                out[part.name] = pc.take(part.values, own)
        return {part.name: out[part.name] for part in self.components}


def _combined_codes(batch: pa.RecordBatch, parts: list[_Component], low: int | None, dtype) -> pa.Array:
    """The group key of every row of one batch (period, then the dictionary-encoded dimensions)."""
    period = batch.column(0)
    codes = period if low is None else pc.subtract(period, pa.scalar(low, period.type))
    codes = _fill(pc.cast(codes, dtype), parts[0].size - 1)
    for i, part in enumerate(parts[1:], start=1):
        own = _fill(pc.cast(batch.column(i).indices, dtype), part.size - 1)
        codes = pc.add(pc.multiply(codes, pa.scalar(part.size, dtype)), own)
    return codes


def _chunked(values) -> pa.ChunkedArray:
    return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])


def _fill(codes: pa.ChunkedArray, null_code: int) -> pa.ChunkedArray:
    return pc.fill_null(codes, pa.scalar(null_code, codes.type)) if codes.null_count else codes


def _unified(values: pa.ChunkedArray) -> pa.ChunkedArray:
    return pa.table({"v": values}).unify_dictionaries().column("v")


def _indices(encoded: pa.ChunkedArray, dtype: pa.DataType) -> pa.ChunkedArray:
    return pc.cast(pa.chunked_array([c.indices for c in encoded.chunks], encoded.type.index_type), dtype)


def _dictionary(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """``values`` dictionary-encoded, with one dictionary for all chunks holding each value once, no nulls."""
    if pa.types.is_null(values.type):  # a column of nulls only: an empty dictionary, every row in the null slot
        values = pc.cast(values, pa.string())
    encoded = _unified(values if pa.types.is_dictionary(values.type) else pc.dictionary_encode(values))
    if encoded.num_chunks and pa.types.is_dictionary(values.type):
        dictionary = encoded.chunks[0].dictionary
        if dictionary.null_count or len(pc.unique(dictionary)) != len(dictionary):
            # A hand-built dictionary may hold nulls or repeat a value: one code per value is needed.
            return _dictionary(pc.cast(values, encoded.type.value_type))
    return encoded


# --------------------------------------------------------------------------- computing the partials


def compute_partials(keys: GroupKeys, specs: list[_Spec], masks: Mapping[str, pa.ChunkedArray],
                     rows: int) -> tuple[pa.Table, dict[str, pa.Table]]:
    """One row per group key present in the data: ``__period``, the dimensions, then each spec's column;
    and the result of each presence spec (its reduce's ``__slice``, ``__period``, ``__value``), by column."""
    combinable = [sp for sp in specs if sp.how in _COMBINE or (sp.how == "mean" and _is_plain_number(sp.values))]
    distinct = [sp for sp in specs if sp.how in ("count_distinct", "presence")]
    direct = [sp for sp in specs if sp not in combinable and sp not in distinct]
    mask_columns = {m: f"__m{i}" for i, m in enumerate(dict.fromkeys(sp.mask for sp in combinable + distinct
                                                                      if sp.mask))}

    first, wanted, steps = _first_grouping(keys.codes, combinable, masks, mask_columns, rows)
    present = _array(pc.unique(first.column(_KEY)) if mask_columns else first.column(_KEY))
    results = _combined(first, present, combinable, mask_columns, wanted, steps)
    shared, reduces = {}, []
    for sp, counted in _distinct_counts(keys.codes, distinct, masks, rows, first, mask_columns).items():
        if sp.how == "presence":
            # One presence for every customer state over the same entity, filter and extra.
            same = (id(sp.values), sp.mask, id(sp.extra))
            if same not in shared:
                shared[same] = _presence(keys, *counted)
            reduces.append((sp, shared[same]))
        else:
            results[sp.column] = _align(present, *counted, 0)
    found = _reduced(reduces)
    if direct:
        k, values = _masked_grouping(keys.codes, direct, masks, rows)
        for sp in direct:
            results[sp.column] = _align(present, k, values[sp.column], 0 if sp.how in _ZERO_IF_NO_ROWS else None)
    table = pa.table({**keys.decode(present), **{sp.column: results[sp.column] for sp in specs
                                                 if sp.how != "presence"}})
    return table, found


def _presence(keys: GroupKeys, key, entity, rows, extra, entities: int | None = None) -> Presence:
    """The distinct (group key, entity value) pairs as a `Presence`, entities numbered.

    ``entity`` holds the entity values, numbered here; with ``entities``, their codes ``0 … entities-1``
    already (a stream's vocabulary, `_StreamState._coded`), kept as they are (a code may have no pair under a
    filter: a customer who only refunds). Then the pairs (chunked, as the stream held them) are turned into the presence's columns a chunk at a
    time, so that the temporaries of the arithmetic stay small (fresh memory costs kernel time) and each
    column of the presence is written once."""
    if entities is None:
        period, slice_ = keys.split(_array(key))
        columns = {"e": _array(entity), "s": slice_, "p": period, "r": _array(rows)}
        if extra is not None:
            columns["x"] = _array(extra)
        if len(period) and pc.max(period).as_py() >= keys.periods:
            # Rows without a time fall in no period (their offset is `periods`); most sources have none: no copy.
            kept = pc.less(period, keys.periods)
            columns = {c: _array(pc.filter(v, kept)) for c, v in columns.items()}
        entity = columns["e"]
        if pa.types.is_dictionary(entity.type):
            entity = entity.indices
        # Numbered densely (0 … entities-1, every code present), once over the pairs, far fewer than the rows.
        encoded = pc.dictionary_encode(entity)
        return Presence(pc.cast(encoded.indices, pa.int64()), columns["s"], columns["p"],
                        pc.cast(columns["r"], pa.int64()), columns.get("x"), keys.periods, len(encoded.dictionary),
                        keys.slices)
    columns = {"k": _chunked(key), "e": _chunked(entity), "r": _chunked(rows)}
    if extra is not None:
        columns["x"] = _chunked(extra)
    pairs = pa.table(columns)
    # Renumbered keys (too many combinations) are split by looking every key up at once: one chunk.
    staged = any(stage is not None for stage in keys.stages)
    if staged:
        pairs = pairs.combine_chunks()
    parts: dict[str, list[pa.Array]] = {c: [] for c in ("e", "s", "p", "r", "x")}
    for batch in pairs.to_batches(max_chunksize=None if staged else _PRESENCE_CHUNK):
        period, slice_ = keys.split(batch.column(0))
        inside = pc.less(period, keys.periods)  # rows without a time fall in no period
        every = pc.all(inside).as_py() is not False
        chunk = {"e": batch.column(1), "s": slice_, "p": period, "r": batch.column(2),
                 "x": batch.column(3) if extra is not None else None}
        for name, values in chunk.items():
            if values is not None:
                parts[name].append(values if every else pc.filter(values, inside))
    entity = _concatenated([pc.cast(e, pa.int64()) for e in parts["e"]], pa.int64())
    built = Presence(entity, *(_concatenated([pc.cast(v, pa.int64()) for v in parts[c]], pa.int64()) for c in "sp"),
                     None, _concatenated(parts["x"], columns["x"].type) if extra is not None else None, keys.periods,
                     entities, keys.slices)
    # Most states never read the rows of each triple (churned, new, a distinct count): made when first asked.
    rows = parts["r"]
    built._cache["sum rows"] = lambda: _concatenated([pc.cast(r, pa.int64()) for r in rows], pa.int64())
    return built


# The stream's pairs become a presence this many at a time (`_presence`).
_PRESENCE_CHUNK = 1 << 20


def _concatenated(arrays: list[pa.Array], kind: pa.DataType) -> pa.Array:
    if len(arrays) == 1:
        return arrays[0]
    return pa.concat_arrays(arrays) if arrays else pa.array([], kind)


def _reduced(reduces: list[tuple[_Spec, Presence]]) -> dict[str, pa.Table]:
    """Each presence spec's reduce over its presence (a customer state's counts), by column.

    The reduces of one tree (churned, new, reactivated …) are independent of each other, and each spends its
    time in Arrow kernels that release the GIL: they run a few at once, on at most `pa.cpu_count` threads, and
    the lookups they share (`Presence._cached`) are computed once. The results do not depend on which thread ran
    what."""
    workers = min(len(reduces), pa.cpu_count())
    if workers < 2:
        return {sp.column: sp.reduce(presence) for sp, presence in reduces}
    # Each reduce sees the caller's context variables (a plugin's settings, the progress callback), in a copy
    # of its own: a context cannot be entered by two threads at once.
    jobs = [(sp, presence, contextvars.copy_context()) for sp, presence in reduces]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metrictree-reduce") as pool:
        results = list(pool.map(lambda job: job[2].run(job[0].reduce, job[1]), jobs))
    return {sp.column: result for (sp, _), result in zip(reduces, results, strict=True)}


def _is_plain_number(values) -> bool:
    return values is not None and (pa.types.is_integer(values.type) or pa.types.is_floating(values.type))


def _first_grouping(codes: pa.ChunkedArray, specs: list[_Spec], masks, mask_columns: dict[str, str], rows: int):
    """One pass over the rows, grouped by (key, every mask): the reductions of ``specs``, and a row count.

    Returns the grouped table, each spec's reductions' columns in it, and ``(input, how) -> column``.
    """
    inputs = {_KEY: codes, **{name: masks[m] for m, name in mask_columns.items()}}
    value_columns: dict[tuple[int, bool], str] = {}
    steps: dict[tuple[str, str], str] = {("", "count_all"): "count_all"}

    def step(sp: _Spec, how: str) -> str:
        if sp.values is None:
            return "count_all"
        summed = how == "sum" and pa.types.is_boolean(sp.values.type)  # true values are summed as 1
        if (id(sp.values), summed) not in value_columns:
            values = as_array(sp.values, rows)
            value_columns[(id(sp.values), summed)] = name = f"__v{len(value_columns)}"
            inputs[name] = pc.cast(values, pa.int64()) if summed else values
        col = value_columns[(id(sp.values), summed)]
        return steps.setdefault((col, how), f"{col}_{how}")

    wanted = {sp.column: [step(sp, "sum"), step(sp, "count")] if sp.how == "mean" else [step(sp, sp.how)]
              for sp in specs}
    aggregations = [([], "count_all") if col == "" else (col, how, _options(how)) for col, how in steps]
    first = pa.table(inputs).group_by([_KEY, *mask_columns.values()], use_threads=False).aggregate(aggregations)
    return first, wanted, steps


def _combined(first: pa.Table, present: pa.Array, specs: list[_Spec], mask_columns: dict[str, str],
              wanted: dict[str, list[str]], steps: dict) -> dict[str, pa.Array]:
    """Each spec's column: its reductions over the sub-groups of `_first_grouping` its mask keeps, combined."""
    if not mask_columns:
        return {sp.column: _finish(sp, [first.column(c) for c in wanted[sp.column]]) for sp in specs}
    how = {out: _COMBINE[h] for (_, h), out in steps.items()}
    results = {}
    for mask in dict.fromkeys(sp.mask for sp in specs):
        part = first if not mask else first.filter(first.column(mask_columns[mask]))
        outputs = list(dict.fromkeys(c for sp in specs if sp.mask == mask for c in wanted[sp.column]))
        second = part.group_by([_KEY], use_threads=False).aggregate(
            [(out, how[out], _options(how[out])) for out in outputs])
        for sp in specs:
            if sp.mask == mask:
                combined = [second.column(f"{out}_{how[out]}") for out in wanted[sp.column]]
                fill = 0 if sp.how in _ZERO_IF_NO_ROWS else None
                results[sp.column] = _align(present, second.column(_KEY), _finish(sp, combined), fill)
    return results


def _finish(sp: _Spec, columns: list) -> pa.Array:
    """A spec's column from its reductions (a mean from its sum and count)."""
    if sp.how != "mean":
        return _array(columns[0])
    total, count = columns
    return _array(pc.divide(pc.cast(total, pa.float64()), pc.if_else(pc.equal(count, 0), pa.scalar(None, pa.int64()),
                                                                   count)))


def _distinct_counts(codes: pa.ChunkedArray, specs: list[_Spec], masks, rows: int, first: pa.Table,
                     mask_columns: dict[str, str], pairs_only: bool = False) -> dict:
    """Per spec: (keys, counts), or for a presence spec (keys, entities, rows, extra). All the specs over
    one column share its grouping by (key, value).

    The rows are split into ranges of keys holding about `_ROWS_PER_PART` rows each (four times
    as many when most batches hold most keys), grouped one range at a time, a few at once on
    several cores: the same pairs, in small hash tables.

    With ``pairs_only``, per column (by its first spec's name): the distinct (key, value) pairs themselves
    (`_pairs` columns), to merge with the pairs of other batches of rows, and whether a pair may be repeated
    in them (a plain distinct count of values that are not small whole numbers: the kept rows as they are).
    """
    out = {}
    by_values: dict[int, list[_Spec]] = {}
    for sp in specs:
        by_values.setdefault(id(sp.values), []).append(sp)
    for group in by_values.values():
        values = as_array(group[0].values, rows)
        presences = [sp for sp in group if sp.how == "presence"]
        # Text of eight bytes (customer numbers) is counted as the int64s of its bytes: the same counts, the same
        # customers (a presence numbers its entities; `_StreamState._coded` turns them back into text if a later
        # piece's values are not all eight bytes).
        values = textcodes.as_numbers(values) or values
        mask_keys = list(dict.fromkeys(sp.mask for sp in group))
        keep = pc.is_valid(values)
        if "" not in mask_keys:
            keep = pc.and_(keep, functools.reduce(pc.or_, [masks[m] for m in mask_keys]))
        flags = _flags(group)
        extras = _extras(group)
        extra_values = {}
        for sp in presences:
            if sp.extra is not None and extras[id(sp.extra)] not in extra_values:
                extra = as_array(sp.extra, rows)
                if flags and sp.mask:
                    extra = pc.if_else(masks[sp.mask], extra, pa.scalar(None, extra.type))
                extra_values[extras[id(sp.extra)]] = extra
        rows_table = pa.table({_KEY: codes, "__x": values, "__keep": keep,
                               **{f: pc.cast(masks[m], pa.int8()) for m, f in flags.items()}, **extra_values})
        batches = rows_table.to_batches()
        # The keys each batch holds: a range of keys only looks at the batches that may hold it,
        # few of them when the rows come in time order.
        spans = [tuple(v.as_py() for v in pc.min_max(b.column(0)).values()) for b in batches]

        coding = _value_codes(values, pc.max(first.column(_KEY)).as_py())

        def count(bounds: tuple[int, int] | None, batches=batches, spans=spans, mask_keys=mask_keys, flags=flags,
                  pairs_wanted=bool(presences) or pairs_only, extras=tuple(extra_values),
                  pairs_wanted_rows=bool(presences) or (bool(flags) and "" in mask_keys), coding=coding,
                  repeats=pairs_only and not presences and coding is None):
            if bounds is None:
                candidates = pa.Table.from_batches(batches, rows_table.schema)
                part = candidates.filter(candidates.column("__keep"))
            else:
                low, high = bounds
                candidates = pa.Table.from_batches(_batches_holding(batches, spans, low, high), rows_table.schema)
                part = candidates.filter(pc.and_(candidates.column("__keep"),
                                                 _between(candidates.column(_KEY), low, high)))
            if not flags and not pairs_wanted:
                if coding is not None:
                    counted = pc.value_counts(_coded_pairs(part, coding, False, (), ()).column(_KEY))
                    return {mask_keys[0]: (counted.field("values"), counted.field("counts"))}
                counted = part.group_by([_KEY], use_threads=False).aggregate(
                    [("__x", "count_distinct", pc.CountOptions(mode="only_valid"))])
                return {mask_keys[0]: (counted.column(_KEY), counted.column("__x_count_distinct"))}
            # Distinct (key, value) pairs, with their number of rows under each filter.
            # A plain distinct count held across pieces keeps its pairs alone (their rows are of no use): 8 bytes less a pair.
            rows = [] if pairs_only and not pairs_wanted_rows else ["count_all"]
            if repeats:
                # Text values held across pieces: the kept rows themselves, grouped once when their periods are
                # final. A piece's rows hold few repeated pairs (a customer's orders of a month are spread over
                # the pieces), so grouping each piece first would hash nearly every text twice.
                ones = {"count_all": pa.repeat(pa.scalar(1, pa.int64()), part.num_rows)} if rows else {}
                return {"pairs": pa.table({_KEY: part.column(_KEY), "__x": part.column("__x"), **ones,
                                           **{f: part.column(f) for f in flags.values()}})}
            if coding is not None:
                pairs = _coded_pairs(part, coding, bool(rows), tuple(flags.values()), extras)
            elif not flags and not extras and (runs := _pairs_in_runs(part, bool(rows))) is not None:
                pairs = runs
            else:
                pairs = part.group_by([_KEY, "__x"], use_threads=False).aggregate(
                    [*(([], "count_all") for _ in rows), *((f, "sum") for f in flags.values()),
                     *((x, "max") for x in extras)])
                pairs = pairs.select([_KEY, "__x", *rows, *(f"{f}_sum" for f in flags.values()),
                                      *(f"{x}_max" for x in extras)]).rename_columns(
                    [_KEY, "__x", *rows, *flags.values(), *extras])
            return {"pairs": pairs} if pairs_only else _from_pairs(pairs, mask_keys, flags, extras)

        kept_by = [mask_columns[m] for m in mask_keys if m] if "" not in mask_keys else []
        repeats = pairs_only and not presences and coding is None
        # Kept rows handed on as they are (``repeats``) are one filter of the rows: no ranges of keys to split.
        ranges = _key_ranges(first, kept_by, _ROWS_PER_PART) if not repeats else []
        if sum(len(_batches_holding(batches, spans, *r)) for r in ranges) > 4 * len(batches):
            ranges = _key_ranges(first, kept_by, 4 * _ROWS_PER_PART)
        if not ranges:
            parts = [count(None)]
        else:
            with ThreadPoolExecutor(max_workers=min(len(ranges), pa.cpu_count())) as pool:
                parts = list(pool.map(count, ranges))
        if pairs_only:
            out[group[0].column] = (pa.concat_tables([p["pairs"] for p in parts]), repeats)
            continue
        out.update(_gathered(group, parts, extras))
    return out


@attrs.frozen
class _ValueCodes:
    """How the values of a distinct count become small whole numbers ``0 … width-1``, so that a (group key,
    value) pair is one int64 code, ``key * width + value``: a dictionary's indices (text is hashed as its
    index, not its characters), or whole numbers less their smallest (``low``)."""

    width: int
    low: int = 0
    dictionary: pa.Array | None = None


# Pair codes stay below this (key × width), far from int64's limit.
_MAX_PAIR_CODE = 1 << 62


def _value_codes(values: pa.ChunkedArray | pa.Array, largest_key: int | None) -> _ValueCodes | None:
    """The `_ValueCodes` of a distinct count's values, or ``None`` when they are neither whole numbers nor
    dictionary-encoded with one dictionary, or when the codes of every pair would not fit."""
    if largest_key is None:
        return None
    values = _chunked(values)
    kind = values.type
    if pa.types.is_dictionary(kind):
        if not values.num_chunks:
            return None
        dictionary = values.chunks[0].dictionary
        # Chunks that share a dictionary (unified when read) compare equal at once: the same buffers.
        if any(not chunk.dictionary.equals(dictionary) for chunk in values.chunks[1:]):
            return None
        width = max(len(dictionary), 1)
        return _ValueCodes(width, 0, dictionary) if (largest_key + 1) * width < _MAX_PAIR_CODE else None
    if not pa.types.is_integer(kind):
        return None
    low, high = (v.as_py() for v in pc.min_max(values).values())
    if low is None or high >= 2**63 or (largest_key + 1) * (high - low + 1) >= _MAX_PAIR_CODE:
        return None
    return _ValueCodes(high - low + 1, low)


def _coded_pairs(part: pa.Table, coding: _ValueCodes, rows: bool, sums: tuple[str, ...],
                 maxima: tuple[str, ...]) -> pa.Table:
    """The distinct (``__key``, ``__x``) pairs of ``part``'s rows (each of them kept, no null ``__x``), with
    their number of rows (``count_all``) when ``rows``, then the sum of each column of ``sums`` and the
    maximum of each of ``maxima``: hashed as one int64 code a row (`_ValueCodes`), not as two columns."""
    values = part.column("__x")
    if coding.dictionary is not None:
        own = pa.chunked_array([chunk.indices for chunk in values.chunks], values.type.index_type)
    else:
        own = pc.subtract(pc.cast(values, pa.int64()), pa.scalar(coding.low, pa.int64()))
    width = pa.scalar(coding.width, pa.int64())
    code = pc.add(pc.multiply(pc.cast(part.column(_KEY), pa.int64()), width), pc.cast(own, pa.int64()))
    reduced: dict[str, Any] = {}
    if sums or maxima:
        grouped = pa.table({"__c": code, **{c: part.column(c) for c in (*sums, *maxima)}}).group_by(
            ["__c"], use_threads=False).aggregate([*((([], "count_all"),) if rows else ()),
                                                   *((c, "sum") for c in sums), *((c, "max") for c in maxima)])
        code = grouped.column("__c")
        reduced = {**({"count_all": grouped.column("count_all")} if rows else {}),
                   **{c: grouped.column(f"{c}_sum") for c in sums}, **{c: grouped.column(f"{c}_max") for c in maxima}}
    elif rows:
        # Not a grouping: Acero's hash of the pair codes of eight-byte text as numbers (few distinct low bits)
        # made it ~10x slower than value_counts' on the crm evaluation.
        counted = pc.value_counts(code)
        code, reduced = counted.field("values"), {"count_all": counted.field("counts")}
    else:
        code = pc.unique(code)
    key = pc.divide(code, width)
    own = pc.subtract(code, pc.multiply(key, width))
    if coding.dictionary is not None:
        value = pc.take(coding.dictionary, own)
    else:
        value = pc.cast(pc.add(own, pa.scalar(coding.low, pa.int64())), values.type)
    return pa.table({_KEY: pc.cast(key, part.schema.field(_KEY).type), "__x": value, **reduced})


def _flags(group: list[_Spec]) -> dict[str, str]:
    """A flag column per filter of a column's specs, when they have more than one."""
    mask_keys = list(dict.fromkeys(sp.mask for sp in group))
    return {m: f"__f{i}" for i, m in enumerate(mask_keys) if m and len(mask_keys) > 1}


def _extras(group: list[_Spec]) -> dict[int, str]:
    return {id(sp.extra): f"__e{i}" for i, sp in enumerate(s for s in group if s.how == "presence")
            if sp.extra is not None}


def _from_pairs(pairs: pa.Table, mask_keys: list[str], flags: dict[str, str], extras) -> dict:
    """From distinct (key, value) pairs: per filter, the distinct count per key, and the pairs it keeps."""
    found = {}
    for mask in mask_keys:
        flagged = bool(mask) and bool(flags)
        chosen = pairs.filter(pc.greater(pairs.column(flags[mask]), 0)) if flagged else pairs
        rows_in = chosen.column(flags[mask]) if flagged else (chosen.column("count_all")
                                                              if "count_all" in chosen.column_names else None)
        counted = chosen.group_by([_KEY], use_threads=False).aggregate([([], "count_all")])
        found[mask] = (counted.column(_KEY), counted.column("count_all"))
        found[("pairs", mask)] = (chosen.column(_KEY), chosen.column("__x"), rows_in,
                                  {x: chosen.column(x) for x in extras})
    return found


def _gathered(group: list[_Spec], parts: list[dict], extras: dict[int, str]) -> dict:
    """Each spec's result from the parts (key ranges) of its column's grouping."""
    out = {}
    for sp in group:
        if sp.how != "presence":
            out[sp] = tuple(pa.concat_arrays([_array(p[sp.mask][i]) for p in parts]) for i in (0, 1))
            continue
        # Left in chunks: `_presence` goes through them a chunk at a time.
        pieces = [p[("pairs", sp.mask)] for p in parts]
        key, entity, counts = (_joined([p[i] for p in pieces]) for i in range(3))
        extra = None
        if sp.extra is not None:
            extra = _joined([p[3][extras[id(sp.extra)]] for p in pieces])
        out[sp] = (key, entity, counts, extra)
    return out


def _joined(values: list) -> pa.ChunkedArray:
    """Arrays and chunked arrays of one type as one chunked array, without copying."""
    chunks = [c for v in values for c in (v.chunks if isinstance(v, pa.ChunkedArray) else [v])]
    return pa.chunked_array(chunks, values[0].type)


def _key_ranges(first: pa.Table, mask_columns: list[str], rows_per_part: int) -> list[tuple[int, int]]:
    """Ranges ``low … high`` (both in) of keys that split the rows some masks keep (all rows: none) evenly.

    Empty when the rows are few enough to group in one part.
    """
    kept = first if not mask_columns else first.filter(functools.reduce(pc.or_, [first.column(c)
                                                                                 for c in mask_columns]))
    per_key = kept.group_by([_KEY], use_threads=False).aggregate([("count_all", "sum")]).sort_by(_KEY)
    counts = per_key.column("count_all_sum")
    total = pc.sum(counts).as_py() or 0
    parts = min(_MAX_PARTS, per_key.num_rows, -(-total // rows_per_part))
    if parts <= 1:
        return []
    before = pc.subtract(pc.cumulative_sum(counts.combine_chunks()), counts.combine_chunks())
    bucket = pc.divide(pc.multiply(before, parts), total)
    spans = pa.table({"k": per_key.column(_KEY), "b": bucket}).group_by(["b"], use_threads=False).aggregate(
        [("k", "min"), ("k", "max")]).sort_by("k_min")
    return list(zip(spans.column("k_min").to_pylist(), spans.column("k_max").to_pylist(), strict=True))


def _batches_holding(batches: list[pa.RecordBatch], spans: list[tuple], low: int, high: int) -> list:
    """The batches whose keys (``spans``: each batch's smallest and largest) may fall in ``low … high``."""
    return [b for b, (first, last) in zip(batches, spans, strict=True)
            if first is not None and first <= high and last >= low]


def _between(codes: pa.ChunkedArray, low: int, high: int) -> pa.ChunkedArray:
    low, high = pa.scalar(low, codes.type), pa.scalar(high, codes.type)
    return pc.and_(pc.greater_equal(codes, low), pc.less_equal(codes, high))


def _masked_grouping(codes: pa.ChunkedArray, specs: list[_Spec], masks, rows: int) -> tuple[pa.Array, dict]:
    """Partials that do not combine over sub-groups: their values, nulled outside their filter, grouped by key."""
    inputs, aggregations = {_KEY: codes}, []
    for i, sp in enumerate(specs):
        values = as_array(sp.values, rows)
        if sp.mask:
            values = pc.if_else(masks[sp.mask], values, pa.scalar(None, values.type))
        if pa.types.is_boolean(values.type) and sp.how == "sum":
            values = pc.cast(values, pa.int64())
        inputs[f"__d{i}"] = values
        aggregations.append((f"__d{i}", sp.how, _options(sp.how)))
    grouped = pa.table(inputs).group_by([_KEY], use_threads=False).aggregate(aggregations)
    return grouped.column(_KEY), {sp.column: grouped.column(f"__d{i}_{sp.how}") for i, sp in enumerate(specs)}


def _align(present: pa.Array, keys, values, fill) -> pa.Array:
    """``values`` (one per key of ``keys``) in the order of ``present``; ``fill`` for the keys missing."""
    aligned = _array(pc.take(_array(values), pc.index_in(present, value_set=_array(keys))))
    if fill is None or pa.types.is_null(aligned.type):
        return aligned
    return pc.fill_null(aligned, pa.scalar(fill, aligned.type))


def _array(values) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _options(how: str):
    if how == "sum":
        return pc.ScalarAggregateOptions(skip_nulls=True, min_count=0)
    if how in ("count", "count_distinct"):
        return pc.CountOptions(mode="only_valid")
    return None


def _constant(value):
    return value.as_py() if isinstance(value, pa.Scalar) else value
