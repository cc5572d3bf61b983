"""What a CRM lead reads: signs that agree, whole counts, readable labels, no method names unless asked; and periods
at any grain (issue 9, points 6 and 7)."""

import datetime as dt
import json
import random
import re
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

import metrictree
from metrictree.cli import main
from metrictree.errors import DataError, UsageError

CRM = str(Path(__file__).resolve().parents[1] / "trees" / "crm_ltv.tree")


def _run(*args: str):
    try:
        runner = CliRunner(mix_stderr=False, env={"COLUMNS": "120"})
    except TypeError:
        runner = CliRunner(env={"COLUMNS": "120"})
    return runner.invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def text():
    result = _run("explain", CRM, "--sample")
    assert result.exit_code == 0
    return result.output


def test_method_names_only_when_verbose(text):
    assert "lmdi" not in text and "residual" not in text
    verbose = _run("explain", CRM, "--sample", "--verbose").output
    assert "[lmdi]" in verbose and "residual" in verbose
    as_json = json.loads(_run("explain", CRM, "--sample", "--format", "json").output)
    assert as_json["method"] == "lmdi"


def test_a_share_has_its_contributions_sign(text):
    # "−2,157 RUB ███ −59%": every driver line with a contribution and a share.
    for line in text.splitlines():
        found = re.search(r"([+−])[\d,.]+ RUB [█▏▎▍▌▋▊▉]*\s+(−?)\d+%", line)
        if found:
            assert (found.group(1) == "−") == (found.group(2) == "−"), line


def test_counts_print_as_integers_and_shifts_have_labels(text):
    assert "Churned customers  732 → 1,011  +279" in text
    assert "Paying customers, previous period  2,067 → 2,100" in text
    assert "customers[-1]" not in text


def test_amounts_at_a_sensible_scale_and_rates_in_points(text):
    assert "Revenue  9.91M RUB → 7.88M RUB" in text
    assert "Churn rate  35.4% → 48.1%  +12.73 pp" in text


def test_markdown_matches_the_text(explanation):
    md = explanation.to_markdown()
    assert "| method |" not in md and "lmdi" not in md
    assert "| method |" in explanation.to_markdown(verbose=True)


WEEKLY = '''
tree weekly
grain week
source orders {
    time day
    dimensions region
}
metric revenue = sum(orders.amount) { unit EUR }
'''


def weekly_data():
    rng = random.Random(2)
    days = [dt.date(2026, 1, 5) + dt.timedelta(days=i) for i in range(56)]
    rows = [(d, r, rng.gauss(100, 5) * (0.5 if d >= dt.date(2026, 2, 23) and r == "North" else 1.0))
            for d in days for r in ("North", "South", "East") for _ in range(5)]
    return {"orders": pa.table({"day": [r[0] for r in rows], "region": [r[1] for r in rows],
                                "amount": [r[2] for r in rows]})}


def test_week_labels_at_grain_week():
    tree = metrictree.loads(WEEKLY, "weekly.tree")
    e = tree.explain(weekly_data(), "revenue", "2026-W08", "2026-W09")
    assert (e.baseline.period, e.current.period) == ("2026-W08", "2026-W09")
    assert [dict(c.where) for c in e.root_causes] == [{"region": "North"}]


def test_a_label_of_another_grain_is_an_error():
    tree = metrictree.loads(WEEKLY, "weekly.tree")
    with pytest.raises(UsageError, match="'2026-02' is a month, but the periods are weeks") as info:
        tree.explain(weekly_data(), "revenue", "2026-01", "2026-02")
    assert "2026-W41" in info.value.diagnostics[0].hint


def test_grain_option_on_explain_report_and_status(tmp_path):
    days = _run("explain", CRM, "--sample", "--grain", "quarter", "--baseline", "2026-Q2", "--current", "2026-Q3",
                "--format", "json")
    assert days.exit_code == 0
    assert json.loads(days.output)["current"]["period"] == "2026-Q3"
    wrong = _run("explain", CRM, "--sample", "--grain", "quarter", "--current", "2026-09")
    assert wrong.exit_code == 1 and "is a month, but the periods are quarters" in (wrong.stderr or wrong.output)
    page = tmp_path / "r.html"
    report = _run("report", CRM, "--sample", "--grain", "quarter", "--current", "2026-Q3", "-o", str(page))
    assert report.exit_code == 0 and "2026-Q3" in page.read_text("utf-8")
    status = _run("status", CRM, "--sample", "--grain", "quarter", "--at", "2026-Q3", "--format", "json")
    assert status.exit_code == 0 and json.loads(status.output)["grain"] == "quarter"
    finer = _run("status", CRM, "--sample", "--at", "2026-W30")
    assert finer.exit_code == 1 and "is a week, but the periods are months" in (finer.stderr or finer.output)


def test_the_data_covers_hint_states_the_real_range(data, tree):
    with pytest.raises(DataError) as info:
        tree.explain(data, "ltv", "2030-01", "2030-02")
    hint = info.value.diagnostics[0].hint
    assert hint.startswith("the data covers 2025-11 to 2026-10"), hint


def test_the_readme_shows_the_real_output():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    block = readme.split("$ metrictree explain trees/crm_ltv.tree --sample --depth 2\n", 1)[1].split("```", 1)[0]
    try:
        runner = CliRunner(mix_stderr=False, env={"COLUMNS": "80"})
    except TypeError:
        runner = CliRunner(env={"COLUMNS": "80"})
    result = runner.invoke(main, ["explain", CRM, "--sample", "--depth", "2"], catch_exceptions=False)
    assert [line.rstrip() for line in result.output.rstrip("\n").splitlines()] == block.rstrip("\n").splitlines()


def test_a_driver_used_twice_says_what_it_does_in_all(text):
    # Paid orders is in both AOV and frequency: its two parts cancel, and the first place says so.
    assert text.count("in all: ±0 RUB (+2,157 RUB under Average order value, −2,157 RUB under Purchase") == 1
