#!/usr/bin/env bash
# Every command over a chain of 3,000 metrics (tests/test_hardening_crashes.py, issue 10): a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pytest -m slow tests/test_hardening_crashes.py -p no:cacheprovider -q
