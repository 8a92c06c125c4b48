#!/usr/bin/env bash
# Installs what the package needs beyond the Swift toolchain, from Debian's
# packages: librdkafka (the Kafka client library) and pkg-config, which finds it.
# Safe to run again; it does nothing when they are there.
set -euo pipefail
if command -v pkg-config >/dev/null && pkg-config --exists rdkafka; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends librdkafka-dev pkg-config
