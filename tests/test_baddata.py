"""The bad-data corpus (tests/baddata/, written by make_corpus.py): every file through the command line.

Each case asserts the exit code, that there is no traceback, that a refusal names the source and the
column (or the file), and for accepted files that the numbers equal an independent computation
(DuckDB's own CSV and Parquet readers, or plain Python over the rows).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from metrictree.cli import main

CORPUS = Path(__file__).resolve().parent / "baddata"
TREE = "source orders { time d dimensions region }\nmetric revenue = sum(orders.amount) { level strategic }\n"
CYRILLIC = "source заказы { time дата dimensions регион }\nmetric выручка = sum(заказы.сумма) { level strategic }\n"


def _run(tmp_path: Path, data: str, tree: str = TREE, source: str = "orders"):
    tree_file = tmp_path / "shop.tree"
    tree_file.write_text(tree, "utf-8")
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    result = runner.invoke(main, ["eval", str(tree_file), "--data", f"{source}={CORPUS / data}", "--by",
                                  tree.split("dimensions ")[1].split()[0], "--format", "json"])
    assert "Traceback" not in result.stderr and result.exception is None or isinstance(result.exception,
                                                                                          SystemExit)
    return result


def _duckdb_months(sql_source: str, time: str = "d", region: str = "region", amount: str = "amount",
                   zone: str | None = None) -> dict[tuple[str, str], float]:
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    if zone:
        con.execute(f"SET TimeZone = '{zone}'")
    rows = con.execute(f'select strftime("{time}", \'%Y-%m\'), "{region}", sum("{amount}") from {sql_source} '
                       f'where "{time}" is not null group by all').fetchall()
    return {(p, r): float(v) for p, r, v in rows if v}  # the grid's empty slices are 0 and left out too


def _months(result, metric: str = "revenue", region: str = "region") -> dict[tuple[str, str], float]:
    rows = json.loads(result.stdout)["rows"]
    return {(r["period"], r[region]): r[metric] for r in rows if r[metric]}


# --------------------------------------------------------------------------- refused, with a clear message


@pytest.mark.parametrize("data, words", [
    ("cp1251.csv", ["source 'orders'", "'region'", "cp1251.csv", "not UTF-8", "encoding"]),
    ("decimal_comma.csv", ["source 'orders'", "orders.amount", "'10,5'", "decimal point"]),
    ("dollar_amounts.csv", ["source 'orders'", "orders.amount", "'$10.00'", "currency sign"]),
    ("header_only.csv", ["source 'orders'", "'d'"]),
    ("empty.csv", ["source 'orders'", "empty.csv"]),
    ("text_time.csv", ["source 'orders'", "time column 'd'", "format"]),
    ("missing_column.csv", ["source 'orders'", "'amount'", "its columns: d, region, total"]),
    ("truncated.parquet", ["source 'orders'", "truncated.parquet"]),
    ("mixed", ["mixes files of several formats", "a.parquet", "b.csv", "notes.txt"]),
])
def test_refused_files_say_why(tmp_path, data, words):
    result = _run(tmp_path, data)
    assert result.exit_code == 1, result.stdout
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    first = result.stderr.splitlines()[0]
    assert first.startswith((str(tmp_path / "shop.tree"), "error:")), first


# --------------------------------------------------------------------------- accepted, and right


@pytest.mark.parametrize("data", ["bom.csv", "crlf.csv", "good.parquet"])
def test_accepted_files_match_duckdb(tmp_path, data):
    result = _run(tmp_path, data)
    assert result.exit_code == 0, result.stderr
    reader = "read_parquet" if data.endswith(".parquet") else "read_csv"
    assert _months(result) == _duckdb_months(f"{reader}('{CORPUS / data}')")


def test_cyrillic_headers_and_values(tmp_path):
    result = _run(tmp_path, "cyrillic.csv", CYRILLIC, "заказы")
    assert result.exit_code == 0, result.stderr
    assert _months(result, "выручка", "регион") == _duckdb_months(f"read_csv('{CORPUS / 'cyrillic.csv'}')", "дата",
                                                                  "регион", "сумма")


def test_tz_aware_times_fall_in_their_local_months(tmp_path):
    result = _run(tmp_path, "tz_aware.parquet")
    assert result.exit_code == 0, result.stderr
    expected = _duckdb_months(f"read_parquet('{CORPUS / 'tz_aware.parquet'}')", zone="Europe/Moscow")
    assert _months(result) == expected == {("2026-01", "North"): 5.0, ("2026-02", "South"): 7.0}


@pytest.mark.parametrize("data", ["int64_max.csv", "int64_overflow.parquet"])
def test_huge_integer_sums_do_not_wrap(tmp_path, data):
    result = _run(tmp_path, data)
    assert result.exit_code == 0, result.stderr
    reader = "read_parquet" if data.endswith(".parquet") else "read_csv"
    duckdb = pytest.importorskip("duckdb")
    exact = dict(((p, r), Decimal(v)) for p, r, v in duckdb.connect().execute(
        f"select strftime(d, '%Y-%m'), region, sum(amount::hugeint)::varchar from {reader}('{CORPUS / data}') "
        "group by all").fetchall())
    got = _months(result)
    assert got.keys() == exact.keys()
    for key, value in exact.items():
        assert got[key] == pytest.approx(float(value), rel=1e-15) and got[key] > 0


def test_rows_with_no_time_are_reported(tmp_path):
    result = _run(tmp_path, "null_time.csv")
    assert result.exit_code == 0, result.stderr
    assert "source 'orders': 1 row(s) have no d" in result.stderr
    assert json.loads(result.stdout)["warnings"]
    assert _months(result) == _duckdb_months(f"read_csv('{CORPUS / 'null_time.csv'}')") == {
        ("2026-01", "North"): 200.0, ("2026-02", "South"): 3.0}


def test_year_one(tmp_path):
    result = _run(tmp_path, "year_one.csv")
    assert result.exit_code == 0, result.stderr
    assert _months(result) == {("0001-01", "North"): 1, ("0001-02", "South"): 2}


def test_nan_and_infinity_become_nulls_with_a_reason(tmp_path):
    result = _run(tmp_path, "nan_inf.parquet")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert _months(result) == {("2026-01", "N"): 1.0}
    assert {n["reason"] for n in document["nulls"]} == {
        "not a finite number (NaN or infinity in the data, or a float overflow)"}
    assert [n["rows"] for n in document["nulls"]] == [2]


# --------------------------------------------------------------------------- naming a CSV file's encoding


def test_a_cp1251_csv_reads_when_its_encoding_is_named(tmp_path):
    result = _run(tmp_path, "cp1251.csv?encoding=cp1251")
    assert result.exit_code == 0, result.stderr
    # Independently: Python's own codec over the raw bytes.
    rows = [line.split(",") for line in (CORPUS / "cp1251.csv").read_bytes().decode("cp1251").splitlines()[1:]]
    assert _months(result) == {(d[:7], region): float(amount) for d, region, amount in rows} == {
        ("2026-01", "Москва"): 10.0, ("2026-02", "Казань"): 20.0}


def test_the_encoding_is_a_python_api_parameter_too():
    import metrictree

    tree = metrictree.loads(TREE)
    table = tree.evaluate({"orders": f"{CORPUS / 'cp1251.csv'}?encoding=cp1251"}, by="region")
    found = zip(table.column("period").to_pylist(), table.column("region").to_pylist(),
                table.column("revenue").to_pylist(), strict=True)
    assert sorted(row for row in found if row[2]) == [("2026-01", "Москва", 10), ("2026-02", "Казань", 20)]


@pytest.mark.parametrize("data, words", [
    ("cp1251.csv?encoding=klingon", ["source 'orders'", "unknown text encoding 'klingon'", "cp1251"]),
    ("good.parquet?encoding=cp1251", ["source 'orders'", "CSV files only", "good.parquet"]),
])
def test_a_wrong_encoding_option_says_why(tmp_path, data, words):
    result = _run(tmp_path, data)
    assert result.exit_code == 1, result.stdout
    for word in words:
        assert word in result.stderr, (word, result.stderr)


# --------------------------------------------------------------------------- delimiters and decimal commas


def _excel_ru_months() -> dict[tuple[str, str], float]:
    """Independently: Python's own codec and string handling over the raw bytes."""
    months: dict[tuple[str, str], float] = {}
    for line in (CORPUS / "excel_ru.csv").read_bytes().decode("cp1251").splitlines()[1:]:
        d, region, amount = line.split(";")
        months[d[:7], region] = months.get((d[:7], region), 0.0) + float(amount.replace(",", "."))
    return months


