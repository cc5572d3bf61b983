"""docs/plugins.md is true: its example package loads through its entry point and works, and every
library metric of the built-in plugins is documented."""

import re
import tomllib
from pathlib import Path

import pyarrow.compute as pc
import pytest

import metrictree
from metrictree import pluginmanager
from metrictree.sample import sample_data

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text("utf-8"), flags=re.S)


@pytest.fixture
def installed_example(tmp_path, monkeypatch):
    """The documented package, installed as a distribution with its entry point (no network, no pip)."""
    project = tomllib.loads(blocks("toml")[0])["project"]
    module = next(b for b in blocks("python") if "@metrictree.hookimpl" in b)
    (tmp_path / "retail_extras.py").write_text(module, "utf-8")
    info = tmp_path / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
                                   "utf-8")
    points = project["entry-points"]["metrictree"]
    (info / "entry_points.txt").write_text("[metrictree]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()),
                                           "utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(pluginmanager.DISABLE_AUTOLOAD, raising=False)
    pluginmanager.reset()
    try:
        yield project
    finally:
        pluginmanager.reset()


def test_the_example_package_loads_and_its_tree_runs(installed_example):
    registry = pluginmanager.registry()
    assert registry.owner(registry.scalars["clamp01"]) == "retail"
    assert registry.owner(registry.libraries["retail"]) == "retail"
    plugin = dict(pluginmanager.plugins())["retail"]
    assert pluginmanager.distribution_of(plugin) == "metrictree-retail-extras 1.0.0"

    tree = metrictree.loads(blocks("tree")[0], "example.tree")
    assert tree.warnings == ()
    table = tree.evaluate(sample_data(), metrics=["big_order_share", "big"])
    orders = sample_data()["orders"]
    paid = orders.filter(pc.equal(orders.column("status"), "paid"))
    expected = pc.mean(pc.cast(pc.greater(paid.column("amount"), 5000), "float64")).as_py()
    total = (pc.sum(pc.multiply(table.column("big_order_share"), 1.0)).as_py()) / table.num_rows
    assert 0 < expected < 0.5 and abs(total - expected) < 0.02  # monthly shares average near the overall share
    assert all(0.0 <= v <= 1.0 for v in table.column("big").to_pylist())


def test_every_library_metric_is_documented():
    text = DOC.read_text("utf-8")
    registry = pluginmanager.registry()
    for name, library in registry.libraries.items():
        for metric in re.findall(r"^\s*(?:metric|param)\s+(\w+)", library.text, flags=re.M):
            assert f"| `{metric}`" in text, f"{name}'s {metric} is missing from docs/plugins.md"
