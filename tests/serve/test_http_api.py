"""The JSON HTTP API, against a real `metrictree serve --transport http` process on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install '.[serve]'")
pytest.importorskip("mcp", reason="the serve extra is not installed: pip install '.[serve]'")

TOKEN = "test-token-3f9c1e"


def call(base: str, method: str, path: str, body=None, token: str | None = TOKEN, raw: bytes | None = None):
    """(status, JSON body) of one request."""
    data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def api(shop, servers):
    with servers.http(shop / "metrictree.toml", {"METRICTREE_TOKEN": TOKEN}) as (base, log):
        yield base, log


def test_every_operation_answers_with_result_and_text(api):
    base, _ = api
    status, trees = call(base, "GET", "/api/v1/trees")
    assert status == 200 and trees["result"]["trees"][0]["name"] == "crm_ltv"
    assert "| crm_ltv |" in trees["text"]

    status, metrics = call(base, "GET", "/api/v1/trees/crm_ltv/metrics")
    assert status == 200 and metrics["result"]["top_metrics"] == ["ltv", "cac"]
    status, ltv = call(base, "GET", "/api/v1/trees/crm_ltv/metrics/ltv")
    assert status == 200 and ltv["result"]["formula"] == "aov * frequency * lifetime"

    status, values = call(base, "POST", "/api/v1/trees/crm_ltv/evaluate",
                          {"metrics": ["revenue"], "by": ["region"], "start": "2026-10"})
    assert status == 200
    rows = values["result"]["rows"]
    assert {r["period"] for r in rows} == {"2026-10"} and len(rows) == len({r["region"] for r in rows}) > 1

    status, why = call(base, "POST", "/api/v1/trees/crm_ltv/explain", {"baseline": "2026-09", "current": "2026-10"})
    assert status == 200 and why["result"]["metric"] == "ltv" and why["result"]["root_causes"]
    assert why["result"]["summary"][0] in why["text"]

    status, found = call(base, "POST", "/api/v1/trees/crm_ltv/status", {"at": "2026-10"})
    assert status == 200 and found["result"]["fired"] == 2

    status, scenario = call(base, "POST", "/api/v1/trees/crm_ltv/what-if", {"changes": {"aov": 2600}})
    assert status == 200 and scenario["result"]["effects"][0]["after"] == 2600


def test_mistakes_are_4xx_with_the_diagnostic(api, shop):
    base, _ = api
    (shop / "trees" / "broken.tree").write_text("tree broken\nmetric = 1\n", "utf-8")  # served from now on
    status, body = call(base, "POST", "/api/v1/trees/broken/status", {})
    assert status == 409 and body["error"]["message"] == "tree 'broken' does not load"
    assert "broken.tree:2:" in body["error"]["text"]
    status, body = call(base, "GET", "/api/v1/trees/nope/metrics")
    assert status == 404 and "no tree called 'nope'" in body["error"]["message"]
    status, body = call(base, "GET", "/api/v1/trees/crm_ltv/metrics/ltvv")
    assert status == 404 and body["error"]["hint"] == "did you mean 'ltv'?"
    status, body = call(base, "POST", "/api/v1/trees/crm_ltv/evaluate", {"by": ["planet"]})
    assert status == 400 and "planet" in body["error"]["text"]
    status, body = call(base, "POST", "/api/v1/trees/crm_ltv/explain", {"top": 0})
    assert status == 422
    status, body = call(base, "POST", "/api/v1/trees/crm_ltv/status", {"when": "now"})
    assert status == 422
    status, body = call(base, "POST", "/api/v1/trees/crm_ltv/what-if", {"changes": {}})
    assert status == 422


def test_the_token_is_required_and_refusals_are_logged(api):
    base, log = api
    assert call(base, "GET", "/health", token=None)[0] == 200
    status, body = call(base, "GET", "/api/v1/trees", token=None)
    assert status == 401 and "no bearer token" in body["error"]["message"]
    assert call(base, "GET", "/api/v1/trees", token="wrong")[0] == 401
    assert call(base, "POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, token=None)[0] == 401
    text = log.read_text()
    assert "refused GET /api/v1/trees from 127.0.0.1:" in text and "no bearer token" in text
    assert "wrong bearer token" in text and "refused POST /mcp" in text
    assert "wrong" not in text.replace("wrong bearer token", "")  # the token given is never logged


def test_request_bodies_are_bounded(api):
    base, log = api
    big = json.dumps({"changes": {"aov": 1}, "period": "x" * 100_000}).encode()
    status, body = call(base, "POST", "/api/v1/trees/crm_ltv/what-if", raw=big)
    assert status == 413 and "65536 bytes" in body["error"]["message"]

    # A body sent without a length (chunked) is counted as it arrives.
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"POST /api/v1/trees/crm_ltv/status HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}"
                     "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b" " * 40_000
        for _ in range(2):
            conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        conn.sendall(b"0\r\n\r\n")
        assert conn.recv(200).startswith(b"HTTP/1.1 413")
    assert "body over 65536 bytes" in log.read_text()


def test_openapi_describes_every_operation(api):
    base, _ = api
    status, spec = call(base, "GET", "/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/api/v1/trees", "/api/v1/trees/{tree}/metrics", "/api/v1/trees/{tree}/metrics/{metric}",
        "/api/v1/trees/{tree}/evaluate", "/api/v1/trees/{tree}/explain", "/api/v1/trees/{tree}/status",
        "/api/v1/trees/{tree}/what-if"}
    explain = spec["components"]["schemas"]["ExplainRequest"]
    assert explain["properties"]["top"]["maximum"] == 50 and explain["additionalProperties"] is False


def test_a_slow_computation_is_answered_with_504(shop, servers):
    config = shop / "metrictree.toml"
    config.write_text(config.read_text().replace("timeout_seconds = 60", "timeout_seconds = 0.001"))
    with servers.http(config, {"METRICTREE_TOKEN": TOKEN}) as (base, _):
        status, body = call(base, "POST", "/api/v1/trees/crm_ltv/evaluate", {"by": ["region", "channel"]})
        assert status == 504 and "longer than 0.001 s" in body["error"]["message"]


def test_without_a_token_only_loopback_is_served(shop, servers):
    import subprocess

    done = subprocess.run(servers.command("serve", str(shop / "metrictree.toml"), "--transport", "http",
                                          "--host", "0.0.0.0", "--port", str(servers.free_port())),
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in __import__("os").environ.items() if k != "METRICTREE_TOKEN"})
    assert done.returncode == 1
    assert "no bearer token in $METRICTREE_TOKEN, and 0.0.0.0 is not loopback" in done.stderr
    assert "Traceback" not in done.stderr
