"""dbt / MetricFlow semantic models and metrics → a tree file (``metrictree import dbt PATH``).

The translation, piece by piece:

- a semantic model becomes a ``source``: its default ``agg_time_dimension`` is the
  ``time`` column, its categorical dimensions are ``dimensions``, and one entity (the
  only foreign entity, else the primary one) is the ``entity``;
- a measure becomes a base metric: its ``agg`` over its ``expr`` (``sum``, ``count``,
  ``count_distinct``, ``average`` → ``avg``, ``min``, ``max``, ``sum_boolean``), and
  ``sum(case when C then X else 0 end)`` becomes ``sum(X) where C``;
- a simple metric becomes its measure's aggregate with the metric's ``filter`` as
  ``where`` (or, unfiltered and of the measure's name, just takes the metric's label);
- a ratio metric becomes ``numerator / denominator``; a derived metric its ``expr``,
  with ``offset_window`` inputs as time shifts (``revenue[-1]``); an input with its own
  ``filter`` becomes a base metric of its own (its measure with all the filters);
- a cumulative metric becomes ``cumulative_sum(m)`` (no window), or, for a window of n
  periods of the tree's grain, the running total less the running total n periods
  earlier (``m_to_date - coalesce(m_to_date[-n], 0)``, which over the first periods of
  the data is what there is so far, as in MetricFlow); for additive measures, with
  ``period_agg: last`` (the value at the end of each period).

SQL (measure expressions, filters, derived expressions) is read with sqlglot; only what
has the same meaning in the tree language is translated. Whatever cannot be expressed —
a median, a filter on another semantic model's dimension (a join), a window over
distinct counts, a conversion metric … — is left out and listed in `Imported.notes`
(and at the top of the written file), never dropped silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .errors import UsageError, error

GRAINS_PER = {  # how many periods of the tree's grain one MetricFlow granularity spans
    "day": {"day": 1, "week": 7},
    "week": {"week": 1},
    "month": {"month": 1, "quarter": 3, "year": 12},
    "quarter": {"quarter": 1, "year": 4},
    "year": {"year": 1},
}
_AGGREGATES = {"sum": "sum", "count": "count", "count_distinct": "count_distinct", "average": "avg", "avg": "avg",
               "min": "min", "max": "max", "sum_boolean": "sum"}
_ADDITIVE = {"sum", "count", "sum_boolean"}
_RESERVED = {"and", "or", "not", "in", "is", "null", "true", "false", "where", "by"}


class NotExpressible(Exception):
    """A MetricFlow construct the tree language has no equivalent for (the message says which and why)."""


@attrs.frozen
class Imported:
    """The result of an import.

    Attributes:
        text: the tree file (in the ``metrictree fmt`` layout).
        notes: what could not be expressed, one line each.
        tables: for each source, the dbt model (relation) whose rows it reads.
    """

    text: str
    notes: tuple[str, ...]
    tables: Mapping[str, str]


# --------------------------------------------------------------------------- reading a project


def read_project(path: str | Path) -> tuple[str, list[dict], list[dict]]:
    """``(project name, semantic models, metrics)`` in the shape of dbt's ``semantic_manifest.json``.

    ``path`` is a dbt project folder (its YAML files are read) or a ``semantic_manifest.json``.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        try:
            manifest = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(error(f"cannot read {path}: {exc}", hint="name dbt's target/semantic_manifest.json",
                                   code="dbt")) from None
        name = path.parent.parent.name if path.parent.name == "target" else path.stem
        for project in (path.parent / "dbt_project.yml", path.parent.parent / "dbt_project.yml"):
            if project.is_file():
                name = _yaml(project).get("name", name)
                break
        return name, list(manifest.get("semantic_models", [])), list(manifest.get("metrics", []))
    if not path.is_dir():
        raise UsageError(error(f"no dbt project at {path}", hint="name the folder with dbt_project.yml, or a "
                                                                 "semantic_manifest.json", code="dbt"))
    project = path / "dbt_project.yml"
    config = _yaml(project) if project.is_file() else {}
    folders = config.get("model-paths", ["models"])
    models: list[dict] = []
    metrics: list[dict] = []
    for folder in folders:
        for file in sorted((path / folder).rglob("*.y*ml")):
            if file.suffix not in (".yml", ".yaml"):
                continue
            content = _yaml(file) or {}
            models += [_model_from_yaml(m) for m in content.get("semantic_models", []) or []]
            metrics += [_metric_from_yaml(m) for m in content.get("metrics", []) or []]
    if not models and not metrics:
        raise UsageError(error(f"{path} has no semantic models or metrics",
                               hint="MetricFlow's semantic_models: and metrics: live in YAML files under "
                                    f"{', '.join(folders)}/", code="dbt"))
    return config.get("name", path.resolve().name), models, metrics


