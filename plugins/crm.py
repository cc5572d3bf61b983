"""CRM: customer states over time, survey scores, and the ``crm`` metric library.

Customer-state functions read a source's entity (``entity customer_id``) and time;
each counts customers per period and slice, after the metric's ``where`` filter:

=========================================  ==================================================================
``active_customers(orders, window=0)``     customers with activity in the period; with ``window=90``, a
                                           customer counts as active for 90 days after each activity
``new_customers(orders)``                  customers whose first activity ever falls in the period
``returning_customers(orders)``            active customers who were active before the period
``churned_customers(orders)``              active in the previous period, not in this one
``retained_customers(orders)``             active in the previous period and in this one
``reactivated_customers(orders, after=2)`` back in the period after at least ``after`` periods without activity
``repeat_customers(orders, min_purchases=2, over="period")``
                                           active customers with ≥ ``min_purchases`` rows in the period
                                           (``over="ever"``: up to the end of the period)
``customer_lifetime(orders)``              mean number of periods since each active customer's first activity,
                                           counting the first period as 1
=========================================  ==================================================================

Rows whose entity is null (guest checkouts) belong to no customer and are not counted;
the evaluation says how many there were (``Evaluation.skipped``, a note on the command line).
States are taken within each slice: with ``by=["channel"]`` a customer who bought on
the app last month and only on the web this month has churned from the app slice.
Survey functions: ``nps(score)`` = % promoters (9–10) − % detractors (0–6) on a 0–10
scale, in points (−100 … 100); ``csat(score, positive_from=4)`` = the share of answers
at or above ``positive_from``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metrictree import lazy
from metrictree.functions import Aggregate, AggregateContext, Computed, Library, Partial, TreeFile
from metrictree.hookspecs import hookimpl

# Arrow is imported when a function first runs, not when the plugin is loaded (`metrictree check`).
pa = lazy.module("pyarrow")
pc = lazy.module("pyarrow.compute")

if TYPE_CHECKING:
    from metrictree.presence import Presence

# The column names of a custom partial's rows (the SQL forms below build their queries over them).
PERIOD, VALUE, TIME = "__period", "__value", "__time"

# --------------------------------------------------------------------------- customer states
#
# Each state is a reduce over the `Presence` of the rows a metric keeps: the distinct (customer, slice,
# period) triples as integer arrays sorted by customer, slice and period, computed once for all the
# customer-state functions (and distinct counts) over the same entity and filter. A state is a
# comparison between neighbouring triples, then a count per slice and period. Rows whose customer id is
# null (guest orders) are not customers: the presence leaves them out, and evaluation says how many.


def _lag(values: pa.Array) -> pa.Array:
    """Each value's predecessor in the array (null for the first)."""
    if not len(values):
        return values
    return pa.concat_arrays([pa.nulls(1, values.type), values.slice(0, len(values) - 1)])


def _active(presence: Presence) -> pa.Table:
    return presence.count()


def _active_within(presence: Presence) -> pa.Table:
    """Customers active in the period, or in a later one their activity's window reaches (``extra``)."""
    reach = pc.max(presence.extra).as_py() if len(presence) else 0
    reach = max(reach or 0, 0)
    width = presence.periods + reach + 1
    group, groups = presence.groups()
    if groups * (width + 1) >= 2 ** 62:
        raise OverflowError(f"{groups:,} (customer, slice) pairs × {width:,} periods do not fit 64-bit codes")
    pieces = []
    for step in range(reach + 1):
        covered = pc.greater_equal(presence.extra, step) if step else None
        codes = pc.add(pc.multiply(group, width), pc.add(presence.period, step))
        pieces.append(pc.filter(codes, covered) if covered is not None else codes)
    codes = pc.unique(pa.chunked_array(pieces, pa.int64()))
    period = pc.subtract(codes, pc.multiply(pc.divide(codes, width), width))
    owner = pc.divide(codes, width)
    if groups == presence.entities * presence.slices:  # the code is entity × slices + slice
        slice_ = pc.subtract(owner, pc.multiply(pc.divide(owner, presence.slices), presence.slices))
    else:  # the slices were numbered (many wide dimensions): each code's slice is its first triple's
        slice_ = pc.take(presence.slice, pc.index_in(owner, value_set=group))
    counted = pa.table({"__slice": slice_, "__period": period}).group_by(["__slice", "__period"],
                                                                        use_threads=False).aggregate(
        [([], "count_all")])
    return counted.rename_columns(["__slice", "__period", "__value"])


def _new(presence: Presence) -> pa.Table:
    return presence.count(pc.equal(presence.period, presence.first_period()))


