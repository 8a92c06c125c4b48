#!/usr/bin/env bash
# Runs the dashboard's browser test (scripts/browser-test.py) in headless
# Chromium against a gateway it starts itself (scripts/lib/embedded-gateway.sh):
# embedded mode, an API key with the dashboard's scopes, a free port.
# With $DASHBOARD_DIR set, the gateway serves the dashboard's files from that
# directory (--dashboard-dir) instead of its bundle. Screenshots and the
# gateway's log go to .build/artifacts/. Exits with the test's status.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/embedded-gateway.sh

extra=()
if [ -n "${DASHBOARD_DIR:-}" ]; then
    extra+=(--dashboard-dir "$DASHBOARD_DIR")
fi
# A page limit below the gateway's default page of 50: the dashboard must not ask for more.
start_embedded_gateway dashboard "read+submit+cancel" --max-page-size 20 "${extra[@]}"
python3 scripts/browser-test.py --base-url "$BASE_URL" --api-key "$TOKEN" --screenshot-dir "$ARTIFACTS"
