"""Progress: the callback of the Python API, and the command line's bar on a real pseudo-terminal (not when
piped, not with --quiet)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metrictree import progress

TREE = textwrap.dedent("""
    tree p "p"
    grain month
    source orders { time day entity customer_id }
    metric revenue = sum(orders.amount)
    metric churned = churned_customers(orders)
""")


@pytest.fixture
def files(tmp_path):
    n = 40_000
    days = pa.array([i // 200 for i in range(n)], pa.int32()).cast(pa.date32())
    table = pa.table({"day": days, "customer_id": [f"c{i % 997}" for i in range(n)], "amount": [1.0] * n})
    pq.write_table(table, tmp_path / "orders.parquet", row_group_size=2_000)
    (tmp_path / "p.tree").write_text(TREE)
    return tmp_path


def command(folder, *extra) -> list[str]:
    return [sys.executable, "-c", "from metrictree.cli import main; main()", "eval", str(folder / "p.tree"), "--data",
            f"orders={folder / 'orders.parquet'}", *extra]


def on_a_terminal(args: list[str], env: dict) -> tuple[int, str]:
    """Run ``args`` with stdout and stderr on a pseudo-terminal; everything it wrote, and its exit status."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_the_bar_shows_on_a_terminal(files):
    env = {**os.environ, "METRICTREE_PROGRESS_DELAY": "0", "COLUMNS": "100"}
    status, out = on_a_terminal(command(files), env)
    assert status == 0, out
    assert "orders: reading" in out and "rows" in out and "40000/40000" in out.replace(",", "")
    assert "revenue" in out  # the result is still printed


def test_no_bar_with_quiet_on_a_terminal(files):
    env = {**os.environ, "METRICTREE_PROGRESS_DELAY": "0", "COLUMNS": "100"}
    status, out = on_a_terminal(command(files, "--quiet"), env)
    assert status == 0, out
    assert "orders: reading" not in out and "revenue" in out


def test_no_bar_when_piped(files):
    env = {**os.environ, "METRICTREE_PROGRESS_DELAY": "0"}
    done = subprocess.run(command(files), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "orders: reading" not in done.stderr and "\x1b[" not in done.stderr
    assert "revenue" in done.stdout


def test_no_bar_for_a_quick_scan_on_a_terminal(files):
    env = {**os.environ, "METRICTREE_PROGRESS_DELAY": "30", "COLUMNS": "100"}
    status, out = on_a_terminal(command(files), env)
    assert status == 0 and "orders: reading" not in out


def test_the_bar_waits_for_its_delay():
    now = [0.0]

    class Stream:
        written = ""

        def write(self, text):
            Stream.written += text

        def flush(self):
            pass

        def isatty(self):
            return True

    bar = progress.TerminalBar(Stream(), delay=1.0, clock=lambda: now[0])
    bar(progress.Progress("orders: reading", 10, 100))
    now[0] = 0.5
    bar(progress.Progress("orders: reading", 50, 100))
    assert not bar.shown
    now[0] = 1.5
    bar(progress.Progress("orders: reading", 80, 100))
    assert bar.shown
    bar.close()


def test_the_python_api_callback(files):
    import metrictree

    tree = metrictree.load(files / "p.tree")
    steps = []
    with progress.reporting(steps.append):
        tree.evaluate({"orders": str(files / "orders.parquet")})
    assert steps[-1] == progress.Progress("orders: reading", 40_000, 40_000, "rows")
    before = len(steps)
    tree.evaluate({"orders": str(files / "orders.parquet")})  # outside the block: nothing reported
    assert len(steps) == before
