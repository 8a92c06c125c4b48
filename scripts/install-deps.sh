#!/usr/bin/env bash
# Installs what the package needs beyond the Swift toolchain, from Debian's
# packages: librdkafka (the Kafka client library) and pkg-config, which finds it;
# docker-compose, with which the tests validate docker-compose.yml offline
# (`docker-compose config`; no Docker engine is needed for that); and SQLite's
# headers, for the example worker's database (Examples/custom-worker, GRDB).
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
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends "${missing[@]}"
