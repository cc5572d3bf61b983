"""Tests for the bundled sample data (metrictree.sample), pyarrow.compute only."""

from __future__ import annotations

import ast
import datetime as dt
import inspect

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from metrictree import sample as sample_module
from metrictree.sample import generate_sample_data, sample_data

SEGMENTS = {"new", "regular", "vip"}
REGIONS = {"North", "South", "Center", "East"}
CHANNELS = {"web", "app", "marketplace"}
MONTHS = [f"2025-{m:02d}" for m in (11, 12)] + [f"2026-{m:02d}" for m in range(1, 11)]


@pytest.fixture(scope="module")
def data() -> dict[str, pa.Table]:
    return sample_data()


@pytest.fixture(scope="module")
def story(data) -> dict[str, pa.Table]:
    """The tables with a "_month" ("YYYY-MM") column, computed once."""
    dates = {"orders": "order_date", "emails": "sent_at", "surveys": "answered_at"}
    return {name: data[name].append_column("_month", _month(data[name][column])) for name, column in dates.items()}


# --- helpers -------------------------------------------------------------------


def _month(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.strftime(column, format="%Y-%m")


def _where(table: pa.Table, **equal) -> pa.Table:
    mask = None
    for name, value in equal.items():
        cond = pc.equal(table[name], value)
        mask = cond if mask is None else pc.and_(mask, cond)
    return table.filter(mask)


def _paid(data, month: str) -> pa.Table:
    orders = data["orders"]
    mask = pc.and_(pc.equal(orders["status"], "paid"), pc.equal(orders["_month"], month))
    return orders.filter(mask)


def _aov(orders: pa.Table) -> float:
    return pc.sum(orders["amount"]).as_py() / orders.num_rows


def _north_app(orders: pa.Table) -> pa.ChunkedArray:
    return pc.and_(pc.equal(orders["region"], "North"), pc.equal(orders["channel"], "app"))


def _open_rate(data, month: str, segment: str | None = None, exclude: str | None = None) -> float:
    emails = data["emails"]
    mask = pc.equal(emails["_month"], month)
    if segment is not None:
        mask = pc.and_(mask, pc.equal(emails["segment"], segment))
    if exclude is not None:
        mask = pc.and_(mask, pc.not_equal(emails["segment"], exclude))
    rows = emails.filter(mask)
    return pc.sum(rows["opened"]).as_py() / pc.sum(rows["delivered"]).as_py()


def _nps(data, month: str, segment: str | None = None, exclude: str | None = None) -> float:
    surveys = data["surveys"]
    mask = pc.and_(pc.equal(surveys["survey"], "nps"), pc.equal(surveys["_month"], month))
    if segment is not None:
        mask = pc.and_(mask, pc.equal(surveys["segment"], segment))
    if exclude is not None:
        mask = pc.and_(mask, pc.not_equal(surveys["segment"], exclude))
    scores = surveys.filter(mask)["score"]
    promoters = pc.sum(pc.greater_equal(scores, 9)).as_py()
    detractors = pc.sum(pc.less_equal(scores, 6)).as_py()
    return 100.0 * (promoters - detractors) / len(scores)


def _rel(before: float, after: float) -> float:
    return (after - before) / before


def _distinct(column: pa.ChunkedArray) -> set:
    return set(pc.unique(column).to_pylist())


# --- API, caching, determinism ----------------------------------------------------


def test_sample_data_is_cached_and_complete():
    first, second = sample_data(), sample_data()
    assert list(first) == ["orders", "emails", "surveys", "spend", "traffic", "subscriptions"]
    for name in first:
        assert isinstance(first[name], pa.Table)
        assert first[name] is second[name]


def test_generator_is_deterministic(data):
    # The cached tables come from one call of the uncached generator; a second
    # call must give equal tables (same values, same order).
    again = generate_sample_data()
    assert list(again) == list(data)
    for name in data:
        assert again[name] is not data[name]
        assert again[name].equals(data[name], check_metadata=True), name


def test_module_uses_neither_numpy_nor_pandas():
    tree = ast.parse(inspect.getsource(sample_module))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"numpy", "pandas"}


# --- schemas and sizes ------------------------------------------------------------


