"""The ``metrictree`` command line: ``check``, ``eval``, ``explain``, ``whatif``, ``status``, ``graph``, ``fmt``,
``serve``, ``plugins`` …

The CLI only wires the stages together (load → evaluate → render); formatting lives
in `metrictree.rendering`. Exit codes:

- 0 — done (warnings do not fail ``check``);
- 1 — a user mistake in a tree file, the data or an argument the engine checks
  (any `MetrictreeError`): its diagnostics go to stderr, never a traceback;
- 2 — the command line itself is wrong (unknown option, ``--data`` without ``=`` …);
- 3 — ``status --fail-on-alert``: an alert fired;
- 4 — ``status --notify``: a notification could not be delivered (after its retries).

Colour is used only when the stream is a terminal; piped output is plain text.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from . import __version__, lazy
from .escaping import markdown_text, printable
from .compiling import check as check_tree, load as load_file
from .errors import Diagnostic, MetrictreeError, UsageError, check_summary, did_you_mean, error
from .model import GRAINS, Tree

if TYPE_CHECKING:
    from rich.console import Console

    from .evaluating import Evaluation

# The renderers import rich: only the commands that print rich output load them.
rendering = lazy.module("metrictree.rendering")
exporting = lazy.module("metrictree.exporting")  # JSON and CSV, without rich

FORMATS = ("table", "json", "csv")
GRAPH_FORMATS = ("mermaid", "dot", "svg", "png")
EXPLAIN_FORMATS = ("text", "json", "markdown")
REPORT_FORMATS = (*EXPLAIN_FORMATS, "html")


def _include_paths() -> list[str]:
    """The folders given with ``metrictree --include-path DIR``: includes may read .tree files there too."""
    ctx = click.get_current_context(silent=True)
    return list(ctx.find_root().meta.get("metrictree.include_paths", ())) if ctx else []


def load(tree_path: str) -> Tree:
    """A tree file, or a tree a plugin ships, by name (``metrictree eval crm_ltv --sample``)."""
    from .pluginmanager import registry

    if not Path(tree_path).exists():
        bundled = registry().trees.get(tree_path) or registry().trees.get(Path(tree_path).stem)
        if bundled is not None and not Path(tree_path).parent.name:
            return load_file(str(bundled.path), include_paths=_include_paths())
    return load_file(tree_path, include_paths=_include_paths())


# --------------------------------------------------------------------------- output


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _console(stream: IO[str]) -> Console:
    """A rich console on ``stream``: coloured on a terminal, plain (whatever FORCE_COLOR says) when piped."""
    from .escaping import SafeConsole

    return SafeConsole(file=stream, force_terminal=_is_terminal(stream), highlight=False, emoji=False, markup=False,
                       soft_wrap=False)


def _print_diagnostics(diagnostics: Iterable[Diagnostic], *, spaced: bool) -> None:
    """Diagnostics on stderr, each as `Diagnostic.render()` (styled on a terminal)."""
    diagnostics = list(diagnostics)
    if not diagnostics:
        return
    stream = sys.stderr
    if _is_terminal(stream):
        console = _console(stream)
        for i, d in enumerate(diagnostics):
            if i and not spaced:
                console.print()
            console.print(rendering.styled_diagnostic(d), soft_wrap=True)
            if spaced:
                console.print()
        return
    text = printable("\n\n".join(d.render() for d in diagnostics))
    click.echo(text + ("\n" if spaced else ""), err=True)


def _note(text: str) -> None:
    if _is_terminal(sys.stderr):
        _console(sys.stderr).print(f"note: {text}", style="dim", soft_wrap=True)
    else:
        click.echo(printable(f"note: {text}"), err=True)


def _write(output: str | None, payload: str | bytes) -> None:
    """Text or bytes to ``output`` (a file) or to stdout (text to a terminal without control characters)."""
    if isinstance(payload, str) and output is None and _is_terminal(sys.stdout):
        payload = printable(payload)
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    if output is None:
        sys.stdout.flush()
        stream = sys.stdout.buffer
        stream.write(data)
        stream.flush()
        return
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise click.FileError(output, hint=exc.strerror or str(exc)) from None


# --------------------------------------------------------------------------- the group


class _Commands(click.Group):
    """Turns every `MetrictreeError` a command raises into its diagnostics on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        from . import progress

        # A progress bar on a terminal for scans longer than about a second (not with --quiet, not when piped).
        bar = progress.TerminalBar(sys.stderr, delay=progress.delay()) if _is_terminal(sys.stderr) else None

        def show(step: progress.Progress) -> None:
            if bar is not None and not ctx.meta.get("metrictree.quiet"):
                bar(step)

        try:
            with progress.reporting(show if bar is not None else None):
                return super().invoke(ctx)
        except MetrictreeError as exc:
            if bar is not None:
                bar.close()
            _print_diagnostics(exc.diagnostics, spaced=False)
            ctx.exit(1)
        finally:
            if bar is not None:
                bar.close()


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="metrictree", message="%(prog)s %(version)s")
@click.option("--include-path", "include_paths", multiple=True, metavar="DIR",
              type=click.Path(file_okay=False, exists=True),
              help="A folder `include` may also read .tree files from (besides the tree's own folder). Repeatable.")
