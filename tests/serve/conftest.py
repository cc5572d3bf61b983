"""Fixtures for the service tests: a folder with a tree file, its data as Parquet/CSV and a serve config,
and real server processes on 127.0.0.1 (started by the tests, stopped after them)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
CLI = "from metrictree.cli import main; main()"


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", CLI, *args]


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A folder with trees/crm_ltv.tree, data/*.parquet (emails as CSV) and metrictree.toml binding them."""
    from metrictree.sample import sample_data

    (tmp_path / "trees").mkdir()
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "trees" / "crm_ltv.tree", tmp_path / "trees" / "crm_ltv.tree")
    tables = sample_data()
    for name in ("orders", "surveys", "spend"):
        pq.write_table(tables[name], tmp_path / "data" / f"{name}.parquet")
    pcsv.write_csv(tables["emails"], tmp_path / "data" / "emails.csv")
    (tmp_path / "metrictree.toml").write_text(
        'folder = "trees"\n\n[data]\norders = "data/orders.parquet"\nemails = "data/emails.csv"\n'
        'surveys = "data/surveys.parquet"\nspend = "data/spend.parquet"\n\n[http]\ntimeout_seconds = 60\n',
        "utf-8")
    return tmp_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise AssertionError(f"the server did not answer {url} within {START_TIMEOUT:g} s:\n{log.read_text()}")


@contextlib.contextmanager
def http_server(config: Path, env: dict[str, str] | None = None, *extra: str):
    """``metrictree serve CONFIG --transport http`` on a free loopback port; yields (base URL, log file)."""
    port = free_port()
    log = config.parent / f"serve-{port}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(cli_command("serve", str(config), "--transport", "http", "--host", "127.0.0.1",
                                               "--port", str(port), *extra),
                                   stdout=out, stderr=subprocess.STDOUT, cwd=config.parent,
                                   env={**os.environ, **(env or {})})
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", process, log)
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


class Servers:
    """What the tests use to start servers (a fixture, as test modules here are not a package)."""

    cli = CLI
    command = staticmethod(cli_command)
    http = staticmethod(http_server)
    free_port = staticmethod(free_port)


@pytest.fixture
def servers() -> type[Servers]:
    return Servers