def _returning(presence: Presence) -> pa.Table:
    return presence.count(pc.greater(presence.period, presence.first_period()))


def _churned(presence: Presence) -> pa.Table:
    """Present in a period and not in the next: churned in the next."""
    return presence.count(pc.invert(presence.precedes()), shift=1)


def _retained(presence: Presence) -> pa.Table:
    return presence.count(presence.follows())


def _reactivated(after: int):
    def reduce(presence: Presence) -> pa.Table:
        """Customers back after at least ``after`` periods without activity (in any slice)."""
        overall = presence.overall()
        back = pc.less(overall.first_period(), overall.period)
        for step in range(1, after + 1):
            back = pc.and_(back, pc.invert(overall.follows(step)))
        return presence.count(presence.holds(overall, back))
    return reduce


def _repeat(min_purchases: int, over: str):
    def reduce(presence: Presence) -> pa.Table:
        """Active customers with at least ``min_purchases`` rows in the period (or up to its end)."""
        if over == "period":
            return presence.count(pc.greater_equal(presence.rows, min_purchases))
        overall = presence.overall()
        order = pc.sort_indices(overall.codes())
        entity, rows = pc.take(overall.entity, order), pc.take(overall.rows, order)
        running = pc.cumulative_sum(rows)
        starts = pc.fill_null(pc.not_equal(entity, _lag(entity)), True)
        # Running total within each customer: subtract the total reached before the customer's first row.
        before = pc.fill_null_forward(pc.if_else(starts, pc.subtract(running, rows), pa.scalar(None, pa.int64())))
        qualified = pc.greater_equal(pc.subtract(running, before), min_purchases)
        ever = pc.take(qualified, pc.sort_indices(order))  # back in the presence's own order
        return presence.count(presence.holds(overall, ever))
    return reduce


def _lifetime(presence: Presence) -> pa.Table:
    """Mean periods since first activity (first period = 1) over the period's active customers."""
    age = pc.cast(pc.add(pc.subtract(presence.period, presence.first_period()), 1), pa.float64())
    return presence.total(age, how="mean")


def _state(name: str, doc: str, reduce_for, empty=0, keywords=None, check_kw=None, extra=None, reach=None):
    """``reach(values)``: how many periods before its own a period's count reads (`Partial.reach`); ``None``
    when it may read any (a customer's first period)."""
    keywords = keywords or {}

    def plan(ctx: AggregateContext, source, **options):
        values = {**keywords, **options}
        if check_kw is not None:
            check_kw(values)
        return [Partial(ctx.entity, "presence", empty, reduce=reduce_for(values),
                        extra=extra(ctx, values) if extra is not None else None,
                        reach=reach(values) if reach is not None else None)]

    return Aggregate(name, plan, entity=True, lookback=True, keywords=keywords, doc=doc,
                     check=lambda *types: None if types == (None,) else
                     f"{name}() takes the source itself, e.g. {name}(orders)")


def _window_reach(ctx: AggregateContext, values: dict):
    """How many periods after its own each row keeps its customer active (``window`` days from its time)."""
    days = int(values["window"])
    if days <= 0:
        return None
    from metrictree import periods

    times = ctx.time
    if not pa.types.is_timestamp(times.type):
        times = pc.cast(pc.cast(times, pa.date32()), pa.timestamp("s"))
    until = pc.add(times, pa.scalar(days * 86_400 - 1, pa.duration("s")).cast(pa.duration(times.type.unit)))
    return pc.subtract(pc.cast(periods.index(until, ctx.grain), pa.int64()), pc.cast(ctx.period, pa.int64()))


def _whole(name: str, minimum: int):
    def check(values: dict) -> None:
        for key in ("window", "after", "min_purchases"):
            if key in values:
                v = values[key]
                if not isinstance(v, int | float) or isinstance(v, bool) or v != int(v) or v < minimum:
                    raise ValueError(f"{key} must be a whole number ≥ {minimum}, got {v!r}")
        if values.get("over", "period") not in ("period", "ever"):
            raise ValueError(f"over must be \"period\" or \"ever\", got {values['over']!r}")
    return check


