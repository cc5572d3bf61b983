"""What the service can be asked, once for both doors (the MCP tools and the HTTP API).

Each operation takes the `Catalog` and plain arguments, and returns an `Answer`: a JSON-ready dict
(the structured result) and the same for people as Markdown. A mistake in the arguments, a tree that
does not load or data that does not fit raise the engine's own `MetrictreeError`, whose diagnostics
say what is wrong and how to fix it; the doors turn it into an MCP tool error or an HTTP 4xx.

Results reuse the engine's own public forms: ``Explanation.to_dict()`` / ``to_markdown()``,
``Status.to_dict()`` / ``to_markdown()``, ``Scenario.to_dict()`` / ``to_markdown()``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .. import rendering
from ..errors import UsageError, did_you_mean, error
from ..escaping import markdown_text
from ..model import Metric, Tree
from ..rules import value_text
from .catalog import Catalog, Loaded

MAX_ROWS = 5000
TEXT_ROWS = 50


@attrs.frozen
class Answer:
    """A result: ``data`` for programs (JSON-ready), ``text`` (Markdown) for people."""

    data: dict[str, Any]
    text: str


def _with_state(data: dict[str, Any], loaded: Loaded, text: str) -> Answer:
    """Adds the tree file's current error (if any) to an answer given from the last good version."""
    if loaded.error:
        data = {**data, "tree_error": loaded.error_text(), "served_version_loaded_at": loaded.loaded_at}
        text = (f"> **Note:** the file of tree `{loaded.entry.name}` has errors since {loaded.failed_at}; "
                f"this answer comes from the last good version (loaded {loaded.loaded_at}).\n>\n"
                + "\n".join(f"> {_md(line)}" for line in (loaded.error_text() or "").splitlines())
                + "\n\n" + text)
    return Answer(data, text)


def data_for(tree: Tree, loaded: Loaded) -> dict[str, Any]:
    """The data bindings the config gives this tree, bound exactly as ``--data`` / ``--sample`` are."""
    from ..cli import _bind_data

    entry = loaded.entry
    given = {source: binding for source, binding in entry.data.items() if source in tree.sources}
    unbound = [source for source in tree.sources if source not in given]
    if unbound and not entry.sample:
        raise UsageError(error(f"tree '{entry.name}' reads source(s) {', '.join(unbound)} that the serve config "
                               "does not bind",
                               hint=f"add them under [trees.{entry.name}.data] (e.g. {unbound[0]} = "
                                    f"\"data/{unbound[0]}.parquet\") or [data], or set sample = true",
                               code="no-data"))
    return _bind_data(tree, given, entry.sample)


def _params(loaded: Loaded, params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**loaded.entry.params, **(params or {})}


def _metric(tree: Tree, name: str) -> Metric:
    if name not in tree.metrics:
        raise UsageError(error(f"tree '{tree.name}' has no metric '{name}'",
                               hint=did_you_mean(name, tree.metrics) or f"its metrics: {', '.join(tree.metrics)}",
                               code="unknown-metric"))
    return tree.metrics[name]


def _names(tree: Tree, names: Sequence[str] | None) -> list[str] | None:
    if names is None:
        return None
    for name in names:
        _metric(tree, name)
    return list(names)


def _md(value: Any) -> str:
    """Text from a tree file or the data, safe in Markdown (no raw HTML, no control characters)."""
    return markdown_text(str(value))


def _cell(value: Any) -> str:
    return _md(value).replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------- the catalog


def list_trees(catalog: Catalog) -> Answer:
    """Every served tree: its state (and error), title, grain, top metrics, sources, rules."""
    trees = [loaded.to_dict() for loaded in catalog.all()]
    lines = ["| tree | title | state | top metrics | metrics | targets | alerts |", "|---|---|---|---|--:|--:|--:|"]
    for t in trees:
        lines.append("| " + " | ".join(_cell(x) for x in (
            t["name"], t["title"] or "", t["state"], ", ".join(t["top_metrics"]), t["metrics"], t["targets"],
            t["alerts"])) + " |")
    for t in trees:
        if t["error"]:
            lines += ["", f"Errors in `{t['name']}` ({t['file']}):", "", "```text", t["error"], "```"]
    return Answer({"trees": trees}, "\n".join(lines) + "\n")


def _metric_row(tree: Tree, metric: Metric) -> dict[str, Any]:
    return {"name": metric.name, "label": metric.label, "kind": metric.kind, "unit": metric.unit,
            "level": metric.level, "direction": metric.direction, "description": metric.description,
            "drivers": tree.drivers(metric.name)}


