"""Backend benchmark: each SQL backend against hand-written SQL on the same engine.

    python bench/backends_vs_sql.py [--engine duckdb|postgres|spark] [--rows 10000000] [--repeat 3]

The issue-2 query (revenue, paid orders, distinct paying customers, refunds, AOV, frequency,
refund rate by month × channel × region; bench/orders.tree) over the generated orders table
of bench/eval_vs_duckdb.py, computed by metrictree on the engine (the partials grouped there)
and by one hand-written query on the same engine; each run in a fresh process, interleaved, the
median wall time of the work (imports and session start excluded) reported. Fails if the
results disagree beyond 1e-9 relative, or miss the target.

* duckdb: the Parquet file scanned by DuckDB (2 threads); target ≤ 1.05×.
* postgres: the table loaded once into the server of ``METRICTREE_BENCH_POSTGRES_URL`` (default
  METRICTREE_TEST_POSTGRES_URL), by a server-side COPY of a CSV DuckDB writes; target ≤ 1.1×.
* spark: the Parquet file read by Spark in local mode (2 cores); target ≤ 1.2×.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import installed

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import os

import eval_vs_duckdb as base

TARGETS = {"duckdb": 1.05, "postgres": 1.1, "spark": 1.2}
PG_TABLE = "bench_orders"
BASE_SQL = """
SELECT {period} AS period, channel, region,
       coalesce(sum(amount) FILTER (WHERE status = 'paid'), 0) AS revenue,
       count(*) FILTER (WHERE status = 'paid') AS paid_orders,
       count(DISTINCT customer_id) FILTER (WHERE status = 'paid') AS customers,
       count(*) FILTER (WHERE status = 'refunded') AS refunds
FROM {source}
GROUP BY 1, 2, 3
"""


def _postgres_url() -> str:
    url = os.environ.get("METRICTREE_BENCH_POSTGRES_URL") or os.environ.get("METRICTREE_TEST_POSTGRES_URL")
    if not url:
        raise SystemExit("set METRICTREE_BENCH_POSTGRES_URL (or METRICTREE_TEST_POSTGRES_URL) to a server")
    return url


def _finish(rows: list[dict]) -> list[dict]:
    """The derived metrics of hand-written base rows, as the hand-written DuckDB query computes them."""
    out = []
    for r in rows:
        paid, customers = r["paid_orders"], r["customers"]
        out.append({**r, "revenue": float(r["revenue"]), "aov": float(r["revenue"]) / paid if paid else None,
                    "frequency": paid / customers if customers else None,
                    "refund_rate": r["refunds"] / paid if paid else None})
    return out


def _tree_run(binding) -> tuple[float, list[dict]]:
    import metrictree

    tree = metrictree.load(base.TREE)
    started = time.perf_counter()
    table = tree.evaluate({"orders": binding()}, by=["channel", "region"])
    elapsed = time.perf_counter() - started
    return elapsed, table.select([*base.KEYS, *base.METRICS]).to_pylist()


def run(engine: str, side: str, path: Path) -> tuple[float, list[dict]]:
    if engine == "duckdb":
        if side == "sql":
            return base.run_duckdb(path)
        import duckdb
        from metrictree.backends.duckdb import DuckDB

        return _tree_run(lambda: DuckDB(duckdb.connect(config={"threads": 2})).file(path))
    if engine == "postgres":
        from metrictree.backends.postgres import Postgres

        pg = Postgres.connect(_postgres_url())
        if side == "tree":
            return _tree_run(lambda: pg.table(PG_TABLE))
        started = time.perf_counter()
        cursor = pg.connection.execute(BASE_SQL.format(period="to_char(order_date, 'YYYY-MM')", source=PG_TABLE))
        names = [d.name for d in cursor.description]
        rows = _finish([dict(zip(names, r, strict=True)) for r in cursor.fetchall()])
        return time.perf_counter() - started, rows
    from metrictree.backends.spark import Spark

    spark = Spark.local()
    if side == "tree":
        return _tree_run(lambda: spark.path(path))
    started = time.perf_counter()
    frame = spark.session.sql(BASE_SQL.format(period="date_format(order_date, 'yyyy-MM')",
                                              source=f"parquet.`{path}`"))
    rows = _finish([r.asDict() for r in frame.collect()])
    return time.perf_counter() - started, rows


def _load_postgres(path: Path) -> None:
    """The orders table in the server, once: DuckDB writes a CSV, the server COPYs it in."""
    import tempfile

    import duckdb
    import psycopg

    with psycopg.connect(_postgres_url(), autocommit=True) as con:
        found = con.execute("SELECT count(*) FROM pg_tables WHERE tablename = %s", (PG_TABLE,)).fetchone()[0]
        if found:
            return
        with tempfile.TemporaryDirectory() as folder:
            csv = Path(folder) / "orders.csv"
            duckdb.sql(f"COPY (SELECT * FROM read_parquet('{path}')) TO '{csv}' (HEADER)")
            os.chmod(folder, 0o755)
            con.execute(f"CREATE TABLE {PG_TABLE} (order_id bigint, order_date timestamp, customer_id text, "
                        "channel text, region text, segment text, status text, amount double precision)")
            with con.cursor().copy(f"COPY {PG_TABLE} FROM STDIN (FORMAT csv, HEADER)") as copy, open(csv, "rb") as f:
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
            con.execute(f"ANALYZE {PG_TABLE}")


def child(engine: str, side: str, path: str) -> None:
    elapsed, rows = run(engine, side, Path(path))
    print(json.dumps({"seconds": elapsed, "rows": rows}, default=str))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=sorted(TARGETS), default="duckdb")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    installed.compile_metrictree()  # timed as installed: bench/installed.py
    path = base.data_path(args.data_dir, args.rows)
    if not path.exists():
        base.generate_apart(base.generate, path, args.rows)
    if args.engine == "postgres":
        _load_postgres(path)
    results = {}
    for _ in range(args.repeat):
        for side in ("tree", "sql"):  # interleaved, so drift on a shared machine hits both alike
            out = subprocess.run([sys.executable, __file__, "--child", args.engine, side, str(path)],
                                 capture_output=True, text=True, check=True)
            payload = json.loads(out.stdout.strip().splitlines()[-1])
            results.setdefault(side, []).append(payload["seconds"])
            results[f"{side}_rows"] = payload["rows"]
    expected = {tuple(r[k] for k in base.KEYS): r for r in results["sql_rows"]}
    if len(expected) != len(results["tree_rows"]):
        print(f"MISMATCH: {len(results['tree_rows'])} rows != {len(expected)}")
        return 1
    for row in results["tree_rows"]:
        other = expected[tuple(row[k] for k in base.KEYS)]
        for metric in base.METRICS:
            a, b = row[metric], other[metric]
            if (a is None) != (b is None) or (a is not None and abs(a - b) > 1e-9 * max(abs(a), abs(b), 1e-12)):
                print(f"MISMATCH {metric} {row}: {a} != {b}")
                return 1
    tree, sql = statistics.median(results["tree"]), statistics.median(results["sql"])
    ratio = tree / sql
    target = TARGETS[args.engine]
    print(f"{args.engine}, {args.rows:,} rows: metrictree backend {tree:.3f} s, hand-written SQL {sql:.3f} s, "
          f"ratio {ratio:.2f}× (target ≤ {target}×); runs: tree {results['tree']}, sql {results['sql']}")
    return 0 if ratio <= target else 1


if __name__ == "__main__":
    sys.exit(main())