STATES = (
    _state("active_customers", "Customers active in the period (window=N days keeps them active N days).",
           lambda kw: _active_within if int(kw["window"]) > 0 else _active, keywords={"window": 0},
           check_kw=_whole("active_customers", 0), extra=_window_reach,
           reach=lambda kw: 0 if int(kw["window"]) <= 0 else None),
    _state("new_customers", "Customers whose first activity falls in the period.", lambda kw: _new),
    _state("returning_customers", "Active customers who were active before.", lambda kw: _returning),
    _state("churned_customers", "Active in the previous period, not in this one.", lambda kw: _churned,
           reach=lambda kw: 1),
    _state("retained_customers", "Active in the previous period and in this one.", lambda kw: _retained,
           reach=lambda kw: 1),
    _state("reactivated_customers", "Back after at least `after` periods without activity.",
           lambda kw: _reactivated(int(kw["after"])), keywords={"after": 2},
           check_kw=_whole("reactivated_customers", 1)),
    _state("repeat_customers", "Active customers with at least `min_purchases` purchases (over period or ever).",
           lambda kw: _repeat(int(kw["min_purchases"]), kw["over"]),
           keywords={"min_purchases": 2, "over": "period"}, check_kw=_whole("repeat_customers", 1),
           reach=lambda kw: 0 if kw["over"] == "period" else None),
    _state("customer_lifetime", "Mean periods since first activity of the period's active customers.",
           lambda kw: _lifetime, empty=None),
)


# --------------------------------------------------------------------------- surveys


def _numeric(name):
    def check(*types):
        t = types[0]
        if t is None or not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
            return f"{name}() needs a numeric score column, but the column holds {t}"
        return None
    return check


def _plan_nps(ctx, score):
    return [Partial(pc.greater_equal(score, 9), "sum", 0), Partial(pc.less_equal(score, 6), "sum", 0),
            Partial(score, "count", 0)]


def _finish_nps(promoters, detractors, answers):
    none = pc.equal(answers, 0)
    n = pc.if_else(none, pa.scalar(None, pa.float64()), pc.cast(answers, pa.float64()))
    score = pc.multiply(pc.divide(pc.subtract(pc.cast(promoters, pa.float64()), pc.cast(detractors, pa.float64())),
                                  n), 100.0)
    return Computed(score, ((none, "no survey answers"),))


def _plan_csat(ctx, score, positive_from=4):
    return [Partial(pc.greater_equal(score, positive_from), "sum", 0), Partial(score, "count", 0)]


def _finish_csat(positive, answers):
    none = pc.equal(answers, 0)
    n = pc.if_else(none, pa.scalar(None, pa.float64()), pc.cast(answers, pa.float64()))
    return Computed(pc.divide(pc.cast(positive, pa.float64()), n), ((none, "no survey answers"),))


SURVEYS = (
    Aggregate("nps", _plan_nps, _finish_nps, check=_numeric("nps"),
              doc="Net promoter score: % promoters (9–10) − % detractors (0–6), in points."),
    Aggregate("csat", _plan_csat, _finish_csat, keywords={"positive_from": 4}, check=_numeric("csat"),
              doc="Share of answers at or above positive_from (default 4 on a 1–5 scale)."),
)


@hookimpl
def metrictree_functions(register):
    for function in STATES + SURVEYS:
        register(function)


@hookimpl
def metrictree_libraries(register):
    register(Library.bundled("crm", "CRM: LTV, AOV, frequency, retention, churn, ARPU, NPS, CSAT"))


@hookimpl
def metrictree_trees(register):
    register(TreeFile.bundled("crm_ltv", "Why did LTV move? AOV × frequency × lifetime, churn and engagement."))


# --------------------------------------------------------------------------- SQL forms (backends)
# The customer states as queries over the kept rows (`SqlRows`): the same definitions as the Arrow
# reductions above, row for row — presence per (period, slice, customer), a slice's null matching a
# null slice, a null customer matching no one.


