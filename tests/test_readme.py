"""The README is true: its tree example compiles and runs on the sample data, its first command works."""

import re
from pathlib import Path

import metrictree
from metrictree.sample import sample_data

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_tree_example_compiles_and_evaluates():
    (text,) = re.findall(r"```tree\n(.*?)```", README.read_text("utf-8"), flags=re.S)
    tree = metrictree.loads(text, "README.md")
    assert tree.warnings == ()
    table = tree.evaluate(sample_data(), start="2026-10")
    assert table.num_rows == 1 and table.column("ltv")[0].as_py() > 0


def test_the_first_commands_are_the_documented_ones():
    lines = README.read_text("utf-8").splitlines()
    commands = [line for line in lines[:10] if line.startswith("pip install")]
    assert commands == ['pip install . && metrictree explain trees/crm_ltv.tree --sample',
                        'pip install ".[test]" && python -m pytest']
    assert 'pip install ".[test]" && python -m pytest' in (README.parent / ".ci" / "run").read_text("utf-8")
