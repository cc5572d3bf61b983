#!/usr/bin/env bash
# The Python API bindings' slow suites (tests/backends, marked slow): the whole parity, slice and safety
# suites on PostgreSQL through SQLAlchemy and through ADBC (the default run covers their guards and errors
# in test_api_bindings.py, and SQLite through both). SQLAlchemy and the ADBC drivers come with the `test` extra;
# the server is the one .ci/setup.d/30-postgres.sh started (the tests skip without METRICTREE_TEST_POSTGRES_URL).
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pytest -q -m slow tests/backends -k "postgres-sqlalchemy or postgres-adbc"
