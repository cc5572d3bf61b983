"""The CRM path: whole customer trees, metrictree against hand-written DuckDB SQL and polars.

    python bench/crm_vs_duckdb.py [--workload crm,retail] [--rows 1000000,10000000] [--repeat 3]

Two workloads, each evaluated by month:

* ``crm`` — bench/crm.tree, every metric of trees/crm_ltv.tree over orders (revenue, paid orders,
  distinct customers, churned, reactivated, new and repeat customers, refunds; AOV, frequency, churn
  rate, lifetime, LTV and the rates), over the orders of bench/eval_vs_duckdb.py scaled to ``rows``;
* ``retail`` — bench/retail.tree over a UCI-like invoice log (`metrictree.retail`: credit notes,
  guest lines with no CustomerID): sales, lines, invoices, customers, active / new / returning /
  churned / retained / reactivated / repeat customers, tenure, AOV, frequency, churn and retention
  rates, lifetime, LTV.

DuckDB computes the same numbers with one SQL query written by hand (distinct (customer, month)
pairs, churn and retention by self-joins on the next month, reactivation with ``lag``), on 2
threads; polars with its lazy API. Every engine runs in a fresh process per repetition,
interleaved; the script prints the median time of the work (imports excluded), the median whole
process, the largest peak resident memory, and the ratios to DuckDB, and fails (exit status 1)
when the results disagree beyond 1e-9 relative.
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
sys.path.insert(0, str(HERE))
ENGINES = ("metrictree", "duckdb", "polars")
TARGET_TIME = 1.2

CRM_METRICS = ("revenue", "paid_orders", "customers", "churned", "reactivated", "new_customers", "repeat_buyers",
               "refunds", "aov", "frequency", "churn_rate", "lifetime", "ltv", "refund_rate", "repeat_rate",
               "reactivation_rate")
RETAIL_METRICS = ("sales", "lines", "invoices_n", "customers", "active", "new_customers", "returning", "churned",
                  "retained", "reactivated", "repeat_buyers", "tenure", "aov", "frequency", "churn_rate",
                  "retention_rate", "lifetime", "ltv", "repeat_rate")
WORKLOADS = {"crm": (HERE / "crm.tree", "orders", CRM_METRICS), "retail": (HERE / "retail.tree", "invoices",
                                                                          RETAIL_METRICS)}


def data_path(data_dir: Path, workload: str, rows: int) -> Path:
    return data_dir / (f"orders_{rows}.parquet" if workload == "crm" else f"retail_{rows}.parquet")


def generate(workload: str, path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if workload == "crm":
        import eval_vs_duckdb

        eval_vs_duckdb.generate(path, rows)
    else:
        from metrictree.retail import write_invoice_log

        tmp = path.with_suffix(".partial")
        # A year of invoices: enough months for churn, reactivation after two months away, and lifetimes.
        write_invoice_log(tmp, rows, months=12)
        tmp.replace(path)


# --------------------------------------------------------------------------- metrictree


def run_metrictree(workload: str, path: Path) -> tuple[float, list[dict]]:
    import metrictree  # first, as a program using it would: it sets up pyarrow's allocator (metrictree.allocator)
    import metrictree.evaluating  # noqa: F401
    import pyarrow.dataset  # noqa: F401 — imports are not timed for any engine (metrictree imports these
    import pyarrow.compute  # noqa: F401    on first use; the whole-process time counts them)

    tree_path, source, metrics = WORKLOADS[workload]
    tree = metrictree.load(tree_path)
    started = time.perf_counter()
    table = tree.evaluate({source: str(path)}, metrics=list(metrics))
    return time.perf_counter() - started, table.to_pylist()


# --------------------------------------------------------------------------- DuckDB

CRM_SQL = """
WITH o AS (
    SELECT date_trunc('month', order_date) AS m, customer_id AS c, status, amount FROM read_parquet(?)
),
base AS (
    SELECT m, coalesce(sum(amount) FILTER (WHERE status = 'paid'), 0) AS revenue,
           count(*) FILTER (WHERE status = 'paid') AS paid_orders,
           count(DISTINCT c) FILTER (WHERE status = 'paid') AS customers,
           count(*) FILTER (WHERE status = 'refunded') AS refunds
    FROM o GROUP BY m
),
p AS (SELECT c, m, count(*) AS n FROM o WHERE status = 'paid' AND c IS NOT NULL GROUP BY c, m),
churn AS (
    SELECT a.m + INTERVAL 1 MONTH AS m, count(*) AS churned
    FROM p a LEFT JOIN p b ON a.c = b.c AND b.m = a.m + INTERVAL 1 MONTH
    WHERE b.c IS NULL GROUP BY 1
),
firsts AS (SELECT f AS m, count(*) AS new_customers FROM (SELECT c, min(m) AS f FROM p GROUP BY c) GROUP BY f),
rep AS (SELECT m, count(*) AS repeat_buyers FROM p WHERE n >= 2 GROUP BY m),
react AS (
    SELECT m, count(*) AS reactivated
    FROM (SELECT m, lag(m) OVER (PARTITION BY c ORDER BY m) AS prev FROM p)
    WHERE prev IS NOT NULL AND date_diff('month', prev, m) - 1 >= 2 GROUP BY m
),
joined AS (
    SELECT b.*, coalesce(churned, 0) AS churned, coalesce(reactivated, 0) AS reactivated,
           coalesce(new_customers, 0) AS new_customers, coalesce(repeat_buyers, 0) AS repeat_buyers,
           lag(customers) OVER (ORDER BY b.m) AS customers_before
    FROM base b LEFT JOIN churn USING (m) LEFT JOIN firsts USING (m) LEFT JOIN rep USING (m)
    LEFT JOIN react USING (m)
),
rates AS (
    SELECT *, revenue / nullif(paid_orders, 0) AS aov, paid_orders / nullif(customers, 0) AS frequency,
           churned / nullif(customers_before, 0) AS churn_rate FROM joined
)
SELECT strftime(m, '%Y-%m') AS period, revenue, paid_orders, customers, churned, reactivated, new_customers,
       repeat_buyers, refunds, aov, frequency, churn_rate, 1 / nullif(churn_rate, 0) AS lifetime,
       aov * frequency / nullif(churn_rate, 0) AS ltv, refunds / nullif(paid_orders, 0) AS refund_rate,
       repeat_buyers / nullif(customers, 0) AS repeat_rate, reactivated / nullif(customers_before, 0)
       AS reactivation_rate
