"""SaaS and subscriptions: the ``closing_sum`` function and the ``saas`` metric library.

``closing_sum(x)`` sums ``x`` over the rows at the last snapshot (the latest time) of
each period, the period's *closing* value. It is for stocks, measured at points in
time — MRR, paying accounts, balances — where adding up snapshots is wrong: with one
subscriptions row per account and month, ``sum(subscriptions.mrr)`` at grain quarter
adds three months of MRR, ``closing_sum(subscriptions.mrr)`` gives the MRR of the
quarter's last month. The last snapshot is taken over all rows of the source, so a
slice or filter with no rows there (every "basic" account cancelled) closes at 0.
A condition counts its true rows: ``closing_sum(subscriptions.mrr > 0)`` is the number
of paying accounts at the close. Use it at the data's snapshot grain or coarser.

The library, over ``subscriptions`` (entity ``account_id``) and ``spend``; its names
do not clash with crm's (``arpa``, ``account_*`` where crm has ``arpu``, ``ltv`` …):

=======================  ====================================================  =================================
``mrr``                  closing_sum(subscriptions.mrr)
``paying_accounts``      closing_sum(subscriptions.mrr > 0)
``new_accounts``         new_customers(subscriptions) where mrr > 0
``churned_accounts``     churned_customers(subscriptions) where mrr > 0
``sales_and_marketing``  sum of ``spend.amount`` where kind is marketing or sales
``arr``                  mrr × 12
``arpa``                 mrr / paying_accounts (ARPU per paying account)     105,000 / 105 → 1,000
``account_churn``        churned_accounts / paying_accounts[-1]               5 / 100 → 5 %
``account_lifetime``     1 / account_churn, in periods
``account_ltv``          arpa × subscription_margin / account_churn           1,000 × 80 % / 5 % → 16,000
``account_cac``          sales_and_marketing / new_accounts                   40,000 / 10 → 4,000
``account_payback``      account_cac / (arpa × subscription_margin)           4,000 / 800 → 5
``account_ltv_cac``      account_ltv / account_cac                            16,000 / 4,000 → 4
=======================  ====================================================  =================================

``subscription_margin`` is a param (80 %), overridable at run time. The plugin also ships
the tree ``saas_mrr`` (``metrictree eval saas_mrr --sample``).
"""

from __future__ import annotations


from metrictree import lazy

from metrictree.functions import ROWS, Aggregate, AggregateContext, Library, Partial, TreeFile
from metrictree.hookspecs import hookimpl

# Arrow is imported when a function first runs, not when the plugin is loaded (`metrictree check`).
pa = lazy.module("pyarrow")
pc = lazy.module("pyarrow.compute")


def _check_closing(*types):
    t = types[0]
    if t is None:
        return "closing_sum() sums a column, e.g. closing_sum(subscriptions.mrr), not the source itself"
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t)):
        return f"closing_sum() needs a numeric column or a condition, but the column holds {t}"
    return None


def _plan_closing_sum(ctx: AggregateContext, x):
    if x is ROWS:
        raise TypeError("give it a column, e.g. closing_sum(subscriptions.mrr)")
    if ctx.time is None:
        raise ValueError("it needs the source's time column, which this version of metrictree does not pass "
                         "to plugin functions")
    if pa.types.is_boolean(x.type):
        x = pc.cast(x, pa.int64())
    moments = pa.table({"period": ctx.period, "time": ctx.time})
    last = moments.group_by("period").aggregate([("time", "max")])
    position = pc.index_in(ctx.period, value_set=last.column("period").combine_chunks())
    closing = pc.fill_null(pc.equal(ctx.time, pc.take(last.column("time_max"), position)), False)
    return [Partial(pc.if_else(closing, x, pa.scalar(None, x.type)), "sum", 0)]


CLOSING_SUM = Aggregate(
    "closing_sum", _plan_closing_sum, check=_check_closing,
    doc="Sum of a column over the rows at each period's last snapshot (MRR, balances); a condition counts rows.")


@hookimpl
def metrictree_functions(register):
    register(CLOSING_SUM)


@hookimpl
def metrictree_libraries(register):
    register(Library.bundled("saas", "SaaS: MRR, ARR, ARPU per account, subscription churn, LTV, CAC, payback, "
                                   "LTV:CAC"))


@hookimpl
def metrictree_trees(register):
    register(TreeFile.bundled("saas_mrr",
                              "Why did MRR move? Paying accounts × ARPU, subscription churn, LTV, CAC, LTV:CAC."))


def _sql_closing_sum(ctx, x):
    """The rows at the latest time of their period, found by a window over the period."""
    from metrictree.backends.forms import SqlPartial
    from sqlglot import exp

    if x is ROWS:
        raise TypeError("give it a column, e.g. closing_sum(subscriptions.mrr)")
    last = exp.Window(this=exp.Max(this=ctx.time), partition_by=[ctx.period])
    return [SqlPartial(exp.If(this=exp.EQ(this=ctx.time, expression=last), true=x, false=exp.null()), "sum", 0)]


@hookimpl
def metrictree_sql_forms(register):
    from metrictree.backends.forms import SqlForm

    register(SqlForm("closing_sum", _sql_closing_sum))
