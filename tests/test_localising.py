"""Tests for root-cause localisation (metrictree.localising): planted causes in synthetic leaf tables."""

from __future__ import annotations

import itertools
import math
import random

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from metrictree import UsageError
from metrictree.localising import Element, localise

REGIONS = ["North", "South", "Center", "East", "West", "Coast"]
CHANNELS = ["web", "app", "marketplace", "phone"]
SEGMENTS = ["new", "regular", "vip"]


# --- helpers -------------------------------------------------------------------


def leaf_table(dims: dict[str, list], effects=(), noise: float = 0.02, seed: int = 1, sizes=None) -> pa.Table:
    """Every combination of `dims`, baseline lognormal, current = baseline × (1 + noise) × the planted effects.

    `effects` are ``(where, change)`` pairs; ``change`` maps a leaf's baseline to its current value before
    noise (e.g. ``lambda b: 0.6 * b``). `sizes` can override the baseline of a leaf.
    """
    rng = random.Random(seed)
    names = list(dims)
    rows = {name: [] for name in names} | {"baseline": [], "current": []}
    for combo in itertools.product(*dims.values()):
        leaf = dict(zip(names, combo))
        base = sizes(leaf, rng) if sizes else rng.lognormvariate(6.0, 1.0)
        value = base
        for where, change in effects:
            if all(leaf[k] == v for k, v in where.items()):
                value = change(value)
        for name in names:
            rows[name].append(leaf[name])
        rows["baseline"].append(base)
        rows["current"].append(value * (1.0 + rng.gauss(0.0, noise)))
    return pa.table(rows)


def found(elements: list[Element]) -> list[dict]:
    return [e.where for e in elements]


def assert_well_formed(elements: list[Element], table: pa.Table, dims, max_elements: int = 5) -> None:
    """The invariants every answer keeps: no nesting, finite numbers, sums that match the leaves."""
    assert len(elements) <= max_elements
    for one, other in itertools.combinations(elements, 2):
        a, b = one.where.items(), other.where.items()
        assert not (a <= b or b <= a), f"{one.where} and {other.where} are nested"
    for e in elements:
        assert set(e.where) <= set(dims) and e.where
        for value in (e.baseline, e.current, e.change, e.share, e.score):
            assert math.isfinite(value)
        assert 0.25 < e.score <= 1.0
        assert e.change == pytest.approx(e.current - e.baseline)
        mask = None
        for dim, value in e.where.items():
            match = pc.is_null(table[dim]) if value is None else pc.equal(pc.cast(table[dim], pa.string()), value)
            mask = match if mask is None else pc.and_(mask, match)
        inside = table.filter(mask)
        assert e.leaves == inside.num_rows
        assert e.baseline == pytest.approx(pc.sum(pc.fill_null(inside["baseline"], 0)).as_py() or 0.0)
        assert e.current == pytest.approx(pc.sum(pc.fill_null(inside["current"], 0)).as_py() or 0.0)
    changes = [abs(e.change) for e in elements]
    assert changes == sorted(changes, reverse=True)


# --- planted causes --------------------------------------------------------------


def test_single_dimension_cause():
    dims = {"region": REGIONS, "channel": CHANNELS, "segment": SEGMENTS}
    table = leaf_table(dims, [({"region": "East"}, lambda b: 0.7 * b)])
    elements = localise(table, list(dims))
    assert found(elements) == [{"region": "East"}]
    east = elements[0]
    assert east.leaves == 12
    assert east.change < 0 and east.share == pytest.approx(east.change / (
        pc.sum(table["current"]).as_py() - pc.sum(table["baseline"]).as_py()))
    assert_well_formed(elements, table, list(dims))


def test_two_dimension_cause_among_noise():
    dims = {"a": [f"a{i}" for i in range(6)], "b": [f"b{i}" for i in range(8)], "c": [f"c{i}" for i in range(5)]}
    table = leaf_table(dims, [({"a": "a2", "b": "b5"}, lambda b: 0.5 * b)], noise=0.03, seed=7)
    elements = localise(table, list(dims))
    assert found(elements) == [{"a": "a2", "b": "b5"}]
    assert elements[0].leaves == 5
    assert_well_formed(elements, table, list(dims))


