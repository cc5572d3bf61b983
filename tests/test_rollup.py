"""The drill-down's one pass by every dimension, rolled up (`metrictree.rollup`): the same counts as a pass
of its own by the fewer dimensions, for every customer state and distinct count, with nulls and streaming."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import metrictree
from metrictree import drilling, periods, reading, rollup
from metrictree.evaluating import evaluate
from metrictree.pluginmanager import registry as default_registry

TREE = """
tree t "t"
grain month
source orders { time order_date dimensions channel, region, segment entity customer_id }
metric customers = count_distinct(orders.customer_id) where orders.status == "paid"
metric buyers = count_distinct(orders.customer_id)
metric active = active_customers(orders) where orders.status == "paid"
metric active_30 = active_customers(orders, window=45) where orders.status == "paid"
metric new = new_customers(orders) where orders.status == "paid"
metric returning = returning_customers(orders) where orders.status == "paid"
metric churned = churned_customers(orders) where orders.status == "paid"
metric retained = retained_customers(orders) where orders.status == "paid"
metric reactivated = reactivated_customers(orders, after=2) where orders.status == "paid"
metric repeat = repeat_customers(orders) where orders.status == "paid"
metric repeat_ever = repeat_customers(orders, min_purchases=3, over="ever") where orders.status == "paid"
metric lifetime = customer_lifetime(orders) where orders.status == "paid"
metric revenue = sum(orders.amount) where orders.status == "paid"
"""
COUNTS = ["customers", "buyers", "active", "active_30", "new", "returning", "churned", "retained", "reactivated",
          "repeat", "repeat_ever", "lifetime"]
DIMS = ["channel", "region", "segment"]


@pytest.fixture(scope="module")
def orders(orders_with_nulls):
    return orders_with_nulls  # tests/conftest.py


def _sorted(table: pa.Table, keys: list[str]) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in ["period", *keys]])


def _same(rolled: pa.Table, direct: pa.Table, keys: list[str], names: list[str]) -> None:
    rolled, direct = _sorted(rolled, keys), _sorted(direct, keys)
    assert rolled.num_rows == direct.num_rows
    for column in ["period", *keys]:
        assert rolled.column(column).to_pylist() == direct.column(column).to_pylist(), column
    for name in names:
        got = [None if v is None else float(v) for v in rolled.column(name).to_pylist()]
        want = [None if v is None else float(v) for v in direct.column(name).to_pylist()]
        assert got == want, name


@pytest.mark.parametrize("streamed", [False, True])
def test_rolled_up_counts_are_the_counts_of_a_pass_of_their_own(orders, streamed, monkeypatch):
    if streamed:
        monkeypatch.setattr(reading, "ROWS_PER_TABLE", 5000)
    tree = metrictree.loads(TREE)
    registry = default_registry()
    data = {"orders": orders}
    # Both ways of rolling up are taken: by a dimension each customer has one value of (segment: the
    # overall presence relabelled, its lookups shared) and by one they have several of (channel, region
    # with its nulls: the triples merged).
    ways = []
    real = rollup._by_entity

    def by_entity(presence, coarse, slices):
        found = real(presence, coarse, slices)
        ways.append(found is not None and slices > 1)
        return found

    monkeypatch.setattr(rollup, "_by_entity", by_entity)
    fine = rollup.fine_pass(tree, data, registry, DIMS, [*COUNTS, "revenue"], COUNTS, "month", {}, "2026-01",
                            "2026-10")
    assert fine is not None
    for size in range(len(DIMS)):
        for to in itertools.combinations(DIMS, size):
            direct = evaluate(tree, data, by=list(to), metrics=COUNTS, start="2026-01", end="2026-10",
                              registry=registry).table
            _same(fine.rolled(list(to), COUNTS), direct, list(to), COUNTS)
            # Only some periods (what the drill-down's checks read): the same counts there.
            within = [(periods.parse("2026-03", "month"), periods.parse("2026-04", "month")),
                      (periods.parse("2026-09", "month"),) * 2]
            labels = pa.array(["2026-03", "2026-04", "2026-09"])
            _same(fine.rolled(list(to), COUNTS, within), direct.filter(pc.is_in(direct.column("period"), labels)),
                  list(to), COUNTS)
    assert True in ways and False in ways


def test_the_pass_itself_is_the_evaluation_by_every_dimension(orders):
    tree = metrictree.loads(TREE)
    data = {"orders": orders}
    fine = rollup.fine_pass(tree, data, default_registry(), DIMS, [*COUNTS, "revenue"], COUNTS, "month", {},
                            "2026-01", "2026-10")
    direct = evaluate(tree, data, by=DIMS, metrics=[*COUNTS, "revenue"], start="2026-01", end="2026-10").table
    _same(fine.table, direct, DIMS, [*COUNTS, "revenue"])


def test_nothing_is_rolled_up_for_a_sql_engine(orders):
    duckdb = pytest.importorskip("duckdb")
    tree = metrictree.loads(TREE)
    con = duckdb.connect()
    relation = con.from_arrow(orders)
    assert rollup.fine_pass(tree, {"orders": relation}, default_registry(), DIMS, ["customers"], ["customers"],
                            "month", {}, "2026-01", "2026-10") is None


@pytest.mark.parametrize("metric", ["ltv", "frequency", "churn_rate"])
def test_explain_reads_the_rows_twice_and_says_the_same(metric, monkeypatch):
    """The history of the whole tree, then one pass by every dimension — no pass per dimension — and the
    same explanation as a pass per set of dimensions gives."""
    from pathlib import Path

    from metrictree.sample import sample_data

    tree = metrictree.load(Path(__file__).resolve().parents[1] / "trees" / "crm_ltv.tree")
    data = sample_data()
    calls = []
    real = drilling.evaluate

    def counted(*args, **kwargs):
        calls.append(kwargs.get("by"))
        return real(*args, **kwargs)

    monkeypatch.setattr(drilling, "evaluate", counted)
    monkeypatch.setattr(rollup, "evaluate", counted)
    after = tree.explain(data, metric, "2026-09", "2026-10", by=DIMS)
    rolled_up = list(calls)
    calls.clear()
    monkeypatch.setattr(rollup, "fine_pass", lambda *args, **kwargs: None)
    before = tree.explain(data, metric, "2026-09", "2026-10", by=DIMS)
    if metric == "frequency":
        # A distinct count alone: one pass over the compared periods for every check (not one per
        # dimension), then the history by the dimensions where it adds up, the paid orders riding in it.
        assert rolled_up[0] == DIMS and [DIMS, ["channel"], ["region"], ["segment"]] == calls[:4]
        assert len(rolled_up) == len(calls) - 4
    else:
        assert rolled_up == [DIMS] and len(calls) > 1  # churned reads every row: one pass serves all
    assert after.to_dict() == before.to_dict()


MIXED = """
tree m "m"
grain month
source orders { time order_date dimensions channel, region, segment entity customer_id }
metric refunders = count_distinct(orders.customer_id) where orders.status == "refunded"
metric customers = count_distinct(orders.customer_id) where orders.status == "paid"
metric churned = churned_customers(orders)
metric new = new_customers(orders) where orders.status == "refunded"
metric churn_rate = churned / customers[-1]
metric refund_share = refunders / customers
metric score = churn_rate + refund_share + new / customers
"""


@pytest.mark.parametrize("metric", ["churn_rate", "refund_share", "score"])
def test_counts_of_different_filters_roll_up_or_are_evaluated_and_say_the_same(metric, monkeypatch):
    from metrictree.sample import sample_data

    tree = metrictree.loads(MIXED)
    data = sample_data()
    after = tree.explain(data, metric, "2026-09", "2026-10", by=DIMS)
    monkeypatch.setattr(rollup, "fine_pass", lambda *args, **kwargs: None)
    before = tree.explain(data, metric, "2026-09", "2026-10", by=DIMS)
    assert after.to_dict() == before.to_dict()


def test_a_plugin_count_of_another_shape_is_evaluated_as_before(monkeypatch):
    """An entity aggregate that plans no presence (here a distinct count of the entity) keeps no triples: it is
    evaluated per set of dimensions, the rest still rolled up, and the explanation is the same."""
    import attrs

    from metrictree.explaining import explain
    from metrictree.functions import Aggregate, Partial
    from metrictree.sample import sample_data

    base = default_registry()
    buyers = Aggregate("distinct_buyers", lambda ctx, source: [Partial(ctx.entity, "count_distinct", 0)],
                       entity=True, check=lambda *types: None)
    registry = attrs.evolve(base, aggregates={**base.aggregates, "distinct_buyers": buyers})
    tree = metrictree.loads(MIXED.replace('count_distinct(orders.customer_id) where orders.status == "paid"',
                                          'distinct_buyers(orders) where orders.status == "paid"'), registry=registry)
    data = sample_data()
    calls = []
    real = drilling.evaluate
    monkeypatch.setattr(drilling, "evaluate", lambda *a, **k: calls.append(k.get("by")) or real(*a, **k))
    after = explain(tree, data, "churn_rate", "2026-09", "2026-10", by=DIMS, registry=registry)
    assert ["channel"] in calls  # the plugin's count checked by a pass of its own
    monkeypatch.setattr(rollup, "fine_pass", lambda *args, **kwargs: None)
    before = explain(tree, data, "churn_rate", "2026-09", "2026-10", by=DIMS, registry=registry)
    assert after.to_dict() == before.to_dict()


def test_the_totals_rolled_up_are_the_unsliced_evaluation(orders):
    """Every count rolled up to no dimension, handed to an unsliced evaluation as ``given``: the same table
    (formulas and time shifts over the counts included) as the evaluation counting them itself."""
    source = TREE + "metric rate = churned / customers[-1] + new / active\nmetric gain = revenue / buyers[-2]\n"
    tree = metrictree.loads(source)
    data = {"orders": orders}
    registry = default_registry()
    fine = rollup.fine_pass(tree, data, registry, DIMS, [*COUNTS, "revenue"], COUNTS, "month", {}, "2025-10",
                            "2026-10")
    assert set(fine.held) == set(COUNTS)
    names = [*COUNTS, "revenue", "rate", "gain"]
    direct = evaluate(tree, data, grain="month", start="2026-01", end="2026-10", metrics=names)
    given = evaluate(tree, data, grain="month", start="2026-01", end="2026-10", metrics=names,
                     given=fine.totals(COUNTS))
    assert given.table.equals(direct.table)
    assert given.covered == direct.covered and given.nulls == direct.nulls


@pytest.mark.parametrize("metric", ["churn_rate", "deep", "far"])
def test_counts_given_to_the_history_with_shifts_say_the_same(metric, monkeypatch):
    """A shift of a shift (deep: churn_rate six months back, itself reading customers[-1]) and a longer
    shift (far): the history's counts from the pass, and the same explanation as with its own."""
    from metrictree import explaining
    from metrictree.sample import sample_data

    source = MIXED + ('metric paid = count(orders) where orders.status == "paid"\n'
                      "metric deep = churn_rate[-6] + churn_rate + paid / customers\n"
                      "metric far = churned / customers[-8] + paid\n")
    tree = metrictree.loads(source)
    data = sample_data()
    real, given = explaining._one_read, []
    monkeypatch.setattr(explaining, "_one_read", lambda *a, **k: (r := real(*a, **k), given.append(r[1]))[0])
    once = tree.explain(data, metric, "2026-09", "2026-10", by=DIMS)
    assert set(given[0]) == ({"churned", "customers"} if metric != "churn_rate" else set())
    monkeypatch.setattr(explaining, "_one_read", lambda *args, **kwargs: ({}, {}, []))
    twice = tree.explain(data, metric, "2026-09", "2026-10", by=DIMS)
    assert once.to_dict() == twice.to_dict()


