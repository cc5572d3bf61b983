"""The synthetic online-retail log: its shape, its quirks, and that planted changes land where asked."""

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from metrictree.retail import Change, invoice_log, write_invoice_log


def _basket(table: pa.Table, country: str, month: str) -> float:
    labels = pc.strftime(table["InvoiceDate"], "%Y-%m")
    rows = table.filter(pc.and_(pc.equal(table["Country"].cast(pa.string()), country), pc.equal(labels, month)))
    amount = pc.sum(pc.multiply(rows["Quantity"], rows["UnitPrice"])).as_py()
    return amount / pc.count_distinct(rows["InvoiceNo"]).as_py()


def test_shape_and_quirks():
    table = invoice_log(50_000, seed=3)
    assert table.column_names == ["InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                                  "Country"]
    assert 40_000 < table.num_rows < 60_000
    guests = table["CustomerID"].null_count / table.num_rows
    assert 0.15 < guests < 0.25
    credit = pc.starts_with(table["InvoiceNo"], "C")
    assert pc.all(pc.less(table.filter(credit)["Quantity"], 0)).as_py()
    assert pc.all(pc.greater(table.filter(pc.invert(credit))["Quantity"], 0)).as_py()
    assert pc.min(table["InvoiceDate"]).as_py().strftime("%Y-%m") == "2023-12"
    assert pc.max(table["InvoiceDate"]).as_py().strftime("%Y-%m") == "2024-09"


def test_same_seed_same_log():
    assert invoice_log(5_000, seed=7).equals(invoice_log(5_000, seed=7))
    assert not invoice_log(5_000, seed=7).equals(invoice_log(5_000, seed=8))


def test_planted_basket_change_lands_in_its_country_and_month():
    plain = invoice_log(200_000, seed=1)
    planted = invoice_log(200_000, seed=1, changes=[Change({"Country": "Germany"}, "2024-09", basket=0.36)])
    assert _basket(planted, "Germany", "2024-09") == pytest.approx(0.36 * _basket(plain, "Germany", "2024-09"), rel=0.02)
    assert _basket(planted, "Germany", "2024-08") == pytest.approx(_basket(plain, "Germany", "2024-08"))
    assert _basket(planted, "Spain", "2024-09") == pytest.approx(_basket(plain, "Spain", "2024-09"))


def test_fewer_invoices_in_a_segment():
    plain = invoice_log(100_000, seed=2)
    planted = invoice_log(100_000, seed=2, changes=[Change({"segment": "regular"}, "2024-09", invoices=0.5)])
    september = lambda t: t.filter(pc.equal(pc.strftime(t["InvoiceDate"], "%Y-%m"), "2024-09"))
    ratio = pc.count_distinct(september(planted)["InvoiceNo"]).as_py() / pc.count_distinct(
        september(plain)["InvoiceNo"]).as_py()
    # Known customers place 80 % of the invoices, regular ones 0.6 × 1.0 / (0.25 × 0.8 + 0.6 × 1.0 + 0.15 × 1.8)
    # = 56 % of those, and half of theirs go: 1 - 0.8 × 0.56 × 0.5 = 0.78.
    assert ratio == pytest.approx(0.78, abs=0.03)


def test_unknown_country_is_a_clear_error():
    with pytest.raises(ValueError, match="no country 'Atlantis'"):
        invoice_log(1_000, changes=[Change({"Country": "Atlantis"}, "2024-09", basket=0.5)])


def test_written_in_chunks(tmp_path):
    path = write_invoice_log(tmp_path / "log.parquet", 30_000, chunk_rows=10_000)
    table = pq.read_table(path)
    assert pq.ParquetFile(path).metadata.num_rows == table.num_rows > 25_000
    assert pc.count_distinct(table["InvoiceNo"]).as_py() == len(set(table["InvoiceNo"].to_pylist()))
