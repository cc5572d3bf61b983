#!/usr/bin/env bash
# `metrictree import dbt` against MetricFlow itself: the fixture dbt project (orders, customers)
# is built with dbt on DuckDB, queried with `mf query`, and every imported metric is compared
# month by month. dbt-metricflow and dbt-duckdb come with many pins, so they get their own
# virtual environment and cannot disturb the CI one. dbt-core is held below 1.11: later
# releases fetch a parser binary from GitHub at install time.
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -m venv .venv-dbt-ci
# shellcheck disable=SC1091
. .venv-dbt-ci/bin/activate
python -m pip install --quiet --upgrade pip
pip install --quiet "dbt-metricflow>=0.11" "dbt-duckdb>=1.9" "dbt-core>=1.10,<1.11"
pip install --quiet ".[dbt]" pytest
python -m pytest -m slow tests/test_importing_dbt.py
