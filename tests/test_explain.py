"""tree.explain: exact contributions down the tree, influence beside the sum, segments and root causes."""

import datetime as dt
import json
import math
import random

import pyarrow as pa
import pytest

import metrictree
from metrictree.errors import DataError, UsageError

TREE = '''
tree shop
grain month
source orders {
    time day
    dimensions region, channel
}
source emails {
    time day
    dimensions region
}
metric revenue = sum(orders.amount) { unit RUB }
metric orders_n = count(orders)
metric aov = revenue / orders_n { unit RUB }
metric opens = sum(emails.opened)
metric sent = sum(emails.sent)
metric open_rate = opens / sent { unit % }
metric bonus = max(revenue - 1000, 0) { unit RUB }
metric score = aov * 2 + bonus { unit RUB level strategic }
aov <~ open_rate
'''


def shop_data(seed: int = 7):
    """Two months; in month 2 the app channel in North sells at half price. Everything else steady."""
    rng = random.Random(seed)
    rows = []
    for month in (1, 2):
        for region in ("North", "South", "East"):
            for channel in ("app", "web"):
                for i in range(40):
                    price = 100.0 + rng.random()
                    if month == 2 and region == "North" and channel == "app":
                        price /= 2
                    rows.append((dt.date(2026, month, 1 + i % 27), region, channel, price))
    orders = pa.table({"day": pa.array([r[0] for r in rows], pa.date32()), "region": [r[1] for r in rows],
                       "channel": [r[2] for r in rows], "amount": [r[3] for r in rows]})
    emails = pa.table({"day": pa.array([dt.date(2026, m, 3) for m in (1, 2) for _ in range(3)], pa.date32()),
                       "region": ["North", "South", "East"] * 2, "opened": [30, 25, 20, 10, 24, 21],
                       "sent": [100] * 6})
    return {"orders": orders, "emails": emails}


@pytest.fixture(scope="module")
def explanation():
    tree = metrictree.loads(TREE, "shop.tree")
    return tree.explain(shop_data(), "score", "2026-01", "2026-02", by=["region", "channel"])


def formula_leaves(driver):
    if driver.kind == "influence":
        return []
    if not [d for d in driver.drivers if d.kind != "influence"]:
        return [driver]
    return [leaf for child in driver.drivers for leaf in formula_leaves(child)]


def test_contributions_add_up_at_every_node(explanation):
    e = explanation
    assert e.change == pytest.approx(e.current.value - e.baseline.value)
    assert sum(d.contribution for d in e.drivers if d.kind != "influence") == pytest.approx(e.change, rel=1e-12)
    for top in e.drivers:
        for node in top.walk():
            children = [d for d in node.drivers if d.kind != "influence"]
            if children and node.contribution is not None:
                assert sum(c.contribution for c in children) == pytest.approx(node.contribution, rel=1e-9, abs=1e-9)
    leaves = [leaf for d in e.drivers for leaf in formula_leaves(d)]
    assert abs(sum(leaf.contribution for leaf in leaves) - e.change) <= 1e-9 * abs(e.change)
    assert abs(e.residual) <= 1e-9 * abs(e.change)


def test_methods_per_operator(explanation):
    by_name = {d.metric: d for top in explanation.drivers for d in top.walk()}
    assert explanation.method == "additive"  # aov * 2 + bonus
    assert by_name["aov"].method == "lmdi"
    assert by_name["bonus"].method == "shapley"
    assert by_name["revenue"].method == "leaf"


def test_influence_children_are_beside_the_sum(explanation):
    aov = next(d for top in explanation.drivers for d in top.walk() if d.metric == "aov")
    influence = [d for d in aov.drivers if d.kind == "influence"]
    assert [d.metric for d in influence] == ["open_rate"]
    (open_rate,) = influence
    assert open_rate.contribution is None and open_rate.share is None
    assert open_rate.baseline == pytest.approx(75 / 300) and open_rate.current == pytest.approx(55 / 300)
    assert open_rate.association.periods == 1 and open_rate.association.elasticity is None


def test_root_causes_find_the_planted_segment(explanation):
    first = explanation.root_causes[0]
    assert first.metric == "revenue"
    assert dict(first.where) == {"region": "North", "channel": "app"}
    assert first.change == pytest.approx(first.current - first.baseline)
    assert first.contribution < 0
    assert all(len(rc.where) >= 1 for rc in explanation.root_causes)


def test_ratio_segments_split_into_mix_and_rate_exactly():
    tree = metrictree.loads(TREE, "shop.tree")
    e = tree.explain(shop_data(), "aov", "2026-01", "2026-02", by=["region", "channel"])
    regions = [seg for seg in e.segments if set(seg.where) == {"region"}]
    assert len(regions) == 3 and all(seg.mix is not None and seg.rate is not None for seg in regions)
    north = next(seg for seg in regions if seg.where["region"] == "North")
    assert north.rate < 0 and abs(north.rate) > 10 * abs(north.mix)  # North's own order value fell
    # Over all slices of one dimension, mix + rate add up to the ratio's change exactly.
    assert sum(seg.mix + seg.rate for seg in regions) == pytest.approx(e.change, rel=1e-9)
    assert sum(seg.contribution for seg in regions) == pytest.approx(e.change, rel=1e-9)


