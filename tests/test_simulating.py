"""What-if scenarios and sensitivity: exact propagation through formulas, never through influence links."""

import datetime as dt
import json

import pyarrow as pa
import pytest
from click.testing import CliRunner

import metrictree
from metrictree.cli import main
from metrictree.errors import UsageError
from metrictree.simulating import parse_change

TREE = '''
tree shop
grain month
source orders { time day dimensions region }
param margin = 50%
metric revenue = sum(orders.amount) { unit RUB }
metric orders_n = count(orders)
metric aov = revenue / orders_n { unit RUB }
metric profit = revenue * margin { unit RUB level strategic }
metric open_rate = sum(orders.opened) / sum(orders.sent) { unit % }
metric growth = revenue / revenue[-1]
aov <~ open_rate
target aov >= 30 by 2026-12
'''


def data():
    days = [dt.date(2026, 1, 5), dt.date(2026, 1, 9), dt.date(2026, 2, 3), dt.date(2026, 2, 4)]
    return {"orders": pa.table({"day": pa.array(days, pa.date32()), "region": ["N", "S", "N", "S"],
                                "amount": [10.0, 30.0, 20.0, 30.0], "opened": [1, 1, 1, 0], "sent": [2, 2, 2, 2]})}


@pytest.mark.parametrize("text, kind, amount", [
    ("+10%", "relative", 0.10), ("-5%", "relative", -0.05), ("+2pp", "add", 0.02), ("-150", "add", -150.0),
    ("2600", "set", 2600.0), ("30%", "set", 0.30), (2600, "set", 2600.0)])
def test_changes_read_as_people_write_them(text, kind, amount):
    change = parse_change("m", text)
    assert (change.kind, change.amount) == (kind, pytest.approx(amount))


@pytest.mark.parametrize("text", ["ten", "+", "2pp", "--5%", True])
def test_unreadable_changes_are_errors(text):
    with pytest.raises(UsageError):
        parse_change("m", text)


def test_a_change_propagates_exactly_up_the_formulas():
    tree = metrictree.loads(TREE)
    scenario = tree.simulate(data(), {"revenue": "+10%"}, period="2026-02")
    effects = {e.metric: e for e in scenario.effects}
    assert scenario.period == "2026-02"
    assert [e.metric for e in scenario.effects][0] == "revenue" and effects["revenue"].changed
    assert effects["revenue"].after == pytest.approx(55.0)
    assert effects["aov"].after == pytest.approx(27.5) and effects["aov"].before == pytest.approx(25.0)
    assert effects["profit"].after == pytest.approx(27.5)
    assert effects["growth"].after == pytest.approx(55.0 / 40.0)  # last period's revenue stays as observed
    assert "orders_n" not in effects and "open_rate" not in effects
    assert any("revenue[-1]" in note for note in scenario.notes)


def test_setting_a_derived_metric_and_the_effect_on_targets():
    tree = metrictree.loads(TREE)
    scenario = tree.simulate(data(), {"aov": 31}, period="2026-02")
    (target,) = scenario.targets
    assert (target.met_before, target.met_after) == (False, True)
    assert [e.metric for e in scenario.effects] == ["aov"]


def test_influence_links_are_not_followed_and_say_so():
    tree = metrictree.loads(TREE)
    scenario = tree.simulate(data(), {"open_rate": "+10pp"})
    assert [e.metric for e in scenario.effects] == ["open_rate"]
    assert "Not propagated, influence only: aov." in scenario.notes
    assert json.loads(json.dumps(scenario.to_dict()))["changes"][0]["kind"] == "add"


def test_mistakes():
    tree = metrictree.loads(TREE)
    with pytest.raises(UsageError, match="unknown metric 'aovv'"):
        tree.simulate(data(), {"aovv": 1})
    with pytest.raises(UsageError, match="no change to simulate"):
        tree.simulate(data(), {})
    with pytest.raises(metrictree.DataError, match="growth' has no value in 2026-01"):
        tree.simulate(data(), {"growth": "+1%"}, period="2026-01")


def test_sensitivity_ranks_drivers_by_elasticity():
    tree = metrictree.loads(TREE)
    table = tree.sensitivity(data(), "aov", period="2026-02")
    rows = {r["driver"]: r for r in table.to_pylist()}
    assert rows["revenue"]["elasticity"] == pytest.approx(1.0)
    assert rows["orders_n"]["elasticity"] == pytest.approx((1 / 1.01 - 1) / 0.01)
    profit = {r["driver"]: r for r in tree.sensitivity(data(), "profit").to_pylist()}
    assert profit["margin"]["kind"] == "param" and profit["margin"]["elasticity"] == pytest.approx(1.0)
    assert table.column_names == ["driver", "label", "kind", "value", "effect", "elasticity"]


def test_cli_whatif(tmp_path):
    import pyarrow.parquet as pq

    tree = tmp_path / "shop.tree"
    tree.write_text(TREE, "utf-8")
    pq.write_table(data()["orders"], tmp_path / "orders.parquet")
    base = ["whatif", str(tree), "--data", f"orders={tmp_path / 'orders.parquet'}"]
    result = CliRunner().invoke(main, [*base, "--set", "revenue=+10%", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["effects"][1]["metric"] == "aov"
    text = CliRunner().invoke(main, [*base, "--set", "revenue=+10%"])
    assert "What if revenue +10%" in text.output and "influence links (<~) are not" in text.output
    ranked = CliRunner().invoke(main, [*base, "--sensitivity", "aov"])
    assert ranked.exit_code == 0 and "What moves aov most?" in ranked.output
    assert CliRunner().invoke(main, base).exit_code == 2
    bad = CliRunner().invoke(main, [*base, "--set", "revenue=lots"])
    assert bad.exit_code == 1 and "cannot read the change 'lots'" in bad.output
