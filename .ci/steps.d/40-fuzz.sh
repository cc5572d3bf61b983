#!/usr/bin/env bash
# The long fuzz campaign over tree files (tests/test_fuzz_trees.py): 40,000 inputs of each of three
# kinds (grammar-built statements, token soup, mutated bundled trees), 120,000 in all, in about
# 15 minutes. Every input must load or raise metrictree's own error with file:line:col.
set -euo pipefail
cd "$(dirname "$0")/../.."
METRICTREE_FUZZ_EXAMPLES="${METRICTREE_FUZZ_EXAMPLES:-40000}" \
    python -m pytest -m slow tests/test_fuzz_trees.py -p no:cacheprovider -q
