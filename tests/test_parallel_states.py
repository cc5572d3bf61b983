"""Customer states counted on several threads give what one thread gives (`aggregating._reduced`).

The reduces over one presence (churned, new, reactivated …) run a few at once, and the lookups they share
(`Presence._cached`) are computed once, by whichever thread asks first. The numbers must not depend on that:
every state of a tree is evaluated with Arrow's thread count set to one (one reduce after another) and to
more (several at once), on data with null customers, times and slices, customers seen in one slice or one
stretch of periods only, and a stream of pieces of uneven sizes.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import random
import textwrap
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import metrictree
from metrictree import aggregating, pluginmanager, presence, reading

from test_presence import TREE  # every customer state, a filter on some of them


def orders(n: int = 5000, seed: int = 3) -> pa.Table:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.3:
            # Customers of the first months only, in one region: they churn and never come back.
            customer, region, base = f"early{rng.randrange(80):03d}", "north", 0
        elif kind < 0.5:
            # Customers of the last months only, on one channel.
            customer, region, base = f"late{rng.randrange(80):04d}", rng.choice(["south", None]), 250
        else:
            customer, region, base = f"c{rng.randrange(300):07d}", rng.choice(["north", "south", None]), \
                rng.choice([0, 60, 150, 250])
        rows.append({
            "day": None if rng.random() < 0.01 else dt.date(2024, 1, 1) + dt.timedelta(days=base + rng.randrange(90)),
            "region": region,
            "channel": "shop" if customer.startswith("late") else rng.choice(["web", "app", None]),
            "customer_id": None if rng.random() < 0.05 else customer,
            "status": rng.choice(["paid", "paid", "refunded"]),
        })
    rows.sort(key=lambda r: (r["day"] is None, r["day"] or dt.date.min))
    return pa.Table.from_pylist(rows, schema=pa.schema([("day", pa.date32()), ("region", pa.string()),
                                                        ("channel", pa.string()), ("customer_id", pa.string()),
                                                        ("status", pa.string())]))


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return orders()


def evaluated(source, by: list[str], threads: int, monkeypatch) -> list[dict]:
    monkeypatch.setattr(aggregating.pa, "cpu_count", lambda: threads)
    return TREE.evaluate({"orders": source}, by=by).to_pylist()


@pytest.mark.parametrize("by", [[], ["region"], ["region", "channel"]], ids=["unsliced", "region", "two"])
@pytest.mark.parametrize("threads", [2, 3, 16])
def test_states_on_several_threads_are_those_of_one(table, monkeypatch, by, threads):
    one = evaluated(table, by, 1, monkeypatch)
    assert evaluated(table, by, threads, monkeypatch) == one
    assert any(r["churned"] for r in one) and any(r["back"] for r in one) and any(r["new"] for r in one)


@pytest.mark.parametrize("row_group_size", [333, 1700], ids=["many-pieces", "uneven-pieces"])
def test_a_stream_of_uneven_pieces_gives_the_states_of_one_thread(table, tmp_path, monkeypatch, row_group_size):
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=row_group_size)
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 1000)  # pieces of 1000, 1700 … rows, and a short last one
    one = evaluated(str(path), ["region"], 1, monkeypatch)
    assert evaluated(str(path), ["region"], 2, monkeypatch) == one
    assert one == evaluated(table, ["region"], 1, monkeypatch)  # as one table


def test_the_reduces_do_run_on_several_threads(table, monkeypatch):
    # Each thread's first count waits for the other's: with two threads both pass at once, whatever their
    # speed; run one after the other, the first would wait in vain (BrokenBarrierError).
    names, meet = set(), threading.Barrier(2, timeout=30)
    count = presence.Presence.count

    def spy(self, *args, **kwargs):
        name = threading.current_thread().name
        if meet is not None and name not in names:
            names.add(name)
            meet.wait()
        names.add(name)
        return count(self, *args, **kwargs)

    monkeypatch.setattr(presence.Presence, "count", spy)
    evaluated(table, [], 2, monkeypatch)
    assert len({n for n in names if n.startswith("metrictree-reduce")}) == 2
    names.clear()
    meet = None
    evaluated(table, [], 1, monkeypatch)
    assert names == {threading.main_thread().name}


def test_a_shared_lookup_is_computed_once(table, monkeypatch):
    built = []
    first = presence.Presence._first_period

    def spy(self):
        built.append(threading.current_thread().name)
        time.sleep(0.05)  # slow, so that the other threads ask for it meanwhile
        return first(self)

    monkeypatch.setattr(presence.Presence, "_first_period", spy)
    evaluated(table, [], 4, monkeypatch)
    # new, returning, reactivated (overall), lifetime and repeat ever ask for it: once per presence (the rows
    # kept by each filter: all, paid), once more for the overall presence of reactivated and repeat.
    once = list(built)
    built.clear()
    evaluated(table, [], 1, monkeypatch)
    assert len(once) == len(built)


@pytest.fixture
def merged_on(monkeypatch):
    """The name of the thread each piece's distinct pairs are merged on (`_StreamState._held`), in order."""
    where = []
    held = aggregating._StreamState._held

    def spy(self, keys, found, complete_before):
        where.append(threading.current_thread().name)
        return held(self, keys, found, complete_before)

    monkeypatch.setattr(aggregating._StreamState, "_held", spy)
    return where