def test_two_separate_causes_in_opposite_directions():
    dims = {"a": [f"a{i}" for i in range(6)], "b": [f"b{i}" for i in range(8)], "c": [f"c{i}" for i in range(5)]}
    effects = [({"a": "a1"}, lambda b: 0.4 * b), ({"b": "b3", "c": "c2"}, lambda b: 2.5 * b)]
    table = leaf_table(dims, effects, seed=3)
    elements = localise(table, list(dims))
    assert sorted(map(str, found(elements))) == sorted(map(str, [{"a": "a1"}, {"b": "b3", "c": "c2"}]))
    by_where = {str(e.where): e for e in elements}
    assert by_where[str({"a": "a1"})].change < 0 < by_where[str({"b": "b3", "c": "c2"})].change
    assert_well_formed(elements, table, list(dims))


def test_new_segment_with_zero_baseline():
    dims = {"region": REGIONS, "channel": [*CHANNELS, "tiktok"]}

    def sizes(leaf, rng):
        return 0.0 if leaf["channel"] == "tiktok" else rng.lognormvariate(6.0, 1.0)

    table = leaf_table(dims, [({"channel": "tiktok"}, lambda b: 0.0)], sizes=sizes)
    # The new channel sells from nothing: baseline 0, current positive in every region.
    current = pc.if_else(pc.equal(table["channel"], "tiktok"), 150.0, table["current"])
    table = table.set_column(table.schema.get_field_index("current"), "current", current)
    elements = localise(table, list(dims))
    assert found(elements) == [{"channel": "tiktok"}]
    assert elements[0].baseline == 0 and elements[0].current == pytest.approx(900.0)
    assert_well_formed(elements, table, list(dims))


def test_vanished_leaves_and_baseline_zero_leaves_elsewhere():
    dims = {"a": ["x", "y", "z", "w"], "b": ["1", "2", "3", "4", "5"]}

    def sizes(leaf, rng):
        return 0.0 if leaf["b"] == "5" else rng.lognormvariate(4.0, 0.5)  # some leaves have no data at all

    table = leaf_table(dims, [({"a": "y"}, lambda b: 0.0)], sizes=sizes)
    elements = localise(table, list(dims))
    assert found(elements) == [{"a": "y"}]
    assert elements[0].current == 0
    assert_well_formed(elements, table, list(dims))


def test_negative_values():
    # Profit per leaf: some leaves lose money. In region East every leaf falls by half its size.
    dims = {"region": REGIONS, "channel": CHANNELS, "segment": SEGMENTS}

    def sizes(leaf, rng):
        return rng.choice([-1.0, 1.0, 1.0]) * rng.lognormvariate(6.0, 0.8)

    table = leaf_table(dims, [({"region": "East"}, lambda b: b - 0.5 * abs(b))], sizes=sizes, seed=11)
    assert pc.min(table["baseline"]).as_py() < 0
    elements = localise(table, list(dims))
    assert found(elements) == [{"region": "East"}]
    assert elements[0].change < 0
    assert_well_formed(elements, table, list(dims))


@pytest.mark.parametrize("seed", range(8))
def test_noise_only_gives_nothing(seed):
    dims = {"a": [f"a{i}" for i in range(6)], "b": [f"b{i}" for i in range(8)], "c": [f"c{i}" for i in range(5)]}
    table = leaf_table(dims, noise=0.05, seed=seed)
    result = localise(table, list(dims))
    assert result.elements == () and len(result) == 0
    assert result.reason == "nothing stands out from the segments' usual variation" and not result.spread


def test_uniform_change_is_not_a_cause():
    # Everything fell by 20 %: no segment stands out, so there is nothing to name below the total.
    dims = {"region": REGIONS, "channel": CHANNELS}
    table = leaf_table(dims, [({}, lambda b: 0.8 * b)])
    result = localise(table, list(dims))
    assert result.elements == ()
    # ... but the result says that the fall is spread, in words the explanation can use.
    assert result.spread
    assert result.reason == ("the change is spread across all segments of region, channel: none moved differently "
                             "from the rest")


