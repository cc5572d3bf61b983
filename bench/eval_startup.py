"""Whole `metrictree eval` processes against DuckDB's whole process, on the orders of eval_vs_duckdb.py.

    python bench/eval_startup.py [--rows 1000000] [--repeat 5] [--data-dir bench/data] [--against DIR]

Runs, interleaved and each in a fresh process ``--repeat`` times: the command a person types,
``metrictree eval bench/orders.tree --data orders=FILE --by channel,region --format csv`` (what the
``metrictree`` script runs), and DuckDB's hand-written query of eval_vs_duckdb.py in a fresh Python
process (import, connect, query, fetch). ``--against DIR`` adds the same command with ``DIR`` first on
``PYTHONPATH`` (a folder holding another version's ``metrictree`` package: before and after in one run).
Prints the median and minimum wall time from spawn to exit, the median CPU (user + system, every
thread), the largest peak resident memory, and the ratios of the medians to DuckDB's, with the load
average. eval_vs_duckdb.py checks that the numbers agree; this script times whole processes only.
Generate the data with eval_vs_duckdb.py first (``--rows`` and ``--data-dir`` as there).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import installed

HERE = Path(__file__).resolve().parent
TARGET = 1.0


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed (exit status {os.waitstatus_to_exitcode(status)})")
    peak = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
    return wall, usage.ru_utime + usage.ru_stime, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--against", help="a folder holding another version's metrictree package")
    args = parser.parse_args()
    installed.compile_metrictree()  # timed as installed: bench/installed.py
    data = args.data_dir / f"orders_{args.rows}.parquet"
    if not data.exists():
        sys.exit(f"no data at {data}: run python bench/eval_vs_duckdb.py --rows {args.rows} first")
    command = [sys.executable, "-c", "import sys; from metrictree.cli import main; sys.argv[0] = 'metrictree'; main()",
               "eval", str(HERE / "orders.tree"), "--data", f"orders={data}", "--by", "channel,region",
               "--format", "csv"]
    duckdb = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(HERE)!r}); import eval_vs_duckdb as b; "
                                    f"from pathlib import Path; b.run_duckdb(Path({str(data)!r}))"]
    env = dict(os.environ)
    jobs = {"metrictree eval": (command, env)}
    if args.against:
        other = {**env, "PYTHONPATH": os.pathsep.join([args.against, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        jobs[f"metrictree eval, {args.against}"] = (command, other)
    jobs["duckdb"] = (duckdb, env)
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in jobs}
    loads = []
    for _ in range(args.repeat):
        for name, (cmd, environment) in jobs.items():  # interleaved: a busy spell of the machine hits every job
            runs[name].append(run(cmd, environment))
        loads.append(os.getloadavg()[0])
    wall = {n: statistics.median(r[0] for r in rs) for n, rs in runs.items()}
    cpu = {n: statistics.median(r[1] for r in rs) for n, rs in runs.items()}
    print(f"{args.rows:,} rows, {args.repeat} run(s) each, {os.cpu_count()} cores, "
          f"load average {min(loads):.1f}-{max(loads):.1f} during the runs")
    print(f"{'job':<40}{'whole s':>9}{'min s':>8}{'CPU s':>8}{'peak MB':>9}{'whole ÷ DuckDB':>16}{'CPU ÷ DuckDB':>14}")
    for name, rs in runs.items():
        print(f"{name:<40}{wall[name]:>9.3f}{min(r[0] for r in rs):>8.3f}{cpu[name]:>8.3f}"
              f"{max(r[2] for r in rs):>9.0f}{wall[name] / wall['duckdb']:>16.2f}{cpu[name] / cpu['duckdb']:>14.2f}")
    ratio = wall["metrictree eval"] / wall["duckdb"]
    print(f"\ntarget (issue 11): a whole metrictree eval ≤ {TARGET}× DuckDB's whole process: {ratio:.2f}× "
          f"{'met' if ratio <= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
