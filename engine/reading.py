"""Bind a tree's sources to data: anything Arrow-readable in, one Arrow table per source out.

Accepted for each source: a ``pyarrow.Table`` or ``RecordBatch``, a
``pyarrow.dataset.Dataset``, a path to a Parquet, CSV, Arrow IPC or JSON Lines file or to a
(partitioned) folder of them, a polars LazyFrame (collected first), or any object
with ``__arrow_c_stream__`` (polars, pandas, DuckDB relations). Only the columns the
tree needs are read; string dimensions, the text columns only ``where`` filters
compare and those only counted
distinct are read dictionary-encoded (one dictionary per column, whatever the row groups
brought: `one_dictionary`); and
files are filtered on the time column so Parquet row groups outside the range are
skipped.

Every mismatch between tree and data is a `DataError` naming the source, the column
and the tree line that needs it.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import datetime as dt
import itertools
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pyarrow as pa

from .errors import DataError, Span, did_you_mean, error
from .model import Source
from .syntax import spell

if TYPE_CHECKING:
    import pyarrow.dataset as ds

_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv", ".txt": "csv",
            ".arrow": "ipc", ".feather": "ipc", ".ipc": "ipc", ".jsonl": "json", ".ndjson": "json", ".json": "json"}
_FORMAT_NAMES = {"parquet": "Parquet", "csv": "CSV", "ipc": "Arrow", "json": "JSON Lines"}


def _json_hint(path: Path) -> str:
    """Why Arrow's reader of JSON Lines could not read ``path``: one array of objects, or lines that disagree."""
    try:
        with path.open("rb") as file:
            first = file.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    except OSError:
        first = b""
    if first == b"[":
        return ("metrictree reads JSON Lines, one object per line ({\"date\": \"2026-01-05\", …}), not one array of "
                "objects: rewrite it as such, e.g. jq -c '.[]' in.json > out.jsonl")
    return ("each line must be one JSON object, and each field hold one kind of value in every line (a number "
            "in one line and text in another is not read): fix the line the message names (Arrow counts rows from 0: "
            "row 1 is the second line)")


@attrs.frozen
class Need:
    """A column the tree needs from a source, and the first place in the tree that needs it.

    Attributes:
        column: the column's name.
        span: where the tree needs it.
        why: what needs it, in words ("read by metric 'revenue'").
        dictionary: whether to read it dictionary-encoded when the format can (Parquet): for
            text with few distinct values that is only compared, like a ``where`` filter's column.
    """

    column: str
    span: Span | None
    why: str
    dictionary: bool = False


def _format_of(path: Path) -> str:
    if path.is_dir():
        # Every file Arrow would read (it skips names starting with '.' or '_') must be of one format:
        # a CSV file read as Parquet is an error at best, wrong numbers at worst.
        found: dict[str, list[str]] = {}
        for child in sorted(path.rglob("*")):
            relative = child.relative_to(path)
            if child.is_file() and not any(part.startswith((".", "_")) for part in relative.parts):
                fmt = _FORMATS.get(child.suffix.lower(), "")
                found.setdefault(fmt, []).append(str(relative))
        if len(found) > 1:
            kinds = "; ".join(f"{_FORMAT_NAMES.get(fmt, 'not a data file')}: {', '.join(files[:3])}"
                              + (" …" if len(files) > 3 else "") for fmt, files in found.items())
            raise DataError(error(f"the folder {path} mixes files of several formats ({kinds})",
                                  hint="keep one format per folder (move other files out, or start their names "
                                       "with '_' or '.'), or bind each file to its own source", code="format"))
        if found and "" not in found:
            return next(iter(found))
        raise DataError(error(f"the folder {path} holds no Parquet, CSV, Arrow or JSON Lines files",
                              hint="point at a file or a folder of .parquet / .csv / .arrow / .jsonl files",
                              code="no-data"))
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(error(f"cannot tell the format of {path}", hint="use a .parquet, .csv, .tsv, .arrow, "
                                                                        ".feather or .jsonl file", code="format"))
    return fmt


_OPTIONS = re.compile(r"(?P<path>.+?)\?(?P<query>[A-Za-z_]+=[^?]*)")
_DELIMITERS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


@attrs.frozen
class CsvOptions:
    """How a CSV file is written: named after its path (``orders.csv?encoding=cp1251&delimiter=;&decimal=,``).

    ``delimiter`` ``None``: sniffed from the file's first lines (comma, semicolon, tab or pipe; tab for
    .tsv files); ``decimal``: the character before the fractions of numbers (``,`` in files exported by
    European and Russian spreadsheets)."""

    encoding: str | None = None
    delimiter: str | None = None
    decimal: str = "."


