"""Email marketing: the ``email`` metric library.

Over a source ``emails`` with the counts ``sent``, ``bounced``, ``delivered``,
``opened``, ``clicked`` and ``conversions``:

=====================  ==========================================  ==================================
``emails_sent``        sum of ``sent``
``bounces``            sum of ``bounced``
``delivered``          sum of ``delivered``
``opens``              sum of ``opened``
``clicks``             sum of ``clicked``
``email_conversions``  sum of ``conversions`` (target actions)
``open_rate``          opens / (emails_sent − bounces)             2,000 / (10,000 − 500) → 21.05 %
``ctr``                clicks / delivered                          500 / 10,000 → 5 %
``ctor``               clicks / opens (click-to-open)
``bounce_rate``        bounces / emails_sent                       300 / 10,000 → 3 %
``email_conversion``   email_conversions / emails_sent
=====================  ==========================================  ==================================

The library needs no functions of its own. The plugin also ships the tree
``email_engagement`` (``metrictree eval email_engagement --sample --by campaign``).
"""

from __future__ import annotations


from metrictree.functions import Library, TreeFile
from metrictree.hookspecs import hookimpl


@hookimpl
def metrictree_libraries(register):
    register(Library.bundled("email", "Email marketing: open rate, CTR, click-to-open, bounce rate, conversion"))


@hookimpl
def metrictree_trees(register):
    register(TreeFile.bundled("email_engagement",
                              "How do mailings turn into actions? Delivery, opens, clicks, conversions."))
