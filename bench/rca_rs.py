"""Root-cause localisation of a ratio KPI on RS (67 development incidents of a video service's stall ratio).

    python bench/rca_rs.py [--limit N] [--verbose] [--complement] [--max-elements K]

Per case: the leaves' numerator (sessions without a stall) and denominator (sessions) in the baseline and
the current minute, the case's own dimensions (``truth.csv``), and `metrictree.localising_ratio.localise_ratio`
names the elements whose own ratio moved (segments whose traffic alone moved are reported apart, as mix,
and are not scored as causes). ``--complement`` localises the stall ratio (stalls / sessions) instead; the
answer should not depend on it. Scored as in ``../shared/benchmarks/rca-b0``: exact matches, TP/FP/FN summed
over the cases, F1 = 2TP / (2TP + FP + FN). Prints F1, precision, recall and mean seconds per case with the
published figures beside them.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from metrictree.localising_ratio import localise_ratio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rca_b0 import f1, normalise  # noqa: E402

ROOT = next((p / "shared" / "benchmarks" for p in Path(__file__).resolve().parents
             if (p / "shared" / "benchmarks").is_dir()), Path("../shared/benchmarks"))
DATA = ROOT / "rca-rs"
PUBLISHED = ("RobustSpot (k=3) 0.420; metrictree 0.1 success ratio 0.175 (own causes only 0.196), "
             "stall ratio 0.24 (0.34); Squeeze 0.043; RiskLoc 0.025 — all 135 cases")


def read_truth(path: Path) -> dict[str, tuple[list[str], set[str]]]:
    truth = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            elements = {"&".join(sorted(e.split("&"))) for e in row["root_cause"].split(";") if e}
            truth[row["case"]] = (row["dimensions"].split(","), elements)
    return truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--verbose", action="store_true", help="print every case not found exactly")
    parser.add_argument("--complement", action="store_true", help="localise the stall ratio instead")
    parser.add_argument("--max-elements", type=int, default=None, help="an optional cap on the causes")
    args = parser.parse_args(argv)
    truth = read_truth(args.data / "truth.csv")
    table = pq.read_table(args.data / "rs.parquet")
    tp = fp = fn = 0
    seconds, cpu_seconds, n = 0.0, 0.0, 0
    for index, (case, (dims, true)) in enumerate(truth.items()):
        if args.limit is not None and index >= args.limit:
            break
        rows = table.filter(pc.equal(table["case"], case))
        leaves = pa.table({**{d: pc.cast(rows[d], pa.string()) for d in dims},
                           "n0": rows["num_baseline"], "n1": rows["num_current"],
                           "d0": rows["den_baseline"], "d1": rows["den_current"]})
        if args.complement:
            leaves = leaves.set_column(leaves.schema.get_field_index("n0"), "n0",
                                       pc.subtract(leaves["d0"], leaves["n0"]))
            leaves = leaves.set_column(leaves.schema.get_field_index("n1"), "n1",
                                       pc.subtract(leaves["d1"], leaves["n1"]))
        start, cpu = time.perf_counter(), time.process_time()
        result = localise_ratio(leaves, dims, ("n0", "n1"), ("d0", "d1"), max_elements=args.max_elements)
        seconds += time.perf_counter() - start
        cpu_seconds += time.process_time() - cpu
        n += 1
        found = {normalise(e.where) for e in result}
        hit = len(found & true)
        tp, fp, fn = tp + hit, fp + len(found) - hit, fn + len(true) - hit
        if args.verbose and found != true:
            mix = sorted(normalise(e.where) for e in result.mix)
            print(f"  {case}: truth {sorted(true)} found {sorted(found)} mix {mix} {result.reason or ''}")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    kind = "stall ratio" if args.complement else "success ratio"
    print(f"RS ({kind}): {n} cases, localise_ratio on the leaf table")
    print(f"  TP {tp}  FP {fp}  FN {fn}")
    print(f"  F1 {f1(tp, fp, fn):.3f}  precision {precision:.3f}  recall {recall:.3f}  "
          f"mean seconds per case {seconds / max(n, 1):.3f} (CPU {cpu_seconds / max(n, 1):.3f})")
    print(f"  published / measured before: {PUBLISHED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