def test_outputs_json_markdown_and_arrow(explanation):
    d = explanation.to_dict()
    json.dumps(d, allow_nan=False)
    assert {"metric", "baseline", "current", "change", "drivers", "root_causes"} <= set(d)
    assert d["baseline"]["period"] == "2026-01" and d["current"]["period"] == "2026-02"
    driver = d["drivers"][0]
    assert {"metric", "baseline", "current", "change", "contribution", "method", "drivers", "segments"} <= set(driver)
    assert {"metric", "where", "contribution"} <= set(d["root_causes"][0])
    md = explanation.to_markdown()
    assert md.startswith("# Why did score move? (2026-01 → 2026-02)")
    assert "| region = North & channel = app |" in md.replace("`", "")
    table = explanation.contributions()
    assert table.column_names[:4] == ["metric", "parent", "depth", "kind"]
    root = table.filter(pa.compute.equal(table.column("kind"), "root")).to_pylist()[0]
    assert root["contribution"] == pytest.approx(explanation.change)
    summary = explanation.summary()
    assert summary[0].startswith("score fell")


def test_ranges_compare_with_the_mean_per_period():
    tree = metrictree.loads(TREE, "shop.tree")
    data = shop_data()
    e = tree.explain(data, "revenue", "2026-01..2026-01", "2026-02", by=[])
    plain = tree.explain(data, "revenue", "2026-01", "2026-02", by=[])
    assert e.change == pytest.approx(plain.change)
    assert e.baseline.period == "2026-01"


def test_default_periods_are_the_last_two():
    tree = metrictree.loads(TREE, "shop.tree")
    e = tree.explain(shop_data(), "revenue", by=[])
    assert (e.baseline.period, e.current.period) == ("2026-01", "2026-02")


def test_mistakes_are_clear_errors():
    tree = metrictree.loads(TREE, "shop.tree")
    data = shop_data()
    with pytest.raises(UsageError, match="unknown metric 'revnue'"):
        tree.explain(data, "revnue")
    with pytest.raises(UsageError, match="unknown dimension 'regoin'"):
        tree.explain(data, "revenue", by=["regoin"])
    with pytest.raises(DataError, match="the baseline period 2025-06 has no data"):
        tree.explain(data, "revenue", "2025-06", "2026-02")
    with pytest.raises(UsageError, match="not a period"):
        tree.explain(data, "revenue", "last month", "2026-02")
    zero = metrictree.loads(TREE + "metric ratio = revenue / (orders_n - orders_n)\n", "shop.tree")
    with pytest.raises(DataError, match="ratio has no value in 2026-01: division by zero"):
        zero.explain(data, "ratio", "2026-01", "2026-02")


def test_time_shifts_are_inputs():
    tree = metrictree.loads(TREE + "metric growth = revenue / revenue[-1] { level strategic }\n", "shop.tree")
    data = shop_data()
    more = {"orders": pa.concat_tables([data["orders"], data["orders"].set_column(
        0, "day", pa.array([dt.date(2026, 3, 1)] * data["orders"].num_rows, pa.date32()))]), "emails": data["emails"]}
    e = tree.explain(more, "growth", "2026-02", "2026-03", by=[])
    names = [d.metric for d in e.drivers]
    assert names == ["revenue", "revenue[-1]"]
    assert sum(d.contribution for d in e.drivers) == pytest.approx(e.change)
    assert all(math.isfinite(d.contribution) for d in e.drivers)


def test_cli_explain_in_every_format(tmp_path):
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from metrictree.cli import main

    tree = tmp_path / "shop.tree"
    tree.write_text(TREE, "utf-8")
    data = shop_data()
    args = ["explain", str(tree), "--metric", "revenue", "--baseline", "2026-01", "--current", "2026-02"]
    for name, table in data.items():
        pq.write_table(table, tmp_path / f"{name}.parquet")
        args += ["--data", f"{name}={tmp_path / f'{name}.parquet'}"]
    runner = CliRunner()
    result = runner.invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["root_causes"][0]["where"] == {"region": "North", "channel": "app"}
    text = runner.invoke(main, args)
    assert text.exit_code == 0
    assert "revenue fell" in text.output and "Root causes" in text.output and "North & channel = app" in text.output
    md = runner.invoke(main, [*args, "--format", "markdown"])
    assert md.output.startswith("# Why did revenue move?")
    bad = runner.invoke(main, [*args, "--by", "regoin"])
    assert bad.exit_code == 1 and "unknown dimension 'regoin'" in bad.output
    default = runner.invoke(main, args[:2] + args[4:])  # no --metric: the strategic top metric
    assert default.exit_code == 0 and default.output.startswith("score (score)")