def test_cause_stands_out_from_a_general_trend():
    dims = {"region": REGIONS, "channel": CHANNELS, "segment": SEGMENTS}
    effects = [({}, lambda b: 0.9 * b), ({"channel": "app", "segment": "vip"}, lambda b: 0.45 * b)]
    table = leaf_table(dims, effects, seed=5)
    assert found(localise(table, list(dims))) == [{"channel": "app", "segment": "vip"}]


def test_never_parent_and_child():
    # A whole region dropped and, inside it, one channel dropped further: one answer, not both.
    dims = {"region": REGIONS, "channel": CHANNELS, "segment": SEGMENTS}
    effects = [({"region": "North"}, lambda b: 0.5 * b), ({"region": "North", "channel": "app"}, lambda b: 0.5 * b)]
    table = leaf_table(dims, effects, seed=2)
    elements = localise(table, list(dims))
    assert elements
    assert_well_formed(elements, table, list(dims))


def test_max_elements_keeps_the_largest():
    dims = {"a": [f"a{i}" for i in range(6)], "b": [f"b{i}" for i in range(8)]}
    effects = [({"a": "a1"}, lambda b: 0.2 * b), ({"a": "a3"}, lambda b: 0.7 * b), ({"b": "b6"}, lambda b: 0.5 * b)]
    table = leaf_table(dims, effects, seed=4)
    everything = localise(table, list(dims))
    assert len(everything) == 3
    two = localise(table, list(dims), max_elements=2)
    assert len(two) == 2
    none = localise(table, list(dims), max_elements=0)
    assert none.elements == () and none.reason == "no elements were asked for (max_elements = 0)"


# --- shapes of input ---------------------------------------------------------------


def test_one_dimension():
    table = leaf_table({"region": REGIONS}, [({"region": "South"}, lambda b: 1.6 * b)], noise=0.01)
    elements = localise(table, ["region"])
    assert found(elements) == [{"region": "South"}]
    assert elements[0].leaves == 1 and elements[0].score == pytest.approx(1.0)


def test_nulls_in_dimension_values_are_a_value_of_their_own():
    dims = {"region": REGIONS, "channel": [*CHANNELS, None]}
    table = leaf_table(dims, [({"channel": None}, lambda b: 0.3 * b)])
    elements = localise(table, list(dims))
    assert found(elements) == [{"channel": None}]
    assert elements[0].leaves == len(REGIONS)
    assert_well_formed(elements, table, list(dims))


def test_non_string_dimensions_and_null_values():
    table = pa.table({
        "store": pa.array([1, 2, 3, 4, 5, 6, 7, 8] * 2, pa.int64()),
        "week": pa.array([1] * 8 + [2] * 8, pa.int32()),
        "baseline": pa.array([100.0, 120, 90, 110, 105, 95, 100, None] * 2),
        "current": pa.array([101.0, 119, 91, 30, 104, 96, 99, 1] + [99.0, 121, 89, 28, 106, 94, 101, 2]),
    })
    elements = localise(table, ["store", "week"])
    # Store 8 had no baseline (null counts as 0): a new segment, smaller than store 4's drop.
    assert found(elements) == [{"store": "4"}, {"store": "8"}]
    assert elements[1].baseline == 0 and elements[1].current == 3
    assert_well_formed(elements, table, ["store", "week"])


def test_region_by_channel_of_the_sample_shop():
    """The bundled sample data: revenue in North × app falls ~35 % in 2026-10 (and regular customers buy less
    everywhere, which moves every region × channel a little)."""
    from metrictree.sample import sample_data

    orders = sample_data()["orders"]
    orders = orders.filter(pc.equal(orders["status"], "paid"))
    month = pc.strftime(orders["order_date"], format="%Y-%m")
    orders = orders.append_column("month", month).filter(pc.is_in(month, pa.array(["2026-09", "2026-10"])))
    sums = orders.group_by(["region", "channel", "month"]).aggregate([("amount", "sum")])
    base = sums.filter(pc.equal(sums["month"], "2026-09")).rename_columns(["region", "channel", "m", "baseline"])
    now = sums.filter(pc.equal(sums["month"], "2026-10")).rename_columns(["region", "channel", "m", "current"])
    table = base.drop_columns(["m"]).join(now.drop_columns(["m"]), ["region", "channel"])
    assert table.num_rows == 12
    elements = localise(table, ["region", "channel"])
    assert found(elements) == [{"region": "North", "channel": "app"}]


