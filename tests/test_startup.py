"""Start-up: commands import only what they need (the time itself is measured by bench/, not here)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

TREE = textwrap.dedent("""
    tree t "t"
    grain month
    source orders { time day dimensions region entity customer_id }
    metric revenue = sum(orders.amount)
    metric customers = count_distinct(orders.customer_id)
    metric churned = churned_customers(orders)
    metric churn_rate = churned / customers[-1] { level strategic }
""")


def modules_after(code: str, tmp_path) -> set[str]:
    (tmp_path / "t.tree").write_text(TREE)
    probe = "import sys\n" + code + '\nprint(",".join(sorted(sys.modules)))\n'
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    return set(out.stdout.strip().splitlines()[-1].split(","))


def test_check_imports_no_arrow_and_no_pandas(tmp_path):
    loaded = modules_after(textwrap.dedent("""
        from metrictree.cli import main
        try:
            main(["check", "t.tree"])
        except SystemExit as stop:
            assert stop.code == 0, stop.code
    """), tmp_path)
    assert "metrictree.plugins.crm" in loaded  # the functions were checked against the plugins
    assert not {m for m in loaded if m.split(".")[0] in ("pyarrow", "pandas", "numpy")}


def test_import_metrictree_loads_no_evaluation_stack(tmp_path):
    loaded = modules_after("import metrictree; metrictree.load('t.tree')", tmp_path)
    assert "pyarrow.dataset" not in loaded and "pandas" not in loaded
    assert "metrictree.evaluating" not in loaded


def test_lazy_names_still_resolve():
    import metrictree

    assert metrictree.Evaluation.__name__ == "Evaluation"
    assert callable(metrictree.null_reasons)
