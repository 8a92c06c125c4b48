#!/usr/bin/env bash
# Every test, in the order CI runs them (after scripts/install-deps.sh):
#   1. the package's tests (unit, integration against the embedded broker, the
#      fault suite of separate processes);
#   2. the example worker package's tests;
#   3. the live API against its OpenAPI document, with schemathesis;
#   4. the dashboard in headless Chromium;
#   5. a smoke run of the benchmark's HTTP workloads (small counts, debug build):
#      it proves jobs-bench and its wrk script still work and measures nothing.
# 3, 4 and 5 run the executables that step 1 built.
set -euo pipefail
cd "$(dirname "$0")/.."
# One test at a time (about twelve minutes): with every suite at once on two
# cores, the test process's own tasks were starved for seconds, and timing
# tests failed one run in two, different ones each time.
swift test --no-parallel
swift test --package-path Examples/custom-worker
scripts/api-conformance.sh
scripts/browser-test.sh
swift build --product jobs-bench
.build/debug/jobs-bench all --quick --only submit,e2e,cancel,reads
