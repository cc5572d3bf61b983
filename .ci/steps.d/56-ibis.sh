#!/usr/bin/env bash
# The ibis binding on ibis' DuckDB backend: every backend suite (parity, slices, safety, bindings) with an
# ibis table. ibis (≤ 12) does not run on duckdb 2, so the `ibis` extra pins duckdb below 2 — in a virtual
# environment of its own, to leave the CI environment's duckdb as the other suites use it.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m venv .venv-ci-ibis
# shellcheck disable=SC1091
. .venv-ci-ibis/bin/activate
python -m pip install --quiet --upgrade pip
pip install --quiet ".[test,ibis]"
python -m pytest -q tests/backends -k "ibis or test_api_bindings"