def test_a_spreadsheet_export_with_semicolons_and_decimal_commas_reads_with_its_options(tmp_path):
    result = _run(tmp_path, "excel_ru.csv?encoding=cp1251&decimal=,")  # the semicolons are sniffed
    assert result.exit_code == 0, result.stderr
    assert _months(result) == _excel_ru_months() == {("2026-01", "Москва"): 11.75, ("2026-02", "Казань"): 20.0}
    named = _run(tmp_path, "excel_ru.csv?encoding=cp1251&delimiter=semicolon&decimal=,")
    assert named.exit_code == 0, named.stderr
    assert _months(named) == _excel_ru_months()


def test_a_decimal_comma_is_refused_with_the_option_that_reads_it(tmp_path):
    result = _run(tmp_path, "excel_ru.csv?encoding=cp1251")
    assert result.exit_code == 1
    assert "'10,5'" in result.stderr and "?decimal=," in result.stderr
    # The comma-separated file with quoted decimal commas reads with the same option.
    quoted = _run(tmp_path, "decimal_comma.csv?decimal=,")
    assert quoted.exit_code == 0, quoted.stderr
    assert _months(quoted) == {("2026-01", "North"): 10.5, ("2026-02", "South"): 20.25}


def test_the_csv_options_are_python_api_parameters_too():
    import metrictree

    table = metrictree.loads(TREE).evaluate({"orders": f"{CORPUS / 'excel_ru.csv'}?encoding=cp1251&decimal=,"},
                                            by="region")
    found = {(p, r): v for p, r, v in zip(*(table.column(c).to_pylist() for c in ("period", "region", "revenue")),
                                          strict=True) if v}
    assert found == _excel_ru_months()


