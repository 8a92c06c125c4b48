#!/usr/bin/env bash
# Installs what the package needs beyond the Swift toolchain, from Debian's
# packages: librdkafka (the Kafka client library) and pkg-config, which finds it;
# docker-compose, with which the tests validate docker-compose.yml offline
# (`docker-compose config`; no Docker engine is needed for that); and SQLite's
# headers, for the example worker's database (Examples/custom-worker, GRDB).
# For the dashboard's browser test (scripts/browser-test.sh): Chromium and its
# chromedriver from Debian, and Selenium from PyPI (pip) when python3 lacks it.
# wrk, the benchmark's load generator (jobs-bench; scripts/test.sh runs a smoke run).
# Safe to run again; it does nothing when they are there.
set -euo pipefail
missing=()
if ! command -v pkg-config >/dev/null || ! pkg-config --exists rdkafka; then
    missing+=(librdkafka-dev pkg-config)
fi
if ! command -v docker-compose >/dev/null; then
    missing+=(docker-compose)
fi
if ! pkg-config --exists sqlite3 2>/dev/null; then
    missing+=(libsqlite3-dev)
fi
if [ ! -x /usr/bin/chromium ]; then
    missing+=(chromium)
fi
if [ ! -x /usr/bin/chromedriver ]; then
    missing+=(chromium-driver)
fi
if ! command -v wrk >/dev/null; then
    missing+=(wrk)
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
    missing+=(python3-pip)
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if [ "${#missing[@]}" -gt 0 ]; then
    $sudo apt-get update
    $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
python_missing=()
if ! python3 -c 'import selenium' 2>/dev/null; then python_missing+=(selenium); fi
if ! command -v schemathesis >/dev/null; then python_missing+=(schemathesis); fi
if [ "${#python_missing[@]}" -gt 0 ]; then
    user=()
    if [ "$(id -u)" -ne 0 ]; then user=(--user); fi
    # Debian's own python3 refuses pip installs (PEP 668) unless told otherwise.
    python3 -m pip install --quiet "${user[@]}" "${python_missing[@]}" \
        || python3 -m pip install --quiet "${user[@]}" --break-system-packages "${python_missing[@]}"
fi