def test_handful_of_leaves_with_one_drop():
    table = pa.table({
        "region": ["North", "North", "South", "South", "East", "East"],
        "channel": ["web", "app"] * 3,
        "baseline": [100.0, 80, 120, 60, 90, 70],
        "current": [102.0, 52, 118, 61, 91, 69],
    })
    assert found(localise(table, ["region", "channel"])) == [{"region": "North", "channel": "app"}]


def test_degenerate_inputs():
    empty = pa.table({"a": pa.array([], pa.string()), "baseline": pa.array([], pa.float64()),
                      "current": pa.array([], pa.float64())})
    assert localise(empty, ["a"]).reason == "there are no segments to compare"
    zeros = pa.table({"a": ["x", "y"], "baseline": [0.0, 0.0], "current": [0.0, 0.0]})
    assert localise(zeros, ["a"]).reason == "nothing changed: every segment is 0 in both periods"
    one = pa.table({"a": ["x"], "baseline": [10.0], "current": [3.0]})
    assert localise(one, ["a"]).elements == ()  # a single leaf is the whole: nothing to localise
    same = pa.table({"a": ["x", "y", "z"], "baseline": [1.0, 2.0, 3.0], "current": [1.0, 2.0, 3.0]})
    assert localise(same, ["a"]).reason == "nothing changed in any segment"


def test_missing_and_non_finite_values_count_as_zero():
    names = ["p", "q", "r", "s", "t", "u", "v", "w"]
    table = pa.table({"a": names,
                      "baseline": pa.array([10, 10, 10, 10, 10, 10, 10, None], pa.decimal128(5, 1)),
                      "current": [10.0, 10.1, 9.9, 3.0, 10.0, 9.95, float("inf"), float("nan")]})
    zeros = pa.table({"a": names, "baseline": [10.0] * 7 + [0.0],
                      "current": [10.0, 10.1, 9.9, 3.0, 10.0, 9.95, 0.0, 0.0]})
    elements = localise(table, ["a"])
    assert elements == localise(zeros, ["a"])
    assert sorted(map(str, found(elements))) == sorted(map(str, [{"a": "s"}, {"a": "v"}]))


def test_mistakes_are_usage_errors():
    table = pa.table({"region": ["a", "b"], "baseline": [1.0, 2.0], "current": [1.0, 2.0], "note": ["x", "y"]})
    with pytest.raises(UsageError, match="no column 'regoin'") as info:
        localise(table, ["regoin"])
    assert "did you mean 'region'" in info.value.render()
    with pytest.raises(UsageError, match="'note' is string, not a number"):
        localise(table, ["region"], current="note")
    with pytest.raises(UsageError, match="no dimensions"):
        localise(table, [])
    with pytest.raises(UsageError, match="max_elements"):
        localise(table, ["region"], max_elements=-1)


# --- properties ----------------------------------------------------------------------

values = st.one_of(st.just(0.0), st.integers(-50, 1000).map(float), st.floats(-1e6, 1e6, allow_nan=False))


