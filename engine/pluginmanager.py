"""The plugin manager: built-in plugins first, then third-party ones from entry points.

Set ``METRICTREE_DISABLE_PLUGIN_AUTOLOAD=1`` to load only the built-in plugins (as
pytest does with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, error
from .functions import Registry

ENTRY_POINT_GROUP = "metrictree"
DISABLE_AUTOLOAD = "METRICTREE_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_PLUGINS = ("metrictree.plugins.core", "metrictree.plugins.crm", "metrictree.plugins.ecommerce",
                   "metrictree.plugins.saas", "metrictree.plugins.email")

_manager: pluggy.PluginManager | None = None
_registry: tuple[tuple[int, ...], Registry] | None = None


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _manager
    if _manager is None:
        pm = pluggy.PluginManager("metrictree")
        pm.add_hookspecs(hookspecs)
        for name in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(name), name=name)
        if os.environ.get(DISABLE_AUTOLOAD, "").strip().lower() not in ("1", "true", "yes"):
            _load_entry_points(pm)
        _check_pending(pm)
        _manager = pm
    return _manager


_distributions: dict[str, str] = {}


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    """Third-party plugins, each named by its entry point; a broken one is named with its distribution."""
    import importlib.metadata

    for dist in importlib.metadata.distributions():
        for point in dist.entry_points:
            if point.group != ENTRY_POINT_GROUP or pm.get_plugin(point.name) is not None:
                continue
            origin = f"{dist.metadata['name']} {dist.version}"
            try:
                plugin = point.load()
            except Exception as exc:  # a broken third-party package must not look like our bug
                raise PluginError(error(
                    f"plugin '{point.name}' from {origin} failed to load: {type(exc).__name__}: {exc}",
                    hint=f"fix or uninstall {dist.metadata['name']}, or set {DISABLE_AUTOLOAD}=1",
                    code="plugin")) from exc
            pm.register(plugin, name=point.name)
            _distributions[point.name] = origin


def _check_pending(pm: pluggy.PluginManager) -> None:
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(error(f"plugin '{exc.plugin}' implements a hook metrictree does not have: {exc}",
                                hint="see metrictree.hookspecs for the hooks and their names",
                                code="plugin")) from exc


def register(plugin: Any, name: str | None = None) -> str:
    """Register a plugin object or module at run time (tests, notebooks, embedding tools)."""
    global _registry
    pm = plugin_manager()
    registered = pm.register(plugin, name=name)
    _registry = None
    _check_pending(pm)
    return registered


def unregister(plugin: Any = None, name: str | None = None) -> None:
    global _registry
    plugin_manager().unregister(plugin, name=name)
    _registry = None


def plugin_name(plugin: Any) -> str:
    return plugin_manager().get_name(plugin) or repr(plugin)


def distribution_of(plugin: Any) -> str:
    """``built-in`` or the distribution a plugin came from (``name version``)."""
    pm = plugin_manager()
    name = pm.get_name(plugin)
    if name in BUILTIN_PLUGINS:
        return "built-in"
    return _distributions.get(name, "registered at run time")


def _collect(registry: Registry, hook_name: str) -> None:
    pm = plugin_manager()
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order: built-ins first
        owner = impl.plugin_name

        def add(item, _owner=owner) -> None:
            registry.add(item, _owner)

        try:
            impl.function(register=add)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(error(f"plugin '{owner}' failed in hook {hook_name}: {type(exc).__name__}: {exc}",
                                    hint=f"fix the plugin, uninstall it, or set {DISABLE_AUTOLOAD}=1",
                                    code="plugin")) from exc


def registry() -> Registry:
    """Every function and library of the registered plugins (rebuilt when plugins change)."""
    global _registry
    pm = plugin_manager()
    key = tuple(sorted(id(p) for p in pm.get_plugins()))
    if _registry is None or _registry[0] != key:
        built = Registry()
        _collect(built, "metrictree_functions")
        _collect(built, "metrictree_libraries")
        _collect(built, "metrictree_trees")
        _registry = (key, built)
    return _registry[1]


def hook_names() -> list[str]:
    return [name for name in dir(hookspecs) if name.startswith("metrictree_")]


def plugins() -> list[tuple[str, Any]]:
    """``(name, plugin)`` for every registered plugin, built-ins first."""
    pm = plugin_manager()
    return [(pm.get_name(p), p) for p in pm.get_plugins()]


Register = Callable[[Any], None]


def reset() -> None:
    """Forget the plugin manager, so the next use loads plugins afresh (after installing one, in tests)."""
    global _manager, _registry
    _manager = None
    _registry = None
