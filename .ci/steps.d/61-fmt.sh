#!/usr/bin/env bash
# The formatter over every bundled tree and every doc example with bindings, checkpoints, time
# formats or includes: a comment after any token is kept, and the layout does not depend on the
# original spacing (the default run takes one example of each).
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m pytest -m slow tests/test_formatting.py
