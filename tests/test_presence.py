"""Customer states through the dense grid of `metrictree.presence` give what the hash lookups give.

The grid (one byte per (entity, slice) × period cell) is used when it is small beside the triples; a
sliced evaluation whose (entity, slice) combinations are few numbers them first; otherwise the lookups
are hash sets of integer codes. The three ways must give the same numbers on every grain and slicing,
with null slices, null customers and customers who skip periods.
"""

from __future__ import annotations

import datetime as dt
import random
import textwrap

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import metrictree
from metrictree import presence

TREE_TEXT = textwrap.dedent("""
    tree p "presence"
    grain month
    source orders { time day dimensions region, channel entity customer_id }
    metric customers = count_distinct(orders.customer_id) where orders.status == "paid"
    metric active = active_customers(orders)
    metric churned = churned_customers(orders) where orders.status == "paid"
    metric retained = retained_customers(orders) where orders.status == "paid"
    metric returning = returning_customers(orders)
    metric new = new_customers(orders) where orders.status == "paid"
    metric back = reactivated_customers(orders, after=2)
    metric back1 = reactivated_customers(orders, after=1) where orders.status == "paid"
    metric repeat = repeat_customers(orders, min_purchases=2, over="ever")
    metric repeat_p = repeat_customers(orders)
    metric lifetime = customer_lifetime(orders) where orders.status == "paid"
    metric active_30 = active_customers(orders, window=30)
""")
TREE = metrictree.loads(TREE_TEXT)


@pytest.fixture(scope="module")
def orders() -> pa.Table:
    rng = random.Random(5)
    n = 4000
    # Customers order in bursts separated by gaps, so that churn, return and reactivation all happen.
    days = []
    for _ in range(n):
        base = rng.choice([0, 40, 130, 220, 300])
        days.append(dt.date(2024, 11, 1) + dt.timedelta(days=base + rng.randrange(60)))
    return pa.table({
        "day": pa.array(days, pa.date32()),
        "region": [rng.choice(["north", "south", None]) for _ in range(n)],
        "channel": [rng.choice(["web", "app", "shop"]) for _ in range(n)],
        "customer_id": [rng.choice([None] + [f"c{i}" for i in range(400)]) for _ in range(n)],
        "status": [rng.choice(["paid", "paid", "refunded"]) for _ in range(n)],
    })


def evaluate(table: pa.Table, grain: str, by: list[str]) -> list[dict]:
    return TREE.evaluate({"orders": table}, grain=grain, by=by).to_pylist()


@pytest.mark.parametrize("grain", ["week", "month", "quarter"])
@pytest.mark.parametrize("by", [[], ["region"], ["region", "channel"]])
def test_the_grid_and_the_hash_lookups_agree(orders, monkeypatch, grain, by):
    built = []
    real = presence.Presence._build_grid

    def spy(self):
        grid = real(self)
        built.append(grid is not None)
        return grid

    monkeypatch.setattr(presence.Presence, "_build_grid", spy)
    with_grid = evaluate(orders, grain, by)
    assert built and all(built)  # small data: the grid always fits
    # Too small a grid for every combination, big enough once the combinations that occur are numbered.
    monkeypatch.setattr(presence, "_SMALL_GRID", 1)
    monkeypatch.setattr(presence, "_CELLS_PER_TRIPLE", 2 if by else 100)
    renumbered = evaluate(orders, grain, by)
    # No grid at all: hash lookups.
    monkeypatch.setattr(presence, "_CELLS_PER_TRIPLE", 0)
    built.clear()
    hashed = evaluate(orders, grain, by)
    assert built and not any(built)
    assert with_grid == hashed
    assert renumbered == hashed
    assert any(r["churned"] for r in hashed) and any(r["back"] for r in hashed) and any(r["new"] for r in hashed)