def list_metrics(catalog: Catalog, tree_name: str) -> Answer:
    """The metrics of one tree, top of the tree first as declared."""
    tree, loaded = catalog.tree(tree_name)
    rows = [_metric_row(tree, metric) for metric in tree.metrics.values()]
    lines = [f"# Metrics of {_md(tree.title or tree.name)} (`{tree.name}`, grain {tree.grain})", "",
             f"Top metrics: {', '.join(f'`{m}`' for m in tree.roots())}", "",
             "| metric | label | kind | unit | level | drivers |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(x) for x in (
            f"`{r['name']}`", r["label"] or "", r["kind"], r["unit"] or "", r["level"] or "",
            ", ".join(r["drivers"]))) + " |")
    data = {"tree": tree.name, "title": tree.title, "grain": tree.grain, "top_metrics": tree.roots(),
            "dimensions": list(tree.dimensions), "params": {n: p.value for n, p in tree.params.items()},
            "metrics": rows}
    return _with_state(data, loaded, "\n".join(lines) + "\n")


def _goal_text(tree: Tree, metric: str, value: float) -> str:
    m = tree.metrics.get(metric)
    return value_text(value, m.unit if m else None, m.format if m else None)


def describe_metric(catalog: Catalog, tree_name: str, metric_name: str) -> Answer:
    """One metric: formula, drivers (formula and influence), parents, unit, targets and alerts on it."""
    tree, loaded = catalog.tree(tree_name)
    metric = _metric(tree, metric_name)
    drivers = [{"metric": child, "label": tree.metrics[child].title, "link": kind}
               for child, kind in ((c, tree.graph.edges[metric.name, c]["kind"]) for c in tree.drivers(metric.name))]
    targets = [{"condition": f"{t.metric} {t.op} {_goal_text(tree, t.metric, t.value)}", "op": t.op, "goal": t.value,
                "deadline": t.deadline, "start": t.start, "every": t.every, "label": t.label,
                "where": t.where.to_source() if t.where is not None else None,
                "checkpoints": [{"period": p, "value": v} for p, v in t.checkpoints]}
               for t in tree.targets if t.metric == metric.name]
    alerts = [{"condition": a.condition.to_source(), "severity": a.severity, "message": a.message,
               "where": a.where.to_source() if a.where is not None else None}
              for a in tree.alerts if metric.name in a.metrics]
    data = {"tree": tree.name, "name": metric.name, "label": metric.label, "kind": metric.kind,
            "formula": metric.formula.to_source() if metric.formula is not None else None,
            "source": metric.source, "where": metric.where.to_source() if metric.where is not None else None,
            "unit": metric.unit, "format": metric.format, "direction": metric.direction, "level": metric.level,
            "owner": metric.owner, "description": metric.description, "controllable": metric.controllable,
            "external": metric.external, "library": metric.library, "params": list(metric.params),
            "drivers": drivers, "parents": tree.parents(metric.name), "targets": targets, "alerts": alerts,
            "location": str(metric.span) if metric.span else None}
    lines = [f"# {_md(metric.title)} (`{metric.name}`)", ""]
    if metric.description:
        lines += [_md(metric.description), ""]
    formula = data["formula"] or "(a group: no formula)"
    if data["where"]:
        formula += f" where {data['where']}"
    lines += [f"- formula: `{formula}`", f"- kind: {metric.kind}" + (f" (source `{metric.source}`)"
                                                                        if metric.source else "")]
    for key in ("unit", "direction", "level", "owner"):
        if data[key]:
            lines.append(f"- {key}: {_md(data[key])}")
    if drivers:
        lines.append("- drivers: " + ", ".join(f"`{d['metric']}`" + (" (influence)" if d["link"] == "influence"
                                                                      else "") for d in drivers))
    if data["parents"]:
        lines.append("- drives: " + ", ".join(f"`{p}`" for p in data["parents"]))
    for t in targets:
        name = _md(t["label"]) if t["label"] else f"`{t['condition']}`"
        lines.append(f"- target: {name} by {t['deadline']}"
                     + (f" where {t['where']}" if t["where"] else ""))
    for a in alerts:
        message = f" — {_md(a['message'])}" if a["message"] else ""
        lines.append(f"- alert ({a['severity']}): `{a['condition']}`{message}")
    return _with_state(data, loaded, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- the stages


def evaluate(catalog: Catalog, tree_name: str, metrics: Sequence[str] | None = None, by: Sequence[str] = (),
             grain: str | None = None, start: str | None = None, end: str | None = None,
             params: Mapping[str, Any] | None = None, limit: int = 200) -> Answer:
    """The metrics per period (and slice), at most ``limit`` rows (the last ones: the most recent periods)."""
    tree, loaded = catalog.tree(tree_name)
    if not 1 <= limit <= MAX_ROWS:
        raise UsageError(error(f"limit must be from 1 to {MAX_ROWS}, got {limit}", code="limit"))
    evaluation = tree.evaluation(data_for(tree, loaded), grain=grain, by=list(by), start=start, end=end,
                                 metrics=_names(tree, metrics), params=_params(loaded, params))
    document = json.loads(rendering.evaluation_json(evaluation, tree))
    rows = document["rows"]
    document["total_rows"] = len(rows)
    document["truncated"] = len(rows) > limit
    document["rows"] = rows[-limit:]
    columns = document["columns"]
    shown = document["rows"][-TEXT_ROWS:]
    lines = [f"# {_md(tree.title or tree.name)}: {len(rows)} row(s) at grain {evaluation.grain}"
             + (f" by {', '.join(evaluation.by)}" if evaluation.by else ""), ""]
    if len(shown) < len(rows):
        lines += [f"The last {len(shown)} rows are shown here; the structured result holds "
                  f"{len(document['rows'])}.", ""]
    heads = [f"{c} ({tree.metrics[c].unit})" if c in tree.metrics and tree.metrics[c].unit else c for c in columns]
    lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(columns)]
    for row in shown:
        cells = []
        for column in columns:
            metric = tree.metrics.get(column)
            value = row[column]
            cells.append(_cell(rendering.format_value(value, metric.unit, metric.format)
                               if metric is not None and isinstance(value, int | float) else
                               rendering.NULL if value is None else value))
        lines.append("| " + " | ".join(cells) + " |")
    if document["nulls"]:
        lines += ["", *[f"- `{n['metric']}` is null in {n['rows']} row(s): {n['reason']}" for n in document["nulls"]]]
    notes = [*(f"- `{s['metric']}`: {s['reason']}" for s in document.get("left_out", ())),
             *(f"- {w}" for w in document.get("warnings", ()))]
    if notes:
        lines += ["", *notes]
    return _with_state(document, loaded, "\n".join(lines) + "\n")


