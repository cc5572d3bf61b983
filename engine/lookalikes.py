"""Text values that differ only in case or spacing: 'web', 'Web ', 'WEB'.

Data often holds one category written several ways. A tree compares text exactly, so each spelling is
a slice of its own in an evaluation by that dimension, and a filter for one spelling leaves the others
out. Nothing here merges them (that would change the data's meaning behind the user's back); the
evaluation, the drill-down and the filters say what they found (`notes`, `aggregating._near_misses`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def folded(text: str) -> str:
    """The text with its case and spacing taken out: inner runs of spaces as one, none at the ends."""
    return " ".join(text.split()).casefold()


def lookalikes(values: Iterable[object]) -> list[list[str]]:
    """The groups of two or more distinct text values that are equal once `folded`, each sorted."""
    groups: dict[str, set[str]] = {}
    for value in values:
        if isinstance(value, str):
            groups.setdefault(folded(value), set()).add(value)
    return sorted(sorted(group) for group in groups.values() if len(group) > 1)


def notes(by_dimension: Mapping[str, Iterable[object]]) -> list[str]:
    """One note per dimension whose values (``by_dimension``: dimension → its values) hold lookalikes."""
    out = []
    for dimension, values in by_dimension.items():
        groups = lookalikes(values)
        if groups:
            shown = "; ".join(", ".join(repr(v) for v in group) for group in groups[:3]) + \
                (" …" if len(groups) > 3 else "")
            out.append(f"{dimension} has values that differ only in case or spacing ({shown}): each is a segment of "
                       "its own, since text is compared exactly; clean the data to count them as one")
    return out