@pytest.mark.parametrize("metric", ["ltv", "churn_rate"])
def test_the_history_takes_its_customer_counts_from_the_pass(metric, monkeypatch):
    """explain makes the drill-down's pass by every dimension first and the history counts no customers of its
    own (one grouping of (customer, period) fewer); the explanation is the same as with two reads."""
    from pathlib import Path

    from metrictree import aggregating, explaining
    from metrictree.sample import sample_data

    # crm_ltv's orders part (crm_ltv itself has influence children, whose history is the whole data).
    tree = metrictree.load(Path(__file__).resolve().parents[1] / "bench" / "crm.tree")
    data = {"orders": sample_data()["orders"]}
    seen = []
    real = aggregating.aggregate_stream

    def recorded(tree_, source, pieces, metrics, grain, by, *args, **kwargs):
        seen.append((tuple(by), [m.name for m in metrics]))
        return real(tree_, source, pieces, metrics, grain, by, *args, **kwargs)

    monkeypatch.setattr(aggregating, "aggregate_stream", recorded)
    once = tree.explain(data, metric, "2026-09", "2026-10", by=DIMS)
    unsliced = [names for by, names in seen if not by]
    sliced = [names for by, names in seen if by]
    assert len(sliced) == 1  # the pass made first serves the drill-down too
    if metric == "ltv":
        assert unsliced and not any({"customers", "churned"} & set(names) for names in unsliced)
    else:
        # Every base metric of churn_rate is a customer count: the history still reads the rows (for its
        # periods), and counts them itself.
        assert unsliced == [["customers", "churned"]]
    monkeypatch.setattr(explaining, "_one_read", lambda *args, **kwargs: ({}, {}, []))
    twice = tree.explain(data, metric, "2026-09", "2026-10", by=DIMS)
    assert once.to_dict() == twice.to_dict()


