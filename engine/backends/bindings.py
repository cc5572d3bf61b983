"""Bindings written as text: ``--data orders=duckdb:///shop.duckdb#orders`` and the connections file.

=============================================  ==============================================================
``duckdb:///shop.duckdb#orders``               table ``orders`` of a DuckDB file (opened read-only); the path
                                               after ``duckdb:///`` is relative, ``duckdb:////data/…`` absolute
``duckdb:///orders.parquet``                   a Parquet / CSV / JSON file (or glob) scanned by DuckDB
``postgresql://user@host:5432/db#sales.orders``  a PostgreSQL table (``schema.table``), read-only session
``spark:sales.orders``                         a table of the Spark catalog (a local-mode session)
``spark:///data/orders.parquet``               a Parquet / CSV / JSON path read by Spark
``@warehouse#sales.orders``                    a table of the connection ``warehouse`` of the connections file
=============================================  ==============================================================

The connections file (``$METRICTREE_CONNECTIONS``, else ``./metrictree-connections.toml``, else
``~/.config/metrictree/connections.toml``) names connections, and says which environment variable
holds each one's password — a password itself is never written in it, nor in a tree file::

    [warehouse]
    url = "postgresql://analyst@db.internal:5432/shop"
    password_env = "SHOP_DB_PASSWORD"
    statement_timeout = "5min"
    timezone = "Europe/Berlin"
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

from ..errors import UsageError, error
from . import SCHEMES
from .sql import SqlTable

_SETTINGS = {"url", "password_env", "statement_timeout", "timezone"}


def is_binding(text: str) -> bool:
    """Whether ``text`` names a table of an engine rather than a file for the Arrow backend."""
    return isinstance(text, str) and text.startswith(SCHEMES)


def _split(text: str) -> tuple[str, str | None]:
    base, _, fragment = text.partition("#")
    return base, fragment or None


def parse(text: str) -> SqlTable:
    """The table a binding names (opening its engine)."""
    if text.startswith("@"):
        return _named(text)
    base, fragment = _split(text)
    if base.startswith("duckdb:"):
        from .duckdb import DuckDB

        path = base.removeprefix("duckdb:").removeprefix("//").removeprefix("/")
        if fragment is None:
            if not path:
                raise _bad(text, "name a file: duckdb:///orders.parquet, or a table: duckdb:///shop.duckdb#orders")
            return DuckDB.open(None).file(path)
        return DuckDB.open(path or None).table(fragment)
    if base.startswith(("postgresql:", "postgres:")):
        from .postgres import Postgres

        if fragment is None:
            raise _bad(text, "add the table after #: postgresql://user@host/db#schema.table")
        return Postgres.connect(base).table(fragment)
    if base.startswith("spark:"):
        from .spark import Spark

        rest = text.removeprefix("spark:")
        if rest.startswith("//"):
            return Spark.local().path(rest.removeprefix("//"))
        if not rest:
            raise _bad(text, "name a table: spark:sales.orders, or a path: spark:///data/orders.parquet")
        return Spark.local().table(rest)
    raise _bad(text, "start it with duckdb://, postgresql://, spark: or @connection")


def _bad(text: str, hint: str) -> UsageError:
    shown = text.split("#", 1)[0]
    if "@" in shown and ":" in shown.split("@")[0].split("//")[-1]:
        shown = "(a URL with a password)"
    return UsageError(error(f"cannot read the binding {shown!r}", hint=hint, code="binding"))


def connections_file() -> Path | None:
    for candidate in (os.environ.get("METRICTREE_CONNECTIONS"), "metrictree-connections.toml",
                      "~/.config/metrictree/connections.toml"):
        if candidate and Path(candidate).expanduser().is_file():
            return Path(candidate).expanduser()
    return None


@lru_cache(maxsize=16)
def _connection(name: str, path: Path, mtime: float):
    from .postgres import DEFAULT_TIMEOUT, Postgres

    try:
        entries = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(error(f"cannot read the connections file {path}: {exc}",
                               hint="it is TOML: [name] then url = \"postgresql://…\"", code="connections")) from None
    if name not in entries or not isinstance(entries[name], dict):
        raise UsageError(error(f"the connections file {path} has no connection '{name}'",
                               hint=f"its connections: {', '.join(entries) or 'none'}", code="connections"))
    entry = entries[name]
    unknown = set(entry) - _SETTINGS
    if "password" in unknown:
        raise UsageError(error(f"connection '{name}' in {path} holds a password",
                               hint="put the password in an environment variable and name it: "
                                    "password_env = \"SHOP_DB_PASSWORD\"", code="connections"))
    if unknown:
        raise UsageError(error(f"connection '{name}' in {path} has unknown settings: {', '.join(sorted(unknown))}",
                               hint=f"known: {', '.join(sorted(_SETTINGS))}", code="connections"))
    url = entry.get("url", "")
    if not str(url).startswith(("postgresql:", "postgres:", "duckdb:")):
        raise UsageError(error(f"connection '{name}' in {path} needs a url (postgresql://… or duckdb://…)",
                               code="connections"))
    if url.startswith("duckdb:"):
        from .duckdb import DuckDB

        return DuckDB.open(url.removeprefix("duckdb:").removeprefix("//").removeprefix("/") or None,
                           timeout=entry.get("statement_timeout", DEFAULT_TIMEOUT))
    password = None
    if "password_env" in entry:
        password = os.environ.get(entry["password_env"])
        if password is None:
            raise UsageError(error(f"connection '{name}' takes its password from ${entry['password_env']}, "
                                   "which is not set", hint=f"export {entry['password_env']}=…", code="connections"))
    return Postgres.connect(url, password=password, timeout=entry.get("statement_timeout", DEFAULT_TIMEOUT),
                            timezone=entry.get("timezone"))


def _named(text: str) -> SqlTable:
    name, fragment = _split(text.removeprefix("@"))
    if fragment is None:
        raise _bad(text, "add the table after #: @warehouse#schema.table")
    path = connections_file()
    if path is None:
        raise UsageError(error(f"no connections file for @{name}",
                               hint="write one (metrictree-connections.toml, or set METRICTREE_CONNECTIONS); "
                                    "see docs/backends.md", code="connections"))
    return _connection(name, path.resolve(), path.stat().st_mtime).table(fragment)
