"""Compile time of big trees, each case in a fresh process (issue 10, item 23).

    python bench/compile_time.py            # 1k, 10k and 50k metrics, 10k unknown names, 2k misspelt names
    python bench/compile_time.py --case metrics --size 10000

Prints one line per case: whole-process wall time (interpreter start, import and compile) and the
compile alone (parse, build syntax nodes, compile, graph), measured inside the child as wall time and as
the CPU time of the process (the figure to trust on a machine other jobs share). Targets: 10k metrics compile in ≤ 1 s; 10k unknown names
and 2k misspelt names are reported in seconds, not minutes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

CASES = {"metrics1k": 1_000, "metrics": 10_000, "metrics50k": 50_000, "unknown": 10_000, "misspelt": 2_000}


def tree_text(case: str, size: int) -> str:
    head = "source orders { time d dimensions region }\nmetric revenue = sum(orders.amount)\n"
    if case.startswith("metrics"):
        # A realistic shape: each metric reads one or two earlier ones.
        body = "".join(f"metric m{i} = {'revenue' if i == 0 else f'm{i - 1}'} + {'revenue' if i < 2 else f'm{i // 2}'}"
                       f" * 2\n" for i in range(size))
        return head + body + f"metric top = m{size - 1} {{ level strategic }}\n"
    if case == "unknown":
        return head + "".join(f"metric m{i} = revenue + zz_unknown_{i}\n" for i in range(size))
    # misspelt: names close to defined ones
    defined = "".join(f"metric customer_metric_{i} = revenue\n" for i in range(size))
    return head + defined + "".join(f"metric use{i} = custmer_metric_{i}\n" for i in range(size))


def child(case: str, size: int) -> None:
    text = tree_text(case, size)
    start = time.perf_counter()
    import metrictree  # noqa: PLC0415 - the import is part of what is timed
    from metrictree.errors import MetrictreeError

    imported = time.perf_counter()
    cpu = time.process_time()
    try:
        metrictree.loads(text)
        outcome = "compiled"
    except MetrictreeError as exc:
        outcome = f"{len(exc.diagnostics)} diagnostics"
    done = time.perf_counter()
    print(f"{case:10} size {size:>6}: import {imported - start:5.2f} s, compile {done - imported:6.2f} s "
          f"(CPU {time.process_time() - cpu:6.2f} s, {outcome})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument("--size", type=int)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.case, args.size)
        return
    for case, size in ([(args.case, args.size or CASES[args.case])] if args.case else CASES.items()):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--child", "--case", case, "--size", str(size)],
                             capture_output=True, text=True, check=True).stdout.strip()
        print(f"{out}; whole process {time.perf_counter() - start:6.2f} s")


if __name__ == "__main__":
    main()
