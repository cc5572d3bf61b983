"""Writes the bad-data corpus next to this file: one small file per case (run once; the files are committed).

    python tests/baddata/make_corpus.py
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def write(name: str, text: str, encoding: str = "utf-8", newline: str = "\n") -> None:
    (HERE / name).write_bytes(text.replace("\n", newline).encode(encoding))


def main() -> None:
    write("cp1251.csv", "d,region,amount\n2026-01-05,Москва,10\n2026-02-05,Казань,20\n", "cp1251")
    write("decimal_comma.csv", 'd,region,amount\n2026-01-05,North,"10,5"\n2026-02-05,South,"20,25"\n')
    # A spreadsheet's export in a Russian or European locale: semicolons, decimal commas, Windows-1251.
    write("excel_ru.csv", "d;region;amount\n2026-01-05;Москва;10,5\n2026-01-20;Москва;1,25\n2026-02-05;Казань;20\n",
          "cp1251", newline="\r\n")
    write("dollar_amounts.csv", "d,region,amount\n2026-01-05,North,$10.00\n2026-02-05,South,$20.50\n")
    write("header_only.csv", "d,region,amount\n")
    write("empty.csv", "")
    write("bom.csv", "\ufeffd,region,amount\n2026-01-05,North,10\n2026-02-05,South,20.5\n")
    write("crlf.csv", "d,region,amount\n2026-01-05,North,10\n2026-01-09,South,2\n2026-02-05,South,20.5\n",
          newline="\r\n")
    write("cyrillic.csv", "дата,регион,сумма\n2026-01-05,Север,10\n2026-02-05,Юг,20.5\n2026-02-07,Север,1\n")
    write("int64_max.csv", "d,region,amount\n2026-01-05,North,9223372036854775807\n"
                           "2026-01-06,North,9223372036854775807\n2026-02-05,South,1\n")
    write("null_time.csv", "d,region,amount\n2026-01-05,North,200\n,North,100.5\n2026-01-09,South,0\n"
                           "2026-02-01,South,3\n")
    write("text_time.csv", "d,region,amount\nyesterday,North,1\ntoday,South,2\n")
    write("year_one.csv", "d,region,amount\n0001-01-05,North,1\n0001-02-05,South,2\n")
    write("missing_column.csv", "d,region,total\n2026-01-05,North,1\n")
    table = pa.table({"d": [dt.date(2026, 1, 5), dt.date(2026, 2, 5)], "region": ["North", "South"],
                      "amount": [10.0, 20.5]})
    pq.write_table(table, HERE / "good.parquet")
    (HERE / "truncated.parquet").write_bytes((HERE / "good.parquet").read_bytes()[:200])
    zone = pa.timestamp("us", "Europe/Moscow")
    # 2026-01-31 23:30 in Moscow is 20:30 UTC: it belongs to January there, whatever the machine's zone.
    utc = [dt.datetime(2026, 1, 31, 20, 30, tzinfo=dt.timezone.utc), dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.timezone.utc)]
    pq.write_table(pa.table({"d": pa.array(utc, zone), "region": ["North", "South"], "amount": [5.0, 7.0]}),
                   HERE / "tz_aware.parquet")
    pq.write_table(pa.table({"d": [dt.date(2026, 1, 5)] * 3 + [dt.date(2026, 2, 5)], "region": ["N", "N", "S", "S"],
                             "amount": pa.array([2**62, 2**62, 1, 2], pa.int64())}), HERE / "int64_overflow.parquet")
    pq.write_table(pa.table({"d": [dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 2, 5)],
                             "region": ["N", "S", "S"], "amount": [1.0, float("nan"), float("inf")]}),
                   HERE / "nan_inf.parquet")
    mixed = HERE / "mixed"
    mixed.mkdir(exist_ok=True)
    pq.write_table(table, mixed / "a.parquet")
    write("mixed/b.csv", "d,region,amount\n2026-01-05,North,1\n")
    write("mixed/notes.txt", "these are notes, not data\n")


if __name__ == "__main__":
    main()
