"""`metrictree lsp` end to end: a real server subprocess on stdio, driven by pygls's own client."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="the language server needs pygls: pip install 'metrictree[lsp]'")

from lsprotocol import types as lsp  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402
from pygls.uris import from_fs_path, to_fs_path  # noqa: E402

import metrictree  # noqa: E402
from metrictree.formatting import format_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 30


async def _session(body, tmp_path: Path):
    client = LanguageClient("metrictree-test", "1")
    published: dict[str, asyncio.Queue] = {}

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
        published.setdefault(params.uri, asyncio.Queue()).put_nowait(params.diagnostics)

    async def next_diagnostics(uri: str) -> list[lsp.Diagnostic]:
        queue = published.setdefault(uri, asyncio.Queue())
        return await asyncio.wait_for(queue.get(), TIMEOUT)

    await client.start_io(sys.executable, "-c", "from metrictree.cli import main; main()", "lsp", cwd=str(tmp_path))
    try:
        await asyncio.wait_for(client.initialize_async(lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(), root_uri=from_fs_path(str(tmp_path)))), TIMEOUT)
        client.initialized(lsp.InitializedParams())
        await body(client, next_diagnostics)
    finally:
        # Shut the server down even when the test failed, so a failure never hangs the run.
        try:
            await asyncio.wait_for(client.shutdown_async(None), TIMEOUT)
        finally:
            client.exit(None)
            try:
                await asyncio.wait_for(client.stop(), TIMEOUT)
            except TimeoutError:
                client._server.kill()
                raise


def _run(body, tmp_path):
    asyncio.run(asyncio.wait_for(_session(body, tmp_path), 3 * TIMEOUT))


def _open(client: LanguageClient, path: Path, text: str) -> str:
    uri = from_fs_path(str(path))
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "metrictree", 1, text)))
    return uri


BROKEN = """tree shop
source orders {
    time order_date
    entity customer_id
}

