#!/usr/bin/env bash
# `metrictree serve` and `status --notify`: the MCP server driven by the SDK's own client (stdio and streamable
# HTTP), the JSON API against a real server process, notifications received by loopback HTTP and SMTP servers.
# They need the serve extra and aiosmtpd, which the README's test command does not install, so they run here.
set -euo pipefail
pip install --quiet ".[serve]" "aiosmtpd>=1.4"
python -c "import mcp, fastapi, uvicorn, aiosmtpd"  # fail loudly rather than let the tests skip
python -m pytest tests/serve -p no:cacheprovider