@st.composite
def leaf_tables(draw):
    n_dims = draw(st.integers(1, 3))
    dims = [f"d{i}" for i in range(n_dims)]
    cardinalities = [draw(st.integers(1, 4)) for _ in dims]
    combos = list(itertools.product(*[[*(f"v{j}" for j in range(k - 1)), None] for k in cardinalities]))
    chosen = draw(st.lists(st.sampled_from(combos), min_size=1, max_size=len(combos), unique=True))
    n = len(chosen)
    columns = {dim: [combo[i] for combo in chosen] for i, dim in enumerate(dims)}
    columns["baseline"] = draw(st.lists(values, min_size=n, max_size=n))
    columns["current"] = draw(st.lists(values, min_size=n, max_size=n))
    return pa.table(columns), dims


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaf_tables(), st.integers(1, 5))
# Found by this test: two leaves of subnormal size, whose median size rounded to 0.
@example((pa.table({"d0": ["v0", None], "baseline": [0.0, 0.0], "current": [5e-324, 5e-324]}), ["d0"]), 1)
def test_answers_are_non_nested_and_finite(case, max_elements):
    table, dims = case
    elements = localise(table, dims, max_elements=max_elements)
    assert_well_formed(elements, table, dims, max_elements)


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's product of uniforms; the means here are small)."""
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def count_table(seed: int, rise: float) -> pa.Table:
    """36 leaves of counts around 5–40 (the sample shop's churned customers by channel × region × segment);
    the expected counts of segment = regular grow by `rise`, every count is a Poisson draw."""
    rng = random.Random(seed)
    dims = {"channel": CHANNELS[:3], "region": REGIONS[:4], "segment": ["new", "regular", "vip"]}
    rows = []
    for channel, region, segment in itertools.product(*dims.values()):
        mean = rng.uniform(10, 40) * (2.0 if segment == "regular" else 1.0)
        rows.append({"channel": channel, "region": region, "segment": segment,
                     "baseline": float(poisson(rng, mean)),
                     "current": float(poisson(rng, mean * (1 + rise if segment == "regular" else 1.0)))})
    return pa.Table.from_pylist(rows)


@pytest.mark.parametrize("seed", range(4))
def test_pure_poisson_counts_give_nothing(seed):
    result = localise(count_table(seed, rise=0.0), ["channel", "region", "segment"])
    assert result.elements == () and result.reason


@pytest.mark.parametrize("seed", [0, 1])
def test_one_segment_rising_among_small_counts(seed):
    elements = localise(count_table(seed, rise=0.4), ["channel", "region", "segment"])
    assert found(elements) == [{"segment": "regular"}]


# --- what the data says: how many elements, which side is normal, noise from history ---------------------


def test_as_many_elements_as_the_data_holds():
    # Seven values of one dimension fall: all seven are named, not the first five.
    dims = {"a": [f"a{i}" for i in range(12)], "b": [f"b{i}" for i in range(8)], "c": [f"c{i}" for i in range(5)]}
    effects = [({"a": f"a{i}"}, lambda b: 0.5 * b) for i in range(7)]
    table = leaf_table(dims, effects, noise=0.02, seed=11)
    result = localise(table, list(dims))
    assert sorted(map(str, found(result))) == sorted(str({"a": f"a{i}"}) for i in range(7))
    assert len(localise(table, list(dims), max_elements=3)) == 3  # the cap still applies when asked for


def test_most_values_of_a_dimension_anomalous_names_the_anomalous_ones():
    # Three of five values of e fall by half; the two others are the normal ones and must not be named.
    dims = {"a": [f"a{i}" for i in range(10)], "b": [f"b{i}" for i in range(8)], "e": [f"e{i}" for i in range(5)]}
    effects = [({"e": value}, lambda b: 0.5 * b) for value in ("e1", "e2", "e4")]
    table = leaf_table(dims, effects, noise=0.05, seed=2)
    result = localise(table, list(dims))
    assert sorted(map(str, found(result))) == sorted(map(str, [{"e": "e1"}, {"e": "e2"}, {"e": "e4"}]))
    assert all(e.change < 0 for e in result)


def test_spread_when_everything_moved_and_the_cause_on_top_of_it():
    dims = {"region": REGIONS, "channel": CHANNELS, "segment": SEGMENTS}
    effects = [({}, lambda b: 0.7 * b), ({"region": "North"}, lambda b: 0.5 * b)]
    result = localise(leaf_table(dims, effects, seed=4), list(dims))
    assert found(result) == [{"region": "North"}]
    # Most of the fall is the general 30 %, which the explanation must say as much as it names North.
    assert result.spread and result.reason.startswith("most of the change is spread")


