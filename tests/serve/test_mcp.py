"""The MCP server driven by the SDK's own client: over stdio (a real subprocess) and over streamable
HTTP (a real server process on 127.0.0.1)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

mcp = pytest.importorskip("mcp", reason="the serve extra is not installed: pip install '.[serve]'")
pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install '.[serve]'")

import anyio  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402


TIMEOUT = 120


CLI = "from metrictree.cli import main; main()"


def stdio(config: Path) -> Client:
    params = StdioServerParameters(command=sys.executable, args=["-c", CLI, "serve", str(config)],
                                   cwd=str(config.parent), env={"METRICTREE_DISABLE_PLUGIN_AUTOLOAD": "1"})
    return Client(params, read_timeout_seconds=60)


def run(session) -> None:
    async def main():
        with anyio.fail_after(TIMEOUT):
            await session()

    anyio.run(main)


def test_stdio_tools_answer_with_structured_content_and_text(shop):
    async def session():
        async with stdio(shop / "metrictree.toml") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == {"list_trees", "list_metrics", "describe_metric", "evaluate", "explain", "status",
                             "what_if"}

            trees = await client.call_tool("list_trees", {})
            assert not trees.is_error
            [crm] = trees.structured_content["trees"]
            assert (crm["name"], crm["state"], crm["top_metrics"]) == ("crm_ltv", "ok", ["ltv", "cac"])

            ltv = await client.call_tool("describe_metric", {"tree": "crm_ltv", "metric": "ltv"})
            assert ltv.structured_content["formula"] == "aov * frequency * lifetime"
            assert [d["metric"] for d in ltv.structured_content["drivers"]] == ["aov", "frequency", "lifetime"]
            assert ltv.structured_content["unit"] == "RUB"
            assert "`aov * frequency * lifetime`" in ltv.content[0].text

            values = await client.call_tool("evaluate", {"tree": "crm_ltv", "metrics": ["ltv", "aov"],
                                                         "start": "2026-09", "end": "2026-10"})
            rows = values.structured_content["rows"]
            assert [r["period"] for r in rows] == ["2026-09", "2026-10"]
            assert round(rows[0]["ltv"]) == 13323 and round(rows[1]["ltv"]) == 9696
            assert "| 2026-10 |" in values.content[0].text

            why = await client.call_tool("explain", {"tree": "crm_ltv", "metric": "ltv", "baseline": "2026-09",
                                                     "current": "2026-10"})
            data = why.structured_content
            assert data["metric"] == "ltv" and data["root_causes"] and data["summary"]
            assert abs(data["change"] - (9696 - 13323)) < 1
            assert data["summary"][0] in why.content[0].text

            found = await client.call_tool("status", {"tree": "crm_ltv"})
            assert found.structured_content["at"] == "2026-10"
            assert found.structured_content["fired"] == 2
            assert "off track" in found.content[0].text

            scenario = await client.call_tool("what_if", {"tree": "crm_ltv", "changes": {"open_rate": "+10%"}})
            [effect, *_] = scenario.structured_content["effects"]
            assert effect["metric"] == "open_rate" and abs(effect["relative"] - 0.10) < 1e-9

    run(session)


def test_stdio_mistakes_are_tool_errors_with_hints(shop):
    async def session():
        async with stdio(shop / "metrictree.toml") as client:
            unknown = await client.call_tool("describe_metric", {"tree": "crm_ltv", "metric": "ltvv"})
            assert unknown.is_error and "no metric 'ltvv'" in unknown.content[0].text
            assert "did you mean 'ltv'?" in unknown.content[0].text

            no_tree = await client.call_tool("status", {"tree": "crm"})
            assert no_tree.is_error and "no tree called 'crm'" in no_tree.content[0].text
            assert "crm_ltv" in no_tree.content[0].text

            bad_limit = await client.call_tool("evaluate", {"tree": "crm_ltv", "limit": 0})
            assert bad_limit.is_error and "limit" in bad_limit.content[0].text

            bad_period = await client.call_tool("explain", {"tree": "crm_ltv", "current": "October"})
            assert bad_period.is_error and "October" in bad_period.content[0].text

            bad_change = await client.call_tool("what_if", {"tree": "crm_ltv", "changes": {"open_rate": "lots"}})
            assert bad_change.is_error and "lots" in bad_change.content[0].text

            # The server is still there after every mistake.
            assert not (await client.call_tool("list_trees", {})).is_error

    run(session)


def test_stdio_reloads_a_changed_tree_and_keeps_the_last_good_one(shop):
    tree_file = shop / "trees" / "crm_ltv.tree"
    good = tree_file.read_text("utf-8")

    def write(text: str) -> None:
        before = os.stat(tree_file).st_mtime_ns
        tree_file.write_text(text, "utf-8")
        os.utime(tree_file, ns=(before + 10**9, before + 10**9))  # a new mtime even on a coarse clock

    async def session():
        async with stdio(shop / "metrictree.toml") as client:
            first = await client.call_tool("describe_metric", {"tree": "crm_ltv", "metric": "ltv"})
            assert first.structured_content["label"] == "Customer lifetime value"

            write(good.replace('label "Customer lifetime value"', 'label "Lifetime value (edited)"'))
            edited = await client.call_tool("describe_metric", {"tree": "crm_ltv", "metric": "ltv"})
            assert edited.structured_content["label"] == "Lifetime value (edited)"
            assert "tree_error" not in edited.structured_content

            write(good.replace("metric ltv", "metric ltv = = broken"))
            trees = await client.call_tool("list_trees", {})
            [crm] = trees.structured_content["trees"]
            assert crm["state"] == "error (serving the last good version)"
            assert "crm_ltv.tree:" in crm["error"]
            still = await client.call_tool("describe_metric", {"tree": "crm_ltv", "metric": "ltv"})
            assert not still.is_error
            assert still.structured_content["label"] == "Lifetime value (edited)"
            assert "crm_ltv.tree:" in still.structured_content["tree_error"]
            assert "last good version" in still.content[0].text

            write(good)
            fixed = await client.call_tool("describe_metric", {"tree": "crm_ltv", "metric": "ltv"})
            assert fixed.structured_content["label"] == "Customer lifetime value"
            assert "tree_error" not in fixed.structured_content

    run(session)


def test_a_new_tree_file_in_the_folder_is_served_and_a_broken_one_shows_its_error(shop):
    (shop / "trees" / "tiny.tree").write_text(
        'tree tiny\ngrain month\nsource orders { time order_date dimensions region }\n'
        'metric revenue = sum(orders.amount)\n', "utf-8")
    (shop / "trees" / "broken.tree").write_text("tree broken\nmetric = 1\n", "utf-8")

    async def session():
        async with stdio(shop / "metrictree.toml") as client:
            trees = {t["name"]: t for t in (await client.call_tool("list_trees", {})).structured_content["trees"]}
            assert set(trees) == {"broken", "crm_ltv", "tiny"}
            assert trees["tiny"]["state"] == "ok" and trees["broken"]["state"] == "error"
            assert "broken.tree:2:" in trees["broken"]["error"]
            revenue = await client.call_tool("evaluate", {"tree": "tiny", "start": "2026-10"})
            assert revenue.structured_content["rows"][0]["revenue"] > 0
            broken = await client.call_tool("list_metrics", {"tree": "broken"})
            assert broken.is_error and "broken.tree:2:" in broken.content[0].text

    run(session)


def test_streamable_http_with_the_sdk_client(shop, servers):
    with servers.http(shop / "metrictree.toml") as (base, log):
        async def session():
            async with Client(f"{base}/mcp", read_timeout_seconds=60) as client:
                assert "explain" in {tool.name for tool in (await client.list_tools()).tools}
                why = await client.call_tool("explain", {"tree": "crm_ltv", "by": ["region"], "top": 3})
                assert not why.is_error
                assert why.structured_content["by"] == ["region"]
                assert len(why.structured_content["root_causes"]) <= 3
                unknown = await client.call_tool("list_metrics", {"tree": "nope"})
                assert unknown.is_error and "no tree called 'nope'" in unknown.content[0].text

        run(session)
