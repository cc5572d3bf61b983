"""The serve config file (TOML): which trees to serve, with which data, and how the HTTP side is bounded.

    folder = "trees"                    # every *.tree file here, named after the file
    [data]                              # bindings every tree may use (each takes the sources it declares)
    orders = "data/orders.parquet"
    [trees.crm_ltv]                     # or name trees one by one
    file = "crm_ltv"                    # a path (relative to this file) or a tree a plugin ships
    sample = true                       # the bundled sample data (entries in data override it)
    data = { emails = "data/emails.csv" }
    params = { gross_margin = "65%" }
    [http]
    host = "127.0.0.1"
    port = 8765
    token_env = "METRICTREE_TOKEN"
    max_request_bytes = 65536
    timeout_seconds = 30
    [notify]
    config = "notify.toml"              # see metrictree.notifying
    every = "1h"

Data values are handed to the same binding code as ``--data`` on the command line, so any binding the
CLI accepts works here; relative file paths are read relative to the config file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..errors import UsageError, did_you_mean, error

_TOP_KEYS = ("folder", "sample", "data", "trees", "http", "notify")
_TREE_KEYS = ("file", "sample", "data", "params")
_HTTP_KEYS = ("host", "port", "token_env", "max_request_bytes", "timeout_seconds")
_NOTIFY_KEYS = ("config", "every")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@attrs.frozen
class TreeEntry:
    """One tree to serve.

    Attributes:
        name: how clients name it (the ``[trees.NAME]`` key, or the file's stem).
        file: the tree file's absolute path, or the name of a tree a plugin ships.
        data: source → binding (a path made absolute, or any other binding as written).
        sample: bind the bundled sample data too (``data`` entries win).
        params: param overrides applied to every request (a request's own params win).
    """

    name: str
    file: str
    data: Mapping[str, str] = attrs.field(factory=dict)
    sample: bool = False
    params: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class HttpSettings:
    """The HTTP side's address and bounds.

    Attributes:
        host, port: where to listen (``127.0.0.1`` unless said otherwise).
        token_env: the environment variable holding the bearer token.
        max_request_bytes: larger request bodies are refused with 413.
        timeout_seconds: a computation taking longer is answered with 504 (an MCP tool error).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    token_env: str = "METRICTREE_TOKEN"
    max_request_bytes: int = 64 * 1024
    timeout_seconds: float = 30.0


@attrs.frozen
class NotifySettings:
    """Scheduled notifications: the notify config file and how often to check."""

    config: str | None = None
    every_seconds: float | None = None


@attrs.frozen
class ServeConfig:
    """A parsed serve config.

    Attributes:
        path: the config file.
        folder: the folder whose ``*.tree`` files are served (re-read on every request, so new files appear).
        data, sample: the defaults for every tree (params are per tree: trees have different ones).
        trees: the trees named one by one.
        http, notify: see `HttpSettings`, `NotifySettings`.
    """

    path: str
    folder: str | None
    data: Mapping[str, str]
    sample: bool
    trees: tuple[TreeEntry, ...]
    http: HttpSettings
    notify: NotifySettings

    def entries(self) -> list[TreeEntry]:
        """Every tree to serve: those named in ``[trees]``, then the folder's other ``*.tree`` files."""
        named = {entry.name: entry for entry in self.trees}
        out = [self._with_defaults(entry) for entry in self.trees]
        if self.folder is not None:
            for path in sorted(Path(self.folder).glob("*.tree")):
                if path.stem not in named:
                    out.append(self._with_defaults(TreeEntry(path.stem, str(path))))
        return out

    def _with_defaults(self, entry: TreeEntry) -> TreeEntry:
        return attrs.evolve(entry, data={**self.data, **entry.data}, sample=entry.sample or self.sample)


def _fail(path: Path, message: str, hint: str | None = None) -> UsageError:
    return UsageError(error(f"{path}: {message}", hint=hint, code="serve-config"))


def _table(path: Path, value: Any, where: str, known: tuple[str, ...] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, f"{where} must be a table", f"write it as [{where}] with key = value lines")
    for key in value:
        if known is not None and key not in known:
            raise _fail(path, f"unknown key '{key}' in {where}",
                        did_you_mean(key, known) or f"known keys: {', '.join(known)}")
    return value


def _bindings(path: Path, value: Any, where: str) -> dict[str, str]:
    table = _table(path, value, where, None)
    out = {}
    for source, binding in table.items():
        if not isinstance(binding, str) or not binding.strip():
            raise _fail(path, f"{where}.{source} must be a text binding", 'e.g. orders = "data/orders.parquet"')
        out[source] = _resolve(path.parent, binding.strip())
    return out


def _resolve(base: Path, binding: str) -> str:
    """A relative file path made absolute against the config's folder; a URL or absolute path as written."""
    if "://" in binding or Path(binding).is_absolute():
        return binding
    return str((base / binding).resolve())


def _params(path: Path, value: Any, where: str) -> dict[str, Any]:
    table = _table(path, value, where, None)
    for name, given in table.items():
        if isinstance(given, bool) or not isinstance(given, int | float | str):
            raise _fail(path, f"{where}.{name} must be a number or a text like \"65%\"")
    return dict(table)


def _flag(path: Path, value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, f"{where} must be true or false")
    return value


def parse_duration(text: str | int | float, what: str = "every") -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"1d"`` or a number of seconds → seconds.

    >>> parse_duration("15m"), parse_duration(30), parse_duration("1.5h")
    (900.0, 30.0, 5400.0)
    """
    if isinstance(text, bool):
        raise UsageError(error(f"{what}: expected a duration, got {text!r}", hint='e.g. "15m", "1h" or 3600'))
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        raw = text.strip().lower()
        unit = raw[-1:] if raw[-1:] in _DURATION_UNITS else "s"
        number = raw[:-1] if raw[-1:] in _DURATION_UNITS else raw
        try:
            seconds = float(number) * _DURATION_UNITS[unit]
        except ValueError:
            raise UsageError(error(f"{what}: expected a duration, got {text!r}",
                                   hint='e.g. "90s", "15m", "1h", "1d" or a number of seconds',
                                   code="duration")) from None
    if seconds <= 0:
        raise UsageError(error(f"{what}: the duration must be positive, got {text!r}", code="duration"))
    return seconds


def load_config(path: str | Path) -> ServeConfig:
    """Read and check a serve config file; a folder means its ``metrictree.toml``."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrictree.toml"
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise _fail(path, "no such config file", "write a metrictree.toml naming the trees to serve "
                                                 "(see docs/serve.md)") from None
    except OSError as exc:
        raise _fail(path, f"cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"not valid TOML: {exc}", "see https://toml.io for the syntax") from None
    path = path.resolve()
    _table(path, raw, "the config", _TOP_KEYS)
    base = path.parent
    folder = raw.get("folder")
    if folder is not None:
        if not isinstance(folder, str) or not (base / folder).is_dir():
            raise _fail(path, f"folder = {folder!r} is not a folder", "name a folder of .tree files, "
                                                                      "relative to the config file")
        folder = str((base / folder).resolve())
    trees = []
    for name, body in _table(path, raw.get("trees", {}), "trees", None).items():
        where = f"trees.{name}"
        body = _table(path, body, where, _TREE_KEYS)
        file = body.get("file", name)
        if not isinstance(file, str) or not file.strip():
            raise _fail(path, f"{where}.file must be a path or a bundled tree's name")
        local = base / file
        trees.append(TreeEntry(
            name=name, file=str(local.resolve()) if local.exists() or "/" in file or file.endswith(".tree")
            else file,
            data=_bindings(path, body.get("data", {}), f"{where}.data"),
            sample=_flag(path, body.get("sample", False), f"{where}.sample"),
            params=_params(path, body.get("params", {}), f"{where}.params")))
    if not trees and folder is None:
        raise _fail(path, "no trees to serve", 'add folder = "trees" or a [trees.NAME] table with file = "…"')
    http = _table(path, raw.get("http", {}), "http", _HTTP_KEYS)
    try:
        settings = HttpSettings(**{k: v for k, v in http.items()})
        if not isinstance(settings.port, int) or not 0 <= settings.port < 65536:
            raise ValueError("port must be a number from 0 to 65535")
        if not isinstance(settings.max_request_bytes, int) or settings.max_request_bytes < 1024:
            raise ValueError("max_request_bytes must be a whole number of at least 1024")
        if not isinstance(settings.timeout_seconds, int | float) or settings.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be a positive number")
    except (TypeError, ValueError) as exc:
        raise _fail(path, f"[http]: {exc}") from None
    notify = _table(path, raw.get("notify", {}), "notify", _NOTIFY_KEYS)
    notify_config = notify.get("config")
    if notify_config is not None:
        notify_config = str((base / notify_config).resolve())
    every = parse_duration(notify["every"], "notify.every") if "every" in notify else None
    return ServeConfig(path=str(path), folder=folder, data=_bindings(path, raw.get("data", {}), "data"),
                       sample=_flag(path, raw.get("sample", False), "sample"), trees=tuple(trees),
                       http=settings, notify=NotifySettings(notify_config, every))
