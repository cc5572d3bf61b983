"""Explain and report against evaluate and status on the benchmark orders (run bench/eval_vs_duckdb.py first).

    python bench/explain_vs_evaluate.py [--data bench/data/orders_10000000.parquet] [--repeat 3]

Every job runs in a fresh process, the jobs of one repetition interleaved (the machine is shared, so
only ratios within one run mean anything). Two trees over the same orders:

* bench/orders.tree: `tree.evaluate` by channel × region (the DuckDB workload) and `tree.explain` of
  aov, frequency and refund_rate between 2026-09 and 2026-10 with a drill-down over channel, region and
  segment (formulas + root-cause localisation);
* bench/crm.tree (the orders part of trees/crm_ltv.tree: customer states, churn, LTV) with crm_ltv's
  alerts added (churn rate above 40 %, LTV falling by more than 10 % in a month) and a target on LTV:
  `tree.evaluate` of the whole tree by month, `tree.explain` of ltv (same periods and dimensions),
  `tree.status` at 2026-10 and `metrictree.reporting.report` of ltv (the whole HTML page).

Prints per job the median seconds of the work (imports excluded), wall and CPU (user + system, every
thread), the median wall seconds of the whole process, the largest peak resident memory (MB) of its
processes, and the ratios of the work's wall seconds: issue 11's targets are explain ltv ≤ 1.0× evaluate of the crm
tree, report ≤ 1.2× explain ltv + status, explain frequency ≤ 0.5× evaluate and ≤ 300 MB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import installed

HERE = Path(__file__).resolve().parent
RULES = """
target ltv >= 1% by 2027-03-31
alert churn_rate > 40% { severity warning message "More than 40 % of last month's paying customers did not come back" }
alert change(ltv) < -10% { severity critical message "LTV fell by more than 10 % in a month" }
"""
CHILD = """
import json, resource, sys, time
import metrictree
tree_file, data, job = sys.argv[1], {"orders": sys.argv[2]}, sys.argv[3]
tree = metrictree.load(tree_file)
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
start, cpu_start = time.perf_counter(), cpu()
if job in ("evaluate", "crm evaluate"):
    tree.evaluate(data, by=["channel", "region"] if job == "evaluate" else ())
elif job == "status":
    tree.status(data, at="2026-10")
elif job == "report":
    from metrictree import reporting
    reporting.report(tree, data, "ltv", "2026-09", "2026-10", by=["channel", "region", "segment"])
else:
    tree.explain(data, metric=job.split()[-1], baseline="2026-09", current="2026-10",
                 by=["channel", "region", "segment"])
seconds, cpu_seconds = time.perf_counter() - start, cpu() - cpu_start
print(json.dumps([seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, cpu_seconds]))
"""
ORDERS_JOBS = ("evaluate", "explain aov", "explain frequency", "explain refund_rate")
CRM_JOBS = ("crm evaluate", "explain ltv", "status", "report")


def run(tree: Path, data: str, job: str) -> tuple[float, float, float, float]:
    """The work's wall and CPU seconds, the whole process's wall seconds and its peak resident MB."""
    began = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), data, job], check=True, capture_output=True,
                         text=True).stdout
    whole = time.perf_counter() - began
    seconds, peak, cpu_seconds = json.loads(out.splitlines()[-1])
    return seconds, cpu_seconds, whole, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE / "data" / "orders_10000000.parquet"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", default="all", help="orders, crm, all, or job names separated by commas "
                        "(e.g. 'crm evaluate,explain ltv')")
    args = parser.parse_args()
    installed.compile_metrictree()  # timed as installed: bench/installed.py
    if not Path(args.data).exists():
        sys.exit(f"no data at {args.data}: run python bench/eval_vs_duckdb.py first")
    with tempfile.TemporaryDirectory() as tmp:
        crm = Path(tmp) / "crm_rules.tree"
        crm.write_text((HERE / "crm.tree").read_text() + RULES)
        named = set(args.jobs.split(","))
        jobs = [*((HERE / "orders.tree", j) for j in ORDERS_JOBS if args.jobs in ("all", "orders") or j in named),
                *((crm, j) for j in CRM_JOBS if args.jobs in ("all", "crm") or j in named)]
        times: dict[str, list[float]] = {j: [] for _, j in jobs}
        cpus: dict[str, list[float]] = {j: [] for _, j in jobs}
        wholes: dict[str, list[float]] = {j: [] for _, j in jobs}
        peaks: dict[str, float] = {j: 0.0 for _, j in jobs}
        for _ in range(args.repeat):
            for tree, job in jobs:
                seconds, cpu_seconds, whole, peak = run(tree, args.data, job)
                times[job].append(seconds)
                cpus[job].append(cpu_seconds)
                wholes[job].append(whole)
                peaks[job] = max(peaks[job], peak)
    median = {j: statistics.median(v) for j, v in times.items()}
    print(f"{'job':<22}{'work s':>10}{'work CPU s':>12}{'whole s':>10}{'peak MB':>10}")
    for job in median:
        print(f"{job:<22}{median[job]:>10.2f}{statistics.median(cpus[job]):>12.2f}"
              f"{statistics.median(wholes[job]):>10.2f}{peaks[job]:>10.0f}")
    print()
    ratios = [("explain aov", "evaluate", None), ("explain frequency", "evaluate", 0.5),
              ("explain refund_rate", "evaluate", None), ("explain ltv", "crm evaluate", 1.0)]
    for job, base, target in ratios:
        if job in median and base in median:
            aim = f"  (target ≤ {target}×)" if target else ""
            print(f"{job + ' ÷ ' + base:<40}{median[job] / median[base]:>8.2f}×{aim}")
    if {"report", "explain ltv", "status"} <= set(median):
        both = median["explain ltv"] + median["status"]
        print(f"{'report ÷ (explain ltv + status)':<40}{median['report'] / both:>8.2f}×  (target ≤ 1.2×)")


if __name__ == "__main__":
    main()