def _yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise UsageError(error("reading a dbt project needs PyYAML", hint='pip install "metrictree[dbt]"',
                               code="missing-extra")) from None
    try:
        return yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(error(f"cannot read {path}: {exc}", hint="fix the YAML", code="dbt")) from None


def _window(value: Any) -> dict | None:
    """``"3 months"`` → ``{"count": 3, "granularity": "month"}`` (the manifest's shape)."""
    if value is None or isinstance(value, dict):
        return value
    match = re.fullmatch(r"\s*(\d+)\s+(\w+?)s?\s*", str(value))
    if not match:
        return {"count": None, "granularity": str(value)}
    return {"count": int(match.group(1)), "granularity": match.group(2)}


def _filter(value: Any) -> dict | None:
    if value is None or isinstance(value, dict) and "where_filters" in value:
        return value
    items = value if isinstance(value, list) else [value]
    return {"where_filters": [{"where_sql_template": str(v)} for v in items]}


def _reference(value: Any) -> dict | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {"name": value}
    out = dict(value)
    out["filter"] = _filter(out.get("filter"))
    if "offset_window" in out:
        out["offset_window"] = _window(out["offset_window"])
    return out


def _model_from_yaml(model: dict) -> dict:
    out = dict(model)
    ref = re.fullmatch(r"\s*ref\(\s*['\"]([^'\"]+)['\"]\s*\)\s*", str(model.get("model", "")))
    out["node_relation"] = {"alias": ref.group(1) if ref else str(model.get("model", model["name"]))}
    return out


def _metric_from_yaml(metric: dict) -> dict:
    out = dict(metric)
    params = dict(metric.get("type_params") or {})
    params["measure"] = _reference(params.get("measure"))
    params["numerator"] = _reference(params.get("numerator"))
    params["denominator"] = _reference(params.get("denominator"))
    params["metrics"] = [_reference(m) for m in params.get("metrics") or []]
    cumulative = dict(params.get("cumulative_type_params") or {})
    cumulative.setdefault("window", params.get("window"))
    cumulative.setdefault("grain_to_date", params.get("grain_to_date"))
    cumulative["window"] = _window(cumulative.get("window"))
    params["cumulative_type_params"] = cumulative
    out["type_params"] = params
    out["filter"] = _filter(metric.get("filter"))
    return out


# --------------------------------------------------------------------------- SQL → tree expressions


_JINJA = re.compile(r"\{\{\s*(\w+)\(([^)]*)\)((?:\.\w+\([^)]*\))*)\s*\}\}")


