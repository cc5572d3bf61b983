"""Every hook a metrictree plugin can implement, in one place.

A plugin is any module or object with functions decorated by `hookimpl`, registered
from the entry-point group ``metrictree`` (or with ``metrictree.pluginmanager.register``).
The built-in functions are a plugin too (`metrictree.plugins.core`), registered the
same way.

Hooks receive a ``register`` callback built by the host for that one plugin, so the
host can validate what is registered and report a clash naming both plugins.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("metrictree")
hookimpl = pluggy.HookimplMarker("metrictree")


@hookspec
def metrictree_functions(register: Callable[..., None]) -> None:
    """Add functions to the tree language.

    Call ``register(fn)`` once per function, with a `metrictree.functions.Aggregate`
    (over the rows of a source: ``nps(surveys.score)``) or a
    `metrictree.functions.Scalar` (over metric values: ``log(x)``, ``change(m)``).
    """


@hookspec
def metrictree_libraries(register: Callable[..., None]) -> None:
    """Add metric libraries that tree files pull in with ``import name``.

    Call ``register(metrictree.functions.Library(name, text, doc))``; ``text`` is
    tree-language source (sources, params, metrics) merged into the importing tree.
    """


@hookspec
def metrictree_trees(register: Callable[..., None]) -> None:
    """Add ready-made tree files (templates) people can run by name: ``metrictree eval crm_ltv --sample``.

    Call ``register(metrictree.functions.TreeFile(name, path, doc))`` with the path of a ``.tree`` file
    shipped in the plugin's package (e.g. from ``importlib.resources.files``).
    """


@hookspec
def metrictree_sql_forms(register: Callable[..., None]) -> None:
    """Say how aggregate functions run in SQL, so a tree can run where its data lives (DuckDB, PostgreSQL, Spark).

    Call ``register(metrictree.backends.SqlForm(name, plan))`` once per aggregate the plugin adds;
    ``plan`` gives the same partials as the aggregate's Arrow plan, as sqlglot expressions (see
    `metrictree.backends.forms`). An aggregate without a SQL form runs on the Arrow backend only.
    """