def online_retail(seed: int, volatile: float) -> tuple[pa.Table, list[pa.Array]]:
    """Revenue by country × channel: six months of history, then Germany (large) falls 64 % while Spain (small,
    swinging by `volatile` from month to month) swings as usual."""
    rng = random.Random(seed)
    countries = {"Germany": 9000.0, "France": 7000.0, "Spain": 600.0, "Italy": 5000.0, "Belgium": 3000.0,
                 "Netherlands": 4000.0, "Portugal": 2500.0, "Austria": 2000.0}
    channels = ["web", "app", "phone"]
    months = 8
    rows, series = [], []
    for country, size in countries.items():
        for channel in channels:
            level = size * rng.uniform(0.5, 1.5)
            values = []
            for month in range(months):
                swing = volatile if country == "Spain" else 0.03
                values.append(level * (1.0 + rng.gauss(0.0, swing)))
            if country == "Germany":
                values[-1] = values[-2] * 0.36 * (1.0 + rng.gauss(0.0, 0.03))
            if country == "Spain":
                values[-1] = values[-2] * (1.0 - volatile)  # a usual swing for Spain
            rows.append({"country": country, "channel": channel, "baseline": values[-2], "current": values[-1]})
            series.append(values[:-2])
    table = pa.Table.from_pylist(rows)
    history = [pa.array([s[t] for s in series]) for t in range(months - 2)]
    return table, history


@pytest.mark.parametrize("seed", range(3))
def test_history_keeps_a_small_volatile_segment_from_outranking_a_large_abnormal_one(seed):
    table, history = online_retail(seed, volatile=0.6)
    with_history = localise(table, ["country", "channel"], history=history)
    assert found(with_history) == [{"country": "Germany"}]
    # Without history Spain's swing is as abnormal as Germany's fall, relative to the others' 3 % noise.
    without = localise(table, ["country", "channel"])
    assert {"country": "Germany"} in found(without) and {"country": "Spain"} in found(without)


def test_history_of_a_steady_shop_changes_nothing():
    table, history = online_retail(0, volatile=0.03)
    assert found(localise(table, ["country", "channel"], history=history)) == found(
        localise(table, ["country", "channel"]))


def test_history_mistakes_are_usage_errors():
    table, history = online_retail(0, volatile=0.03)
    with pytest.raises(UsageError, match="history period 1 has 3 values for 24 leaves"):
        localise(table, ["country"], history=[pa.array([1.0, 2.0, 3.0])])
    with pytest.raises(UsageError, match="history period 2 is string"):
        localise(table, ["country"], history=[history[0], pa.array(["x"] * 24)])


def test_dimension_names_never_clash_with_internal_columns():
    # Dimensions named like the search's own columns, and value columns named like them too.
    dims = {"b": [f"x{i}" for i in range(6)], "c": [f"y{i}" for i in range(8)], "k0": ["p", "q", "r"]}
    table = leaf_table(dims, [({"c": "y3"}, lambda b: 0.4 * b)], seed=8)
    table = table.rename_columns(["b", "c", "k0", "s", "v"])
    assert found(localise(table, ["b", "c", "k0"], baseline="s", current="v")) == [{"c": "y3"}]


def test_many_dimensions_stay_bounded():
    from metrictree.localising import MAX_CUBOIDS, _layers

    # Every cuboid of up to 10 dimensions; beyond, only the layers that keep the count within the budget.
    assert _layers(4) == 4 and _layers(10) == 10
    assert _layers(20) == 2 and _layers(1000) == 1
    assert sum(math.comb(20, k) for k in range(1, _layers(20) + 1)) <= MAX_CUBOIDS
    rng = random.Random(3)
    names = [f"d{i}" for i in range(24)]
    rows = []
    for _ in range(1500):
        row = {name: f"v{rng.randrange(50)}" for name in names}
        base = rng.lognormvariate(4.0, 1.0)
        row["baseline"] = base
        row["current"] = base * (0.4 if row["d7"] == "v3" else 1.0) * (1.0 + rng.gauss(0.0, 0.02))
        rows.append(row)
    result = localise(pa.Table.from_pylist(rows), names)
    assert found(result) == [{"d7": "v3"}]


def test_history_with_gaps():
    # New leaves have no history (null); a leaf with a single earlier period still gives one step.
    table, history = online_retail(1, volatile=0.6)
    n = table.num_rows
    gappy = [pa.array([None] * 3 + h.to_pylist()[3:], pa.float64()) for h in history]
    gappy[0] = pa.array([None] * n, pa.float64())
    result = localise(table, ["country", "channel"], history=gappy)
    assert found(result) == [{"country": "Germany"}]


