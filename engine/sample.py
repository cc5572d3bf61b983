"""Bundled sample data for metrictree: a small online shop with a planted story.

Call :func:`sample_data` to get six Arrow tables::

    {"orders": ..., "emails": ..., "surveys": ..., "spend": ...,
     "traffic": ..., "subscriptions": ...}

The data is synthetic, generated from fixed seeds with the standard library's
:mod:`random` (no numpy, no wall clock), so every call on every machine and
every Python 3.11+ gives identical tables.  The result is cached, so repeated
calls return the very same ``pyarrow.Table`` objects.

The shop
--------
About 4,000 customers buy over twelve months, 2025-11-01 .. 2026-10-31.
Every customer has a fixed

* ``region``: North / South / Center / East (30 / 25 / 25 / 20 %),
* ``segment``: new / regular / vip (35 / 50 / 15 %).  Regular and vip
  customers signed up before the period; "new" customers sign up spread over
  the year and only order from their signup date on, so the customer base
  grows slowly.  Vip customers order more often and spend more,
* favourite channel (web / app / marketplace), used for most of their orders.

Each month a customer is either *active* or *quiet*.  Active customers drift
into quiet with a small probability and quiet ones come back (reactivation)
with a larger one, so churn and retention have something to measure.  An
active customer orders with a segment-dependent probability, then possibly a
few more times.  Order amounts are lognormal around 2,500 RUB (vip higher);
cost of goods is about 60 % of the amount.  About 90 % of orders are paid,
6 % refunded and 4 % cancelled.

Alongside the orders there are weekly email campaigns ("weekly_digest" on
Tuesdays, "promo" on Thursdays) and a monthly "reactivation" mailing (first
Wednesday), each sent to every segment x region with aggregated counts; a few
hundred NPS and CSAT survey answers a month from customers who ordered;
marketing / sales spend per month and channel; daily site and app traffic
(sessions and leads) per channel and region; and the monthly rows of the
shop's paid membership.

Traffic (``traffic``)
---------------------
One row per day, channel and region: ``sessions`` and ``leads`` (sign-ups
that have not bought yet).  Sessions follow the orders the shop would have
had without the planted story, at a steady conversion of about 2.6 % (web),
3.8 % (app) and 3.1 % (marketplace) of sessions into paid orders; about 1 %
of sessions leave a lead, and about one lead in ten becomes a new customer.

The membership (``subscriptions``)
----------------------------------
Customers can subscribe to a paid delivery membership, on plan "basic"
(299 RUB a month), "plus" (599) or "premium" (1,490).  One row per member
and month while they pay (``account_id`` is the customer's id, with the
customer's region and segment, ``mrr`` the plan's monthly price).  About
450 customers are members in the first month; others join over the year
(vip and new customers more readily), some upgrade to the next plan, and
members cancel at a segment-dependent rate (new 6 %, regular 3.5 %,
vip 2 % a month), so the membership grows to about 800 members and MRR
from about 300,000 to 580,000 RUB.

Until 2026-09 everything is steady: mild seasonality (a November-December
holiday bump, a soft January and summer) and noise, nothing else.  September
and October share the same seasonal factors on purpose.

The planted story (2026-10, the last month)
-------------------------------------------
1. **Average order value falls in North x app.**  A botched discount in the
   app makes order amounts in region North on channel app ~35 % lower;
   every other region x channel is unchanged.
2. **Segment "regular" buys less.**  Regular customers' probability of
   ordering in a month drops by ~40 %, so many of them who were active in
   2026-09 place no order in 2026-10 (churn), and the open rate of emails to
   the regular segment falls from ~25 % to ~14 % (clicks and attributed
   conversions follow).
3. **NPS of segment "regular" drops.**  Their October NPS answers have many
   more detractors.

Both later tables show cause 2 too: traffic follows the orders the shop
would have had, so the conversion of sessions into paid orders falls from
about 3.0 % to 2.5 % in 2026-10 (regular customers visit but do not buy),
and regular members cancel their membership at three times the usual rate
in 2026-10, so MRR stops growing.

``metrictree explain`` on the sample trees should find exactly these causes.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import functools
import itertools
import math
import operator
import random

import pyarrow as pa

__all__ = [
    "EMAILS_SCHEMA",
    "END",
    "MONTHS",
    "ORDERS_SCHEMA",
    "SEED",
    "SPEND_SCHEMA",
    "START",
    "STORY_MONTH",
    "SUBSCRIPTIONS_SCHEMA",
    "SURVEYS_SCHEMA",
    "TRAFFIC_SCHEMA",
    "generate_sample_data",
    "sample_data",
]

SEED = 20261

START = dt.date(2025, 11, 1)
END = dt.date(2026, 10, 31)
MONTHS: tuple[tuple[int, int], ...] = ((2025, 11), (2025, 12)) + tuple(
    (2026, m) for m in range(1, 11)
)
STORY_MONTH = (2026, 10)
_STORY_INDEX = MONTHS.index(STORY_MONTH)

N_CUSTOMERS = 4000

REGIONS = ("North", "South", "Center", "East")
REGION_WEIGHTS = (0.30, 0.25, 0.25, 0.20)
SEGMENTS = ("new", "regular", "vip")
SEGMENT_WEIGHTS = (0.35, 0.50, 0.15)
CHANNELS = ("web", "app", "marketplace")
CHANNEL_WEIGHTS = (0.45, 0.35, 0.20)
STATUSES = ("paid", "refunded", "cancelled")
STATUS_WEIGHTS = (0.90, 0.06, 0.04)
CAMPAIGNS = ("weekly_digest", "promo", "reactivation")
KINDS = ("marketing", "sales")

# --- order behaviour ------------------------------------------------------

# Seasonal factor on the probability of ordering, one per month of MONTHS
# (2025-11 .. 2026-10).  2026-09 and 2026-10 are equal on purpose.
_ORDER_SEASON = (1.05, 1.12, 0.93, 0.97, 1.0, 1.0, 1.0, 0.97, 0.96, 0.98, 1.0, 1.0)
# Seasonal factor on order amounts (December gifts), same convention.
_AMOUNT_SEASON = (1.02, 1.07, 0.98, 1.0, 1.0, 1.0, 1.0, 1.0, 0.99, 1.0, 1.0, 1.0)

# Active <-> quiet state machine, per month.
_P_GO_QUIET = {"new": 0.10, "regular": 0.07, "vip": 0.04}
_P_COME_BACK = {"new": 0.15, "regular": 0.22, "vip": 0.30}
# An active customer orders at least once with this probability ...
_P_ORDER = {"new": 0.65, "regular": 0.75, "vip": 0.88}
# ... and then keeps ordering again with this probability (geometric).
_P_EXTRA = {"new": 0.35, "regular": 0.45, "vip": 0.60}
_P_FIRST_ORDER = 0.85  # a "new" customer ordering in the signup month
_MAX_ORDERS_PER_MONTH = 8
_P_FAVOURITE_CHANNEL = 0.75

# Amount ~ lognormal(log(median), sigma) * channel factor * season.
_AMOUNT_MEDIAN = {"new": 2150.0, "regular": 2350.0, "vip": 2800.0}
_AMOUNT_SIGMA = 0.40
_CHANNEL_AMOUNT = {"web": 1.02, "app": 1.0, "marketplace": 0.95}
_COST_SHARE_MEAN = 0.60
_COST_SHARE_SD = 0.06

# Hour-of-day weights for order timestamps (0..23).
_HOUR_WEIGHTS = (1, 1, 0.5, 0.3, 0.3, 0.5, 1, 2, 3, 4, 5, 5, 6, 6, 5, 5, 5, 6, 7, 8, 9, 8, 5, 3)

# --- planted story (2026-10) ----------------------------------------------

STORY_NORTH_APP_AMOUNT_FACTOR = 0.65  # AOV in North x app -35 %
STORY_REGULAR_ORDER_FACTOR = 0.60  # regular's probability of ordering -40 %
STORY_REGULAR_OPEN_FACTOR = 0.14 / 0.25  # regular's open rate 25 % -> 14 %
STORY_REGULAR_CANCEL_FACTOR = 3.0  # regular members cancel 3x as often

# --- emails -----------------------------------------------------------------

_AUDIENCE_SHARE = {"weekly_digest": 0.92, "promo": 0.75, "reactivation": 0.22}
_BOUNCE_RATE = 0.02
_OPEN_RATE = {"weekly_digest": 0.25, "promo": 0.26, "reactivation": 0.21}
_SEGMENT_OPEN = {"new": 0.96, "regular": 1.0, "vip": 1.10}
_CLICK_TO_OPEN = {"weekly_digest": 0.14, "promo": 0.18, "reactivation": 0.15}
_CONVERSION_RATE = {"weekly_digest": 0.10, "promo": 0.15, "reactivation": 0.12}

# --- surveys ------------------------------------------------------------------

_NPS_PER_MONTH = 260
_CSAT_PER_MONTH = 180
# Weights for scores 0..10: detractors 15 %, passives 27 %, promoters 58 % (NPS +43).
_NPS_WEIGHTS = (1, 1, 1, 1, 2, 3, 6, 10, 17, 26, 32)
# Regular in 2026-10: detractors 35 %, passives 27 %, promoters 38 % (NPS +3).
_NPS_WEIGHTS_STORY = (3, 2, 3, 4, 6, 8, 9, 12, 15, 18, 20)
# Weights for scores 1..5.
_CSAT_WEIGHTS = (3, 5, 12, 35, 45)

# --- spend ----------------------------------------------------------------------

_SPEND_BASE = {
    ("web", "marketing"): 950_000.0,
    ("web", "sales"): 250_000.0,
    ("app", "marketing"): 700_000.0,
    ("app", "sales"): 150_000.0,
    ("marketplace", "marketing"): 350_000.0,
    ("marketplace", "sales"): 600_000.0,
}
_MARKETING_SEASON = (1.25, 1.30, 0.90, 0.95, 1.0, 1.0, 1.0, 0.95, 0.95, 1.0, 1.0, 1.0)

# --- traffic ----------------------------------------------------------------------

# Share of sessions that end in a paid order, per channel.
_SESSION_CONVERSION = {"web": 0.026, "app": 0.038, "marketplace": 0.031}
# Relative traffic per weekday, Monday first (weekends are busier).
_WEEKDAY_TRAFFIC = (0.95, 0.95, 0.95, 0.97, 1.0, 1.08, 1.10)
_LEAD_RATE = 0.010  # share of sessions that leave a lead

# --- the membership -----------------------------------------------------------------

PLANS = ("basic", "plus", "premium")
PLAN_PRICE = {"basic": 299.0, "plus": 599.0, "premium": 1490.0}
_PLAN_WEIGHTS = {"new": (0.60, 0.30, 0.10), "regular": (0.50, 0.35, 0.15), "vip": (0.20, 0.40, 0.40)}
_P_MEMBER_AT_START = {"new": 0.0, "regular": 0.12, "vip": 0.30}
_P_JOIN = {"new": 0.03, "regular": 0.015, "vip": 0.03}  # a month, for customers who are not members
_P_CANCEL = {"new": 0.06, "regular": 0.035, "vip": 0.02}  # a month, for members
_P_UPGRADE = 0.02  # a month, to the next plan

# --- schemas ----------------------------------------------------------------------

ORDERS_SCHEMA = pa.schema(
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
EMAILS_SCHEMA = pa.schema(
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
SURVEYS_SCHEMA = pa.schema(
    [
        ("answered_at", pa.date32()),
        ("customer_id", pa.string()),
        ("region", pa.string()),
        ("segment", pa.string()),
        ("survey", pa.string()),
        ("score", pa.int64()),
    ]
)
SPEND_SCHEMA = pa.schema(
    [
        ("month", pa.date32()),
        ("channel", pa.string()),
        ("kind", pa.string()),
        ("amount", pa.float64()),
    ]
)
TRAFFIC_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("channel", pa.string()),
        ("region", pa.string()),
        ("sessions", pa.int64()),
        ("leads", pa.int64()),
    ]
)
SUBSCRIPTIONS_SCHEMA = pa.schema(
    [
        ("month", pa.date32()),
        ("account_id", pa.string()),
        ("plan", pa.string()),
        ("mrr", pa.float64()),
        ("region", pa.string()),
        ("segment", pa.string()),
    ]
)


class _Customer:
    __slots__ = ("index", "customer_id", "region", "segment", "signup", "channel")

    def __init__(
        self,
        index: int,
        customer_id: str,
        region: str,
        segment: str,
        signup: dt.date,
        channel: str,
    ) -> None:
        self.index = index
        self.customer_id = customer_id
        self.region = region
        self.segment = segment
        self.signup = signup
        self.channel = channel


def _days_in(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


class _Choice:
    """Weighted choice with precomputed cumulative weights (faster than
    ``rng.choices`` in the hot loops, and just as deterministic)."""

    __slots__ = ("values", "cum", "total")

    def __init__(self, values: tuple, weights: tuple) -> None:
        self.values = values
        self.cum = list(itertools.accumulate(weights))
        self.total = self.cum[-1]

    def __call__(self, rng: random.Random):
        return self.values[bisect.bisect(self.cum, rng.random() * self.total)]


def _pick(rng: random.Random, values: tuple, weights: tuple):
    return rng.choices(values, weights)[0]


def _uniform_int(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high] (like ``randint``, one ``random()`` call)."""
    return low + int(rng.random() * (high - low + 1))


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Binomial(n, p) draw; exact for small n, normal approximation otherwise.

    (``random.binomialvariate`` only exists from Python 3.12.)
    """
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if n < 40:
        return sum(1 for _ in range(n) if rng.random() < p)
    k = round(rng.normalvariate(n * p, math.sqrt(n * p * (1.0 - p))))
    return min(max(k, 0), n)


def _customers(rng: random.Random) -> list[_Customer]:
    signup_month_weights = (1.0,) * len(MONTHS)  # "new" signups spread evenly
    out = []
    for i in range(1, N_CUSTOMERS + 1):
        region = _pick(rng, REGIONS, REGION_WEIGHTS)
        segment = _pick(rng, SEGMENTS, SEGMENT_WEIGHTS)
        if segment == "new":
            year, month = _pick(rng, MONTHS, signup_month_weights)
            signup = dt.date(year, month, rng.randint(1, _days_in(year, month)))
        else:
            signup = START - dt.timedelta(days=rng.randint(30, 3 * 365))
        channel = _pick(rng, CHANNELS, CHANNEL_WEIGHTS)
        out.append(_Customer(i, f"C{i:05d}", region, segment, signup, channel))
    return out


_US_PER_DAY = 86_400_000_000
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _orders(rng: random.Random, customers: list[_Customer]) -> list[tuple]:
    """Order rows, sorted by date::

        (microseconds since epoch, customer index, month index, customer,
         channel, status, amount, cost)
    """
    pick_hour = _Choice(tuple(range(24)), _HOUR_WEIGHTS)
    pick_channel = _Choice(CHANNELS, CHANNEL_WEIGHTS)
    pick_status = _Choice(STATUSES, STATUS_WEIGHTS)
    # (index, first ordinal, last ordinal, days in month, epoch day of the 1st)
    months = []
    for mi, (year, month) in enumerate(MONTHS):
        first = dt.date(year, month, 1).toordinal()
        dim = _days_in(year, month)
        months.append((mi, first, first + dim - 1, dim, first - _EPOCH_ORDINAL))
    rows = []
    append = rows.append
    gauss = rng.gauss
    uniform = rng.random
    for c in customers:
        seg = c.segment
        signup = c.signup.toordinal()
        p_quiet, p_back = _P_GO_QUIET[seg], _P_COME_BACK[seg]
        p_extra = _P_EXTRA[seg]
        active = uniform() < p_back / (p_quiet + p_back)  # stationary start
        mu = math.log(_AMOUNT_MEDIAN[seg])
        north = c.region == "North"
        for mi, first, last, dim, epoch_day in months:
            if signup > last:
                continue
            story = mi == _STORY_INDEX
            if signup >= first:  # signup month of a "new" customer
                first_day = signup - first + 1
                active = True
                p = _P_FIRST_ORDER
            else:
                first_day = 1
                if active:
                    active = uniform() >= p_quiet
                else:
                    active = uniform() < p_back
                if not active:
                    continue
                p = _P_ORDER[seg] * _ORDER_SEASON[mi]
            if story and seg == "regular":
                p *= STORY_REGULAR_ORDER_FACTOR
            if uniform() >= p:
                continue
            n = 1
            while n < _MAX_ORDERS_PER_MONTH and uniform() < p_extra:
                n += 1
            for _ in range(n):
                day = _uniform_int(rng, first_day, dim)
                second_of_day = pick_hour(rng) * 3600 + _uniform_int(rng, 0, 3599)
                when = (epoch_day + day - 1) * _US_PER_DAY + second_of_day * 1_000_000
                if uniform() < _P_FAVOURITE_CHANNEL:
                    channel = c.channel
                else:
                    channel = pick_channel(rng)
                status = pick_status(rng)
                amount = (
                    math.exp(gauss(mu, _AMOUNT_SIGMA))
                    * _CHANNEL_AMOUNT[channel]
                    * _AMOUNT_SEASON[mi]
                )
                if story and north and channel == "app":
                    amount *= STORY_NORTH_APP_AMOUNT_FACTOR
                amount = round(max(amount, 99.0), 2)
                share = min(max(gauss(_COST_SHARE_MEAN, _COST_SHARE_SD), 0.35), 0.85)
                append((when, c.index, mi, c, channel, status, amount, round(amount * share, 2)))
    rows.sort(key=operator.itemgetter(0, 1))
    return rows


def _order_day(row: tuple) -> dt.date:
    return dt.date.fromordinal(_EPOCH_ORDINAL + row[0] // _US_PER_DAY)


def _orders_table(rows: list[tuple]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "order_id": list(range(1, len(rows) + 1)),
            "order_date": pa.array([r[0] for r in rows], pa.int64()).cast(pa.timestamp("us")),
            "customer_id": [r[3].customer_id for r in rows],
            "channel": [r[4] for r in rows],
            "region": [r[3].region for r in rows],
            "segment": [r[3].segment for r in rows],
            "status": [r[5] for r in rows],
            "amount": [r[6] for r in rows],
            "cost": [r[7] for r in rows],
        },
        schema=ORDERS_SCHEMA,
    )


def _send_dates() -> list[tuple[dt.date, str]]:
    """(date, campaign): digest on Tuesdays, promo on Thursdays, reactivation
    on the first Wednesday of each month."""
    out = []
    day = START
    while day <= END:
        weekday = day.weekday()
        if weekday == 1:
            out.append((day, "weekly_digest"))
        elif weekday == 3:
            out.append((day, "promo"))
        elif weekday == 2 and day.day <= 7:
            out.append((day, "reactivation"))
        day += dt.timedelta(days=1)
    return out


def _emails(rng: random.Random, customers: list[_Customer]) -> pa.Table:
    signups: dict[tuple[str, str], list[dt.date]] = {
        (s, r): [] for s in SEGMENTS for r in REGIONS
    }
    for c in customers:
        signups[(c.segment, c.region)].append(c.signup)
    for dates in signups.values():
        dates.sort()
    cols: dict[str, list] = {name: [] for name in EMAILS_SCHEMA.names}
    for day, campaign in _send_dates():
        story = (day.year, day.month) == STORY_MONTH
        for seg in SEGMENTS:
            for region in REGIONS:
                base = bisect.bisect_right(signups[(seg, region)], day)
                audience = base * _AUDIENCE_SHARE[campaign] * rng.normalvariate(1.0, 0.01)
                sent = max(int(round(audience)), 0)
                bounced = _binomial(rng, sent, _BOUNCE_RATE)
                delivered = sent - bounced
                open_rate = _OPEN_RATE[campaign] * _SEGMENT_OPEN[seg]
                if story and seg == "regular":
                    open_rate *= STORY_REGULAR_OPEN_FACTOR
                open_rate *= rng.normalvariate(1.0, 0.03)
                opened = _binomial(rng, delivered, open_rate)
                clicked = _binomial(
                    rng, opened, _CLICK_TO_OPEN[campaign] * rng.normalvariate(1.0, 0.03)
                )
                conversions = _binomial(rng, clicked, _CONVERSION_RATE[campaign])
                cols["sent_at"].append(day)
                cols["campaign"].append(campaign)
                cols["segment"].append(seg)
                cols["region"].append(region)
                cols["sent"].append(sent)
                cols["bounced"].append(bounced)
                cols["delivered"].append(delivered)
                cols["opened"].append(opened)
                cols["clicked"].append(clicked)
                cols["conversions"].append(conversions)
    return pa.Table.from_pydict(cols, schema=EMAILS_SCHEMA)


def _surveys(rng: random.Random, order_rows: list[tuple]) -> pa.Table:
    """NPS and CSAT answers from customers who ordered, a few days after the order."""
    by_month: list[list[tuple]] = [[] for _ in MONTHS]
    for row in order_rows:
        by_month[row[2]].append(row)
    nps_scores = tuple(range(0, 11))
    csat_scores = tuple(range(1, 6))
    answers = []
    for rows in by_month:
        for survey, target in (("nps", _NPS_PER_MONTH), ("csat", _CSAT_PER_MONTH)):
            k = min(len(rows), max(0, round(target * rng.normalvariate(1.0, 0.05))))
            seen: set[int] = set()
            for row in rng.sample(rows, k):
                c = row[3]
                if c.index in seen:  # one answer per customer, survey and month
                    continue
                seen.add(c.index)
                answered = min(_order_day(row) + dt.timedelta(days=rng.randint(0, 6)), END)
                if survey == "nps":
                    story = (answered.year, answered.month) == STORY_MONTH
                    weights = (
                        _NPS_WEIGHTS_STORY if story and c.segment == "regular" else _NPS_WEIGHTS
                    )
                    score = _pick(rng, nps_scores, weights)
                else:
                    score = _pick(rng, csat_scores, _CSAT_WEIGHTS)
                answers.append((answered, c.index, survey, c, score))
    answers.sort(key=lambda a: (a[0], a[1], a[2]))
    return pa.Table.from_pydict(
        {
            "answered_at": [a[0] for a in answers],
            "customer_id": [a[3].customer_id for a in answers],
            "region": [a[3].region for a in answers],
            "segment": [a[3].segment for a in answers],
            "survey": [a[2] for a in answers],
            "score": [a[4] for a in answers],
        },
        schema=SURVEYS_SCHEMA,
    )


def _spend(rng: random.Random) -> pa.Table:
    cols: dict[str, list] = {name: [] for name in SPEND_SCHEMA.names}
    for mi, (year, month) in enumerate(MONTHS):
        for channel in CHANNELS:
            for kind in KINDS:
                amount = _SPEND_BASE[(channel, kind)]
                if kind == "marketing":
                    amount *= _MARKETING_SEASON[mi]
                else:
                    amount *= _ORDER_SEASON[mi]
                amount *= rng.normalvariate(1.0, 0.04)
                cols["month"].append(dt.date(year, month, 1))
                cols["channel"].append(channel)
                cols["kind"].append(kind)
                cols["amount"].append(round(amount, 2))
    return pa.Table.from_pydict(cols, schema=SPEND_SCHEMA)


def _traffic(rng: random.Random, order_rows: list[tuple]) -> pa.Table:
    """Daily sessions and leads per channel and region.

    Sessions follow the paid orders each month, channel and region would have
    had without the planted story (regular customers' October orders count
    ``1 / STORY_REGULAR_ORDER_FACTOR`` times), divided by the channel's
    conversion: the traffic holds up in 2026-10 while the orders fall.
    """
    expected: dict[tuple[int, str, str], float] = {}
    restore = 1.0 / STORY_REGULAR_ORDER_FACTOR
    for row in order_rows:
        if row[5] != "paid":
            continue
        customer = row[3]
        key = (row[2], row[4], customer.region)
        weight = restore if row[2] == _STORY_INDEX and customer.segment == "regular" else 1.0
        expected[key] = expected.get(key, 0.0) + weight
    cols: dict[str, list] = {name: [] for name in TRAFFIC_SCHEMA.names}
    for mi, (year, month) in enumerate(MONTHS):
        dim = _days_in(year, month)
        days = [dt.date(year, month, d) for d in range(1, dim + 1)]
        weights = [_WEEKDAY_TRAFFIC[day.weekday()] for day in days]
        total_weight = sum(weights)
        for day, weight in zip(days, weights, strict=True):
            for channel in CHANNELS:
                for region in REGIONS:
                    orders = expected.get((mi, channel, region), 0.0)
                    mean = orders / _SESSION_CONVERSION[channel] * weight / total_weight
                    sessions = max(int(round(mean * rng.normalvariate(1.0, 0.05))), 0)
                    leads = _binomial(rng, sessions, _LEAD_RATE * rng.normalvariate(1.0, 0.05))
                    cols["date"].append(day)
                    cols["channel"].append(channel)
                    cols["region"].append(region)
                    cols["sessions"].append(sessions)
                    cols["leads"].append(leads)
    return pa.Table.from_pydict(cols, schema=TRAFFIC_SCHEMA)


def _subscriptions(rng: random.Random, customers: list[_Customer]) -> pa.Table:
    """One row per member and month of the paid membership, sorted by month and account."""
    pick_plan = {seg: _Choice(PLANS, _PLAN_WEIGHTS[seg]) for seg in SEGMENTS}
    months = [(mi, dt.date(year, month, 1), dt.date(year, month, _days_in(year, month)))
              for mi, (year, month) in enumerate(MONTHS)]
    rows = []
    for c in customers:
        seg = c.segment
        plan = pick_plan[seg](rng) if rng.random() < _P_MEMBER_AT_START[seg] else None
        for mi, first, last in months:
            if c.signup > last:
                continue
            if plan is None:
                if rng.random() < _P_JOIN[seg]:
                    plan = pick_plan[seg](rng)
            elif mi > 0:
                p_cancel = _P_CANCEL[seg]
                if mi == _STORY_INDEX and seg == "regular":
                    p_cancel *= STORY_REGULAR_CANCEL_FACTOR
                if rng.random() < p_cancel:
                    plan = None
                elif plan != PLANS[-1] and rng.random() < _P_UPGRADE:
                    plan = PLANS[PLANS.index(plan) + 1]
            if plan is not None:
                rows.append((first, c.customer_id, plan, c.region, seg))
    rows.sort(key=operator.itemgetter(0, 1))
    return pa.Table.from_pydict(
        {
            "month": [r[0] for r in rows],
            "account_id": [r[1] for r in rows],
            "plan": [r[2] for r in rows],
            "mrr": [PLAN_PRICE[r[2]] for r in rows],
            "region": [r[3] for r in rows],
            "segment": [r[4] for r in rows],
        },
        schema=SUBSCRIPTIONS_SCHEMA,
    )


def generate_sample_data(seed: int = SEED) -> dict[str, pa.Table]:
    """Generate the sample tables from scratch (uncached; see :func:`sample_data`).

    Each table has its own generator derived from ``seed``, so changing one
    table's recipe does not reshuffle the others.  The planted story is
    checked for the default seed only.
    """
    customers = _customers(random.Random(seed * 10 + 1))
    order_rows = _orders(random.Random(seed * 10 + 2), customers)
    return {
        "orders": _orders_table(order_rows),
        "emails": _emails(random.Random(seed * 10 + 3), customers),
        "surveys": _surveys(random.Random(seed * 10 + 4), order_rows),
        "spend": _spend(random.Random(seed * 10 + 5)),
        "traffic": _traffic(random.Random(seed * 10 + 6), order_rows),
        "subscriptions": _subscriptions(random.Random(seed * 10 + 7), customers),
    }


@functools.lru_cache(maxsize=1)
def _cached() -> dict[str, pa.Table]:
    return generate_sample_data()


def sample_data() -> dict[str, pa.Table]:
    """The bundled sample data: {"orders", "emails", "surveys", "spend", "traffic", "subscriptions"} tables.

    Generated once per process and cached: every call returns the same
    ``pyarrow.Table`` objects (in a fresh dict, so callers may not disturb
    the cache by mutating it).
    """
    return dict(_cached())
