"""Backend benchmark: the DuckDB backend against the hand-written DuckDB SQL of bench/eval_vs_duckdb.py.

    python bench/backends_vs_sql.py [--rows 10000000] [--repeat 3] [--data-dir bench/data]

The issue-2 query (revenue, paid orders, distinct paying customers, refunds, AOV, frequency,
refund rate by month × channel × region) over the generated orders Parquet file, computed by
metrictree with ``--data orders=duckdb:///orders.parquet`` (the file scanned by DuckDB, the
partials grouped there) and by one hand-written DuckDB query; each run in a fresh process,
the median wall time of the work (imports excluded) reported. Fails if the results disagree
beyond 1e-9 relative. Target: ≤ 1.05× the hand-written query's time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import eval_vs_duckdb as base  # noqa: E402  (the data generator and the hand-written query)

TARGET = 1.05


def run_backend(path: Path) -> tuple[float, list[dict]]:
    import duckdb

    import metrictree
    from metrictree.backends.duckdb import DuckDB

    tree = metrictree.load(base.TREE)
    started = time.perf_counter()
    engine = DuckDB(duckdb.connect(config={"threads": 2}))
    table = tree.evaluate({"orders": engine.file(path)}, by=["channel", "region"])
    elapsed = time.perf_counter() - started
    return elapsed, table.select([*base.KEYS, *base.METRICS]).to_pylist()


ENGINES = {"backend": run_backend, "duckdb": base.run_duckdb}


def child(engine: str, path: str) -> None:
    elapsed, rows = ENGINES[engine](Path(path))
    print(json.dumps({"seconds": elapsed, "rows": rows}, default=str))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    path = base.data_path(args.data_dir, args.rows)
    if not path.exists():
        base.generate(path, args.rows)
    results = {}
    for _ in range(args.repeat):
        for engine in ENGINES:  # interleaved, so drift on a shared machine hits both alike
            out = subprocess.run([sys.executable, __file__, "--child", engine, str(path)], capture_output=True,
                                 text=True, check=True)
            payload = json.loads(out.stdout)
            results.setdefault(engine, []).append(payload["seconds"])
            results[f"{engine}_rows"] = payload["rows"]
    expected = {tuple(r[k] for k in base.KEYS): r for r in results["duckdb_rows"]}
    for row in results["backend_rows"]:
        other = expected[tuple(row[k] for k in base.KEYS)]
        for metric in base.METRICS:
            a, b = row[metric], other[metric]
            if (a is None) != (b is None) or (a is not None and abs(a - b) > 1e-9 * max(abs(a), abs(b), 1e-12)):
                print(f"MISMATCH {metric} {row}: {a} != {b}")
                return 1
    backend, duck = statistics.median(results["backend"]), statistics.median(results["duckdb"])
    ratio = backend / duck
    print(f"{args.rows:,} rows: DuckDB backend {backend:.3f} s, hand-written DuckDB SQL {duck:.3f} s, "
          f"ratio {ratio:.2f}× (target ≤ {TARGET}×)")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