def test_a_cause_that_hits_its_parts_unevenly_is_named_whole():
    # Every channel of East falls, two by 60 %, two by 15 %: East fails the ripple test (no one common change),
    # its four channels pass it; they are all of East, so East is named, not its channels one by one.
    dims = {"region": REGIONS, "channel": CHANNELS, "segment": SEGMENTS, "device": ["ios", "android", "web"]}
    hit = {"web": 0.4, "app": 0.4, "marketplace": 0.85, "phone": 0.85}
    effects = [({"region": "East", "channel": channel}, lambda b, k=k: k * b) for channel, k in hit.items()]
    for seed in range(2):
        result = localise(leaf_table(dims, effects, noise=0.01, seed=seed), list(dims))
        assert found(result) == [{"region": "East"}]


def test_history_of_a_segment_that_swings_as_a_whole():
    # Every leaf of channel = phone jumps together from month to month (one small channel's promotions):
    # each leaf's own swing is modest next to the whole channel's, so the channel's history is what counts.
    rng = random.Random(5)
    regions = [f"r{i}" for i in range(12)]
    channels = ["web", "app", "shop", "phone"]
    months = 8
    swing = [1.0 + (0.5 if t % 2 else -0.3) for t in range(months)]
    rows, series = [], []
    for region in regions:
        for channel in channels:
            level = rng.uniform(50, 150) * (0.3 if channel == "phone" else 1.0)
            values = [level * (swing[t] if channel == "phone" else 1.0) * (1 + rng.gauss(0, 0.03))
                      for t in range(months)]
            if channel == "web" and region == "r3":
                values[-1] = values[-2] * 0.4
            rows.append({"region": region, "channel": channel, "baseline": values[-2], "current": values[-1]})
            series.append(values[:-2])
    table = pa.Table.from_pylist(rows)
    history = [pa.array([s[t] for s in series]) for t in range(months - 2)]
    assert {"channel": "phone"} in found(localise(table, ["region", "channel"]))
    assert found(localise(table, ["region", "channel"], history=history)) == [{"region": "r3", "channel": "web"}]


def _poisson(rng: random.Random, mean: float) -> float:
    # Knuth's method: the number of uniform draws whose product stays above e^-mean.
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return float(k)


def sparse_counts(seed: int, fall: float | None) -> pa.Table:
    """New customers per region × channel × segment: 0–20 a leaf, web bringing 40 % of them; with `fall`, web
    brings only that share of its usual number in the current period."""
    rng = random.Random(seed)
    share = {"app": 0.35, "web": 0.4, "marketplace": 0.2, "phone": 0.05}
    rows = []
    for region, r in zip(("North", "South", "East", "West", "Islands"), (0.3, 0.27, 0.22, 0.17, 0.04)):
        for channel, c in share.items():
            for segment, s in zip(("bargain", "regular", "vip"), (0.35, 0.5, 0.15)):
                mean = 220 * r * c * s
                factor = fall if fall is not None and channel == "web" else 1.0
                rows.append((region, channel, segment, _poisson(rng, mean), _poisson(rng, mean * factor)))
    return pa.table({k: [row[i] for row in rows]
                     for i, k in enumerate(("region", "channel", "segment", "baseline", "current"))})


def test_a_large_cause_among_sparse_counts():
    """A cause carrying 40 % of the leaves' volume, each leaf as noisy as the cause is large, drags the median
    leaf's change along; its counts' noise is Poisson's, not the rounding-ruled spread of their relative changes.
    At this size (web 88 -> 31 new customers) the cause is near the limit of what the search can tell from
    noise: most cases, not all, name it, and none names another segment (the localiser before found 0 of 8)."""
    answers = [found(localise(sparse_counts(seed, 0.35), ["region", "channel", "segment"])) for seed in range(8)]
    assert all(answer in ([], [{"channel": "web"}]) for answer in answers)
    assert answers.count([{"channel": "web"}]) >= 5


def test_sparse_counts_without_a_cause_give_nothing_mostly():
    """Pure Poisson noise over 60 sparse leaves: the search is at the 5 % level, so at most one of ten cases
    names an element."""
    answers = [found(localise(sparse_counts(100 + seed, None), ["region", "channel", "segment"])) for seed in range(10)]
    assert sum(1 for answer in answers if answer) <= 1
