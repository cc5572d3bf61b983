"""An explanation in words: the few sentences on top, and the whole of it as Markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .explaining import Driver, Explanation


def number(value: float | None, unit: str | None = None, signed: bool = False) -> str:
    """A number for people, with its unit: ``2,629 RUB``, ``25.4%``, signed ``−102 RUB`` (``%`` values are
    fractions)."""
    from .rendering import NULL, format_value

    if value is None:
        return NULL
    text = format_value(abs(value) if signed else value, unit)
    if signed:
        text = ("+" if value > 0 else "−" if value < 0 else "±") + text
    elif text.startswith("-"):
        text = "−" + text[1:]
    return f"{text} {unit}" if unit and unit != "%" else text


def change_in_points(driver_change: float | None, unit: str | None) -> str:
    """A change: in percentage points for a ``%`` metric (``+1.2 pp``), else signed in its unit."""
    if unit == "%" and driver_change is not None:
        return number(driver_change * 100, None, signed=True) + " pp"
    return number(driver_change, unit, signed=True)


def where_text(where) -> str:
    return " & ".join(f"{k} = {v}" for k, v in where.items())


def _largest(drivers) -> Driver | None:
    formula = [d for d in drivers if d.kind != "influence" and d.contribution is not None]
    return max(formula, key=lambda d: abs(d.contribution), default=None)


def sentences(explanation: Explanation) -> list[str]:
    e = explanation
    verb = "rose" if e.change > 0 else "fell" if e.change < 0 else "did not change"
    head = f"{e.label} {verb}"
    if e.change:
        rel = f" {abs(e.relative_change) * 100:.1f} %" if e.relative_change is not None else ""
        head += f"{rel} ({number(e.change, e.unit, signed=True)}) from {e.baseline.period} to {e.current.period}"
        head += f": {number(e.baseline.value, e.unit)} → {number(e.current.value, e.unit)}."
    else:
        head += f" between {e.baseline.period} and {e.current.period}."
    out = [head]
    if not e.change:
        return out
    top = _largest(e.drivers)
    if top is not None and top.contribution and not 0 < top.contribution / e.change <= 1 + 1e-9:
        # Drivers pulling in opposite directions: a share over 100 % reads badly, so say it as it is.
        others = [d for d in e.drivers if d.kind != "influence" and d is not top and d.contribution]
        against = max(others, key=lambda d: abs(d.contribution), default=None)
        line = f"The largest effect is {top.label} ({number(top.contribution, e.unit, signed=True)})"
        if against is not None and (against.contribution > 0) != (top.contribution > 0):
            line += f", offset by {against.label} ({number(against.contribution, e.unit, signed=True)})"
        out.append(line + ".")
        top = None
    if top is not None and top.contribution:
        share = top.contribution / e.change * 100
        chain = [top]
        while True:
            below = _largest(chain[-1].drivers)
            if below is None or not below.contribution or abs(below.contribution) < 0.5 * abs(chain[-1].contribution):
                break
            chain.append(below)
        line = f"{share:.0f} % of the {'rise' if e.change > 0 else 'fall'} comes from {top.label}"
        details = [f"{d.label} went from {number(d.baseline, d.unit)} to {number(d.current, d.unit)}"
                   for d in chain if d.baseline is not None]
        if details:
            line += ": " + ", and ".join(details[-2:] if len(details) > 2 else details)
        out.append(line + ".")
    for cause in e.root_causes[:3]:
        share = (f"{cause.share * 100:.0f} % of the change".replace("-", "−") if cause.share is not None
                 else "part of the change")
        out.append(f"{where_text(cause.where)}: {cause.metric} {number(cause.baseline)} → {number(cause.current)}, "
                   f"{share} ({number(cause.contribution, e.unit, signed=True)}).")
    return out


def markdown(explanation: Explanation) -> str:
    e = explanation
    lines = [f"# Why did {e.label} move? ({e.baseline.period} → {e.current.period})", ""]
    lines += [" ".join(sentences(e)), ""]
    lines += ["## Drivers", "", "| driver | baseline | current | change | contribution | share | method |",
              "|---|---:|---:|---:|---:|---:|---|"]

    def visit(driver: Driver, depth: int) -> None:
        indent = "&nbsp;&nbsp;" * depth + ("↳ " if depth else "")
        kind = " *(influence, not in the sum)*" if driver.kind == "influence" else ""
        share = f"{driver.share * 100:.0f} %" if driver.share is not None else ""
        lines.append(f"| {indent}{driver.label}{kind} | {number(driver.baseline, driver.unit)} | "
                     f"{number(driver.current, driver.unit)} | {change_in_points(driver.change, driver.unit)} | "
                     f"{number(driver.contribution, e.unit, signed=True)} | {share} | {driver.method} |")
        for child in driver.drivers:
            visit(child, depth + 1)

    for driver in e.drivers:
        visit(driver, 0)
    if e.root_causes:
        lines += ["", "## Root causes", "", "| # | metric | segment | baseline | current | contribution | share |",
                  "|---:|---|---|---:|---:|---:|---:|"]
        for i, cause in enumerate(e.root_causes, 1):
            share = f"{cause.share * 100:.0f} %" if cause.share is not None else ""
            lines.append(f"| {i} | {cause.metric} | {where_text(cause.where)} | {number(cause.baseline)} | "
                         f"{number(cause.current)} | {number(cause.contribution, e.unit, signed=True)} | {share} |")
    if e.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in e.notes]
    lines += ["", (f"Contributions add up to the change exactly (residual {e.residual:.2e})" if abs(e.residual) <= 1e-9 * max(1.0, abs(e.change)) else f"Contributions leave {number(e.residual, e.unit, signed=True)} of the change unexplained (an input has no value in one of the periods)") + "; influence links are "
                  "shown with their association over the history and are not part of the sum."]
    return "\n".join(lines) + "\n"