def _path_and_options(value: str | os.PathLike, source: Source) -> tuple[Path, CsvOptions]:
    """``orders.csv?encoding=cp1251&delimiter=;`` → the file and how to read it (CSV files only).

    A file whose name really ends in ``?…`` is read as named.
    """
    text = os.fspath(value)
    match = _OPTIONS.fullmatch(text) if isinstance(text, str) else None
    if match is None or Path(text).expanduser().exists():
        return Path(text).expanduser(), CsvOptions()
    path = Path(match["path"]).expanduser()
    if not path.exists():  # said by the caller: no data file there
        return path, CsvOptions()
    fields = {}
    for item in match["query"].split("&"):
        name, _, given = item.partition("=")
        if name not in ("encoding", "delimiter", "decimal") or name in fields:
            raise DataError(error(f"source '{source.name}': cannot read the option '{item}' in {text}", source.span,
                                  "the options are ?encoding=cp1251&delimiter=;&decimal=, (each once, joined by &)",
                                  "csv-options"))
        fields[name] = given
    if "encoding" in fields:
        try:
            codecs.lookup(fields["encoding"])
        except LookupError:
            raise DataError(error(f"source '{source.name}': unknown text encoding '{fields['encoding']}' in {text}",
                                  source.span, "name a Python codec, e.g. ?encoding=cp1251, ?encoding=latin-1 or "
                                               "?encoding=utf-16", "encoding")) from None
    if "delimiter" in fields:
        fields["delimiter"] = _DELIMITERS.get(fields["delimiter"].lower(), fields["delimiter"])
        if len(fields["delimiter"]) != 1 or fields["delimiter"] in "\"\r\n":
            raise DataError(error(f"source '{source.name}': the delimiter in {text} must be one character",
                                  source.span, "e.g. ?delimiter=; or ?delimiter=tab", "csv-options"))
    if "decimal" in fields and (len(fields["decimal"]) != 1 or fields["decimal"] == fields.get("delimiter")):
        raise DataError(error(f"source '{source.name}': the decimal separator in {text} must be one character, "
                              "not the delimiter", source.span, "e.g. ?decimal=, for 10,5", "csv-options"))
    if _format_of(path) != "csv":
        raise DataError(error(f"source '{source.name}': ?{match['query']} applies to CSV files only, not {path}",
                              source.span, "Parquet and Arrow files store their text as UTF-8 and their numbers as "
                                           "numbers; drop the options", "csv-options"))
    return path, CsvOptions(**fields)


