"""Where a tree file may be read from, and reading it safely.

A tree file is text a person wrote, but it may come from anywhere (a repository, a
web form in front of `metrictree.loads`). So ``include`` reaches only:

- ``.tree`` files,
- inside the *tree's folder* (the folder of the file given to `metrictree.load`, or the
  working directory for text given to `metrictree.loads`) or inside a folder the user
  named explicitly as an include path (``--include-path DIR``, ``include_paths=[...]``),
  judged after every symlink is followed (a link out of the folder is refused),
- regular files (not a FIFO, device, socket or folder) of at most `MAX_TREE_BYTES`,
  in UTF-8.

The file given to `metrictree.load` itself is the user's own choice, so it may live
anywhere, but it must also be a regular UTF-8 file under the size limit: ``/dev/zero``
or a FIFO is refused at once instead of filling memory or hanging.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from .errors import CompileError, Span, error

MAX_TREE_BYTES = 4 * 1024 * 1024
"""The largest tree file read (4 MiB: a tree of 50,000 metrics is about 2 MiB)."""

MAX_INCLUDE_DEPTH = 32
"""How deep includes may nest (a file including a file including … a file)."""


def _problem(message: str, span: Span | None, hint: str, code: str = "include") -> CompileError:
    return CompileError(error(message, span, hint, code))


def shown(path: str | os.PathLike, limit: int = 120) -> str:
    """A path as quoted in a message: printable, and cut short if it is very long."""
    text = os.fspath(path).replace("\x00", "\\0")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_tree_file(path: Path, span: Span | None = None, what: str = "tree file") -> str:
    """The text of a tree file, or a `CompileError` saying why it cannot be read (at ``span``, if given)."""
    name = shown(path)
    code = "include" if span is not None else "no-file"
    if "\x00" in os.fspath(path):
        raise _problem(f"the path of the {what} '{name}' contains a NUL byte", span, "remove it from the path", code)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise _problem(f"no {what} at {name}", span, "check the path", code) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _problem(f"cannot read the {what} {name}: {reason}", span,
                       "check the path (a symlink loop, or a name the system cannot open)", code) from None
    if stat.S_ISDIR(info.st_mode):
        raise _problem(f"{name} is a folder, not a {what}", span, "name a .tree file", code)
    if not stat.S_ISREG(info.st_mode):
        raise _problem(f"{name} is not a regular file (a device, FIFO or socket)", span,
                       "a tree file is an ordinary text file", code)
    if info.st_size > MAX_TREE_BYTES:
        raise _problem(f"the {what} {name} is {info.st_size:,} bytes; the limit is {MAX_TREE_BYTES:,}", span,
                       "split it into several files, or check that this is the file you meant", code)
    try:
        # O_NONBLOCK: if the file was swapped for a FIFO since the check, opening it does not hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise _problem(f"{name} is not a regular file", span, "a tree file is an ordinary text file", code)
            data = handle.read(MAX_TREE_BYTES + 1)
    except OSError as exc:
        raise _problem(f"cannot read the {what} {name}: {exc.strerror or exc}", span,
                       "check the file's permissions", code) from None
    if len(data) > MAX_TREE_BYTES:
        raise _problem(f"the {what} {name} is larger than {MAX_TREE_BYTES:,} bytes", span,
                       "split it into several files", code)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _problem(f"the {what} {name} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})", span,
                       "save the tree file as UTF-8", "encoding") from None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def resolve_include(written: str, including: Path | None, folders: Sequence[Path], span: Span | None) -> Path:
    """The file ``include "written"`` names, checked against the folders includes may reach.

    ``including`` is the folder of the file holding the include; ``folders`` are the tree's folder
    then the explicit include paths (resolved). A relative path is looked up next to the including
    file first, then in each include path.
    """
    name = shown(written)
    if "\x00" in written:
        raise _problem(f"cannot include '{name}': the path contains a NUL byte", span, "remove it from the path")
    if not written.endswith(".tree"):
        raise _problem(f"cannot include '{name}': only .tree files can be included", span,
                       "include a tree file (name.tree)")
    given = Path(written)
    candidates = [given] if given.is_absolute() else [*([including / given] if including else []),
                                                      *(folder / given for folder in folders[1:])]
    reachable = ", ".join(shown(f) for f in folders)
    for candidate in candidates:
        try:
            path = candidate.resolve(strict=True)
        except FileNotFoundError:
            continue
        except (OSError, RuntimeError, ValueError):
            raise _problem(f"cannot include '{name}': the path cannot be followed (a symlink loop?)", span,
                           "point the include at a real .tree file") from None
        if not any(_inside(path, folder) for folder in folders):
            raise _problem(f"cannot include '{name}': it is outside the tree's folder", span,
                           f"includes may only read .tree files under {reachable}; to share files from elsewhere "
                           "pass that folder as an include path (--include-path DIR, or include_paths=[...])")
        return path
    where = shown(candidates[0]) if candidates else name
    raise _problem(f"cannot include '{name}': no file at {where}", span,
                   "include paths are relative to the file that includes them"
                   + (f", then to the include paths ({', '.join(shown(f) for f in folders[1:])})"
                      if len(folders) > 1 else ""))