def test_schemas(data):
    assert data["orders"].schema == pa.schema(
        [
            ("order_id", pa.int64()),
            ("order_date", pa.timestamp("us")),
            ("customer_id", pa.string()),
            ("channel", pa.string()),
            ("region", pa.string()),
            ("segment", pa.string()),
            ("status", pa.string()),
            ("amount", pa.float64()),
            ("cost", pa.float64()),
        ]
    )
    assert data["emails"].schema == pa.schema(
        [
            ("sent_at", pa.date32()),
            ("campaign", pa.string()),
            ("segment", pa.string()),
            ("region", pa.string()),
            ("sent", pa.int64()),
            ("bounced", pa.int64()),
            ("delivered", pa.int64()),
            ("opened", pa.int64()),
            ("clicked", pa.int64()),
            ("conversions", pa.int64()),
        ]
    )
    assert data["surveys"].schema == pa.schema(
        [
            ("answered_at", pa.date32()),
            ("customer_id", pa.string()),
            ("region", pa.string()),
            ("segment", pa.string()),
            ("survey", pa.string()),
            ("score", pa.int64()),
        ]
    )
    assert data["spend"].schema == pa.schema(
        [
            ("month", pa.date32()),
            ("channel", pa.string()),
            ("kind", pa.string()),
            ("amount", pa.float64()),
        ]
    )
    assert data["traffic"].schema == pa.schema(
        [
            ("date", pa.date32()),
            ("channel", pa.string()),
            ("region", pa.string()),
            ("sessions", pa.int64()),
            ("leads", pa.int64()),
        ]
    )
    assert data["subscriptions"].schema == pa.schema(
        [
            ("month", pa.date32()),
            ("account_id", pa.string()),
            ("plan", pa.string()),
            ("mrr", pa.float64()),
            ("region", pa.string()),
            ("segment", pa.string()),
        ]
    )
    for table in data.values():
        assert table.num_rows > 0
        for column in table.columns:
            assert column.null_count == 0