@pytest.mark.parametrize("grid", [True, False])
def test_first_period_of_entities_missing_from_the_codes(monkeypatch, grid):
    """Entity codes need not all occur (a filter keeps none of some customer's rows)."""
    if not grid:
        monkeypatch.setattr(presence, "_SMALL_GRID", 0)
        monkeypatch.setattr(presence, "_CELLS_PER_TRIPLE", 0)
    def make():
        return presence.Presence(pa.array([3, 0, 3, 5, 0], pa.int64()), pa.array([0, 0, 0, 0, 0], pa.int64()),
                                 pa.array([2, 1, 4, 0, 3], pa.int64()), pa.array([1, 1, 1, 1, 1], pa.int64()),
                                 None, 6, 7, 1)

    expected = [2, 1, 2, 0, 1]
    assert make().first_period().to_pylist() == expected
    assert make().follows().to_pylist() == [False, False, False, False, False]
    assert make().precedes(2).to_pylist() == [True, True, False, False, False]


@pytest.mark.parametrize("dense", [True, False])
def test_numbering_the_combinations_that_occur(monkeypatch, dense):
    """The (entity, slice) combinations are numbered by a scatter and a running count when they fit a grid
    of their own, by hashing otherwise: equal codes get equal numbers 0 … n-1 either way."""
    if not dense:
        monkeypatch.setattr(presence, "_NUMBERING_CELLS", 0)
    rng = random.Random(11)
    codes = [rng.choice([0, 7, 8, 40, 41, 99]) for _ in range(200)]
    numbers, count = presence._numbered(pa.array(codes, pa.int64()), 100, len(codes))
    numbers = numbers.to_pylist()
    assert count == len(set(codes)) and sorted(set(numbers)) == list(range(count))
    assert len({(c, n) for c, n in zip(codes, numbers)}) == count  # one number per code, one code per number
    if dense:  # in the codes' order
        assert [n for _, n in sorted(set(zip(codes, numbers)))] == list(range(count))
    assert presence._numbered(pa.array([], pa.int64()), 100, 0) == (pa.array([], pa.int64()), 0)


def test_the_renumbered_grid_numbers_densely_and_by_hash_alike(orders, monkeypatch):
    """The renumbered grid (few (customer, slice) combinations occur) gives the same states whether the
    combinations are numbered by a grid of their own or by hashing."""
    monkeypatch.setattr(presence, "_SMALL_GRID", 1)
    monkeypatch.setattr(presence, "_CELLS_PER_TRIPLE", 3)
    ways = []
    real = presence._numbered

    def spy(codes, size, triples):
        ways.append(0 < size <= presence._NUMBERING_CELLS * triples)
        return real(codes, size, triples)

    monkeypatch.setattr(presence, "_numbered", spy)
    dense = evaluate(orders, "month", ["region", "channel"])
    assert ways and all(ways)

    def hashed(codes, size, triples):
        encoded = pa.compute.dictionary_encode(codes)
        return pa.compute.cast(encoded.indices, pa.int64()), len(encoded.dictionary)

    monkeypatch.setattr(presence, "_numbered", hashed)
    assert evaluate(orders, "month", ["region", "channel"]) == dense