def sql_expression(sql: str, name_of: Callable[[str], str],
                   dimension_of: Callable[[str, tuple[str, ...]], str] | None = None) -> str:
    """SQL (a measure's ``expr``, a filter, a derived ``expr``) as a tree-language expression.

    ``name_of`` maps a SQL column to a tree name (``orders.amount``, or a metric); ``dimension_of``
    maps a ``{{ Dimension('entity__name') }}`` reference. Raises `NotExpressible`.
    """
    import sqlglot
    from sqlglot import exp

    placeholders: dict[str, str] = {}

    def hold(match: re.Match) -> str:
        kind, args, chained = match.group(1), match.group(2), match.group(3)
        values = tuple(a.strip().strip("'\"") for a in args.split(",") if a.strip())
        if kind != "Dimension" or chained or dimension_of is None:
            raise NotExpressible(f"{match.group(0).strip()} (only Dimension('entity__name') of the same "
                                 "semantic model has an equivalent)")
        key = f"mt_placeholder_{len(placeholders)}"
        placeholders[key] = dimension_of(values[0], values[1:])
        return key

    text = _JINJA.sub(hold, sql)
    if "{{" in text or "{%" in text:
        raise NotExpressible(f"the Jinja in {sql.strip()!r}")
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except sqlglot.errors.ParseError:
        raise NotExpressible(f"the SQL {sql.strip()!r} does not parse") from None

    binary = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.EQ: "==", exp.NEQ: "!=", exp.GT: ">",
              exp.GTE: ">=", exp.LT: "<", exp.LTE: "<=", exp.And: "and", exp.Or: "or"}
    functions = {exp.Coalesce: "coalesce", exp.Abs: "abs", exp.Greatest: "max", exp.Least: "min",
                 exp.Round: "round", exp.Sqrt: "sqrt", exp.Exp: "exp", exp.Pow: "power"}

    def convert(node) -> str:
        kind = type(node)
        if kind in binary:
            return f"{convert(node.this)} {binary[kind]} {convert(node.expression)}"
        if kind is exp.Column:
            if node.table:
                raise NotExpressible(f"the qualified column {node.sql()}")
            return placeholders.get(node.name) or name_of(node.name)
        if kind is exp.Literal:
            if node.is_string:
                return json.dumps(node.this, ensure_ascii=False)
            return str(node.this)
        if kind is exp.Boolean:
            return "true" if node.this else "false"
        if kind is exp.Null:
            return "null"
        if kind is exp.Paren:
            return f"({convert(node.this)})"
        if kind is exp.Neg:
            return f"-{convert(node.this)}"
        if kind is exp.Not:
            inner = node.this
            if isinstance(inner, exp.Is):
                return f"{convert(inner.this)} is not null"
            if isinstance(inner, exp.In):
                return f"{convert(inner.this)} not in [{', '.join(convert(e) for e in inner.expressions)}]"
            return f"not {convert(inner)}"
        if kind is exp.Is and isinstance(node.expression, exp.Null):
            return f"{convert(node.this)} is null"
        if kind is exp.In and node.expressions and not node.args.get("query"):
            return f"{convert(node.this)} in [{', '.join(convert(e) for e in node.expressions)}]"
        if kind in functions:
            args = [node.this, *(node.expressions or [])]
            if node.args.get("expression") is not None:
                args.append(node.expression)
            if node.args.get("decimals") is not None:
                args.append(node.args["decimals"])
            return f"{functions[kind]}({', '.join(convert(a) for a in args)})"
        raise NotExpressible(f"the SQL {node.sql(dialect='duckdb')!r} has no equivalent")

    return convert(tree)


def _case_filter(sql: str) -> tuple[str, str] | None:
    """``case when C then X else 0 end`` → ``(X, C)`` as SQL, else None."""
    import sqlglot
    from sqlglot import exp

    try:
        node = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError:
        return None
    if isinstance(node, exp.Case) and len(node.args.get("ifs") or []) == 1 and not node.this:
        default = node.args.get("default")
        if isinstance(default, exp.Literal) and not default.is_string and float(default.this) == 0:
            branch = node.args["ifs"][0]
            return branch.args["true"].sql(dialect="duckdb"), branch.this.sql(dialect="duckdb")
    return None


# --------------------------------------------------------------------------- the translation


def _identifier(name: str) -> str:
    name = re.sub(r"\W", "_", name)
    if not name or name[0].isdigit():
        name = "m_" + name
    return name + "_" if name in _RESERVED else name


def _quoted(text: str) -> str:
    return json.dumps(" ".join(str(text).split()), ensure_ascii=False)


