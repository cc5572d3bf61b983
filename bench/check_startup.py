"""How long a whole `metrictree check` process takes (issue 11's start-up target: ≤ 0.25 s on a 7-metric tree).

    python bench/check_startup.py [--tree bench/orders.tree] [--repeat 20] [--against DIR]

Runs ``python -m metrictree.cli check TREE`` (what the ``metrictree`` script runs) in a fresh process
``--repeat`` times, interleaved with a bare ``python -c pass`` so that a busy spell of the machine hits
both, and prints the median and the minimum wall seconds and CPU seconds (user + system, from
``os.wait4``) of each. ``--against DIR`` adds a third job: the same check with ``DIR`` first on
``PYTHONPATH`` (a checkout of another version's ``metrictree`` package, to compare before and after in
one run). The machine is shared: the minimum is the least disturbed run, the median the typical one.
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
TARGET = 0.25


def run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        sys.exit(f"{' '.join(command)} failed")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(HERE / "orders.tree"))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--against", help="a folder holding another version's metrictree package")
    args = parser.parse_args()
    installed.compile_metrictree()  # timed as installed: bench/installed.py
    check = [sys.executable, "-c", "import sys; from metrictree.cli import main; sys.argv[0] = 'metrictree'; main()",
             "check", args.tree]
    env = dict(os.environ)
    jobs = {"python -c pass": ([sys.executable, "-c", "pass"], env), "metrictree check": (check, env)}
    if args.against:
        other = {**env, "PYTHONPATH": os.pathsep.join([args.against, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        jobs[f"check, {args.against}"] = (check, other)
    walls: dict[str, list[float]] = {name: [] for name in jobs}
    cpus: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(args.repeat):
        for name, (command, environment) in jobs.items():
            wall, cpu = run(command, environment)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"{'job':<34}{'median s':>10}{'min s':>8}{'median CPU s':>14}{'min CPU s':>11}")
    for name in jobs:
        print(f"{name:<34}{statistics.median(walls[name]):>10.3f}{min(walls[name]):>8.3f}"
              f"{statistics.median(cpus[name]):>14.3f}{min(cpus[name]):>11.3f}")
    print(f"\ntarget: metrictree check ≤ {TARGET} s, whole process")


if __name__ == "__main__":
    main()
