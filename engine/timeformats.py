"""Which strptime format a text time column is written in, guessed from its values for an error's hint.

A time column stored as text needs its format named in the tree (``time date format "%d/%m/%Y"``).
When it is not named, or does not match, the hint should give the format the data is actually in, not
a generic example: "01/02/2026" and "02/13/2026" call for different formats, and day-first and
month-first dates read alike until a day past 12 turns up — then both are offered, and the user says
which the data uses. Nothing is ever parsed with a guessed format: the guess only goes into hints.

Each candidate is tried with `pyarrow.compute.strptime`, exactly as `reading.parse_time` parses, on up to
`SAMPLE` distinct values.
"""

from __future__ import annotations

import itertools

import pyarrow as pa

SAMPLE = 1000
# A format is offered only if every value it reads falls in these years.
YEARS = (1900, 2199)

_DATES = ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%m-%d-%Y", "%Y/%m/%d", "%Y.%m.%d",
          "%d/%m/%y", "%m/%d/%y", "%d.%m.%y", "%Y%m%d", "%d %b %Y", "%b %d %Y", "%d %B %Y", "%B %d %Y",
          "%b %d, %Y", "%B %d, %Y")
_TIMES = ("", " %H:%M", " %H:%M:%S", "T%H:%M", "T%H:%M:%S", " %I:%M %p", " %I:%M:%S %p")
FORMATS = tuple(date + time for date, time in itertools.product(_DATES, _TIMES))


def sample_of(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Up to `SAMPLE` distinct non-empty values of a text (or whole-number) column, trimmed, as text."""
    import pyarrow.compute as pc

    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    if pa.types.is_dictionary(values.type):  # its values are in the dictionaries, each value once
        chunks, kind = [chunk.dictionary for chunk in chunks], values.type.value_type
    else:
        kind = values.type
    if not chunks or not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)):
        return pa.array([], pa.string())
    distinct = pc.unique(pa.chunked_array(chunks, kind))  # first: trimming every row of a big table would cost more
    text = pc.utf8_trim_whitespace(pc.cast(distinct, pa.string()))
    text = pc.drop_null(pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text))
    return pc.unique(text).slice(0, SAMPLE)


def fitting(values: pa.Array) -> list[str]:
    """The candidate formats that parse every one of ``values`` (text, as `sample_of` gives it)."""
    import pyarrow.compute as pc

    if not len(values):
        return []
    found, seen = [], set()
    for fmt in FORMATS:
        same = fmt.replace("%B", "%b")  # strptime reads a month's name whole or short under either code
        if same in seen:
            continue
        parsed = pc.strptime(values, format=fmt, unit="s", error_is_null=True)
        if parsed.null_count:
            continue
        # %Y also takes two digits: "31.12.25" is not the year 25 (nor 31) but 2025 ("%d.%m.%y").
        low, high = (v.as_py() for v in pc.min_max(pc.year(parsed)).values())
        if YEARS[0] <= low and high <= YEARS[1]:
            found.append(fmt)
            seen.add(same)
    return found


def hint(values: pa.Array | pa.ChunkedArray | None, column: str) -> str | None:
    """What to write in the tree for a text time column holding ``values`` (``column`` as the tree spells
    it), or ``None`` when no candidate format reads them all."""
    sample = sample_of(values) if values is not None else pa.array([], pa.string())
    found = fitting(sample)
    if not found:
        return None
    example = _telling(sample, found[0]) if len(found) == 1 else sample[0].as_py()
    if len(found) == 1:
        return f'its values look like "{example}": name the format in the source, time {column} format "{found[0]}"'
    options = " or ".join(f'"{f}"' for f in found[:3])
    return (f'its values look like "{example}", which reads as {options} (no value tells which): name the one '
            f'the data uses in the source, e.g. time {column} format "{found[0]}"')


def _telling(values: pa.Array, fmt: str) -> str:
    """A value that only ``fmt`` reads, not the same format with day and month swapped (02/13/2026 rather than
    01/02/2026 for "%m/%d/%Y"), else the first."""
    import pyarrow.compute as pc

    swapped = fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")
    if swapped != fmt:
        rejected = pc.is_null(pc.strptime(values, format=swapped, unit="s", error_is_null=True))
        if pc.any(rejected).as_py():
            return values[pc.index(rejected, True).as_py()].as_py()
    return values[0].as_py()
