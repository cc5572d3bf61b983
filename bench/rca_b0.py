"""Root-cause localisation on the Squeeze B0 benchmark (90 labelled cases, 21,600 leaves each).

    python bench/rca_b0.py [--direct] [--data /work/shared/benchmarks/rca-b0] [--split] [--limit N]
    python bench/rca_b0.py --synthetic [--seed 0]

For every case: take the leaves' expected (``predict``) and observed (``real``) values, ask metrictree
which elements explain the change, normalise each element as its ``dim=value`` pairs sorted and joined by
``&``, and compare with ``truth.csv`` (exact matches only). Prints F1 per setting (cuboid layer × number of
root-cause elements), overall F1 and mean seconds per case; ``--split`` adds F1 on the cases of even and
of odd index within each setting (the algorithm has no fitted constants, so the two halves should agree).

Two modes:

* default, the public API: per case a tree (grain day) with one source ``rows`` (time ``day``, dimensions
  a, b, c, d) and ``metric kpi = sum(rows.value)`` (a source and a metric cannot share the name ``kpi``);
  the data is one table holding the ``predict`` values on 2026-01-01 and the ``real`` values on 2026-01-02;
  ``tree.explain(data, metric="kpi", baseline="2026-01-01", current="2026-01-02", by=["a", "b", "c", "d"])``,
  reading ``explanation.root_causes``. The timing covers the whole path (the tree compiled once; data
  binding, aggregation, leaf table and localisation per case).
* ``--direct``: `metrictree.localising.localise` on the case's leaf table, nothing else.

``--synthetic`` is a stress test off the benchmark, to check that nothing is fitted to B0: B0-shaped random
cases (4 dimensions of 5, 8, 6 and 10 values, lognormal leaf sizes, 35 % empty leaves, 1 to 3 root causes of
1 to 3 dimensions, 36 cases per configuration) under other noise: 5 % instead of 1 %, root-cause leaves
that change by ±10 % different proportions (an imperfect ripple), Poisson counts, mild causes (-10 to -30 %)
and increases (×1.5 to ×3). It calls `localise` directly and needs numpy.

Needs only pyarrow and the standard library otherwise. ``--verbose`` prints every case not found exactly.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import metrictree
from metrictree.localising import localise

# The benchmark data sits in shared/ beside the repository (../shared/benchmarks/rca-b0).
DATA = next((p / "shared" / "benchmarks" for p in Path(__file__).resolve().parents
             if (p / "shared" / "benchmarks").is_dir()), Path("../shared/benchmarks")) / "rca-b0"
DIMS = ("a", "b", "c", "d")
TREE = """\
grain day