def _top_metric(tree: Tree) -> str:
    from ..cli import _top_metric as top

    return top(tree)


def explain(catalog: Catalog, tree_name: str, metric: str | None = None, baseline: str | None = None,
            current: str | None = None, by: Sequence[str] | None = None, top: int = 5,
            params: Mapping[str, Any] | None = None) -> Answer:
    """Why a metric moved between two periods: contributions, root causes and the sentences."""
    tree, loaded = catalog.tree(tree_name)
    name = _metric(tree, metric).name if metric else _top_metric(tree)
    explanation = tree.explain(data_for(tree, loaded), name, baseline, current, by=list(by) if by is not None else None,
                               params=_params(loaded, params), top=top)
    return _with_state(explanation.to_dict(), loaded, explanation.to_markdown())


def status(catalog: Catalog, tree_name: str, at: str | None = None,
           params: Mapping[str, Any] | None = None) -> Answer:
    """Every target against its plan and every alert, at one period."""
    tree, loaded = catalog.tree(tree_name)
    found = tree.status(data_for(tree, loaded), at=at, params=_params(loaded, params))
    return _with_state(found.to_dict(), loaded, found.to_markdown())


def what_if(catalog: Catalog, tree_name: str, changes: Mapping[str, Any], period: str | None = None,
            params: Mapping[str, Any] | None = None) -> Answer:
    """Set some metrics in one period and follow the change up the formulas."""
    tree, loaded = catalog.tree(tree_name)
    if not changes:
        raise UsageError(error("no changes given", hint='e.g. {"open_rate": "+10%", "aov": 2600}', code="no-changes"))
    for name in changes:
        _metric(tree, name)
    scenario = tree.simulate(data_for(tree, loaded), dict(changes), period, params=_params(loaded, params))
    return _with_state(scenario.to_dict(), loaded, scenario.to_markdown())


def diagnostics(exc: Exception) -> list[dict[str, Any]]:
    """A `MetrictreeError`'s diagnostics as JSON-ready dicts."""
    return [{"severity": d.severity, "message": d.message, "hint": d.hint, "code": d.code,
             "location": str(d.span) if d.span else None} for d in getattr(exc, "diagnostics", ())]


__all__ = ["Answer", "describe_metric", "diagnostics", "evaluate", "explain", "list_metrics", "list_trees",
           "status", "what_if"]