FROM rates ORDER BY m
"""

RETAIL_SQL = """
WITH o AS (
    SELECT date_trunc('month', InvoiceDate::TIMESTAMP) AS m, CustomerID AS c, InvoiceNo, Quantity,
           UnitPrice FROM read_parquet(?)
),
base AS (
    SELECT m, sum(Quantity * UnitPrice) AS sales, count(*) AS lines,
           count(DISTINCT InvoiceNo) FILTER (WHERE Quantity > 0) AS invoices_n, count(DISTINCT c) AS customers
    FROM o GROUP BY m
),
p AS (SELECT c, m, count(*) AS n FROM o WHERE c IS NOT NULL GROUP BY c, m),
f AS (SELECT c, min(m) AS f FROM p GROUP BY c),
pf AS (SELECT p.*, f.f FROM p JOIN f USING (c)),
states AS (
    SELECT m, count(*) AS active, count(*) FILTER (WHERE m = f) AS new_customers,
           count(*) FILTER (WHERE m > f) AS "returning", count(*) FILTER (WHERE n >= 2) AS repeat_buyers,
           avg(date_diff('month', f, m) + 1) AS tenure
    FROM pf GROUP BY m
),
churn AS (
    SELECT a.m + INTERVAL 1 MONTH AS m, count(*) FILTER (WHERE b.c IS NULL) AS churned,
           count(*) FILTER (WHERE b.c IS NOT NULL) AS retained
    FROM p a LEFT JOIN p b ON a.c = b.c AND b.m = a.m + INTERVAL 1 MONTH GROUP BY 1
),
react AS (
    SELECT m, count(*) AS reactivated
    FROM (SELECT m, lag(m) OVER (PARTITION BY c ORDER BY m) AS prev FROM p)
    WHERE prev IS NOT NULL AND date_diff('month', prev, m) - 1 >= 2 GROUP BY m
),
joined AS (
    SELECT b.*, coalesce(active, 0) AS active, coalesce(new_customers, 0) AS new_customers,
           coalesce("returning", 0) AS "returning", coalesce(churned, 0) AS churned,
           coalesce(retained, 0) AS retained, coalesce(reactivated, 0) AS reactivated,
           coalesce(repeat_buyers, 0) AS repeat_buyers, tenure,
           lag(customers) OVER (ORDER BY b.m) AS customers_before
    FROM base b LEFT JOIN states USING (m) LEFT JOIN churn USING (m) LEFT JOIN react USING (m)
),
rates AS (
    SELECT *, sales / nullif(invoices_n, 0) AS aov, invoices_n / nullif(customers, 0) AS frequency,
           churned / nullif(customers_before, 0) AS churn_rate FROM joined
)
SELECT strftime(m, '%Y-%m') AS period, sales, lines, invoices_n, customers, active, new_customers, "returning",
       churned, retained, reactivated, repeat_buyers, tenure, aov, frequency, churn_rate,
       retained / nullif(customers_before, 0) AS retention_rate, 1 / nullif(churn_rate, 0) AS lifetime,
       aov * frequency / nullif(churn_rate, 0) AS ltv, repeat_buyers / nullif(active, 0) AS repeat_rate
