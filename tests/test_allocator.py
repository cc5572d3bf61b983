"""metrictree.allocator: mimalloc's huge pages are off when metrictree loads before pyarrow, as set up by the
environment otherwise. Each case is a fresh interpreter, since mimalloc reads its options once, when
pyarrow's library loads; mimalloc itself says which value it took (MIMALLOC_VERBOSE)."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest

from metrictree import allocator

pytestmark = pytest.mark.skipif(pa.default_memory_pool().backend_name != "mimalloc",
                                reason="pyarrow's allocator here is not mimalloc")


def _mimalloc_option(code: str, **env: str) -> str | None:
    """The value mimalloc reports for allow_thp in a fresh interpreter running ``code`` (None: no such option,
    an older mimalloc)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MIMALLOC_")}
    environment.update(env, MIMALLOC_VERBOSE="1")
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for line in done.stderr.splitlines():
        if "option 'allow_thp':" in line:
            return line.split(":")[-1].strip()
    return None


def _needs_option(value: str | None) -> str:
    if value is None:
        pytest.skip("this mimalloc has no allow_thp option")
    return value


def test_metrictree_first_turns_huge_pages_off():
    code = "import metrictree, os, pyarrow as pa; pa.array([1]); print(os.environ['MIMALLOC_ALLOW_THP'])"
    assert _needs_option(_mimalloc_option(code)) == "0"


def test_the_users_setting_wins():
    code = "import metrictree, pyarrow as pa; pa.array([1])"
    assert _needs_option(_mimalloc_option(code, MIMALLOC_ALLOW_THP="1")) == "1"


def test_pyarrow_first_is_left_alone():
    # Too late to change anything: the environment is not touched either (child processes keep the default).
    code = ("import os, pyarrow as pa, metrictree; pa.array([1]); "
            "assert 'MIMALLOC_ALLOW_THP' not in os.environ, os.environ['MIMALLOC_ALLOW_THP']")
    assert _needs_option(_mimalloc_option(code)) == "1"


def test_the_command_line_runs_without_huge_pages(tmp_path):
    tree = tmp_path / "t.tree"
    tree.write_text("tree t\ngrain month\nsource s { time at }\nmetric n = count(s)\n")
    code = (f"import sys; from metrictree.cli import main; import pyarrow as pa; pa.array([1]); "
            f"sys.argv = ['metrictree', 'check', {str(tree)!r}]; main()")
    assert _needs_option(_mimalloc_option(code)) == "0"


def test_configure_is_a_no_op_once_pyarrow_is_loaded(monkeypatch):
    monkeypatch.delenv(allocator.OPTION, raising=False)
    assert "pyarrow" in sys.modules
    assert allocator.configure() is False
    assert allocator.OPTION not in os.environ
