"""metrictree as a service: ``metrictree serve CONFIG``.

- `config` — the TOML file naming the trees to serve and their data;
- `catalog` — the trees, reloaded when their files change (the last good version kept);
- `operations` — what can be asked, once for both doors;
- `mcp_server` — the MCP tools (official ``mcp`` SDK), over stdio or streamable HTTP;
- `http_api` — the JSON API (FastAPI) with its OpenAPI description;
- `guards`, `bounds` — bearer token, request size, time limit and concurrency;
- `schedule` — notifications on a schedule (`metrictree.notifying`).

Needs the ``serve`` extra: ``pip install 'metrictree[serve]'``.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

from ..errors import UsageError, error
from .config import HttpSettings, ServeConfig, load_config

log = logging.getLogger("metrictree.serve")

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _require_extra() -> None:
    missing = []
    for module in ("mcp", "fastapi", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UsageError(error(f"metrictree serve needs {', '.join(missing)}, which is not installed",
                               hint="pip install 'metrictree[serve]'", code="missing-extra"))


def http_app(config: ServeConfig, settings: HttpSettings, token: str | None):
    """One ASGI app: the JSON API under /api/v1, MCP over streamable HTTP at /mcp, behind the guards."""
    from .bounds import Bounds
    from .catalog import Catalog
    from .guards import BearerAuth, BodyLimit
    from .http_api import build_api
    from .mcp_server import build_mcp

    catalog = Catalog(config)
    bounds = Bounds(settings.timeout_seconds)
    mcp = build_mcp(catalog, bounds)
    mcp_app = mcp.streamable_http_app(streamable_http_path="/mcp", host=settings.host,
                                      max_request_body_size=settings.max_request_bytes)
    api = build_api(catalog, bounds)
    api.router.lifespan_context = mcp_app.router.lifespan_context  # runs the MCP session manager
    api.mount("/", mcp_app)
    app = BodyLimit(api, settings.max_request_bytes)
    return BearerAuth(app, token) if token else app


def serve(config_path: str, transport: Literal["stdio", "http"] = "stdio", host: str | None = None,
          port: int | None = None, notify: str | None = None, every: float | None = None) -> None:
    """Serve the trees of a config file until interrupted (stdio: until the client closes the pipe)."""
    _require_extra()
    import anyio

    config = load_config(config_path)
    settings = config.http
    if host is not None or port is not None:
        import attrs

        settings = attrs.evolve(settings, host=host or settings.host, port=settings.port if port is None else port)
    notify = notify or config.notify.config
    if every is not None and not notify:
        raise UsageError(error("--every goes with --notify NOTIFY_CONFIG (or [notify] config in the serve config)",
                               code="usage"))
    every = every or config.notify.every_seconds
    schedule = None
    if notify:
        from .schedule import Schedule

        schedule = Schedule(config, notify, every or 3600.0)
    if transport == "stdio":
        from .bounds import Bounds
        from .catalog import Catalog
        from .mcp_server import build_mcp

        server = build_mcp(Catalog(config), Bounds(settings.timeout_seconds))
        if schedule:
            schedule.start()
        try:
            anyio.run(server.run_stdio_async)
        finally:
            if schedule:
                schedule.stop()
        return
    import uvicorn

    token = os.environ.get(settings.token_env) or None
    if token is None:
        if settings.host not in LOOPBACK:
            raise UsageError(error(f"no bearer token in ${settings.token_env}, and {settings.host} is not loopback",
                                   hint=f"export {settings.token_env}=<a long random secret>, or serve on "
                                        "127.0.0.1", code="no-token"))
        log.warning("$%s is not set: the HTTP side accepts requests without a token (loopback only)",
                    settings.token_env)
    app = http_app(config, settings, token)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                                           timeout_keep_alive=5, limit_concurrency=64, proxy_headers=False,
                                           h11_max_incomplete_event_size=16 * 1024))
    if schedule:
        schedule.start()
    try:
        server.run()
    finally:
        if schedule:
            schedule.stop()


__all__ = ["ServeConfig", "http_app", "load_config", "serve"]