@pytest.mark.parametrize("data, words", [
    ("excel_ru.csv?delimiter=;;", ["source 'orders'", "one character", "?delimiter=tab"]),
    ("excel_ru.csv?decimal=,&delimiter=,", ["source 'orders'", "not the delimiter"]),
    ("excel_ru.csv?sep=;", ["source 'orders'", "'sep=;'", "?encoding=cp1251&delimiter=;&decimal=,"]),
    ("excel_ru.csv?decimal=,&decimal=.", ["source 'orders'", "each once"]),
    ("good.parquet?decimal=,", ["source 'orders'", "CSV files only", "good.parquet"]),
])
def test_a_wrong_csv_option_says_why(tmp_path, data, words):
    result = _run(tmp_path, data)
    assert result.exit_code == 1, result.stdout
    for word in words:
        assert word in result.stderr, (word, result.stderr)


def test_a_semicolon_file_whose_sniffing_is_unsure_reads_by_its_header(tmp_path):
    # Two rows, a BOM, CRLF and a quoted field holding a semicolon: csv.Sniffer gives up; the header decides.
    (tmp_path / "orders.csv").write_bytes('\ufeffd;region;amount\r\n2026-01-05;"North; city";10,5\r\n'
                                          '2026-02-05;South;7,25\r\n'.encode())
    tree_file = tmp_path / "shop.tree"
    tree_file.write_text(TREE, "utf-8")
    result = CliRunner().invoke(main, ["eval", str(tree_file), "--data", f"orders={tmp_path / 'orders.csv'}?decimal=,",
                                  "--by", "region", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert _months(result) == {("2026-01", "North; city"): 10.5, ("2026-02", "South"): 7.25}


def test_a_folder_of_csv_files_with_different_delimiters_is_refused(tmp_path):
    folder = tmp_path / "orders"
    folder.mkdir()
    (folder / "a.csv").write_text("d;region;amount\n2026-01-05;North;10\n2026-01-06;South;2\n", "utf-8")
    (folder / "b.csv").write_text("d,region,amount\n2026-02-05,North,1\n2026-02-06,South,3\n", "utf-8")
    tree_file = tmp_path / "shop.tree"
    tree_file.write_text(TREE, "utf-8")
    result = CliRunner().invoke(main, ["eval", str(tree_file), "--data", f"orders={folder}"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    for word in ("source 'orders'", "a.csv is separated by semicolons", "b.csv by commas", "one delimiter"):
        assert word in result.output, (word, result.output)