@click.pass_context
def main(ctx: click.Context, include_paths: Sequence[str]) -> None:
    """metrictree: metric trees as files, evaluated over Arrow data.

    \b
    Try it on the bundled tree and sample data:
      metrictree check trees/crm_ltv.tree
      metrictree eval trees/crm_ltv.tree --sample --by region
      metrictree graph trees/crm_ltv.tree > ltv.mmd
    """
    ctx.meta["metrictree.include_paths"] = tuple(include_paths)
    _exit_without_collecting()  # (Arrow's allocator was set up when metrictree was imported: metrictree.allocator)


def _exit_without_collecting() -> None:
    """When the command is over, let the process end without Python's last garbage collections.

    At exit Python collects every object still alive, several times over, only for the memory to go back
    to the system with the process: with pyarrow (and numpy and pandas, which pyarrow imports when they are
    installed) that took 0.1-0.3 s of a 0.5-1 s `metrictree eval`. `gc.freeze` in an atexit hook (the last
    one to run, being registered after the standard library's) leaves those objects out of the collections;
    the other atexit hooks, `weakref.finalize` callbacks and the flushing of stdout and stderr still happen.
    What is skipped is finalizers of objects alive at exit, which Python does not promise to run anyway.
    """
    global _exit_hooked
    if not _exit_hooked:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _exit_hooked = True


_exit_hooked = False


# --------------------------------------------------------------------------- check


# --------------------------------------------------------------------------- eval


def _bundled_path(tree_path: str) -> str:
    from .pluginmanager import registry

    if not Path(tree_path).exists() and tree_path in registry().trees:
        return str(registry().trees[tree_path].path)
    return tree_path


def _assignments(what: str) -> Any:
    """A click callback reading repeated ``NAME=VALUE`` options into a dict (later ones win)."""

    def parse(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for value in values:
            name, sep, rest = value.partition("=")
            if not sep or not name.strip() or not rest.strip():
                raise click.BadParameter(f"expected {what}, got {value!r}", ctx, param)
            out[name.strip()] = rest.strip()
        return out

    return parse


def _quiet(ctx: click.Context, _param, value: bool) -> bool:
    if value:
        ctx.meta["metrictree.quiet"] = True
    return value


def _data_options(command):
    """``--data SOURCE=PATH`` (repeatable), ``--sample`` and ``--quiet``: what every data command reads."""
    command = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_quiet, is_eager=True,
                           help="No progress bar (it shows on a terminal when reading takes more than a "
                                "second).")(command)
    command = click.option("--sample", is_flag=True,
                           help="Use the bundled sample shop data (--data entries override it).")(command)
    return click.option("--data", "data", multiple=True, metavar="SOURCE=PATH", callback=_assignments("SOURCE=PATH"),
                        help="Bind a source to a Parquet, CSV, Arrow or JSON Lines file or folder, or to a table "
                             "where it lives: duckdb:///shop.duckdb#orders, postgresql://user@host/db#schema.table, "
                             "@connection#table (docs/backends.md). Repeat for each source.")(command)


