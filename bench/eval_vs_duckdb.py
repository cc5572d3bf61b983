"""Evaluation benchmark: metrictree against hand-written DuckDB SQL and pandas.

    python bench/eval_vs_duckdb.py [--rows 10000000] [--repeat 3] [--data-dir bench/data]

1. Generates (once, deterministically) an orders table shaped like the sample data's
   ``orders`` — order_date, customer_id (~500k customers), channel, region, segment,
   status, amount — over 12 months, and writes it as Parquet (zstd, 10 row groups).
2. Computes revenue, paid orders, distinct paying customers, refunds, AOV, frequency
   and refund rate by month × channel × region three ways: metrictree with
   bench/orders.tree, one DuckDB SQL query (2 threads), and pandas.
3. Runs every engine in its own fresh subprocess per repetition, so that the peak
   memory (the child's maximum resident set size, from ``os.wait4``) belongs to that
   run alone; reports the median wall time of the whole process (from spawn to exit:
   interpreter start, imports, loading the tree, the work), of the work itself (imports
   excluded) and the CPU time of the process, and the largest peak. Each child ends as the
   ``metrictree`` command does, without Python's last garbage collections (``gc.freeze`` at exit).
4. Fails (exit status 1) if the three results disagree beyond 1e-9 relative.
5. Checks issue 11's targets against DuckDB in the same run: the whole process ≤ 1.0×
   its time at every size; at 200M rows, peak memory ≤ 0.8× its peak and ≤ 2 GB (``--strict``: exit status 2 when one
   is missed); the issue-2 targets (work time ≤ 1.2×, memory ≤ 1.5×) are printed too.

Needs the ``bench`` extra: ``pip install -e '.[bench]'`` (duckdb and pandas; numpy comes with
pandas and generates the data). Linux or macOS (``os.wait4``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import installed

HERE = Path(__file__).resolve().parent
TREE = HERE / "orders.tree"
ENGINES = ("metrictree", "duckdb", "pandas")
KEYS = ("period", "channel", "region")
METRICS = ("revenue", "paid_orders", "customers", "refunds", "aov", "frequency", "refund_rate")
# Issue 11 (the targets --strict checks): the whole process, against DuckDB's whole process.
TARGET_WHOLE = 1.0
TARGET_MEMORY = 0.8
TARGET_PEAK_MB = 2048
MEMORY_TARGET_ROWS = 200_000_000  # issue 11's memory targets are for a 200M-row Parquet file
# Issue 2 (printed for comparison with earlier figures): the work alone, imports excluded.
ISSUE2_TIME = 1.2
ISSUE2_MEMORY = 1.5
SEED = 20261005

# --------------------------------------------------------------------------- data


def data_path(data_dir: Path, rows: int) -> Path:
    return data_dir / f"orders_{rows}.parquet"


def generate_apart(generator, *args) -> None:
    """Run ``generator(*args)`` in a fresh interpreter of its own and wait for it.

    A child's peak memory as ``os.wait4`` gives it is at least its parent's peak when the child was started
    (Linux hands the parent's high-water mark on at exec): the engines' first runs after generating 100M rows in
    this process "peaked" at 3-6 GB. Generating elsewhere keeps this process small."""
    import multiprocessing

    worker = multiprocessing.get_context("spawn").Process(target=generator, args=args)
    worker.start()
    worker.join()
    if worker.exitcode:
        sys.exit(f"generating the data failed (exit status {worker.exitcode})")


def generate(path: Path, rows: int) -> None:
    """Write the orders table: deterministic for a given row count (fixed seed)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    customers = max(1, rows // 20)  # 10M rows → 500k customers, ~20 orders each a year
    # Customers differ in how often they order (gamma weights); region and segment belong
    # to the customer, the channel to the order — as in the sample data.
    weights = rng.gamma(2.0, 1.0, customers)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    names = pa.array([f"C{i:07d}" for i in range(customers)], pa.string())
    regions = np.array(["North", "South", "Center", "East"])
    segments = np.array(["new", "regular", "vip"])
    channels = np.array(["web", "app", "marketplace"])
    statuses = np.array(["paid", "refunded", "cancelled"])
    customer_region = rng.choice(4, customers, p=[0.34, 0.22, 0.26, 0.18])
    customer_segment = rng.choice(3, customers, p=[0.25, 0.6, 0.15])

    start = np.datetime64("2025-11-01T00:00:00", "s").astype(np.int64)
    end = np.datetime64("2026-11-01T00:00:00", "s").astype(np.int64)
    seconds = np.sort(rng.integers(start, end, rows))
    groups = 10
    schema = pa.schema([("order_id", pa.int64()), ("order_date", pa.timestamp("us")),
                        ("customer_id", pa.string()), ("channel", pa.string()), ("region", pa.string()),
                        ("segment", pa.string()), ("status", pa.string()), ("amount", pa.float64())])
    tmp = path.with_suffix(".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        bounds = np.linspace(0, rows, groups + 1).astype(np.int64)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            n = int(hi - lo)
            who = np.minimum(np.searchsorted(cdf, rng.random(n)), customers - 1)
            segment = customer_segment[who]
            amount = rng.lognormal(7.5, 0.45, n) * np.array([0.8, 1.0, 1.9])[segment]
            table = pa.table({
                "order_id": pa.array(np.arange(lo + 1, hi + 1), pa.int64()),
                "order_date": pa.array(seconds[lo:hi] * 1_000_000, pa.timestamp("us")),
                "customer_id": names.take(pa.array(who)),
                "channel": pa.array(channels[rng.choice(3, n, p=[0.5, 0.35, 0.15])]),
                "region": pa.array(regions[customer_region[who]]),
                "segment": pa.array(segments[segment]),
                "status": pa.array(statuses[rng.choice(3, n, p=[0.86, 0.06, 0.08])]),
                "amount": pa.array(np.round(amount, 2)),
            }, schema=schema)
            writer.write_table(table, row_group_size=n)
    tmp.replace(path)


# --------------------------------------------------------------------------- the three engines
# Each returns rows {period "YYYY-MM", channel, region, metric…}; run in a child process.


def run_metrictree(path: Path) -> tuple[float, list[dict]]:
    import metrictree  # first, as a program using it would: it sets up pyarrow's allocator (metrictree.allocator)
    import metrictree.evaluating  # noqa: F401
    import pyarrow.compute  # noqa: F401 — imported on first use by metrictree; imports are not timed for any
    import pyarrow.dataset  # noqa: F401    engine

    tree = metrictree.load(TREE)
    started = time.perf_counter()
    table = tree.evaluate({"orders": str(path)}, by=["channel", "region"])
    elapsed = time.perf_counter() - started
    return elapsed, table.select([*KEYS, *METRICS]).to_pylist()


DUCKDB_SQL = """
WITH base AS (
    SELECT strftime(order_date, '%Y-%m') AS period, channel, region,
           coalesce(sum(amount) FILTER (WHERE status = 'paid'), 0) AS revenue,
           count(*) FILTER (WHERE status = 'paid') AS paid_orders,
           count(DISTINCT customer_id) FILTER (WHERE status = 'paid') AS customers,
           count(*) FILTER (WHERE status = 'refunded') AS refunds
    FROM read_parquet(?)
    GROUP BY ALL
)
SELECT period, channel, region, revenue, paid_orders, customers, refunds,
       revenue / nullif(paid_orders, 0) AS aov,
       paid_orders / nullif(customers, 0) AS frequency,
       refunds / nullif(paid_orders, 0) AS refund_rate
FROM base
ORDER BY period, channel, region
"""


def run_duckdb(path: Path) -> tuple[float, list[dict]]:
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect(config={"threads": 2})
    cursor = con.execute(DUCKDB_SQL, [str(path)])
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    elapsed = time.perf_counter() - started
    return elapsed, rows


def run_pandas(path: Path) -> tuple[float, list[dict]]:
    import pandas as pd

    started = time.perf_counter()
    df = pd.read_parquet(path, columns=["order_date", "customer_id", "channel", "region", "status", "amount"])
    df["period"] = df["order_date"].dt.strftime("%Y-%m")
    keys = list(KEYS)
    paid = df[df["status"] == "paid"].groupby(keys, observed=True)
    out = pd.DataFrame({
        "revenue": paid["amount"].sum(),
        "paid_orders": paid.size(),
        "customers": paid["customer_id"].nunique(),
        "refunds": df[df["status"] == "refunded"].groupby(keys, observed=True).size(),
    })
    all_keys = df.groupby(keys, observed=True).size().index
    out = out.reindex(all_keys).fillna(0)
    for column in ("paid_orders", "customers", "refunds"):
        out[column] = out[column].astype("int64")
    out["aov"] = out["revenue"] / out["paid_orders"].where(out["paid_orders"] != 0)
    out["frequency"] = out["paid_orders"] / out["customers"].where(out["customers"] != 0)
    out["refund_rate"] = out["refunds"] / out["paid_orders"].where(out["paid_orders"] != 0)
    rows = out.reset_index().sort_values(keys).to_dict("records")
    elapsed = time.perf_counter() - started
    return elapsed, [{k: _plain(v) for k, v in r.items()} for r in rows]


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


RUNNERS = {"metrictree": run_metrictree, "duckdb": run_duckdb, "pandas": run_pandas}


def child(engine: str, path: Path, out: Path) -> None:
    # Every engine's process ends as the `metrictree` command does: without Python's last garbage collections
    # (`gc.freeze` from an atexit hook), which walk every object still alive (0.1-0.3 s once pyarrow has
    # imported pandas) only for the memory to go back to the system with the process.
    import atexit
    import gc

    atexit.register(gc.freeze)
    seconds, rows = RUNNERS[engine](path)
    out.write_text(json.dumps({"seconds": seconds, "rows": rows}, default=str))


def run_once(engine: str, path: Path) -> dict:
    """One run of ``engine`` in a fresh interpreter; its peak memory is that process's alone."""
    with tempfile.TemporaryDirectory() as tmp:
        out, log = Path(tmp) / "result.json", Path(tmp) / "output.txt"
        started = time.perf_counter()
        with log.open("w") as output:
            proc = subprocess.Popen([sys.executable, __file__, "--child", engine, "--child-data", str(path),
                                     "--child-out", str(out)], stdout=output, stderr=subprocess.STDOUT)
            # wait4 gives this child's own resource usage (RUSAGE_CHILDREN would be the maximum so far).
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        whole = time.perf_counter() - started  # from spawn to exit: start-up, imports, the work
        if proc.returncode != 0:
            sys.stderr.write(log.read_text())
            raise SystemExit(f"{engine} failed (exit status {proc.returncode}); its output is above")
        result = json.loads(out.read_text())
        result["whole"] = whole
        result["peak_mb"] = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)  # bytes / KiB
        result["cpu"] = usage.ru_utime + usage.ru_stime  # the whole process, on every core
        return result


# --------------------------------------------------------------------------- checking and reporting


def disagreements(reference: list[dict], other: list[dict], name: str) -> list[str]:
    def index(rows):
        return {tuple(r[k] for k in KEYS): r for r in rows}

    ref, got = index(reference), index(other)
    problems = []
    if set(ref) != set(got):
        missing, extra = sorted(set(ref) - set(got)), sorted(set(got) - set(ref))
        problems.append(f"{name}: different rows; missing {missing[:3]}, extra {extra[:3]}")
    for key in sorted(set(ref) & set(got)):
        for metric in METRICS:
            a, b = ref[key][metric], got[key][metric]
            if a is None or b is None:
                if a is not b:
                    problems.append(f"{name}: {key} {metric}: DuckDB {a!r}, {name} {b!r}")
            elif not math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0):
                problems.append(f"{name}: {key} {metric}: DuckDB {a!r}, {name} {b!r}")
    return problems


def report(results: dict[str, list[dict]], rows: int) -> bool:
    """Print the medians and ratios to DuckDB; whether metrictree meets issue 11's targets."""
    medians = {e: statistics.median(r["seconds"] for r in runs) for e, runs in results.items()}
    wholes = {e: statistics.median(r["whole"] for r in runs) for e, runs in results.items()}
    peaks = {e: max(r["peak_mb"] for r in runs) for e, runs in results.items()}
    cpus = {e: statistics.median(r["cpu"] for r in runs) for e, runs in results.items()}
    base = "duckdb" in results

    def ratio(values: dict[str, float], engine: str) -> str:
        return f"{values[engine] / values['duckdb']:.2f}" if base and values["duckdb"] else "-"

    print(f"\n{rows:,} rows, {len(next(iter(results.values())))} run(s) each, {os.cpu_count()} cores, "
          f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1 / 5 / 15 min)")
    print("whole = the child process from spawn to exit (interpreter, imports, tree, work); work = the work "
          "alone, imports excluded; CPU = user + system of the whole process")
    print(f"{'engine':<12}{'whole s':>9}{'work s':>8}{'CPU s':>8}{'peak MB':>9}{'whole ÷ DuckDB':>16}"
          f"{'work ÷ DuckDB':>15}{'CPU ÷ DuckDB':>14}{'memory ÷ DuckDB':>17}")
    for engine in results:
        print(f"{engine:<12}{wholes[engine]:>9.2f}{medians[engine]:>8.2f}{cpus[engine]:>8.2f}{peaks[engine]:>9.0f}"
              f"{ratio(wholes, engine):>16}{ratio(medians, engine):>15}{ratio(cpus, engine):>14}"
              f"{ratio(peaks, engine):>17}")
    if not base or "metrictree" not in results:
        return True

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    whole_ratio, work_ratio = wholes["metrictree"] / wholes["duckdb"], medians["metrictree"] / medians["duckdb"]
    memory_ratio, peak = peaks["metrictree"] / peaks["duckdb"], peaks["metrictree"]
    checks = [whole_ratio <= TARGET_WHOLE]
    print(f"\nissue 11 targets (metrictree against DuckDB, same run):\n"
          f"  whole process ≤ {TARGET_WHOLE}× DuckDB's (every size): {whole_ratio:.2f}× {verdict(checks[0])}")
    memory = (f"  peak memory ≤ {TARGET_MEMORY}× DuckDB's: {memory_ratio:.2f}×, ≤ {TARGET_PEAK_MB} MB: {peak:.0f} MB")
    if rows >= MEMORY_TARGET_ROWS:
        checks += [memory_ratio <= TARGET_MEMORY, peak <= TARGET_PEAK_MB]
        print(f"{memory} {verdict(checks[1] and checks[2])}")
    else:  # the memory targets are set for a 200M-row file, where memory is about the groups, not the imports
        print(f"{memory} (the target is for {MEMORY_TARGET_ROWS:,} rows: not judged here)")
    print(f"issue 2 targets (for comparison with older figures): work ≤ {ISSUE2_TIME}× DuckDB's: {work_ratio:.2f}× "
          f"{verdict(work_ratio <= ISSUE2_TIME)}; peak memory ≤ {ISSUE2_MEMORY}× DuckDB's: {memory_ratio:.2f}× "
          f"{verdict(memory_ratio <= ISSUE2_MEMORY)}")
    return all(checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma-separated subset of: " + ", ".join(ENGINES))
    parser.add_argument("--strict", action="store_true", help="exit status 2 when a target is missed")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--child-data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.child_data, args.child_out)
        return 0
    installed.compile_metrictree()  # timed as installed: bench/installed.py

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}")
    path = data_path(args.data_dir, args.rows)
    if not path.exists():
        print(f"generating {args.rows:,} orders into {path} …", flush=True)
        started = time.perf_counter()
        generate_apart(generate, path, args.rows)
        print(f"  done in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 2**20:.0f} MB)")

    results: dict[str, list[dict]] = {e: [] for e in engines}
    for i in range(args.repeat):
        for engine in engines:  # interleaved, so a slow spell of the machine hits every engine
            run = run_once(engine, path)
            results[engine].append(run)
            print(f"run {i + 1}/{args.repeat} {engine:<11} {run['seconds']:6.2f} s (whole {run['whole']:6.2f} s, "
                  f"CPU {run['cpu']:6.2f} s) {run['peak_mb']:7.0f} MB", flush=True)

    if "duckdb" in results:
        reference = results["duckdb"][0]["rows"]
        problems = []
        for engine, runs in results.items():
            for run in runs:
                problems += disagreements(reference, run["rows"], engine)
        if problems:
            print("\nRESULTS DISAGREE:", *problems[:20], sep="\n  ", file=sys.stderr)
            return 1
        print(f"\nresults agree: {len(reference)} rows × {len(METRICS)} metrics within 1e-9 relative")
    met = report(results, args.rows)
    return 2 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