def _sniffed_delimiter(path: Path, encoding: str | None) -> str:
    """The delimiter of a CSV file, or of every CSV file of a folder (which must agree: one delimiter is
    read for all of them); tab for .tsv files."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() == ".csv"
                                                 and not p.name.startswith(("_", ".")))
    found: dict[str, Path] = {}
    for file in files:
        found.setdefault(_delimiter_of(file, encoding), file)
    if len(found) > 1:
        (one, first), (other, second) = list(found.items())[:2]
        raise DataError(error(f"the CSV files of {path} are not written alike: {first.name} is separated by "
                              f"{_DELIMITER_NAMES.get(one, repr(one))}, {second.name} by "
                              f"{_DELIMITER_NAMES.get(other, repr(other))}",
                              hint="save them with one delimiter, or put them in folders of their own",
                              code="read"))
    return next(iter(found), ",")


_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}
_QUOTED = re.compile(r'"[^"]*"')


def _delimiter_of(file: Path, encoding: str | None) -> str:
    """One of comma, semicolon, tab and pipe: the one that splits the file's first lines into the same
    number of fields (Python's `csv.Sniffer`); where that cannot tell (a quoted field holding another of
    them, too few lines), the one the header line holds most of outside quotes; comma for a single column."""
    import csv as stdcsv

    try:
        with file.open(encoding=encoding or "utf-8", errors="replace", newline="") as handle:
            sample = handle.read(16 * 1024)
    except OSError:
        return ","
    sample = sample.removeprefix("\ufeff")
    lines = sample[: sample.rfind("\n") + 1] or sample  # whole lines only
    try:
        return stdcsv.Sniffer().sniff(lines, delimiters=",;\t|").delimiter
    except stdcsv.Error:
        header = _QUOTED.sub("", lines.splitlines()[0] if lines else "")
        counts = {d: header.count(d) for d in _DELIMITER_NAMES}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def _dataset(path: Path, dictionary_columns: list[str], options: CsvOptions = CsvOptions()) -> ds.Dataset:
    import pyarrow.dataset as ds  # imported when a file is read (it takes a while, and imports pandas)

    fmt = _format_of(path)
    if fmt == "parquet":
        file_format = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=dictionary_columns))
    elif fmt == "csv":
        import pyarrow.csv as csv

        delimiter = options.delimiter or _sniffed_delimiter(path, options.encoding)
        # An empty field is a missing value in every column, text included (as in DuckDB, pandas and
        # polars): a guest order's empty customer id is no customer, and an empty channel is no channel.
        file_format = ds.CsvFileFormat(parse_options=csv.ParseOptions(delimiter=delimiter),
                                       convert_options=csv.ConvertOptions(strings_can_be_null=True,
                                                                          decimal_point=options.decimal),
                                       read_options=csv.ReadOptions(encoding=options.encoding or "utf8"))
    elif fmt == "json":
        file_format = ds.JsonFileFormat()
    else:
        file_format = ds.IpcFileFormat()
    try:
        dataset = ds.dataset(path, format=file_format, partitioning="hive" if path.is_dir() else None)
        if path.is_dir() and fmt == "csv":
            # CSV types are inferred file by file (whole numbers in one, decimals in another): read every
            # file with the widest type any of them needs, not the first file's.
            schemas = [fragment.physical_schema for fragment in dataset.get_fragments()]
            if len(schemas) > 1:
                unified = pa.unify_schemas(schemas, promote_options="permissive")
                for field in dataset.schema:
                    if field.name not in unified.names:
                        unified = unified.append(field)
                dataset = ds.dataset(path, format=file_format, partitioning="hive", schema=unified)
        return dataset
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise DataError(error(f"cannot read {path}: {exc}", hint=_json_hint(path) if fmt == "json" else
                              f"check that the file is a valid {_FORMAT_NAMES.get(fmt, fmt)} file",
                              code="read")) from None


def _without_views(table: pa.Table) -> pa.Table:
    """View types (polars ≥ 1 hands strings over as ``string_view``) as their plain types, which every
    kernel takes."""
    plain = {pa.types.is_string_view: pa.large_string(), pa.types.is_binary_view: pa.large_binary()}
    fields = []
    for field in table.schema:
        type_ = field.type
        value = type_.value_type if pa.types.is_dictionary(type_) else type_
        target = next((to for test, to in plain.items() if test(value)), None)
        if target is not None:
            type_ = pa.dictionary(type_.index_type, target) if pa.types.is_dictionary(type_) else target
        fields.append(field.with_type(type_))
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema)


def as_arrow(value: Any, source: Source, dictionary_columns: list[str]) -> pa.Table | ds.Dataset:
    """Anything a source can be bound to, as an Arrow table or dataset (not read yet when a dataset)."""
    if isinstance(value, pa.Table):
        return _without_views(value)
    if _is_dataset(value):
        return value
    if isinstance(value, pa.RecordBatch):
        return _without_views(pa.Table.from_batches([value]))
    if isinstance(value, str | os.PathLike):
        path, options = _path_and_options(value, source)
        if not path.exists():
            raise DataError(error(f"no data file for source '{source.name}' at {path}", source.span,
                                  "check the path given for this source", "no-data"))
        try:
            return _dataset(path, dictionary_columns, options)
        except DataError as exc:  # name the source the file was given for
            first = exc.diagnostics[0]
            raise DataError(attrs.evolve(first, message=f"source '{source.name}': {first.message}",
                                         span=first.span or source.span)) from None
    if type(value).__module__.startswith("polars") and type(value).__name__ == "LazyFrame":
        # A polars query not run yet: run it (polars' own engine), then read its frame as any other.
        try:
            value = value.collect()
        except Exception as exc:  # noqa: BLE001 — polars' errors have no common base worth importing polars for
            raise DataError(error(f"cannot read the data for source '{source.name}': the polars LazyFrame failed: "
                                  f"{exc}", source.span, "check the query in polars (lazy.collect())",
                                  "no-data")) from None
    if hasattr(value, "__arrow_c_stream__"):
        return _without_views(pa.RecordBatchReader.from_stream(value).read_all())
    if type(value).__module__.startswith("pandas"):
        return pa.Table.from_pandas(value, preserve_index=False)
    raise DataError(error(f"cannot read the data for source '{source.name}' from a {type(value).__name__}",
                          source.span, "pass a pyarrow Table or Dataset, a file path, a polars DataFrame or LazyFrame, "
                                       "a pandas DataFrame, or an object with __arrow_c_stream__ (DuckDB)",
                          "no-data"))


def _is_dataset(value: Any) -> bool:
    """Whether ``value`` is a ``pyarrow.dataset.Dataset`` (only possible once its module is imported)."""
    import sys

    module = sys.modules.get("pyarrow.dataset")
    return module is not None and isinstance(value, module.Dataset)


def _time_scalar(day: dt.date, type_: pa.DataType) -> pa.Scalar:
    if pa.types.is_timestamp(type_):
        # Midnight where the data lives: periods of a time-zone-aware column are local periods.
        zone = None
        if type_.tz:
            from zoneinfo import ZoneInfo

            zone = ZoneInfo(type_.tz) if not type_.tz.startswith(("+", "-")) else dt.datetime.strptime(
                type_.tz, "%z").tzinfo
        return pa.scalar(dt.datetime(day.year, day.month, day.day, tzinfo=zone), type_)
    if pa.types.is_date64(type_):
        return pa.scalar(day, pa.date64())
    return pa.scalar(day, pa.date32())


def _read(dataset: ds.Dataset, source: Source, columns: list[str], condition) -> pa.Table:
    try:
        return dataset.to_table(columns=columns, filter=condition)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(error(f"cannot read the data of source '{source.name}': {exc}", source.span,
                              "check the files and their column types", "read")) from None


def _is_time(type_: pa.DataType) -> bool:
    return pa.types.is_temporal(type_) and not pa.types.is_time(type_) and not pa.types.is_duration(type_)


_ROUND_TRIP_CODES = frozenset("dmYyHMSbB%")


def _check_real_dates(text, parsed, source: Source) -> None:
    """strptime rolls an impossible day over (31/02/2024 becomes 2 March): written back, such a date differs.

    Checked for the formats that write back exactly what they read, up to leading zeros, case and spacing.
    """
    import re

    import pyarrow.compute as pc

    if not set(re.findall(r"%(.)", source.time_format)) <= _ROUND_TRIP_CODES:
        return

    def plain(values):
        values = pc.replace_substring_regex(pc.utf8_lower(values), r"\s+", " ")
        return pc.replace_substring_regex(values, r"(^|\D)0+(\d)", r"\1\2")

    # A rolled-over day lands on the 1st, 2nd or 3rd of the next month: only those rows are written back.
    rows = pc.indices_nonzero(pc.fill_null(pc.less_equal(pc.day(parsed), 3), False))
    text, back = pc.take(text, rows), pc.strftime(pc.take(parsed, rows), format=source.time_format)
    off = pc.fill_null(pc.not_equal(plain(text), plain(back)), False)
    if pc.any(off).as_py():
        first = pc.index(off, True).as_py()
        row = rows[first].as_py()
        raise DataError(error(
            f"the time column '{source.time}' of source '{source.name}' has \"{text[first].as_py()}\" in row "
            f"{row + 1:,}, which is not a real date or time (it would be read as {back[first].as_py()})",
            source.span, "fix the value in the data; rows count from 1, after a CSV file's header", "time-format"))


def _mismatch_hint(text: Any) -> str:
    """How to fix a format that does not match the time column's ``text``: the formats that do, if any."""
    from . import timeformats

    found = timeformats.fitting(timeformats.sample_of(text))
    fits = "the values fit " + " or ".join(f'"{f}"' for f in found[:3]) + "; " if found else ""
    return (fits + "fix the format in the tree (strptime codes: %d day, %m month, %Y year, %H hour, %M minute, "
            "%S second) or the data; rows count from 1, after a CSV file's header")