@pytest.mark.parametrize("extra", [False, True])
def test_the_overall_presence_from_the_grid_and_from_hashing_agree(monkeypatch, extra):
    """Every slice merged: the occupied cells of an (entity, period) grid (rows summed only when asked) or a
    hash grouping (with an ``extra`` to take the maximum of) give the same pairs, rows and lookups."""
    rng = random.Random(3)
    n = 3000
    triples = sorted({(rng.randrange(90), rng.randrange(5), rng.randrange(8)) for _ in range(n)})

    def make() -> presence.Presence:
        columns = list(zip(*triples))
        return presence.Presence(*(pa.array(c, pa.int64()) for c in columns),
                                 pa.array([1 + (e * 7 + p) % 3 for e, _, p in triples], pa.int64()),
                                 pa.array([(e + s) % 4 for e, s, _ in triples], pa.int64()) if extra else None,
                                 8, 90, 5)

    def seen(p: presence.Presence) -> list:
        table = {"e": p.entity, "p": p.period, "r": p.rows, "f": p.follows(), "first": p.first_period()}
        if extra:
            table["x"] = p.extra
        return sorted(zip(*(v.to_pylist() for v in table.values())))

    from_grid = make().overall()
    assert (from_grid._rows is None) != extra  # the grid's rows are summed when asked
    grid = seen(from_grid)
    monkeypatch.setattr(presence, "_SMALL_GRID", 0)
    monkeypatch.setattr(presence, "_CELLS_PER_TRIPLE", 0)
    hashed = make().overall()
    assert hashed._rows is not None
    assert seen(hashed) == grid
    assert len(grid) == len({(e, p) for e, _, p in triples})
    assert sum(r for _, _, r, *_ in grid) == sum(make().rows.to_pylist())


def test_the_overall_presence_keeps_the_grid_it_was_made_from():
    """The overall presence's own (entity, period) grid is the one its pairs were read from (handed on, not
    built again): the same cells and occupancy as built from its pairs, and the same lookups."""
    rng = random.Random(5)
    triples = sorted({(rng.randrange(70), rng.randrange(4), rng.randrange(9)) for _ in range(2500)})
    columns = [pa.array(c, pa.int64()) for c in zip(*triples)]
    overall = presence.Presence(*columns, None, None, 9, 70, 4).overall()
    assert "entity cells" in overall._cache
    handed = overall._entity_cells()
    built = presence.Presence(overall.entity, overall.slice, overall.period, None, None, 9, 70, 1)
    assert handed[0].equals(built._entity_cells()[0]) and handed[1].equals(built._entity_cells()[1])
    assert overall.precedes().equals(built.precedes()) and overall.first_period().equals(built.first_period())


