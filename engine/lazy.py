"""Modules imported on first use: quick start-up for commands that never touch them.

``pa = lazy.module("pyarrow")`` gives an object that imports pyarrow the first time one of its
attributes is read, then behaves as the module. It changes nothing in ``sys.modules`` until then,
so other code importing the module itself is unaffected. ``lazy.optional(...)`` imports a module of
an optional extra now, or says how to install it.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class _Module:
    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str):
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def module(name: str) -> _Module:
    """``name``, imported the first time one of its attributes is used."""
    return _Module(name)


def optional(name: str, needed_by: str, extra: str) -> ModuleType:
    """``name`` imported, or a `DataError`: "``needed_by``", with the ``pip install`` of the ``extra``
    that brings it (``optional("duckdb", "the DuckDB backend needs the duckdb package", "duckdb")``)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        from .errors import DataError, error

        raise DataError(error(needed_by, hint=f"pip install 'metrictree[{extra}]'", code="backend")) from None