_param_option = click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
                             callback=_assignments("NAME=VALUE"),
                             help="Override a param of the tree, e.g. --param gross_margin=65%.")


def _names(values: Sequence[str]) -> list[str] | None:
    """``--by a,b --by c`` → ``["a", "b", "c"]``; ``None`` when the option was not given."""
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _bind_data(tree: Tree, given: dict[str, str], sample: bool) -> dict[str, Any]:
    for name in given:
        if name not in tree.sources:
            raise UsageError(error(f"--data {name}=…: the tree has no source '{name}'",
                                   hint=did_you_mean(name, tree.sources)
                                   or f"its sources: {', '.join(tree.sources) or 'none'}", code="unknown-source"))
    if not given and not sample and tree.sources:
        sources = ", ".join(tree.sources)
        example = " ".join(f"--data {name}=PATH" for name in tree.sources)
        raise UsageError(error("no data given", hint=f"pass each source the tree reads ({sources}) as {example}, "
                                                     "or add --sample to use the bundled sample data",
                               code="no-data"))
    data: dict[str, Any] = {}
    if sample:
        from .sample import sample_data

        data.update(sample_data())
    data.update(given)
    return data


# Options shared by the commands that compare periods (explain, report, status).
_grain_option = click.option("--grain", type=click.Choice(GRAINS),
                             help="Time grain (default: the tree's `grain`); periods are written at it "
                                  "(2026-W41 for weeks, 2026-Q4 for quarters).")
_top_option = click.option("--top", type=click.IntRange(min=1),
                           help="At most this many root causes (default: as many as stand out in the data).")


@main.command(short_help="Validate tree files.")
@click.argument("trees", metavar="TREE...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_data_options
def check(trees: Sequence[str], data: dict[str, str], sample: bool) -> None:
    """Validate tree files: print every error and warning, then one summary line per file.

    With --data (or --sample), also check each tree against the data's schemas: every column it
    reads is there, and its time columns hold dates (or text with a format). No row is read.
    Exits with 1 if any file has an error; warnings alone do not fail.
    """
    failed = False
    for path in trees:
        diagnostics = check_tree(_bundled_path(path), include_paths=_include_paths())
        if (data or sample) and not any(d.severity == "error" for d in diagnostics):
            from .datacheck import check_data

            tree = load(path)
            diagnostics = [*diagnostics, *check_data(tree, _bind_data(tree, data, sample))]
        _print_diagnostics(diagnostics, spaced=True)
        failed = failed or any(d.severity == "error" for d in diagnostics)
        click.echo(printable(check_summary(path, diagnostics)))
    if failed:
        click.get_current_context().exit(1)


@main.command("eval", short_help="Evaluate a tree over data.")
@click.argument("tree_path", metavar="TREE", type=click.Path(dir_okay=False))
@_data_options
@click.option("--grain", type=click.Choice(GRAINS), help="Time grain (default: the tree's `grain`).")
@click.option("--by", "by", multiple=True, metavar="DIM[,DIM...]", help="Slice the result by dimensions.")
@click.option("--metrics", "metrics", multiple=True, metavar="NAME[,NAME...]",
              help="Only these metrics (default: every metric that has values).")
@click.option("--from", "start", metavar="PERIOD", help="First period, e.g. 2026-01, 2026-Q1, 2026-W05, 2026.")
@click.option("--to", "end", metavar="PERIOD", help="Last period (inclusive).")
@_param_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="A table for people; JSON or CSV with one row per period × slice.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def eval_(tree_path: str, data: dict[str, str], sample: bool, grain: str | None, by: Sequence[str],
          metrics: Sequence[str], start: str | None, end: str | None, params: dict[str, str], fmt: str,
          output: str | None) -> None:
    """Evaluate a tree over data and print the metrics per period (and slice).

    \b
    metrictree eval trees/crm_ltv.tree --sample --by region --from 2026-07
    metrictree eval shop.tree --data orders=orders.parquet --format csv -o out.csv

    Null values are explained in notes on stderr (in the JSON under "nulls").
    """
    tree = load(tree_path)
    evaluation = tree.evaluation(_bind_data(tree, data, sample), grain=grain, by=_names(by) or (), start=start,
                                 end=end, metrics=_names(metrics), params=params)
    for warning_text in evaluation.warnings:
        _note(warning_text)
    if fmt == "json":
        _write(output, exporting.evaluation_json(evaluation, tree) + "\n")
        return
    if fmt == "csv":
        _write(output, exporting.evaluation_csv(evaluation.table))
    else:
        _print_tables(evaluation, tree, output)
    for reason in (*evaluation.nulls, *evaluation.skipped):
        _note(str(reason))


