#!/usr/bin/env bash
# The long fuzz campaign over tree files (tests/test_fuzz_trees.py): 140,000 inputs of each of three
# kinds (grammar-built statements, token soup, mutated bundled trees), 420,000 in all. Measured at
# about 290 inputs a second on the 2-core machine since the parser builds no lark tree (issue 10), so
# about 24 minutes; 500,000 would take about 29. Every input must load or raise metrictree's own error
# with file:line:col.
set -euo pipefail
cd "$(dirname "$0")/../.."
METRICTREE_FUZZ_EXAMPLES="${METRICTREE_FUZZ_EXAMPLES:-140000}" \
    python -m pytest -m slow tests/test_fuzz_trees.py -p no:cacheprovider -q
