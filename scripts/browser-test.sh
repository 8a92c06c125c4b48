#!/usr/bin/env bash
# Runs the dashboard's browser test (scripts/browser-test.py) against a gateway
# it starts itself: embedded mode, a random API key, a free port on 127.0.0.1.
# Builds nothing: the gateway binary comes from $GATEWAY_BIN (default
# .build/debug/gateway). With $DASHBOARD_DIR set, the gateway serves the
# dashboard's files from that directory (--dashboard-dir) instead of its bundle.
# Screenshots and the gateway's log go to .build/artifacts/. Exits with the
# test's status; the gateway is stopped however the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

GATEWAY_BIN="${GATEWAY_BIN:-.build/debug/gateway}"
ARTIFACTS=".build/artifacts"
if [ ! -x "$GATEWAY_BIN" ]; then
    echo "browser-test.sh: no gateway binary at $GATEWAY_BIN (build it with swift build, or set GATEWAY_BIN)" >&2
    exit 2
fi
mkdir -p "$ARTIFACTS"

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
TOKEN="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
BASE_URL="http://127.0.0.1:$PORT"

gateway_args=(--embedded --host 127.0.0.1 --port "$PORT" --api-key "dashboard:read+submit+cancel:$TOKEN")
if [ -n "${DASHBOARD_DIR:-}" ]; then
    gateway_args+=(--dashboard-dir "$DASHBOARD_DIR")
fi

GATEWAY_PID=""
stop_gateway() {
    if [ -z "$GATEWAY_PID" ] || ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
        return 0
    fi
    kill -TERM "$GATEWAY_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$GATEWAY_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$GATEWAY_PID" 2>/dev/null; then
        echo "browser-test.sh: the gateway did not stop within 10 s of SIGTERM: SIGKILL" >&2
        kill -KILL "$GATEWAY_PID" 2>/dev/null || true
    fi
    wait "$GATEWAY_PID" 2>/dev/null || true
    GATEWAY_PID=""
}
trap stop_gateway EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "browser-test.sh: starting $GATEWAY_BIN on $BASE_URL (log: $ARTIFACTS/gateway.log)"
"$GATEWAY_BIN" "${gateway_args[@]}" >"$ARTIFACTS/gateway.log" 2>&1 &
GATEWAY_PID=$!

deadline=$((SECONDS + 60))
until curl -fsS --max-time 2 -o /dev/null "$BASE_URL/ready" 2>/dev/null; do
    if ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
        echo "browser-test.sh: the gateway exited before it was ready; its log:" >&2
        tail -n 40 "$ARTIFACTS/gateway.log" >&2 || true
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "browser-test.sh: the gateway was not ready within 60 s; its log:" >&2
        tail -n 40 "$ARTIFACTS/gateway.log" >&2 || true
        exit 1
    fi
    sleep 0.5
done
echo "browser-test.sh: the gateway is ready"

status=0
python3 scripts/browser-test.py --base-url "$BASE_URL" --api-key "$TOKEN" --screenshot-dir "$ARTIFACTS" || status=$?
exit "$status"
