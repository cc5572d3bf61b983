"""The format of a text time column, guessed for the hint of its error (metrictree.timeformats): the format the
values are written in, both when day and month cannot be told apart, and a format that fits the data when the
tree's does not. The guess never parses anything: an unnamed format is still an error."""

from __future__ import annotations

import pyarrow as pa
import pytest

import metrictree
from metrictree import DataError, timeformats
from metrictree.datacheck import check_data

TREE = """tree t
grain month
source orders {
    time day
    entity customer
}
metric n = count(orders)
metric buyers = count_distinct(orders.customer)
metric frequency = n / buyers { level strategic }
"""


@pytest.mark.parametrize(("values", "formats"), [
    (["13/02/2026", "01/02/2026"], ["%d/%m/%Y"]),
    (["01/02/2026", "02/13/2026"], ["%m/%d/%Y"]),
    (["01/02/2026", "02/03/2026"], ["%d/%m/%Y", "%m/%d/%Y"]),  # no day past 12: either
    (["2026-01-02 10:00", "2026-01-03 11:30"], ["%Y-%m-%d %H:%M"]),
    (["2026-01-02T10:00:00"], ["%Y-%m-%dT%H:%M:%S"]),
    (["31.12.25", "01.01.26"], ["%d.%m.%y"]),  # not the year 25 that %Y would also read
    (["5 Jan 2026", "12 February 2026"], ["%d %b %Y"]),  # strptime reads short and whole names alike
    (["20260101", "20260213"], ["%Y%m%d"]),
    (["  01/02/2026 10:05 PM ", None, ""], ["%d/%m/%Y %I:%M %p", "%m/%d/%Y %I:%M %p"]),  # trimmed; blanks skipped
    (["hello", "2026-01-02"], []),
    ([], []),
])
def test_the_formats_that_read_every_value(values, formats):
    assert timeformats.fitting(timeformats.sample_of(pa.array(values, pa.string()))) == formats


def test_whole_numbers_and_dictionaries_are_read_as_their_text():
    assert timeformats.fitting(timeformats.sample_of(pa.array([20260105, 20261231]))) == ["%Y%m%d"]
    coded = pa.array(["13/02/2026", "13/02/2026"]).dictionary_encode()
    assert timeformats.fitting(timeformats.sample_of(pa.chunked_array([coded]))) == ["%d/%m/%Y"]
    assert timeformats.fitting(timeformats.sample_of(pa.array([1.5, 2.5]))) == []


def test_the_hint_shows_the_value_that_tells_day_from_month():
    hint = timeformats.hint(pa.array(["01/02/2026", "03/04/2026", "02/13/2026"]), "day")
    assert hint == 'its values look like "02/13/2026": name the format in the source, time day format "%m/%d/%Y"'
    both = timeformats.hint(pa.array(["01/02/2026", "03/04/2026"]), "`Order Date`")
    assert both == ('its values look like "01/02/2026", which reads as "%d/%m/%Y" or "%m/%d/%Y" (no value tells '
                    'which): name the one the data uses in the source, e.g. time `Order Date` format "%d/%m/%Y"')
    assert timeformats.hint(pa.array(["soon"]), "day") is None


def _hint(data) -> str:
    with pytest.raises(DataError) as caught:
        metrictree.loads(TREE, "t.tree").evaluate({"orders": data})
    (problem,) = caught.value.diagnostics
    assert problem.code in ("time-type", "time-format") and problem.span.line == 3
    return problem.hint


def test_evaluate_names_the_format_of_a_csv_file(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("day,customer\n01/02/2026,a\n02/13/2026,b\n03/02/2026,a\n")
    assert _hint(path) == ('its values look like "02/13/2026": name the format in the source, '
                           'time day format "%m/%d/%Y"')
    # Named, it is read as written: February 13 is in 2026-02.
    tree = metrictree.loads(TREE.replace("time day", 'time day format "%m/%d/%Y"'), "t.tree")
    assert tree.evaluate({"orders": path}).to_pydict()["period"] == ["2026-01", "2026-02", "2026-03"]


def test_every_row_of_a_table_in_memory_is_looked_at():
    # The one value that tells day from month is the last of 300,000 rows: its distinct values are sampled,
    # not its first rows.
    days = ["01/02/2026"] * 299_999 + ["13/02/2026"]
    hint = _hint(pa.table({"day": days, "customer": ["a"] * 300_000}))
    assert '"%d/%m/%Y"' in hint and '"%m/%d/%Y"' not in hint


def test_a_format_that_does_not_match_is_answered_with_one_that_does(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("day,customer\n01/02/2026,a\n02/13/2026,b\n")
    tree = metrictree.loads(TREE.replace("time day", 'time day format "%d/%m/%Y"'), "t.tree")
    with pytest.raises(DataError) as caught:
        tree.evaluate({"orders": path})
    (problem,) = caught.value.diagnostics
    assert problem.message.endswith('has "02/13/2026" in row 2, which does not match the format "%d/%m/%Y"')
    assert problem.hint.startswith('the values fit "%m/%d/%Y"; fix the format in the tree')


def test_check_with_data_gives_the_same_hint(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("day,customer\n2026.01.05,a\n2026.02.05,b\n")
    (problem,) = check_data(metrictree.loads(TREE, "t.tree"), {"orders": path})
    assert problem.code == "time-type"
    assert problem.hint == ('its values look like "2026.01.05": name the format in the source, '
                            'time day format "%Y.%m.%d"')
