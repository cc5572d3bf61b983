"""Benchmarks time metrictree as it runs once installed: with its modules' bytecode compiled.

``pip install`` compiles every module it installs. An editable checkout does not, and where bytecode is
not written (``PYTHONDONTWRITEBYTECODE=1``, a read-only tree) every process compiles every metrictree module
from source again: 0.15–0.4 s of each start-up on 2 cores, which no installed metrictree pays. Each
benchmark compiles the package's folders once before its runs; bytecode already there is left as it is.
"""

from __future__ import annotations

import subprocess
import sys

# In a process of its own: the benchmark's own process never imports metrictree (which would set
# metrictree.allocator's environment variable for every engine's child).
_COMPILE = """
import compileall, metrictree, metrictree.plugins
for package in (metrictree, metrictree.plugins):
    for folder in package.__path__:
        compileall.compile_dir(folder, quiet=1)
"""


def compile_metrictree() -> None:
    """Write the bytecode of every module of the metrictree being benchmarked, where it is missing or stale."""
    subprocess.run([sys.executable, "-c", _COMPILE], check=True)