def parse_time(table: pa.Table, source: Source) -> pa.Table:
    """The source's time column as timestamps: text parsed with its ``format``, placed in its ``timezone``.

    Text is parsed by `pyarrow.compute.strptime` (C strptime codes); empty text is a missing time.
    A value the format does not match is a `DataError` quoting it and its row. A column that
    is already a date or timestamp needs no format (it is kept as it is); a ``timezone`` makes
    naive timestamps local times of that zone and converts zone-aware ones to it.
    """
    import pyarrow.compute as pc

    name, fmt, zone = source.time, source.time_format, source.timezone
    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if not _is_time(column.type):
        if fmt is None:
            raise DataError(error(
                f"the time column '{name}' of source '{source.name}' holds {column.type}, not dates or timestamps",
                source.span, time_format_hint(source, column), "time-type"))
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
                or pa.types.is_integer(column.type)):
            raise DataError(error(f"the time column '{name}' of source '{source.name}' holds {column.type}, "
                                  "not text a format can parse", source.span,
                                  "store the times as text or as timestamps", "time-type"))
        text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
        bad = pc.and_(pc.is_valid(text), pc.is_null(parsed))
        wrong = pc.sum(bad).as_py() or 0
        if wrong:
            row = pc.index(bad, True).as_py()
            more = ("" if wrong == 1 else " (1 more row does not match either)" if wrong == 2 else
                    f" ({wrong - 1:,} more rows do not match either)")
            raise DataError(error(
                f"the time column '{name}' of source '{source.name}' has \"{text[row].as_py()}\" in row {row + 1:,}, "
                f"which does not match the format \"{fmt}\"{more}", source.span,
                _mismatch_hint(text), "time-format"))
        _check_real_dates(text, parsed, source)
        column = parsed
    if zone is not None and pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            column = pc.assume_timezone(column, zone, ambiguous="earliest", nonexistent="earliest")
        else:
            column = column.cast(pa.timestamp(column.type.unit, zone))
    return table.set_column(table.schema.get_field_index(name), name, column)


def _check_text(source: Source, arrow: pa.Table | ds.Dataset, needs: list[Need]) -> None:
    """Arrow's CSV reader reads text that is not UTF-8 as bytes: say so, naming the file and the column."""
    if not _is_dataset(arrow):
        return
    import pyarrow.dataset as ds

    if not isinstance(arrow, ds.FileSystemDataset) or not isinstance(arrow.format, ds.CsvFileFormat):
        return
    for need in needs:
        field = arrow.schema.field(need.column)
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            files = [f for f in arrow.files if pa.types.is_binary(_csv_type(arrow, f, need.column))] or arrow.files
            raise DataError(error(
                f"the column '{need.column}' of source '{source.name}' in {files[0]} is not UTF-8 text "
                f"({need.why})", need.span,
                f"name its encoding after the path: --data {source.name}={files[0]}?encoding=cp1251 (any Python "
                "codec; the same in the Python API), or save the file as UTF-8", "encoding"))