FROM rates ORDER BY m
"""


def run_duckdb(workload: str, path: Path) -> tuple[float, list[dict]]:
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect(config={"threads": 2})
    cursor = con.execute(CRM_SQL if workload == "crm" else RETAIL_SQL, [str(path)])
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    return time.perf_counter() - started, rows


# --------------------------------------------------------------------------- polars


def run_polars(workload: str, path: Path) -> tuple[float, list[dict]]:
    import polars as pl

    started = time.perf_counter()
    scan = pl.scan_parquet(path)
    if workload == "crm":
        o = scan.select(pl.col("order_date").dt.year().cast(pl.Int32) * 12 + pl.col("order_date").dt.month() - 1,
                        "customer_id", "status", "amount").rename({"order_date": "m", "customer_id": "c"})
        paid = pl.col("status") == "paid"
        base = o.group_by("m").agg(revenue=pl.col("amount").filter(paid).sum(), paid_orders=paid.sum(),
                                   customers=pl.col("c").filter(paid).drop_nulls().n_unique(),
                                   refunds=(pl.col("status") == "refunded").sum())
        p = o.filter(paid & pl.col("c").is_not_null()).group_by(["c", "m"]).agg(n=pl.len())
    else:
        o = scan.select((pl.col("InvoiceDate").dt.year().cast(pl.Int32) * 12 + pl.col("InvoiceDate").dt.month() - 1
                         ).alias("m"), pl.col("CustomerID").alias("c"), "InvoiceNo", "Quantity", "UnitPrice")
        base = o.group_by("m").agg(sales=(pl.col("Quantity") * pl.col("UnitPrice")).sum(), lines=pl.len(),
                                   invoices_n=pl.col("InvoiceNo").filter(pl.col("Quantity") > 0).n_unique(),
                                   customers=pl.col("c").drop_nulls().n_unique())
        p = o.filter(pl.col("c").is_not_null()).group_by(["c", "m"]).agg(n=pl.len())
    p = p.collect().lazy()
    nxt = p.select("c", (pl.col("m") - 1).alias("m"), pl.lit(True).alias("kept"))
    churn = (p.join(nxt, on=["c", "m"], how="left")
             .group_by((pl.col("m") + 1).alias("m"))
             .agg(churned=pl.col("kept").is_null().sum(), retained=pl.col("kept").is_not_null().sum()))
    first = p.group_by("c").agg(f=pl.col("m").min())
    states = (p.join(first, on="c").group_by("m").agg(
        active=pl.len(), new_customers=(pl.col("m") == pl.col("f")).sum(),
        returning=(pl.col("m") > pl.col("f")).sum(), repeat_buyers=(pl.col("n") >= 2).sum(),
        tenure=(pl.col("m") - pl.col("f") + 1).mean()))
    react = (p.sort(["c", "m"]).with_columns(prev=pl.col("m").shift(1).over("c"))
             .filter(pl.col("prev").is_not_null() & (pl.col("m") - pl.col("prev") - 1 >= 2))
             .group_by("m").agg(reactivated=pl.len()))
    counts = ("churned", "retained", "active", "new_customers", "returning", "repeat_buyers", "reactivated")
    t = (base.join(churn, on="m", how="left").join(states, on="m", how="left").join(react, on="m", how="left")
         .sort("m").with_columns([pl.col(c).fill_null(0) for c in counts])
         .with_columns(customers_before=pl.col("customers").shift(1)).collect())

    def ratio(a, b):
        return pl.when(pl.col(b) != 0).then(pl.col(a) / pl.col(b)).otherwise(None)

    if workload == "crm":
        t = t.with_columns(aov=ratio("revenue", "paid_orders"), frequency=ratio("paid_orders", "customers"),
                           churn_rate=ratio("churned", "customers_before"),
                           refund_rate=ratio("refunds", "paid_orders"), repeat_rate=ratio("repeat_buyers", "customers"),
                           reactivation_rate=ratio("reactivated", "customers_before"))
    else:
        t = t.with_columns(aov=ratio("sales", "invoices_n"), frequency=ratio("invoices_n", "customers"),
                           churn_rate=ratio("churned", "customers_before"),
                           retention_rate=ratio("retained", "customers_before"),
                           repeat_rate=ratio("repeat_buyers", "active"))
    t = t.with_columns(lifetime=pl.when(pl.col("churn_rate") != 0).then(1 / pl.col("churn_rate")).otherwise(None))
    t = t.with_columns(ltv=pl.col("aov") * pl.col("frequency") * pl.col("lifetime"),
                       period=pl.format("{}-{}", (pl.col("m") // 12), (pl.col("m") % 12 + 1).cast(pl.String)
                                        .str.zfill(2)))
    rows = t.to_dicts()
    return time.perf_counter() - started, rows


RUNNERS = {"metrictree": run_metrictree, "duckdb": run_duckdb, "polars": run_polars}


def child(engine: str, workload: str, path: Path, out: Path) -> None:
    # Every engine's process ends as the `metrictree` command does: without Python's last garbage collections
    # (`gc.freeze` from an atexit hook), which walk every object still alive (0.1-0.3 s once pyarrow has
    # imported pandas) only for the memory to go back to the system with the process.
    import atexit
    import gc

    atexit.register(gc.freeze)
    seconds, rows = RUNNERS[engine](workload, path)
    out.write_text(json.dumps({"seconds": seconds, "rows": rows}, default=str))


def run_once(engine: str, workload: str, path: Path) -> dict:
    """One run in a fresh interpreter: the work's time, the whole process's time and its peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        out, log = Path(tmp) / "result.json", Path(tmp) / "output.txt"
        started = time.perf_counter()
        with log.open("w") as output:
            proc = subprocess.Popen([sys.executable, __file__, "--child", engine, "--workload", workload,
                                     "--child-data", str(path), "--child-out", str(out)],
                                    stdout=output, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
        whole = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            sys.stderr.write(log.read_text())
            raise SystemExit(f"{engine} failed on {workload}; its output is above")
        result = json.loads(out.read_text())
        result["whole"] = whole
        result["peak_mb"] = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
        result["cpu"] = usage.ru_utime + usage.ru_stime  # the whole process, on every core
        return result


def disagreements(metrics: tuple[str, ...], reference: list[dict], other: list[dict], name: str) -> list[str]:
    ref, got = {r["period"]: r for r in reference}, {r["period"]: r for r in other}
    problems = []
    if set(ref) != set(got):
        problems.append(f"{name}: different periods: {sorted(set(ref) ^ set(got))[:4]}")
    for key in sorted(set(ref) & set(got)):
        for metric in metrics:
            a, b = ref[key][metric], got[key][metric]
            if a is None or b is None:
                if a is not b:
                    problems.append(f"{name}: {key} {metric}: DuckDB {a!r}, {name} {b!r}")
            elif not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
                problems.append(f"{name}: {key} {metric}: DuckDB {a!r}, {name} {b!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="crm,retail")
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated sizes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--child-data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.workload, args.child_data, args.child_out)
        return 0
    installed.compile_metrictree()  # timed as installed: bench/installed.py
    engines = [e for e in args.engines.split(",") if e]
    failed = False
    summary = []
    for workload in args.workload.split(","):
        for rows in (int(r) for r in args.rows.split(",")):
            path = data_path(args.data_dir, workload, rows)
            if not path.exists():
                print(f"generating {rows:,} rows of {workload} into {path} …", flush=True)
                import eval_vs_duckdb

                eval_vs_duckdb.generate_apart(generate, workload, path, rows)
            results: dict[str, list[dict]] = {e: [] for e in engines}
            for i in range(args.repeat):
                for engine in engines:
                    run = run_once(engine, workload, path)
                    results[engine].append(run)
                    print(f"{workload} {rows:,} run {i + 1}/{args.repeat} {engine:<11} {run['seconds']:6.2f} s "
                          f"(whole {run['whole']:6.2f} s, CPU {run['cpu']:6.2f} s) {run['peak_mb']:7.0f} MB", flush=True)
            metrics = WORKLOADS[workload][2]
            if "duckdb" in results:
                reference = results["duckdb"][0]["rows"]
                problems = [p for e, runs in results.items() for r in runs
                            for p in disagreements(metrics, reference, r["rows"], e)]
                if problems:
                    print("RESULTS DISAGREE:", *problems[:20], sep="\n  ", file=sys.stderr)
                    failed = True
            med = {e: statistics.median(r["seconds"] for r in runs) for e, runs in results.items()}
            whole = {e: statistics.median(r["whole"] for r in runs) for e, runs in results.items()}
            peak = {e: max(r["peak_mb"] for r in runs) for e, runs in results.items()}
            cpu = {e: statistics.median(r["cpu"] for r in runs) for e, runs in results.items()}
            summary.append((workload, rows, med, whole, peak, cpu))
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    print(f"{'workload':<9}{'rows':>12} {'engine':<11}{'work s':>8}{'whole s':>9}{'CPU s':>8}{'peak MB':>9}"
          f"{'work ÷ DuckDB':>15}{'whole ÷ DuckDB':>16}{'CPU ÷ DuckDB':>14}{'memory ÷ DuckDB':>17}")
    for workload, rows, med, whole, peak, cpu in summary:
        def ratio(values: dict, engine: str, width: int) -> str:  # "-" without DuckDB in the run
            return f"{values[engine] / values['duckdb']:>{width}.2f}" if "duckdb" in values else f"{'-':>{width}}"

        for engine in med:
            print(f"{workload:<9}{rows:>12,} {engine:<11}{med[engine]:>8.2f}{whole[engine]:>9.2f}{cpu[engine]:>8.2f}"
                  f"{peak[engine]:>9.0f}{ratio(med, engine, 15)}{ratio(whole, engine, 16)}{ratio(cpu, engine, 14)}"
                  f"{ratio(peak, engine, 17)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
