"""Group numbers that mean the same in every table of a stream.

`metrictree.aggregating` folds a row's period and dimensions into one integer group key, but each table of
a stream (`metrictree.reading.scan`) gets its own encoding: its own dimension dictionaries, its own first
period. The distinct (group, value) pairs a stream holds across tables — the customers of the months not
yet final, the customer states' pairs to the end — were therefore held with their period and dimension
values (8 + 4 + 4 bytes a pair for a month and two dimensions) and encoded again at every merge.

`GroupNumbers` numbers the groups once for the whole stream instead: a table's keys are looked up among the
groups seen so far (a join on the few distinct keys of the table, never on its rows), new groups get the
next numbers, and a pair holds one int32 whatever the dimensions are. The period and dimension values of a
number come back with `GroupNumbers.values`.
"""

from __future__ import annotations

import attrs
import pyarrow as pa
import pyarrow.compute as pc

_NUMBER = "__number"
_AT = "__at"
_NULL = -1  # the code of a missing value (a row without a time, a null dimension)


@attrs.define
class GroupNumbers:
    """The groups (period and dimension values) met so far in a stream, numbered 0, 1, … in order of arrival.

    Attributes:
        names: the group's columns: the period's, then the dimensions', in the order of the group keys.
        vocabularies: per column, its distinct values met so far; a value's code is its place there.
        codes: one row per group number: its code in each column (`_NULL` for a missing value).
    """

    names: tuple[str, ...]
    vocabularies: dict[str, pa.Array] = attrs.field(factory=dict)
    codes: pa.Table | None = None

    def __len__(self) -> int:
        return 0 if self.codes is None else self.codes.num_rows

    def number(self, keys: pa.Array, decode) -> pa.Array:
        """The group number (int32) of each of ``keys``, one table's own group keys; ``decode(distinct keys)``
        gives their period and dimension values by column (the dimensions dictionary-encoded or plain)."""
        distinct = pc.unique(keys)
        values = decode(distinct)
        coded = pa.table({name: self._coded(name, values[name]) for name in self.names})
        numbers = self._numbers(coded)
        return pc.take(numbers, pc.index_in(keys, value_set=distinct))

    def values(self, numbers: pa.Array | pa.ChunkedArray | None = None) -> dict[str, pa.Array]:
        """The period and dimension values of some group numbers (all of them, in order, by default), by
        column; the dimensions dictionary-encoded over their vocabularies."""
        out = {}
        for i, name in enumerate(self.names):
            codes = self.codes.column(name) if self.codes is not None else pa.chunked_array([], pa.int32())
            if numbers is not None:
                codes = pc.take(codes, numbers)
            codes = codes.combine_chunks() if isinstance(codes, pa.ChunkedArray) else codes
            codes = pc.if_else(pc.equal(codes, _NULL), pa.scalar(None, pa.int32()), codes)
            vocabulary = self.vocabularies.get(name, pa.array([], pa.null()))
            out[name] = (pc.take(vocabulary, codes) if i == 0
                         else pa.DictionaryArray.from_arrays(codes, vocabulary))
        return out

    def _coded(self, name: str, values: pa.Array) -> pa.Array:
        """Each value's code in the column's vocabulary (grown by the values not in it yet); `_NULL` for nulls."""
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        encoded = values if pa.types.is_dictionary(values.type) else pc.dictionary_encode(values)
        dictionary, indices = encoded.dictionary, encoded.indices
        seen = self.vocabularies.get(name)
        if seen is None:
            self.vocabularies[name] = dictionary
            at = pa.array(range(len(dictionary)), pa.int32())
        else:
            if dictionary.type != seen.type:
                dictionary = dictionary.cast(seen.type)
            at = pc.cast(pc.index_in(dictionary, value_set=seen), pa.int32())
            new = pc.is_null(at)
            fresh = pc.filter(dictionary, new)
            if len(fresh):
                at = pc.replace_with_mask(at, new, pa.array(range(len(seen), len(seen) + len(fresh)), pa.int32()))
                self.vocabularies[name] = pa.concat_arrays([seen, fresh])
        return pc.fill_null(pc.take(at, indices), _NULL)

    def _numbers(self, coded: pa.Table) -> pa.Array:
        """The number of each row of ``coded`` (distinct code combinations), numbering the new ones."""
        names = list(self.names)
        if self.codes is None:
            self.codes = coded.append_column(_NUMBER, pa.array(range(coded.num_rows), pa.int32()))
            return self.codes.column(_NUMBER).combine_chunks()
        rows = coded.append_column(_AT, pa.array(range(coded.num_rows), pa.int64()))
        # Every code is a plain integer (no nulls), so the join matches a missing value with a missing value.
        found = rows.join(self.codes, keys=names, join_type="left outer", use_threads=False).sort_by(_AT)
        numbers = found.column(_NUMBER).combine_chunks()
        new = pc.is_null(numbers)
        fresh = int(pc.sum(new).as_py() or 0)
        if fresh:
            assigned = pa.array(range(len(self), len(self) + fresh), pa.int32())
            numbers = pc.replace_with_mask(numbers, new, assigned)
            added = pc.filter(found.select(names), new).append_column(_NUMBER, assigned)
            self.codes = pa.concat_tables([self.codes, added.cast(self.codes.schema)])
        return numbers
