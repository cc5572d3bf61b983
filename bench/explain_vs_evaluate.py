"""Explain against evaluate on the 10M-row benchmark data (run bench/eval_vs_duckdb.py first to make it).

    python bench/explain_vs_evaluate.py [--data bench/data/orders_10000000.parquet] [--repeat 3]

Times, in fresh processes, `tree.evaluate` of bench/orders.tree by channel × region (the DuckDB
workload) and `tree.explain` of each derived metric between 2026-09 and 2026-10 with a drill-down
over channel, region and segment (formulas + root-cause localisation). Target: explain ≤ 2× evaluate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = """
import json, sys, time
import metrictree
tree = metrictree.load(sys.argv[1])
data = {"orders": sys.argv[2]}
start = time.perf_counter()
if sys.argv[3] == "evaluate":
    tree.evaluate(data, by=["channel", "region"])
else:
    tree.explain(data, metric=sys.argv[3], baseline="2026-09", current="2026-10", by=["channel", "region", "segment"])
print(json.dumps(time.perf_counter() - start))
"""


def timed(job: str, data: str, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", CHILD, str(HERE / "orders.tree"), data, job], check=True,
                             capture_output=True, text=True).stdout
        runs.append(json.loads(out))
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE / "data" / "orders_10000000.parquet"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"no data at {args.data}: run python bench/eval_vs_duckdb.py first")
    base = timed("evaluate", args.data, args.repeat)
    print(f"{'job':<22}{'median s':>10}{'÷ evaluate':>12}")
    print(f"{'evaluate':<22}{base:>10.2f}{1.0:>12.2f}")
    for metric in ("aov", "frequency", "refund_rate"):
        seconds = timed(metric, args.data, args.repeat)
        print(f"{'explain ' + metric:<22}{seconds:>10.2f}{seconds / base:>12.2f}")


if __name__ == "__main__":
    main()
