"""Issue 10, security: what `include` may reach, CSV injection, terminal escapes, HTML in Markdown, a frozen Tree."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import networkx as nx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import metrictree
from metrictree.cli import main
from metrictree.errors import CompileError
from metrictree.escaping import csv_cell, markdown_text, printable
from metrictree.includes import MAX_TREE_BYTES

SHOP = """\
tree shop
grain month
source orders {
    time order_date
    dimensions region
}
metric revenue = sum(orders.amount) { label "Revenue" unit RUB }
metric orders_count = count(orders)
metric aov = revenue / orders_count { level strategic }
"""


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def _cli(*args: str):
    return _runner().invoke(main, list(args), catch_exceptions=False)


def _include_error(tmp_path: Path, include: str) -> str:
    main_file = tmp_path / "main.tree"
    main_file.write_text(f'include "{include}"\nmetric x = 1\n', "utf-8")
    with pytest.raises(CompileError) as info:
        metrictree.load(main_file)
    message = str(info.value)
    assert f"{main_file}:1:1" in message  # located at the include statement
    return message


# --------------------------------------------------------------------------- include (issue item 18, 5)


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../etc/passwd", "/proc/self/environ"])
def test_include_refuses_files_that_are_not_tree_files(tmp_path, target):
    message = _include_error(tmp_path, target)
    assert "only .tree files can be included" in message
    assert "root:" not in message and "PATH=" not in message


def test_include_refuses_tree_files_outside_the_tree_folder(tmp_path):
    outside = tmp_path / "outside.tree"
    outside.write_text("metric secret = 1\n", "utf-8")
    folder = tmp_path / "project"
    folder.mkdir()
    assert "outside the tree's folder" in _include_error(folder, "../outside.tree")
    assert "outside the tree's folder" in _include_error(folder, str(outside))


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside.tree"
    outside.write_text("metric secret = 1\n", "utf-8")
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "link.tree").symlink_to(outside)
    assert "outside the tree's folder" in _include_error(folder, "link.tree")


def test_an_explicit_include_path_is_reachable_from_the_api_and_the_cli(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "common.tree").write_text("metric one = 1\n", "utf-8")
    folder = tmp_path / "project"
    folder.mkdir()
    tree_file = folder / "main.tree"
    tree_file.write_text('include "common.tree"\nmetric two = one * 2 { level strategic }\n', "utf-8")
    with pytest.raises(CompileError, match="cannot include 'common.tree': no file"):
        metrictree.load(tree_file)
    tree = metrictree.load(tree_file, include_paths=[shared])
    assert set(tree.metrics) == {"one", "two"}
    assert _cli("check", str(tree_file)).exit_code == 1
    result = _cli("--include-path", str(shared), "check", str(tree_file))
    assert result.exit_code == 0, result.stderr
    # ../shared/common.tree is outside the tree's folder, but inside an include path: allowed.
    tree_file.write_text('include "../shared/common.tree"\nmetric two = one * 2 { level strategic }\n', "utf-8")
    assert set(metrictree.load(tree_file, include_paths=[shared]).metrics) == {"one", "two"}


def test_symlink_loops_nul_bytes_and_non_utf8_includes_are_located_errors(tmp_path):
    (tmp_path / "loop.tree").symlink_to(tmp_path / "loop.tree")
    assert "cannot be followed" in _include_error(tmp_path, "loop.tree")
    assert "NUL byte" in _include_error(tmp_path, "a\\u0000b.tree".encode().decode("unicode_escape"))
    (tmp_path / "latin.tree").write_bytes("metric caf\u00e9 = 1\n".encode("latin-1"))
    assert "is not UTF-8 text (byte 0xe9 on line 1)" in _include_error(tmp_path, "latin.tree")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_refused_at_once(tmp_path, device):
    if not os.path.exists(device):
        pytest.skip(f"{device} does not exist here")
    (tmp_path / "dev.tree").symlink_to(device)
    assert "outside the tree's folder" in _include_error(tmp_path, "dev.tree")
    # Even inside a folder the user allowed, a device is not read.
    (tmp_path / "main.tree").write_text('include "dev.tree"\nmetric x = 1\n', "utf-8")
    with pytest.raises(CompileError, match="main.tree:1:1: error: .* is not a regular file"):
        metrictree.load(tmp_path / "main.tree", include_paths=[Path(device).parent])
    with pytest.raises(CompileError, match="not a regular file"):
        metrictree.load(device)
    with pytest.raises(CompileError, match="not a regular file"):
        metrictree.load(tmp_path / "dev.tree")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "pipe.tree")
    assert "not a regular file" in _include_error(tmp_path, "pipe.tree")
    with pytest.raises(CompileError, match="not a regular file"):
        metrictree.load(tmp_path / "pipe.tree")


def test_a_huge_file_is_refused(tmp_path):
    big = tmp_path / "big.tree"
    with big.open("wb") as handle:
        handle.truncate(MAX_TREE_BYTES + 1)
    assert "the limit is" in _include_error(tmp_path, "big.tree")


def test_an_error_quotes_only_a_short_excerpt_of_a_long_line(tmp_path):
    secret = "\x00".join(f"SECRET_{i}=value{i}" for i in range(2000))
    path = tmp_path / "environ.tree"
    path.write_text("metric x = 1 " + secret + "\n", "utf-8")
    with pytest.raises(metrictree.TreeSyntaxError) as info:
        metrictree.load(path)
    message = str(info.value)
    assert len(message) < 600
    assert "SECRET_50=" not in message


def test_include_is_documented():
    text = (Path(__file__).resolve().parents[1] / "docs" / "language.md").read_text("utf-8")
    assert "--include-path" in text and "regular" in text and "outside the tree's folder" in text


# --------------------------------------------------------------------------- output (items 19, 20, 21)


def _shop(tmp_path: Path, regions: list[str], label: str = "Revenue") -> tuple[Path, Path]:
    tree_file = tmp_path / "shop.tree"
    tree_file.write_text(SHOP.replace('label "Revenue"', f'label "{label}"'), "utf-8")
    n = len(regions)
    table = pa.table({"order_date": [dt.date(2026, 9 + i % 2, 3) for i in range(n)],
                      "region": regions, "amount": [float(10 + i) for i in range(n)]})
    data = tmp_path / "orders.parquet"
    pq.write_table(table, data)
    return tree_file, data


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tmp_path):
    regions = ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "North"] * 2
    tree_file, data = _shop(tmp_path, regions)
    result = _cli("eval", str(tree_file), "--data", f"orders={data}", "--by", "region", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    table = pacsv.read_csv(pa.py_buffer(result.stdout_bytes))
    assert set(table.column("region").to_pylist()) == {"'" + r if r != "North" else r for r in regions}
    assert min(table.column("revenue").to_pylist()) > 0  # numbers stay numbers
    assert csv_cell("-5") == "'-5" and csv_cell("North") == "North"


def test_control_characters_never_reach_the_terminal(tmp_path):
    evil = "\x1b]0;pwned\x07\x1b[31mNorth\u202e"
    tree_file, data = _shop(tmp_path, [evil, "South"] * 2, label="Rev\\u001b[2Jenue")
    tree_file.write_text(tree_file.read_text("utf-8").replace("\\u001b", "\x1b"), "utf-8")
    for args in (["eval", "--by", "region"], ["eval"], ["explain", "--metric", "aov"],
                 ["explain", "--metric", "aov", "--format", "markdown"],
                 ["whatif", "--set", "revenue=+10%"], ["whatif", "--set", "revenue=+10%", "--format", "markdown"],
                 ["status"], ["status", "--format", "markdown"]):
        result = _cli(args[0], str(tree_file), "--data", f"orders={data}", *args[1:])
        assert result.exit_code == 0, (args, result.stderr)
        for stream in (result.stdout, result.stderr):
            assert "\x1b" not in stream and "\x07" not in stream and "\u202e" not in stream, args
    assert printable("a\tb\nc\x1b[0m\x9b") == "a\tb\nc[0m"


def test_markdown_escapes_html_from_labels_and_data(tmp_path):
    tree_file, data = _shop(tmp_path, ["<script>alert(1)</script>", "South", "North"] * 3,
                            label="<img src=x onerror=alert(1)>")
    for args in (["explain", "--metric", "aov", "--by", "region", "--format", "markdown"],
                 ["whatif", "--set", "revenue=+10%", "--format", "markdown"],
                 ["whatif", "--sensitivity", "aov", "--format", "markdown"]):
        result = _cli(args[0], str(tree_file), "--data", f"orders={data}", *args[1:])
        assert result.exit_code == 0, (args, result.stderr)
        assert "<img" not in result.stdout and "<script" not in result.stdout, args
    assert "&lt;img src=x onerror=alert(1)&gt;" in result.stdout
    # The same from the Python API: an embedding tool gets escaped Markdown too.
    tree = metrictree.load(tree_file)
    page = tree.explain({"orders": str(data)}, metric="aov", by=["region"]).to_markdown()
    assert "<img" not in page and "<script" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert markdown_text("`a > b` <b>") == "`a > b` &lt;b&gt;"
    # A backtick this reading cannot pair: everything is escaped, code spans included.
    assert markdown_text("`a\n` <b> `") == "`a\n` &lt;b&gt; `"
    assert markdown_text("| `x | <b> | y` |") == "| `x | &lt;b&gt; | y` |"


# --------------------------------------------------------------------------- a frozen Tree (item 22)


def test_the_compiled_tree_is_immutable_and_hashable():
    tree = metrictree.loads(SHOP)
    assert hash(tree) == hash(metrictree.loads(SHOP)) and tree == metrictree.loads(SHOP)
    assert {tree: 1}[metrictree.loads(SHOP)] == 1
    for mapping in (tree.metrics, tree.sources, tree.params):
        with pytest.raises(TypeError):
            mapping["x"] = None  # type: ignore[index]
    with pytest.raises(nx.NetworkXError):
        tree.graph.add_edge("aov", "nowhere")
    with pytest.raises(AttributeError):
        tree.name = "other"  # type: ignore[misc]
    assert isinstance(tree.links, tuple) and isinstance(tree.targets, tuple)
    assert tree.evaluate({"orders": pa.table({"order_date": [dt.date(2026, 1, 1)], "region": ["N"],
                                              "amount": [5.0]})}).column("revenue").to_pylist() == [5.0]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)


def test_the_compiled_model_imports_no_stage():
    import ast

    source = (Path(__file__).resolve().parents[1] / "engine" / "model.py").read_text("utf-8")
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom) and node.level}
    assert imported <= {"errors", "syntax"}, imported
    assert isinstance(metrictree.loads(SHOP), metrictree.Tree) and metrictree.Tree.__mro__[1].__module__ == \
        "metrictree.model"
