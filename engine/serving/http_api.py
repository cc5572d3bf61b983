"""The JSON HTTP API: the same operations as the MCP tools, with an OpenAPI description.

On FastAPI (request bodies checked against pydantic models, the OpenAPI document at
``/openapi.json`` generated from them). Every answer is ``{"result": …, "text": …}``: the structured
result and the same as Markdown. A mistake is ``{"error": {"message", "text", "diagnostics"}}`` with
400 (404 for an unknown tree or metric, 409 for a tree whose file never loaded, 504 when the
computation outlived the time limit); a body that breaks the schema is FastAPI's 422.

    GET  /health                              no token needed
    GET  /api/v1/trees
    GET  /api/v1/trees/{tree}/metrics
    GET  /api/v1/trees/{tree}/metrics/{metric}
    POST /api/v1/trees/{tree}/evaluate        {"metrics", "by", "grain", "start", "end", "params", "limit"}
    POST /api/v1/trees/{tree}/explain         {"metric", "baseline", "current", "by", "top", "params"}
    POST /api/v1/trees/{tree}/status          {"at", "params"}
    POST /api/v1/trees/{tree}/what-if         {"changes", "period", "params"}
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from ..errors import MetrictreeError
from . import operations as ops
from .bounds import Bounds, Timeout
from .catalog import Catalog

_NOT_FOUND = {"unknown-tree", "unknown-metric"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvaluateRequest(_Body):
    metrics: list[str] | None = Field(None, max_length=200, description="Only these metrics (default: all).")
    by: list[str] = Field(default_factory=list, max_length=20, description="Dimensions to slice by.")
    grain: Literal["day", "week", "month", "quarter", "year"] | None = None
    start: str | None = Field(None, max_length=40, description="First period, e.g. 2026-01.")
    end: str | None = Field(None, max_length=40, description="Last period (inclusive).")
    params: dict[str, float | str] | None = Field(None, max_length=50)
    limit: int = Field(200, ge=1, le=ops.MAX_ROWS, description="At most this many rows (the latest).")


class ExplainRequest(_Body):
    metric: str | None = Field(None, max_length=200, description="Default: the tree's top metric.")
    baseline: str | None = Field(None, max_length=40, description="Default: the period before current.")
    current: str | None = Field(None, max_length=40, description="Default: the last period with data.")
    by: list[str] | None = Field(None, max_length=20, description="Dimensions for root causes ([] for none).")
    top: int = Field(5, ge=1, le=50)
    params: dict[str, float | str] | None = Field(None, max_length=50)


class StatusRequest(_Body):
    at: str | None = Field(None, max_length=40, description="Default: the last period with data.")
    params: dict[str, float | str] | None = Field(None, max_length=50)


class WhatIfRequest(_Body):
    changes: dict[str, float | str] = Field(..., min_length=1, max_length=50,
                                            description='e.g. {"open_rate": "+10%", "aov": 2600}')
    period: str | None = Field(None, max_length=40)
    params: dict[str, float | str] | None = Field(None, max_length=50)


class AnswerModel(BaseModel):
    result: dict[str, Any] = Field(description="The structured result.")
    text: str = Field(description="The same for people, as Markdown.")


class ErrorDetail(BaseModel):
    message: str
    text: str | None = None
    hint: str | None = None
    diagnostics: list[dict[str, Any]] = []


class ErrorModel(BaseModel):
    error: ErrorDetail


_ERRORS = {code: {"model": ErrorModel} for code in (400, 401, 404, 409, 413, 504)}


def build_api(catalog: Catalog, bounds: Bounds) -> FastAPI:
    """The FastAPI app of the JSON API over ``catalog``."""
    app = FastAPI(title="metrictree", version=__version__, docs_url=None, redoc_url=None,
                  description="Metric trees as a service: evaluate, explain, status and what-if over the served "
                              "trees. Send `Authorization: Bearer <token>` with every request but /health.")

    @app.exception_handler(MetrictreeError)
    async def metrictree_error(request: Request, exc: MetrictreeError) -> JSONResponse:
        codes = {d.code for d in exc.errors or exc.diagnostics}
        status = 404 if codes & _NOT_FOUND else 400
        first = (exc.errors or exc.diagnostics)[0]
        return JSONResponse({"error": {"message": first.message, "hint": first.hint, "text": exc.render(),
                                       "diagnostics": ops.diagnostics(exc)}}, status_code=status)

    @app.exception_handler(_TreeDidNotLoad)
    async def tree_error(request: Request, exc: _TreeDidNotLoad) -> JSONResponse:
        return JSONResponse({"error": {"message": f"tree '{exc.name}' does not load", "text": exc.text,
                                       "hint": "fix the tree file; it is reloaded on the next request",
                                       "diagnostics": exc.diagnostics}}, status_code=409)

    @app.exception_handler(Timeout)
    async def timeout(request: Request, exc: Timeout) -> JSONResponse:
        return JSONResponse({"error": {"message": str(exc)}}, status_code=504)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    api = APIRouter(prefix="/api/v1", responses=_ERRORS)

    async def run(fn, *args: Any) -> dict[str, Any]:
        answer = await bounds.run(_checked(fn), catalog, *args)
        return {"result": answer.data, "text": answer.text}

    @api.get("/trees", response_model=AnswerModel, summary="The served trees, their state and errors")
    async def trees() -> dict[str, Any]:
        return await run(ops.list_trees)

    @api.get("/trees/{tree}/metrics", response_model=AnswerModel, summary="The metrics of a tree")
    async def metrics(tree: str) -> dict[str, Any]:
        return await run(ops.list_metrics, tree)

    @api.get("/trees/{tree}/metrics/{metric}", response_model=AnswerModel,
             summary="One metric: formula, drivers, unit, targets and alerts")
    async def metric(tree: str, metric: str) -> dict[str, Any]:
        return await run(ops.describe_metric, tree, metric)

    @api.post("/trees/{tree}/evaluate", response_model=AnswerModel, summary="Every metric per period (and slice)")
    async def evaluate(tree: str, body: EvaluateRequest) -> dict[str, Any]:
        return await run(ops.evaluate, tree, body.metrics, body.by, body.grain, body.start, body.end, body.params,
                         body.limit)

    @api.post("/trees/{tree}/explain", response_model=AnswerModel,
              summary="Why a metric moved: contributions, root causes, sentences")
    async def explain(tree: str, body: ExplainRequest) -> dict[str, Any]:
        return await run(ops.explain, tree, body.metric, body.baseline, body.current, body.by, body.top, body.params)

    @api.post("/trees/{tree}/status", response_model=AnswerModel, summary="Targets against their plan; alerts")
    async def status(tree: str, body: StatusRequest) -> dict[str, Any]:
        return await run(ops.status, tree, body.at, body.params)

    @api.post("/trees/{tree}/what-if", response_model=AnswerModel, summary="Follow changes up the formulas")
    async def what_if(tree: str, body: WhatIfRequest) -> dict[str, Any]:
        return await run(ops.what_if, tree, body.changes, body.period, body.params)

    app.include_router(api)
    return app


class _TreeDidNotLoad(Exception):
    def __init__(self, name: str, exc: MetrictreeError):
        self.name, self.text, self.diagnostics = name, exc.render(), ops.diagnostics(exc)


def _checked(fn):
    """``fn``, telling a tree that never loaded (409) from other mistakes."""

    def call(catalog: Catalog, *args: Any):
        try:
            return fn(catalog, *args)
        except MetrictreeError as exc:
            if args and isinstance(args[0], str) and args[0] in catalog.names():
                loaded = catalog.get(args[0])
                if loaded.tree is None:
                    raise _TreeDidNotLoad(args[0], exc) from None
            raise

    return call