def _csv_type(dataset: ds.FileSystemDataset, file: str, column: str) -> pa.DataType:
    import pyarrow.dataset as ds

    try:
        return ds.dataset(file, format=dataset.format).schema.field(column).type
    except (pa.ArrowInvalid, KeyError, OSError):
        return pa.binary()


def _null_times(source: Source, arrow: pa.Table | ds.Dataset) -> int:
    """How many rows have no time: they belong to no period, so no metric counts them."""
    if _is_dataset(arrow):
        import pyarrow.compute as pc

        try:
            return arrow.count_rows(filter=pc.field(source.time).is_null())
        except (pa.ArrowInvalid, OSError):
            return 0  # reading the rows reports it
    return arrow.column(source.time).null_count


def _bound(source: Source, data: Mapping[str, Any], needs: list[Need], dimensions: list[str],
           since: dt.date | None, until: dt.date | None, counts: dict[str, int] | None) -> tuple[Any, list[str], Any]:
    """The data of one source checked against its needs: (table or dataset, columns, time filter)."""
    if source.name not in data:
        given = ", ".join(sorted(data)) or "none"
        raise DataError(error(
            f"no data for source '{source.name}'", source.span,
            f"pass it with --data {source.name}=PATH (or data={{'{source.name}': table}}); data given for: {given}"
            + (f"; {did_you_mean(source.name, data)}" if did_you_mean(source.name, data) else ""), "no-data"))
    dictionary_columns = list(dict.fromkeys([*dimensions, *(n.column for n in needs if n.dictionary)]))
    arrow = as_arrow(data[source.name], source, dictionary_columns)
    schema = arrow.schema
    time_type = check_schema(source, schema, needs, lambda: time_values(arrow, source.time))
    _check_text(source, arrow, needs)
    converts = source.time_format is not None or source.timezone is not None
    if converts:
        # The times are parsed after reading, so the range is applied to the rows read, not pushed to the files.
        arrow = arrow if isinstance(arrow, pa.Table) else _read(arrow, source, list(dict.fromkeys(
            n.column for n in needs)), None)
        arrow = parse_time(arrow, source)
        time_type = arrow.schema.field(source.time).type
    if counts is not None:
        counts["null_times"] = _null_times(source, arrow)
    condition = None
    if since is not None or until is not None:
        import pyarrow.compute as pc

        time = pc.field(source.time)
    if since is not None:
        condition = time >= _time_scalar(since, time_type)
    if until is not None:
        upper = time < _time_scalar(until, time_type)
        condition = upper if condition is None else condition & upper
    return arrow, list(dict.fromkeys(n.column for n in needs)), condition


def read(source: Source, data: Mapping[str, Any], needs: list[Need], dimensions: list[str],
         since: dt.date | None = None, until: dt.date | None = None, counts: dict[str, int] | None = None) -> pa.Table:
    """The columns ``needs`` of one source, rows with ``since <= time < until``, validated.

    ``counts``, if given, gets ``null_times``: how many rows were left out for having no time.
    """
    arrow, columns, condition = _bound(source, data, needs, dimensions, since, until, counts)
    if _is_dataset(arrow):
        table = _read(arrow, source, columns, condition)
    else:
        table = arrow.select(columns)
        if condition is not None:
            table = table.filter(condition)
    # Each Parquet row group brings its own dictionary; grouping needs one per column.
    table = one_dictionary(table)
    if table.num_rows == 0:
        raise no_rows(source, since, until)
    return table


def one_dictionary(table: pa.Table) -> pa.Table:
    """``table`` with one dictionary per dictionary-encoded column (grouping needs one per column).

    Each Parquet row group brings its own dictionary, and hands that same dictionary to every batch read
    from it: runs of batches with equal dictionaries are joined first (their indices only), so that each
    dictionary is merged once, not once a batch (a row group's 100,000 invoice numbers, eight times over).
    """
    for i, field in enumerate(table.schema):
        if not pa.types.is_dictionary(field.type):
            continue
        column = table.column(i)
        runs: list[list[pa.Array]] = []
        for chunk in column.chunks:
            last = runs[-1][-1].dictionary if runs else None
            # Equal when they are the same array (a dataset scan), or copies of it (the file reader's batches):
            # comparing them is a memcmp, far cheaper than hashing their values.
            if last is not None and len(last) == len(chunk.dictionary) and last.equals(chunk.dictionary):
                runs[-1].append(chunk)
            else:
                runs.append([chunk])
        if len(runs) < column.num_chunks:
            joined = pa.chunked_array([pa.concat_arrays(run) if len(run) > 1 else run[0] for run in runs], field.type)
            table = table.set_column(i, field, joined)
    return table.unify_dictionaries()


def missing_column_hint(column: str, names: list[str]) -> str:
    """The closest of a table's column ``names`` to ``column``, and the first dozen of them, each as a
    tree file writes it (`` `Order Date` `` in backticks)."""
    guess = did_you_mean(column, names, lambda name: f"'{name}'" if spell(name) == name else spell(name))
    columns = ", ".join(spell(n) for n in names[:12]) + (" …" if len(names) > 12 else "")
    quoted = any(spell(n) != n for n in names[:12])
    return ((guess + " " if guess else "") + f"its columns: {columns}"
            + (" (a name that is not one word is written in backticks)" if quoted else ""))


