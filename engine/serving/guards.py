"""ASGI guards in front of every HTTP route (the JSON API and MCP over streamable HTTP alike).

- `BearerAuth`: every request but ``GET /health`` must carry ``Authorization: Bearer <token>``, the
  token read from an environment variable at start-up; refused requests are logged (client address,
  method, path and why — never the token given).
- `BodyLimit`: a request body larger than the limit is refused with 413, whether it says its
  length up front or not.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

log = logging.getLogger("metrictree.serve")

OPEN_PATHS = frozenset({"/health"})


async def _send_json(send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})


def _client(scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


class BearerAuth:
    """Refuses requests without the bearer token (401), logging each refusal."""

    def __init__(self, app, token: str):
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token):
            return await self.app(scope, receive, send)
        reason = "no bearer token" if not header else "wrong bearer token" if scheme.lower() == b"bearer" \
            else "not a bearer token"
        log.warning("refused %s %s from %s: %s", scope.get("method"), scope["path"], _client(scope), reason)
        await _send_json(send, 401, {"error": {"message": f"unauthorized: {reason}",
                                               "hint": "send the header Authorization: Bearer <token>"}},
                         [(b"www-authenticate", b'Bearer realm="metrictree"')])


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes (413)."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._refuse(scope, send)
        seen = 0
        started = refused = False

        async def counted_receive():
            # Past the limit, answer 413 at once and tell the app the client left, so it stops reading.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    if not started:
                        await self._refuse(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message):
            nonlocal started
            if refused:
                return  # the 413 has been sent: whatever the app answers now is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, scope, send) -> None:
        log.warning("refused %s %s from %s: body over %d bytes", scope.get("method"), scope["path"], _client(scope),
                    self.limit)
        await _send_json(send, 413, {"error": {"message": f"request body over {self.limit} bytes",
                                               "hint": "send a smaller request"}})