@pytest.mark.parametrize("within", [[("2026-09", "2026-10")], [("2026-05", "2026-05")], [("2025-10", "2025-11")],
                                    [("2026-02", "2026-02"), ("2026-07", "2026-08")]])
def test_counts_that_read_a_period_back_roll_up_from_the_triples_of_the_periods_asked(orders, monkeypatch, within):
    """A state whose count reads a few periods back (`Partial.reach`: churned and retained one, active and
    repeat by period none) is rolled up by a dimension customers move across (channel) from the triples of the
    periods asked for and the reach before them only: the same counts as from every triple — one month, two
    ranges, the data's first month (nothing before it) — and a state with no reach (new) from every triple."""
    tree = metrictree.loads(TREE)
    data = {"orders": orders}
    registry = default_registry()
    kept = []
    real = rollup._only
    monkeypatch.setattr(rollup, "_only", lambda presence, offsets: (kept.append(offsets), real(presence, offsets))[1])
    fine = rollup.fine_pass(tree, data, registry, DIMS, COUNTS, COUNTS, "month", {}, "2025-10", "2026-10")
    assert {name: fine.held[name].reach for name in ("customers", "churned", "retained", "active", "repeat", "new",
                                                     "active_30", "repeat_ever")} == {
        "customers": 0, "churned": 1, "retained": 1, "active": 0, "repeat": 0, "new": None, "active_30": None,
        "repeat_ever": None}
    ranges = [(periods.parse(a, "month"), periods.parse(b, "month")) for a, b in within]
    labels = pa.array(sorted({periods.label(p, "month") for a, b in ranges for p in range(a, b + 1)}))
    direct = evaluate(tree, data, by=["channel"], metrics=COUNTS, start="2025-10", end="2026-10",
                      registry=registry).table
    for names in (["customers", "churned", "retained"], ["active", "repeat"], ["churned", "new"], ["customers"]):
        kept.clear()
        _same(fine.rolled(["channel"], names, ranges), direct.filter(pc.is_in(direct.column("period"), labels)),
              ["channel"], names)
        reach = 0 if names in (["active", "repeat"], ["customers"]) else 1
        # One merge of the kept triples for every count over the same presence (a distinct count alone counts
        # its kept triples); none with a count that reads every period back (new).
        expected = [(a - reach - fine.base, b - fine.base) for a, b in ranges]
        assert kept == ([] if "new" in names else [expected])


