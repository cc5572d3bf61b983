"""The serve config file: what it accepts, and the clear errors for what it does not (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

import metrictree
from metrictree.serving.catalog import Catalog
from metrictree.serving.config import load_config, parse_duration
from metrictree.serving.operations import data_for


def write(folder: Path, text: str) -> Path:
    path = folder / "metrictree.toml"
    path.write_text(text, "utf-8")
    return path


def test_bindings_are_resolved_against_the_config_and_urls_kept(tmp_path):
    (tmp_path / "trees").mkdir()
    config = load_config(write(tmp_path, 'folder = "trees"\n[data]\norders = "data/orders.parquet"\n'
                                         'emails = "postgresql://db.internal/shop?table=emails"\n'
                                         '[trees.crm]\nfile = "crm_ltv"\nsample = true\nparams = { margin = "65%" }\n'
                                         '[trees.crm.data]\norders = "/abs/orders.csv"\n'))
    [crm] = config.entries()
    assert crm.file == "crm_ltv" and crm.sample and crm.params == {"margin": "65%"}
    assert crm.data == {"orders": "/abs/orders.csv", "emails": "postgresql://db.internal/shop?table=emails"}
    assert load_config(tmp_path).path == str((tmp_path / "metrictree.toml").resolve())  # a folder means its file


def test_the_folder_serves_every_tree_file_in_it(tmp_path):
    (tmp_path / "trees").mkdir()
    config = load_config(write(tmp_path, 'folder = "trees"\n'))
    assert config.entries() == []
    (tmp_path / "trees" / "a.tree").write_text("tree a\n", "utf-8")
    assert [e.name for e in config.entries()] == ["a"]


@pytest.mark.parametrize(("text", "message", "hint"), [
    ("[trees.x]\nfiel = 'x.tree'\n", "unknown key 'fiel' in trees.x", "did you mean 'file'?"),
    ("folder = 'nowhere'\n", "folder = 'nowhere' is not a folder", None),
    ("[data]\n", "no trees to serve", 'add folder = "trees" or a [trees.NAME] table with file = "…"'),
    ("[trees.x]\n[http]\nport = 'eighty'\n", "[http]: port must be a number from 0 to 65535", None),
    ("[trees.x]\n[notify]\nevery = 'soon'\n", "notify.every: expected a duration, got 'soon'", None),
    ("[trees.x\n", "not valid TOML", None),
])
def test_mistakes_are_usage_errors_with_hints(tmp_path, text, message, hint):
    with pytest.raises(metrictree.UsageError) as caught:
        load_config(write(tmp_path, text))
    assert message in caught.value.diagnostics[0].message
    if hint:
        assert caught.value.diagnostics[0].hint == hint


def test_a_source_without_a_binding_names_the_config_table(tmp_path):
    config = load_config(write(tmp_path, '[trees.crm]\nfile = "crm_ltv"\n[trees.crm.data]\norders = "o.parquet"\n'))
    tree, loaded = Catalog(config).tree("crm")
    with pytest.raises(metrictree.UsageError) as caught:
        data_for(tree, loaded)
    error = caught.value.diagnostics[0]
    assert error.message == "tree 'crm' reads source(s) emails, surveys, spend that the serve config does not bind"
    assert error.hint.startswith("add them under [trees.crm.data]")


def test_durations():
    assert (parse_duration("90s"), parse_duration("15m"), parse_duration("2h"), parse_duration(45)) == \
        (90.0, 900.0, 7200.0, 45.0)
    with pytest.raises(metrictree.UsageError, match="must be positive"):
        parse_duration("0m")


def test_config_params_apply_to_every_request_and_a_request_s_own_win(tmp_path):
    from metrictree.serving import operations as ops

    config = load_config(write(tmp_path, '[trees.saas]\nfile = "saas_mrr"\nsample = true\n'
                                         'params = { membership_spend_share = "10%" }\n'))
    catalog = Catalog(config)

    def share(params=None) -> float:
        answer = ops.evaluate(catalog, "saas", metrics=["shop_spend", "sales_and_marketing"], start="2026-10",
                              params=params)
        [row] = answer.data["rows"]
        return row["sales_and_marketing"] / row["shop_spend"]

    assert share() == pytest.approx(0.10)
    assert share({"membership_spend_share": 0.2}) == pytest.approx(0.20)