@pytest.mark.parametrize("extra", [False, True])
@pytest.mark.parametrize("slices", [1, 3])
def test_coarser_slices_from_the_grid_and_from_hashing_agree(monkeypatch, extra, slices):
    """Triples merged into coarser slices (customers in several of them, as by channel): the occupied cells of an
    (entity, coarser slice, period) grid (rows summed only when asked) or a hash grouping (with an ``extra``)
    give the same triples, rows and lookups."""
    rng = random.Random(7)
    triples = sorted({(rng.randrange(120), rng.randrange(9), rng.randrange(10)) for _ in range(4000)})

    def make() -> presence.Presence:
        columns = list(zip(*triples))
        return presence.Presence(*(pa.array(c, pa.int64()) for c in columns),
                                 pa.array([1 + (e * 5 + s + p) % 4 for e, s, p in triples], pa.int64()),
                                 pa.array([(e + s) % 3 for e, s, _ in triples], pa.int64()) if extra else None,
                                 10, 120, 9)

    def seen(p: presence.Presence) -> list:
        table = {"e": p.entity, "s": p.slice, "p": p.period, "r": p.rows, "f": p.follows(), "n": p.precedes(2),
                 "first": p.first_period()}
        if extra:
            table["x"] = p.extra
        return sorted(zip(*(v.to_pylist() for v in table.values())))

    def coarse(p: presence.Presence):
        return pc.cast(pc.divide(p.slice, 3), pa.int64()) if slices > 1 else None

    grid = make()
    from_grid = grid.coarsened(coarse(grid), slices)
    assert (from_grid._rows is None) != extra  # the grid's rows are summed when asked
    found = seen(from_grid)
    monkeypatch.setattr(presence, "_SMALL_GRID", 0)
    monkeypatch.setattr(presence, "_CELLS_PER_TRIPLE", 0)
    hashed = make()
    merged = hashed.coarsened(coarse(hashed), slices)
    assert merged._rows is not None
    assert seen(merged) == found
    want = {(e, s // 3 if slices > 1 else 0, p) for e, s, p in triples}
    assert len(found) == len(want) < len(triples)
    assert sum(r for _, _, _, r, *_ in found) == sum(make().rows.to_pylist())


def test_lookups_when_few_of_the_slice_codes_occur(monkeypatch):
    """Slice codes numbered first (3 of 50 occur), then the (entity, slice) combinations: the same lookups as
    the hash sets give."""
    rng = random.Random(8)
    triples = sorted({(rng.randrange(300), rng.choice([4, 17, 49]), rng.randrange(6)) for _ in range(900)})

    def make() -> presence.Presence:
        return presence.Presence(*(pa.array(c, pa.int64()) for c in zip(*triples)),
                                 pa.array([1] * len(triples), pa.int64()), None, 6, 300, 50)

    def looked_up(p: presence.Presence) -> list:
        return [p.follows().to_pylist(), p.precedes().to_pylist(), p.precedes(2).to_pylist()]

    monkeypatch.setattr(presence, "_SMALL_GRID", 1)
    monkeypatch.setattr(presence, "_CELLS_PER_TRIPLE", 8)  # 300 × 50 × 6 cells do not fit; 300 × 3 × 6 do
    built = make()
    grid = looked_up(built)
    assert built._grid() is not None
    monkeypatch.setattr(presence, "_CELLS_PER_TRIPLE", 0)
    hashed = make()
    assert looked_up(hashed) == grid and hashed._grid() is None
    assert any(grid[0]) and not all(grid[0])


WIDE = ["a", "b", "c", "d", "e", "f"]


@pytest.mark.parametrize("cells", [None, 0])  # the grid where it fits; hash lookups
def test_six_wide_dimensions_count_as_their_one_combined_column(orders, monkeypatch, cells):
    """Slice codes of six dimensions of ~1,000 values each number more combinations than an int64 holds
    (~1e18 × customers × periods): the states must equal those of one column holding each combination."""
    if cells is not None:
        monkeypatch.setattr(presence, "_CELLS_PER_TRIPLE", cells)
    n = orders.num_rows
    rng = random.Random(11)
    # Each row's six values; a customer keeps its combination for a while, so states are not all zero.
    combos = {}
    wide = {d: [] for d in WIDE}
    for customer in orders.column("customer_id").to_pylist():
        if customer not in combos or rng.random() < 0.1:
            combos[customer] = [f"{d}{rng.randrange(1000)}" for d in WIDE]
        for d, value in zip(WIDE, combos[customer], strict=True):
            wide[d].append(value)
    table = orders
    for d in WIDE:
        table = table.append_column(d, pa.array(wide[d]))
    table = table.append_column("combined", pa.array(["|".join(w[i] for w in wide.values()) for i in range(n)]))
    tree = metrictree.loads(TREE_TEXT.replace("dimensions region, channel",
                                                     "dimensions " + ", ".join([*WIDE, "combined"])))
    by_six = tree.evaluate({"orders": table}, by=WIDE).to_pylist()
    by_one = tree.evaluate({"orders": table}, by=["combined"]).to_pylist()

    def keyed(rows, key):
        return {(r["period"], key(r)): {m: r[m] for m in ("customers", "active", "churned", "retained", "new",
                                                          "back", "repeat", "lifetime", "active_30")}
                for r in rows}

    six = keyed(by_six, lambda r: "|".join(r[d] for d in WIDE))
    one = keyed(by_one, lambda r: r["combined"])
    shared = set(six) & set(one)
    assert shared and all(six[k] == one[k] for k in shared)
    assert any(v["churned"] for v in one.values()) and any(v["active_30"] for v in one.values())
    # Combinations present only in one of the two layouts are empty ones (a slice with no rows that period).
    assert all(not any(v.values()) or k in shared for k, v in (*six.items(), *one.items()))
