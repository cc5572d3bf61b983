"""docs/serve.md is true: the tool outputs its worked conversation quotes are what the tools answer on the
bundled sample (through the SDK's in-process client), and its notification example is what is sent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the serve extra is not installed: pip install '.[serve]'")

import anyio  # noqa: E402
from mcp import Client  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "serve.md"


def quoted(after: str) -> str:
    """The first ```text block after the line starting with ``after``."""
    text = DOC.read_text("utf-8")
    start = text.index(after)
    return re.search(r"```text\n(.*?)```", text[start:], flags=re.S).group(1)


def test_the_worked_conversation_quotes_real_answers(tmp_path):
    from metrictree.serving.bounds import Bounds
    from metrictree.serving.catalog import Catalog
    from metrictree.serving.config import load_config
    from metrictree.serving.mcp_server import build_mcp

    config = tmp_path / "metrictree.toml"
    config.write_text('[trees.crm_ltv]\nfile = "crm_ltv"\nsample = true\n', "utf-8")
    server = build_mcp(Catalog(load_config(config)), Bounds(60))
    answers = {}

    async def session():
        async with Client(server) as client:
            for name, args in (("list_trees", {}), ("describe_metric", {"tree": "crm_ltv", "metric": "lifetime"}),
                               ("what_if", {"tree": "crm_ltv", "changes": {"churn_rate": "35.4%"}}),
                               ("explain", {"tree": "crm_ltv", "metric": "ltv", "top": 3})):
                answers[name] = (await client.call_tool(name, args)).content[0].text

    anyio.run(session)
    assert quoted("`list_trees {}` →") in answers["list_trees"]
    assert quoted('`describe_metric {"tree": "crm_ltv", "metric": "lifetime"}` →') in answers["describe_metric"]
    assert quoted('`what_if {"tree": "crm_ltv", "changes": {"churn_rate": "35.4%"}}` →') in answers["what_if"]
    # The headline numbers of the explanation (its finer wording belongs to docs/explain.md).
    assert "Customer lifetime value fell 27.2 % (−3,627 RUB) from 2026-09 to 2026-10: 13,323 RUB → 9,696 RUB." in \
        DOC.read_text("utf-8")
    assert "fell 27.2 % (−3,627 RUB) from 2026-09 to 2026-10: 13,323 RUB → 9,696 RUB." in answers["explain"]


def test_the_notification_example_is_what_is_sent():
    import metrictree
    from metrictree.notifying import notices
    from metrictree.sample import sample_data

    tree, data = metrictree.load(DOC.parents[1] / "trees" / "crm_ltv.tree"), sample_data()
    sent = {n.headline(): n for n in notices(tree, tree.status(data), data)}
    for block in quoted("first root-cause segment that moved the metric").strip().split("\n\n"):
        headline, *lines = block.splitlines()
        assert sent[headline].lines()[:3] == lines[:3]  # the rule; value · threshold · gap; the main driver