def _print_tables(evaluation: Evaluation, tree: Tree, output: str | None) -> None:
    if output is None:
        console = _console(sys.stdout)
        console.print(rendering.spaced(rendering.table_view(evaluation, tree, width=console.width)))
        return
    from rich.console import Console

    width = Console().width
    _write(output, rendering.to_text(rendering.table_view(evaluation, tree, width=width), width=width))


# --------------------------------------------------------------------------- graph


@main.command(short_help="Draw a tree as Mermaid, Graphviz DOT, SVG or PNG.")
@click.argument("tree_path", metavar="TREE", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(GRAPH_FORMATS), default="mermaid", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def graph(tree_path: str, fmt: str, output: str | None) -> None:
    """Draw the tree: a node per metric, an arrow from each metric to its drivers.

    Formula inputs are solid arrows, influence links (<~) dashed. SVG and PNG are drawn by
    Graphviz's `dot`, which must be installed (apt-get install graphviz); Mermaid and DOT need nothing.

    \b
    metrictree graph trees/crm_ltv.tree > ltv.mmd
    metrictree graph trees/crm_ltv.tree --format dot | dot -Tsvg > ltv.svg
    metrictree graph trees/crm_ltv.tree --format png -o ltv.png
    """
    tree = load(tree_path)
    if fmt in ("svg", "png"):
        from . import reporting

        _write(output, reporting.graphviz(rendering.dot(tree), fmt))
        return
    _write(output, rendering.mermaid(tree) if fmt == "mermaid" else rendering.dot(tree))


# --------------------------------------------------------------------------- explain


@main.command(short_help="Explain why a metric moved between two periods.")
@click.argument("tree_path", metavar="TREE", type=click.Path(dir_okay=False))
@click.option("--metric", "metric", metavar="NAME", help="The metric to explain (default: the tree's top metric).")
@click.option("--baseline", metavar="PERIOD", help="The period to compare with (default: the one before --current);"
                                                  " a range START..END compares with its mean.")
@click.option("--current", metavar="PERIOD", help="The period to explain (default: the last period with data).")
@click.option("--by", "by", multiple=True, metavar="DIM[,DIM...]",
              help="Dimensions to look for root causes in (default: every dimension of the tree).")
@_data_options
@_param_option
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="text", show_default=True,
              help="Text for a terminal; JSON; Markdown; or a self-contained HTML page with a waterfall chart.")
@click.option("--depth", type=click.IntRange(min=1), help="Show this many levels of drivers.")
@_top_option
@_grain_option
@click.option("--verbose", is_flag=True, help="Also show how each split was made (lmdi, shapley …) and the residual.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def explain(tree_path: str, metric: str | None, baseline: str | None, current: str | None, by: Sequence[str],
            data: dict[str, str], sample: bool, params: dict[str, str], fmt: str, depth: int | None, top: int | None,
            grain: str | None, verbose: bool, output: str | None) -> None:
    """Why did a metric move? Exact contributions down the formulas, then the segments behind them.

    \b
    metrictree explain trees/crm_ltv.tree --sample
    metrictree explain crm_ltv --sample --metric aov --baseline 2026-09 --current 2026-10 --by region,channel
    metrictree explain shop.tree --data orders=orders.parquet --format json
    """
    tree = load(tree_path)
    name = metric or _top_metric(tree)
    dims = _names(by)
    explanation = tree.explain(_bind_data(tree, data, sample), name, baseline, current,
                               by=dims, grain=grain, params=params, top=top)
    _emit(explanation, fmt, output, lambda: rendering.explanation_view(explanation, depth, verbose=verbose),
          lambda reporting: reporting.explanation_html(explanation), verbose=verbose)