def test_row_counts(data):
    assert 40_000 <= data["orders"].num_rows <= 60_000
    customers = len(pc.unique(data["orders"]["customer_id"]))
    assert 3_500 <= customers <= 4_000
    # 12 rows (segment x region) per send; ~52 digests, ~52 promos, 12 reactivations
    emails = data["emails"]
    assert emails.num_rows % 12 == 0
    sends = {c: _where(emails, campaign=c).num_rows // 12 for c in ("weekly_digest", "promo", "reactivation")}
    assert 50 <= sends["weekly_digest"] <= 53
    assert 50 <= sends["promo"] <= 53
    assert sends["reactivation"] == 12
    assert emails.num_rows == 12 * sum(sends.values())
    # a few hundred survey answers a month, both surveys every month
    surveys = data["surveys"]
    answered = _month(surveys["answered_at"])
    for month in MONTHS:
        in_month = surveys.filter(pc.equal(answered, month))
        assert 200 <= in_month.num_rows <= 1_000, month
        assert _distinct(in_month["survey"]) == {"nps", "csat"}
    assert data["spend"].num_rows == 12 * 3 * 2
    assert data["traffic"].num_rows == 365 * 3 * 4  # one row per day, channel and region
    assert 6_000 <= data["subscriptions"].num_rows <= 10_000


def test_date_ranges(data):
    orders, emails = data["orders"], data["emails"]
    surveys, spend = data["surveys"], data["spend"]
    first = dt.datetime(2025, 11, 1)
    end = dt.datetime(2026, 11, 1)
    bounds = pc.min_max(orders["order_date"]).as_py()
    assert first <= bounds["min"] and bounds["max"] < end
    for column in (emails["sent_at"], surveys["answered_at"]):
        bounds = pc.min_max(column).as_py()
        assert dt.date(2025, 11, 1) <= bounds["min"] and bounds["max"] <= dt.date(2026, 10, 31)
    for column in (orders["order_date"], emails["sent_at"], surveys["answered_at"]):
        assert sorted(_distinct(_month(column))) == MONTHS
    assert sorted(_distinct(spend["month"])) == [
        dt.date(int(m[:4]), int(m[5:]), 1) for m in MONTHS
    ]
    assert sorted(_distinct(data["subscriptions"]["month"])) == sorted(_distinct(spend["month"]))
    days = sorted(_distinct(data["traffic"]["date"]))
    assert days[0] == dt.date(2025, 11, 1) and days[-1] == dt.date(2026, 10, 31) and len(days) == 365


# --- invariants ----------------------------------------------------------------


def test_orders_invariants(data):
    orders = data["orders"]
    n = orders.num_rows
    assert orders["order_id"].to_pylist() == list(range(1, n + 1))
    dates = orders["order_date"]
    assert pc.all(pc.greater_equal(dates.slice(1), dates.slice(0, n - 1))).as_py()
    assert pc.all(pc.match_substring_regex(orders["customer_id"], r"^C\d{5}$")).as_py()
    assert _distinct(orders["channel"]) == CHANNELS
    assert _distinct(orders["region"]) == REGIONS
    assert _distinct(orders["segment"]) == SEGMENTS
    assert _distinct(orders["status"]) == {"paid", "refunded", "cancelled"}
    shares = {
        status: _where(orders, status=status).num_rows / n
        for status in ("paid", "refunded", "cancelled")
    }
    assert 0.87 <= shares["paid"] <= 0.93
    assert 0.04 <= shares["refunded"] <= 0.08
    assert 0.025 <= shares["cancelled"] <= 0.055
    amount, cost = orders["amount"], orders["cost"]
    assert pc.all(pc.greater(amount, 0)).as_py()
    assert pc.all(pc.greater(cost, 0)).as_py()
    assert pc.all(pc.less(cost, amount)).as_py()
    assert pc.all(pc.equal(pc.round(amount, 2), amount)).as_py()
    assert pc.all(pc.equal(pc.round(cost, 2), cost)).as_py()
    assert 2_200 <= pc.mean(amount).as_py() <= 3_000
    assert 0.57 <= pc.sum(cost).as_py() / pc.sum(amount).as_py() <= 0.63
    # region and segment are fixed per customer
    per_customer = orders.group_by("customer_id").aggregate(
        [("region", "count_distinct"), ("segment", "count_distinct")]
    )
    assert pc.max(per_customer["region_count_distinct"]).as_py() == 1
    assert pc.max(per_customer["segment_count_distinct"]).as_py() == 1
    # vip customers spend more per order than the others
    vip, regular = _where(orders, segment="vip"), _where(orders, segment="regular")
    assert _aov(vip) > 1.1 * _aov(regular)


def test_emails_invariants(data):
    emails = data["emails"]
    assert _distinct(emails["campaign"]) == {"weekly_digest", "promo", "reactivation"}
    assert _distinct(emails["segment"]) == SEGMENTS
    assert _distinct(emails["region"]) == REGIONS
    keys = emails.group_by(["sent_at", "campaign", "segment", "region"]).aggregate([])
    assert keys.num_rows == emails.num_rows  # one row per (date, campaign, segment, region)
    sent, bounced, delivered = emails["sent"], emails["bounced"], emails["delivered"]
    opened, clicked, conversions = emails["opened"], emails["clicked"], emails["conversions"]
    assert pc.all(pc.equal(delivered, pc.subtract(sent, bounced))).as_py()
    assert pc.all(pc.greater_equal(bounced, 0)).as_py()
    assert pc.all(pc.less_equal(opened, delivered)).as_py()
    assert pc.all(pc.less_equal(clicked, opened)).as_py()
    assert pc.all(pc.less_equal(conversions, clicked)).as_py()
    assert pc.all(pc.greater_equal(conversions, 0)).as_py()
    before = emails.filter(pc.less(emails["sent_at"], pa.scalar(dt.date(2026, 10, 1))))
    total_delivered = pc.sum(before["delivered"]).as_py()
    assert 0.22 <= pc.sum(before["opened"]).as_py() / total_delivered <= 0.28
    assert 0.03 <= pc.sum(before["clicked"]).as_py() / total_delivered <= 0.05


def test_surveys_invariants(data):
    surveys = data["surveys"]
    assert _distinct(surveys["survey"]) == {"nps", "csat"}
    nps, csat = _where(surveys, survey="nps"), _where(surveys, survey="csat")
    assert pc.min_max(nps["score"]).as_py() == {"min": 0, "max": 10}
    assert pc.min_max(csat["score"]).as_py() == {"min": 1, "max": 5}
    # respondents are customers, with the customer's region and segment
    orders = data["orders"]
    known = orders.group_by(["customer_id", "region", "segment"]).aggregate([])
    joined = surveys.join(known, keys=["customer_id", "region", "segment"], join_type="inner")
    assert joined.num_rows == surveys.num_rows


def test_spend_invariants(data):
    spend = data["spend"]
    assert _distinct(spend["channel"]) == CHANNELS
    assert _distinct(spend["kind"]) == {"marketing", "sales"}
    assert pc.all(pc.greater(spend["amount"], 0)).as_py()
    keys = spend.group_by(["month", "channel", "kind"]).aggregate([])
    assert keys.num_rows == spend.num_rows


def test_traffic_invariants(data):
    traffic = data["traffic"]
    assert _distinct(traffic["channel"]) == CHANNELS
    assert _distinct(traffic["region"]) == REGIONS
    keys = traffic.group_by(["date", "channel", "region"]).aggregate([])
    assert keys.num_rows == traffic.num_rows
    sessions, leads = traffic["sessions"], traffic["leads"]
    assert pc.all(pc.greater(sessions, 0)).as_py()
    assert pc.all(pc.greater_equal(leads, 0)).as_py()
    assert pc.all(pc.less_equal(leads, sessions)).as_py()
    assert 0.008 <= pc.sum(leads).as_py() / pc.sum(sessions).as_py() <= 0.012


def test_subscriptions_invariants(data):
    subs = data["subscriptions"]
    assert _distinct(subs["plan"]) == set(sample_module.PLANS)
    assert _distinct(subs["region"]) == REGIONS
    assert _distinct(subs["segment"]) == SEGMENTS
    assert subs.group_by(["month", "account_id"]).aggregate([]).num_rows == subs.num_rows
    for plan, price in sample_module.PLAN_PRICE.items():
        assert _distinct(_where(subs, plan=plan)["mrr"]) == {price}
    assert pc.all(pc.match_substring_regex(subs["account_id"], r"^C\d{5}$")).as_py()
    # accounts are the shop's customers, with their region and segment
    members = subs.group_by(["account_id", "region", "segment"]).aggregate([])
    assert members.num_rows == len(pc.unique(subs["account_id"]))
    known = data["orders"].group_by(["customer_id", "region", "segment"]).aggregate([])
    known = known.rename_columns(["account_id", "region", "segment"])
    by_id = members.join(known.select(["account_id"]), keys="account_id", join_type="inner")
    assert by_id.num_rows > 0.9 * members.num_rows
    assert members.join(known, keys=["account_id", "region", "segment"], join_type="inner").num_rows == by_id.num_rows
    per_month = subs.group_by("month").aggregate([([], "count_all"), ("mrr", "sum")]).sort_by("month")
    counts = per_month["count_all"].to_pylist()
    assert 350 <= counts[0] <= 500 and 700 <= counts[-1] <= 1_000


def _members(subs: pa.Table, month: int, year: int = 2026, segment: str | None = None) -> set:
    rows = subs.filter(pc.equal(subs["month"], pa.scalar(dt.date(year, month, 1))))
    if segment is not None:
        rows = _where(rows, segment=segment)
    return _distinct(rows["account_id"])


def _conversion(data, month: str, channel: str | None = None) -> float:
    traffic = data["traffic"]
    paid = _paid(data, month)
    visits = traffic.filter(pc.equal(_month(traffic["date"]), month))
    if channel is not None:
        paid, visits = _where(paid, channel=channel), _where(visits, channel=channel)
    return paid.num_rows / pc.sum(visits["sessions"]).as_py()


# --- the planted story (2026-10) ----------------------------------------------------


def test_story_aov_falls_in_north_app_only(story):
    data = story
    sep, oct_ = _paid(data, "2026-09"), _paid(data, "2026-10")
    north_app = _rel(_aov(sep.filter(_north_app(sep))), _aov(oct_.filter(_north_app(oct_))))
    elsewhere = _rel(
        _aov(sep.filter(pc.invert(_north_app(sep)))), _aov(oct_.filter(pc.invert(_north_app(oct_))))
    )
    assert north_app < -0.25
    assert abs(elsewhere) < 0.05


def test_story_regular_orders_fall(story):
    data = story
    before = _where(_paid(data, "2026-09"), segment="regular").num_rows
    after = _where(_paid(data, "2026-10"), segment="regular").num_rows
    assert _rel(before, after) < -0.25
    vip_before = _where(_paid(data, "2026-09"), segment="vip").num_rows
    vip_after = _where(_paid(data, "2026-10"), segment="vip").num_rows
    assert abs(_rel(vip_before, vip_after)) < 0.10
    # "new" keeps growing as customers sign up over the year; it does not fall
    new_before = _where(_paid(data, "2026-09"), segment="new").num_rows
    new_after = _where(_paid(data, "2026-10"), segment="new").num_rows
    assert -0.05 < _rel(new_before, new_after) < 0.25


def test_story_regular_churn_rises(story):
    orders = _where(story["orders"], segment="regular")
    month = orders["_month"]

    def buyers(m: str) -> set:
        return _distinct(orders.filter(pc.equal(month, m))["customer_id"])

    aug, sep, oct_ = buyers("2026-08"), buyers("2026-09"), buyers("2026-10")
    churn_before = len(aug - sep) / len(aug)
    churn_story = len(sep - oct_) / len(sep)
    assert churn_story > churn_before + 0.15


def test_story_regular_open_rate_falls(story):
    data = story
    regular = _rel(_open_rate(data, "2026-09", "regular"), _open_rate(data, "2026-10", "regular"))
    assert regular < -0.30
    for segment in ("new", "vip"):
        other = _rel(_open_rate(data, "2026-09", segment), _open_rate(data, "2026-10", segment))
        assert abs(other) < 0.10, segment
    others = _rel(
        _open_rate(data, "2026-09", exclude="regular"), _open_rate(data, "2026-10", exclude="regular")
    )
    assert abs(others) < 0.10


def test_story_regular_nps_drops(story):
    data = story
    assert _nps(data, "2026-10", "regular") < _nps(data, "2026-09", "regular") - 25
    others_before = _nps(data, "2026-09", exclude="regular")
    others_after = _nps(data, "2026-10", exclude="regular")
    assert abs(others_after - others_before) < 15


def test_months_before_the_story_are_steady(story):
    data = story
    for before, after in (("2026-07", "2026-08"), ("2026-08", "2026-09")):
        b, a = _paid(data, before), _paid(data, after)
        assert abs(_rel(_aov(b.filter(_north_app(b))), _aov(a.filter(_north_app(a))))) < 0.15
        assert abs(_rel(_aov(b), _aov(a))) < 0.05
        b_regular = _where(b, segment="regular").num_rows
        a_regular = _where(a, segment="regular").num_rows
        assert abs(_rel(b_regular, a_regular)) < 0.10
        assert abs(_rel(_open_rate(data, before, "regular"), _open_rate(data, after, "regular"))) < 0.10


def test_story_conversion_falls_while_traffic_holds(story):
    data = {**story, "traffic": sample_data()["traffic"]}
    for channel, expected in (("web", 0.026), ("app", 0.038), ("marketplace", 0.031)):
        for month in ("2026-07", "2026-08", "2026-09"):
            assert abs(_conversion(data, month, channel) - expected) < 0.004, (channel, month)
    assert _conversion(data, "2026-10") < 0.88 * _conversion(data, "2026-09")
    traffic = data["traffic"]
    sessions = {m: pc.sum(traffic.filter(pc.equal(_month(traffic["date"]), m))["sessions"]).as_py()
                for m in ("2026-09", "2026-10")}
    assert sessions["2026-10"] > 0.97 * sessions["2026-09"]


def test_story_regular_members_cancel_more(data):
    subs = data["subscriptions"]

    def churn(month: int, segment: str) -> float:
        before = _members(subs, month - 1, segment=segment)
        return len(before - _members(subs, month, segment=segment)) / len(before)

    usual = max(churn(m, "regular") for m in range(2, 10))
    assert churn(10, "regular") > usual + 0.02
    assert churn(10, "vip") < 0.05