@pytest.mark.parametrize("dense", [True, False])
def test_each_triples_coarser_slice_by_a_table_or_by_hashing(monkeypatch, dense):
    """A triple's coarser slice, looked up in a table indexed by slice code or by hashing: the same, and null
    for a code the slice map does not show."""
    from metrictree.presence import Presence

    if not dense:
        monkeypatch.setattr(rollup, "_DENSE_SLICES", -(10 ** 9))
    slices = pa.array([0, 5, 9, 3, 5, 7, 0], pa.int64())
    presence = Presence(pa.array(range(7), pa.int64()), slices, pa.array([0] * 7, pa.int64()),
                        pa.array([1] * 7, pa.int64()), None, 1, 7, 10)
    codes, coarse = pa.array([9, 0, 5, 3], pa.int64()), pa.array([2, 1, 0, 1], pa.int64())
    assert rollup._coarser(presence, codes, coarse).to_pylist() == [1, 0, 2, 1, 0, None, 1]


@pytest.mark.parametrize("within", [[("2026-09", "2026-10")], [("2025-10", "2025-10")],
                                    [("2026-02", "2026-02"), ("2026-07", "2026-08")]])
def test_states_deferred_to_when_read_are_those_of_the_pass(orders, within):
    """A state that reads a few periods back (churned, retained) is not counted by every dimension in the pass
    but when read: every period (`Fine.table`) or only some (`Fine.checked`, from the triples of those periods
    and the one before) — exactly the table of a pass that counts them all at once."""
    tree = metrictree.loads(TREE)
    data = {"orders": orders}
    registry = default_registry()
    names = [*COUNTS, "revenue"]
    eager = rollup.fine_pass(tree, data, registry, DIMS, names, COUNTS, "month", {}, "2025-10", "2026-10",
                             defer=False)
    fine = rollup.fine_pass(tree, data, registry, DIMS, names, COUNTS, "month", {}, "2025-10", "2026-10")
    assert eager.deferred == () and set(fine.deferred) == {"churned", "retained"}
    assert not set(fine.deferred) & set(fine.raw.column_names)
    assert fine.reading(["revenue", "customers"]) is fine.raw
    ranges = [(periods.parse(a, "month"), periods.parse(b, "month")) for a, b in within]
    labels = pa.array(sorted({periods.label(p, "month") for a, b in ranges for p in range(a, b + 1)}))
    assert fine.checked(ranges).equals(eager.table.filter(pc.is_in(eager.table.column("period"), labels)))
    assert fine.table.equals(eager.table)
    assert fine.reading(["churned"]).equals(eager.table)


@pytest.mark.parametrize("metric", ["churn_rate", "retention"])
def test_the_explanation_is_the_same_with_states_counted_when_read(orders, metric, monkeypatch):
    from metrictree.explaining import explain

    tree = metrictree.loads(TREE + "metric churn_rate = churned / customers[-1]\n"
                                   "metric retention = retained / active[-1]\n")
    data = {"orders": orders}
    registry = default_registry()
    after = explain(tree, data, metric, "2026-09", "2026-10", by=DIMS, registry=registry)
    real = rollup.fine_pass
    monkeypatch.setattr(rollup, "fine_pass", lambda *args, **kwargs: real(*args, **{**kwargs, "defer": False}))
    before = explain(tree, data, metric, "2026-09", "2026-10", by=DIMS, registry=registry)
    assert after.to_dict() == before.to_dict()