def _emit(result: Any, fmt: str, output: str | None, view, html, verbose: bool = False) -> None:
    """A result (explanation, status) as JSON, Markdown, HTML or a terminal view, to ``output`` or stdout."""
    if fmt == "json":
        _write(output, json.dumps(result.to_dict(), ensure_ascii=False, indent=2, allow_nan=False) + "\n")
    elif fmt == "markdown":
        _write(output, markdown_text(result.to_markdown(verbose) if verbose else result.to_markdown()))
    elif fmt == "html":
        from . import reporting

        _write(output, html(reporting))
    elif output is None:
        _console(sys.stdout).print(view())
    else:
        _write(output, rendering.to_text(view(), width=100))


def _top_metric(tree: Tree) -> str:
    """The tree's first strategic top metric, or its only top metric."""
    roots = [m for m in tree.roots() if tree.metrics[m].kind != "group"]
    strategic = [m for m in roots if tree.metrics[m].level == "strategic"]
    if strategic:
        return strategic[0]
    if len(roots) != 1:
        raise UsageError(error("which metric should be explained?",
                               hint=f"pass --metric NAME; top metrics: {', '.join(roots) or 'none'}",
                               code="metric"))
    return roots[0]


# --------------------------------------------------------------------------- what-if


@main.command(short_help="What if some metrics changed? Follow the change up the formulas.")
@click.argument("tree_path", metavar="TREE", type=click.Path(dir_okay=False))
@click.option("--set", "changes", multiple=True, metavar="METRIC=CHANGE", callback=_assignments("METRIC=CHANGE"),
              help="A change: +10% / -5% (relative), +2pp (percentage points), +150 (added), 2600 or 30% "
                   "(the new value). Repeat for several.")
@click.option("--period", metavar="PERIOD", help="The period to change (default: the last with data).")
@click.option("--sensitivity", "sensitive", metavar="METRIC",
              help="Instead: rank the drivers of METRIC by the effect of moving each by 1 %.")
@_data_options
@_param_option
@click.option("--format", "fmt", type=click.Choice(EXPLAIN_FORMATS), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def whatif(tree_path: str, changes: dict[str, str], period: str | None, sensitive: str | None,
           data: dict[str, str], sample: bool, params: dict[str, str], fmt: str, output: str | None) -> None:
    """Set some metrics in one period and recompute everything above them, exactly.

    \b
    metrictree whatif trees/crm_ltv.tree --sample --set open_rate=+10% --set aov=2600
    metrictree whatif trees/crm_ltv.tree --sample --sensitivity ltv

    Influence links (<~) are not followed: they have no formula.
    """
    tree = load(tree_path)
    bound = _bind_data(tree, data, sample)
    if sensitive:
        table = tree.sensitivity(bound, sensitive, period, params=params)
        if fmt == "json":
            _write(output, json.dumps(table.to_pylist(), ensure_ascii=False, indent=2, allow_nan=False) + "\n")
        else:
            view = rendering.sensitivity_view(table, tree, sensitive, markdown=fmt == "markdown")
            _write(output, view) if isinstance(view, str) else _console(sys.stdout).print(view)
        return
    if not changes:
        raise click.UsageError("give at least one --set METRIC=CHANGE, or --sensitivity METRIC")
    scenario = tree.simulate(bound, changes, period, params=params)
    if fmt == "json":
        _write(output, json.dumps(scenario.to_dict(), ensure_ascii=False, indent=2, allow_nan=False) + "\n")
    elif fmt == "markdown" or output is not None:
        _write(output, scenario.to_markdown())
    else:
        _console(sys.stdout).print(rendering.scenario_view(scenario))


# --------------------------------------------------------------------------- status


EXIT_ALERT = 3
EXIT_UNDELIVERED = 4


@main.command(short_help="Targets against their plan, and the alerts that fire.")
@click.argument("tree_path", metavar="TREE", type=click.Path(dir_okay=False))
@_data_options
@click.option("--at", "at", metavar="PERIOD", help="The period to report on (default: the last period with data).")
@_param_option
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="text", show_default=True,
              help="Text for a terminal; JSON; Markdown; or a self-contained HTML page.")