source rows {
    time day
    dimensions a, b, c, d
}
metric kpi = sum(rows.value)
"""
BASELINE_DAY, CURRENT_DAY = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def normalise(where: dict) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(where.items()))


def read_truth(path: Path) -> dict[tuple[str, int], set[str]]:
    truth = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            elements = {"&".join(sorted(e.split("&"))) for e in row["root_cause"].split(";") if e}
            truth[(row["setting"], int(row["case"]))] = elements
    return truth


def cases(path: Path):
    """(case id, leaf table with a, b, c, d, baseline, current) for each case of one setting file."""
    table = pq.read_table(path)
    for case in pc.unique(table["case"]).to_pylist():
        rows = table.filter(pc.equal(table["case"], case))
        columns = {d: pc.cast(rows[d], pa.string()) for d in DIMS}
        yield case, pa.table({**columns, "baseline": rows["predict"], "current": rows["real"]})


def direct(leaves: pa.Table) -> list[str]:
    return [normalise(e.where) for e in localise(leaves, DIMS)]


def public_runner():
    tree = metrictree.loads(TREE)
    if not hasattr(tree, "explain"):
        sys.exit("tree.explain is not available yet: run with --direct")

    def run(leaves: pa.Table) -> list[str]:
        n = leaves.num_rows
        dims = {d: pa.concat_arrays([leaves[d].combine_chunks()] * 2) for d in DIMS}
        data = pa.table({
            "day": pa.array([BASELINE_DAY] * n + [CURRENT_DAY] * n, pa.date32()),
            **dims,
            "value": pa.concat_arrays([leaves["baseline"].combine_chunks(), leaves["current"].combine_chunks()]),
        })
        explanation = tree.explain({"rows": data}, metric="kpi", baseline=str(BASELINE_DAY),
                                   current=str(CURRENT_DAY), by=list(DIMS))
        return [normalise(cause.where) for cause in explanation.root_causes]

    return run


SYNTHETIC_DIMS = {"a": 5, "b": 8, "c": 6, "d": 10}
SYNTHETIC = {
    "B0-like: 1 % noise, exact ripple": dict(noise=0.01, jitter=0.0, poisson=False, ratios=(0.0, 0.6)),
    "5 % noise": dict(noise=0.05, jitter=0.0, poisson=False, ratios=(0.0, 0.6)),
    "imperfect ripple (±10 %)": dict(noise=0.01, jitter=0.10, poisson=False, ratios=(0.0, 0.6)),
    "Poisson counts": dict(noise=0.0, jitter=0.0, poisson=True, ratios=(0.0, 0.6)),
    "mild causes (-10..-30 %), 2 % noise": dict(noise=0.02, jitter=0.0, poisson=False, ratios=(0.7, 0.9)),
    "increases (x1.5..x3)": dict(noise=0.01, jitter=0.0, poisson=False, ratios=(1.5, 3.0)),
}


def synthetic_case(rng, n_causes: int, layer: int, noise: float, jitter: float, poisson: bool, ratios):
    """A random B0-shaped case: (leaf table, set of normalised true elements)."""
    import itertools

    import numpy as np

    names = list(SYNTHETIC_DIMS)
    grid = np.array(list(itertools.product(*[range(k) for k in SYNTHETIC_DIMS.values()])))
    n = len(grid)
    base = np.exp(rng.normal(3.0, 2.0, n))
    if not poisson:
        base[rng.random(n) < 0.35] = 0.0
    causes: list[tuple] = []
    while len(causes) < n_causes:
        picked = sorted(rng.choice(len(names), layer, replace=False))
        element = tuple((int(i), int(rng.integers(SYNTHETIC_DIMS[names[i]]))) for i in picked)
        if not any(set(element) <= set(o) or set(o) <= set(element) for o in causes):
            causes.append(element)
    current = base.copy()
    for element in causes:
        inside = np.all([grid[:, i] == v for i, v in element], axis=0)
        current[inside] *= rng.uniform(*ratios) * (1 + jitter * rng.normal(size=inside.sum()))
    if poisson:
        baseline, current = rng.poisson(base).astype(float), rng.poisson(np.maximum(current, 0)).astype(float)
    else:
        baseline, current = base, current * (1 + noise * rng.normal(size=n))
    table = pa.table({**{d: [f"{d}{v}" for v in grid[:, i]] for i, d in enumerate(names)},
                      "baseline": baseline, "current": current})
    truth = {"&".join(sorted(f"{names[i]}={names[i]}{v}" for i, v in element)) for element in causes}
    return table, truth


def synthetic(seed: int) -> int:
    import numpy as np

    print(f"Synthetic B0-shaped cases (seed {seed}), direct localise")
    print(f"{'configuration':<38} {'TP':>4} {'FP':>4} {'FN':>4} {'F1':>6} {'s/case':>7}")
    for name, config in SYNTHETIC.items():
        rng = np.random.default_rng(seed)
        tp = fp = fn = 0
        seconds, cases = 0.0, 0
        for layer in (1, 2, 3):
            for n_causes in (1, 2, 3):
                for _ in range(4):
                    table, true = synthetic_case(rng, n_causes, layer, **config)
                    start = time.perf_counter()
                    found = {normalise(e.where) for e in localise(table, list(SYNTHETIC_DIMS))}
                    seconds += time.perf_counter() - start
                    cases += 1
                    tp, fp, fn = tp + len(found & true), fp + len(found - true), fn + len(true - found)
        print(f"{name:<38} {tp:>4} {fp:>4} {fn:>4} {f1(tp, fp, fn):>6.3f} {seconds / cases:>7.3f}")
    return 0


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--direct", action="store_true", help="call localise on the leaf table directly")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--split", action="store_true", help="also report F1 on even- and odd-indexed cases")
    parser.add_argument("--limit", type=int, default=None, help="at most this many cases per setting")
    parser.add_argument("--verbose", action="store_true", help="print every case that is not found exactly")
    parser.add_argument("--synthetic", action="store_true", help="run the synthetic stress test instead (numpy)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic stress test")
    args = parser.parse_args(argv)
    if args.synthetic:
        return synthetic(args.seed)

    truth = read_truth(args.data / "truth.csv")
    run = direct if args.direct else public_runner()
    counts = defaultdict(lambda: [0, 0, 0])  # (setting or split) -> [TP, FP, FN]
    seconds, cpu_seconds, n_cases = 0.0, 0.0, 0
    for path in sorted(args.data.glob("B_cuboid_layer_*_n_ele_*.parquet")):
        setting = path.stem
        for index, (case, leaves) in enumerate(cases(path)):
            if args.limit is not None and index >= args.limit:
                break
            start, cpu = time.perf_counter(), time.process_time()
            found = set(run(leaves))
            seconds += time.perf_counter() - start
            cpu_seconds += time.process_time() - cpu
            n_cases += 1
            true = truth[(setting, case)]
            tp = len(found & true)
            score = (tp, len(found) - tp, len(true) - tp)
            for key in (setting, "overall", "even" if index % 2 == 0 else "odd"):
                counts[key] = [x + y for x, y in zip(counts[key], score)]
            if args.verbose and found != true:
                print(f"  {setting} {case}: truth {sorted(true)} found {sorted(found)}")

    mode = "direct localise" if args.direct else "public tree.explain"
    print(f"Squeeze B0, {mode}: {n_cases} cases")
    print(f"{'setting':<28} {'TP':>4} {'FP':>4} {'FN':>4} {'F1':>6}")
    for key in sorted(k for k in counts if k.startswith("B_")):
        tp, fp, fn = counts[key]
        print(f"{key:<28} {tp:>4} {fp:>4} {fn:>4} {f1(tp, fp, fn):>6.3f}")
    keys = ["overall", "even", "odd"] if args.split else ["overall"]
    for key in keys:
        tp, fp, fn = counts[key]
        print(f"{key:<28} {tp:>4} {fp:>4} {fn:>4} {f1(tp, fp, fn):>6.3f}")
    print(f"mean seconds per case: {seconds / max(n_cases, 1):.3f} (CPU {cpu_seconds / max(n_cases, 1):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