metric revenue = sum(orders.amount) where orders.status == "paid"
metric paid_orders = count(orders) where orders.status == "paid"
metric aov = revenue / paid_ordrs
"""


BOUND = """source invoices {
    time InvoiceDate
    entity CustomerID
}
import crm (aov) with orders = invoices {
    amount = invoices.Quantity * invoices.UnitPrice
    customer_id = invoices.CustomerID
    status = "paid"
}
metric twice = revenue * 2 { level strategic }
"""
WARNED = "source orders { time order_date }\nmetric revenue = sum(orders.amount) { level strategic }\n"


def test_diagnostics_are_what_check_prints(tmp_path):
    path = tmp_path / "shop.tree"
    path.write_text(BROKEN)
    warned = tmp_path / "warn.tree"
    warned.write_text(WARNED)
    expected = metrictree.check(path)
    (error,) = [d for d in expected if d.severity == "error"]
    assert len(expected) > 1  # the warnings come too

    async def body(client, next_diagnostics):
        uri = _open(client, path, BROKEN)
        got = await next_diagnostics(uri)
        assert [(d.message, d.severity, d.code) for d in got] == [
            (e.message + (f"\nhint: {e.hint}" if e.hint else ""),
             lsp.DiagnosticSeverity.Error if e.severity == "error" else lsp.DiagnosticSeverity.Warning, e.code)
            for e in expected]
        (mine,) = [d for d in got if d.severity == lsp.DiagnosticSeverity.Error]
        assert (mine.range.start.line, mine.range.start.character, mine.range.end.character) == (
            error.span.line - 1, error.span.column - 1, error.span.end_column - 1)
        assert mine.message == "unknown name 'paid_ordrs'\nhint: did you mean 'paid_orders'?"
        # Fixing the typo clears the error; a syntax error comes back with its span.
        fixed = BROKEN.replace("paid_ordrs", "paid_orders")
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
            [lsp.TextDocumentContentChangeWholeDocument(fixed)]))
        assert [d for d in await next_diagnostics(uri) if d.severity == lsp.DiagnosticSeverity.Error] == []
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=3),
            [lsp.TextDocumentContentChangeWholeDocument(fixed + "metric x = = 1\n")]))
        (syntax,) = await next_diagnostics(uri)
        assert syntax.range.start.line == 9 and syntax.code == "syntax"
        # Warnings alone are published too.
        (got,) = await next_diagnostics(_open(client, warned, WARNED))
        assert got.severity == lsp.DiagnosticSeverity.Warning
        assert got.message.startswith("strategic metric 'revenue' has no drivers")
        assert (got.range.start.line, got.range.start.character) == (1, 7)
        # A library metric bound to the tree's columns: the hover shows the bound formula.
        bound = tmp_path / "bound.tree"
        bound.write_text(BOUND)
        uri = _open(client, bound, BOUND)
        assert list(await next_diagnostics(uri)) == []
        hover = await asyncio.wait_for(client.text_document_hover_async(lsp.HoverParams(
            lsp.TextDocumentIdentifier(uri), lsp.Position(9, 17))), TIMEOUT)
        assert "revenue = sum(invoices.Quantity * invoices.UnitPrice)" in hover.contents.value
        assert "from the library `crm`" in hover.contents.value
        # Completion after `invoices.` offers the columns the bindings read.
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
            [lsp.TextDocumentContentChangeWholeDocument(BOUND + "metric lines = count(invoices.")]))
        await next_diagnostics(uri)
        result = await asyncio.wait_for(client.text_document_completion_async(
            lsp.CompletionParams(lsp.TextDocumentIdentifier(uri), lsp.Position(10, 30))), TIMEOUT)
        assert {"InvoiceDate", "CustomerID", "Quantity", "UnitPrice"} <= {item.label for item in result.items}

    _run(body, tmp_path)


def test_hover_definition_completion_and_formatting(tmp_path):
    shared = tmp_path / "shared.tree"
    shared.write_text("source orders {\n    time order_date\n    dimensions region\n    entity customer_id\n}\n"
                      'metric revenue = sum(orders.amount) where orders.status == "paid" {\n'
                      '    label "Revenue"\n    unit RUB\n    description "Paid orders only."\n}\n')
    text = ('include "shared.tree"\nimport crm (churn_rate)\n'
            "metric paid_orders=count(orders) where orders.status == \"paid\"\n"
            "metric aov = revenue / paid_orders { unit RUB level strategic }\n"
            "metric lost = churn_rate * 2\n")
    path = tmp_path / "aov.tree"
    path.write_text(text)

    async def body(client, next_diagnostics):
        uri = _open(client, path, text)
        await next_diagnostics(uri)
        doc = lsp.TextDocumentIdentifier(uri)

        async def hover(line, character):
            result = await asyncio.wait_for(client.text_document_hover_async(
                lsp.HoverParams(doc, lsp.Position(line, character))), TIMEOUT)
            return result.contents.value if result else None

        async def definition(line, character):
            result = await asyncio.wait_for(client.text_document_definition_async(
                lsp.DefinitionParams(doc, lsp.Position(line, character))), TIMEOUT)
            return [(Path(to_fs_path(loc.uri)).resolve(), loc.range.start.line, loc.range.start.character)
                    for loc in result or []]

        # Hover: the formula, label, unit and description of an included metric; a library metric's library.
        text_revenue = await hover(3, 14)
        assert "**revenue** — Revenue" in text_revenue
        assert "revenue = sum(orders.amount) where orders.status == \"paid\"" in text_revenue
        assert "unit: RUB" in text_revenue and "Paid orders only." in text_revenue
        churn = await hover(4, 15)
        assert "**churn_rate** — Churn rate" in churn and "from the library `crm`" in churn
        assert "churned / customers[-1]" in churn
        assert "aggregate function" in await hover(2, 21)  # count
        assert "time column" in await hover(2, 52) or "column of the source" in await hover(2, 52)

        # Go to definition: a metric in an included file, a source, the include itself, a library.
        assert await definition(3, 14) == [(shared.resolve(), 5, 7)]
        assert await definition(2, 27) == [(shared.resolve(), 0, 7)]  # count(orders)
        assert await definition(0, 12) == [(shared.resolve(), 0, 0)]
        ((library, _, _),) = await definition(1, 8)
        assert library.name == "crm.tree" and library.parent.name == "libraries"
        ((library, line, _),) = await definition(4, 14)  # churn_rate, defined in the crm library
        assert library.name == "crm.tree"
        assert library.read_text("utf-8").splitlines()[line].startswith("metric churn_rate")

        # Completion: names and functions; after `orders.` the columns the tree knows.
        result = await asyncio.wait_for(client.text_document_completion_async(
            lsp.CompletionParams(doc, lsp.Position(4, 13))), TIMEOUT)
        labels = {item.label for item in result.items}
        assert {"revenue", "paid_orders", "aov", "orders", "churn_rate", "sum", "count_distinct",
                "churned_customers", "round", "metric"} <= labels
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
            [lsp.TextDocumentContentChangeWholeDocument(text + "metric x = sum(orders.")]))
        await next_diagnostics(uri)
        result = await asyncio.wait_for(client.text_document_completion_async(
            lsp.CompletionParams(doc, lsp.Position(5, 22))), TIMEOUT)
        # The source's time, dimensions and entity, and what this tree and the crm library read of it.
        assert {item.label for item in result.items} == {"order_date", "region", "customer_id", "amount",
                                                          "status", "cost"}

        # Formatting: one edit to the fmt layout.
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=3),
            [lsp.TextDocumentContentChangeWholeDocument(text)]))
        await next_diagnostics(uri)
        edits = await asyncio.wait_for(client.text_document_formatting_async(lsp.DocumentFormattingParams(
            doc, lsp.FormattingOptions(tab_size=4, insert_spaces=True))), TIMEOUT)
        assert len(edits) == 1 and edits[0].new_text == format_text(text)
        assert edits[0].range.start == lsp.Position(0, 0)

    _run(body, tmp_path)