@click.option("--fail-on-alert", is_flag=True,
              help=f"Exit with {EXIT_ALERT} when any alert fires (for scheduled jobs and CI).")
@_grain_option
@click.option("--notify", "notify", metavar="NOTIFY_CONFIG", type=click.Path(dir_okay=False),
              help="Send each fired alert and off-track target to the webhook / e-mail this TOML file names, "
                   "once per period (see docs/serve.md).")
@click.option("--dry-run", is_flag=True, help="With --notify: print what would be sent; send and record nothing.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def status(tree_path: str, data: dict[str, str], sample: bool, at: str | None, params: dict[str, str], fmt: str,
           fail_on_alert: bool, grain: str | None, notify: str | None, dry_run: bool, output: str | None) -> None:
    """Where each target stands (start, goal, gap, plan, state) and which alerts fire.

    \b
    metrictree status trees/crm_ltv.tree --sample
    metrictree status shop.tree --data orders=orders.parquet --at 2026-09 --format json
    metrictree status shop.tree --data orders=orders.parquet --fail-on-alert   # in a scheduled job
    metrictree status shop.tree --data orders=orders.parquet --notify notify.toml --dry-run

    \b
    Exit codes: 0 done; 1 a mistake in the tree, the data or an argument;
    3 with --fail-on-alert, when at least one alert fires (the status is printed first);
    4 with --notify, when a notification could not be delivered (it is tried again on the next run).
    """
    if dry_run and not notify:
        raise click.UsageError("--dry-run goes with --notify NOTIFY_CONFIG")
    tree = load(tree_path)
    bound = _bind_data(tree, data, sample)
    config = None
    if notify:
        from . import notifying

        config = notifying.load_config(notify, dry_run=dry_run or None)
    found = tree.status(bound, at=at, params=params, grain=grain)
    _emit(found, fmt, output, lambda: rendering.status_view(found), lambda reporting: reporting.status_html(found))
    if config is not None:
        report = notifying.check_and_notify(tree, bound, config, params=params, status=found)
        for channel, payload in report.dry_run:
            click.echo(f"would send to {channel}:\n{payload}\n", err=True)
        for channel, notice, why in report.failed:
            click.echo(f"not delivered to {channel}: {notice.key} ({notice.period}): {why}", err=True)
        _note(report.summary())
        if report.failed:
            click.get_current_context().exit(EXIT_UNDELIVERED)
    if fail_on_alert and found.fired:
        click.get_current_context().exit(EXIT_ALERT)


# --------------------------------------------------------------------------- report


@main.command(short_help="The tree, why a metric moved and the KPIs, as one HTML page.")
@click.argument("tree_path", metavar="TREE", type=click.Path(dir_okay=False))
@_data_options
@click.option("--metric", "metric", metavar="NAME", help="The metric to explain (default: the tree's top metric).")
@click.option("--baseline", metavar="PERIOD", help="The period to compare with (default: the one before --current);"
                                                  " a range START..END compares with its mean.")
@click.option("--current", metavar="PERIOD", help="The period to explain and report on (default: the last period "
                                                 "with data).")
@click.option("--by", "by", multiple=True, metavar="DIM[,DIM...]",
              help="Dimensions to look for root causes in (default: every dimension of the tree).")