def _sql():
    import attrs
    from sqlglot import exp

    from metrictree.backends import forms as f

    PERIOD, VALUE, TIME = "__period", "__value", "__time"  # the columns of the kept rows (`SqlRows`)

    def keys(rows, table=None):
        return [f.col(k, table) for k in rows.keys]

    def present(rows, counted=False):
        """One row per (keys, customer) with activity (``__n``: its rows)."""
        extra = [f.count_rows().as_("__n", quoted=True)] if counted else [exp.Literal.number(1).as_("__hit",
                                                                                                    quoted=True)]
        return exp.select(*keys(rows), f.col(VALUE), *extra).from_(f.table(rows.table)).group_by(*keys(rows),
                                                                                                  f.col(VALUE))

    def counted(rows, source: str, where=None, table=None):
        query = exp.select(*(c.as_(k, quoted=True) for c, k in zip(keys(rows, table), rows.keys, strict=True)),
                           f.count_rows().as_(VALUE, quoted=True)).from_(f.table(source, table))
        return (query.where(where) if where is not None else query).group_by(*keys(rows, table))

    def first_periods(rows):
        return exp.select(f.col(VALUE), exp.Min(this=f.col(PERIOD)).as_("__first", quoted=True)).from_(
            f.table(rows.table)).group_by(f.col(VALUE))

    def next_period(rows, a: str, b: str):
        return exp.and_(exp.EQ(this=f.col(PERIOD, b), expression=exp.Add(this=f.col(PERIOD, a),
                                                                         expression=exp.Literal.number(1))),
                        rows.same_keys(a, b, rows.keys[1:]),
                        exp.EQ(this=f.col(VALUE, b), expression=f.col(VALUE, a)))

    def lost_or_kept(lost: bool):
        def query(rows):
            join = "left" if lost else "inner"
            moved = exp.Add(this=f.col(PERIOD, "a"), expression=exp.Literal.number(1))
            dims = [f.col(k, "a") for k in rows.keys[1:]]
            select = exp.select(moved.as_(PERIOD, quoted=True), *(d.as_(k, quoted=True) for d, k in
                                                                 zip(dims, rows.keys[1:], strict=True)),
                                f.count_rows().as_(VALUE, quoted=True)).from_(f.table("__present", "a"))
            select = select.join(f.table("__present", "b"), on=next_period(rows, "a", "b"), join_type=join)
            if lost:
                select = select.where(exp.Is(this=f.col("__hit", "b"), expression=exp.null()))
            return f.with_tables(select.group_by(moved, *dims), [("__present", present(rows))])
        return query

    def against_first(later: bool):
        def query(rows):
            test = (exp.GT if later else exp.EQ)(this=f.col(PERIOD, "p"), expression=f.col("__first", "f"))
            select = counted(rows, "__present", test, "p").join(
                f.table("__first", "f"), on=exp.EQ(this=f.col(VALUE, "p"), expression=f.col(VALUE, "f")))
            return f.with_tables(select, [("__present", present(rows)), ("__first", first_periods(rows))])
        return query

    def same_customer_period(a: str, b: str):
        return exp.and_(exp.EQ(this=f.col(VALUE, a), expression=f.col(VALUE, b)),
                        exp.EQ(this=f.col(PERIOD, a), expression=f.col(PERIOD, b)))

    def reactivated(after: int):
        def query(rows):
            overall = exp.select(f.col(VALUE), f.col(PERIOD)).distinct().from_(f.table(rows.table)).where(
                exp.Not(this=exp.Is(this=f.col(VALUE), expression=exp.null())))
            before = f.window(exp.Lag(this=f.col(PERIOD)), [f.col(VALUE)], f.col(PERIOD))
            lagged = exp.select(f.col(VALUE), f.col(PERIOD), before.as_("__before", quoted=True)).from_(
                f.table("__overall"))
            gap = exp.Sub(this=exp.Sub(this=f.col(PERIOD), expression=f.col("__before")),
                          expression=exp.Literal.number(1))
            flagged = exp.select(f.col(VALUE), f.col(PERIOD)).from_(f.table("__lagged")).where(
                exp.GTE(this=gap, expression=exp.Literal.number(after)))
            select = counted(rows, "__present", None, "p").join(f.table("__flagged", "q"),
                                                                on=same_customer_period("p", "q"))
            return f.with_tables(select, [("__present", present(rows)), ("__overall", overall),
                                          ("__lagged", lagged), ("__flagged", flagged)])
        return query

    def active(window_days: int, grain: str):
        def query(rows):
            if window_days <= 0:
                return f.with_tables(counted(rows, "__present"), [("__present", present(rows))])
            time = f.col(TIME)
            if not rows.context.time_is_timestamp:
                time = exp.cast(time, "timestamp")
            until = exp.Add(this=time, expression=exp.Interval(this=exp.Literal.string(str(window_days * 86_400 - 1)),
                                                               unit=exp.var("SECOND")))
            last = rows.context.period_of(until)
            spans = exp.select(*keys(rows), f.col(VALUE), last.as_("__last", quoted=True)).distinct().from_(
                f.table(rows.table))
            per_period = {"day": 1, "week": 7, "month": 28, "quarter": 89, "year": 365}[grain]
            reach = window_days // per_period + 2
            steps = exp.values([(k,) for k in range(reach + 1)], alias="__steps", columns=["__step"])
            shifted = exp.Add(this=f.col(PERIOD, "s"), expression=f.col("__step", "__steps"))
            covered = exp.select(shifted.as_(PERIOD, quoted=True),
                                 *(f.col(k, "s").as_(k, quoted=True) for k in rows.keys[1:]),
                                 f.col(VALUE, "s")).distinct().from_(f.table("__spans", "s")).join(
                steps, on=exp.LTE(this=shifted, expression=f.col("__last", "s")))
            return f.with_tables(counted(rows, "__covered"), [("__spans", spans), ("__covered", covered)])
        return query

    def repeat(min_purchases: int, over: str):
        def query(rows):
            enough = exp.GTE(this=f.col("__n", "p"), expression=exp.Literal.number(min_purchases))
            if over == "period":
                return f.with_tables(counted(rows, "__present", enough, "p"), [("__present", present(rows, True))])
            per = exp.select(f.col(VALUE), f.col(PERIOD), f.count_rows().as_("__n", quoted=True)).from_(
                f.table(rows.table)).group_by(f.col(VALUE), f.col(PERIOD))
            running = f.window(exp.Sum(this=f.col("__n")), [f.col(VALUE)], f.col(PERIOD), running=True)
            ever = exp.select(f.col(VALUE), f.col(PERIOD), running.as_("__ever", quoted=True)).from_(f.table("__per"))
            qualified = exp.select(f.col(VALUE), f.col(PERIOD)).from_(f.table("__ever")).where(
                exp.GTE(this=f.col("__ever"), expression=exp.Literal.number(min_purchases)))
            select = counted(rows, "__present", None, "p").join(f.table("__qualified", "q"),
                                                                on=same_customer_period("p", "q"))
            return f.with_tables(select, [("__present", present(rows)), ("__per", per), ("__ever", ever),
                                          ("__qualified", qualified)])
        return query

    def lifetime(rows):
        age = exp.Add(this=exp.Sub(this=f.col(PERIOD, "p"), expression=f.col("__first", "f")),
                      expression=exp.Literal.number(1))
        mean = exp.Avg(this=exp.cast(age, exp.DataType.build("double")))
        select = exp.select(*(c.as_(k, quoted=True) for c, k in zip(keys(rows, "p"), rows.keys, strict=True)),
                            mean.as_(VALUE, quoted=True)).from_(f.table("__present", "p")).join(
            f.table("__first", "f"), on=exp.EQ(this=f.col(VALUE, "p"), expression=f.col(VALUE, "f"))).group_by(
            *keys(rows, "p"))
        return f.with_tables(select, [("__present", present(rows)), ("__first", first_periods(rows))])

    def customers_only(query):
        """The query over the kept rows that have a customer (a null entity is nobody's activity)."""
        def wrapped(rows):
            known = exp.select(exp.Star()).from_(f.table(rows.table)).where(
                exp.Not(this=exp.Is(this=f.col(VALUE), expression=exp.null())))
            built = query(attrs.evolve(rows, table="__customers"))
            own = built.args.get("with_")
            ctes = [exp.CTE(this=known, alias=exp.TableAlias(this=exp.to_identifier("__customers", quoted=True))),
                    *(own.expressions if own is not None else [])]
            built.set("with_", exp.With(expressions=ctes))
            return built
        return wrapped

    def state(name: str, query_for, empty=0):
        def plan(ctx, source, **options):
            return [f.SqlPartial(ctx.entity, "custom", empty, query=customers_only(query_for(ctx, options)))]
        return f.SqlForm(name, plan)

    states = (
        state("active_customers", lambda ctx, kw: active(int(kw["window"]), ctx.grain)),
        state("new_customers", lambda ctx, kw: against_first(False)),
        state("returning_customers", lambda ctx, kw: against_first(True)),
        state("churned_customers", lambda ctx, kw: lost_or_kept(True)),
        state("retained_customers", lambda ctx, kw: lost_or_kept(False)),
        state("reactivated_customers", lambda ctx, kw: reactivated(int(kw["after"]))),
        state("repeat_customers", lambda ctx, kw: repeat(int(kw["min_purchases"]), kw["over"])),
        state("customer_lifetime", lambda ctx, kw: lifetime, empty=None),
    )

    def nps(ctx, score):
        return [f.SqlPartial(exp.GTE(this=score, expression=exp.Literal.number(9)), "sum", 0),
                f.SqlPartial(exp.LTE(this=score, expression=exp.Literal.number(6)), "sum", 0),
                f.SqlPartial(score, "count", 0)]

    def csat(ctx, score, positive_from=4):
        threshold = exp.Literal.number(repr(positive_from) if isinstance(positive_from, float) else positive_from)
        return [f.SqlPartial(exp.GTE(this=score, expression=threshold), "sum", 0), f.SqlPartial(score, "count", 0)]

    return (*states, f.SqlForm("nps", nps), f.SqlForm("csat", csat))


@hookimpl
def metrictree_sql_forms(register):
    for form in _sql():
        register(form)