def check_schema(source: Source, schema: pa.Schema, needs: list[Need],
                 values_of_time: Callable[[], Any] | None = None) -> pa.DataType:
    """Every column ``needs`` is in ``schema`` and the time column holds times; returns the time column's type.

    ``values_of_time``: where the error for a time column of text can read some of its values, to name the format
    they are written in (`timeformats.hint`)."""
    names = set(schema.names)
    for need in needs:
        if need.column not in names:
            raise DataError(error(f"source '{source.name}' has no column '{need.column}' ({need.why})", need.span,
                                  missing_column_hint(need.column, schema.names), "missing-column"))
    time_type = schema.field(source.time).type
    converts = source.time_format is not None or source.timezone is not None
    if not converts and not _is_time(time_type):
        span = next((n.span for n in needs if n.column == source.time), source.span)
        raise DataError(error(
            f"the time column '{source.time}' of source '{source.name}' holds {time_type}, not dates or timestamps",
            span, time_format_hint(source, values_of_time() if values_of_time is not None else None), "time-type"))
    return time_type


def time_format_hint(source: Source, values: Any) -> str:
    """How to fix a time column of text with no format: the format its ``values`` (a sample, or ``None``) are
    written in when one fits them (`timeformats`), else the general advice."""
    from . import timeformats

    found = timeformats.hint(values, spell(source.time)) if values is not None else None
    return found or ("store it as a date or timestamp (in CSV, ISO dates like 2026-10-05 are read as dates; "
                     f"in pandas use pd.to_datetime), or name its format: time {spell(source.time)} format "
                     '"%d/%m/%Y %H:%M" (strptime codes)')


# Rows of a time column read for the hint of its error (`time_values`): a few ms of text to try formats on.
_HINT_ROWS = 100_000


def time_values(arrow: Any, name: str) -> Any:
    """Values of the column ``name`` for a hint: all of a table's (`timeformats` takes its distinct ones), the
    first rows of a dataset's; ``None`` when they cannot be read."""
    try:
        if isinstance(arrow, pa.Table):
            return arrow.column(name)
        return arrow.head(_HINT_ROWS, columns=[name]).column(name)
    except (pa.ArrowException, OSError, ValueError, KeyError):
        return None


def no_rows(source: Source, since: dt.date | None, until: dt.date | None) -> DataError:
    """The error for a source with no rows (in the range read)."""
    window = ""
    if since or until:
        window = f" between {since or 'the start'} and {until - dt.timedelta(days=1) if until else 'the end'}"
    return DataError(error(f"source '{source.name}' has no rows{window}", source.span,
                           "check the data passed for it" + (" and the --from/--to range" if window else ""),
                           "empty"))


# A stream of rows is handed on in tables of about this many rows (whole Parquet row groups, so often more):
# big enough for the grouping kernels to run at full speed, small enough that the working memory of one
# table (its columns and the aggregation's temporaries, 100-250 bytes a row) stays a few hundred MB: fresh
# memory costs kernel time, so a smaller working set is faster too, until the merges of more pieces cost more.
# Measured on every evaluate benchmark (bench/README.md, *Table size*): 2M rows against 4M, peaks 90-250 MB
# lower (10M orders, crm and retail trees; 100M orders) and 100M orders 10-20 % faster; 1M rows made the crm
# tree slower again.
ROWS_PER_TABLE = 1 << 21

# The size of the tables `scan` hands on where no size is asked for, while `pieces_of` says (explain's passes).
_ROWS_NOW: contextvars.ContextVar[int | None] = contextvars.ContextVar("rows_per_table", default=None)
# Whether, while `pieces_of` says so, a run of Parquet row groups stops short of its size instead of passing it.
_AT_MOST: contextvars.ContextVar[bool] = contextvars.ContextVar("rows_at_most", default=False)


@contextlib.contextmanager
def pieces_of(rows: int, at_most: bool = False) -> Iterator[None]:
    """Within the block, scans that ask for no size hand on tables of about ``rows`` rows (see `table_rows`).

    With ``at_most``, a run of Parquet row groups ends before the row group that would take it past ``rows``
    (a row group bigger than that is a table of its own; one more than twice as big is read batch by batch):
    without it, a run ends at the first row group that reaches ``rows``, so row groups a little smaller than
    ``rows`` come two to a table."""
    token, limit = _ROWS_NOW.set(rows), _AT_MOST.set(at_most)
    try:
        yield
    finally:
        _AT_MOST.reset(limit)
        _ROWS_NOW.reset(token)


def table_rows() -> int:
    """The rows of the tables a scan hands on now: `pieces_of`'s, else `ROWS_PER_TABLE`."""
    return _ROWS_NOW.get() or ROWS_PER_TABLE


