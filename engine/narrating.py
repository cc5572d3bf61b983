"""An explanation in words: the few sentences on top, and the whole of it as Markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .explaining import Driver, Explanation


def number(value: float | None, unit: str | None = None, signed: bool = False, readable: bool = False) -> str:
    """A number for people, with its unit: ``2,629 RUB``, ``25.4%``, signed ``−102 RUB`` (``%`` values are
    fractions). ``readable`` (explanations): a whole number without decimals (``732``), millions and billions
    shortened (``9.91M RUB``)."""
    from .rendering import NULL, format_value

    if value is None:
        return NULL
    if readable and unit != "%" and isinstance(value, float) and abs(value) >= 1 \
            and abs(value - round(value)) <= 1e-9 * abs(value):
        value = int(round(value))
    size = abs(value)
    if readable and unit != "%" and size >= 1e6:
        scaled, suffix = (value / 1e9, "B") if size >= 1e9 else (value / 1e6, "M")
        text = f"{abs(scaled) if signed else scaled:,.{2 if abs(scaled) < 100 else 1}f}{suffix}"
    else:
        text = format_value(abs(value) if signed else value, unit)
    if signed:
        text = ("+" if value > 0 else "−" if value < 0 else "±") + text
    elif text.startswith("-"):
        text = "−" + text[1:]
    return f"{text} {unit}" if unit and unit != "%" else text


def amount(value: float | None, unit: str | None = None, signed: bool = False) -> str:
    """`number` as an explanation shows it: whole numbers without decimals, millions shortened."""
    return number(value, unit, signed, readable=True)


def change_in_points(driver_change: float | None, unit: str | None, readable: bool = False) -> str:
    """A change: in percentage points for a ``%`` metric (``+1.2 pp``), else signed in its unit."""
    if unit == "%" and driver_change is not None:
        return number(driver_change * 100, None, signed=True) + " pp"
    return number(driver_change, unit, signed=True, readable=readable)


def where_text(where) -> str:
    return " & ".join(f"{k} = {v}" for k, v in where.items())


def share_of(contribution: float | None, change: float | None) -> float | None:
    """A contribution as a share of the change's size, with the contribution's sign (``−77 %`` for −2,791 of
    a fall of 3,627): a contribution and its share never disagree."""
    if contribution is None or not change:
        return None
    return contribution / abs(change)


def percent(share: float | None) -> str:
    return "" if share is None else f"{share * 100:.0f}%".replace("-", "−")


def part_text(part) -> str:
    """One part of a root cause: ``Churn rate 35.5% → 60.9% (+25.4 pp)``, ``Revenue 4.84M RUB → 2.67M RUB``."""
    change = None if part.baseline is None or part.current is None else part.current - part.baseline
    text = f"{part.label} {amount(part.baseline, part.unit)} → {amount(part.current, part.unit)}"
    if part.unit == "%" and change is not None:
        text += f" ({change_in_points(change, part.unit, True)})"
    return text


def mix_text(seg, explanation: Explanation) -> str:
    """A mix entry: ``segment = regular: its weight in Purchase frequency moved, not its own (1.75 → 1.75): −1,528
    RUB of mix, not a cause``."""
    about = f" in {seg.label}" if seg.label else ""
    return (f"{where_text(seg.where)}: its weight{about} moved, not its own value ({amount(seg.baseline, seg.unit)} → "
            f"{amount(seg.current, seg.unit)}): {change_in_points(seg.mix, explanation.unit, True)} of mix, not a cause")


def cause_text(cause, explanation: Explanation) -> str:
    """A root cause in one sentence: the segment, what moved there, its net effect on the root."""
    e = explanation
    direction = "rise" if e.change > 0 else "fall"
    shown = [p for p in cause.parts if abs(p.contribution) >= 0.1 * abs(cause.contribution)] or list(cause.parts[:1])
    moved = ", ".join(part_text(p) for p in shown[:2]) if shown else f"{cause.metric}"
    if cause.share is not None and cause.share > 0:
        effect = f"{cause.share * 100:.0f} % of the {direction}"
    else:
        effect = f"against the {direction}"
    return f"{where_text(cause.where)}: {moved}; {change_in_points(cause.contribution, e.unit, True)} ({effect})."


def _largest(drivers) -> Driver | None:
    formula = [d for d in drivers if d.kind != "influence" and d.contribution is not None]
    return max(formula, key=lambda d: abs(d.contribution), default=None)


def sentences(explanation: Explanation) -> list[str]:
    e = explanation
    verb = "rose" if e.change > 0 else "fell" if e.change < 0 else "did not change"
    head = f"{e.label} {verb}"
    if e.change:
        rel = f" {abs(e.relative_change) * 100:.1f} %" if e.relative_change is not None else ""
        head += f"{rel} ({change_in_points(e.change, e.unit, True)}) from {e.baseline.period} to {e.current.period}"
        head += f": {amount(e.baseline.value, e.unit)} → {amount(e.current.value, e.unit)}."
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
        line = f"The largest effect is {top.label} ({change_in_points(top.contribution, e.unit, True)})"
        if against is not None and (against.contribution > 0) != (top.contribution > 0):
            line += f", offset by {against.label} ({change_in_points(against.contribution, e.unit, True)})"
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
        details = [f"{d.label} went from {amount(d.baseline, d.unit)} to {amount(d.current, d.unit)}"
                   for d in chain if d.baseline is not None]
        if details:
            line += ": " + ", and ".join(details[-2:] if len(details) > 2 else details)
        out.append(line + ".")
    for cause in e.root_causes[:3]:
        out.append(cause_text(cause, e))
    if e.reason:
        out.append(e.reason[0].upper() + e.reason[1:] + ".")
    if e.mix and not e.root_causes:
        seg = max(e.mix, key=lambda m: abs(m.mix or 0.0))
        out.append(mix_text(seg, e) + ".")
    return out


def markdown(explanation: Explanation, verbose: bool = False) -> str:
    """The explanation as Markdown; ``verbose`` adds how each split was made and the residual."""
    e = explanation
    lines = [f"# Why did {e.label} move? ({e.baseline.period} → {e.current.period})", ""]
    lines += [" ".join(sentences(e)), ""]
    header = "| driver | baseline | current | change | contribution | share |" + (" method |" if verbose else "")
    lines += ["## Drivers", "", header, "|---|---:|---:|---:|---:|---:|" + ("---|" if verbose else "")]

    def visit(driver: Driver, depth: int) -> None:
        indent = "&nbsp;&nbsp;" * depth + ("↳ " if depth else "")
        kind = " *(influence, not in the sum)*" if driver.kind == "influence" else ""
        row = (f"| {indent}{driver.label}{kind} | {amount(driver.baseline, driver.unit)} | "
               f"{amount(driver.current, driver.unit)} | {change_in_points(driver.change, driver.unit, True)} | "
               f"{change_in_points(driver.contribution, e.unit, True)} | {percent(share_of(driver.contribution, e.change))} |")
        lines.append(row + (f" {driver.method} |" if verbose else ""))
        for child in driver.drivers:
            visit(child, depth + 1)

    for driver in e.drivers:
        visit(driver, 0)
    if e.root_causes:
        lines += ["", "## Root causes", "", "| # | segment | what moved there | effect | share |",
                  "|---:|---|---|---:|---:|"]
        for i, cause in enumerate(e.root_causes, 1):
            moved = "; ".join(f"{part_text(p)} ({change_in_points(p.contribution, e.unit, True)})" for p in cause.parts)
            lines.append(f"| {i} | {where_text(cause.where)} | {moved} | {change_in_points(cause.contribution, e.unit, True)}"
                         f" | {percent(share_of(cause.contribution, e.change))} |")
    elif e.reason:
        lines += ["", "## Root causes", "", e.reason[0].upper() + e.reason[1:] + "."]
    if e.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in e.notes]
    exact = abs(e.residual) <= 1e-9 * max(1.0, abs(e.change))
    lines += ["", ("Contributions add up to the change exactly" + (f" (residual {e.residual:.2e})" if verbose else "")
                   if exact else f"Contributions leave {amount(e.residual, e.unit, signed=True)} of the change "
                   "unexplained (an input has no value in one of the periods)")
              + "; influence links are shown with their association over the history and are not part of the sum."]
    return "\n".join(lines) + "\n"