@attrs.define
class _Translation:
    grain: str
    notes: list[str] = attrs.field(factory=list)
    sources: dict[str, dict] = attrs.field(factory=dict)  # semantic model name → model
    source_names: dict[str, str] = attrs.field(factory=dict)  # semantic model name → tree source name
    measures: dict[str, tuple[dict, dict]] = attrs.field(factory=dict)  # measure → (measure, model)
    lines: list[str] = attrs.field(factory=list)
    defined: dict[str, str] = attrs.field(factory=dict)  # tree name → what it is
    metric_names: dict[str, str] = attrs.field(factory=dict)  # MetricFlow metric → tree metric

    # -- sources

    def column(self, model: dict, expr: str | None, name: str) -> str:
        column = (expr or name).strip()
        if not re.fullmatch(r"(?!\d)\w+", column):
            raise NotExpressible(f"the SQL expression {column!r} as a column")
        return column

    def source(self, model: dict, taken: set[str]) -> None:
        name = _identifier(model["name"])
        if name in taken:
            self.notes.append(f"semantic model '{model['name']}': a metric or measure has its name, so its source "
                              f"is called '{name}_source'")
            name += "_source"
        self.source_names[model["name"]] = name
        self.sources[model["name"]] = model
        dims = {d["name"]: d for d in model.get("dimensions") or []}
        lines = [f"# semantic model {model['name']}: the dbt model {model['node_relation'].get('alias')}",
                 f"source {name} {{"]
        if model.get("label"):
            lines.append(f"    label {_quoted(model['label'])}")
        if model.get("description"):
            lines.append(f"    description {_quoted(model['description'])}")
        time = (model.get("defaults") or {}).get("agg_time_dimension")
        if time is None:
            time_dims = [d for d in dims.values() if d.get("type") == "time"]
            time = time_dims[0]["name"] if time_dims else None
        if time is None:
            raise NotExpressible(f"semantic model '{model['name']}' has no time dimension")
        lines.append(f"    time {self.column(model, dims.get(time, {}).get('expr'), time)}")
        categorical = []
        for dim in dims.values():
            if dim.get("type") == "categorical":
                try:
                    categorical.append(self.column(model, dim.get("expr"), dim["name"]))
                except NotExpressible as exc:
                    self.notes.append(f"dimension '{model['name']}.{dim['name']}': {exc}")
            elif dim["name"] != time:
                self.notes.append(f"dimension '{model['name']}.{dim['name']}': a second time dimension; the "
                                  f"tree places rows in periods by '{time}' only")
        if categorical:
            lines.append(f"    dimensions {', '.join(dict.fromkeys(categorical))}")
        entities = model.get("entities") or []
        foreign = [e for e in entities if e.get("type") == "foreign"]
        primary = [e for e in entities if e.get("type") in ("primary", "unique", "natural")]
        chosen = foreign[0] if len(foreign) == 1 else (primary[0] if primary else None)
        if chosen is not None:
            try:
                lines.append(f"    entity {self.column(model, chosen.get('expr'), chosen['name'])}")
            except NotExpressible as exc:
                self.notes.append(f"entity '{model['name']}.{chosen['name']}': {exc}")
        lines.append("}")
        self.lines += lines + [""]

    # -- measures

    def dimension(self, model: dict) -> Callable[[str, tuple[str, ...]], str]:
        """``order__status`` → ``orders.status`` when the dimension is the measure's own model's."""
        entities = {e["name"] for e in model.get("entities") or [] if e.get("type") in ("primary", "unique", "natural")}
        dims = {d["name"]: d for d in model.get("dimensions") or []}

        def resolve(reference: str, extra: tuple[str, ...]) -> str:
            entity, _, name = reference.rpartition("__")
            if extra or name not in dims or (entity and entity.split("__")[-1] not in entities):
                raise NotExpressible(f"the dimension {reference} is not one of the semantic model "
                                     f"'{model['name']}' (a join, which a base metric cannot make)")
            return f"{self.source_names[model['name']]}.{self.column(model, dims[name].get('expr'), name)}"

        return resolve

    def aggregate(self, measure: dict, model: dict, filters: Iterable[str] = ()) -> str:
        """A measure, with filters (SQL templates), as ``agg(source.x) where …``."""
        source = self.source_names[model["name"]]
        agg = measure.get("agg")
        if agg not in _AGGREGATES:
            raise NotExpressible(f"the measure '{measure['name']}' aggregates with {agg}, which metrictree has no "
                                 "function for")
        for key in ("non_additive_dimension", "agg_params"):
            if measure.get(key):
                raise NotExpressible(f"the measure '{measure['name']}' has {key} (semi-additive or parametrised)")
        model_time = (model.get("defaults") or {}).get("agg_time_dimension")
        if measure.get("agg_time_dimension") not in (None, model_time):
            raise NotExpressible(f"the measure '{measure['name']}' is placed in time by "
                                 f"'{measure['agg_time_dimension']}', not by its source's time column")
        expr = str(measure.get("expr") or measure["name"]).strip()
        conditions = [sql_expression(f, lambda c: f"{source}.{c}", self.dimension(model)) for f in filters]
        case = _case_filter(expr) if agg in ("sum", "count") else None
        if case is not None:
            expr, condition = case
            conditions.insert(0, sql_expression(condition, lambda c: f"{source}.{c}"))
        if expr == "1" and agg in ("sum", "count"):
            call = f"count({source})"
        elif agg == "sum_boolean":
            conditions.insert(0, f"{sql_expression(expr, lambda c: f'{source}.{c}')} == true")
            call = f"count({source})"
        else:
            call = f"{_AGGREGATES[agg]}({sql_expression(expr, lambda c: f'{source}.{c}')})"
        if len(conditions) > 1:
            conditions = [f"({c})" if " or " in c else c for c in conditions]
        return call + (f" where {' and '.join(conditions)}" if conditions else "")

    # -- metrics

    def meta(self, item: dict, extra: Iterable[str] = ()) -> str:
        entries = list(extra)
        if item.get("label"):
            entries.append(f"label {_quoted(item['label'])}")
        if item.get("description"):
            entries.append(f"description {_quoted(item['description'])}")
        return (" { " + " ".join(entries) + " }") if entries else ""

    def define(self, name: str, body: str | None, meta: str, what: str, comment: str | None = None) -> None:
        if name in self.defined:
            raise NotExpressible(f"'{name}' is already the {self.defined[name]}")
        self.defined[name] = what
        if comment:
            self.lines.append(f"# {comment}")
        self.lines.append(f"metric {name}" + (f" = {body}" if body else "") + meta)

    def filters(self, item: dict | None) -> list[str]:
        found = (item or {}).get("filter") or {}
        return [f["where_sql_template"] for f in found.get("where_filters") or []]

    def input_metric(self, ref: dict, metrics: dict[str, dict], owner: str) -> str:
        name = ref["name"]
        if self.filters(ref):
            return self.filtered_input(ref, metrics, owner)
        if name not in self.metric_names:
            if name in metrics:
                self.metric(metrics[name], metrics)
            if name not in self.metric_names:
                raise NotExpressible(f"its input metric '{name}' could not be expressed")
        return self.metric_names[name]

    def filtered_input(self, ref: dict, metrics: dict[str, dict], owner: str) -> str:
        """An input with its own filter (``numerator: {name: orders, filter: …}``): a base metric of its own,
        the input's measure with every filter on the way, when the input is a simple metric."""
        name = ref["name"]
        metric = metrics.get(name)
        if metric is None or metric.get("type") != "simple":
            raise NotExpressible(f"the input '{name}' of '{owner}' has its own filter, and '{name}' is not a "
                                 "simple metric (only a measure can take a filter)")
        measure_ref = (metric.get("type_params") or {}).get("measure") or {}
        measure, model = self.measure(measure_ref.get("name"))
        helper = _identifier(f"{owner}_{ref.get('alias') or name}")
        body = self.aggregate(measure, model, self.filters(metric) + self.filters(measure_ref) + self.filters(ref))
        self.define(helper, body, "", "metric", f"'{name}' as '{owner}' filters it")
        return helper

    def metric(self, metric: dict, metrics: dict[str, dict]) -> None:
        """Translate one metric (after its inputs); a failure is noted and the metric left out."""
        name = metric["name"]
        if name in self.metric_names or name in self.failed:
            return
        self.failed.add(name)  # guards cycles; removed on success
        try:
            self._metric(metric, metrics)
        except NotExpressible as exc:
            self.notes.append(f"metric '{name}' ({metric.get('type')}): {exc}")
            return
        self.failed.discard(name)

    failed: set[str] = attrs.field(factory=set)

    def _metric(self, metric: dict, metrics: dict[str, dict]) -> None:
        name, kind = metric["name"], metric.get("type")
        params = metric.get("type_params") or {}
        tree_name = _identifier(name)
        meta = self.meta(metric)
        if kind == "simple":
            ref = params.get("measure") or {}
            measure, model = self.measure(ref.get("name"))
            filters = self.filters(metric) + self.filters(ref)
            if ref.get("fill_nulls_with") is not None or ref.get("join_to_timespine"):
                self.notes.append(f"metric '{name}': fill_nulls_with / join_to_timespine dropped (metrictree "
                                  "gives 0 for sums and counts in a period with no rows anyway)")
            if not filters and _identifier(measure["name"]) == tree_name:
                self.defined.pop(tree_name, None)
                self.lines[:] = [line for line in self.lines if not line.startswith(f"metric {tree_name} =")]
                self.define(tree_name, self.aggregate(measure, model), self.meta(metric) or self.meta(measure),
                            "metric")
            else:
                self.define(tree_name, self.aggregate(measure, model, filters), meta, "metric")
        elif kind == "ratio":
            top = self.input_metric(params["numerator"], metrics, name)
            bottom = self.input_metric(params["denominator"], metrics, name)
            if self.filters(metric):
                raise NotExpressible("a filter on a ratio metric (filter its numerator and denominator instead)")
            self.define(tree_name, f"{top} / {bottom}", meta, "metric")
        elif kind == "derived":
            if self.filters(metric):
                raise NotExpressible("a filter on a derived metric")
            aliases: dict[str, str] = {}
            for ref in params.get("metrics") or []:
                base = self.input_metric(ref, metrics, name)
                target = base
                window = ref.get("offset_window")
                if ref.get("offset_to_grain"):
                    raise NotExpressible(f"offset_to_grain on its input '{ref['name']}'")
                if window:
                    target = f"{base}[-{self.periods(window, name)}]"
                aliases[ref.get("alias") or ref["name"]] = target
            body = sql_expression(str(params.get("expr") or ""), lambda c: self.alias(c, aliases, name))
            self.define(tree_name, body, meta, "metric")
        elif kind == "cumulative":
            ref = params.get("measure") or {}
            cumulative = params.get("cumulative_type_params") or {}
            if ref.get("name") is None and cumulative.get("metric"):
                raise NotExpressible("a cumulative metric over a metric (only over a measure)")
            measure, model = self.measure(ref.get("name"))
            if measure.get("agg") not in _ADDITIVE:
                raise NotExpressible(f"a running total of '{measure['name']}', which aggregates with "
                                     f"{measure.get('agg')}: the total over a window is not the sum of the periods'")
            if (cumulative.get("period_agg") or "first") != "last":
                raise NotExpressible(f"period_agg: {cumulative.get('period_agg') or 'first'} (the value at the "
                                     "start of each period); period_agg: last is the value at its end, which the "
                                     "tree computes")
            inner = self.measure_metric(measure, model, self.filters(metric) + self.filters(ref))
            window, to_date = cumulative.get("window"), cumulative.get("grain_to_date")
            if window and to_date:
                raise NotExpressible("both a window and grain_to_date")
            if to_date:
                if to_date != self.grain:
                    raise NotExpressible(f"grain_to_date: {to_date} at grain {self.grain}")
                body = inner
            elif window:
                # The total to date less the total to date n periods earlier: over the first n - 1 periods
                # of the data that is what there is so far, as MetricFlow's window gives it.
                to_date = self.to_date(inner)
                body = f"{to_date} - coalesce({to_date}[-{self.periods(window, name)}], 0)"
            else:
                body = f"cumulative_sum({inner})"
            self.define(tree_name, body, meta, "metric")
        else:
            raise NotExpressible(f"{kind} metrics have no equivalent in the tree language")
        self.metric_names[name] = tree_name

    def to_date(self, metric: str) -> str:
        """A helper metric: ``metric``'s running total (made once)."""
        helper = f"{metric}_to_date"
        if self.defined.get(helper) != "running total":
            self.define(helper, f"cumulative_sum({metric})", "", "running total")
            self.defined[helper] = "running total"
        return helper

    def periods(self, window: dict, owner: str) -> int:
        granularity = str(window.get("granularity", "")).rstrip("s")
        per = GRAINS_PER.get(self.grain, {}).get(granularity)
        if per is None or not window.get("count"):
            raise NotExpressible(f"a window of {window.get('count')} {window.get('granularity')} at grain "
                                 f"{self.grain}")
        return int(window["count"]) * per

    def alias(self, column: str, aliases: dict[str, str], owner: str) -> str:
        if column not in aliases:
            raise NotExpressible(f"its expr names '{column}', which is not one of its input metrics")
        return aliases[column]

    def measure(self, name: str | None) -> tuple[dict, dict]:
        if name not in self.measures:
            raise NotExpressible(f"the measure '{name}' is not in any semantic model")
        return self.measures[name]

    def measure_metric(self, measure: dict, model: dict, filters: list[str]) -> str:
        """The base metric of a measure (with filters: a new one), for windows over it."""
        if not filters and _identifier(measure["name"]) in self.defined:
            return _identifier(measure["name"])
        raise NotExpressible("a filter on a cumulative metric")