@attrs.frozen
class Piece:
    """One table of a source's rows in a scan.

    Attributes:
        table: the rows (the columns asked for).
        after: when known, a time no row of the later pieces is earlier than (from the files' statistics), so
            that what was aggregated for earlier periods is final; ``None`` when not known.
        last: whether it is known to be the last piece.
    """

    table: pa.Table
    after: Any = None
    last: bool = False


def scan(source: Source, data: Mapping[str, Any], needs: list[Need], dimensions: list[str],
         since: dt.date | None = None, until: dt.date | None = None, counts: dict[str, int] | None = None,
         rows_per_table: int | None = None) -> Iterator[Piece]:
    """`read`, as a stream: tables of about ``rows_per_table`` rows each (default `table_rows()`) (one per stretch of Parquet row
    groups, CSV blocks or Arrow record batches), so that a caller that reduces each one holds one at a time.

    ``counts``: as for `read`. After each table the rows read so far and the rows expected (``None`` when
    unknown, e.g. for CSV) go to `metrictree.progress` (stage "<source>: reading"), if a callback is set.
    Data already in memory comes as one table.
    """
    rows_per_table = rows_per_table or table_rows()
    arrow, columns, condition = _bound(source, data, needs, dimensions, since, until, counts)
    progress = _progress(source)
    if not _is_dataset(arrow):
        table = arrow.select(columns)
        if condition is not None:
            table = table.filter(condition)
        if table.num_rows == 0:
            raise no_rows(source, since, until)
        if progress is not None:
            progress(table.num_rows, table.num_rows)
        yield Piece(one_dictionary(table), last=True)
        return
    total = _rows_expected(arrow) if progress is not None else None
    pieces = _row_group_pieces(arrow, source.time, rows_per_table, _AT_MOST.get() and _ROWS_NOW.get() is not None)
    if pieces is not None:
        yield from _read_pieces(arrow, pieces, source, columns, condition, since, until, progress, total,
                                rows_per_table)
        return
    pending: list[pa.RecordBatch] = []
    held = done = handed = 0
    try:
        for batch in arrow.scanner(columns=columns, filter=condition).to_batches():
            done += batch.num_rows
            if progress is not None:
                progress(done, total)
            if not batch.num_rows:
                continue
            pending.append(batch)
            held += batch.num_rows
            if held >= rows_per_table:
                # Each Parquet row group brings its own dictionary; grouping needs one per column.
                piece, pending = Piece(one_dictionary(pa.Table.from_batches(pending))), []
                yield piece
                piece, held, handed = None, 0, handed + 1
    except (pa.ArrowInvalid, OSError) as exc:
        raise _unreadable(source, exc) from None
    if pending:
        yield Piece(one_dictionary(pa.Table.from_batches(pending)))
    elif not handed:
        raise no_rows(source, since, until)


class ahead:  # noqa: N801 — used like a function: ``for piece in ahead(pieces)``
    """``pieces``, each read (on another thread) while the caller works on the one before: reading and
    aggregating overlap, at the cost of holding one piece more. The first read starts at once. The reads
    run in the caller's context, so they report to its progress callback; an error while reading is
    raised where the piece is asked for.
    """

    def __init__(self, pieces: Iterator[Piece]) -> None:
        import contextvars
        from concurrent.futures import ThreadPoolExecutor

        self._pieces = pieces
        self._context = contextvars.copy_context()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrictree-read")
        self._pending = self._pool.submit(self._context.run, next, pieces, None)

    def __iter__(self) -> ahead:
        return self

    def __next__(self) -> Piece:
        if self._pending is None:
            raise StopIteration
        try:
            piece = self._pending.result()
        except BaseException:
            self.close()
            raise
        if piece is None:
            self.close()
            raise StopIteration
        self._pending = self._pool.submit(self._context.run, next, self._pieces, None)
        return piece

    def close(self) -> None:
        """Stop reading ahead (waits for a read under way)."""
        self._pending = None
        self._pool.shutdown(wait=True)


def _unreadable(source: Source, exc: Exception) -> DataError:
    return DataError(error(f"cannot read the data of source '{source.name}': {exc}", source.span,
                           "check the files and their column types", "read"))


def _row_group_pieces(dataset: Any, time: str, rows_per_table: int,
                      at_most: bool = False) -> list[tuple[list, Any, int]] | None:
    """Parquet row groups in runs of about ``rows_per_table`` rows: (fragments, earliest time, rows) each; with
    ``at_most``, runs of no more than that (but at least one row group each).

    ``None`` when the files are not plain Parquet files (CSV, Arrow, hive partitions), or a row group has
    no statistics for the time column: those are read batch by batch instead.
    """
    if type(getattr(dataset, "format", None)).__name__ != "ParquetFileFormat":
        return None
    pieces, run, rows, earliest = [], [], 0, None
    try:
        for fragment in dataset.get_fragments():
            if str(fragment.partition_expression) != "true":
                return None
            for group in fragment.split_by_row_group():
                info = group.row_groups[0]
                stats = info.statistics.get(time) if info.statistics else None
                if not stats or stats.get("min") is None:
                    return None
                low = stats["min"]
                if at_most and run and rows + info.num_rows > rows_per_table:
                    pieces.append((run, earliest, rows))
                    run, rows, earliest = [], 0, None
                earliest = low if earliest is None else min(earliest, low)
                run.append(group)
                rows += info.num_rows
                if rows >= rows_per_table:
                    pieces.append((run, earliest, rows))
                    run, rows, earliest = [], 0, None
    except (pa.ArrowInvalid, OSError, TypeError, ValueError, AttributeError):
        return None  # e.g. a dataset already filtered, whose fragments cannot be listed
    if run:
        pieces.append((run, earliest, rows))
    return pieces


