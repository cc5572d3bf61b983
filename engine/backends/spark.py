"""Apache Spark through pyspark: catalog tables, Parquet / CSV / JSON paths, and DataFrames.

The distributed engine for data that outgrows one machine; in local mode (``Spark.local()``)
it runs in this machine's JVM, which is how the tests run it. The session computes in UTC:
a Spark ``TIMESTAMP`` is an instant, seen in the engine's ``timezone`` (default UTC) when it is
placed in a period, as a zoned column is on the other backends.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlglot import exp

from .. import lazy
from .sql import SqlEngine, SqlTable, qualified

_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".json": "json", ".ndjson": "json"}
_views = itertools.count()


def _module():
    return lazy.optional("pyspark.sql", "the Spark backend needs pyspark (and Java)", "spark")


def _arrow_type(spark_type, zone: str) -> pa.DataType:
    name = type(spark_type).__name__
    simple = {"LongType": pa.int64(), "IntegerType": pa.int32(), "ShortType": pa.int16(), "ByteType": pa.int8(),
              "DoubleType": pa.float64(), "FloatType": pa.float32(), "DecimalType": pa.float64(),
              "StringType": pa.string(), "VarcharType": pa.string(), "CharType": pa.string(),
              "BooleanType": pa.bool_(), "DateType": pa.date32(), "TimestampNTZType": pa.timestamp("us")}
    if name == "TimestampType":
        return pa.timestamp("us", tz=zone)
    return simple.get(name, pa.string())


class Spark(SqlEngine):
    """One Spark session that sources are bound to."""

    name = "Spark"
    dialect = "spark"

    def __init__(self, session: Any, timezone: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.timezone = timezone or "UTC"
        session.conf.set("spark.sql.session.timeZone", "UTC")

    @classmethod
    def local(cls, timezone: str | None = None, cores: int = 2) -> Spark:
        """A Spark session in local mode (created once per process, then reused)."""
        sql = _module()
        session = (sql.SparkSession.builder.master(f"local[{cores}]").appName("metrictree")
                   .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", str(cores * 2))
                   .config("spark.sql.session.timeZone", "UTC")
                   .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
        return cls(session, timezone)

    @classmethod
    def of_dataframe(cls, frame: Any) -> SqlTable:
        view = f"__metrictree_{next(_views)}"
        frame.createOrReplaceTempView(view)
        return SqlTable(cls(frame.sparkSession), qualified(view), "a Spark DataFrame")

    def table(self, name: str) -> SqlTable:
        return SqlTable(self, qualified(name), f"table {name} in Spark")

    def path(self, path: str | Path) -> SqlTable:
        """A Parquet, CSV or JSON file or folder read by Spark (``parquet.`/data/orders```)."""
        text = str(path)
        fmt = _FORMATS.get(Path(text).suffix.lower(), "parquet")
        relation = exp.Table(this=exp.to_identifier(text, quoted=True), db=exp.to_identifier(fmt, quoted=False))
        return SqlTable(self, relation, text)

    def _frame(self, table: SqlTable, sql: str):
        from pyspark.errors import PySparkException

        try:
            return self.session.sql(sql)
        except PySparkException as exc:
            raise self.problem(table, exc) from None

    def schema(self, table: SqlTable) -> pa.Schema:
        frame = self._frame(table, self.sql(exp.select(exp.Star()).from_(table.relation).limit(0)))
        return pa.schema([(f.name, _arrow_type(f.dataType, self.timezone)) for f in frame.schema.fields])

    def fetch(self, table: SqlTable, sql: str) -> pa.Table:
        from pyspark.errors import PySparkException

        frame = self._frame(table, sql)
        try:
            if hasattr(frame, "toArrow"):
                result = frame.toArrow()
            else:
                result = pa.Table.from_pandas(frame.toPandas(), preserve_index=False)
        except PySparkException as exc:
            raise self.problem(table, exc) from None
        kinds = [_arrow_type(f.dataType, self.timezone) for f in frame.schema.fields]
        columns = [c if not pa.types.is_timestamp(k) else c.cast(k) for c, k in zip(result.columns, kinds,
                                                                                    strict=True)]
        return pa.table(columns, names=result.column_names)