def import_dbt(path: str | Path, grain: str = "month", name: str | None = None) -> Imported:
    """Read a dbt project (or ``semantic_manifest.json``) and write its metrics as a tree file."""
    from .compiling import loads
    from .formatting import format_text
    from .model import GRAINS

    if grain not in GRAINS:
        raise UsageError(error(f"unknown grain '{grain}'", hint=f"use one of: {', '.join(GRAINS)}", code="grain"))
    project, models, metrics = read_project(path)
    t = _Translation(grain)
    taken = {_identifier(m["name"]) for m in metrics} | {
        _identifier(me["name"]) for model in models for me in model.get("measures") or []}
    for model in models:
        try:
            t.source(model, taken)
        except NotExpressible as exc:
            t.notes.append(f"semantic model '{model['name']}': {exc}; its measures are left out")
            continue
        for measure in model.get("measures") or []:
            t.measures[measure["name"]] = (measure, model)
    measure_lines: list[str] = []
    for measure, model in t.measures.values():
        try:
            body = t.aggregate(measure, model)
        except NotExpressible as exc:
            t.notes.append(f"measure '{measure['name']}': {exc}")
            continue
        tree_name = _identifier(measure["name"])
        if tree_name in t.defined:
            t.notes.append(f"measure '{measure['name']}': a second measure of that name; left out")
            continue
        t.defined[tree_name] = "measure"
        measure_lines.append(f"metric {tree_name} = {body}{t.meta(measure)}")
    t.lines += ["# measures: aggregations over one source", *measure_lines, "", "# metrics"]
    by_name = {m["name"]: m for m in metrics}
    for metric in metrics:
        t.metric(metric, by_name)

    header = [f"# Imported from the dbt project '{project}' by `metrictree import dbt`.", "#"]
    tables = {t.source_names[m]: model["node_relation"].get("alias") for m, model in t.sources.items()}
    bindings = ", ".join(f"{source} ← {table}" for source, table in tables.items())
    header += [f"# Bind each source to the rows of its dbt model: {bindings}."]
    if t.notes:
        header += ["#", "# Not expressed in this tree (left out, MetricFlow keeps them):"]
        header += [f"#   - {note}" for note in t.notes]
    body = [*header, f"tree {_identifier(name or project)} {_quoted(f'dbt project {project}')}", f"grain {grain}", "",
            *t.lines]
    text = "\n".join(body) + "\n"
    try:
        tree = loads(text, f"{project}.tree")
    except Exception as exc:  # pragma: no cover - a translation that does not compile is a bug in this module
        raise AssertionError(f"the imported tree does not compile:\n{text}\n{exc}") from exc
    roots = [m for m in tree.roots() if tree.metrics[m].kind != "group"]
    if len(roots) > 1:
        text += ("\n# Every metric without a parent, under one node, so that the tree has one top.\n"
                 f"metric dbt_metrics {{ label {_quoted(f'Metrics of {project}')} }}\n"
                 f"dbt_metrics <~ {', '.join(roots)}\n")
    text = format_text(text, f"{project}.tree")
    loads(text, f"{project}.tree")
    return Imported(text, tuple(t.notes), tables)


__all__ = ["Imported", "NotExpressible", "import_dbt", "read_project", "sql_expression"]