def _read_pieces(dataset: Any, pieces: list, source: Source, columns: list[str], condition, since, until,
                 progress, total, rows_per_table: int) -> Iterator[Piece]:
    """Each run of row groups as one table (read on every core), with the earliest time still to come."""
    import pyarrow.dataset as ds

    # after[i]: the earliest time of the row groups after run i (the watermark a run's successors keep).
    after: list[Any] = [None] * len(pieces)
    for i in range(len(pieces) - 2, -1, -1):
        later = pieces[i + 1][1]
        after[i] = later if after[i + 1] is None else min(later, after[i + 1])
    done = handed = 0
    for (fragments, earliest, rows), watermark in zip(pieces, after, strict=True):
        last = watermark is None
        if rows > 2 * rows_per_table:
            # One row group far bigger than a table: read it batch by batch. Its own later rows are no
            # earlier than its first time, so that is the watermark inside it.
            inside = earliest if watermark is None else min(earliest, watermark)
            pending, held = [], 0
            try:
                size = max(1, min(1 << 17, rows_per_table))
                for batch in _row_group_batches(dataset, fragments[0], columns, condition, size):
                    done += batch.num_rows
                    if progress is not None:
                        progress(done, total)
                    if batch.num_rows:
                        pending.append(batch)
                        held += batch.num_rows
                    if held >= rows_per_table:
                        piece, pending, held = Piece(one_dictionary(pa.Table.from_batches(pending)), inside), [], 0
                        handed += 1
                        yield piece
                        piece = None
            except (pa.ArrowInvalid, OSError) as exc:
                raise _unreadable(source, exc) from None
            if pending:
                handed += 1
                piece, pending = Piece(one_dictionary(pa.Table.from_batches(pending)), watermark, last=last), []
                yield piece
                piece = None
            continue
        part = ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
        try:
            table = part.to_table(columns=columns, filter=condition)
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable(source, exc) from None
        done += rows
        if progress is not None:
            progress(done, total)
        if table.num_rows:
            handed += 1
            piece, table = Piece(one_dictionary(table), watermark, last=last), None
            yield piece
            piece = None  # not held while the next run is read
    if not handed:
        raise no_rows(source, since, until)


def _row_group_batches(dataset: Any, fragment: Any, columns: list[str], condition, size: int) -> Iterator:
    """The rows of one (big) Parquet row group, ``size`` at a time, filtered by ``condition``.

    Read with the Parquet file reader, which decodes a batch at a time: a dataset scan of one row group
    holds much of it decoded at once (600 MB live for a 10M-row row group of the benchmark's orders, against
    100 MB). Through the dataset scan when the file reader would give other types than the dataset's
    schema (a dataset whose schema was given or merged from several files).
    """
    import pyarrow.parquet as pq

    wanted = pa.schema([dataset.schema.field(c) for c in columns])
    read_options = getattr(dataset.format, "read_options", None)
    dictionary = list(getattr(read_options, "dictionary_columns", None) or [])
    try:
        handle = dataset.filesystem.open_input_file(fragment.path)
        reader = pq.ParquetFile(handle, read_dictionary=[c for c in dictionary if c in columns])
        batches = reader.iter_batches(batch_size=size, row_groups=[fragment.row_groups[0].id], columns=columns)
        first = next(batches, None)
    except (pa.ArrowInvalid, OSError, TypeError, ValueError, AttributeError, KeyError):
        first, handle = None, None
    if first is None or not first.schema.equals(wanted):
        if handle is not None:
            handle.close()
        yield from fragment.to_batches(schema=dataset.schema, columns=columns, filter=condition, batch_size=size)
        return
    with handle:
        for batch in itertools.chain([first], batches):
            yield batch if condition is None else batch.filter(condition)


def _rows_expected(dataset: Any) -> int | None:
    """How many rows the files hold, when their metadata says so without reading them (Parquet, Arrow)."""
    fmt = type(getattr(dataset, "format", None)).__name__
    if fmt not in ("ParquetFileFormat", "IpcFileFormat"):
        return None
    try:
        return dataset.count_rows()
    except (pa.ArrowInvalid, OSError):
        return None


def _progress(source: Source) -> Callable[[int, int | None], None] | None:
    """Where a scan reports how far it has got: `metrictree.progress`'s current callback, if one is set."""
    from . import progress

    if progress.current() is None:
        return None
    stage = f"{source.name}: reading"
    return lambda done, total: progress.report(stage, done, total)
