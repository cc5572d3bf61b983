"""Root causes on realistic shop scenarios: planted causes of several kinds, scored by recall@3 and precision@3.

    python bench/rca_shop.py [--seeds 10] [--first-seed 0] [--kinds aov_2d,churn] [--verbose]

Every case is a small online shop over ten months, generated afresh from its seed: about 3,000 customers, each
with a region, an acquisition channel and a segment (bargain / regular / vip) that never change, who buy
some months and not others (each segment at its own rate and basket), ~15 % guest orders with a null
customer id, ~5 % refunds, a seasonal swing of ±15 % in activity, and email campaigns with their own open
rates. Two distractors in every case: a tiny region ("Islands", 2 % of the customers) and a tiny channel
("phone", 2 %) whose activity and baskets swing by a random ±40 % every month without any cause.

In the last month one cause of one kind is planted, and the metric the kind is about is explained through
the public API (``tree.explain(data, metric, baseline=month 9, current=month 10)``, every dimension):

============== =========================================================== ======================= =====================
kind           what happens in the last month                              explained metric        the right answer
============== =========================================================== ======================= =====================
aov_2d         baskets fall to 50–70 % in one region × channel              sales (= customers ×    region & channel
                                                                            frequency × aov)
frequency      one segment's active customers place 70 % fewer extra orders             sales                   segment
churn          a third to a half of one segment's customers stay away             churn rate              segment
refunds        one channel's refund share triples                           refund rate             channel
mix            the channel with the smallest baskets gets 60–90 % more      aov                     none: mix, no rate
               customers back, every channel's basket unchanged                                     cause
open_rate      one campaign's open rate falls to 50–65 %                    open rate               campaign
acquisition    app or web brings 25–45 % of its usual new customers              new customers           channel
============== =========================================================== ======================= =====================

A reported root cause matches when its segment equals the planted one exactly (same dimensions, same
values). Over the top three root causes of every case: **recall@3** = matches / planted causes, and
**precision@3** = matches / causes reported (micro-averaged over the cases; for ``mix`` every reported cause
is a false one). Seconds per case are the ``explain`` call only (the tree is compiled once), on one process.
The generator's constants describe a shop; none is tuned to the method (the same generator would serve any).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections import defaultdict

import numpy as np
import pyarrow as pa

import metrictree

TREE = """
tree shop
grain month
source orders {
    time day
    dimensions region, channel, segment
    entity customer_id
}
source emails {
    time day
    dimensions campaign, region
}
metric gross = sum(orders.amount) where orders.status == "paid" { unit EUR }
metric paid_orders = count(orders) where orders.status == "paid"
metric all_orders = count(orders)
metric refunds = count(orders) where orders.status == "refunded"
metric customers = count_distinct(orders.customer_id) where orders.status == "paid"
metric churned = churned_customers(orders) where orders.status == "paid"
metric new_customers = new_customers(orders) where orders.status == "paid"
metric aov = gross / paid_orders { unit EUR }
metric frequency = paid_orders / customers
metric sales = customers * frequency * aov { unit EUR }
metric churn_rate = churned / customers[-1] { unit % }
metric refund_rate = refunds / all_orders { unit % }
metric opens = sum(emails.opened)
metric delivered = sum(emails.delivered)
metric open_rate = opens / delivered { unit % }
"""

MONTHS = 10
START = dt.date(2025, 1, 1)
CUSTOMERS = 3000
REGIONS = ("North", "South", "East", "West", "Islands")
REGION_SHARE = (0.32, 0.27, 0.22, 0.17, 0.02)
CHANNELS = ("app", "web", "marketplace", "phone")
CHANNEL_SHARE = (0.40, 0.38, 0.20, 0.02)
CHANNEL_BASKET = (1.0, 1.1, 0.7, 1.0)
SEGMENTS = ("bargain", "regular", "vip")
SEGMENT_SHARE = (0.35, 0.5, 0.15)
ACTIVE = (0.35, 0.6, 0.8)          # chance a customer buys in a month
EXTRA_ORDERS = (0.1, 0.5, 1.2)     # Poisson mean of orders beyond the first, in an active month
BASKET = (35.0, 60.0, 140.0)       # mean basket, EUR
GUEST_SHARE = 0.15
REFUND_SHARE = 0.05
CAMPAIGNS = ("welcome", "weekly", "promo", "winback")
OPEN_RATE = (0.45, 0.22, 0.28, 0.15)
KINDS = ("aov_2d", "frequency", "churn", "refunds", "mix", "open_rate", "acquisition")
METRIC = {"aov_2d": "sales", "frequency": "sales", "churn": "churn_rate", "refunds": "refund_rate", "mix": "aov",
          "open_rate": "open_rate", "acquisition": "new_customers"}


def _month_day(rng, month: int, n: int) -> np.ndarray:
    first = dt.date(START.year + (START.month - 1 + month) // 12, (START.month - 1 + month) % 12 + 1, 1)
    return np.datetime64(first) + rng.integers(0, 28, n).astype("timedelta64[D]")


def scenario(kind: str, seed: int) -> tuple[dict[str, pa.Table], str, dict[str, str] | None]:
    """One case: the data, the metric to explain and the planted segment (``None`` for a pure mix shift)."""
    rng = np.random.default_rng([KINDS.index(kind), seed])
    last = MONTHS - 1
    region = rng.choice(len(REGIONS), CUSTOMERS, p=REGION_SHARE)
    channel = rng.choice(len(CHANNELS), CUSTOMERS, p=CHANNEL_SHARE)
    segment = rng.choice(len(SEGMENTS), CUSTOMERS, p=SEGMENT_SHARE)
    # Customers arrive over the months: a third were there before the data starts.
    joined = np.where(rng.random(CUSTOMERS) < 0.33, 0, rng.integers(0, MONTHS, CUSTOMERS))
    season = 1 + 0.15 * np.sin(2 * np.pi * (np.arange(MONTHS) + rng.integers(0, 12)) / 12)
    # The distractors: a tiny region and a tiny channel that swing every month for no reason.
    swing_region = np.exp(rng.normal(0, 0.4, MONTHS))
    swing_channel = np.exp(rng.normal(0, 0.4, MONTHS))

    truth: dict[str, str] | None = None
    active_factor = np.ones((MONTHS, CUSTOMERS))
    orders_factor = np.ones((MONTHS, CUSTOMERS))
    # Causes tied to a place or a channel act on every order there, guests' too.
    basket_factor = np.ones((MONTHS, len(REGIONS), len(CHANNELS)))
    refund_share = np.full((MONTHS, len(CHANNELS)), REFUND_SHARE)
    big_regions, big_channels = range(4), range(3)
    if kind == "aov_2d":
        r, c = rng.choice(list(big_regions)), rng.choice(list(big_channels))
        basket_factor[last, r, c] = rng.uniform(0.5, 0.7)
        truth = {"region": REGIONS[r], "channel": CHANNELS[c]}
    elif kind == "frequency":
        s = rng.choice([1, 2])
        orders_factor[last, segment == s] = 0.3
        truth = {"segment": SEGMENTS[s]}
    elif kind == "churn":
        s = rng.choice([1, 2])
        # A third to a half of them stay away: twice to three times the usual churn.
        active_factor[last, segment == s] = rng.uniform(0.5, 0.67)
        truth = {"segment": SEGMENTS[s]}
    elif kind == "refunds":
        c = rng.choice(list(big_channels))
        refund_share[last, c] = REFUND_SHARE * 3
        truth = {"channel": CHANNELS[c]}
    elif kind == "mix":
        cheapest = int(np.argmin(CHANNEL_BASKET[:3]))
        active_factor[last, channel == cheapest] = rng.uniform(1.6, 1.9)
    elif kind == "acquisition":
        c = rng.choice([0, 1])  # app or web: a channel that brings customers in numbers
        arriving = (joined == last) & (channel == c)
        # Most of them never come: they join after the data ends.
        joined[arriving & (rng.random(CUSTOMERS) > rng.uniform(0.25, 0.45))] = MONTHS
        truth = {"channel": CHANNELS[c]}

    rows = defaultdict(list)
    for month in range(MONTHS):
        p = np.array(ACTIVE)[segment] * season[month] * active_factor[month]
        p = np.where(region == 4, p * swing_region[month], p)
        p = np.where(channel == 3, p * swing_channel[month], p)
        # A customer arrives with a first order; later months at their segment's rate.
        buying = ((joined <= month) & (rng.random(CUSTOMERS) < np.clip(p, 0, 0.98))) | (joined == month)
        who = np.flatnonzero(buying)
        count = 1 + rng.poisson(np.array(EXTRA_ORDERS)[segment[who]] * orders_factor[month, who])
        buyer = np.repeat(who, count)
        basket = np.array(BASKET)[segment[buyer]] * np.array(CHANNEL_BASKET)[channel[buyer]] \
            * basket_factor[month, region[buyer], channel[buyer]]
        basket = np.where(region[buyer] == 4, basket * swing_region[month], basket)
        basket = np.where(channel[buyer] == 3, basket * swing_channel[month], basket)
        amount = np.round(rng.gamma(4.0, basket / 4.0), 2)
        refunded = rng.random(len(buyer)) < refund_share[month, channel[buyer]]
        rows["day"].append(_month_day(rng, month, len(buyer)))
        rows["region"].append(region[buyer])
        rows["channel"].append(channel[buyer])
        rows["segment"].append(segment[buyer])
        rows["customer"].append(buyer)
        rows["guest"].append(np.zeros(len(buyer), bool))
        rows["amount"].append(amount)
        rows["refunded"].append(refunded)
        # Guest checkouts: no customer id, no segment; they buy at a regular basket.
        guests = rng.poisson(GUEST_SHARE / (1 - GUEST_SHARE) * len(buyer))
        g_channel = rng.choice(len(CHANNELS), guests, p=CHANNEL_SHARE)
        g_region = rng.choice(len(REGIONS), guests, p=REGION_SHARE)
        rows["day"].append(_month_day(rng, month, guests))
        rows["region"].append(g_region)
        rows["channel"].append(g_channel)
        rows["segment"].append(np.full(guests, -1))
        rows["customer"].append(np.full(guests, -1))
        rows["guest"].append(np.ones(guests, bool))
        g_basket = BASKET[1] * np.array(CHANNEL_BASKET)[g_channel] * basket_factor[month, g_region, g_channel]
        rows["amount"].append(np.round(rng.gamma(4.0, g_basket / 4.0), 2))
        rows["refunded"].append(rng.random(guests) < refund_share[month, g_channel])
    col = {k: np.concatenate(v) for k, v in rows.items()}
    guest = col["guest"]
    orders = pa.table({
        "day": pa.array(col["day"].astype("datetime64[D]"), pa.date32()),
        "region": pa.array(np.array(REGIONS)[col["region"]]),
        "channel": pa.array(np.array(CHANNELS)[col["channel"]]),
        "segment": pa.array(np.where(guest, "guest", np.array(SEGMENTS)[np.maximum(col["segment"], 0)])),
        "customer_id": pa.array(np.where(guest, 0, col["customer"] + 1), mask=guest),
        "amount": pa.array(col["amount"]),
        "status": pa.array(np.where(col["refunded"], "refunded", "paid")),
    })

    open_rate = np.tile(np.array(OPEN_RATE), (MONTHS, 1))
    if kind == "open_rate":
        k = rng.choice(len(CAMPAIGNS))
        open_rate[last, k] *= rng.uniform(0.5, 0.65)
        truth = {"campaign": CAMPAIGNS[k]}
    sends = defaultdict(list)
    for month in range(MONTHS):
        for k in range(len(CAMPAIGNS)):
            for r, share in enumerate(REGION_SHARE):
                delivered = rng.poisson(4000 * share * season[month], 4)  # four sends a month
                sends["day"].append(_month_day(rng, month, 4))
                sends["campaign"].append(np.full(4, k))
                sends["region"].append(np.full(4, r))
                sends["delivered"].append(delivered)
                sends["opened"].append(rng.binomial(delivered, min(0.95, open_rate[month, k] * rng.uniform(0.9, 1.1))))
    s = {k: np.concatenate(v) for k, v in sends.items()}
    emails = pa.table({"day": pa.array(s["day"].astype("datetime64[D]"), pa.date32()),
                       "campaign": pa.array(np.array(CAMPAIGNS)[s["campaign"]]),
                       "region": pa.array(np.array(REGIONS)[s["region"]]),
                       "delivered": pa.array(s["delivered"]), "opened": pa.array(s["opened"])})
    return {"orders": orders, "emails": emails}, METRIC[kind], truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="cases per kind (default 10)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--verbose", action="store_true", help="print every case that is not right")
    args = parser.parse_args(argv)
    tree = metrictree.loads(TREE, "shop.tree")
    baseline = (START.replace(month=START.month + MONTHS - 2)).strftime("%Y-%m")
    current = (START.replace(month=START.month + MONTHS - 1)).strftime("%Y-%m")
    per_kind = defaultdict(lambda: [0, 0, 0, 0.0, 0])  # hits, planted, reported, seconds, cases
    for kind in args.kinds.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            data, metric, truth = scenario(kind, seed)
            started = time.perf_counter()
            explanation = tree.explain(data, metric, baseline, current)
            seconds = time.perf_counter() - started
            named = [dict(c.where) for c in explanation.root_causes[:3]]
            hits = sum(1 for w in named if truth is not None and w == truth)
            row = per_kind[kind]
            row[0] += hits
            row[1] += truth is not None
            row[2] += len(named)
            row[3] += seconds
            row[4] += 1
            if args.verbose and (hits < (truth is not None) or len(named) > hits):
                print(f"  {kind} seed {seed}: planted {truth}, named {named}"
                      + (f" ({explanation.reason})" if explanation.reason else ""), file=sys.stderr)
    print(f"{'kind':<13} {'cases':>5} {'recall@3':>9} {'precision@3':>12} {'s/case':>7}")
    total = [0, 0, 0, 0.0, 0]
    for kind, (hits, planted, reported, seconds, cases) in per_kind.items():
        recall = hits / planted if planted else float("nan")
        precision = hits / reported if reported else (1.0 if not planted else 0.0)
        print(f"{kind:<13} {cases:>5} {recall:>9.2f} {precision:>12.2f} {seconds / cases:>7.3f}")
        total = [a + b for a, b in zip(total, (hits, planted, reported, seconds, cases), strict=True)]
    hits, planted, reported, seconds, cases = total
    print(f"{'overall':<13} {cases:>5} {hits / planted if planted else float('nan'):>9.2f} "
          f"{hits / reported if reported else 1.0:>12.2f} {seconds / cases:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
