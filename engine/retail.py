"""A synthetic online-retail invoice log, shaped like the UCI "Online Retail" data set.

For tests, benchmarks and examples that need data looking like a real shop's export rather than the tidy
bundled sample (:mod:`metrictree.sample`): one row per invoice *line*, with the columns and the quirks of
the UCI file —

========== ==================================================================================
InvoiceNo  invoice number as text; credit notes (returns) start with ``C``
StockCode  product code as text (a few thousand, a long tail of rarely sold ones)
Quantity   units on the line; negative on credit notes
InvoiceDate  timestamp (seconds), UTC, shop hours
UnitPrice  price of one unit in GBP, per product, lognormal around 2.5
CustomerID integer; null on guest checkouts (about a fifth of the invoices)
Country    the customer's country (ten countries, the United Kingdom the largest)
========== ==================================================================================

The log is steady apart from mild seasonality (a November peak, a soft January and summer) and the
noise of a real shop: small countries are naturally volatile from month to month. Planted causes are
given as :class:`Change` values::

    from metrictree.retail import Change, invoice_log
    table = invoice_log(200_000, changes=[Change({"Country": "Germany"}, "2024-09", basket=0.36)])

It needs numpy (in the ``test`` and ``bench`` extras). Generation is vectorised and deterministic for a
given seed; :func:`write_invoice_log` writes logs far larger than memory to Parquet chunk by chunk::

    python -m metrictree.retail 20000000 retail.parquet
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["COUNTRIES", "Change", "invoice_log", "invoice_batches", "write_invoice_log"]

# Country and the share of customers living there. Small countries have few customers, so their monthly
# figures swing by sampling noise alone: the "small volatile segments" an explanation must not blame.
COUNTRIES: tuple[tuple[str, float], ...] = (
    ("United Kingdom", 0.55), ("Germany", 0.10), ("France", 0.09), ("EIRE", 0.06), ("Netherlands", 0.05),
    ("Spain", 0.04), ("Belgium", 0.04), ("Switzerland", 0.03), ("Portugal", 0.02), ("Australia", 0.02),
)
# Monthly seasonality of the number of invoices (January .. December).
SEASON = (0.85, 0.9, 1.0, 0.95, 1.0, 0.92, 0.9, 0.92, 1.05, 1.12, 1.3, 1.1)
LINES_PER_INVOICE = 10.0
INVOICES_PER_CUSTOMER_MONTH = 0.6
PRODUCTS = 4000


@attrs.frozen
class Change:
    """A planted cause: in `period` (``YYYY-MM``), the invoices matching `where` change.

    Attributes:
        where: column → value (``{"Country": "Germany"}``); the columns are Country and, for known
            customers, ``segment`` — every customer has a hidden segment ``new`` / ``regular`` / ``vip``
            (25 / 60 / 15 %) that the log does not show, so a change on it looks like a change in a
            group of customers.
        period: the month the change happens in.
        basket: factor on the unit prices of the matching invoices (the average basket follows).
        invoices: factor on how many invoices the matching customers place (below 1: some of them buy
            nothing that month, so they churn).
        credit: factor on the share of matching invoices that are credit notes (returns).
    """

    where: Mapping[str, str]
    period: str
    basket: float = 1.0
    invoices: float = 1.0
    credit: float = 1.0


def _numpy():
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy comes with the test and bench extras
        raise ImportError("metrictree.retail needs numpy: pip install numpy (or the test or bench extra)") from None
    return numpy


def _months(start: str, months: int) -> list[tuple[int, int]]:
    year, month = (int(part) for part in start.split("-"))
    out = []
    for _ in range(months):
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


@attrs.frozen
class _Shop:
    """What stays fixed across chunks: customers, products, months."""

    customer_country: Any  # index into COUNTRIES, per customer
    customer_segment: Any  # 0 new, 1 regular, 2 vip
    customer_rate: Any  # relative buying rate
    product_price: Any
    product_weight: Any
    months: list[tuple[int, int]]


SEGMENTS = ("new", "regular", "vip")


def _shop(rows: int, seed: int, start: str, months: int) -> _Shop:
    np = _numpy()
    rng = np.random.default_rng([seed, 0])
    invoices = rows / LINES_PER_INVOICE
    customers = max(50, int(invoices / (months * INVOICES_PER_CUSTOMER_MONTH)))
    shares = np.array([share for _, share in COUNTRIES])
    country = rng.choice(len(COUNTRIES), size=customers, p=shares / shares.sum())
    segment = rng.choice(3, size=customers, p=[0.25, 0.60, 0.15])
    rate = rng.gamma(2.0, 0.5, size=customers) * np.array([0.8, 1.0, 1.8])[segment]
    price = np.round(rng.lognormal(np.log(2.5), 0.7, size=PRODUCTS), 2) + 0.01
    weight = 1.0 / np.arange(1, PRODUCTS + 1) ** 0.8
    return _Shop(country, segment, rate / rate.sum(), price, weight / weight.sum(), _months(start, months))


def _matches(change: Change, country, segment, known) -> Any:
    np = _numpy()
    mask = np.ones(len(country), dtype=bool)
    for column, value in change.where.items():
        if column == "Country":
            names = [name for name, _ in COUNTRIES]
            if value not in names:
                raise ValueError(f"Change: no country {value!r}; the countries are {', '.join(names)}")
            mask &= country == names.index(value)
        elif column == "segment":
            if value not in SEGMENTS:
                raise ValueError(f"Change: no segment {value!r}; the segments are {', '.join(SEGMENTS)}")
            mask &= known & (segment == SEGMENTS.index(value))
        else:
            raise ValueError(f"Change: {column!r} cannot be planted on; use Country or segment")
    return mask


def _chunk(shop: _Shop, invoices_per_month: Any, seed: int, part: int, first_invoice: int, guest_share: float,
           credit_share: float, changes: Sequence[Change]) -> tuple[pa.RecordBatch, int]:
    np = _numpy()
    rng = np.random.default_rng([seed, 1, part])
    labels = [f"{year:04d}-{month:02d}" for year, month in shop.months]
    month = np.repeat(np.arange(len(shop.months)), invoices_per_month)
    n = len(month)
    guest = rng.random(n) < guest_share
    customer = rng.choice(len(shop.customer_rate), size=n, p=shop.customer_rate)
    shares = np.array([share for _, share in COUNTRIES])
    country = np.where(guest, rng.choice(len(COUNTRIES), size=n, p=shares / shares.sum()),
                       shop.customer_country[customer])
    segment = shop.customer_segment[customer]
    known = ~guest
    keep = np.ones(n, dtype=bool)
    price_factor = np.ones(n)
    credit_p = np.full(n, credit_share)
    for change in changes:
        if change.period not in labels:
            raise ValueError(f"Change: {change.period!r} is not one of the log's months {labels[0]}..{labels[-1]}")
        hit = _matches(change, country, segment, known) & (month == labels.index(change.period))
        if change.invoices != 1.0:
            extra = rng.random(n)
            if change.invoices < 1.0:  # more invoices than usual: matching ones are duplicated below
                keep &= ~hit | (extra < change.invoices)
        price_factor = np.where(hit, price_factor * change.basket, price_factor)
        credit_p = np.where(hit, np.minimum(1.0, credit_p * change.credit), credit_p)
    grow = [c for c in changes if c.invoices > 1.0]
    index = np.flatnonzero(keep)
    for change in grow:
        hit = _matches(change, country[index], segment[index], known[index]) & (
            month[index] == labels.index(change.period))
        chosen = index[hit]
        extra = chosen[rng.random(len(chosen)) < change.invoices - 1.0]
        index = np.concatenate([index, extra])
    index.sort(kind="stable")
    month, guest, customer, country = month[index], guest[index], customer[index], country[index]
    price_factor, credit_p = price_factor[index], credit_p[index]
    n = len(index)

    credit = rng.random(n) < credit_p
    lines = rng.geometric(1.0 / LINES_PER_INVOICE, size=n)
    invoice_of_line = np.repeat(np.arange(n), lines)
    product = rng.choice(PRODUCTS, size=len(invoice_of_line), p=shop.product_weight)
    quantity = rng.geometric(1.0 / 6.0, size=len(invoice_of_line)).astype(np.int64)
    quantity = np.where(credit[invoice_of_line], -np.maximum(1, quantity // 3), quantity)
    unit_price = np.round(shop.product_price[product] * price_factor[invoice_of_line], 2)

    starts = np.array([dt.datetime(y, m, 1, tzinfo=dt.timezone.utc).timestamp() for y, m in shop.months], dtype=np.int64)
    ends = np.array([dt.datetime(*(_months(f"{y}-{m}", 2)[1]), 1, tzinfo=dt.timezone.utc).timestamp()
                     for y, m in shop.months], dtype=np.int64)
    days = (ends - starts) // 86400
    day = (rng.random(n) * days[month]).astype(np.int64)
    second = 8 * 3600 + (rng.random(n) * 10 * 3600).astype(np.int64)  # shop hours, 08:00-18:00
    time = starts[month] + day * 86400 + second

    number = pa.array(first_invoice + np.arange(n)).cast(pa.string())
    number = pc.if_else(pa.array(credit), pc.binary_join_element_wise("C", number, ""), number)
    take = pa.array(invoice_of_line)
    customer_id = pa.array(12346 + customer, mask=guest)
    names = pa.array([name for name, _ in COUNTRIES])
    return pa.record_batch({
        "InvoiceNo": number.take(take),
        "StockCode": pa.DictionaryArray.from_arrays(pa.array(product.astype(np.int32)),
                                                    pa.array([f"{85000 + i}" for i in range(PRODUCTS)])),
        "Quantity": pa.array(quantity),
        "InvoiceDate": pa.array(time, pa.timestamp("s", tz="UTC")).take(take),
        "UnitPrice": pa.array(unit_price),
        "CustomerID": customer_id.take(take),
        "Country": pa.DictionaryArray.from_arrays(pa.array(country.astype(np.int32)), names).take(take),
    }), n


def invoice_batches(rows: int, *, seed: int = 0, start: str = "2023-12", months: int = 10, guest_share: float = 0.2,
                    credit_share: float = 0.02, changes: Sequence[Change] = (),
                    chunk_rows: int = 2_000_000) -> Iterator[pa.RecordBatch]:
    """The invoice log as record batches of about `chunk_rows` lines each, about `rows` lines in all.

    The number of lines is random around `rows` (invoices have a random number of lines, and planted
    changes add or remove invoices). Months are `months` calendar months from `start` (``YYYY-MM``).
    """
    if rows <= 0 or months <= 0:
        raise ValueError("invoice_batches: rows and months must be positive")
    np = _numpy()
    shop = _shop(rows, seed, start, months)
    season = np.array([SEASON[month - 1] for _, month in shop.months])
    per_month = np.round(season / season.sum() * rows / LINES_PER_INVOICE).astype(np.int64)
    parts = max(1, int(np.ceil(rows / chunk_rows)))
    first = 536365
    for part in range(parts):
        share = per_month // parts + (part < per_month % parts)
        batch, invoices = _chunk(shop, share, seed, part, first, guest_share, credit_share, changes)
        first += invoices
        yield batch


def invoice_log(rows: int = 200_000, **options: Any) -> pa.Table:
    """The whole invoice log as one table (see :func:`invoice_batches` for the options)."""
    return pa.Table.from_batches(list(invoice_batches(rows, **options)))


def write_invoice_log(path: str | Path, rows: int, **options: Any) -> Path:
    """Write the log to a Parquet file chunk by chunk, so its size is not bounded by memory."""
    import pyarrow.parquet as pq

    path = Path(path)
    writer = None
    try:
        for batch in invoice_batches(rows, **options):
            batch = batch.cast(pa.schema([field if not pa.types.is_dictionary(field.type) else
                                          pa.field(field.name, pa.string()) for field in batch.schema]))
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema)
            writer.write_batch(batch, row_group_size=1_000_000)
    finally:
        if writer is not None:
            writer.close()
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m metrictree.retail", description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int, help="about how many invoice lines")
    parser.add_argument("output", help="the Parquet file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", default="2023-12", help="first month, YYYY-MM")
    parser.add_argument("--months", type=int, default=10)
    args = parser.parse_args(argv)
    write_invoice_log(args.output, args.rows, seed=args.seed, start=args.start, months=args.months)


if __name__ == "__main__":
    main()