@_param_option
@_top_option
@_grain_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def report(tree_path: str, data: dict[str, str], sample: bool, metric: str | None, baseline: str | None,
           current: str | None, by: Sequence[str], params: dict[str, str], top: int | None, grain: str | None,
           output: str | None) -> None:
    """Write one self-contained HTML report: why the metric moved (summary, waterfall, root causes), the tree as
    a graph with each metric's value, change and history (click a metric for its details), and the KPI status.

    The file needs no network to open. The graph is laid out by Graphviz when `dot` is installed, else by a
    simpler layered layout.

    \b
    metrictree report trees/crm_ltv.tree --sample -o report.html
    metrictree report shop.tree --data orders=orders.parquet --baseline 2026-09 --current 2026-10 -o report.html
    """
    from . import reporting

    tree = load(tree_path)
    page = reporting.report(tree, _bind_data(tree, data, sample), metric or _top_metric(tree), baseline, current,
                            by=_names(by), params=params, top=top, grain=grain)
    _write(output, page)


# --------------------------------------------------------------------------- serve


@main.command(short_help="Serve trees to AI assistants (MCP) and programs (JSON HTTP API).")
@click.argument("config", metavar="CONFIG", type=click.Path(exists=True))
@click.option("--transport", type=click.Choice(("stdio", "http")), default="stdio", show_default=True,
              help="stdio: MCP over stdin/stdout, for an assistant that starts the server itself; "
                   "http: the JSON API under /api/v1 and MCP over streamable HTTP at /mcp.")