def test_pieces_pairs_are_merged_on_a_thread_of_their_own_in_order(table, tmp_path, monkeypatch, merged_on):
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=500)
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 1000)
    apart = evaluated(str(path), ["channel"], 2, monkeypatch)
    assert len(merged_on) >= 5 and all(n.startswith("metrictree-pairs") for n in merged_on)
    merged_on.clear()
    assert evaluated(str(path), ["channel"], 1, monkeypatch) == apart
    assert merged_on and all(n == threading.main_thread().name for n in merged_on)


def test_an_error_while_merging_a_pieces_pairs_is_raised(table, tmp_path, monkeypatch):
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=500)
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 1000)

    def broken(self, name, values):
        raise pa.ArrowMemoryError("out of memory")

    monkeypatch.setattr(aggregating._StreamState, "_coded", broken)
    with pytest.raises(pa.ArrowMemoryError):
        evaluated(str(path), [], 2, monkeypatch)
    assert not [t for t in threading.enumerate() if t.name.startswith("metrictree-pairs")]  # its thread is gone


SETTING = contextvars.ContextVar("setting", default="unset")


class ContextReader:
    """A customer state whose reduce reads a context variable of the caller (as a plugin's settings may)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @metrictree.hookimpl
    def metrictree_functions(self, register):
        def plan(ctx, source):
            def reduce(p):
                self.seen.append((SETTING.get(), threading.current_thread().name))
                return p.count()
            return [metrictree.Partial(ctx.entity, "presence", 0, reduce=reduce)]

        for name in ("seen_a", "seen_b", "seen_c"):
            register(metrictree.Aggregate(name, plan, entity=True, check=None))


READER = ContextReader()  # module-level: the plugin registry caches by id()


def test_reduces_on_threads_see_the_callers_context(table, monkeypatch):
    name = pluginmanager.register(READER)
    try:
        tree = metrictree.loads(textwrap.dedent("""
            tree c "context"
            grain month
            source orders { time day entity customer_id }
            metric a = seen_a(orders)
            metric b = seen_b(orders)
            metric c = seen_c(orders)
            metric churned = churned_customers(orders)
        """))
        monkeypatch.setattr(aggregating.pa, "cpu_count", lambda: 2)
        token = SETTING.set("the caller's")
        try:
            result = tree.evaluate({"orders": table}).to_pylist()
        finally:
            SETTING.reset(token)
    finally:
        pluginmanager.unregister(name=name)
    assert {s for s, _ in READER.seen} == {"the caller's"}
    assert any(n.startswith("metrictree-reduce") for _, n in READER.seen)
    assert result[1]["a"] == result[1]["b"] == result[1]["c"] > 0


def test_plain_distinct_counts_are_merged_in_the_callers_thread(table, tmp_path, monkeypatch, merged_on):
    # No customer state: nothing to code on one core, and merging beside the next piece would hold both.
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=500)
    monkeypatch.setattr(reading, "ROWS_PER_TABLE", 1000)
    tree = metrictree.loads(textwrap.dedent("""
        tree d "distinct only"
        grain month
        source orders { time day dimensions region entity customer_id }
        metric customers = count_distinct(orders.customer_id)
        metric paying = count_distinct(orders.customer_id) where orders.status == "paid"
    """))
    monkeypatch.setattr(aggregating.pa, "cpu_count", lambda: 2)
    streamed = tree.evaluate({"orders": str(path)}, by=["region"]).to_pylist()
    assert len(merged_on) >= 5 and set(merged_on) == {threading.main_thread().name}
    assert streamed == tree.evaluate({"orders": table}, by=["region"]).to_pylist()
