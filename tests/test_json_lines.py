"""JSON Lines files (.jsonl, .ndjson, .json with one object a line) are read like CSV and Parquet files: the same
numbers from the same rows, in a file or a folder; a JSON array, or lines whose fields change kind, are errors
that say which."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import metrictree
from metrictree import DataError

TREE = metrictree.loads("""tree t
grain month
source orders {
    time day
    dimensions channel
    entity customer
}
metric revenue = sum(orders.amount) where orders.status == "paid"
metric buyers = count_distinct(orders.customer)
metric aov = revenue / buyers { level strategic }
""", "t.tree")

ROWS = [{"day": "2026-01-03", "customer": "a", "channel": "web", "status": "paid", "amount": 10.5},
        {"day": "2026-01-20", "customer": "b", "channel": "app", "status": "paid", "amount": 4},
        {"day": "2026-02-01", "customer": "a", "channel": "web", "status": "refunded", "amount": 3},
        {"day": "2026-02-11", "customer": None, "channel": "web", "status": "paid", "amount": 7.25}]


def _lines(path, rows=ROWS):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".json"])
def test_json_lines_give_the_numbers_parquet_gives(tmp_path, suffix):
    table = pa.Table.from_pylist(ROWS)
    table = table.set_column(0, "day", table.column("day").cast(pa.timestamp("s")))
    pq.write_table(table, tmp_path / "orders.parquet")
    expected = TREE.evaluate({"orders": tmp_path / "orders.parquet"}, by=["channel"]).to_pylist()
    assert TREE.evaluate({"orders": _lines(tmp_path / f"orders{suffix}")}, by=["channel"]).to_pylist() == expected
    assert {(r["period"], r["channel"]): r["revenue"] for r in expected} == {
        ("2026-01", "app"): 4.0, ("2026-01", "web"): 10.5, ("2026-02", "app"): 0.0, ("2026-02", "web"): 7.25}


def test_a_folder_of_json_lines_files(tmp_path):
    folder = tmp_path / "orders"
    folder.mkdir()
    _lines(folder / "january.jsonl", ROWS[:2])
    _lines(folder / "february.jsonl", ROWS[2:])
    table = TREE.evaluate({"orders": folder}).to_pydict()
    assert table["period"] == ["2026-01", "2026-02"] and table["revenue"] == [14.5, 7.25]


def _error(path) -> metrictree.Diagnostic:
    with pytest.raises(DataError) as caught:
        TREE.evaluate({"orders": path})
    (problem,) = caught.value.diagnostics
    return problem


def test_one_json_array_is_told_apart(tmp_path):
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(ROWS, indent=2))
    problem = _error(path)
    assert problem.code == "read" and "cannot read" in problem.message
    assert problem.hint.startswith("metrictree reads JSON Lines, one object per line")
    assert "jq -c '.[]'" in problem.hint


def test_a_field_that_changes_kind_names_the_line(tmp_path):
    rows = [dict(ROWS[0]), {**ROWS[1], "amount": "four"}]
    problem = _error(_lines(tmp_path / "orders.jsonl", rows))
    assert "amount" in problem.message and "row 1" in problem.message
    assert problem.hint.startswith("each line must be one JSON object") and "row 1 is the second line" in problem.hint


def test_dates_that_are_not_iso_get_the_time_format_hint(tmp_path):
    rows = [{**row, "day": "/".join(reversed(row["day"].split("-")))} for row in ROWS]  # 03/01/2026
    problem = _error(_lines(tmp_path / "orders.jsonl", rows))
    assert problem.code == "time-type"
    assert problem.hint.endswith('time day format "%d/%m/%Y"')