@click.option("--host", metavar="HOST", help="With --transport http: the address to listen on "
                                             "(default: the config's, else 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="With --transport http: the port (default 8765).")
@click.option("--notify", "notify", metavar="NOTIFY_CONFIG", type=click.Path(dir_okay=False),
              help="Also check every tree's status on a schedule and send what fires (see status --notify).")
@click.option("--every", metavar="DURATION", help="How often to check with --notify: 90s, 15m, 1h (default 1h).")
def serve(config: str, transport: str, host: str | None, port: int | None, notify: str | None,
          every: str | None) -> None:
    """Serve the trees a config file names, with their data, until stopped.

    \b
    metrictree serve metrictree.toml                         # MCP over stdio
    metrictree serve metrictree.toml --transport http --port 8765
    METRICTREE_TOKEN=secret metrictree serve metrictree.toml --transport http --host 0.0.0.0

    A changed tree file is loaded on the next request; a change that breaks it keeps the last good
    version in service, with the error shown. See docs/serve.md.
    """
    import logging

    from .serving import serve as run
    from .serving.config import parse_duration

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(config, transport, host, port, notify, parse_duration(every, "--every") if every else None)


# --------------------------------------------------------------------------- fmt


def _tree_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        files.extend(sorted(path.rglob("*.tree")) if path.is_dir() else [path])
    return files


@main.command(short_help="Lay tree files out in the canonical format.")
@click.argument("paths", metavar="PATH...", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--check", is_flag=True, help="Change nothing; exit with 1 if any file would be reformatted.")
@click.option("--diff", is_flag=True, help="Change nothing; print what would change as a unified diff.")
def fmt(paths: Sequence[str], check: bool, diff: bool) -> None:
    """Rewrite tree files (and the .tree files in folders) in metrictree's one layout.

    Only whitespace changes, comments are kept, and the formatted file means exactly
    what the original meant. `-` reads a tree from stdin and writes it to stdout.

    \b
    metrictree fmt trees/
    metrictree fmt --check trees/        # in CI: exit 1 if a file is not formatted
    metrictree fmt --diff shop.tree
    """
    import difflib

    from .formatting import format_text

    if list(paths) == ["-"]:
        _write(None, format_text(sys.stdin.read(), "<stdin>"))
        return
    changed = unchanged = 0
    failed = False
    for path in _tree_files(paths):
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _print_diagnostics([error(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
                                      hint="name a UTF-8 .tree file", code="no-file")], spaced=False)
            failed = True
            continue
        try:
            formatted = format_text(text, str(path))
        except MetrictreeError as exc:
            _print_diagnostics(exc.diagnostics, spaced=True)
            failed = True
            continue
        if formatted == text:
            unchanged += 1
            continue
        changed += 1
        if diff:
            click.echo("".join(difflib.unified_diff(text.splitlines(True), formatted.splitlines(True),
                                                    str(path), str(path))), nl=False)
        if check:
            click.echo(f"would reformat {path}", err=True)
        elif not diff:
            path.write_text(formatted, "utf-8")
            click.echo(f"reformatted {path}", err=True)

    def files(n: int) -> str:
        return f"{n} file{'s' if n != 1 else ''}"

    verb = "would be reformatted" if check or diff else "reformatted"
    summary = [f"{files(changed)} {verb}"] if changed else []
    summary += [f"{files(unchanged)} left unchanged"] if unchanged else []
    click.echo(", ".join(summary) or "no tree files", err=True)
    if failed or (check and changed):
        click.get_current_context().exit(1)


# --------------------------------------------------------------------------- import


@main.group("import", short_help="Write a tree file from another tool's metric definitions.")
def import_() -> None:
    """Write a tree file from metric definitions kept elsewhere (dbt / MetricFlow)."""


@import_.command("dbt", short_help="A tree from a dbt project's MetricFlow semantic models and metrics.")
@click.argument("path", metavar="PATH", type=click.Path(exists=False))
@click.option("--grain", type=click.Choice(GRAINS), default="month", show_default=True,
              help="The tree's grain (windows and offsets are counted in it).")
@click.option("--name", help="The tree's name (default: the dbt project's).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def import_dbt(path: str, grain: str, name: str | None, output: str | None) -> None:
    """Read a dbt project's semantic models and metrics (its YAML, or the target/semantic_manifest.json dbt
    writes) and write them as a tree: semantic models become sources, measures base metrics, simple, ratio,
    derived and cumulative metrics formulas. What has no equivalent is listed on stderr and at the top of the
    tree file.

    \b
    metrictree import dbt path/to/dbt_project -o shop.tree
    metrictree import dbt path/to/dbt_project/target/semantic_manifest.json --grain week
    """
    from .importing_dbt import import_dbt as translate

    try:
        imported = translate(path, grain=grain, name=name)
    except ImportError as exc:
        raise UsageError(error(f"reading dbt projects needs {exc.name}", hint='pip install "metrictree[dbt]"',
                               code="missing-extra")) from None
    _write(output, imported.text)
    for note in imported.notes:
        _note(f"not expressed: {note}")
    if output is not None:
        click.echo(f"wrote {output}: {len(imported.tables)} source(s); bind them to the dbt models "
                   + ", ".join(f"{s}={t}" for s, t in imported.tables.items()), err=True)


# --------------------------------------------------------------------------- lsp


@main.command(short_help="Run the language server (for editors), on stdio.")
def lsp() -> None:
    """Run the metrictree language server on stdin/stdout, for VS Code, Neovim and other editors:
    diagnostics as `check` prints them, hover, go to definition, completion and formatting.

    Needs the `lsp` extra: pip install "metrictree[lsp]". See docs/authoring.md.
    """
    try:
        from .languageserver import serve
    except ImportError as exc:
        raise UsageError(error(f"the language server needs pygls ({exc.name} is not installed)",
                               hint='pip install "metrictree[lsp]"', code="missing-extra")) from None
    serve()


# --------------------------------------------------------------------------- plugins


@main.command(short_help="List the plugins loaded and what each adds.")
def plugins() -> None:
    """List the plugins loaded, where each comes from, and the functions, libraries and trees it adds."""
    from . import pluginmanager

    registry = pluginmanager.registry()
    console = _console(sys.stdout)
    order = {name: i for i, name in enumerate(pluginmanager.BUILTIN_PLUGINS)}
    for name, plugin in sorted(pluginmanager.plugins(), key=lambda p: (order.get(p[0], len(order)), p[0])):
        console.print(rendering.plugin_view(name, pluginmanager.distribution_of(plugin),
                                            registry.contributions(name), registry))


__all__ = ["main"]
