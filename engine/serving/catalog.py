"""The trees being served, reloaded when their files change.

Every request asks the catalog for a tree by name. The catalog looks at the file (one ``stat``);
when it changed, it loads it again. A version that fails to load does not replace the one being
served: the last good version keeps answering, and the error is shown next to it (in
``list_trees`` and in every answer about that tree) until the file is fixed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from pathlib import Path
from typing import Any

import attrs

from ..errors import Diagnostic, MetrictreeError, UsageError, did_you_mean, error
from ..model import Tree
from .config import ServeConfig, TreeEntry

log = logging.getLogger("metrictree.serve")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@attrs.frozen
class Loaded:
    """One served tree as it stands.

    Attributes:
        entry: what the config says about it.
        tree: the version being served (the last one that loaded), or ``None`` if none ever did.
        loaded_at: when ``tree`` was loaded (UTC, ISO 8601).
        error: the diagnostics of the file as it is now, when it does not load (``()``: it does).
        failed_at: when that error was first seen.
    """

    entry: TreeEntry
    tree: Tree | None
    loaded_at: str | None
    error: tuple[Diagnostic, ...] = ()
    failed_at: str | None = None

    @property
    def state(self) -> str:
        if not self.error:
            return "ok"
        return "error (serving the last good version)" if self.tree is not None else "error"

    def error_text(self) -> str | None:
        if not self.error:
            return None
        return "\n\n".join(d.render() for d in self.error if d.severity == "error") or \
            "\n\n".join(d.render() for d in self.error)

    def to_dict(self) -> dict[str, Any]:
        tree = self.tree
        return {"name": self.entry.name, "title": tree.title if tree else None, "state": self.state,
                "file": tree.file if tree and tree.file else self.entry.file,
                "grain": tree.grain if tree else None, "metrics": len(tree.metrics) if tree else 0,
                "top_metrics": tree.roots() if tree else [], "sources": list(tree.sources) if tree else [],
                "dimensions": list(tree.dimensions) if tree else [],
                "targets": len(tree.targets) if tree else 0, "alerts": len(tree.alerts) if tree else 0,
                "loaded_at": self.loaded_at, "error": self.error_text(), "failed_at": self.failed_at}


def _stamp(file: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(file)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _load(entry: TreeEntry) -> Tree:
    from ..cli import load  # the CLI's loader: a path, or a tree a plugin ships

    return load(entry.file)


class Catalog:
    """The served trees by name, each reloaded when its file changes (thread-safe)."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self._lock = threading.Lock()
        self._loaded: dict[str, Loaded] = {}
        self._stamps: dict[str, tuple[int, int, int] | None] = {}

    def names(self) -> list[str]:
        return [entry.name for entry in self.config.entries()]

    def all(self) -> list[Loaded]:
        """Every served tree, each brought up to date with its file."""
        return [self._refresh(entry) for entry in self.config.entries()]

    def get(self, name: str) -> Loaded:
        """The tree called ``name``, up to date; a `UsageError` (code ``unknown-tree``) if there is none."""
        entries = {entry.name: entry for entry in self.config.entries()}
        if name not in entries:
            raise UsageError(error(f"no tree called '{name}' is served",
                                   hint=did_you_mean(name, entries) or f"served trees: {', '.join(entries) or 'none'}",
                                   code="unknown-tree"))
        return self._refresh(entries[name])

    def tree(self, name: str) -> tuple[Tree, Loaded]:
        """The version of ``name`` to answer with; the file's errors if no version ever loaded."""
        loaded = self.get(name)
        if loaded.tree is None:
            raise UsageError(loaded.error or (error(f"tree '{name}' did not load", code="tree-error"),))
        return loaded.tree, loaded

    def _refresh(self, entry: TreeEntry) -> Loaded:
        with self._lock:
            stamp = _stamp(entry.file) if Path(entry.file).is_absolute() else ("bundled",)
            known = self._loaded.get(entry.name)
            if known is not None and known.entry == entry and self._stamps.get(entry.name) == stamp:
                return known
            try:
                tree = _load(entry)
            except MetrictreeError as exc:
                failed_at = known.failed_at if known is not None and known.error else _now()
                loaded = Loaded(entry, known.tree if known else None, known.loaded_at if known else None,
                                exc.diagnostics, failed_at)
                if known is None or not known.error or known.error != loaded.error:
                    log.warning("tree %s (%s) does not load%s:\n%s", entry.name, entry.file,
                                "; serving the last good version" if loaded.tree is not None else "",
                                loaded.error_text())
            else:
                loaded = Loaded(entry, tree, _now())
                if known is not None:
                    log.info("tree %s reloaded from %s", entry.name, entry.file)
            self._loaded[entry.name] = loaded
            self._stamps[entry.name] = stamp
            return loaded
