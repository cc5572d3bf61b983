"""KPI status: targets against their plan (every state), checkpoints, slices, alerts, params, the CLI.

The data is hand-made, six months of 2026 with round numbers, so every expectation is
computed by hand in the comments:

    month                 Jan   Feb   Mar   Apr   May   Jun
    open rate (all)      0.20  0.22  0.24  0.25  0.27  0.28   (100 delivered a month)
    open rate (new)      0.10  0.14  0.18  0.20  0.24  0.26   (50 delivered)
    open rate (regular)  0.30  0.30  0.30  0.30  0.30  0.30   (50 delivered)
    revenue               100   120    90   100   110   130
    ltv = revenue × 50 %   50    60    45    50    55    65

A "vip" segment has one row in January with nothing delivered.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import metrictree
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from metrictree import rules
from metrictree import syntax as s
from metrictree.cli import main
from metrictree.errors import DataError, UsageError
from metrictree.formulas import as_arrow_filter

ROOT = Path(__file__).resolve().parents[1]

BASE = """\
tree mail "Mailings and orders"
grain month
param margin = 50%
source emails { time sent_at dimensions segment, region }
source orders { time order_date dimensions region }
metric delivered = sum(emails.delivered)
metric opens     = sum(emails.opened)
metric open_rate = opens / delivered { label "Open rate" unit % level operational }
metric revenue   = sum(orders.amount) { unit RUB }
metric ltv       = revenue * margin { label "LTV" unit RUB level strategic }
"""

NEW_OPENS = [5, 7, 9, 10, 12, 13]
REVENUE = [100.0, 120.0, 90.0, 100.0, 110.0, 130.0]


def data() -> dict[str, pa.Table]:
    rows = []
    for month, new in enumerate(NEW_OPENS, 1):
        rows.append((dt.date(2026, month, 5), "new", "North", 50, new))
        rows.append((dt.date(2026, month, 6), "regular", "South", 50, 15))
    rows.append((dt.date(2026, 1, 7), "vip", "North", 0, 0))
    emails = pa.table({"sent_at": pa.array([r[0] for r in rows], pa.date32()), "segment": [r[1] for r in rows],
                       "region": [r[2] for r in rows], "delivered": [r[3] for r in rows],
                       "opened": [r[4] for r in rows]})
    orders = pa.table({"order_date": pa.array([dt.date(2026, m, 10) for m in range(1, 7)], pa.date32()),
                       "region": ["North"] * 6, "amount": REVENUE})
    return {"emails": emails, "orders": orders}


def status(rules_text: str, at: str | None = None, params=None) -> rules.Status:
    tree = metrictree.loads(BASE + rules_text)
    return tree.status(data(), at=at, params=params)


def one(rules_text: str, at: str | None = None, params=None) -> rules.TargetStatus:
    found = status(rules_text, at, params)
    assert len(found.targets) == 1
    return found.targets[0]


approx = pytest.approx


# --------------------------------------------------------------------------- target states


def test_on_track_with_the_linear_plan_gap_progress_and_pace():
    # Start Jan 0.20, goal 0.30 in Nov: the plan rises 0.01 a month, 0.25 in Jun; the rate is 0.28.
    t = one("target open_rate >= 30% by 2026-11 from 2026-01")
    assert t.state == rules.ON_TRACK and t.at == "2026-06"
    assert (t.start_period, t.start_value, t.current) == ("2026-01", approx(0.20), approx(0.28))
    assert t.planned == approx(0.25) and t.on_track is True and t.met is False
    assert t.gap == approx(0.02) and t.relative_gap == approx(0.02 / 0.28)
    assert t.progress == approx(0.8)
    assert t.deadline_period == "2026-11" and t.periods_left == 5
    assert t.required_pace == approx(0.02 / 5)


def test_off_track_below_the_plan():
    # Goal 0.40 in Nov from 0.20 in Jan: 0.02 a month, 0.26 planned in Apr, 0.25 reached.
    t = one("target open_rate >= 40% by 2026-11 from 2026-01", at="2026-04")
    assert t.state == rules.OFF_TRACK and t.on_track is False
    assert t.planned == approx(0.26) and t.current == approx(0.25)
    assert t.periods_left == 7 and t.required_pace == approx(0.15 / 7)


def test_met_when_the_comparison_holds_now():
    t = one("target open_rate >= 25% by 2026-12")
    assert t.state == rules.MET and t.met is True and t.required_pace is None
    assert t.gap == approx(-0.03)


def test_a_target_downwards_is_on_track_below_its_plan():
    # Revenue 100 in Jan to at most 50 in Jun: plan 80 in Mar; 90 is above it, so off track; 45 would be fine.
    t = one("target revenue <= 50 by 2026-06 from 2026-01", at="2026-03")
    assert t.planned == approx(80.0) and t.current == approx(90.0)
    assert t.state == rules.OFF_TRACK and t.required_pace == approx(-40.0 / 3)
    t = one("target revenue <= 95 by 2026-06 from 2026-02", at="2026-03")
    assert t.state == rules.MET


def test_a_target_met_at_its_start_is_one_to_hold():
    # Revenue was 120 in Feb, above the goal of 100: the plan is the goal itself, there is no way to go.
    held = one("target revenue >= 100 by 2026-12 from 2026-02", at="2026-04")
    assert held.planned == approx(100.0) and held.progress is None and held.state == rules.MET
    lost = one("target revenue >= 100 by 2026-12 from 2026-02", at="2026-03")  # 90
    assert lost.planned == approx(100.0) and lost.progress is None and lost.state == rules.OFF_TRACK
    strict = one("target revenue < 100 by 2026-12 from 2026-01", at="2026-03")  # starts exactly at the goal
    assert strict.progress is None and strict.state == rules.MET


def test_past_the_deadline_it_is_judged_by_the_deadline_period():
    missed = one("target open_rate >= 25% by 2026-03")  # Mar was 0.24
    assert missed.state == rules.MISSED and missed.deadline_value == approx(0.24)
    assert missed.met is True  # the rate is above the goal now, but after the deadline
    met = one("target open_rate >= 22% by 2026-03")
    assert met.state == rules.MET_AT_DEADLINE and met.deadline_value == approx(0.24)
    # A date is due in the period that holds it: 2026-04-15 → Apr, 0.25.
    assert one("target open_rate >= 26% by 2026-04-15").state == rules.MISSED


def test_not_started_before_the_start():
    t = one("target open_rate >= 30% by 2026-12 from 2026-05", at="2026-03")
    assert t.state == rules.NOT_STARTED and t.start_period == "2026-05" and t.start_value == approx(0.27)
    assert t.planned is None


def test_no_data_after_the_data_before_the_start_and_for_an_undefined_value():
    t = one("target open_rate >= 30% by 2026-12", at="2026-09")
    assert t.state == rules.NO_DATA and t.current is None
    assert t.reason == "no data in 2026-09: the data covers 2026-01 to 2026-06"
    t = one("target open_rate >= 40% by 2026-12 from 2025-10")
    assert t.state == rules.NO_DATA and t.start_value is None
    assert "no value at the start 2025-10" in t.reason and "covers 2026-01 to 2026-06" in t.reason
    # vip has one row in January with nothing delivered: the open rate is undefined, and says why.
    t = one('target open_rate >= 30% by 2026-12 where segment == "vip"', at="2026-01")
    assert t.state == rules.NO_DATA and t.reason == "division by zero: delivered is 0"


def test_a_slice_that_keeps_no_rows_has_no_data():
    t = one('target open_rate >= 30% by 2026-12 where segment == "gold"')
    assert t.state == rules.NO_DATA and "keeps no rows" in t.reason


# --------------------------------------------------------------------------- the plan and checkpoints


def test_explicit_checkpoints_make_a_piecewise_linear_plan():
    text = "target open_rate >= 30% by 2026-11 from 2026-01 checkpoints { 2026-03: 21%, 2026-07: 29% }"
    # Knots (Jan 0.20) (Mar 0.21) (Jul 0.29) (Nov 0.30): Apr is a quarter of the way from Mar to Jul.
    assert one(text, at="2026-04").planned == approx(0.21 + 0.08 / 4)
    t = one(text)
    assert t.planned == approx(0.21 + 0.08 * 3 / 4) and t.state == rules.ON_TRACK
    assert [(c.period, c.planned, c.actual, c.reached, c.explicit) for c in t.checkpoints] == [
        ("2026-03", approx(0.21), approx(0.24), True, True), ("2026-07", approx(0.29), None, None, True)]
    # Without them the plan at Apr is the straight line: 0.23.
    assert one("target open_rate >= 30% by 2026-11 from 2026-01", at="2026-04").planned == approx(0.23)


def test_every_month_lists_the_checkpoints_of_the_plan():
    t = one("target open_rate >= 30% by 2026-05 from 2026-01 every month", at="2026-04")
    assert [c.period for c in t.checkpoints] == ["2026-02", "2026-03", "2026-04", "2026-05"]
    assert [c.planned for c in t.checkpoints] == approx([0.225, 0.25, 0.275, 0.30])
    assert [c.actual for c in t.checkpoints] == [approx(0.22), approx(0.24), approx(0.25), None]
    assert [c.reached for c in t.checkpoints] == [False, False, False, None]


def test_every_quarter_at_a_monthly_grain_falls_in_each_quarters_last_month():
    t = one("target open_rate >= 31% by 2026-12 from 2026-01 every quarter")
    assert [(c.period, c.grain_period) for c in t.checkpoints] == [
        ("2026-Q1", "2026-03"), ("2026-Q2", "2026-06"), ("2026-Q3", "2026-09"), ("2026-Q4", "2026-12")]
    assert t.checkpoints[0].planned == approx(0.20 + 0.11 * 2 / 11)
    assert t.checkpoints[-1].planned == approx(0.31)


def test_default_start_is_the_first_period_with_a_value():
    t = one("target open_rate >= 30% by 2026-12")
    assert (t.start_period, t.start_value) == ("2026-01", approx(0.20))
    # growth has no value in January (no December to compare with): the plan starts in February.
    t = one("metric growth = revenue / revenue[-1] { level strategic }\ntarget growth >= 1.5 by 2026-12")
    assert (t.start_period, t.start_value) == ("2026-02", approx(1.2))


def test_equal_targets_head_for_the_goal_and_unequal_ones_have_no_plan():
    # 100 in Jan towards exactly 160 in Dec: 127.3 planned in Jun, 130 reached.
    t = one("target revenue == 160 by 2026-12 from 2026-01")
    assert t.planned == approx(100 + 60 * 5 / 11) and t.state == rules.ON_TRACK
    assert one("target revenue != 130 by 2026-12").state == rules.OFF_TRACK  # Jun is 130
    t = one("target revenue != 130 by 2026-12", at="2026-05")
    assert t.state == rules.MET and t.planned is None


def test_targets_are_grouped_by_level():
    found = status("target revenue >= 1 by 2026-12\ntarget open_rate >= 1% by 2026-12\ntarget ltv >= 1 by 2026-12")
    assert [(level, [t.metric for t in targets]) for level, targets in found.by_level()] == [
        ("strategic", ["ltv"]), ("operational", ["open_rate"]), (None, ["revenue"])]


# --------------------------------------------------------------------------- slices


def test_slice_targets_filter_the_rows_of_their_sources():
    new = one('target open_rate >= 30% by 2026-11 from 2026-01 where segment == "new"')
    # 0.10 in Jan to 0.30 in Nov: 0.20 planned in Jun, 0.26 reached.
    assert (new.start_value, new.current, new.planned) == (approx(0.10), approx(0.26), approx(0.20))
    assert new.state == rules.ON_TRACK and new.where == 'segment == "new"' and new.progress == approx(0.8)
    regular = one('target open_rate >= 35% by 2026-11 from 2026-01 where segment in ["regular"]')
    assert regular.current == approx(0.30) and regular.planned == approx(0.325) and regular.state == rules.OFF_TRACK
    both = one('target open_rate >= 35% by 2026-11 where not segment == "vip" and region != "West"')
    assert both.current == approx(0.28)


def test_a_slice_over_a_dimension_a_source_lacks_is_a_usage_error():
    with pytest.raises(UsageError) as caught:
        status('alert revenue > 100 where segment == "new"')
    message = caught.value.diagnostics[0].message
    assert "segment" in message and "source 'orders'" in message and "revenue" in message
    assert caught.value.diagnostics[0].span.line == BASE.count("\n") + 1


def test_arrow_filters_keep_rows_like_where():
    table = pa.table({"segment": ["new", None, "vip", "new"], "n": [1, 2, 3, 4]})

    def kept(text):
        expr = metrictree.loads("source t { time d dimensions segment, n }\nmetric x = count(t) { level strategic }"
                                f"\nalert x > 0 where {text}").alerts[0].where
        return table.filter(as_arrow_filter(expr)).column("n").to_pylist()

    assert kept('segment == "new"') == [1, 4]
    assert kept('segment in ["vip"]') == [3]
    assert kept('segment not in ["vip"]') == [1, 4]  # a null segment is neither in nor out
    assert kept("segment is null") == [2]
    assert kept('segment == "new" or n >= 3') == [1, 3, 4]
    assert kept('not (segment == "new")') == [3]
    with pytest.raises(UsageError):
        as_arrow_filter(s.Call("f", (s.Name("x"),)))


def test_slices_apply_to_files_too(tmp_path):
    path = tmp_path / "emails.parquet"
    pq.write_table(data()["emails"], path)
    tree = metrictree.loads(BASE + 'target open_rate >= 30% by 2026-11 from 2026-01 where segment == "new"')
    t = tree.status({"emails": str(path), "orders": data()["orders"]}).targets[0]
    assert t.current == approx(0.26) and t.state == rules.ON_TRACK


def test_a_slice_of_the_wrong_kind_is_a_data_error():
    with pytest.raises(DataError) as caught:
        status("alert open_rate > 0 where segment == 3")
    assert "cannot apply the slice" in caught.value.diagnostics[0].message


# --------------------------------------------------------------------------- alerts


def test_alert_fired_not_fired_and_no_data():
    found = status("alert open_rate < 25% { severity critical message \"Opens are low\" }", at="2026-03")
    alert = found.alerts[0]
    assert alert.state == rules.FIRED and alert.fired and found.fired == (alert,)
    assert (alert.severity, alert.message, alert.value, alert.unit) == ("critical", "Opens are low", approx(0.24), "%")
    assert [(v.metric, v.value) for v in alert.values] == [("open_rate", approx(0.24))]
    assert status("alert open_rate < 25%").alerts[0].state == rules.NOT_FIRED  # 0.28 in Jun
    late = status("alert open_rate < 25%", at="2026-08").alerts[0]
    assert late.state == rules.NO_DATA and "covers 2026-01 to 2026-06" in late.reason


def test_alert_on_a_change_over_time():
    alert = "alert change(ltv) < -10% { severity critical }"
    fired = status(alert, at="2026-03").alerts[0]  # 45 / 60 − 1 = −25 %
    assert fired.state == rules.FIRED and fired.value == approx(-0.25) and fired.unit == "%"
    assert [(v.metric, v.value, v.unit) for v in fired.values] == [("ltv", approx(45.0), "RUB")]
    assert status(alert).alerts[0].state == rules.NOT_FIRED  # 65 / 55 − 1
    first = status(alert, at="2026-01").alerts[0]
    assert first.state == rules.NO_DATA and "before the first period of the data" in first.reason


def test_alert_on_a_slice():
    alert = 'alert open_rate < 20% where segment == "new"'
    assert status(alert, at="2026-03").alerts[0].state == rules.FIRED  # new: 0.18
    assert status(alert, at="2026-04").alerts[0].state == rules.NOT_FIRED  # new: 0.20
    assert status(alert.replace("new", "regular"), at="2026-03").alerts[0].state == rules.NOT_FIRED


def test_alerts_and_targets_can_read_params_and_params_can_be_overridden():
    text = "target ltv >= 100 by 2026-12 from 2026-01\nalert ltv > 60"
    found = status(text)
    # margin 50 %: LTV 50 in Jan, 65 in Jun, plan 50 + 50 × 5/11 in Jun.
    assert found.targets[0].state == rules.OFF_TRACK and found.targets[0].planned == approx(50 + 50 * 5 / 11)
    assert found.alerts[0].fired
    higher = status(text, params={"margin": "100%"})
    assert higher.targets[0].state == rules.MET and higher.params == {"margin": 1.0}
    assert not status(text, params={"margin": 0.4}).alerts[0].fired  # 52
    with pytest.raises(UsageError):
        status(text, params={"margn": 1})


def test_a_status_is_json_safe_and_reads_as_markdown():
    found = status("target open_rate >= 30% by 2026-11 from 2026-01 every quarter\n"
                   'alert open_rate < 25% { message "Opens are low" }\nalert change(ltv) < -10%', at="2026-03")
    payload = json.loads(json.dumps(found.to_dict(), allow_nan=False))
    assert payload["at"] == "2026-03" and payload["fired"] == 2
    assert payload["targets"][0]["state"] == "on track" and payload["targets"][0]["checkpoints"][0]["period"] == \
        "2026-Q1"
    text = found.to_markdown()
    assert text.startswith("# Status of Mailings and orders at 2026-03")
    assert "| Open rate ≥ 30.0% | all | 20.0% (2026-01) | 24.0% | 22.0% | 2026-11 | 40% | **on track** |" in text
    assert "| **fired** | warning | `open_rate < 25%` | all | 24.0% | Opens are low |" in text
    assert found._repr_markdown_() == text


def test_a_tree_without_rules_has_an_empty_status():
    found = metrictree.loads(BASE).status(data())
    assert (found.at, found.targets, found.alerts) == (None, (), ())
    assert "no targets or alerts" in found.to_markdown()


def test_at_may_be_a_coarser_period_and_must_be_a_period():
    assert one("target open_rate >= 30% by 2026-12", at="2026-Q1").at == "2026-03"
    with pytest.raises(UsageError):
        status("target open_rate >= 30% by 2026-12", at="March")


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def files(tmp_path):
    tree = tmp_path / "mail.tree"
    tree.write_text(BASE + "target open_rate >= 30% by 2026-11 from 2026-01 every month\n"
                           'target open_rate >= 35% by 2026-11 from 2026-01 where segment == "regular"\n'
                           'alert change(ltv) < -10% { severity critical message "LTV fell" }\n', "utf-8")
    paths = {}
    for name, table in data().items():
        paths[name] = tmp_path / f"{name}.parquet"
        pq.write_table(table, paths[name])
    return [str(tree), "--data", f"emails={paths['emails']}", "--data", f"orders={paths['orders']}"]


def _run(*args):
    try:
        runner = CliRunner(mix_stderr=False, env={"COLUMNS": "100"})
    except TypeError:
        runner = CliRunner(env={"COLUMNS": "100"})
    return runner.invoke(main, ["status", *args], catch_exceptions=False)


def test_cli_text(files):
    result = _run(*files, "--at", "2026-03")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "status at 2026-03" in out and "Operational" in out
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(" Open rate   "))
    assert lines[row].split() == ["Open", "rate", "24.0%", "22.0%", "██▍░░░", "40%", "on", "track"]
    assert lines[row + 1].split() == ["≥", "30.0%", "by", "2026-11", "+0.750", "pp/month"]
    assert 'Open rate [segment == "regular"]' in out and "off track" in out
    assert "LTV fell" in out and "critical" in out and "−25.0%" in out
    # The two latest checkpoints and the next two.
    assert "checkpoints: 2026-02 21.0% ✓ · 2026-03 22.0% ✓ · 2026-04 23.0% · 2026-05 24.0%" in out
    assert "2026-06 25.0%" not in out


def test_cli_json_and_markdown(files):
    payload = json.loads(_run(*files, "--format", "json").output)
    assert payload["at"] == "2026-06" and [t["state"] for t in payload["targets"]] == ["on track", "off track"]
    assert payload["alerts"][0]["state"] == "not fired"
    markdown = _run(*files, "--format", "markdown", "--at", "2026-03").output
    assert markdown.startswith("# Status of Mailings and orders at 2026-03") and "| **fired** | critical |" in markdown


def test_cli_fail_on_alert_exits_3_only_when_an_alert_fires(files):
    assert _run(*files, "--at", "2026-03").exit_code == 0
    fired = _run(*files, "--at", "2026-03", "--fail-on-alert")
    assert fired.exit_code == 3 and "LTV fell" in fired.output
    assert _run(*files, "--fail-on-alert").exit_code == 0  # nothing fires in June


def test_cli_param_and_user_errors(files):
    payload = json.loads(_run(*files, "--format", "json", "--param", "margin=10%").output)
    assert payload["params"] == {"margin": 0.1}
    bad = _run(*files, "--at", "2026-13")
    assert bad.exit_code == 1 and "not a valid period" in bad.stderr


def test_the_bundled_crm_tree_runs_on_the_sample():
    result = _run(str(ROOT / "trees" / "crm_ltv.tree"), "--sample", "--format", "json")
    assert result.exit_code == 0
    payload = json.loads(result.output)
    assert payload["at"] == "2026-10"
    (target,) = payload["targets"]
    assert target["metric"] == "open_rate" and target["state"] == "off track" and target["deadline_period"] == "2027-03"
    assert [a["state"] for a in payload["alerts"]] == ["fired", "fired"]
    text = _run(str(ROOT / "trees" / "crm_ltv.tree"), "--sample", "--fail-on-alert")
    assert text.exit_code == 3 and "Open rate" in text.output


@pytest.mark.parametrize("name", ["email_engagement", "ecommerce_revenue", "saas_mrr"])
def test_the_other_bundled_trees_run(name):
    result = _run(str(ROOT / "trees" / f"{name}.tree"), "--sample", "--format", "json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.output)
    assert payload["at"] is None or payload["at"] == "2026-10"


# --------------------------------------------------------------------------- docs/targets.md


def test_the_docs_example_is_real(tmp_path):
    """docs/targets.md shows its tree and what `metrictree status` prints for it on the sample data."""
    page = (ROOT / "docs" / "targets.md").read_text("utf-8")
    tree = page.split("```tree\n", 1)[1].split("```", 1)[0]
    shown = page.split("reports on the last month of the data:\n\n```text\n", 1)[1].split("```", 1)[0]
    (tmp_path / "kpis.tree").write_text(tree, "utf-8")
    try:
        runner = CliRunner(mix_stderr=False, env={"COLUMNS": "100"})
    except TypeError:
        runner = CliRunner(env={"COLUMNS": "100"})
    result = runner.invoke(main, ["status", str(tmp_path / "kpis.tree"), "--sample"], catch_exceptions=False)
    assert result.exit_code == 0
    printed = [line.rstrip() for line in result.output.rstrip("\n").splitlines()]
    assert printed == shown.rstrip("\n").splitlines()
