"""Root-cause localisation on RiskLoc's synthetic sets S and L (40 development cases each).

    python bench/rca_riskloc.py [--set S|L|both] [--limit N] [--verbose] [--max-elements K]

Per case: the leaves' ``predict`` value is the baseline and the ``real`` value the current one (KPI =
``sum(value)``, explained down into every dimension), `metrictree.localising.localise` names the elements,
each is normalised as its ``dim=value`` pairs sorted and joined by ``&`` and compared with ``truth.csv``
(exact matches only, TP/FP/FN summed over the cases, F1 = 2TP / (2TP + FP + FN)). The number of elements
is the algorithm's own (no cap). Prints F1, precision, recall and mean seconds per case for each set, with
the figures published for the set (``../shared/benchmarks/rca-s/README.md``) beside them, and F1 by noise
level (the cases' ``noise_level`` in thirds) to show where the errors are.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metrictree.localising import localise

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rca_b0 import f1, normalise  # noqa: E402

# The benchmark data sits in shared/ beside the repository (../shared/benchmarks), or beside its worktrees.
ROOT = next((p / "shared" / "benchmarks" for p in Path(__file__).resolve().parents
             if (p / "shared" / "benchmarks").is_dir()), Path("../shared/benchmarks"))
SETS = {"S": (ROOT / "rca-s", "S.parquet", ("a", "b", "c", "d", "e")),
        "L": (ROOT / "rca-l", "L.parquet", ("a", "b", "c", "d"))}
# Measured on 200 other cases of the same generator (the folder's README), and the RiskLoc paper's own.
PUBLISHED = {"S": "metrictree 0.1: 0.798, RiskLoc: 0.615, Squeeze: 0.12",
             "L": "metrictree 0.1: 0.963, RiskLoc: 0.720, Squeeze: 0.30"}


def read_truth(path: Path) -> dict[int, tuple[set[str], float]]:
    truth = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            elements = {"&".join(sorted(e.split("&"))) for e in row["root_cause"].split(";") if e}
            truth[int(row["case"])] = (elements, float(row["noise_level"]))
    return truth


def cases(path: Path, dims):
    table = pq.read_table(path)
    for case in pc.unique(table["case"]).to_pylist():
        rows = table.filter(pc.equal(table["case"], case))
        columns = {d: pc.cast(rows[d], pa.string()) for d in dims}
        yield case, pa.table({**columns, "baseline": rows["predict"], "current": rows["real"]})


def run_set(name: str, limit: int | None, verbose: bool, max_elements: int | None) -> tuple[int, int, int, float]:
    folder, file, dims = SETS[name]
    truth = read_truth(folder / "truth.csv")
    counts = defaultdict(lambda: [0, 0, 0])
    seconds, cpu_seconds, n = 0.0, 0.0, 0
    for index, (case, leaves) in enumerate(cases(folder / file, dims)):
        if limit is not None and index >= limit:
            break
        start, cpu = time.perf_counter(), time.process_time()
        result = localise(leaves, dims, max_elements=max_elements)
        seconds += time.perf_counter() - start
        cpu_seconds += time.process_time() - cpu
        n += 1
        found = {normalise(e.where) for e in result}
        true, noise = truth[case]
        tp = len(found & true)
        score = (tp, len(found) - tp, len(true) - tp)
        band = f"noise {min(int(noise / (0.25 if name == 'S' else 0.10) * 3), 2) + 1}/3"
        for key in ("overall", band):
            counts[key] = [x + y for x, y in zip(counts[key], score)]
        if verbose and found != true:
            print(f"  {name} {case} noise {noise}: missed {sorted(true - found)} extra {sorted(found - true)}")
    tp, fp, fn = counts["overall"]
    print(f"RiskLoc {name}: {n} cases, localise on the leaf table")
    print(f"  {'':<12} {'TP':>4} {'FP':>4} {'FN':>4} {'F1':>6}")
    for key in sorted(counts):
        a, b, c = counts[key]
        print(f"  {key:<12} {a:>4} {b:>4} {c:>4} {f1(a, b, c):>6.3f}")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(f"  F1 {f1(tp, fp, fn):.3f}  precision {precision:.3f}  recall {recall:.3f}  "
          f"mean seconds per case {seconds / max(n, 1):.3f} (CPU {cpu_seconds / max(n, 1):.3f})")
    print(f"  published / measured before (200 other cases): {PUBLISHED[name]}")
    return tp, fp, fn, seconds / max(n, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=["S", "L", "both"], default="both")
    parser.add_argument("--limit", type=int, default=None, help="at most this many cases per set")
    parser.add_argument("--verbose", action="store_true", help="print every case not found exactly")
    parser.add_argument("--max-elements", type=int, default=None, help="an optional cap on the elements")
    args = parser.parse_args(argv)
    for name in (["S", "L"] if args.set == "both" else [args.set]):
        run_set(name, args.limit, args.verbose, args.max_elements)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
