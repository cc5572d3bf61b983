"""The MCP server: the service's operations as tools an AI assistant can call.

Built on the official ``mcp`` SDK (``MCPServer``, called FastMCP before mcp 2). Each tool validates
its arguments against the schema it publishes (the SDK answers a bad argument with a tool error
naming the field), runs one operation from `metrictree.serving.operations` within the service's
bounds, and answers with the structured result plus the same as Markdown. A mistake (an unknown
tree, metric or period, a tree file that does not load) is a tool error carrying the engine's
diagnostic, never a crash of the server.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from .. import __version__
from ..errors import MetrictreeError
from . import operations as ops
from .bounds import Bounds, Timeout
from .catalog import Catalog

INSTRUCTIONS = """\
metrictree serves metric trees: each metric is a formula over its drivers, down to base metrics
aggregated from data. Use these tools to ground answers about the metrics in exact numbers:
list_trees → list_metrics → describe_metric to learn a tree; evaluate for values per period;
explain for why a metric moved between two periods (exact contributions, root-cause segments and
plain sentences); status for targets and alerts; what_if to follow a change up the formulas.
Periods are labels at the tree's grain: 2026-10 (month), 2026-Q3, 2026-W05, 2026; a range
2026-06..2026-09 compares with its mean. Quote the numbers the tools return; do not estimate."""

Tree = Annotated[str, Field(description="The tree's name, as list_trees gives it (e.g. crm_ltv).", min_length=1,
                            max_length=200)]
Period = Annotated[str | None, Field(description="A period label at the tree's grain, e.g. 2026-10, 2026-Q3; "
                                                 "omit for the default.", max_length=40)]
Params = Annotated[dict[str, float | str] | None, Field(
    description='Param overrides, e.g. {"gross_margin": "65%"} or {"gross_margin": 0.65}.', max_length=50)]
Names = Annotated[list[Annotated[str, Field(max_length=200)]] | None, Field(max_length=200)]
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def _result(answer: ops.Answer) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=answer.text)], structured_content=answer.data)


def build_mcp(catalog: Catalog, bounds: Bounds) -> MCPServer:
    """An MCP server whose tools answer from ``catalog`` within ``bounds``."""
    server = MCPServer("metrictree", title="metrictree", version=__version__, instructions=INSTRUCTIONS,
                       log_level="WARNING")

    async def answer(fn, *args: Any, **kwargs: Any) -> CallToolResult:
        try:
            return _result(await bounds.run(fn, catalog, *args, **kwargs))
        except MetrictreeError as exc:
            raise ToolError(exc.render()) from None
        except Timeout as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=READ_ONLY)
    async def list_trees() -> CallToolResult:
        """The metric trees served: name, title, state (and the error of a tree file that does not load),
        grain, top metrics, sources, number of metrics, targets and alerts."""
        return await answer(ops.list_trees)

    @server.tool(annotations=READ_ONLY)
    async def list_metrics(tree: Tree) -> CallToolResult:
        """The metrics of a tree: name, label, kind (base, derived, group), unit, level and drivers."""
        return await answer(ops.list_metrics, tree)

    @server.tool(annotations=READ_ONLY)
    async def describe_metric(
        tree: Tree,
        metric: Annotated[str, Field(description="The metric's name (list_metrics gives them).", min_length=1,
                                     max_length=200)],
    ) -> CallToolResult:
        """One metric: its formula, drivers (formula inputs and influence links), the metrics it drives, unit,
        direction, level, owner, description, and the targets and alerts on it."""
        return await answer(ops.describe_metric, tree, metric)

    @server.tool(annotations=READ_ONLY)
    async def evaluate(
        tree: Tree,
        metrics: Annotated[Names, Field(description="Only these metrics (default: every metric with values).")] = None,
        by: Annotated[Names, Field(description="Dimensions to slice by, e.g. [\"region\"].")] = None,
        grain: Annotated[Literal["day", "week", "month", "quarter", "year"] | None,
                         Field(description="Time grain (default: the tree's).")] = None,
        start: Annotated[Period, Field(description="First period, e.g. 2026-01.")] = None,
        end: Annotated[Period, Field(description="Last period (inclusive).")] = None,
        params: Params = None,
        limit: Annotated[int, Field(ge=1, le=ops.MAX_ROWS, description="At most this many rows (the latest).")] = 200,
    ) -> CallToolResult:
        """Evaluate a tree: every metric per period (and per slice with `by`). Nulls come with their reasons."""
        return await answer(ops.evaluate, tree, metrics, by or (), grain, start, end, params, limit)

    @server.tool(annotations=READ_ONLY)
    async def explain(
        tree: Tree,
        metric: Annotated[str | None, Field(description="The metric to explain (default: the tree's top metric).",
                                            max_length=200)] = None,
        baseline: Annotated[Period, Field(description="The period to compare with (default: the one before "
                                                      "current); a range START..END compares with its mean.")] = None,
        current: Annotated[Period, Field(description="The period to explain (default: the last with data).")] = None,
        by: Annotated[Names, Field(description="Dimensions to look for root causes in (default: every "
                                               "dimension; [] for none).")] = None,
        top: Annotated[int, Field(ge=1, le=50, description="How many root causes to return.")] = 5,
        params: Params = None,
    ) -> CallToolResult:
        """Why did a metric move? The exact contribution of every driver down the formulas, the root-cause
        segments (e.g. region=North) ranked by contribution, and a few plain sentences summing it up."""
        return await answer(ops.explain, tree, metric, baseline, current, by, top, params)

    @server.tool(annotations=READ_ONLY)
    async def status(
        tree: Tree,
        at: Annotated[Period, Field(description="The period to report on (default: the last with data).")] = None,
        params: Params = None,
    ) -> CallToolResult:
        """KPI status: each target's start, goal, gap, plan and state (met, on track, off track …), and which
        alerts fire, with their values."""
        return await answer(ops.status, tree, at, params)

    @server.tool(annotations=READ_ONLY)
    async def what_if(
        tree: Tree,
        changes: Annotated[dict[str, float | str], Field(
            description='Metric → change: "+10%" / "-5%" (relative), "+2pp" (percentage points), "+150" (added), '
                        '2600 or "30%" (the new value).', min_length=1, max_length=50)],
        period: Annotated[Period, Field(description="The period to change (default: the last with data).")] = None,
        params: Params = None,
    ) -> CallToolResult:
        """What if some metrics changed in one period? Recompute every formula above them, exactly, and say which
        targets would then be met. Influence links are not followed (they have no formula)."""
        return await answer(ops.what_if, tree, changes, period, params)

    return server
