#!/usr/bin/env bash
# Every test, in the order CI runs them (after scripts/install-deps.sh):
#   1. the package's tests (unit, integration against the embedded broker, the
#      fault suite of separate processes);
#   2. the example worker package's tests;
#   3. the live API against its OpenAPI document, with schemathesis;
#   4. the dashboard in headless Chromium.
# 3 and 4 run the gateway that step 1 built.
set -euo pipefail
cd "$(dirname "$0")/.."
swift test
swift test --package-path Examples/custom-worker
scripts/api-conformance.sh
scripts/browser-test.sh
