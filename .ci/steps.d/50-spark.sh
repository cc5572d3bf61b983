#!/usr/bin/env bash
# The Spark backend's parity tests (tests/backends, marked slow): pyspark in local mode, which needs a Java
# runtime. Java from Debian's packages when missing; pyspark from the `spark` extra.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v java >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends default-jre-headless >/dev/null
    else
        echo "note: no Java and no apt-get here, so the Spark tests skip themselves" >&2
    fi
fi
pip install --quiet ".[spark]"
python -m pytest -q -m slow tests/backends -k spark
