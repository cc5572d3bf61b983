"""The `Tree` that `metrictree.load` returns: the compiled model with a door into each stage.

`metrictree.model.Tree` is the compiled tree as a record and imports no stage, so every stage can
read it without an import circle. This façade adds the methods people call (`evaluate`, `explain`,
`status`, `simulate`, `sensitivity`, the notebook views), each a thin call into its stage. The stages
are imported when first called, so loading or checking a tree never imports the evaluation stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from . import model

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from .evaluating import Evaluation
    from .explaining import Explanation
    from .rules import Status
    from .simulating import Scenario


@attrs.frozen
class Tree(model.Tree):
    """A compiled, validated metric tree (its attributes are `metrictree.model.Tree`'s)."""

    # ---- the stages

    def evaluate(self, data: Mapping[str, Any], grain: str | None = None, by: Sequence[str] | str = (),
                 start: str | None = None, end: str | None = None, metrics: Sequence[str] | None = None,
                 params: Mapping[str, float] | None = None) -> pa.Table:
        """Evaluate the tree over data; see `metrictree.evaluating.evaluate`.

        Returns an Arrow table: ``period``, the ``by`` columns, one column per metric.
        Why any value is null is in the table's schema metadata (`metrictree.null_reasons`).
        """
        return self.evaluation(data, grain, by, start, end, metrics, params).to_table()

    def evaluation(self, data: Mapping[str, Any], grain: str | None = None, by: Sequence[str] | str = (),
                   start: str | None = None, end: str | None = None, metrics: Sequence[str] | None = None,
                   params: Mapping[str, float] | None = None) -> Evaluation:
        """Like `evaluate`, returning an `Evaluation` (the table and the reasons for nulls)."""
        from .evaluating import evaluate

        return evaluate(self, data, grain=grain, by=by, start=start, end=end, metrics=metrics, params=params)

    def explain(self, data: Mapping[str, Any], metric: str, baseline: str | None = None, current: str | None = None,
                by: Sequence[str] | str | None = None, grain: str | None = None,
                params: Mapping[str, float] | None = None, top: int | None = None) -> Explanation:
        """Why ``metric`` moved from ``baseline`` to ``current``; see `metrictree.explaining.explain`.

        Periods are labels at the tree's grain (``2026-10``) or ranges (``2026-06..2026-09``, compared as
        the mean per period); ``current`` defaults to the last period with data and ``baseline`` to the
        period(s) just before it. ``by`` lists the dimensions to look for root causes in (default: every
        dimension of each source; ``[]`` for none). ``grain`` overrides the tree's (periods are then written
        at it: ``2026-W41``); ``top`` caps the root causes (default: as many as stand out in the data).
        """
        from .explaining import explain

        return explain(self, data, metric, baseline, current, by, grain=grain, params=params, top=top)

    def status(self, data: Mapping[str, Any], at: str | None = None,
               params: Mapping[str, float] | None = None, grain: str | None = None) -> Status:
        """Every target (start, goal, gap, plan, state) and alert (fired or not) at period ``at``; see
        `metrictree.rules.status`. ``at`` defaults to the last period with data; ``grain`` to the tree's.
        """
        from .rules import status

        return status(self, data, at=at, params=params, grain=grain)

    def simulate(self, data: Mapping[str, Any], changes: Mapping[str, Any], period: str | None = None,
                 params: Mapping[str, float] | None = None) -> Scenario:
        """What if: set ``changes`` (``{"open_rate": "+10%", "aov": 2600}``) in ``period`` and recompute every
        formula above them; see `metrictree.simulating.simulate`."""
        from .simulating import simulate

        return simulate(self, data, changes, period, params)

    def sensitivity(self, data: Mapping[str, Any], metric: str, period: str | None = None,
                    params: Mapping[str, float] | None = None) -> pa.Table:
        """Which driver, moved by 1 % on its own, moves ``metric`` most: a ranked Arrow table of elasticities."""
        from .simulating import sensitivity

        return sensitivity(self, data, metric, period, params=params)

    # ---- notebooks

    def _repr_html_(self) -> str:
        """The tree as a graph (`metrictree.reporting.tree_fragment`)."""
        from .reporting import tree_fragment

        return tree_fragment(self)

    def _repr_markdown_(self) -> str:
        """The tree's title and its graph as a Mermaid diagram."""
        from .reporting import tree_markdown

        return tree_markdown(self)


__all__ = ["Tree"]
