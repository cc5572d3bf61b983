"""E-commerce: the ``ecommerce`` metric library (traffic funnel and customer acquisition).

The library builds on the crm library's order metrics (``paid_orders``, ``aov``,
``new_customers``, ``customers``, ``profit``, ``ltv``) instead of defining them again,
so a tree imports both: ``import crm, ecommerce``. Its metrics, with their definitions:

=======================  =========================================================  ==========================
``sessions``             sum of ``traffic.sessions``
``leads``                sum of ``traffic.leads``
``marketing_spend``      sum of ``spend.amount`` where ``kind == "marketing"``
``sales_spend``          sum of ``spend.amount`` where ``kind == "sales"``
``acquisition_spend``    marketing_spend + sales_spend
``conversion_rate``      paid_orders / sessions                                     300 / 10,000 → 3 %
``funnel_revenue``       sessions × conversion_rate × aov (= paid revenue)
``cac``                  acquisition_spend / new_customers                          700,000 / 350 → 2,000
``cpa``                  marketing_spend / paid_orders                              100,000 / 200 → 500
``cpl``                  marketing_spend / leads                                    50,000 / 1,000 → 50
``lead_conversion``      new_customers / leads                                      50 / 500 → 10 %
``profit_per_customer``  profit / customers (gross profit per paying customer)
``cac_payback``          cac / profit_per_customer, in periods                      6,000 / 2,000 → 3
``ltv_cac``              ltv / cac                                                  15,000 / 3,000 → 5
``romi``                 (profit − marketing_spend) / marketing_spend               (300,000 − 100,000) / 100,000 → 200 %
=======================  =========================================================  ==========================

``cac`` is marked ``controllable no`` (a CRM team does not set it; marketing and sales
budgets do, owner "Marketing") and not ``external``: it is the company's own spending.
The library needs no functions of its own. The plugin also ships the tree
``ecommerce_revenue`` (``metrictree eval ecommerce_revenue --sample``).
"""

from __future__ import annotations


from metrictree.functions import Library, TreeFile
from metrictree.hookspecs import hookimpl


@hookimpl
def metrictree_libraries(register):
    register(Library.bundled("ecommerce", "E-commerce: sessions, conversion, CAC, CPA, CPL, payback, LTV:CAC, ROMI "
                                        "(with crm's order metrics)"))


@hookimpl
def metrictree_trees(register):
    register(TreeFile.bundled("ecommerce_revenue",
                              "Where did revenue come from? Sessions × conversion × AOV, CAC, ROMI, LTV:CAC."))
